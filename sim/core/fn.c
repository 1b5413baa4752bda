/* PCI functions of the sim: creation, reset, lookup, kicks, VF lifecycle. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "sim/spec/sim_virtio_spec.h"
#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"
#include "sim/net/l2_switch.h"

int sim_bdf_parse(const char *bdf, unsigned *dom, unsigned *rid)
{
    unsigned d, b, s, f;
    char tail;
    if (!bdf || sscanf(bdf, "%4x:%2x:%2x.%1x%c", &d, &b, &s, &f, &tail) != 4 ||
        strlen(bdf) != 12 || s > 31 || f > 7)
        return -EINVAL;
    *dom = d;
    *rid = b << 8 | s << 3 | f;
    return 0;
}

void sim_bdf_format(char *out, size_t len, unsigned dom, unsigned rid)
{
    snprintf(out, len, "%04x:%02x:%02x.%x", dom & 0xffff, (rid >> 8) & 0xff, (rid >> 3) & 0x1f, rid & 7);
}

uint64_t sim_fn_device_features(const struct sim_fn *fn)
{
    uint64_t f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_ACCESS_PLATFORM |
                 1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS | 1ull << VIRTIO_NET_F_MTU |
                 1ull << VIRTIO_NET_F_MRG_RXBUF | 1ull << VIRTIO_F_RING_RESET |
                 1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_RING_F_INDIRECT_DESC;
    if (fn->is_pf)
        f |= 1ull << SIM_F_ADMIN_VQ;
    else
        f |= 1ull << VIRTIO_NET_F_CTRL_VQ | 1ull << VIRTIO_NET_F_MQ | 1ull << VIRTIO_NET_F_CTRL_RX;
    return f;
}

static unsigned pf_slot(const struct sim_fn *pf)
{
    for (unsigned i = 0; i < pf->sim->npfs; i++)
        if (&pf->sim->pfs[i]->fn == pf)
            return i;
    return 0;
}

static void net_cfg_init(struct sim_fn *fn)
{
    const struct sim_options *o = &fn->sim->opt;
    unsigned m[4] = {0x02, 0xfe, 0, 0};
    if (o->mac_prefix)
        sscanf(o->mac_prefix, "%2x:%2x:%2x:%2x", &m[0], &m[1], &m[2], &m[3]);
    struct virtio_net_config *c = &fn->net_cfg;
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 4; i++)
        c->mac[i] = (uint8_t)m[i];
    c->mac[0] &= 0xfe;   /* never a multicast address */
    c->mac[4] = (uint8_t)(pf_slot(fn->pf) << 4 | fn->vf_num >> 8);
    c->mac[5] = (uint8_t)fn->vf_num;
    c->status = htole16(VIRTIO_NET_S_LINK_UP);
    c->max_virtqueue_pairs = htole16(fn->is_pf ? 1 : (uint16_t)o->max_qpairs);
    c->mtu = htole16(o->mtu);
}

static void kick_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sim_queue *q = w->data;
    uint64_t n;
    if (read(w->fd, &n, sizeof(n)) < 0)
        return;
    sim_queue_notify(q->fn, q->index);
}

