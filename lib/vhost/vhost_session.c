/* Front-end requests of one vhost-user session: validation and glue callbacks. */
#include "lib/vhost/vhost_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

#define OPS(d) ((d)->cfg.ops)
#define CTX(d) ((d)->cfg.ctx)

static bool proto(const struct vhost_dev *d, unsigned bit)
{
    return d->proto & (1ull << bit);
}

void vhost_persist(struct vhost_dev *d)
{
    if (OPS(d)->persist)
        OPS(d)->persist(CTX(d), d);
}

static int send_reply(struct vhost_dev *d, uint32_t request, const void *payload, uint32_t size)
{
    int rc = vhost_msg_send(d->fd, request, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY, payload, size, NULL, 0);
    if (rc < 0)
        LOG_W("vhost-user %s: reply to request %u: %s", d->name, request, strerror(-rc));
    return rc;
}

/* With a persist hook (HA) every message goes through these points, each
 * deposited before the next step (vhost_msg_process, pause_for_glue):
 *   RECEIVED  read off the socket: the snapshot carries the message and its
 *             fds, a successor handles it again from the state before it
 *   PAUSED    waiting for the glue: a successor waits for the glue again
 *   HANDLED   its effect is in the state and its reply is owed: a successor
 *             sends the reply
 *   NONE      reply sent (or none): a successor reads the next message
 * With persist_reply the HA process writes the reply when it stores NONE,
 * so no point is ambiguous; without it (HA process busy or older), only a
 * crash between sending a reply and depositing NONE makes a successor send
 * that reply twice. */
int vhost_msg_finish(struct vhost_dev *d, uint32_t request, const void *payload, uint32_t size, bool reply)
{
    bool ha = OPS(d)->persist != NULL;
    if (ha && reply && OPS(d)->persist_reply && size <= VHOST_OWED_MAX) {
        /* the deposit and the reply in one step of the HA process: no window at all */
        uint8_t bytes[VHOST_USER_HDR_SIZE + VHOST_OWED_MAX];
        struct vhost_user_hdr h = {request, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY, size};
        memcpy(bytes, &h, sizeof(h));
        memcpy(bytes + sizeof(h), payload, size);
        d->cur_state = VHOST_CUR_NONE;
        d->owed = false;
        if (OPS(d)->persist_reply(CTX(d), d, bytes, sizeof(h) + size))
            return 0;
    }
    if (ha && reply) {
        d->cur_state = VHOST_CUR_HANDLED;
        d->owed = true;
        d->owed_req = request;
        d->owed_size = size < VHOST_OWED_MAX ? size : VHOST_OWED_MAX;
        memcpy(d->owed_payload, payload, d->owed_size);
        vhost_persist(d);
    }
    int rc = reply ? send_reply(d, request, payload, size) : 0;
    if (ha) {
        d->cur_state = VHOST_CUR_NONE;
        d->owed = false;
        vhost_persist(d);
    }
    return rc;
}

int vhost_reply(struct vhost_dev *d, uint32_t request, const void *payload, uint32_t size)
{
    return vhost_msg_finish(d, request, payload, size, true);
}

static int reply_u64(struct vhost_dev *d, uint32_t request, uint64_t v)
{
    return vhost_reply(d, request, &v, sizeof(v));
}

