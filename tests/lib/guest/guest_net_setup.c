/* guest_net: bring-up (virtio 1.3 section 3.1.1) and teardown. */
#include "tests/lib/guest/guest_net_priv.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "lib/log/vfe_log.h"

#define PAGE 4096u

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static void opts_defaults(struct guest_net_opts *o, const struct guest_net_opts *in)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (o->pairs == 0)
        o->pairs = 1;
    if (o->ring_size == 0)
        o->ring_size = 256;
    if (o->rx_buf_size == 0)
        o->rx_buf_size = o->mrg_rxbuf ? 2048 : GUEST_NET_HDR_LEN + GUEST_NET_MAX_FRAME;
    if (o->tx_buf_size == 0)
        o->tx_buf_size = GUEST_NET_HDR_LEN + GUEST_NET_MAX_FRAME;
    o->rx_buf_size = (uint32_t)align_up(o->rx_buf_size, 64);
    o->tx_buf_size = (uint32_t)align_up(o->tx_buf_size, 64);
}

static bool opts_valid(const struct guest_net_opts *o)
{
    uint16_t n = o->ring_size;
    return o->pairs <= GUEST_NET_MAX_PAIRS && (n & (n - 1)) == 0 && n <= 32768 &&
           o->rx_buf_size >= 64 && o->tx_buf_size >= 64 &&
           o->rx_buf_size <= (1u << 20) && o->tx_buf_size <= (1u << 20);
}

static size_t queue_bytes(uint16_t size, uint32_t buf_size)
{
    return align_up(vfe_vring_mem_size(size), PAGE) + align_up((size_t)size * buf_size, PAGE);
}

size_t guest_net_mem_needed(const struct guest_net_opts *in)
{
    struct guest_net_opts o;
    opts_defaults(&o, in);
    size_t n = o.pairs * (queue_bytes(o.ring_size, o.rx_buf_size) + queue_bytes(o.ring_size, o.tx_buf_size));
    return n + queue_bytes(GN_CTRL_RING, 0) + GN_CTRL_BUF;
}

static int gn_alloc(struct guest_net *g, size_t len, uint8_t **va, uint64_t *iova)
{
    size_t off = align_up(g->alloc_off, PAGE);
    if (off > g->gm->size || len > g->gm->size - off)
        return -ENOMEM;
    g->alloc_off = off + len;
    *va = (uint8_t *)g->gm->va + off;
    *iova = g->iova_base + off;
    return 0;
}

long gn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

struct gn_queue *gn_queue_of(struct guest_net *g, uint16_t qidx)
{
    if (qidx < 2 * g->o.pairs)
        return g->q[qidx].ready ? &g->q[qidx] : NULL;
    if (g->has_ctrl && qidx == g->ctrl_idx)
        return g->ctrl.ready ? &g->ctrl : NULL;
    return NULL;
}

static uint16_t vector_of(struct guest_net *g, uint16_t qidx)
{
    return (unsigned)qidx + 1 < g->nvec ? (uint16_t)(qidx + 1) : VFE_VIRTIO_MSI_NO_VECTOR;
}

static int setup_queue(struct guest_net *g, struct gn_queue *q, uint16_t qidx, uint16_t size,
                       uint32_t buf_size, bool tx)
{
    uint8_t *ring;
    uint64_t ring_iova;
    q->idx = qidx;
    int rc = gn_alloc(g, vfe_vring_mem_size(size), &ring, &ring_iova);
    if (rc == 0 && buf_size)
        rc = gn_alloc(g, (size_t)size * buf_size, &q->buf_va, &q->buf_iova);
    if (rc < 0)
        return rc;
    q->buf_size = buf_size;
    if ((rc = vfe_vring_init(&q->vr, size, ring, ring_iova, g->o.event_idx)) < 0)
        return rc;
    if (tx) {
        q->free_slots = calloc(size, sizeof(*q->free_slots));
        if (!q->free_slots)
            return -ENOMEM;
        for (uint16_t i = 0; i < size; i++)
            q->free_slots[i] = (uint16_t)(size - 1 - i);
        q->nfree = size;
    }
    uint16_t vec = vector_of(g, qidx);
    rc = vfe_vpci_queue_setup(&g->vp, qidx, size, q->vr.desc_iova, q->vr.avail_iova, q->vr.used_iova, vec);
    if (rc == 0)
        rc = vfe_vpci_queue_notify_addr(&g->vp, qidx, &q->notify_region, &q->notify_off);
    if (rc < 0) {
        LOG_W("guest_net: queue %u setup failed: %s", qidx, strerror(-rc));
        return rc;
    }
    if (g->o.use_ioeventfd && g->t->ops->ioeventfd) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd >= 0 && g->t->ops->ioeventfd(g->t, q->notify_region, q->notify_off, 2, qidx, fd) == 0) {
            q->kick_fd = fd;
        } else {
            LOG_I("guest_net: queue %u: no ioeventfd, ringing the doorbell directly", qidx);
            if (fd >= 0)
                close(fd);
        }
    }
    if ((rc = vfe_vpci_queue_enable(&g->vp, qidx)) < 0)
        return rc;
    q->ready = true;
    return 0;
}

