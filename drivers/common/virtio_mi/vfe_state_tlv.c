/* nvidia state TLVs. */
#include "drivers/common/virtio_mi/vfe_state_tlv.h"

#include <errno.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_state_rec.h"
#include "lib/log/vfe_log.h"

int vfe_state_tlv_encode(const struct vfe_dev_state *s, uint8_t *buf, size_t cap, size_t *len)
{
    if (vfe_dev_state_check(s) < 0)
        return -EINVAL;
    struct vfe_rec_writer w = { .buf = buf, .cap = cap };
    static const struct vfe_rec_types types = {
        .common = VFE_NV_TLV_COMMON_CFG, .net_cfg = VFE_NV_TLV_DEVICE_CFG, .rx_mode = VFE_NV_TLV_RX_MODE,
        .pairs = VFE_NV_TLV_NET_PAIRS, .vq_cfg = VFE_NV_TLV_VQ_CFG, .vq_split = VFE_NV_TLV_VQ_SPLIT,
    };
    vfe_rec_put_state(&w, s, &types);
    if (w.err)
        return w.err;
    *len = w.len;
    return 0;
}

int vfe_state_tlv_decode(const uint8_t *buf, size_t len, struct vfe_dev_state *s)
{
    vfe_dev_state_init(s);
    struct vfe_rec_reader r = { .buf = buf, .len = len };
    uint16_t type;
    const uint8_t *val;
    uint32_t vlen;
    int rc;
    while ((rc = vfe_rec_next(&r, &type, &val, &vlen)) > 0) {
        switch (type) {
        case VFE_NV_TLV_COMMON_CFG: rc = vfe_dev_state_put_common(s, val, vlen); break;
        case VFE_NV_TLV_DEVICE_CFG: rc = vfe_dev_state_put_net_cfg(s, val, vlen); break;
        case VFE_NV_TLV_RX_MODE:    rc = vfe_dev_state_put_rx_mode(s, val, vlen); break;
        case VFE_NV_TLV_VQ_CFG:     rc = vfe_dev_state_put_vq_cfg(s, val, vlen); break;
        case VFE_NV_TLV_VQ_SPLIT:   rc = vfe_dev_state_put_vq_split(s, val, vlen); break;
        case VFE_NV_TLV_NET_PAIRS:  rc = vfe_dev_state_put_pairs(s, val, vlen); break;
        default:
            LOG_D("nvidia state: skipping TLV type %u (%u bytes)", type, vlen);
            rc = 0;
        }
        if (rc < 0) {
            LOG_W("nvidia state: bad TLV type %u len %u", type, vlen);
            return rc;
        }
    }
    if (rc < 0) {
        LOG_W("nvidia state: truncated TLV at offset %zu of %zu", r.off, len);
        return rc;
    }
    return vfe_dev_state_check(s);
}
