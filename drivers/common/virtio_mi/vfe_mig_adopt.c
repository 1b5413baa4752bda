/* The migration dialect of a PF, exported and adopted without re-probing. */
#include <errno.h>
#include <string.h>

#include "drivers/common/virtio_mi/vfe_ha_blob.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_mig.h"
#include "lib/log/vfe_log.h"

enum { B_DIALECT = 8, B_FLAGS = 9, B_RSVD = 10 };
#define F_VIRTIO_DIRTY 0x01u

_Static_assert(B_RSVD + 2 == VFE_MIG_BLOB_LEN, "blob size");

int vfe_mig_export(const struct vfe_mig *m, void *buf, size_t cap, size_t *len)
{
    if (!m || !buf || !len || !m->ops ||
        (m->dialect != VFE_MIG_DIALECT_NVIDIA && m->dialect != VFE_MIG_DIALECT_VIRTIO))
        return -EINVAL;
    *len = VFE_MIG_BLOB_LEN;
    if (cap < VFE_MIG_BLOB_LEN)
        return -ENOSPC;
    uint8_t *b = buf;
    memset(b, 0, VFE_MIG_BLOB_LEN);
    vfe_ha_blob_put_head(b, VFE_MIG_BLOB_MAGIC, VFE_MIG_BLOB_VERSION, VFE_MIG_BLOB_LEN);
    b[B_DIALECT] = (uint8_t)m->dialect;
    b[B_FLAGS] = m->virtio_dirty ? F_VIRTIO_DIRTY : 0;
    return 0;
}

int vfe_mig_adopt(struct vfe_mig *m, struct vfe_admin_vq *aq, const void *blob, size_t len)
{
    if (!m || !aq || !blob)
        return -EINVAL;
    uint16_t version;
    int rc = vfe_ha_blob_check_head(blob, len, VFE_MIG_BLOB_MAGIC, VFE_MIG_BLOB_VERSION, "migration dialect",
                                    &version);
    if (rc < 0)
        return rc;
    const uint8_t *b = blob;
    uint8_t d = b[B_DIALECT], flags = b[B_FLAGS];
    if (d != VFE_MIG_DIALECT_NVIDIA && d != VFE_MIG_DIALECT_VIRTIO) {
        LOG_W("migration dialect snapshot refused: dialect %u unknown", d);
        return -EINVAL;
    }
    if ((flags & ~F_VIRTIO_DIRTY) || vfe_get_le16(b + B_RSVD)) {
        LOG_W("migration dialect snapshot refused: unknown flags %#x or reserved bytes set", flags);
        return -EINVAL;
    }
    if ((flags & F_VIRTIO_DIRTY) && d != VFE_MIG_DIALECT_VIRTIO) {
        LOG_W("migration dialect snapshot refused: the dirty extension flag is for the virtio dialect only");
        return -EINVAL;
    }
    if ((rc = vfe_mig_init(m, aq, (enum vfe_mig_dialect)d)) < 0)
        return rc;
    m->virtio_dirty = flags & F_VIRTIO_DIRTY;
    LOG_I("admin vq: PF's %s dialect adopted%s, not probed again", vfe_mig_dialect_name(m->dialect),
          m->virtio_dirty ? " with dirty reports" : "");
    return 0;
}
