/* Normalized VF state: record decoding with bounds checks, wire images. */
#include "drivers/common/virtio_mi/vfe_dev_state.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "lib/log/vfe_log.h"

_Static_assert(sizeof(struct vfe_state_common) == 24, "common record size");
_Static_assert(sizeof(struct vfe_state_vq_cfg) == 32, "vq cfg record size");
_Static_assert(sizeof(struct vfe_state_vq_split) == 8, "vq split record size");

#define VQ_SIZE_MAX 32768
#define VQ_PAIRS_MAX 0x8000    /* VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX */

void vfe_dev_state_init(struct vfe_dev_state *s)
{
    memset(s, 0, sizeof(*s));
}

int vfe_dev_state_put_common(struct vfe_dev_state *s, const uint8_t *val, uint32_t len)
{
    if (len != sizeof(struct vfe_state_common))
        return -EINVAL;
    s->device_features = vfe_get_le64(val + offsetof(struct vfe_state_common, device_features));
    s->driver_features = vfe_get_le64(val + offsetof(struct vfe_state_common, driver_features));
    s->msix_config = vfe_get_le16(val + offsetof(struct vfe_state_common, msix_config));
    s->num_queues = vfe_get_le16(val + offsetof(struct vfe_state_common, num_queues));
    s->status = val[offsetof(struct vfe_state_common, status)];
    s->has_common = true;
    return 0;
}

static int vq_slot(struct vfe_dev_state *s, uint16_t qi)
{
    if (qi >= VFE_DEV_STATE_MAX_VQS) {
        LOG_W("admin state: queue index %u out of range", qi);
        return -EINVAL;
    }
    if (qi >= s->nvqs)
        s->nvqs = qi + 1;
    return 0;
}

int vfe_dev_state_put_vq_cfg(struct vfe_dev_state *s, const uint8_t *val, uint32_t len)
{
    if (len != sizeof(struct vfe_state_vq_cfg))
        return -EINVAL;
    uint16_t qi = vfe_get_le16(val + offsetof(struct vfe_state_vq_cfg, index));
    uint16_t size = vfe_get_le16(val + offsetof(struct vfe_state_vq_cfg, size));
    uint16_t en = vfe_get_le16(val + offsetof(struct vfe_state_vq_cfg, enabled));
    if (en > 1 || size > VQ_SIZE_MAX || (en && size == 0))
        return -EINVAL;
    if (qi < VFE_DEV_STATE_MAX_VQS && s->vq[qi].has_cfg)
        return -EINVAL;                       /* duplicate record */
    if (vq_slot(s, qi) < 0)
        return -EINVAL;
    struct vfe_dev_vq_state *q = &s->vq[qi];
    q->has_cfg = true;
    q->size = size;
    q->enabled = en;
    q->msix_vector = vfe_get_le16(val + offsetof(struct vfe_state_vq_cfg, msix_vector));
    q->desc = vfe_get_le64(val + offsetof(struct vfe_state_vq_cfg, desc));
    q->avail = vfe_get_le64(val + offsetof(struct vfe_state_vq_cfg, avail));
    q->used = vfe_get_le64(val + offsetof(struct vfe_state_vq_cfg, used));
    return 0;
}

int vfe_dev_state_put_vq_split(struct vfe_dev_state *s, const uint8_t *val, uint32_t len)
{
    if (len != sizeof(struct vfe_state_vq_split))
        return -EINVAL;
    uint16_t qi = vfe_get_le16(val + offsetof(struct vfe_state_vq_split, index));
    if (qi < VFE_DEV_STATE_MAX_VQS && s->vq[qi].has_split)
        return -EINVAL;
    if (vq_slot(s, qi) < 0)
        return -EINVAL;
    struct vfe_dev_vq_state *q = &s->vq[qi];
    q->has_split = true;
    q->last_avail = vfe_get_le16(val + offsetof(struct vfe_state_vq_split, last_avail));
    q->last_used = vfe_get_le16(val + offsetof(struct vfe_state_vq_split, last_used));
    return 0;
}

int vfe_dev_state_put_net_cfg(struct vfe_dev_state *s, const uint8_t *val, uint32_t len)
{
    if (len == 0 || len > VFE_DEV_STATE_NET_CFG_MAX)
        return -EINVAL;
    memcpy(s->net_cfg, val, len);
    s->net_cfg_len = (uint16_t)len;
    return 0;
}

int vfe_dev_state_put_rx_mode(struct vfe_dev_state *s, const uint8_t *val, uint32_t len)
{
    if (len != 1)
        return -EINVAL;
    s->rx_mode = val[0];
    s->has_rx_mode = true;
    return 0;
}

