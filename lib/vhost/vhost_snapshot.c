/* Snapshot of a connected session for another process, and its restore on
 * the same connection (HA).  The blob is external input on restore: every
 * field is checked before anything is mapped. */
#include "lib/vhost/vhost_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

#define SNAP_MAGIC 0x56464553u   /* "VFES" */
#define SNAP_VERSION 3u   /* 2: regions carry their reference count; 3: listener, head message, reply owed */

struct snap_hdr {
    uint32_t magic, version;
    uint64_t features, proto;
    uint8_t status, owner, features_set, connected;
    uint16_t queue_pairs;
    uint16_t nregions;
    uint64_t log_size, log_offset;
    int32_t conn_fd, listen_fd, log_fd, backend_fd;  /* fd indices, -1: none */
    uint64_t listen_dev, listen_ino;                 /* the socket file the listener bound */
    uint8_t cur_state, pending_need_reply, owed, pad;
    uint16_t pending_ring, pad2;
    uint32_t pending_req;
    uint32_t owed_req, owed_size;
    uint8_t owed_payload[VHOST_OWED_MAX];
    /* RECEIVED: the message, after the rings (hdr.size payload bytes) */
    uint32_t msg_request, msg_flags, msg_size, msg_nfds;
    int32_t msg_fds[VHOST_USER_MAX_FDS];
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

#define SNAP_MAX_FDS (4 + VHOST_MAX_REGIONS + 3 * VHOST_MAX_RINGS + VHOST_USER_MAX_FDS)

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
    if (d->fd < 0 && d->lfd < 0)
        return -ENOTCONN;
    unsigned nrings = 2u * d->cfg.queue_pairs;
    size_t msg_len = d->cur_state == VHOST_CUR_RECEIVED ? d->in.hdr.size : 0;
    size_t need = sizeof(struct snap_hdr) + d->nregions * sizeof(struct snap_region) + nrings * sizeof(struct snap_ring) +
                  msg_len;
    if (cap < need)
        return -ENOSPC;
    struct fd_list l = {fds, 0, max_fds, false};
    struct snap_hdr h = {
        .magic = SNAP_MAGIC, .version = SNAP_VERSION, .features = d->features, .proto = d->proto,
        .status = d->status, .owner = d->owner, .features_set = d->features_set, .connected = d->fd >= 0,
        .queue_pairs = d->cfg.queue_pairs, .nregions = (uint16_t)d->nregions, .log_size = d->log_size,
        .log_offset = d->log_offset, .conn_fd = add_fd(&l, d->fd), .listen_fd = add_fd(&l, d->lfd),
        .log_fd = add_fd(&l, d->log_fd), .backend_fd = add_fd(&l, d->backend_fd),
        .listen_dev = d->lfd >= 0 ? (uint64_t)d->listener.dev : 0, .listen_ino = d->lfd >= 0 ? (uint64_t)d->listener.ino : 0,
        .cur_state = d->cur_state, .pending_need_reply = d->pending_need_reply, .owed = d->owed,
        .pending_ring = d->pending_ring, .pending_req = d->pending_req,
        .owed_req = d->owed_req, .owed_size = d->owed_size,
    };
    bool msg = d->cur_state == VHOST_CUR_RECEIVED;
    if (msg) {
        h.msg_request = d->in.hdr.request;
        h.msg_flags = d->in.hdr.flags;
        h.msg_size = d->in.hdr.size;
        h.msg_nfds = d->in.nfds;
        for (unsigned i = 0; i < VHOST_USER_MAX_FDS; i++)
            h.msg_fds[i] = i < d->in.nfds ? add_fd(&l, d->in.fds[i]) : -1;
    } else {
        for (unsigned i = 0; i < VHOST_USER_MAX_FDS; i++)
            h.msg_fds[i] = -1;
    }
    memcpy(h.owed_payload, d->owed_payload, sizeof(h.owed_payload));
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
    if (msg_len)
        memcpy(p, d->in.payload, msg_len);
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
    if (i < 0 || (unsigned)i >= nfds || used[i])
        return false;
    used[i] = 1;
    return true;
}

