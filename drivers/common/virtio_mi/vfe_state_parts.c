/* virtio device parts. */
#include "drivers/common/virtio_mi/vfe_state_parts.h"

#include <errno.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_state_rec.h"
#include "lib/log/vfe_log.h"

int vfe_state_parts_encode(const struct vfe_dev_state *s, uint8_t *buf, size_t cap, size_t *len)
{
    if (vfe_dev_state_check(s) < 0)
        return -EINVAL;
    struct vfe_rec_writer w = { .buf = buf, .cap = cap };
    uint8_t rec[32];
    vfe_put_le64(rec, s->device_features);
    vfe_rec_put(&w, VFE_ADM_PART_DEV_FEATURES, rec, 8);
    vfe_put_le64(rec, s->driver_features);
    vfe_rec_put(&w, VFE_ADM_PART_DRV_FEATURES, rec, 8);
    vfe_rec_put(&w, VFE_ADM_PART_DEVICE_STATUS, &s->status, 1);
    static const struct vfe_rec_types types = {
        .common = VFE_ADM_PART_PCI_COMMON_CFG, .net_cfg = VFE_ADM_PART_NET_CFG,
        .rx_mode = VFE_ADM_PART_NET_RX_MODE, .pairs = VFE_ADM_PART_NET_MQ_PAIRS,
        .vq_cfg = VFE_ADM_PART_VQ_CFG, .vq_split = VFE_ADM_PART_VQ_SPLIT_STATE,
    };
    vfe_rec_put_state(&w, s, &types);
    if (w.err)
        return w.err;
    *len = w.len;
    return 0;
}

static int put_le64_field(uint64_t *dst, const uint8_t *val, uint32_t vlen)
{
    if (vlen != 8)
        return -EINVAL;
    *dst = vfe_get_le64(val);
    return 0;
}

int vfe_state_parts_decode(const uint8_t *buf, size_t len, struct vfe_dev_state *s)
{
    vfe_dev_state_init(s);
    struct vfe_rec_reader r = { .buf = buf, .len = len };
    uint16_t type;
    const uint8_t *val;
    uint32_t vlen;
    int rc;
    while ((rc = vfe_rec_next(&r, &type, &val, &vlen)) > 0) {
        switch (type) {
        case VFE_ADM_PART_DEV_FEATURES:   rc = put_le64_field(&s->device_features, val, vlen); break;
        case VFE_ADM_PART_DRV_FEATURES:   rc = put_le64_field(&s->driver_features, val, vlen); break;
        case VFE_ADM_PART_PCI_COMMON_CFG: rc = vfe_dev_state_put_common(s, val, vlen); break;
        case VFE_ADM_PART_DEVICE_STATUS:
            rc = vlen == 1 ? 0 : -EINVAL;
            if (!rc)
                s->status = val[0];
            break;
        case VFE_ADM_PART_VQ_CFG:         rc = vfe_dev_state_put_vq_cfg(s, val, vlen); break;
        case VFE_ADM_PART_VQ_SPLIT_STATE: rc = vfe_dev_state_put_vq_split(s, val, vlen); break;
        case VFE_ADM_PART_NET_CFG:        rc = vfe_dev_state_put_net_cfg(s, val, vlen); break;
        case VFE_ADM_PART_NET_RX_MODE:    rc = vfe_dev_state_put_rx_mode(s, val, vlen); break;
        case VFE_ADM_PART_NET_MQ_PAIRS:   rc = vfe_dev_state_put_pairs(s, val, vlen); break;
        default:
            /* VQ_NOTIFY_CFG included: notify offsets are the device's own layout */
            LOG_D("virtio parts: skipping part type 0x%x (%u bytes)", type, vlen);
            rc = 0;
        }
        if (rc < 0) {
            LOG_W("virtio parts: bad part type 0x%x len %u", type, vlen);
            return rc;
        }
    }
    if (rc < 0) {
        LOG_W("virtio parts: truncated part at offset %zu of %zu", r.off, len);
        return rc;
    }
    return vfe_dev_state_check(s);
}
