/* Snapshot of a connected session for another process, and its restore on
 * the same connection (HA).  The blob is external input on restore: every
 * field is checked before anything is mapped. */
#include "lib/vhost/vhost_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

#define SNAP_MAGIC 0x56464553u   /* "VFES" */
#define SNAP_VERSION 2u   /* 2: regions carry their reference count */

struct snap_hdr {
    uint32_t magic, version;
    uint64_t features, proto;
    uint8_t status, owner, features_set, pad;
    uint16_t queue_pairs;
    uint16_t nregions;
    uint64_t log_size, log_offset;
    int32_t log_fd, backend_fd;  /* fd indices, -1: none */
} __attribute__((packed));

struct snap_region {
    uint64_t gpa, size, qva, mmap_offset;
    int32_t fd;
    uint32_t refs;               /* identical ADD_MEM_REGs held (multiqueue) */
} __attribute__((packed));

struct snap_ring {
    uint16_t num, base;
    uint8_t addr_set, enabled, pad[2];
    uint32_t addr_flags;
    uint64_t desc_qva, avail_qva, used_qva, log_gpa;
    int32_t kick_fd, call_fd, err_fd;
} __attribute__((packed));

struct fd_list {
    int *fds;
    unsigned n, max;
    bool overflow;
};

static int32_t add_fd(struct fd_list *l, int fd)
{
    if (fd < 0)
        return -1;
    if (l->n == l->max) {
        l->overflow = true;
        return -1;
    }
    l->fds[l->n] = fd;
    return (int32_t)l->n++;
}

int vhost_snapshot(const struct vhost_dev *d, uint8_t *buf, size_t cap, size_t *len, int *fds,
                   unsigned max_fds, unsigned *nfds)
{
    if (d->fd < 0)
        return -ENOTCONN;
    if (d->paused || d->in_got)
        return -EBUSY;   /* in the middle of a message */
    unsigned nrings = 2u * d->cfg.queue_pairs;
    size_t need = sizeof(struct snap_hdr) + d->nregions * sizeof(struct snap_region) + nrings * sizeof(struct snap_ring);
    if (cap < need)
        return -ENOSPC;
    struct fd_list l = {fds, 0, max_fds, false};
    add_fd(&l, d->fd);
    struct snap_hdr h = {SNAP_MAGIC, SNAP_VERSION, d->features, d->proto, d->status, d->owner,
                         d->features_set, 0, d->cfg.queue_pairs, (uint16_t)d->nregions, d->log_size,
                         d->log_offset, add_fd(&l, d->log_fd), add_fd(&l, d->backend_fd)};
    uint8_t *p = buf + sizeof(h);
    for (unsigned i = 0; i < d->nregions; i++) {
        const struct vhost_region *r = &d->regions[i];
        struct snap_region sr = {r->gpa, r->size, r->qva, r->mmap_offset, add_fd(&l, r->fd), r->refs};
        memcpy(p, &sr, sizeof(sr));
        p += sizeof(sr);
    }
    for (unsigned i = 0; i < nrings; i++) {
        const struct vhost_ring *r = &d->rings[i];
        struct snap_ring sr = {r->num, r->base, r->addr_set, r->enabled, {0}, r->addr_flags, r->desc_qva,
                               r->avail_qva, r->used_qva, r->log_gpa, add_fd(&l, r->kick_fd),
                               add_fd(&l, r->call_fd), add_fd(&l, r->err_fd)};
        memcpy(p, &sr, sizeof(sr));
        p += sizeof(sr);
    }
    memcpy(buf, &h, sizeof(h));
    if (l.overflow)
        return -ENOSPC;
    *len = need;
    *nfds = l.n;
    return 0;
}

/* fd index i of the blob: -1 none, else a valid slot used once. */
static bool fd_ok(int32_t i, unsigned nfds, uint8_t *used)
{
    if (i == -1)
        return true;
    if (i < 1 || (unsigned)i >= nfds || used[i])
        return false;
    used[i] = 1;
    return true;
}

static int check_blob(const uint8_t *buf, size_t len, unsigned nfds, const struct vhost_cfg *cfg)
{
    struct snap_hdr h;
    if (len < sizeof(h) || nfds < 1 || nfds > 1 + 2 + VHOST_MAX_REGIONS + 3 * VHOST_MAX_RINGS)
        return -EINVAL;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != SNAP_MAGIC || h.version != SNAP_VERSION || h.queue_pairs != cfg->queue_pairs ||
        h.nregions > VHOST_MAX_REGIONS)
        return -EINVAL;
    unsigned nrings = 2u * h.queue_pairs;
    if (len != sizeof(h) + h.nregions * sizeof(struct snap_region) + nrings * sizeof(struct snap_ring))
        return -EINVAL;
    uint8_t used[1 + 2 + VHOST_MAX_REGIONS + 3 * VHOST_MAX_RINGS] = {1};
    if (!fd_ok(h.log_fd, nfds, used) || !fd_ok(h.backend_fd, nfds, used))
        return -EINVAL;
    const uint8_t *p = buf + sizeof(h);
    for (unsigned i = 0; i < h.nregions; i++, p += sizeof(struct snap_region)) {
        struct snap_region r;
        memcpy(&r, p, sizeof(r));
        if (r.fd == -1 || !fd_ok(r.fd, nfds, used) || r.refs == 0 || r.refs > VHOST_MAX_QUEUE_PAIRS + 1)
            return -EINVAL;
    }
    for (unsigned i = 0; i < nrings; i++, p += sizeof(struct snap_ring)) {
        struct snap_ring r;
        memcpy(&r, p, sizeof(r));
        if ((r.num & (r.num - 1)) || r.addr_set > 1 || r.enabled > 1 || r.addr_flags > 1 ||
            !fd_ok(r.kick_fd, nfds, used) || !fd_ok(r.call_fd, nfds, used) || !fd_ok(r.err_fd, nfds, used))
            return -EINVAL;
    }
    return 0;
}

