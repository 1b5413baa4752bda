/* virtio-net frames on the rings, as a guest driver sends and receives them:
 * tx = header + frame, rx = buffers merged by num_buffers (MRG_RXBUF). */
#include "tests/frontend/vfe_frontend_priv.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#define TX_FRAME_OFF 64u   /* frame offset in a tx slot when the header is apart */

size_t vfe_fe_hdr_len(const struct vfe_fe *fe)
{
    uint64_t f = fe->features;
    return (f & (1ull << VIRTIO_F_VERSION_1)) || (f & (1ull << VIRTIO_NET_F_MRG_RXBUF)) ? 12 : 10;
}

static uint64_t tx_buf_gpa(const struct vfe_fe *fe, unsigned pair, unsigned head)
{
    return fe->tx_base_gpa + ((uint64_t)pair * fe->o.ring_size + head) * FE_TX_BUF;
}

int vfe_fe_tx_area(const struct vfe_fe *fe, unsigned pair, uint64_t *gpa, uint64_t *len)
{
    if (pair >= fe->o.pairs)
        return -EINVAL;
    *gpa = tx_buf_gpa(fe, pair, 0);
    *len = (uint64_t)fe->o.ring_size * FE_TX_BUF;
    return 0;
}

/* Sleep on the ring's call eventfd (the device's interrupt) for at most ms. */
static void wait_call(struct vfe_fe *fe, unsigned ring, long ms)
{
    struct pollfd p = {.fd = fe->q[ring].call, .events = POLLIN};
    poll(&p, 1, ms < 0 ? 0 : ms > 2 ? 2 : (int)ms);
    fe_count_calls(fe, ring);
    fe_backend_serve(fe);
}

static int reclaim_tx(struct vfe_fe *fe, unsigned pair)
{
    struct vfe_fe_ring *r = &fe->q[2 * pair + 1].ring;
    uint16_t head;
    uint32_t len;
    int rc;
    while ((rc = vfe_fe_ring_get_used(r, &head, &len)) > 0)
        fe->st[pair].tx_done++;
    return rc;
}

static int notify(struct vfe_fe *fe, unsigned ring)
{
    if (!vfe_fe_ring_kick_needed(&fe->q[ring].ring)) {
        fe->q[ring].kicks_suppressed++;
        return 0;
    }
    return fe_kick(fe, ring);
}

int vfe_fe_send(struct vfe_fe *fe, unsigned pair, const void *frame, size_t len)
{
    if (pair >= fe->o.pairs || len == 0 || len > VFE_FE_MAX_FRAME || !fe->q[2 * pair + 1].laid_out)
        return -EINVAL;
    unsigned ring = 2 * pair + 1;
    struct vfe_fe_ring *r = &fe->q[ring].ring;
    long end = fe_now_ms() + fe->o.timeout_ms;
    int head;
    for (;;) {
        int rc = reclaim_tx(fe, pair);
        if (rc < 0)
            return rc;
        if ((head = vfe_fe_ring_next_head(r)) >= 0)
            break;
        if (fe_now_ms() >= end)
            return -ENOSPC;
        wait_call(fe, ring, end - fe_now_ms());
    }
    size_t hl = vfe_fe_hdr_len(fe);
    uint64_t gpa = tx_buf_gpa(fe, pair, (unsigned)head);
    uint8_t *p = vfe_fe_host(fe, gpa, FE_TX_BUF);
    if (!p)
        return -EFAULT;
    memset(p, 0, hl);
    struct vfe_fe_seg segs[2];
    unsigned nseg;
    if (fe->o.tx_hdr_apart) {
        memcpy(p + TX_FRAME_OFF, frame, len);
        segs[0] = (struct vfe_fe_seg){gpa, (uint32_t)hl, false};
        segs[1] = (struct vfe_fe_seg){gpa + TX_FRAME_OFF, (uint32_t)len, false};
        nseg = 2;
    } else {
        memcpy(p + hl, frame, len);
        segs[0] = (struct vfe_fe_seg){gpa, (uint32_t)(hl + len), false};
        nseg = 1;
    }
    int rc = vfe_fe_ring_add(r, segs, nseg);
    if (rc < 0)
        return rc;
    vfe_fe_ring_publish(r);
    fe->st[pair].tx_frames++;
    fe->st[pair].tx_bytes += len;
    return notify(fe, ring);
}

int vfe_fe_tx_drain(struct vfe_fe *fe, unsigned pair, int timeout_ms)
{
    if (pair >= fe->o.pairs || !fe->q[2 * pair + 1].laid_out)
        return -EINVAL;
    long end = fe_now_ms() + timeout_ms;
    for (;;) {
        int rc = reclaim_tx(fe, pair);
        if (rc < 0)
            return rc;
        if (vfe_fe_ring_in_flight(&fe->q[2 * pair + 1].ring) == 0)
            return 0;
        if (fe_now_ms() >= end)
            return -ETIMEDOUT;
        wait_call(fe, 2 * pair + 1, end - fe_now_ms());
    }
}