/* Take fd i out of the message (the session keeps it). */
static int take_fd(struct vhost_msg *m, unsigned i)
{
    int fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

bool vhost_ring_ready(const struct vhost_dev *d, const struct vhost_ring *r)
{
    bool enabled = (d->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) ? r->enabled : true;
    return r->num && r->addr_ok && r->kick_fd >= 0 && enabled;
}

void vhost_ring_update(struct vhost_dev *d, uint16_t i)
{
    struct vhost_ring *r = &d->rings[i];
    bool ready = vhost_ring_ready(d, r);
    if (ready == r->started)
        return;
    r->started = ready;
    if (ready) {
        LOG_D("vhost-user %s: ring %u ready (size %u, base %u)", d->name, i, r->num, r->base);
        if (OPS(d)->ring_start && OPS(d)->ring_start(CTX(d), i, r) < 0)
            LOG_W("vhost-user %s: ring %u: the device did not start it", d->name, i);
    } else {
        LOG_D("vhost-user %s: ring %u stopped", d->name, i);
        if (OPS(d)->ring_stop)
            OPS(d)->ring_stop(CTX(d), i);
    }
}

static void stop_all_rings(struct vhost_dev *d, bool notify)
{
    for (uint16_t i = 0; i < vhost_nrings(d); i++) {
        if (d->rings[i].started) {
            d->rings[i].started = false;
            if (notify && OPS(d)->ring_stop)
                OPS(d)->ring_stop(CTX(d), i);
        }
    }
}

static void ring_clear(struct vhost_ring *r)
{
    close_fd(&r->kick_fd);
    close_fd(&r->call_fd);
    close_fd(&r->err_fd);
    memset(r, 0, sizeof(*r));
    r->kick_fd = r->call_fd = r->err_fd = -1;
}

static void log_clear(struct vhost_dev *d)
{
    if (d->log_map)
        munmap(d->log_map, d->log_map_len);
    d->log_map = NULL;
    d->log_map_len = 0;
    d->log_size = d->log_offset = 0;
    close_fd(&d->log_fd);
}

void vhost_session_reset(struct vhost_dev *d, bool closing, bool notify)
{
    stop_all_rings(d, notify);
    for (unsigned i = 0; i < vhost_nrings(d); i++)
        ring_clear(&d->rings[i]);
    vhost_mem_clear(d);
    log_clear(d);
    if (closing) {
        close_fd(&d->backend_fd);
        d->owner = false;
        d->features = d->proto = 0;
        d->features_set = false;
    }
    d->status = 0;
}

/* Index of a ring named in a payload; -1 when out of range. */
static int ring_index(const struct vhost_dev *d, uint32_t idx)
{
    if (idx < 2u * d->cfg.queue_pairs)
        return (int)idx;
    /* a front-end configured with more queues than GET_QUEUE_NUM said (QEMU's queues=) */
    LOG_W("vhost-user %s: ring %u refused: the device has %u queue pairs (rings 0..%u); the front-end asks for more "
          "queues than this VF offers (its MSI-X vectors set the count): connection closed", d->name, idx,
          d->cfg.queue_pairs, 2u * d->cfg.queue_pairs - 1);
    return -1;
}

#define FAIL(...) do { LOG_W("vhost-user " __VA_ARGS__); return -EINVAL; } while (0)

/* 1: the table is unchanged (a multiqueue front-end sends it once per queue pair). */
static int set_mem_table(struct vhost_dev *d, struct vhost_msg *m)
{
    struct vhost_user_mem_table t;
    memset(&t, 0, sizeof(t));
    memcpy(&t, m->payload, m->hdr.size);
    if (t.nregions == 0 || t.nregions > 8 || m->hdr.size != 8 + t.nregions * sizeof(struct vhost_user_region))
        FAIL("%s: SET_MEM_TABLE with %u regions in %u bytes", d->name, t.nregions, m->hdr.size);
    if (m->nfds != t.nregions)
        FAIL("%s: SET_MEM_TABLE: %u regions but %u fds", d->name, t.nregions, m->nfds);
    if (vhost_mem_same(d, t.regions, m->fds, t.nregions))
        return 1;   /* the message's fds are closed with it */
    vhost_mem_clear(d);
    for (unsigned i = 0; i < t.nregions; i++) {
        const char *why = "";
        int fd = take_fd(m, i);
        int rc = vhost_mem_add(d, &t.regions[i], fd, &why);
        if (rc != 0) {
            close(fd);
            vhost_mem_clear(d);
            if (rc > 0)
                why = "the same region twice";
            FAIL("%s: SET_MEM_TABLE region %u (gpa %#llx size %#llx): %s", d->name, i,
                 (unsigned long long)t.regions[i].gpa, (unsigned long long)t.regions[i].size, why);
        }
    }
    return 0;
}

/* After any memory table change: translate the rings again, tell the glue. */
static int mem_changed(struct vhost_dev *d)
{
    for (uint16_t i = 0; i < vhost_nrings(d); i++) {
        struct vhost_ring *r = &d->rings[i];
        if (r->addr_set && vhost_ring_translate(d, r) < 0)
            LOG_W("vhost-user %s: ring %u is outside the new memory table", d->name, i);
    }
    int rc = OPS(d)->mem_table ? OPS(d)->mem_table(CTX(d), d->regions, d->nregions) : 0;
    for (uint16_t i = 0; i < vhost_nrings(d); i++)
        vhost_ring_update(d, i);
    return rc;
}

static int set_log_base(struct vhost_dev *d, struct vhost_msg *m)
{
    struct vhost_user_log l;
    memcpy(&l, m->payload, sizeof(l));
    int fd = take_fd(m, 0);
    uint64_t need = (vhost_mem_top(d) + VHOST_LOG_PAGE * 8 - 1) / (VHOST_LOG_PAGE * 8);
    struct stat st;
    const char *why = NULL;
    if (!proto(d, VHOST_USER_PROTOCOL_F_LOG_SHMFD))
        why = "LOG_SHMFD was not negotiated";
    else if (l.mmap_size == 0 || l.mmap_size > (1ull << 40) || l.mmap_offset + l.mmap_size < l.mmap_offset)
        why = "bad log size";
    else if (l.mmap_size < need)
        why = "log smaller than the memory table needs";
    else if (fstat(fd, &st) < 0 || (S_ISREG(st.st_mode) && l.mmap_offset + l.mmap_size > (uint64_t)st.st_size))
        why = "log beyond its fd";
    void *p = MAP_FAILED;
    if (!why) {
        uint64_t lead = l.mmap_offset & 4095;
        p = mmap(NULL, l.mmap_size + lead, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(l.mmap_offset - lead));
        if (p == MAP_FAILED)
            why = "mmap of the log failed";
        else
            p = (uint8_t *)p + lead;
    }
    if (why) {
        close(fd);
        LOG_W("vhost-user %s: SET_LOG_BASE size %#llx offset %#llx: %s", d->name,
              (unsigned long long)l.mmap_size, (unsigned long long)l.mmap_offset, why);
        return -EINVAL;
    }
    log_clear(d);
    d->log_fd = fd;
    d->log_size = l.mmap_size;
    d->log_offset = l.mmap_offset;
    d->log_map = (uint8_t *)p - (l.mmap_offset & 4095);
    d->log_map_len = l.mmap_size + (l.mmap_offset & 4095);
    LOG_I("vhost-user %s: dirty log of %llu bytes", d->name, (unsigned long long)l.mmap_size);
    if (OPS(d)->log_base)
        return OPS(d)->log_base(CTX(d), fd, l.mmap_offset, l.mmap_size, p);
    return 0;
}

static int set_vring_addr(struct vhost_dev *d, const struct vhost_msg *m)
{
    struct vhost_user_vring_addr a;
    memcpy(&a, m->payload, sizeof(a));
    int i = ring_index(d, a.index);
    if (i < 0)
        FAIL("%s: SET_VRING_ADDR ring %u out of range", d->name, a.index);
    struct vhost_ring *r = &d->rings[i];
    if (a.flags & ~1u)
        FAIL("%s: SET_VRING_ADDR flags %#x", d->name, a.flags);
    if (r->started) {
        /* QEMU turns used-ring logging on and off on running rings */
        if (a.desc != r->desc_qva || a.avail != r->avail_qva || a.used != r->used_qva)
            FAIL("%s: SET_VRING_ADDR moves running ring %d", d->name, i);
        r->addr_flags = a.flags;
        r->log_gpa = a.log;
        return 0;
    }
    r->desc_qva = a.desc;
    r->avail_qva = a.avail;
    r->used_qva = a.used;
    r->log_gpa = a.log;
    r->addr_flags = a.flags;
    r->addr_set = true;
    if (vhost_ring_translate(d, r) < 0) {
        r->addr_set = false;
        FAIL("%s: ring %d addresses (desc %#llx avail %#llx used %#llx, size %u) outside the memory table "
             "or misaligned", d->name, i, (unsigned long long)a.desc, (unsigned long long)a.avail,
             (unsigned long long)a.used, r->num);
    }
    vhost_ring_update(d, (uint16_t)i);
    return 0;
}

static int set_vring_fd(struct vhost_dev *d, struct vhost_msg *m)
{
    uint64_t v;
    memcpy(&v, m->payload, 8);
    int i = ring_index(d, (uint32_t)(v & VHOST_USER_VRING_IDX_MASK));
    bool nofd = v & VHOST_USER_VRING_NOFD;
    if (i < 0 || (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD)))
        FAIL("%s: request %u for ring %#llx", d->name, m->hdr.request, (unsigned long long)v);
    if (nofd != (m->nfds == 0))
        FAIL("%s: request %u: fd flag and %u fds disagree", d->name, m->hdr.request, m->nfds);
    int fd = nofd ? -1 : take_fd(m, 0);
    struct vhost_ring *r = &d->rings[i];
    switch (m->hdr.request) {
    case VHOST_USER_SET_VRING_KICK:
        close_fd(&r->kick_fd);
        r->kick_fd = fd;
        if (OPS(d)->ring_kick)
            OPS(d)->ring_kick(CTX(d), (uint16_t)i, fd);
        vhost_ring_update(d, (uint16_t)i);
        break;
    case VHOST_USER_SET_VRING_CALL:
        close_fd(&r->call_fd);
        r->call_fd = fd;
        if (OPS(d)->ring_call)
            OPS(d)->ring_call(CTX(d), (uint16_t)i, fd);
        break;
    default:
        close_fd(&r->err_fd);
        r->err_fd = fd;
        break;
    }
    return 0;
}

