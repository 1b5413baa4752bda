/* virtio-net device of one function: TX to the switch, RX from it. */
#include "sim/net/net_dev.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "lib/log/vfe_log.h"
#include "sim/net/l2_switch.h"
#include "sim/net/net_priv.h"

bool sim_net_has_feature(const struct sim_fn *fn, unsigned bit)
{
    return (fn->driver_features >> bit) & 1;
}

size_t sim_net_hdr_len(const struct sim_fn *fn)
{
    if (sim_net_has_feature(fn, VIRTIO_F_VERSION_1) || sim_net_has_feature(fn, VIRTIO_NET_F_MRG_RXBUF))
        return sizeof(struct virtio_net_hdr_v1);
    return sizeof(struct virtio_net_hdr);
}

bool sim_net_fn_can_fetch(const struct sim_fn *fn)
{
    if (!(fn->status & VIRTIO_CONFIG_S_DRIVER_OK) || (fn->status & VIRTIO_CONFIG_S_NEEDS_RESET))
        return false;
    if (fn->removed || fn->stopped || fn->dma_stalled)
        return false;
    if (fn->mig_state == SIM_MIG_QUIESCED || fn->mig_state == SIM_MIG_FREEZED)
        return false;
    return sim_fn_dma_allowed(fn);
}

int sim_net_ctrl_index(const struct sim_fn *fn)
{
    if (fn->is_pf || !sim_net_has_feature(fn, VIRTIO_NET_F_CTRL_VQ))
        return -1;
    unsigned pairs = 1;
    if (sim_net_has_feature(fn, VIRTIO_NET_F_MQ))
        pairs = le16toh(fn->net_cfg.max_virtqueue_pairs);
    if (pairs == 0 || 2 * pairs >= fn->num_queues || 2 * pairs >= SIM_MAX_QUEUES)
        return -1;
    return (int)(2 * pairs);
}

static void resume_cb(struct ev_loop *loop, ev_timer *w, int revents);

void sim_net_fn_init(struct sim_fn *fn)
{
    fn->active_pairs = 1;
    fn->rx_mode = 0;
}

/* The descriptor scratch (42 KiB) comes with a function's first queue work,
 * not with the function: 4096 idle VFs would hold 170 MB of it. */
struct net_priv *sim_net_priv_get(struct sim_fn *fn)
{
    if (fn->net_priv)
        return fn->net_priv;
    struct net_priv *p = calloc(1, sizeof(*p));
    if (!p) {
        LOG_E("%s: out of memory for the net device", fn->bdf);
        return NULL;
    }
    p->fn = fn;
    ev_timer_init(&p->resume, resume_cb, 0., 0.);
    p->resume.data = p;
    fn->net_priv = p;
    return p;
}

void sim_net_fn_fini(struct sim_fn *fn)
{
    struct net_priv *p = fn->net_priv;
    if (fn->sim && fn->sim->sw)
        sim_sw_forget_port(fn->sim, fn);
    if (!p)
        return;
    if (fn->sim && fn->sim->loop)
        ev_timer_stop(fn->sim->loop, &p->resume);
    free(p);
    fn->net_priv = NULL;
}

void sim_net_reset(struct sim_fn *fn)
{
    struct net_priv *p = fn->net_priv;
    if (p) {
        p->tx_pending = 0;
        if (fn->sim && fn->sim->loop)
            ev_timer_stop(fn->sim->loop, &p->resume);
    }
    for (unsigned i = 0; i < fn->num_queues && i < SIM_MAX_QUEUES; i++) {
        if (fn->is_pf && i == fn->admin_queue_index)
            continue;
        fn->queues[i].last_avail = 0;
        fn->queues[i].used_idx = 0;
        fn->queues[i].broken = false;
    }
    fn->active_pairs = 1;
    fn->rx_mode = 0;
}

static void schedule_resume(struct net_priv *p, unsigned qidx)
{
    struct sim_fn *fn = p->fn;
    p->tx_pending |= 1ull << qidx;
    if (fn->sim && fn->sim->loop && !ev_is_active(&p->resume)) {
        ev_timer_set(&p->resume, 0., 0.);
        ev_timer_start(fn->sim->loop, &p->resume);
    }
}

