/* Head of the HA snapshot blobs: written and checked in one place. */
#include "drivers/common/virtio_mi/vfe_ha_blob.h"

#include <errno.h>

#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "lib/log/vfe_log.h"

void vfe_ha_blob_put_head(uint8_t *p, uint32_t magic, uint16_t version, uint16_t len)
{
    vfe_put_le32(p, magic);
    vfe_put_le16(p + 4, version);
    vfe_put_le16(p + 6, len);
}

int vfe_ha_blob_check_head(const void *blob, size_t len, uint32_t magic, uint16_t newest, const char *what,
                           uint16_t *version)
{
    const uint8_t *p = blob;
    if (!p || len < VFE_HA_BLOB_HEAD) {
        LOG_W("%s snapshot refused: %zu bytes, shorter than its %u-byte head", what, len, VFE_HA_BLOB_HEAD);
        return -EINVAL;
    }
    uint32_t m = vfe_get_le32(p);
    uint16_t v = vfe_get_le16(p + 4), l = vfe_get_le16(p + 6);
    if (m != magic) {
        LOG_W("%s snapshot refused: magic %#x, expected %#x", what, m, magic);
        return -EINVAL;
    }
    if (v == 0) {
        LOG_W("%s snapshot refused: version 0", what);
        return -EINVAL;
    }
    if (v > newest) {
        LOG_W("%s snapshot refused: version %u is newer than %u, the newest this build reads", what, v, newest);
        return -EPROTO;
    }
    if (l != len) {
        LOG_W("%s snapshot refused: length field %u, but %zu bytes were given", what, l, len);
        return -EINVAL;
    }
    *version = v;
    return 0;
}