/* Reading stops until the glue completes request req (see struct vhost_pending). */
static struct vhost_pending pause_for_glue(struct vhost_dev *d, uint32_t req, bool need_reply, uint16_t ring)
{
    d->paused = true;
    d->serial++;
    d->pending_req = req;
    d->pending_ring = ring;
    d->pending_need_reply = need_reply;
    ev_io_stop(d->loop, &d->watch);
    if (OPS(d)->persist) {   /* a successor waits for the glue again */
        d->cur_state = VHOST_CUR_PAUSED;
        vhost_persist(d);
    }
    return (struct vhost_pending){d, ring, d->serial};
}

static bool is_mem_req(uint32_t req)
{
    return req == VHOST_USER_SET_MEM_TABLE || req == VHOST_USER_ADD_MEM_REG || req == VHOST_USER_REM_MEM_REG;
}

void vhost_session_repause(struct vhost_dev *d)
{
    uint32_t req = d->pending_req;
    uint16_t ring = d->pending_ring;
    struct vhost_pending p = pause_for_glue(d, req, d->pending_need_reply, ring);
    if (req == VHOST_USER_GET_VRING_BASE && OPS(d)->get_ring_base)
        OPS(d)->get_ring_base(CTX(d), ring, p);
    else if (req == VHOST_USER_GET_VRING_BASE)
        vhost_ring_base_done(p, d->rings[ring].base);
    else if (is_mem_req(req))
        OPS(d)->mem_wait ? OPS(d)->mem_wait(CTX(d), p) : vhost_mem_done(p, 0);
    else if (OPS(d)->log_wait)
        OPS(d)->log_wait(CTX(d), p);
    else
        vhost_log_done(p, 0);
}