/* Strip the header of one TX chain and hand the frame to the switch. */
static void tx_one(struct sim_fn *fn, struct net_priv *p, struct sim_queue *q)
{
    const struct vq_elem *e = &p->tx_elem;
    size_t hdr = sim_net_hdr_len(fn);

    if (e->out_len < hdr + ETH_HDR_LEN || e->out_len > hdr + SIM_MAX_FRAME) {
        LOG_D("%s: tx queue %u: bad frame length %llu", fn->bdf, q->index,
              (unsigned long long)e->out_len);
        fn->ctr.tx_drops++;
        return;
    }
    size_t flen = e->out_len - hdr;
    long n = sim_vq_gather(fn, e, hdr, p->frame, flen);
    if (n != (long)flen) {
        fn->ctr.tx_drops++;
        return;
    }
    fn->ctr.tx_packets++;
    fn->ctr.tx_bytes += flen;
    if (fn->sim && fn->sim->sw)
        sim_sw_input(fn->sim, fn, p->frame, flen, q->index / 2);
}

/* Process at most NET_TX_BATCH chains of TX queue q. */
static void tx_process(struct sim_fn *fn, struct sim_queue *q)
{
    struct net_priv *p = sim_net_priv_get(fn);
    unsigned done = 0;
    uint16_t nused = 0;

    if (!p)
        return;
    p->tx_pending &= ~(1ull << q->index);
    for (;;) {
        if (!sim_net_fn_can_fetch(fn) || !sim_vq_ready(q))
            break;
        if (done >= NET_TX_BATCH) {
            schedule_resume(p, q->index);
            break;
        }
        int rc = sim_vq_pop(q, &p->tx_elem);
        if (rc < 0)
            break;
        if (rc == 0) {
            if (sim_vq_flush(q, nused) < 0)
                return;
            nused = 0;
            if (sim_vq_enable_kick(q))
                continue;
            break;
        }
        done++;
        tx_one(fn, p, q);
        if (sim_vq_fill(q, nused, p->tx_elem.head, 0) < 0)
            break;
        if (++nused >= q->size) {
            if (sim_vq_flush(q, nused) < 0)
                return;
            nused = 0;
        }
    }
    sim_vq_flush(q, nused);
}

static void resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct net_priv *p = w->data;
    uint64_t pend = p->tx_pending;
    for (unsigned i = 0; i < SIM_MAX_QUEUES; i++)
        if (pend & (1ull << i))
            tx_process(p->fn, &p->fn->queues[i]);
}

void sim_net_queue_notify(struct sim_fn *fn, uint16_t qidx)
{
    if (qidx >= fn->num_queues || qidx >= SIM_MAX_QUEUES) {
        LOG_D("%s: notify of unknown queue %u", fn->bdf, qidx);
        return;
    }
    struct sim_queue *q = &fn->queues[qidx];
    if (!q->fn)
        q->fn = fn;
    if (!sim_net_fn_can_fetch(fn) || !sim_vq_ready(q))
        return;   /* sim_net_resume() picks the work up later */
    if ((int)qidx == sim_net_ctrl_index(fn))
        sim_net_ctrl_process(fn, q);
    else if (qidx & 1)
        tx_process(fn, q);
    /* RX kicks only mean "buffers added": frames are never queued in the sim. */
}

void sim_net_resume(struct sim_fn *fn)
{
    int ctrl = sim_net_ctrl_index(fn);
    for (unsigned i = 0; i < fn->num_queues && i < SIM_MAX_QUEUES; i++) {
        if (fn->is_pf && i == fn->admin_queue_index)
            continue;
        if ((int)i == ctrl || (i & 1))
            sim_net_queue_notify(fn, (uint16_t)i);
    }
}

unsigned sim_net_l2_hash(const uint8_t *frame, size_t len)
{
    uint32_t h = 2166136261u;   /* FNV-1a over destination + source MAC */
    for (size_t i = 0; i < 12 && i < len; i++) {
        h ^= frame[i];
        h *= 16777619u;
    }
    return h;
}

/* Byte `off` of the writable part of e: its IOVA. */
static int elem_in_iova(const struct vq_elem *e, uint64_t off, uint64_t *iova)
{
    for (unsigned i = e->nout; i < (unsigned)e->nout + e->nin; i++) {
        if (off < e->segs[i].len) {
            *iova = e->segs[i].iova + off;
            return 0;
        }
        off -= e->segs[i].len;
    }
    return -ENOSPC;
}

/* Write bytes [off, off+n) of the stream hdr||frame at the start of e's
 * writable part. */