struct sim_fn *sim_fn_create(struct sim *s, struct sim_fn *pf, unsigned vf_num, const char *bdf)
{
    struct sim_fn *fn;
    if (pf) {
        fn = calloc(1, sizeof(*fn));
    } else {
        struct sim_pf *p = calloc(1, sizeof(*p));
        fn = p ? &p->fn : NULL;
    }
    if (!fn)
        return NULL;
    fn->sim = s;
    fn->db_fd = -1;
    fn->msix_wd = -1;
    fn->is_pf = !pf;
    fn->pf = pf ? pf : fn;
    fn->vf_num = vf_num;
    snprintf(fn->bdf, sizeof(fn->bdf), "%s", bdf);
    snprintf(fn->dir, sizeof(fn->dir), "%s/%s", s->opt.root, bdf);
    snprintf(fn->sock_path, sizeof(fn->sock_path), "%s/vfio-user.sock", fn->dir);
    for (unsigned i = 0; i < SIM_MSIX_VECTORS; i++)
        fn->irq_fds[i] = -1;
    fn->device_features = sim_fn_device_features(fn);
    if (fn->is_pf) {
        fn->num_queues = 2;
        fn->admin_queue_index = 2;
    } else {
        fn->num_queues = (uint16_t)(2 * s->opt.max_qpairs + 1);
    }
    for (unsigned i = 0; i < SIM_MAX_QUEUES; i++) {
        struct sim_queue *q = &fn->queues[i];
        q->index = (uint16_t)i;
        q->fn = fn;
        q->kick_fd = -1;
        ev_io_init(&q->kick_watch, kick_cb, -1, EV_READ);
        q->kick_watch.data = q;
    }
    sim_pci_cfg_build(fn);
    sim_fn_reset(fn);
    net_cfg_init(fn);
    sim_net_fn_init(fn);
    if (fn->is_pf)
        sim_admin_fn_init(fn);
    return fn;
}

static void kick_detach(struct sim_queue *q)
{
    if (q->kick_fd < 0)
        return;
    ev_io_stop(q->fn->sim->loop, &q->kick_watch);
    close(q->kick_fd);
    q->kick_fd = -1;
}

void sim_fn_destroy(struct sim_fn *fn)
{
    if (!fn)
        return;
    sim_vfu_close(fn);
    for (unsigned i = 0; i < SIM_MAX_QUEUES; i++)
        kick_detach(&fn->queues[i]);
    if (fn->is_pf)
        sim_admin_fn_fini(fn);
    sim_net_fn_fini(fn);
    sim_dma_unmap_all(fn);
    sim_doorbell_map_fini(fn);
    sim_irq_fn_fini(fn);
    sim_dirty_stop(fn);
    if (fn->is_pf)
        free((struct sim_pf *)fn);
    else
        free(fn);
}

void sim_fn_reset(struct sim_fn *fn)
{
    if (fn->status || fn->mig_state != SIM_MIG_INIT) {
        LOG_I("%s: device reset", fn->bdf);
        fn->ctr.resets++;
    }
    fn->status = 0;
    fn->driver_features = 0;
    fn->dfselect = fn->gfselect = 0;
    fn->msix_config = SIM_MSI_NO_VECTOR;
    fn->queue_select = 0;
    fn->isr = 0;
    fn->config_generation++;
    fn->stopped = false;
    fn->mig_state = SIM_MIG_INIT;
    for (unsigned i = 0; i < SIM_MAX_QUEUES; i++) {
        struct sim_queue *q = &fn->queues[i];
        q->size = SIM_QUEUE_MAX_SIZE;
        q->msix_vector = SIM_MSI_NO_VECTOR;
        q->enabled = false;
        q->desc = q->avail = q->used = 0;
        q->last_avail = q->used_idx = 0;
        q->broken = false;
        q->reset_pending = false;
    }
    sim_net_reset(fn);
    if (fn->is_pf)
        sim_admin_reset(fn);
}

struct sim_fn *sim_pf_vf(struct sim_fn *pf, unsigned vf_num)
{
    if (!pf || !pf->is_pf)
        return NULL;
    struct sim_pf *p = (struct sim_pf *)pf;
    if (vf_num < 1 || vf_num > p->num_vfs)
        return NULL;
    struct sim_fn *vf = p->vfs[vf_num - 1];
    return vf && !vf->removed ? vf : NULL;
}

struct sim_fn *sim_find_fn(struct sim *s, const char *bdf)
{
    for (unsigned i = 0; i < s->npfs; i++) {
        struct sim_pf *p = s->pfs[i];
        if (!strcmp(p->fn.bdf, bdf))
            return &p->fn;
        for (unsigned v = 0; v < p->num_vfs; v++)
            if (p->vfs[v] && !strcmp(p->vfs[v]->bdf, bdf))
                return p->vfs[v];
    }
    return NULL;
}