/* Is p the request the connection waits for?  Then it is not any more. */
static bool take_pending(struct vhost_pending p, uint32_t req)
{
    struct vhost_dev *d = p.dev;
    if (!d || !d->paused || p.serial != d->serial || d->fd < 0 || d->pending_req != req)
        return false;   /* the connection it belonged to is gone, or it was answered */
    d->paused = false;
    return true;
}

static int get_vring_base(struct vhost_dev *d, const struct vhost_msg *m)
{
    struct vhost_user_vring_state s;
    memcpy(&s, m->payload, sizeof(s));
    int i = ring_index(d, s.index);
    if (i < 0)
        FAIL("%s: GET_VRING_BASE ring %u out of range", d->name, s.index);
    struct vhost_ring *r = &d->rings[i];
    /* the ring stops here; SET_VRING_KICK starts it again */
    close_fd(&r->kick_fd);
    if (OPS(d)->ring_kick)
        OPS(d)->ring_kick(CTX(d), (uint16_t)i, -1);
    vhost_ring_update(d, (uint16_t)i);
    if (!OPS(d)->get_ring_base) {
        struct vhost_user_vring_state rep = {(uint32_t)i, r->base};
        return vhost_reply(d, VHOST_USER_GET_VRING_BASE, &rep, sizeof(rep));
    }
    OPS(d)->get_ring_base(CTX(d), (uint16_t)i, pause_for_glue(d, VHOST_USER_GET_VRING_BASE, true, (uint16_t)i));
    return 0;
}