static int check_blob(const uint8_t *buf, size_t len, unsigned nfds, const struct vhost_cfg *cfg)
{
    struct snap_hdr h;
    if (len < 8 || nfds > SNAP_MAX_FDS)
        return -EINVAL;
    memcpy(&h, buf, len < sizeof(h) ? 8 : sizeof(h));
    if (h.magic != SNAP_MAGIC)
        return -EINVAL;
    if (h.version != SNAP_VERSION) {
        LOG_E("vhost-user %s: session snapshot version %u, this daemon reads version %u", cfg->name ? cfg->name : "?",
              h.version, SNAP_VERSION);
        return -EPROTONOSUPPORT;
    }
    if (len < sizeof(h) || h.queue_pairs != cfg->queue_pairs || h.nregions > VHOST_MAX_REGIONS ||
        h.connected > 1 || h.owner > 1 || h.features_set > 1 || h.cur_state > VHOST_CUR_HANDLED ||
        h.pending_need_reply > 1 || h.owed > 1 || h.owed_size > VHOST_OWED_MAX ||
        (h.cur_state != VHOST_CUR_RECEIVED && (h.msg_size || h.msg_nfds)) || h.msg_size > VHOST_USER_MAX_PAYLOAD ||
        h.msg_nfds > VHOST_USER_MAX_FDS || (h.owed && h.cur_state != VHOST_CUR_HANDLED) ||
        (h.connected != (h.conn_fd >= 0)) || (h.cur_state == VHOST_CUR_PAUSED &&
        h.pending_req != VHOST_USER_GET_VRING_BASE && h.pending_req != VHOST_USER_SET_FEATURES &&
        h.pending_req != VHOST_USER_SET_LOG_BASE && h.pending_req != VHOST_USER_SET_MEM_TABLE &&
        h.pending_req != VHOST_USER_ADD_MEM_REG && h.pending_req != VHOST_USER_REM_MEM_REG) || h.pending_ring >= 2u * h.queue_pairs ||
        (h.conn_fd < 0 && h.listen_fd < 0) || (cfg->client && h.listen_fd >= 0))
        return -EINVAL;
    unsigned nrings = 2u * h.queue_pairs;
    if (len != sizeof(h) + h.nregions * sizeof(struct snap_region) + nrings * sizeof(struct snap_ring) + h.msg_size)
        return -EINVAL;
    uint8_t used[SNAP_MAX_FDS] = {0};
    if (!fd_ok(h.conn_fd, nfds, used) || !fd_ok(h.listen_fd, nfds, used) || !fd_ok(h.log_fd, nfds, used) ||
        !fd_ok(h.backend_fd, nfds, used))
        return -EINVAL;
    for (unsigned i = 0; i < VHOST_USER_MAX_FDS; i++)
        if ((i < h.msg_nfds) != (h.msg_fds[i] >= 0) || !fd_ok(h.msg_fds[i], nfds, used))
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

/* Take the listening socket over: the file at path is ours to remove later
 * only if it is still the inode the predecessor bound. */
static void adopt_listener(struct vhost_dev *d, int fd, uint64_t dev, uint64_t ino)
{
    struct vfe_listener *l = &d->listener;
    l->fd = fd;
    snprintf(l->path, sizeof(l->path), "%s", d->path);
    struct stat st;
    if (lstat(d->path, &st) == 0 && S_ISSOCK(st.st_mode) && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino) {
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    } else {
        LOG_W("vhost-user %s: %s is not the socket file this listener bound any more: it is left alone", d->name,
              d->path);
        l->dev = 0;
        l->ino = 0;
    }
    d->lfd = fd;
    vhost_conn_watch_listener(d);
}

struct vhost_dev *vhost_dev_restore(struct ev_loop *loop, const struct vhost_cfg *cfg, const uint8_t *buf,
                                    size_t len, const int *fds, unsigned nfds, int *err)
{
    if (!cfg || (*err = check_blob(buf, len, nfds, cfg)) < 0) {
        if (cfg && *err != -EPROTONOSUPPORT)
            LOG_E("vhost-user %s: session snapshot rejected", cfg->name ? cfg->name : "?");
        if (!cfg)
            *err = -EINVAL;
        return NULL;
    }
    struct vhost_dev *d = vhost_dev_new(loop, cfg, err);
    if (!d)
        return NULL;
    struct snap_hdr h;
    memcpy(&h, buf, sizeof(h));
    if ((h.conn_fd >= 0 || h.cur_state == VHOST_CUR_RECEIVED) && (*err = vhost_msg_buffer(d)) < 0)
        goto fail;
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
    /* what was started is started: the glue adopts the device as it runs */
    for (unsigned i = 0; i < 2u * h.queue_pairs; i++)
        d->rings[i].started = vhost_ring_ready(d, &d->rings[i]);
    d->cur_state = h.cur_state;
    if (h.cur_state == VHOST_CUR_RECEIVED) {
        d->in.hdr = (struct vhost_user_hdr){h.msg_request, h.msg_flags, h.msg_size};
        memcpy(d->in.payload, p, h.msg_size);
        d->in.nfds = h.msg_nfds;
        for (unsigned i = 0; i < h.msg_nfds; i++)
            d->in.fds[i] = fds[h.msg_fds[i]];
        d->in_got = VHOST_USER_HDR_SIZE + h.msg_size;
    }
    d->pending_req = h.pending_req;
    d->pending_ring = h.pending_ring;
    d->pending_need_reply = h.pending_need_reply;
    d->owed = h.owed;
    d->owed_req = h.owed_req;
    d->owed_size = h.owed_size;
    memcpy(d->owed_payload, h.owed_payload, sizeof(d->owed_payload));
    if (h.listen_fd >= 0)
        adopt_listener(d, fds[h.listen_fd], h.listen_dev, h.listen_ino);
    else if (!cfg->client && (*err = vhost_conn_listen(d)) < 0)
        LOG_W("vhost-user %s: not listening on %s after restore: %s", d->name, d->path, strerror(-*err));
    if (h.conn_fd >= 0) {
        d->fd = fds[h.conn_fd];   /* reading starts with vhost_dev_resume() */
        d->backoff = 0.1;
    } else if (cfg->client) {
        vhost_conn_close(d, "restored without a connection");   /* starts reconnecting */
    }
    /* fds the blob does not name are not needed */
    for (unsigned i = 0; i < nfds; i++) {
        bool named = (int32_t)i == h.conn_fd || (int32_t)i == h.listen_fd || (int32_t)i == h.log_fd ||
                     (int32_t)i == h.backend_fd;
        for (unsigned j = 0; j < h.msg_nfds && !named; j++)
            named = h.msg_fds[j] == (int32_t)i;
        for (unsigned j = 0; j < d->nregions && !named; j++)
            named = d->regions[j].fd == fds[i];
        for (unsigned j = 0; j < 2u * h.queue_pairs && !named; j++)
            named = d->rings[j].kick_fd == fds[i] || d->rings[j].call_fd == fds[i] || d->rings[j].err_fd == fds[i];
        if (!named)
            close(fds[i]);
    }
    LOG_N("vhost-user %s: session restored%s", d->name, h.conn_fd >= 0 ? " on the same connection" : " (listening)");
    *err = 0;
    return d;
fail:
    /* the fds are still the caller's: forget them before freeing */
    for (unsigned i = 0; i < d->nregions; i++)
        d->regions[i].fd = dup(d->regions[i].fd);
    vhost_mem_clear(d);
    if (d->log_map)
        munmap(d->log_map, d->log_map_len);
    free(d->in.payload);
    free(d);
    return NULL;
}

/* The restored connection's first steps, from the loop: finish the message a
 * crash interrupted (vhost_msg_finish lists the points), then read on. */
static void resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhost_dev *d = w->data;
    if (d->fd < 0)
        return;
    uint8_t state = d->cur_state;
    unsigned nfds = d->in.nfds;
    /* the watcher, started; stopped again below where the glue must answer first */
    if (vhost_conn_attach(d, d->fd) < 0) {   /* the restore allocated the buffer: not expected */
        vhost_conn_close(d, "no memory");
        return;
    }
    d->in.nfds = nfds;
    switch (state) {
    case VHOST_CUR_RECEIVED:
        /* deposited, then maybe not taken off the socket yet: never handle it twice */
        vhost_msg_at_head(d);   /* takes it off if it is still there */
        d->in_consumed = true;
        LOG_N("vhost-user %s: request %u read before the restart is handled now", d->name, d->in.hdr.request);
        d->in_got = VHOST_USER_HDR_SIZE + d->in.hdr.size;
        if (vhost_msg_process(d) < 0)
            vhost_conn_close(d, "protocol error");
        return;
    case VHOST_CUR_PAUSED:
        LOG_N("vhost-user %s: request %u waits for the device again", d->name, d->pending_req);
        vhost_session_repause(d);
        return;
    case VHOST_CUR_HANDLED: {
        LOG_N("vhost-user %s: the reply to request %u owed before the restart is sent", d->name, d->owed_req);
        uint8_t payload[VHOST_OWED_MAX];
        memcpy(payload, d->owed_payload, d->owed_size);
        if (vhost_msg_finish(d, d->owed_req, payload, d->owed_size, true) < 0)
            vhost_conn_close(d, "closed");
        return;
    }
    default:
        return;
    }
}

int vhost_ha_point(const struct vhost_dev *d, uint32_t *request)
{
    *request = d->cur_state == VHOST_CUR_PAUSED ? d->pending_req
             : d->cur_state == VHOST_CUR_HANDLED ? d->owed_req : d->in.hdr.request;
    return d->cur_state;
}

void vhost_dev_resume(struct vhost_dev *d)
{
    if (d->fd < 0 || ev_is_active(&d->resume_t) || ev_is_active(&d->watch))
        return;
    ev_timer_init(&d->resume_t, resume_cb, 0., 0.);
    d->resume_t.data = d;
    ev_timer_start(d->loop, &d->resume_t);
}