static int scatter_stream(struct sim_fn *fn, const struct vq_elem *e, const uint8_t *hdr,
                          size_t hlen, const uint8_t *frame, size_t off, size_t n)
{
    size_t pos = 0;
    if (off < hlen) {
        size_t k = hlen - off < n ? hlen - off : n;
        if (sim_vq_scatter(fn, e, 0, hdr + off, k) != (long)k)
            return -EFAULT;
        pos = k;
        off += k;
        n -= k;
    }
    if (n && sim_vq_scatter(fn, e, pos, frame + (off - hlen), n) != (long)n)
        return -EFAULT;
    return 0;
}

int sim_net_deliver(struct sim_fn *fn, const uint8_t *frame, size_t len, unsigned pair)
{
    struct net_priv *p = sim_net_fn_can_fetch(fn) ? sim_net_priv_get(fn) : NULL;
    if (!p || len < ETH_HDR_LEN || len > SIM_MAX_FRAME) {
        fn->ctr.rx_drops++;
        return -EAGAIN;
    }
    unsigned pairs = 1;
    if (sim_net_has_feature(fn, VIRTIO_NET_F_MQ) && fn->active_pairs > 1)
        pairs = fn->active_pairs;
    unsigned qidx = 2 * (pair % pairs);
    if (qidx >= fn->num_queues) {
        fn->ctr.rx_drops++;
        return -EINVAL;
    }
    struct sim_queue *q = &fn->queues[qidx];
    if (!q->fn)
        q->fn = fn;
    if (!sim_vq_ready(q)) {
        fn->ctr.rx_drops++;
        return -EAGAIN;
    }

    struct virtio_net_hdr_v1 h;
    memset(&h, 0, sizeof(h));
    h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
    h.num_buffers = htole16(1);
    size_t hlen = sim_net_hdr_len(fn);
    size_t total = hlen + len;
    bool mrg = sim_net_has_feature(fn, VIRTIO_NET_F_MRG_RXBUF);
    struct vq_elem *e = &p->rx_elem;
    uint16_t n = 0;
    uint64_t nb_iova[2] = { 0, 0 };   /* where num_buffers lives in the first chain */
    size_t off = 0;
    int rc = 0;

    while (off < total) {
        rc = sim_vq_pop(q, e);
        if (rc <= 0) {
            rc = rc < 0 ? rc : -ENOBUFS;
            goto drop;
        }
        n++;
        if (!mrg && e->in_len < total) {
            rc = -EMSGSIZE;
            goto drop;
        }
        if (e->in_len == 0 || (off == 0 && e->in_len < hlen)) {
            rc = -EMSGSIZE;   /* the header must sit in the first chain */
            goto drop;
        }
        size_t chunk = e->in_len < total - off ? (size_t)e->in_len : total - off;
        if (off == 0 && mrg) {
            size_t nb = offsetof(struct virtio_net_hdr_v1, num_buffers);
            if (elem_in_iova(e, nb, &nb_iova[0]) < 0 || elem_in_iova(e, nb + 1, &nb_iova[1]) < 0) {
                rc = -EMSGSIZE;
                goto drop;
            }
        }
        rc = scatter_stream(fn, e, (const uint8_t *)&h, hlen, frame, off, chunk);
        if (rc == 0)
            rc = sim_vq_fill(q, n - 1, e->head, (uint32_t)chunk);
        if (rc < 0)
            goto drop;
        off += chunk;
    }
    if (mrg && n > 1) {
        uint16_t v = htole16(n);
        const uint8_t *b = (const uint8_t *)&v;
        if (sim_dma_write(fn, nb_iova[0], &b[0], 1) < 0 || sim_dma_write(fn, nb_iova[1], &b[1], 1) < 0) {
            rc = -EFAULT;
            goto drop;
        }
    }
    rc = sim_vq_flush(q, n);
    if (rc < 0)
        goto drop;
    fn->ctr.rx_packets++;
    fn->ctr.rx_bytes += len;
    return 0;

drop:
    if (!q->broken)
        sim_vq_unpop(q, n);
    fn->ctr.rx_drops++;
    LOG_D("%s: rx drop on queue %u (%d)", fn->bdf, qidx, rc);
    return rc;
}

int sim_net_announce(struct sim_fn *vf, const uint8_t mac[6])
{
    if (!sim_net_fn_can_fetch(vf))
        return -EBUSY;   /* a device transmits only while it runs */
    return sim_sw_announce(vf->sim, vf, mac);
}
