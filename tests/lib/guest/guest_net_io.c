/* guest_net: frames in and out, control commands, doorbells and waits. */
#include "tests/lib/guest/guest_net_priv.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "lib/log/vfe_log.h"

/* Longest wait for the rest of a frame whose first buffer is already used. */
#define GN_MERGE_WAIT_MS 1000
/* Interrupt waits are sliced so a lost interrupt costs latency, not a hang. */
#define GN_IRQ_SLICE_MS  10

void gn_kick(struct guest_net *g, struct gn_queue *q)
{
    q->kicks++;
    if (q->kick_fd >= 0) {
        uint64_t one = 1;
        if (write(q->kick_fd, &one, sizeof(one)) == sizeof(one))
            return;
    }
    uint16_t v = htole16(q->idx);
    int rc = g->t->ops->region_write(g->t, q->notify_region, q->notify_off, &v, sizeof(v));
    if (rc < 0)
        LOG_W("guest_net: doorbell of queue %u: %s", q->idx, strerror(-rc));
}

static void publish(struct guest_net *g, struct gn_queue *q)
{
    if (vfe_vring_publish(&q->vr))
        gn_kick(g, q);
}

int gn_rx_post(struct gn_queue *q, uint16_t slot)
{
    struct vfe_sg sg = { q->buf_iova + (uint64_t)slot * q->buf_size, q->buf_size };
    return vfe_vring_add(&q->vr, &sg, 0, 1, gn_slot_cookie(slot));
}

static bool has_used(struct gn_queue *q)
{
    uint16_t idx = le16toh(__atomic_load_n(&q->vr.used->idx, __ATOMIC_ACQUIRE));
    return idx != q->vr.last_used;
}

void gn_wait_used(struct guest_net *g, struct gn_queue *q, int ms)
{
    if (ms <= 0)
        return;
    if (q->irq_fd < 0) {
        struct timespec pause = { 0, 100 * 1000 };
        nanosleep(&pause, NULL);
        return;
    }
    vfe_vring_enable_cb(&q->vr, true);
    if (has_used(q))
        return;
    struct pollfd p = { .fd = q->irq_fd, .events = POLLIN };
    if (poll(&p, 1, ms < GN_IRQ_SLICE_MS ? ms : GN_IRQ_SLICE_MS) > 0) {
        uint64_t v;
        if (read(q->irq_fd, &v, sizeof(v)) == sizeof(v))
            q->irqs += v;
    }
}

static struct gn_queue *pair_queue(struct guest_net *g, unsigned pair, bool tx)
{
    if (pair >= g->o.pairs)
        return NULL;
    struct gn_queue *q = &g->q[2 * pair + tx];
    return q->ready ? q : NULL;
}

int guest_net_reclaim_tx(struct guest_net *g, unsigned pair)
{
    struct gn_queue *q = pair_queue(g, pair, true);
    if (!q)
        return -EINVAL;
    int n = 0;
    void *c;
    while ((c = vfe_vring_get_used(&q->vr, NULL))) {
        n++;
        if (c == GN_RAW_COOKIE)
            continue;
        uintptr_t slot = gn_cookie_slot(c);
        if (slot < q->vr.size && q->nfree < q->vr.size)
            q->free_slots[q->nfree++] = (uint16_t)slot;
    }
    return n;
}

int guest_net_send(struct guest_net *g, unsigned pair, const void *frame, size_t len)
{
    struct gn_queue *q = pair_queue(g, pair, true);
    if (!q || !frame || len == 0 || len > q->buf_size - GUEST_NET_HDR_LEN)
        return -EINVAL;
    guest_net_reclaim_tx(g, pair);
    if (q->nfree == 0)
        return -ENOSPC;
    uint16_t slot = q->free_slots[--q->nfree];
    uint8_t *b = q->buf_va + (size_t)slot * q->buf_size;
    memset(b, 0, GUEST_NET_HDR_LEN);   /* no offloads: flags 0, GSO_NONE */
    memcpy(b + GUEST_NET_HDR_LEN, frame, len);
    struct vfe_sg sg = { q->buf_iova + (uint64_t)slot * q->buf_size, (uint32_t)(GUEST_NET_HDR_LEN + len) };
    int rc = vfe_vring_add(&q->vr, &sg, 1, 0, gn_slot_cookie(slot));
    if (rc < 0) {
        q->free_slots[q->nfree++] = slot;
        return rc;
    }
    publish(g, q);
    return 0;
}

int guest_net_send_raw_desc(struct guest_net *g, unsigned pair, uint64_t iova, uint32_t len)
{
    struct gn_queue *q = pair_queue(g, pair, true);
    if (!q)
        return -EINVAL;
    struct vfe_sg sg = { iova, len };
    int rc = vfe_vring_add(&q->vr, &sg, 1, 0, GN_RAW_COOKIE);
    if (rc == 0)
        publish(g, q);
    return rc;
}