static void teardown_queue(struct guest_net *g, struct gn_queue *q)
{
    if (q->kick_fd >= 0) {
        g->t->ops->ioeventfd(g->t, q->notify_region, q->notify_off, 2, q->idx, -1);
        close(q->kick_fd);
    }
    if (q->irq_fd >= 0)
        close(q->irq_fd);
    vfe_vring_fini(&q->vr);
    free(q->free_slots);
    memset(q, 0, sizeof(*q));
    q->kick_fd = q->irq_fd = -1;
}

/* Eventfds for vector 0 (config) and q+1 per queue, attached in one call. */
static int attach_irqs(struct guest_net *g)
{
    unsigned want = (g->has_ctrl ? g->ctrl_idx : 2 * g->o.pairs - 1) + 2u;
    if (g->vp.msix_vectors == 0)
        return -ENOTSUP;
    g->nvec = want < g->vp.msix_vectors ? want : g->vp.msix_vectors;
    int *fds = malloc(g->nvec * sizeof(int));
    if (!fds)
        return -ENOMEM;
    for (unsigned v = 0; v < g->nvec; v++)
        fds[v] = -1;
    int rc = 0;
    for (unsigned v = 0; v < g->nvec && rc == 0; v++) {
        bool used = v == 0 || v - 1 < 2 * g->o.pairs || (g->has_ctrl && v - 1 == g->ctrl_idx);
        if (used && (fds[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = g->t->ops->set_irqs(g->t, VFIO_PCI_MSIX_IRQ_INDEX, 0, g->nvec, fds);
    if (rc == 0) {
        g->cfg_irq_fd = fds[0];
        for (unsigned v = 1; v < g->nvec; v++) {
            struct gn_queue *q = v - 1 < 2 * g->o.pairs ? &g->q[v - 1]
                                 : (g->has_ctrl && v - 1 == g->ctrl_idx) ? &g->ctrl : NULL;
            if (q)
                q->irq_fd = fds[v];
        }
    } else {
        for (unsigned v = 0; v < g->nvec; v++)
            if (fds[v] >= 0)
                close(fds[v]);
        g->nvec = 0;
    }
    free(fds);
    return rc;
}

static void detach_irqs(struct guest_net *g)
{
    if (!g->nvec)
        return;
    int *fds = malloc(g->nvec * sizeof(int));
    if (fds) {
        for (unsigned v = 0; v < g->nvec; v++)
            fds[v] = -1;
        g->t->ops->set_irqs(g->t, VFIO_PCI_MSIX_IRQ_INDEX, 0, g->nvec, fds);
        free(fds);
    }
    g->nvec = 0;
}

static uint64_t want_features(const struct guest_net *g, uint64_t offered, uint64_t *required)
{
    uint64_t req = 1ull << VIRTIO_F_VERSION_1;
    if (g->o.pairs > 1)
        req |= 1ull << VIRTIO_NET_F_MQ | 1ull << VIRTIO_NET_F_CTRL_VQ;
    if (g->o.mrg_rxbuf)
        req |= 1ull << VIRTIO_NET_F_MRG_RXBUF;
    if (g->o.event_idx)
        req |= 1ull << VIRTIO_RING_F_EVENT_IDX;
    /* A device offering ACCESS_PLATFORM may refuse a driver that ignores it. */
    uint64_t opt = 1ull << VIRTIO_F_ACCESS_PLATFORM | 1ull << VIRTIO_NET_F_MAC |
                   1ull << VIRTIO_NET_F_MTU | 1ull << VIRTIO_NET_F_STATUS;
    *required = req;
    return req | (opt & offered);
}

static int read_net_config(struct guest_net *g)
{
    struct virtio_net_config c;
    size_t len = g->vp.device.length < sizeof(c) ? g->vp.device.length : sizeof(c);
    memset(&c, 0, sizeof(c));
    int rc = vfe_vpci_read_device_cfg(&g->vp, 0, &c, len);
    if (rc < 0)
        return rc;
    static const uint8_t fallback[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
    memcpy(g->mac, (g->features >> VIRTIO_NET_F_MAC) & 1 ? c.mac : fallback, 6);
    if ((g->features >> VIRTIO_NET_F_MTU) & 1)
        g->mtu = le16toh(c.mtu);
    g->max_pairs = 1;
    if ((g->features >> VIRTIO_NET_F_MQ) & 1) {
        g->max_pairs = le16toh(c.max_virtqueue_pairs);
        if (g->max_pairs < 1 || g->max_pairs > 0x8000) {
            LOG_W("guest_net: device reports %u queue pairs", g->max_pairs);
            return -EPROTO;
        }
    }
    if (g->o.pairs > g->max_pairs) {
        LOG_W("guest_net: %u pairs asked, device has %u", g->o.pairs, g->max_pairs);
        return -EINVAL;
    }
    return 0;
}

static int fill_rx(struct guest_net *g)
{
    for (unsigned p = 0; p < g->o.pairs; p++) {
        struct gn_queue *q = &g->q[2 * p];
        for (uint16_t s = 0; s < q->vr.size; s++) {
            int rc = gn_rx_post(q, s);
            if (rc < 0)
                return rc;
        }
        vfe_vring_publish(&q->vr);   /* no notification before DRIVER_OK */
    }
    return 0;
}

static int bring_up(struct guest_net *g)
{
    struct vfe_transport *t = g->t;
    int rc = vfe_vpci_init(&g->vp, t);
    if (rc < 0)
        return rc;
    g->vp_ok = true;
    if (guest_net_mem_needed(&g->o) > g->gm->size) {
        LOG_W("guest_net: %zu bytes of guest memory needed, %zu given", guest_net_mem_needed(&g->o),
              g->gm->size);
        return -ENOMEM;
    }
    if ((rc = t->ops->dma_map(t, g->iova_base, g->gm->size, g->gm->fd, 0, VFE_DMA_READ | VFE_DMA_WRITE)) < 0)
        return rc;
    g->dma_mapped = true;
    int tmo = t->timeout_ms > 0 ? t->timeout_ms : VFE_TRANSPORT_TIMEOUT_MS;
    if ((rc = vfe_vpci_enable_bus_master(&g->vp)) < 0 || (rc = vfe_vpci_reset(&g->vp)) < 0 ||
        (rc = vfe_vpci_reset_wait(&g->vp, tmo)) < 0)
        return rc;
    if ((rc = vfe_vpci_add_status(&g->vp, VIRTIO_CONFIG_S_ACKNOWLEDGE)) < 0 ||
        (rc = vfe_vpci_add_status(&g->vp, VIRTIO_CONFIG_S_DRIVER)) < 0)
        return rc;

    uint64_t offered, required;
    if ((rc = vfe_vpci_get_features(&g->vp, &offered)) < 0)
        return rc;
    uint64_t want = want_features(g, offered, &required);
    if (required & ~offered) {
        LOG_W("guest_net: device lacks features %#llx", (unsigned long long)(required & ~offered));
        return -ENOTSUP;
    }
    if ((rc = vfe_vpci_negotiate(&g->vp, want)) < 0)
        return rc;
    g->features = want;
    if ((rc = read_net_config(g)) < 0)
        return rc;

    g->has_ctrl = (want >> VIRTIO_NET_F_CTRL_VQ) & 1;
    g->ctrl_idx = (uint16_t)(2 * g->max_pairs);
    unsigned last = g->has_ctrl ? g->ctrl_idx : 2 * g->o.pairs - 1;
    if (last >= g->vp.num_queues) {
        LOG_W("guest_net: queue %u needed, device has %u", last, g->vp.num_queues);
        return -EPROTO;
    }
    if (g->o.use_irq) {
        if ((rc = attach_irqs(g)) < 0 || (rc = vfe_vpci_msix_enable(&g->vp)) < 0 ||
            (rc = vfe_vpci_set_config_vector(&g->vp, 0)) < 0)
            return rc;
    } else if ((rc = vfe_vpci_set_config_vector(&g->vp, VFE_VIRTIO_MSI_NO_VECTOR)) < 0) {
        return rc;
    }
    for (unsigned i = 0; i < 2 * g->o.pairs; i++) {
        bool tx = i & 1;
        rc = setup_queue(g, &g->q[i], (uint16_t)i, g->o.ring_size, tx ? g->o.tx_buf_size : g->o.rx_buf_size, tx);
        if (rc < 0)
            return rc;
    }
    if (g->has_ctrl) {
        uint16_t max = 0;
        if ((rc = vfe_vpci_queue_max(&g->vp, g->ctrl_idx, &max)) < 0)
            return rc;
        uint16_t size = max < GN_CTRL_RING ? max : GN_CTRL_RING;
        while (size & (size - 1))
            size &= (uint16_t)(size - 1);
        if ((rc = setup_queue(g, &g->ctrl, g->ctrl_idx, size, 0, false)) < 0 ||
            (rc = gn_alloc(g, GN_CTRL_BUF, &g->ctrl_buf, &g->ctrl_iova)) < 0)
            return rc;
    }
    if ((rc = fill_rx(g)) < 0 || (rc = vfe_vpci_add_status(&g->vp, VIRTIO_CONFIG_S_DRIVER_OK)) < 0)
        return rc;
    for (unsigned p = 0; p < g->o.pairs; p++)
        gn_kick(g, &g->q[2 * p]);
    if (g->o.pairs > 1) {
        uint16_t n = htole16((uint16_t)g->o.pairs);
        rc = guest_net_ctrl(g, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &n, sizeof(n), tmo);
        if (rc < 0) {
            LOG_W("guest_net: device did not take %u queue pairs: %s", g->o.pairs, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

struct guest_net *guest_net_open(struct vfe_transport *t, struct guest_mem *gm, uint64_t iova_base,
                                 const struct guest_net_opts *o)
{
    if (!t || !gm || !gm->va || gm->fd < 0 || (iova_base & (PAGE - 1))) {
        errno = EINVAL;
        return NULL;
    }
    struct guest_net *g = calloc(1, sizeof(*g));
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    g->t = t;
    g->gm = gm;
    g->iova_base = iova_base;
    g->cfg_irq_fd = -1;
    for (unsigned i = 0; i < 2 * GUEST_NET_MAX_PAIRS; i++)
        g->q[i].irq_fd = g->q[i].kick_fd = -1;
    g->ctrl.irq_fd = g->ctrl.kick_fd = -1;
    opts_defaults(&g->o, o);
    if (!opts_valid(&g->o)) {
        free(g);
        errno = EINVAL;
        return NULL;
    }
    int rc = bring_up(g);
    if (rc < 0) {
        if (g->vp_ok)
            vfe_vpci_add_status(&g->vp, VIRTIO_CONFIG_S_FAILED);
        guest_net_close(g);
        errno = -rc;
        return NULL;
    }
    return g;
}

void guest_net_close(struct guest_net *g)
{
    if (!g)
        return;
    if (g->vp_ok && vfe_vpci_reset(&g->vp) == 0)
        vfe_vpci_reset_wait(&g->vp, g->t->timeout_ms > 0 ? g->t->timeout_ms : VFE_TRANSPORT_TIMEOUT_MS);
    detach_irqs(g);
    for (unsigned i = 0; i < 2 * GUEST_NET_MAX_PAIRS; i++)
        teardown_queue(g, &g->q[i]);
    teardown_queue(g, &g->ctrl);
    if (g->cfg_irq_fd >= 0)
        close(g->cfg_irq_fd);
    if (g->dma_mapped)
        g->t->ops->dma_unmap(g->t, g->iova_base, g->gm->size);
    free(g);
}

void guest_net_mac(const struct guest_net *g, uint8_t mac[6])
{
    memcpy(mac, g->mac, 6);
}

uint64_t guest_net_features(const struct guest_net *g)
{
    return g->features;
}

uint16_t guest_net_mtu(const struct guest_net *g)
{
    return g->mtu;
}

struct vfe_virtio_pci *guest_net_vpci(struct guest_net *g)
{
    return &g->vp;
}

int guest_net_status(struct guest_net *g)
{
    uint8_t st;
    int rc = vfe_vpci_get_status(&g->vp, &st);
    return rc < 0 ? rc : st;
}

static uint64_t drain(int fd)
{
    uint64_t v = 0;
    if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

uint64_t guest_net_irq_count(struct guest_net *g, uint16_t qidx)
{
    if (qidx == GUEST_NET_CONFIG_IRQ) {
        g->cfg_irqs += drain(g->cfg_irq_fd);
        return g->cfg_irqs;
    }
    struct gn_queue *q = gn_queue_of(g, qidx);
    if (!q)
        return 0;
    q->irqs += drain(q->irq_fd);
    return q->irqs;
}

uint64_t guest_net_kick_count(const struct guest_net *g, uint16_t qidx)
{
    if (qidx < 2 * g->o.pairs)
        return g->q[qidx].kicks;
    if (g->has_ctrl && qidx == g->ctrl_idx)
        return g->ctrl.kicks;
    return 0;
}
