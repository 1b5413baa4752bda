/* The device half of vDPA for one VF: maps, doorbells, vectors, admin start/stop. */
#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "lib/log/vfe_log.h"

const char *vdpa_vf_state_name(enum vdpa_vf_state s)
{
    static const char *const names[] = {"idle", "starting", "running", "stopping", "stopped"};
    return (unsigned)s < 5 ? names[s] : "?";
}

/* What listings show of the device, read once here (vdpa_vf_facts copies it). */
static void read_facts(struct vdpa_vf *v)
{
    struct vdpa_vf_facts n = {.msix = v->vp.msix_vectors, .mtu = 1500};
    uint16_t max = 0;
    bool ok = vfe_vpci_queue_max(&v->vp, 0, &max) == 0;
    if (ok)
        n.queue_size = max;
    uint8_t b[2];   /* struct virtio_net_config.mtu, little-endian */
    if (v->dev_features & (1ull << VIRTIO_NET_F_MTU)) {
        if (vfe_vpci_read_device_cfg(&v->vp, offsetof(struct virtio_net_config, mtu), b, sizeof(b)) == 0)
            n.mtu = (unsigned)b[0] | (unsigned)b[1] << 8;
        else
            ok = false;
    }
    v->facts = n;
    v->facts_read = ok;
}

struct vdpa_vf *vdpa_vf_probe(const struct vdpa_pf_ref *pf, uint16_t vf_num, struct vfe_transport *t, int *err,
                              const char **step)
{
    struct vdpa_vf *v = calloc(1, sizeof(*v));
    if (!v) {
        *err = -ENOMEM;
        return NULL;
    }
    if (pf)
        v->pf = *pf;
    v->direct = !pf || !pf->mig;
    ev_init(&v->dpoll, NULL);
    v->vf_num = vf_num;
    v->t = t;
    for (unsigned i = 0; i < VDPA_MAX_RINGS; i++)
        v->kick_set[i] = v->call_set[i] = false;
    ev_timer_init(&v->defer, vdpa_vf_defer_cb, 0., 0.);
    v->defer.data = v;
    const char *what = "virtio capabilities";
    uint8_t mac[6] = {0};
    uint16_t pairs = 1;
    int rc = vfe_vpci_init(&v->vp, t);
    if (rc == 0 && (what = "device features"))
        rc = vfe_vpci_get_features(&v->vp, &v->dev_features);
    if (rc == 0 && (what = "MAC address"))
        rc = vfe_vpci_read_device_cfg(&v->vp, offsetof(struct virtio_net_config, mac), mac, 6);
    if (rc == 0 && (v->dev_features & (1ull << VIRTIO_NET_F_MQ)) && (what = "queue pairs"))
        rc = vfe_vpci_read_device_cfg(&v->vp, offsetof(struct virtio_net_config, max_virtqueue_pairs), &pairs, 2);
    if (rc == 0 && (what = "reset"))
        rc = vfe_vpci_reset(&v->vp);
    if (rc == 0 && (what = "bus master enable"))   /* the VF does DMA once started (kernel VFIO leaves it off) */
        rc = vfe_vpci_enable_bus_master(&v->vp);
    if (rc == 0 && (what = "ring memory"))
        rc = vdpa_vf_alloc_rings(v, v->vp.num_queues);
    if (step)
        *step = what;
    if (rc < 0) {
        LOG_E("%s: VF bring-up failed at %s: %s", t->bdf, what, strerror(-rc));
        vdpa_vf_discard(v);
        *err = rc;
        return NULL;
    }
    read_facts(v);   /* after the features (MTU); a failed read is asked again later */
    memcpy(v->mac, mac, 6);
    v->max_pairs = pairs ? pairs : 1;
    if (v->direct) {
        /* without a control queue of our own the device uses one pair: the
         * front-end is not offered more (RSS and hash reports steer across pairs) */
        v->dev_features &= ~((1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_NET_F_RSS) |
                             (1ull << VIRTIO_NET_F_HASH_REPORT));
        v->max_pairs = 1;
    }
    v->num_queues = v->vp.num_queues;
    *err = 0;
    return v;
}