void vhost_ring_base_done(struct vhost_pending p, uint16_t index)
{
    struct vhost_dev *d = p.dev;
    if (!take_pending(p, VHOST_USER_GET_VRING_BASE))
        return;
    d->rings[p.ring].base = index;
    struct vhost_user_vring_state rep = {p.ring, index};
    if (vhost_reply(d, VHOST_USER_GET_VRING_BASE, &rep, sizeof(rep)) < 0) {
        vhost_conn_close_later(d, "GET_VRING_BASE reply failed");
        return;
    }
    vhost_conn_resume(d);
}

void vhost_log_done(struct vhost_pending p, int err)
{
    struct vhost_dev *d = p.dev;
    uint32_t req = d ? d->pending_req : 0;
    if ((req != VHOST_USER_SET_FEATURES && req != VHOST_USER_SET_LOG_BASE) || !take_pending(p, req))
        return;
    if (err < 0)
        LOG_W("vhost-user %s: the device does not log: %s", d->name, strerror(-err));
    uint64_t v = err < 0;
    if (vhost_msg_finish(d, req, &v, sizeof(v), d->pending_need_reply) < 0) {
        vhost_conn_close_later(d, "log reply failed");
        return;
    }
    vhost_conn_resume(d);
}

void vhost_mem_done(struct vhost_pending p, int err)
{
    struct vhost_dev *d = p.dev;
    uint32_t req = d ? d->pending_req : 0;
    if (!is_mem_req(req) || !take_pending(p, req))
        return;
    if (err < 0)
        LOG_W("vhost-user %s: the device did not confirm the old memory is unmapped: %s", d->name, strerror(-err));
    uint64_t v = err < 0;
    if (vhost_msg_finish(d, req, &v, sizeof(v), d->pending_need_reply) < 0) {
        vhost_conn_close_later(d, "memory table reply failed");
        return;
    }
    vhost_conn_resume(d);
}

static int set_features(struct vhost_dev *d, const struct vhost_msg *m)
{
    uint64_t f;
    memcpy(&f, m->payload, 8);
    uint64_t extra = f & ~d->offered;
    if (extra)
        FAIL("%s: SET_FEATURES %#llx has bits not offered: %#llx", d->name, (unsigned long long)f,
             (unsigned long long)extra);
    bool log_was = d->features & (1ull << VHOST_F_LOG_ALL), log_now = f & (1ull << VHOST_F_LOG_ALL);
    d->features = f;
    d->features_set = true;
    if (log_was != log_now)
        LOG_I("vhost-user %s: dirty logging %s", d->name, log_now ? "on" : "off");
    int rc = OPS(d)->features ? OPS(d)->features(CTX(d), f) : 0;
    for (uint16_t i = 0; i < vhost_nrings(d); i++)
        vhost_ring_update(d, i);
    return rc;
}

