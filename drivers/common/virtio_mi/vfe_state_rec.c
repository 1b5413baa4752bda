/* Record framing of state blobs (nvidia TLVs, virtio device parts). */
#include "drivers/common/virtio_mi/vfe_state_rec.h"

#include <errno.h>
#include <string.h>

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