/* Slot of an RX completion, or -1 (logged) when the device returned nonsense. */
static int rx_slot(struct gn_queue *q, void *c, uint32_t len)
{
    uintptr_t slot = gn_cookie_slot(c);
    if (slot >= q->vr.size) {
        LOG_W("guest_net: rx queue %u returned a foreign chain", q->idx);
        return -1;
    }
    if (len > q->buf_size) {
        LOG_W("guest_net: rx queue %u: used length %u beyond the %u-byte buffer", q->idx, len, q->buf_size);
        gn_rx_post(q, (uint16_t)slot);
        return -1;
    }
    return (int)slot;
}

static void *next_used(struct guest_net *g, struct gn_queue *q, uint32_t *len, int ms)
{
    long deadline = gn_now_ms() + ms;
    for (;;) {
        void *c = vfe_vring_get_used(&q->vr, len);
        long left = deadline - gn_now_ms();
        if (c || left <= 0)
            return c;
        gn_wait_used(g, q, (int)left);
    }
}

/* One received frame starting at first buffer `slot`; every buffer is reposted. */
static int rx_frame(struct guest_net *g, struct gn_queue *q, int slot, uint32_t len, uint8_t *out, size_t cap)
{
    const uint8_t *b = q->buf_va + (size_t)slot * q->buf_size;
    if (len < GUEST_NET_HDR_LEN) {
        LOG_W("guest_net: rx queue %u: %u bytes, shorter than the header", q->idx, len);
        gn_rx_post(q, (uint16_t)slot);
        publish(g, q);
        return -EPROTO;
    }
    struct virtio_net_hdr_v1 h;
    memcpy(&h, b, sizeof(h));
    unsigned nbuf = g->o.mrg_rxbuf ? le16toh(h.num_buffers) : 1;
    if (nbuf == 0 || nbuf > q->vr.size) {
        LOG_W("guest_net: rx queue %u: num_buffers %u", q->idx, nbuf);
        gn_rx_post(q, (uint16_t)slot);
        publish(g, q);
        return -EPROTO;
    }
    size_t total = 0;
    int rc = 0;
    const uint8_t *data = b + GUEST_NET_HDR_LEN;
    size_t dlen = len - GUEST_NET_HDR_LEN;
    for (unsigned i = 0;;) {
        if (total < cap)
            memcpy(out + total, data, dlen < cap - total ? dlen : cap - total);
        total += dlen;
        gn_rx_post(q, (uint16_t)slot);
        if (++i == nbuf)
            break;
        void *c = next_used(g, q, &len, GN_MERGE_WAIT_MS);
        if (!c) {
            LOG_W("guest_net: rx queue %u: frame promised %u buffers, got %u", q->idx, nbuf, i);
            rc = -EPROTO;
            break;
        }
        if ((slot = rx_slot(q, c, len)) < 0) {
            rc = -EPROTO;
            break;
        }
        data = q->buf_va + (size_t)slot * q->buf_size;
        dlen = len;
    }
    publish(g, q);
    if (rc < 0)
        return rc;
    if (total > cap)
        return -EMSGSIZE;
    return (int)total;
}

int guest_net_recv(struct guest_net *g, unsigned pair, void *buf, size_t cap, int timeout_ms)
{
    struct gn_queue *q = pair_queue(g, pair, false);
    if (!q || (!buf && cap))
        return -EINVAL;
    long deadline = gn_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint32_t len = 0;
        void *c = next_used(g, q, &len, (int)(deadline - gn_now_ms()));
        if (!c)
            return -ETIMEDOUT;
        int slot = rx_slot(q, c, len);
        if (slot >= 0)
            return rx_frame(g, q, slot, len, buf, cap);
        publish(g, q);
    }
}

int guest_net_ctrl(struct guest_net *g, uint8_t cls, uint8_t cmd, const void *data, size_t len, int timeout_ms)
{
    struct gn_queue *q = g->has_ctrl && g->ctrl.ready ? &g->ctrl : NULL;
    if (!q)
        return -ENOTSUP;
    if (g->ctrl_broken)
        return -EIO;   /* an earlier command never completed */
    if ((len && !data) || len > GN_CTRL_ACK - 2)
        return -EINVAL;
    g->ctrl_buf[0] = cls;
    g->ctrl_buf[1] = cmd;
    if (len)
        memcpy(g->ctrl_buf + 2, data, len);
    g->ctrl_buf[GN_CTRL_ACK] = 0xff;
    struct vfe_sg sg[2] = { { g->ctrl_iova, (uint32_t)(2 + len) }, { g->ctrl_iova + GN_CTRL_ACK, 1 } };
    int rc = vfe_vring_add(&q->vr, sg, 1, 1, g->ctrl_buf);
    if (rc < 0)
        return rc;
    publish(g, q);
    uint32_t got = 0;
    void *c = next_used(g, q, &got, timeout_ms);
    if (!c) {
        g->ctrl_broken = true;
        return -ETIMEDOUT;
    }
    uint8_t ack = __atomic_load_n(&g->ctrl_buf[GN_CTRL_ACK], __ATOMIC_RELAXED);
    if (got < 1 || ack != VIRTIO_NET_OK) {
        LOG_D("guest_net: ctrl class %u command %u: ack %u, %u bytes", cls, cmd, ack, got);
        return -EIO;
    }
    return 0;
}