int vdpa_vf_attach(struct vdpa_vf *v, struct ev_loop *loop, const char *dma_domain)
{
    if (!(v->dom = vfe_dma_domain_join(dma_domain, v->t)))
        return errno ? -errno : -ENOMEM;
    v->loop = loop;
    if (v->direct)
        LOG_I("%s: direct mode: programmed through its own common configuration (no PF admin queue)", v->t->bdf);
    return 0;
}

void vdpa_vf_discard(struct vdpa_vf *v)
{
    if (!v)
        return;
    free(v->rings);
    free(v->maps);
    free(v);
}

struct vdpa_vf *vdpa_vf_open(struct ev_loop *loop, const struct vdpa_pf_ref *pf, uint16_t vf_num,
                             struct vfe_transport *t, const char *dma_domain)
{
    int rc;
    struct vdpa_vf *v = vdpa_vf_probe(pf, vf_num, t, &rc, NULL);
    if (v && (rc = vdpa_vf_attach(v, loop, dma_domain)) < 0) {
        LOG_E("%s: VF bring-up failed: DMA domain: %s", t->bdf, strerror(-rc));
        vdpa_vf_discard(v);
        v = NULL;
    }
    if (!v)
        errno = -rc;
    return v;
}

void vdpa_vf_close(struct vdpa_vf *v)
{
    if (!v)
        return;
    ev_timer_stop(v->loop, &v->defer);
    vdpa_direct_cancel(v);
    vdpa_vf_facts_cancel(v);
    for (uint16_t q = 0; q < VDPA_MAX_RINGS; q++) {
        if (v->kick_set[q])
            vdpa_vf_set_kick(v, q, -1);
        if (v->call_set[q])
            vdpa_vf_set_call(v, q, -1);
    }
    vdpa_vf_set_mem(v, NULL, 0);
    vfe_dma_domain_leave(v->dom, v->t);
    vdpa_vf_log_release(v);
    vfe_vpci_reset(&v->vp);   /* posted on vfio-user: the owner closes the transport next */
    vdpa_posted_unwatch(v);
    free(v->brings);
    free(v->rings);
    free(v->maps);
    free(v);
}

int vdpa_vf_maps_alloc(struct vdpa_vf *v)
{
    if (!v->maps && !(v->maps = calloc(VDPA_MAX_REGIONS, sizeof(*v->maps))))
        return -ENOMEM;
    return 0;
}

int vdpa_vf_alloc_rings(struct vdpa_vf *v, unsigned num_queues)
{
    unsigned n = num_queues < VDPA_MAX_RINGS ? num_queues : VDPA_MAX_RINGS;
    v->rings = calloc(n ? n : 1, sizeof(*v->rings));
    if (!v->rings)
        return -ENOMEM;
    v->nrings = n;
    return 0;
}

uint64_t vdpa_vf_device_features(const struct vdpa_vf *v) { return v->dev_features; }
void vdpa_vf_dma_domain(const struct vdpa_vf *v, unsigned *members, unsigned *maps)
{
    *members = vfe_dma_domain_members(v->dom);
    *maps = vfe_dma_domain_maps(v->dom);
}
uint16_t vdpa_vf_max_pairs(const struct vdpa_vf *v) { return v->max_pairs; }
uint16_t vdpa_vf_num_queues(const struct vdpa_vf *v) { return v->num_queues; }
/* Both reads of a refresh answered: the facts are kept if both succeeded. */
static void facts_settle(struct vdpa_vf *v)
{
    if (v->fq_size.pending || v->fq_mtu.pending)
        return;
    v->facts_read = !v->fq_failed;
}

static uint16_t le16_of(const void *data)
{
    const uint8_t *b = data;
    return (uint16_t)(b[0] | b[1] << 8);
}

static void facts_size_in(void *ctx, int err, const void *data, size_t len)
{
    struct vdpa_facts_read *r = ctx;
    struct vdpa_vf *v = r->v;
    r->pending = false;
    if (!err && len == 2 && le16_of(data))
        v->facts.queue_size = le16_of(data);
    else
        v->fq_failed = true;
    facts_settle(v);
}

static void facts_mtu_in(void *ctx, int err, const void *data, size_t len)
{
    struct vdpa_facts_read *r = ctx;
    struct vdpa_vf *v = r->v;
    r->pending = false;
    if (!err && len == 2)
        v->facts.mtu = le16_of(data);
    else
        v->fq_failed = true;
    facts_settle(v);
}

