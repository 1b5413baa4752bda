/*
 * libFuzzer target: arbitrary bytes as a stream of HA protocol packets
 * through vfe_ha_decode(), and the accepted PUT/DEL/GET ones applied to
 * vfe-vhostd-ha's store (small limits, so they are reached).  Each packet is
 * preceded by 3 bytes taken out of the stream: its length (2) and the number
 * of fds that "came with it" (1), which the decoder must compare with the header.
 * The first 7 bytes also describe a record (key length, blob length, fds) cut
 * into packets by vfe_ha_split_next(): every packet within the protocol's
 * bounds, the whole blob and every fd covered, in as few packets as the
 * larger of the two needs.  They also build a PUT with a send tail
 * (F_SEND, 1.2) whose decode must give back blob, bytes and fd index; a
 * decoded F_SEND packet's bytes must lie inside it, before its tail.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/common/virtio_ha/vfe_ha_proto.h"
#include "ha/ha_store.h"

static void check_split(const uint8_t *d)
{
    size_t klen = 1 + d[0] % VFE_HA_KEY_MAX;
    uint32_t len = ((uint32_t)d[1] | (uint32_t)d[2] << 8 | (uint32_t)d[3] << 16) % (VFE_HA_BLOB_MAX + 1);
    unsigned nfds = ((unsigned)d[4] | (unsigned)d[5] << 8) % (VFE_HA_MAX_RECORD_FDS + 1);
    size_t room = VFE_HA_MAX_PAYLOAD - klen;
    unsigned want = (unsigned)((len + room - 1) / room);
    unsigned by_fds = (nfds + VFE_HA_MAX_FDS - 1) / VFE_HA_MAX_FDS;
    want = want > by_fds ? want : by_fds;
    want = want ? want : 1;
    struct vfe_ha_split sp = {0};
    unsigned n = 0;
    do {
        vfe_ha_split_next(&sp, klen, len, nfds);
        if (VFE_HA_HDR_SIZE + klen + sp.chunk > VFE_HA_MAX_PACKET || sp.chunk_fds > VFE_HA_MAX_FDS || ++n > want)
            abort();
        sp.off += sp.chunk;
        sp.fd_off += sp.chunk_fds;
    } while (sp.more);
    if (n != want || sp.off != len || sp.fd_off != nfds)
        abort();
}

static void check_send_round_trip(const uint8_t *d)
{
    static uint8_t pkt[VFE_HA_MAX_PACKET], blob[VFE_HA_MAX_PAYLOAD], bytes[VFE_HA_SEND_MAX + 1];
    size_t klen = 1 + d[0] % 8;
    uint32_t blen = ((uint32_t)d[1] | (uint32_t)d[2] << 8) % (VFE_HA_MAX_PAYLOAD + 1);
    uint32_t nbytes = ((uint32_t)d[3] | (uint32_t)d[4] << 8) % (VFE_HA_SEND_MAX + 2);
    uint32_t fd_index = d[5];
    unsigned nfds = d[6] % (VFE_HA_MAX_FDS + 1);
    memset(blob, d[1], blen);
    memset(bytes, d[3] ^ 0x5a, nbytes);
    int n = vfe_ha_encode_send(pkt, sizeof(pkt), 1, "keykeyke", klen, blob, blen, nfds, fd_index, bytes, nbytes);
    bool fits = nbytes <= VFE_HA_SEND_MAX && VFE_HA_HDR_SIZE + klen + blen + nbytes + 8 <= VFE_HA_MAX_PACKET;
    if ((n > 0) != fits)
        abort();
    if (n < 0)
        return;
    struct vfe_ha_msg m;
    if (vfe_ha_decode(pkt, (size_t)n, nfds, &m, NULL) != 0 || m.body_len != blen || m.send_len != nbytes ||
        m.send_fd != fd_index || !m.send_bytes || memcmp(m.body, blob, blen) != 0 ||
        memcmp(m.send_bytes, bytes, nbytes) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 7) {
        check_split(data);
        check_send_round_trip(data);
    }
    static const struct vfe_ha_limits lim = {.max_records = 8, .max_fds = 16, .max_record_fds = 4,
                                             .max_blob = 4096, .max_bytes = 16384};
    struct ha_store st;
    ha_store_init(&st, &lim);
    size_t off = 0;
    while (off + 3 <= size) {
        size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
        unsigned nfds = data[off + 2] % (VFE_HA_MAX_FDS + 2);
        off += 3;
        if (len > size - off)
            len = size - off;
        /* a copy of exactly len bytes, so reading past it is caught */
        uint8_t *pkt = malloc(len ? len : 1);
        memcpy(pkt, data + off, len);
        off += len;
        struct vfe_ha_msg m;
        const char *why;
        if (vfe_ha_decode(pkt, len, nfds, &m, &why) == 0) {
            size_t tail = m.send_bytes ? m.send_len + sizeof(struct vfe_ha_send_tail) : 0;
            if (m.hdr.key_len + m.body_len + tail + VFE_HA_HDR_SIZE != len || m.hdr.nfds != nfds)
                abort();
            if (!!m.send_bytes != !!(m.hdr.flags & VFE_HA_F_SEND) ||
                (m.send_bytes && (m.hdr.type != VFE_HA_PUT || (m.hdr.flags & VFE_HA_F_MORE) ||
                                  m.send_len > VFE_HA_SEND_MAX || m.send_bytes != m.body + m.body_len)))
                abort();
            if (m.send_len) {
                volatile uint8_t last = m.send_bytes[m.send_len - 1];   /* inside the packet copy */
                (void)last;
            }
            char key[VFE_HA_KEY_MAX + 1];
            memcpy(key, m.key, m.hdr.key_len);
            key[m.hdr.key_len] = '\0';
            if (m.hdr.type == VFE_HA_PUT) {
                uint8_t *blob = malloc(m.body_len ? m.body_len : 1);
                memcpy(blob, m.body, m.body_len);
                if (ha_store_put(&st, key, blob, m.body_len, NULL, 0) < 0)
                    free(blob);
            } else if (m.hdr.type == VFE_HA_DEL) {
                ha_store_del(&st, key);
            } else if (m.hdr.type == VFE_HA_GET && m.hdr.key_len) {
                const struct ha_record *r = ha_store_find(&st, key);
                if (r && r->blob_len) {
                    volatile uint8_t last = r->blob[r->blob_len - 1];   /* the whole blob is readable */
                    (void)last;
                }
            }
            if (st.n > lim.max_records || st.bytes > lim.max_bytes)
                abort();
        } else if (!why) {
            abort();
        }
        free(pkt);
    }
    ha_store_clear(&st);
    return 0;
}