static int restore_log(struct vhost_dev *d, int fd, uint64_t size, uint64_t offset)
{
    uint64_t lead = offset & 4095;
    void *p = mmap(NULL, size + lead, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(offset - lead));
    if (p == MAP_FAILED)
        return -errno;
    d->log_fd = fd;
    d->log_size = size;
    d->log_offset = offset;
    d->log_map = p;
    d->log_map_len = size + lead;
    return 0;
}

static int fd_at(const int *fds, int32_t i)
{
    return i < 0 ? -1 : fds[i];
}

struct vhost_dev *vhost_dev_restore(struct ev_loop *loop, const struct vhost_cfg *cfg, const uint8_t *buf,
                                    size_t len, const int *fds, unsigned nfds, int *err)
{
    if ((*err = check_blob(buf, len, nfds, cfg)) < 0) {
        LOG_E("vhost-user %s: session snapshot rejected", cfg && cfg->name ? cfg->name : "?");
        return NULL;
    }
    struct vhost_dev *d = vhost_dev_new(loop, cfg, err);
    if (!d)
        return NULL;
    struct snap_hdr h;
    memcpy(&h, buf, sizeof(h));
    const uint8_t *p = buf + sizeof(h);
    for (unsigned i = 0; i < h.nregions; i++, p += sizeof(struct snap_region)) {
        struct snap_region r;
        memcpy(&r, p, sizeof(r));
        struct vhost_user_region u = {r.gpa, r.size, r.qva, r.mmap_offset};
        const char *why = "";
        if ((*err = vhost_mem_add(d, &u, fds[r.fd], &why)) != 0) {
            LOG_E("vhost-user %s: restored region %u: %s", d->name, i, *err > 0 ? "listed twice" : why);
            *err = *err > 0 ? -EINVAL : *err;
            goto fail;
        }
        d->regions[d->nregions - 1].refs = r.refs;
    }
    if (h.log_fd >= 0 && (*err = restore_log(d, fds[h.log_fd], h.log_size, h.log_offset)) < 0)
        goto fail;
    d->features = h.features;
    d->proto = h.proto;
    d->status = h.status;
    d->owner = h.owner;
    d->features_set = h.features_set;
    d->backend_fd = fd_at(fds, h.backend_fd);
    for (unsigned i = 0; i < 2u * h.queue_pairs; i++, p += sizeof(struct snap_ring)) {
        struct snap_ring s;
        memcpy(&s, p, sizeof(s));
        struct vhost_ring *r = &d->rings[i];
        r->num = s.num;
        r->base = s.base;
        r->addr_set = s.addr_set;
        r->enabled = s.enabled;
        r->addr_flags = s.addr_flags;
        r->desc_qva = s.desc_qva;
        r->avail_qva = s.avail_qva;
        r->used_qva = s.used_qva;
        r->log_gpa = s.log_gpa;
        r->kick_fd = fd_at(fds, s.kick_fd);
        r->call_fd = fd_at(fds, s.call_fd);
        r->err_fd = fd_at(fds, s.err_fd);
        if (r->addr_set)
            vhost_ring_translate(d, r);
    }
    if (!cfg->client && (*err = vhost_conn_listen(d)) < 0)
        LOG_W("vhost-user %s: not listening on %s after restore: %s", d->name, d->path, strerror(-*err));
    vhost_conn_attach(d, fds[0]);
    LOG_N("vhost-user %s: session restored on the same connection", d->name);
    /* the glue rebuilds its view in the order a front-end would have set it up */
    const struct vhost_ops *o = cfg->ops;
    if (o->connected)
        o->connected(cfg->ctx, d);
    if (o->features)
        o->features(cfg->ctx, d->features);
    if (o->mem_table)
        o->mem_table(cfg->ctx, d->regions, d->nregions);
    if (d->log_map && o->log_base)
        o->log_base(cfg->ctx, d->log_fd, d->log_offset, d->log_size, d->log_map + (d->log_offset & 4095));
    for (uint16_t i = 0; i < 2u * h.queue_pairs; i++) {
        if (d->rings[i].kick_fd >= 0 && o->ring_kick)
            o->ring_kick(cfg->ctx, i, d->rings[i].kick_fd);
        if (d->rings[i].call_fd >= 0 && o->ring_call)
            o->ring_call(cfg->ctx, i, d->rings[i].call_fd);
        vhost_ring_update(d, i);
    }
    *err = 0;
    return d;
fail:
    /* the fds are still the caller's: forget them before freeing */
    for (unsigned i = 0; i < d->nregions; i++)
        d->regions[i].fd = dup(d->regions[i].fd);
    vhost_mem_clear(d);
    if (d->log_map)
        munmap(d->log_map, d->log_map_len);
    free(d);
    return NULL;
}