/* Next used rx buffer, waiting until end. 1, 0 on timeout, -EPROTO. */
static int next_rx(struct vfe_fe *fe, unsigned pair, uint16_t *head, uint32_t *len, long end)
{
    unsigned ring = 2 * pair;
    for (;;) {
        int rc = vfe_fe_ring_get_used(&fe->q[ring].ring, head, len);
        if (rc != 0)
            return rc;
        if (fe_now_ms() >= end)
            return 0;
        wait_call(fe, ring, end - fe_now_ms());
    }
}

static int repost(struct vfe_fe *fe, unsigned pair)
{
    struct vfe_fe_ring *r = &fe->q[2 * pair].ring;
    int head;
    while ((head = vfe_fe_ring_next_head(r)) >= 0) {
        struct vfe_fe_seg s = {vfe_fe_rx_buf_gpa(fe, pair, (unsigned)head), fe->o.rx_buf_size, true};
        if (vfe_fe_ring_add(r, &s, 1) < 0)
            break;
    }
    vfe_fe_ring_publish(r);
    return notify(fe, 2 * pair);
}

int vfe_fe_recv(struct vfe_fe *fe, unsigned pair, void *buf, size_t cap, int timeout_ms)
{
    if (pair >= fe->o.pairs || !fe->q[2 * pair].laid_out)
        return -EINVAL;
    long end = fe_now_ms() + timeout_ms;
    uint16_t head;
    uint32_t len;
    int rc = next_rx(fe, pair, &head, &len, end);
    if (rc == 0)
        return -ETIMEDOUT;
    if (rc < 0)
        return rc;
    struct fe_pair_stats *st = &fe->st[pair];
    size_t hl = vfe_fe_hdr_len(fe), got = 0;
    unsigned nbufs = 1;
    st->rx_buffers++;
    const uint8_t *b = vfe_fe_host(fe, vfe_fe_rx_buf_gpa(fe, pair, head), fe->o.rx_buf_size);
    if (!b || len < hl || len > fe->o.rx_buf_size) {
        rc = -EPROTO;
    } else if (fe->features & (1ull << VIRTIO_NET_F_MRG_RXBUF)) {
        uint16_t nb;
        memcpy(&nb, b + offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers), sizeof(nb));
        nbufs = le16toh(nb);
        if (nbufs == 0 || nbufs > fe->o.ring_size)
            rc = -EPROTO;
    }
    bool fits = true;
    /* the device published the whole frame together, but allow it a moment */
    long rest_end = end > fe_now_ms() + 1000 ? end : fe_now_ms() + 1000;
    for (unsigned k = 0; rc >= 0 && k < nbufs; k++) {
        if (k) {
            rc = next_rx(fe, pair, &head, &len, rest_end);
            if (rc <= 0) {
                rc = -EPROTO;
                break;
            }
            st->rx_buffers++;
            b = vfe_fe_host(fe, vfe_fe_rx_buf_gpa(fe, pair, head), fe->o.rx_buf_size);
            if (!b || len > fe->o.rx_buf_size) {
                rc = -EPROTO;
                break;
            }
        }
        size_t skip = k == 0 ? hl : 0, n = len - skip;
        if (got + n > cap)
            fits = false;
        else
            memcpy((uint8_t *)buf + got, b + skip, n);
        got += n;
    }
    int kr = repost(fe, pair);
    if (rc < 0 || !fits) {
        st->rx_errors++;
        return rc < 0 ? rc : -EMSGSIZE;
    }
    st->rx_frames++;
    st->rx_bytes += got;
    return kr < 0 ? kr : (int)got;
}

int vfe_fe_stats(struct vfe_fe *fe, unsigned pair, struct vfe_fe_stats *out)
{
    if (pair >= fe->o.pairs)
        return -EINVAL;
    const struct fe_pair_stats *s = &fe->st[pair];
    fe_count_calls(fe, 2 * pair);
    fe_count_calls(fe, 2 * pair + 1);
    *out = (struct vfe_fe_stats){
        .tx_frames = s->tx_frames, .tx_bytes = s->tx_bytes, .tx_done = s->tx_done,
        .rx_frames = s->rx_frames, .rx_bytes = s->rx_bytes, .rx_buffers = s->rx_buffers,
        .rx_errors = s->rx_errors,
        .kicks = fe->q[2 * pair].kicks + fe->q[2 * pair + 1].kicks,
        .kicks_suppressed = fe->q[2 * pair].kicks_suppressed + fe->q[2 * pair + 1].kicks_suppressed,
        .notifier_kicks = fe->q[2 * pair].notifier_kicks + fe->q[2 * pair + 1].notifier_kicks,
        .rx_calls = fe->q[2 * pair].calls, .tx_calls = fe->q[2 * pair + 1].calls,
    };
    return 0;
}
