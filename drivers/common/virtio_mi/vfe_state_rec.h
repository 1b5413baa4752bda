/*
 * Record framing shared by the nvidia state TLVs and the virtio device parts:
 * { le16 type; u8; u8; le32 len; value[len]; pad to 8 }.  The two middle
 * bytes are reserved (TLV) or flags (parts) and are written as zero.
 */
#ifndef VFE_STATE_REC_H
#define VFE_STATE_REC_H

#include <stddef.h>
#include <stdint.h>

#define VFE_REC_HDR_LEN 8u

struct vfe_rec_reader {
    const uint8_t *buf;
    size_t len, off;
};

struct vfe_rec_writer {
    uint8_t *buf;
    size_t cap, len;
    int err;                 /* first error (-E2BIG), sticky */
};

/* 1 and the next record, 0 at the end, -EINVAL when a header or value is
 * truncated.  A missing pad after the last value is accepted. */
int vfe_rec_next(struct vfe_rec_reader *r, uint16_t *type, const uint8_t **val, uint32_t *vlen);

void vfe_rec_put(struct vfe_rec_writer *w, uint16_t type, const void *val, uint32_t vlen);

/* Record type numbers of the state records in one encoding. */
struct vfe_rec_types {
    uint16_t common, net_cfg, rx_mode, pairs, vq_cfg, vq_split;
};

struct vfe_dev_state;
/* Write the records both encodings share, in their order. */
void vfe_rec_put_state(struct vfe_rec_writer *w, const struct vfe_dev_state *s, const struct vfe_rec_types *t);

#endif