static int mem_reg(struct vhost_dev *d, struct vhost_msg *m)
{
    struct vhost_user_mem_reg mr;
    memcpy(&mr, m->payload, sizeof(mr));
    if (!proto(d, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
        FAIL("%s: memory slot request without CONFIGURE_MEM_SLOTS", d->name);
    int rc;
    if (m->hdr.request == VHOST_USER_REM_MEM_REG) {
        if ((rc = vhost_mem_remove(d, &mr.region)) < 0)
            FAIL("%s: REM_MEM_REG gpa %#llx: no such region", d->name, (unsigned long long)mr.region.gpa);
    } else {
        const char *why = "";
        if ((rc = vhost_mem_add(d, &mr.region, m->fds[0], &why)) < 0)
            FAIL("%s: ADD_MEM_REG gpa %#llx size %#llx: %s", d->name, (unsigned long long)mr.region.gpa,
                 (unsigned long long)mr.region.size, why);
        if (rc == 0)
            take_fd(m, 0);   /* the table keeps it; an identical region's fd closes with the message */
    }
    return rc == 0 ? mem_changed(d) : 0;
}

static void reset_device(struct vhost_dev *d)
{
    LOG_I("vhost-user %s: device reset by the front-end", d->name);
    stop_all_rings(d, true);
    for (unsigned i = 0; i < vhost_nrings(d); i++)
        ring_clear(&d->rings[i]);
    d->status = 0;
    if (OPS(d)->reset)
        OPS(d)->reset(CTX(d));
}

/* Requests that answer with a payload of their own; 1 when handled. */
static int handle_get(struct vhost_dev *d, const struct vhost_msg *m)
{
    switch (m->hdr.request) {
    case VHOST_USER_GET_FEATURES: return reply_u64(d, m->hdr.request, d->offered) < 0 ? -1 : 1;
    case VHOST_USER_GET_PROTOCOL_FEATURES: return reply_u64(d, m->hdr.request, d->proto_offered) < 0 ? -1 : 1;
    case VHOST_USER_GET_QUEUE_NUM: return reply_u64(d, m->hdr.request, d->cfg.queue_pairs) < 0 ? -1 : 1;
    case VHOST_USER_GET_MAX_MEM_SLOTS: return reply_u64(d, m->hdr.request, VHOST_MAX_REGIONS) < 0 ? -1 : 1;
    case VHOST_USER_GET_STATUS: return reply_u64(d, m->hdr.request, d->status) < 0 ? -1 : 1;
    default: return 0;
    }
}

static int dispatch(struct vhost_dev *d, struct vhost_msg *m)
{
    uint64_t v = 0;
    if (m->hdr.size >= 8)
        memcpy(&v, m->payload, 8);
    struct vhost_user_vring_state s;
    memcpy(&s, m->payload, sizeof(s));
    int i;
    switch (m->hdr.request) {
    case VHOST_USER_SET_FEATURES: return set_features(d, m);
    case VHOST_USER_SET_OWNER:
        d->owner = true;
        return 0;
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
        reset_device(d);
        return 0;
    case VHOST_USER_SET_MEM_TABLE: {
        int rc = set_mem_table(d, m);
        return rc != 0 ? (rc < 0 ? rc : 0) : mem_changed(d);
    }
    case VHOST_USER_SET_LOG_BASE: return set_log_base(d, m);
    case VHOST_USER_SET_LOG_FD: {
        int fd = take_fd(m, 0);
        close(fd);   /* logging is through the shared bitmap only */
        return 0;
    }
    case VHOST_USER_SET_VRING_NUM:
        if ((i = ring_index(d, s.index)) < 0 || s.num == 0 || s.num > VHOST_MAX_RING_SIZE || (s.num & (s.num - 1)))
            FAIL("%s: SET_VRING_NUM ring %u size %u (a power of two up to %u)", d->name, s.index, s.num,
                 VHOST_MAX_RING_SIZE);
        if (d->rings[i].started)
            FAIL("%s: SET_VRING_NUM on running ring %d", d->name, i);
        d->rings[i].num = (uint16_t)s.num;
        if (d->rings[i].addr_set && vhost_ring_translate(d, &d->rings[i]) < 0)
            LOG_W("vhost-user %s: ring %d of size %u does not fit its addresses: it stays stopped until "
                  "SET_VRING_ADDR", d->name, i, s.num);
        return 0;
    case VHOST_USER_SET_VRING_ADDR: return set_vring_addr(d, m);
    case VHOST_USER_SET_VRING_BASE:
        if ((i = ring_index(d, s.index)) < 0 || s.num > 0xffff)
            FAIL("%s: SET_VRING_BASE ring %u index %u", d->name, s.index, s.num);
        if (d->rings[i].started)
            FAIL("%s: SET_VRING_BASE on running ring %d", d->name, i);
        d->rings[i].base = (uint16_t)s.num;
        return 0;
    case VHOST_USER_GET_VRING_BASE: return get_vring_base(d, m);
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR: return set_vring_fd(d, m);
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        if (v & ~d->proto_offered)
            FAIL("%s: SET_PROTOCOL_FEATURES %#llx not offered", d->name, (unsigned long long)v);
        d->proto = v;
        return 0;
    case VHOST_USER_SET_VRING_ENABLE:
        if ((i = ring_index(d, s.index)) < 0 || s.num > 1)
            FAIL("%s: SET_VRING_ENABLE ring %u value %u", d->name, s.index, s.num);
        d->rings[i].enabled = s.num;
        vhost_ring_update(d, (uint16_t)i);
        return 0;
    case VHOST_USER_SEND_RARP: {
        uint8_t mac[6];
        memcpy(mac, m->payload, 6);
        LOG_I("vhost-user %s: RARP for %02x:%02x:%02x:%02x:%02x:%02x", d->name, mac[0], mac[1], mac[2], mac[3],
              mac[4], mac[5]);
        if (OPS(d)->rarp)
            OPS(d)->rarp(CTX(d), mac);
        return 0;
    }
    case VHOST_USER_NET_SET_MTU:
        if (v < 68 || v > 65535)
            FAIL("%s: NET_SET_MTU %llu", d->name, (unsigned long long)v);
        return OPS(d)->mtu ? OPS(d)->mtu(CTX(d), (uint16_t)v) : 0;
    case VHOST_USER_SET_BACKEND_REQ_FD:
        if (!proto(d, VHOST_USER_PROTOCOL_F_BACKEND_REQ))
            FAIL("%s: SET_BACKEND_REQ_FD without BACKEND_REQ", d->name);
        if (d->backend_fd >= 0)
            close(d->backend_fd);
        d->backend_fd = take_fd(m, 0);
        return 0;
    case VHOST_USER_ADD_MEM_REG:
    case VHOST_USER_REM_MEM_REG: return mem_reg(d, m);
    case VHOST_USER_SET_STATUS:
        if (v > 0xff)
            FAIL("%s: SET_STATUS %#llx", d->name, (unsigned long long)v);
        d->status = (uint8_t)v;
        return OPS(d)->status ? OPS(d)->status(CTX(d), d->status) : 0;
    default:
        FAIL("%s: request %u is not served", d->name, m->hdr.request);
    }
}

/* Must the reply wait until the device logs?  A new log, or logging turned on. */
static bool log_change(const struct vhost_dev *d, uint32_t req, uint64_t features_before)
{
    uint64_t log_all = 1ull << VHOST_F_LOG_ALL;
    if (req == VHOST_USER_SET_LOG_BASE)
        return true;
    return req == VHOST_USER_SET_FEATURES && (d->features & log_all) && !(features_before & log_all);
}

int vhost_session_handle(struct vhost_dev *d)
{
    struct vhost_msg *m = &d->in;
    LOG_D("vhost-user %s: request %u, %u bytes, %u fds", d->name, m->hdr.request, m->hdr.size, m->nfds);
    const char *bad = vhost_msg_check(m);
    if (bad) {
        LOG_W("vhost-user %s: malformed request %u: %s", d->name, m->hdr.request, bad);
        return -1;
    }
    int got = handle_get(d, m);
    if (got)
        return got < 0 ? -1 : 0;
    bool need_reply = m->hdr.flags & VHOST_USER_FLAG_NEED_REPLY;
    uint32_t req = m->hdr.request;
    uint64_t features_before = d->features;
    int rc = dispatch(d, m);
    if (req == VHOST_USER_GET_VRING_BASE)
        return rc < 0 ? -1 : 0;   /* answered (now or when the glue completes) */
    if (rc == VHOST_MEM_WAIT && is_mem_req(req) && OPS(d)->mem_wait) {
        OPS(d)->mem_wait(CTX(d), pause_for_glue(d, req, need_reply && proto(d, VHOST_USER_PROTOCOL_F_REPLY_ACK), 0));
        return 0;
    }
    if (rc > 0)
        rc = 0;
    if (rc == 0 && OPS(d)->log_wait && log_change(d, req, features_before)) {
        bool reply = req == VHOST_USER_SET_LOG_BASE || (need_reply && proto(d, VHOST_USER_PROTOCOL_F_REPLY_ACK));
        OPS(d)->log_wait(CTX(d), pause_for_glue(d, req, reply, 0));
        return 0;
    }
    if (req == VHOST_USER_SET_LOG_BASE)   /* always answered */
        return reply_u64(d, req, rc < 0) < 0 ? -1 : 0;
    if (need_reply && proto(d, VHOST_USER_PROTOCOL_F_REPLY_ACK))
        return reply_u64(d, req, rc < 0) < 0 ? -1 : 0;
    return rc < 0 ? -1 : 0;   /* a failure nobody would hear of: drop the session */
}