/* Ask the device for the facts not read yet, without waiting: the answers
 * are kept for the next call.  Kernel VFIO has no asynchronous read: its
 * reads are MMIO (no device round trip) and made here. */
static void facts_refresh(struct vdpa_vf *v)
{
    if (v->fq_size.pending || v->fq_mtu.pending)
        return;   /* asked already, not answered yet */
    const struct vfe_vpci_window *cc = &v->vp.common, *dc = &v->vp.device;
    uint32_t mtu_off = offsetof(struct virtio_net_config, mtu);
    bool want_mtu = v->dev_features & (1ull << VIRTIO_NET_F_MTU);
    v->facts.msix = v->vp.msix_vectors;   /* known without asking (an adopted VF has no probe's facts) */
    if (!v->facts.mtu)
        v->facts.mtu = 1500;
    if (vdpa_posted_watch(v) < 0 || !v->t->ops->region_read_async || !cc->present ||
        (want_mtu && (!dc->present || dc->length < mtu_off + 2))) {
        read_facts(v);
        return;
    }
    v->fq_failed = false;
    v->fq_size.v = v->fq_mtu.v = v;
    if (vfe_vpci_queue_select(&v->vp, 0) < 0 ||
        vfe_transport_read_async(v->t, cc->bar, (uint64_t)cc->offset + VFE_CC_Q_SIZE, 2, facts_size_in,
                                 &v->fq_size) < 0)
        return;   /* not asked: the next call tries again */
    v->fq_size.pending = true;
    if (want_mtu) {
        if (vfe_transport_read_async(v->t, dc->bar, (uint64_t)dc->offset + mtu_off, 2, facts_mtu_in, &v->fq_mtu) == 0)
            v->fq_mtu.pending = true;
        else
            v->fq_failed = true;
    }
}

void vdpa_vf_facts_cancel(struct vdpa_vf *v)
{
    if (v->fq_size.pending)
        vfe_transport_cancel_reads(v->t, &v->fq_size);
    if (v->fq_mtu.pending)
        vfe_transport_cancel_reads(v->t, &v->fq_mtu);
    v->fq_size.pending = v->fq_mtu.pending = false;
}

void vdpa_vf_facts(struct vdpa_vf *v, struct vdpa_vf_facts *f)
{
    if (!v->facts_read)
        facts_refresh(v);   /* the probe's reads failed, or no probe ran (HA adoption) */
    *f = v->facts;
}

void vdpa_vf_mac(const struct vdpa_vf *v, uint8_t mac[6]) { memcpy(mac, v->mac, 6); }
enum vdpa_vf_state vdpa_vf_state(const struct vdpa_vf *v) { return v->state; }

/* From the first use on the loop, writes are posted (vdpa_vf_posted.c). */
static void watch(struct vdpa_vf *v)
{
    int rc = vdpa_posted_watch(v);
    if (rc < 0)
        LOG_W("%s: posted device calls unavailable (%s): writes wait for the device", v->t->bdf, strerror(-rc));
}

static bool same_map(const struct vdpa_map *m, const struct vdpa_region *r, const struct stat *st)
{
    return m->gpa == r->gpa && m->size == r->size && m->fd_offset == r->fd_offset && m->dev == st->st_dev &&
           m->ino == st->st_ino;
}