void sim_queue_notify(struct sim_fn *fn, uint16_t qidx)
{
    if (fn->removed)
        return;
    if (fn->is_pf && qidx == fn->admin_queue_index)
        sim_admin_queue_notify(fn);
    else if (qidx < fn->num_queues)
        sim_net_queue_notify(fn, qidx);
}

int sim_ioeventfd(struct sim_fn *fn, uint32_t region, uint64_t off, uint32_t size, uint64_t data, int fd)
{
    if (region != 0 || off < SIM_BAR0_NOTIFY || (off - SIM_BAR0_NOTIFY) % SIM_NOTIFY_MULT)
        return -EINVAL;
    if (size != 2 && size != 4)
        return -EINVAL;
    uint64_t qidx = (off - SIM_BAR0_NOTIFY) / SIM_NOTIFY_MULT;
    if (!(qidx < fn->num_queues || (fn->is_pf && qidx == fn->admin_queue_index)))
        return -EINVAL;
    struct sim_queue *q = &fn->queues[qidx];
    if (fd < 0) {
        kick_detach(q);
        return 0;
    }
    int mine = dup(fd);   /* the server closes its copy after this call */
    if (mine < 0)
        return -errno;
    kick_detach(q);
    q->kick_fd = mine;
    ev_io_set(&q->kick_watch, mine, EV_READ);
    ev_io_start(fn->sim->loop, &q->kick_watch);
    return 0;
}

static int vf_add(struct sim_pf *pf, unsigned vf_num)
{
    struct sim *s = pf->fn.sim;
    unsigned dom, rid;
    if (sim_bdf_parse(pf->fn.bdf, &dom, &rid) < 0)
        return -EINVAL;
    char bdf[16];
    sim_bdf_format(bdf, sizeof(bdf), dom, SIM_VF_RID(rid, vf_num));
    struct sim_fn *vf = sim_fn_create(s, &pf->fn, vf_num, bdf);
    if (!vf)
        return -ENOMEM;
    pf->vfs[vf_num - 1] = vf;
    int rc = sim_tree_write_fn(vf);
    if (rc == 0)
        sim_msix_vf_added(vf);
    if (rc == 0)
        rc = sim_vfu_listen(vf);
    return rc;
}

static void vf_del(struct sim_pf *pf, unsigned vf_num)
{
    struct sim_fn *vf = pf->vfs[vf_num - 1];
    if (!vf)
        return;
    sim_vfu_close(vf);   /* its socket goes first: the directory must be empty */
    sim_msix_vf_removed(vf);
    sim_tree_remove_fn(vf);
    sim_fn_destroy(vf);
    pf->vfs[vf_num - 1] = NULL;
}

int sim_pf_set_num_vfs(struct sim_pf *pf, unsigned n)
{
    if (n > pf->total_vfs)
        return -ERANGE;
    unsigned old = pf->num_vfs;
    for (unsigned v = old; v > n; v--)
        vf_del(pf, v);
    int rc = 0;
    unsigned v;
    for (v = old + 1; v <= n && rc == 0; v++)
        rc = vf_add(pf, v);
    if (rc < 0) {
        for (unsigned u = v - 1; u > old; u--)
            vf_del(pf, u);
        n = old < n ? old : n;
    }
    pf->num_vfs = n;
    sim_pci_cfg_set_num_vfs(&pf->fn, n);
    int trc = sim_tree_write_pf_links(pf);
    if (rc == 0 && n != old)
        LOG_N("%s: %u VFs (was %u)", pf->fn.bdf, n, old);
    return rc < 0 ? rc : trc;
}

/* Surprise removal: the function vanishes from the tree and its socket closes. */
int sim_fn_remove(struct sim_fn *fn)
{
    if (fn->is_pf || fn->removed)
        return -EINVAL;
    LOG_N("%s: surprise removal", fn->bdf);
    sim_vfu_close(fn);
    sim_msix_vf_removed(fn);
    sim_tree_remove_fn(fn);
    fn->removed = true;
    sim_sw_forget_port(fn->sim, fn);
    return sim_tree_write_pf_links((struct sim_pf *)fn->pf);
}
