/* Record framing of state blobs (nvidia TLVs, virtio device parts). */
#include "drivers/common/virtio_mi/vfe_state_rec.h"

#include <errno.h>
#include <string.h>

#include "drivers/common/virtio_mi/vfe_dev_state.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

int vfe_rec_next(struct vfe_rec_reader *r, uint16_t *type, const uint8_t **val, uint32_t *vlen)
{
    if (r->off >= r->len)
        return 0;
    size_t left = r->len - r->off;
    if (left < VFE_REC_HDR_LEN)
        return -EINVAL;
    const uint8_t *h = r->buf + r->off;
    uint32_t n = vfe_get_le32(h + 4);
    if (n > left - VFE_REC_HDR_LEN)
        return -EINVAL;
    *type = vfe_get_le16(h);
    *val = h + VFE_REC_HDR_LEN;
    *vlen = n;
    size_t step = VFE_REC_HDR_LEN + pad8(n);
    r->off = step > left ? r->len : r->off + step;
    return 1;
}

void vfe_rec_put(struct vfe_rec_writer *w, uint16_t type, const void *val, uint32_t vlen)
{
    if (w->err)
        return;
    size_t need = VFE_REC_HDR_LEN + pad8(vlen);
    if (need > w->cap - w->len) {
        w->err = -E2BIG;
        return;
    }
    uint8_t *h = w->buf + w->len;
    memset(h, 0, need);
    vfe_put_le16(h, type);
    vfe_put_le32(h + 4, vlen);
    if (vlen)
        memcpy(h + VFE_REC_HDR_LEN, val, vlen);
    w->len += need;
}

void vfe_rec_put_state(struct vfe_rec_writer *w, const struct vfe_dev_state *s, const struct vfe_rec_types *t)
{
    uint8_t rec[32];
    vfe_dev_state_common_wire(s, rec);
    vfe_rec_put(w, t->common, rec, 24);
    if (s->net_cfg_len)
        vfe_rec_put(w, t->net_cfg, s->net_cfg, s->net_cfg_len);
    if (s->has_rx_mode)
        vfe_rec_put(w, t->rx_mode, &s->rx_mode, 1);
    if (s->has_pairs) {
        vfe_put_le16(rec, s->pairs);
        vfe_rec_put(w, t->pairs, rec, 2);
    }
    for (uint16_t i = 0; i < s->nvqs; i++) {
        if (s->vq[i].has_cfg) {
            vfe_dev_state_vq_cfg_wire(s, i, rec);
            vfe_rec_put(w, t->vq_cfg, rec, 32);
        }
        if (s->vq[i].has_split) {
            vfe_dev_state_vq_split_wire(s, i, rec);
            vfe_rec_put(w, t->vq_split, rec, 8);
        }
    }
}