int vfe_dev_state_put_pairs(struct vfe_dev_state *s, const uint8_t *val, uint32_t len)
{
    if (len != 2)
        return -EINVAL;
    uint16_t n = vfe_get_le16(val);
    if (n == 0 || n > VQ_PAIRS_MAX)
        return -EINVAL;
    s->pairs = n;
    s->has_pairs = true;
    return 0;
}

int vfe_dev_state_check(const struct vfe_dev_state *s)
{
    if (!s->has_common) {
        LOG_W("admin state: no common config record");
        return -EINVAL;
    }
    if (s->num_queues > VFE_DEV_STATE_MAX_VQS || s->nvqs > s->num_queues) {
        LOG_W("admin state: %u queue records for %u queues", s->nvqs, s->num_queues);
        return -EINVAL;
    }
    if (s->net_cfg_len > VFE_DEV_STATE_NET_CFG_MAX || s->nvqs > VFE_DEV_STATE_MAX_VQS)
        return -EINVAL;
    if (s->has_pairs && (s->pairs == 0 || s->pairs > VQ_PAIRS_MAX))
        return -EINVAL;
    return 0;
}

void vfe_dev_state_common_wire(const struct vfe_dev_state *s, uint8_t out[24])
{
    memset(out, 0, 24);
    vfe_put_le64(out + offsetof(struct vfe_state_common, device_features), s->device_features);
    vfe_put_le64(out + offsetof(struct vfe_state_common, driver_features), s->driver_features);
    vfe_put_le16(out + offsetof(struct vfe_state_common, msix_config), s->msix_config);
    vfe_put_le16(out + offsetof(struct vfe_state_common, num_queues), s->num_queues);
    out[offsetof(struct vfe_state_common, status)] = s->status;
}

void vfe_dev_state_vq_cfg_wire(const struct vfe_dev_state *s, uint16_t qi, uint8_t out[32])
{
    const struct vfe_dev_vq_state *q = &s->vq[qi];
    memset(out, 0, 32);
    vfe_put_le16(out + offsetof(struct vfe_state_vq_cfg, index), qi);
    vfe_put_le16(out + offsetof(struct vfe_state_vq_cfg, size), q->size);
    vfe_put_le16(out + offsetof(struct vfe_state_vq_cfg, msix_vector), q->msix_vector);
    vfe_put_le16(out + offsetof(struct vfe_state_vq_cfg, enabled), q->enabled ? 1 : 0);
    vfe_put_le64(out + offsetof(struct vfe_state_vq_cfg, desc), q->desc);
    vfe_put_le64(out + offsetof(struct vfe_state_vq_cfg, avail), q->avail);
    vfe_put_le64(out + offsetof(struct vfe_state_vq_cfg, used), q->used);
}

void vfe_dev_state_vq_split_wire(const struct vfe_dev_state *s, uint16_t qi, uint8_t out[8])
{
    memset(out, 0, 8);
    vfe_put_le16(out + offsetof(struct vfe_state_vq_split, index), qi);
    vfe_put_le16(out + offsetof(struct vfe_state_vq_split, last_avail), s->vq[qi].last_avail);
    vfe_put_le16(out + offsetof(struct vfe_state_vq_split, last_used), s->vq[qi].last_used);
}

static bool vq_equal(const struct vfe_dev_vq_state *a, const struct vfe_dev_vq_state *b)
{
    if (a->has_cfg != b->has_cfg || a->has_split != b->has_split)
        return false;
    if (a->has_cfg && (a->enabled != b->enabled || a->size != b->size || a->msix_vector != b->msix_vector ||
                       a->desc != b->desc || a->avail != b->avail || a->used != b->used))
        return false;
    if (a->has_split && (a->last_avail != b->last_avail || a->last_used != b->last_used))
        return false;
    return true;
}

bool vfe_dev_state_equal(const struct vfe_dev_state *a, const struct vfe_dev_state *b)
{
    if (a->has_common != b->has_common || a->device_features != b->device_features ||
        a->driver_features != b->driver_features || a->msix_config != b->msix_config ||
        a->num_queues != b->num_queues || a->status != b->status)
        return false;
    if (a->has_rx_mode != b->has_rx_mode || (a->has_rx_mode && a->rx_mode != b->rx_mode))
        return false;
    if (a->has_pairs != b->has_pairs || (a->has_pairs && a->pairs != b->pairs))
        return false;
    if (a->net_cfg_len != b->net_cfg_len || memcmp(a->net_cfg, b->net_cfg, a->net_cfg_len))
        return false;
    if (a->nvqs != b->nvqs)
        return false;
    for (uint16_t i = 0; i < a->nvqs && i < VFE_DEV_STATE_MAX_VQS; i++)
        if (!vq_equal(&a->vq[i], &b->vq[i]))
            return false;
    return true;
}