int vdpa_vf_set_mem(struct vdpa_vf *v, const struct vdpa_region *r, unsigned n)
{
    if (n > VDPA_MAX_REGIONS)
        return -E2BIG;
    watch(v);
    v->unmapped = false;
    struct stat st[VDPA_MAX_REGIONS];
    for (unsigned i = 0; i < n; i++)
        if (fstat(r[i].fd, &st[i]) < 0)
            return -errno;
    /* unmap what is gone first: a new region may overlap an old one */
    for (unsigned i = 0; i < v->nmaps;) {
        bool keep = false;
        for (unsigned j = 0; j < n && !keep; j++)
            keep = same_map(&v->maps[i], &r[j], &st[j]);
        if (keep) {
            i++;
            continue;
        }
        vfe_dma_domain_unmap(v->dom, v, v->maps[i].gpa, v->maps[i].size);
        v->maps[i] = v->maps[--v->nmaps];
        v->unmapped = true;
    }
    if (n && vdpa_vf_maps_alloc(v) < 0)
        return -ENOMEM;
    for (unsigned j = 0; j < n; j++) {
        bool have = false;
        for (unsigned i = 0; i < v->nmaps && !have; i++)
            have = same_map(&v->maps[i], &r[j], &st[j]);
        if (have)
            continue;
        int rc = vfe_dma_domain_map(v->dom, v, r[j].gpa, r[j].size, r[j].fd, r[j].fd_offset,
                                    VFE_DMA_READ | VFE_DMA_WRITE);
        if (rc < 0)
            return rc;
        v->maps[v->nmaps++] = (struct vdpa_map){r[j].gpa, r[j].size, r[j].fd_offset, st[j].st_dev, st[j].st_ino};
    }
    return 0;
}

static void relay_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct vdpa_vf *v = w->data;
    uint16_t q = (uint16_t)((struct vdpa_vf_ring *)w - v->rings);
    uint64_t n;
    if (read(w->fd, &n, sizeof(n)) != sizeof(n))
        return;
    int rc = vfe_vpci_queue_notify(&v->vp, q);
    if (rc < 0)
        LOG_D("%s: ring %u: relayed kick: %s", v->t->bdf, q, strerror(-rc));
}

int vdpa_vf_set_kick(struct vdpa_vf *v, uint16_t q, int fd)
{
    if (q >= v->nrings)
        return -EINVAL;
    watch(v);
    uint32_t region;
    uint64_t off;
    if (ev_is_active(&v->rings[q].kick_relay)) {
        ev_io_stop(v->loop, &v->rings[q].kick_relay);
        close(v->rings[q].kick_relay.fd);
        v->kick_set[q] = false;
        if (fd < 0)
            return 0;
    }
    if (fd < 0 && !v->kick_set[q])
        return 0;   /* nothing registered (a ring never set up): the kernel would say ENODEV */
    int rc = vfe_vpci_queue_notify_addr(&v->vp, q, &region, &off);
    if (rc == 0)
        rc = v->t->ops->ioeventfd(v->t, region, off, 2, q, fd);
    int own = rc == -EOPNOTSUPP && fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (own >= 0) {   /* the loop rings the doorbell for each kick */
        ev_io_init(&v->rings[q].kick_relay, relay_cb, own, EV_READ);
        v->rings[q].kick_relay.data = v;
        ev_io_start(v->loop, &v->rings[q].kick_relay);
        LOG_I("%s: ring %u: no ioeventfd: kicks relayed by the daemon", v->t->bdf, q);
        rc = 0;
    }
    if (rc < 0)
        LOG_W("%s: kick fd of ring %u: %s", v->t->bdf, q, strerror(-rc));
    else
        v->kick_set[q] = fd >= 0;
    return rc;
}

int vdpa_vf_host_notifier(struct vdpa_vf *v, uint16_t q, int *fd, uint64_t *offset)
{
    uint32_t region;
    uint64_t off;
    if (q >= v->num_queues || !v->t->ops->region_mmap_fd)
        return -ENOENT;
    int rc = vfe_vpci_queue_notify_addr(&v->vp, q, &region, &off);
    if (rc < 0)
        return rc;
    /* QEMU maps one page per queue over the guest's doorbell: the page must be this queue's alone */
    if (v->vp.notify_off_multiplier < VDPA_NOTIFIER_SIZE || off % VDPA_NOTIFIER_SIZE)
        return -ENOENT;
    return v->t->ops->region_mmap_fd(v->t, region, off, VDPA_NOTIFIER_SIZE, fd, offset);
}

int vdpa_vf_set_call(struct vdpa_vf *v, uint16_t q, int fd)
{
    if (q >= v->nrings)
        return -EINVAL;
    watch(v);
    int rc = v->t->ops->set_irqs(v->t, VFIO_PCI_MSIX_IRQ_INDEX, q + 1u, 1, &fd);
    if (rc < 0)
        LOG_W("%s: call fd of ring %u: %s", v->t->bdf, q, strerror(-rc));
    else
        v->call_set[q] = fd >= 0;
    return rc;
}
