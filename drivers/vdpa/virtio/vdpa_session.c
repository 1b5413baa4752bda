/* vhost-user session -> VF device operations, one at a time (see vdpa_session.h). */
#include "drivers/vdpa/virtio/vdpa_session.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "drivers/common/virtio_mi/vfe_ha_blob.h"
#include "drivers/vdpa/virtio/vdpa_timeline.h"
#include "lib/log/vfe_log.h"
#include "lib/vhost/vhost_proto.h"

#define MAX_PENDING 64
/* QEMU stops a device one GET_VRING_BASE at a time; the rings it has not asked
 * for yet stay stopped this long (it has paused the guest), then run again. */
#define HOLD_SECONDS 2.0

/* SEND_RARP after a migration: the device announces the guest's MAC from the
 * VF, once the VF runs (QEMU sends it when the migration completes, before
 * `cont` starts the rings).  The command in flight holds an announce_op,
 * orphaned (s NULL) when the session is freed first. */
struct announce_op {
    struct vdpa_session *s;
    uint8_t mac[6];
};

struct announce {
    bool pending;                       /* mac waits for the VF to run */
    uint8_t mac[6];
    struct announce_op *op;             /* in flight, or NULL */
    bool unsupported;                   /* the device cannot announce: said once, never asked again */
    uint64_t requests, sent, failed, refused;
};

struct vdpa_session {
    struct ev_loop *loop;
    struct vdpa_vf *vf;
    struct vhost_dev *dev;
    char name[32];
    uint64_t features;
    bool no_host_notifiers;
    bool busy;                          /* a device operation is in flight */
    ev_timer kick;                      /* converge from the loop */
    uint64_t running_mask;              /* rings the device runs */
    unsigned notifiers;                 /* host notifiers offered for them */
    unsigned gen, run_gen;              /* connection generation, and the one the rings ran in */
    uint16_t saved[VDPA_MAX_RINGS];     /* indices from the last stop */
    uint64_t saved_mask;
    bool holding;                       /* the front-end is stopping the rings (GET_VRING_BASE) */
    ev_timer hold;
    bool log_wanted, log_active, log_known;
    bool log_stale;                     /* the device still logs into a log the front-end replaced */
    bool log_fill;                      /* ... so the new log starts all dirty */
    bool log_waiting;                   /* the front-end waits for the device to log */
    struct vhost_pending log_pending;
    struct vhost_pending mem_pending;   /* a memory table reply waiting for the device's unmaps */
    int log_err;                        /* of the last dirty-tracking operation */
    int log_fd;
    uint64_t log_offset, log_size;
    bool unmap_when_stopped;
    struct vhost_pending pending[MAX_PENDING];
    unsigned npending;
    void (*destroy_done)(void *ctx);
    void *destroy_ctx;
    bool destroying;
    uint8_t op;                         /* SOP_*: the device operation busy stands for */
    void (*persist)(void *ctx);         /* HA: deposit now (vdpa_session_cfg) */
    bool (*persist_reply)(void *ctx, const void *reply, size_t len);
    void *persist_ctx;
    ev_timer adopt_t;                   /* an adopted session's first steps, from the loop */
    struct vdpa_timeline tl;            /* the last switchover */
    struct announce announce;           /* SEND_RARP: the device announces the guest's MAC */
};

enum { SOP_NONE, SOP_START, SOP_STOP, SOP_LOG };

static void persist(struct vdpa_session *s)
{
    if (s->persist && !s->destroying)
        s->persist(s->persist_ctx);
}

static void converge(struct vdpa_session *s);

static void schedule_in(struct vdpa_session *s, double delay)
{
    if (!ev_is_active(&s->kick)) {
        ev_timer_set(&s->kick, delay, 0.);
        ev_timer_start(s->loop, &s->kick);
    }
}

static void schedule(struct vdpa_session *s)
{
    schedule_in(s, 0.);
}

static void kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    converge(w->data);
}

/* Rings the front-end has started now. */
static uint64_t started_rings(const struct vdpa_session *s)
{
    uint64_t m = 0;
    if (s->destroying || !s->dev)
        return 0;
    for (uint16_t i = 0; i < VDPA_MAX_RINGS; i++) {
        const struct vhost_ring *r = vhost_get_ring(s->dev, i);
        if (r && r->started)
            m |= 1ull << i;
    }
    return m;
}

/* Rings the device should run: none while the front-end is stopping them. */
static uint64_t wanted_rings(const struct vdpa_session *s)
{
    return s->holding ? 0 : started_rings(s);
}

static void op_done(void *ctx, int err)
{
    struct vdpa_session *s = ctx;
    s->busy = false;
    s->op = SOP_NONE;
    if (err)
        LOG_E("%s: device operation failed: %s", s->name, strerror(-err));
    persist(s);
    schedule(s);
}

static void log_op_done(void *ctx, int err)
{
    struct vdpa_session *s = ctx;
    s->log_err = err;
    op_done(s, err);
}

static void stopped(void *ctx, int err, const uint16_t *last_avail, unsigned n)
{
    struct vdpa_session *s = ctx;
    vdpa_tl_source(&s->tl, VDPA_TL_STOPPED);
    if (!err && s->run_gen == s->gen) {   /* indices of a gone connection mean nothing */
        for (unsigned i = 0; i < n && i < VDPA_MAX_RINGS; i++)
            if (s->running_mask & (1ull << i)) {
                s->saved[i] = last_avail[i];
                s->saved_mask |= 1ull << i;
            }
    }
    s->running_mask = 0;
    op_done(s, err);
}

/* Rings run: offer QEMU each ring's doorbell page, so guest kicks reach the
 * device without leaving the guest.  QEMU drops them at every GET_VRING_BASE. */
static void offer_notifiers(struct vdpa_session *s)
{
    s->notifiers = 0;
    for (uint16_t i = 0; i < VDPA_MAX_RINGS; i++) {
        int fd;
        uint64_t off;
        if (!(s->running_mask & (1ull << i)) || vdpa_vf_host_notifier(s->vf, i, &fd, &off) < 0)
            continue;
        if (vhost_host_notifier(s->dev, i, fd, VDPA_NOTIFIER_SIZE, off) < 0)
            return;   /* not negotiated, or no backend channel: kicks stay on the ioeventfd */
        s->notifiers++;
    }
    if (s->notifiers)
        LOG_I("%s: %u host notifiers offered", s->name, s->notifiers);
}

static void started(void *ctx, int err)
{
    struct vdpa_session *s = ctx;
    if (!err && s->dev && vhost_connected(s->dev) && s->run_gen == s->gen && !s->no_host_notifiers)
        offer_notifiers(s);
    if (!err)
        vdpa_tl_dest(&s->tl, VDPA_TL_STARTED, (unsigned)__builtin_popcountll(s->running_mask));
    op_done(s, err);
}

static unsigned start_rings(struct vdpa_session *s, uint64_t want, struct vdpa_ring *rings);

/* What the device is started with: the front-end's features without the
 * vhost-user ones and without what QEMU handles itself (GUEST_ANNOUNCE,
 * unless the device offers it too). */
static uint64_t device_features_of(const struct vdpa_session *s)
{
    uint64_t f = s->features & ~(1ull << VHOST_USER_F_PROTOCOL_FEATURES | 1ull << VHOST_F_LOG_ALL);
    if (!(vdpa_vf_device_features(s->vf) & (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE)))
        f &= ~(1ull << VIRTIO_NET_F_GUEST_ANNOUNCE);
    return f;
}

static int start(struct vdpa_session *s, uint64_t want)
{
    struct vdpa_ring rings[VDPA_MAX_RINGS];
    unsigned n = start_rings(s, want, rings);
    uint64_t f = device_features_of(s);
    s->busy = true;
    s->op = SOP_START;
    s->running_mask = want;   /* before the device hears of it: a successor resumes this start */
    s->run_gen = s->gen;
    vdpa_tl_dest(&s->tl, VDPA_TL_START_BEGUN, 0);
    int rc = vdpa_vf_start(s->vf, f, rings, n, started, s);
    if (rc < 0) {
        s->busy = false;
        s->op = SOP_NONE;
        s->running_mask = 0;
        LOG_E("%s: start: %s", s->name, strerror(-rc));
        return rc;
    }
    return 0;
}

/* How long the other rings stay stopped waiting for their GET_VRING_BASE:
 * counted from the last request or answer, so a slow stop (pull mode's final
 * read, a slow admin queue) does not eat the front-end's time. */
static void hold_from_now(struct vdpa_session *s)
{
    ev_timer_stop(s->loop, &s->hold);
    ev_timer_set(&s->hold, HOLD_SECONDS, 0.);
    ev_timer_start(s->loop, &s->hold);
}

/* Answer every GET_VRING_BASE whose ring the device no longer runs.  The list
 * is settled before the first answer goes out. */
static void answer_pending(struct vdpa_session *s)
{
    struct vhost_pending answer[MAX_PENDING];
    uint16_t idx[MAX_PENDING];
    unsigned keep = 0, n = 0;
    for (unsigned i = 0; i < s->npending; i++) {
        struct vhost_pending p = s->pending[i];
        if (s->running_mask & (1ull << p.ring)) {
            s->pending[keep++] = p;
            continue;
        }
        idx[n] = (s->saved_mask & (1ull << p.ring)) ? s->saved[p.ring] : vhost_get_ring(s->dev, p.ring)->base;
        LOG_D("%s: ring %u base %u", s->name, p.ring, idx[n]);
        s->saved_mask &= ~(1ull << p.ring);   /* the front-end owns the index now */
        vdpa_tl_answered(&s->tl, p.ring);
        answer[n++] = p;
    }
    s->npending = keep;
    if (n && s->holding)
        hold_from_now(s);   /* the front-end asks for the next ring only after this answer */
    for (unsigned i = 0; i < n; i++)
        vhost_ring_base_done(answer[i], idx[i]);
}

/* The front-end waits for the reply to a log change: give it once the device
 * logs into the current log (or has failed to). */
static void answer_log_wait(struct vdpa_session *s)
{
    if (!s->log_waiting || s->busy || (s->log_known && s->log_wanted != s->log_active))
        return;
    int err = s->log_wanted ? (s->log_known ? s->log_err : -ENOENT) : 0;
    if (err)
        LOG_E("%s: the front-end asked for dirty logging, the device does not log: %s", s->name, strerror(-err));
    uint64_t size;
    uint8_t *log = s->dev ? vhost_log(s->dev, &size) : NULL;
    if (!err && s->log_fill && s->log_wanted && log) {
        /* between tracking into the old log and into the new one the device
         * wrote unlogged: every page counts as dirty (the front-end sends all
         * memory again, never misses a page) */
        memset(log, 0xff, size);
        LOG_I("%s: new dirty log while logging: every page marked dirty", s->name);
    }
    s->log_fill = false;
    s->log_waiting = false;
    vhost_log_done(s->log_pending, err);
}

static void announce_unsupported(struct vdpa_session *s)
{
    s->announce.unsupported = true;
    s->announce.pending = false;
    LOG_N("%s: the device cannot announce a MAC (no such admin command): after a migration the guest is found "
          "by its own announcement (GUEST_ANNOUNCE) or its first frame", s->name);
}

static void announced(void *ctx, int err)
{
    struct announce_op *op = ctx;
    struct vdpa_session *s = op->s;
    uint8_t mac[6];
    memcpy(mac, op->mac, 6);
    free(op);
    if (!s)
        return;   /* the session went first */
    struct announce *a = &s->announce;
    a->op = NULL;
    if (!err) {
        a->sent++;
        LOG_I("%s: the device announced %02x:%02x:%02x:%02x:%02x:%02x", s->name, mac[0], mac[1], mac[2], mac[3],
              mac[4], mac[5]);
    } else if (err == -EOPNOTSUPP) {
        announce_unsupported(s);
    } else if (err == -EBUSY) {
        if (!a->pending)
            memcpy(a->mac, mac, 6);
        a->pending = true;   /* the VF stopped meanwhile: again when it runs (a newer SEND_RARP wins) */
    } else {
        a->failed++;
        LOG_W("%s: announce failed: %s", s->name, strerror(-err));
    }
    schedule(s);
}

/* A SEND_RARP waiting for the VF to run goes out now that it does. */
static void announce_if_running(struct vdpa_session *s)
{
    struct announce *a = &s->announce;
    if (!a->pending || a->op || s->destroying || !s->running_mask || vdpa_vf_state(s->vf) != VDPA_VF_RUNNING)
        return;
    struct announce_op *op = malloc(sizeof(*op));
    if (!op) {
        a->failed++;
        a->pending = false;
        return;
    }
    op->s = s;
    memcpy(op->mac, a->mac, 6);
    a->pending = false;
    int rc = vdpa_vf_announce(s->vf, a->mac, announced, op);
    if (rc == 0) {
        a->op = op;
        return;
    }
    free(op);
    if (rc == -EOPNOTSUPP) {
        announce_unsupported(s);
    } else {
        a->failed++;
        LOG_W("%s: announce: %s", s->name, strerror(-rc));
    }
}

/* The session is freed: a command in flight completes into nothing. */
static void announce_orphan(struct vdpa_session *s)
{
    if (s->announce.op)
        s->announce.op->s = NULL;
    s->announce.op = NULL;
}

static void converge(struct vdpa_session *s)
{
    if (s->busy)
        return;   /* op_done schedules again */
    uint64_t want = wanted_rings(s);
    for (unsigned i = 0; i < s->npending; i++)
        want &= ~(1ull << s->pending[i].ring);   /* a ring asked for its base is stopping */
    int rc = 0;
    if (s->running_mask && s->running_mask != want) {
        s->busy = true;
        s->op = SOP_STOP;
        vdpa_tl_source(&s->tl, VDPA_TL_STOP_BEGUN);
        rc = vdpa_vf_stop(s->vf, stopped, s);
        if (rc < 0) {
            s->busy = false;
            s->op = SOP_NONE;
            s->running_mask = 0;
        } else {
            return;
        }
    }
    answer_pending(s);
    if (s->log_stale) {   /* a new log: tracking into the old one stops first */
        s->log_stale = false;
        s->busy = true;
        s->op = SOP_LOG;
        if ((rc = vdpa_vf_log_stop(s->vf, log_op_done, s)) == 0)
            return;
        s->busy = false;
        s->op = SOP_NONE;
        LOG_E("%s: dirty tracking stop: %s", s->name, strerror(-rc));
    }
    if (s->log_known && s->log_wanted != s->log_active && !s->destroying) {
        s->busy = true;
        s->op = SOP_LOG;
        s->log_active = s->log_wanted;   /* as a successor must see it when the device hears of it */
        rc = s->log_wanted ? vdpa_vf_log_start(s->vf, s->log_fd, s->log_offset, s->log_size, log_op_done, s)
                           : vdpa_vf_log_stop(s->vf, log_op_done, s);
        if (rc == 0)
            return;
        s->busy = false;
        s->op = SOP_NONE;
        LOG_E("%s: dirty tracking %s: %s", s->name, s->log_wanted ? "start" : "stop", strerror(-rc));
        s->log_err = rc;
        s->log_active = s->log_wanted;   /* do not retry in a loop */
    }
    answer_log_wait(s);
    if (!s->running_mask && s->unmap_when_stopped) {
        s->unmap_when_stopped = false;
        vdpa_vf_set_mem(s->vf, NULL, 0);
        persist(s);   /* a successor must not take maps over that are gone */
    }
    if (want && !s->running_mask && start(s, want) == 0)
        return;
    announce_if_running(s);
    if (s->destroying && !s->busy && !s->running_mask) {
        ev_timer_stop(s->loop, &s->kick);
        ev_timer_stop(s->loop, &s->hold);
        ev_timer_stop(s->loop, &s->adopt_t);
        void (*done)(void *) = s->destroy_done;
        void *ctx = s->destroy_ctx;
        vdpa_vf_set_guest(s->vf, NULL);   /* the VF outlives us */
        vdpa_vf_sync_cancel(s->vf);
        announce_orphan(s);
        free(s);
        if (done)
            done(ctx);
    }
}

static void hold_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vdpa_session *s = w->data;
    if (s->npending)
        return;   /* the front-end waits for our answer: the hold restarts when it goes out */
    if (s->holding && started_rings(s))
        LOG_W("%s: the front-end stopped only some rings; the others run again", s->name);
    s->holding = false;
    schedule(s);
}

static void release_hold(struct vdpa_session *s)
{
    s->holding = false;
    ev_timer_stop(s->loop, &s->hold);
}

/* ---- lib/vhost callbacks ---- */

static void on_connected(void *ctx, struct vhost_dev *d)
{
    struct vdpa_session *s = ctx;
    s->dev = d;
    s->saved_mask = 0;
    s->gen++;
    vdpa_tl_connected(&s->tl);
    release_hold(s);
}

/* The front-end is gone (or the session ends): stop tracking, stop and unmap
 * the device, forget what it asked. */
static void forget_front_end(struct vdpa_session *s)
{
    s->gen++;
    s->announce.pending = false;   /* a RARP of a front-end that is gone is not sent */
    s->saved_mask = 0;
    s->npending = 0;
    s->log_waiting = false;
    vdpa_vf_sync_cancel(s->vf);   /* a memory table reply for a front-end that is gone */
    s->log_fill = false;
    s->log_wanted = false;
    s->log_known = s->log_active || s->log_stale;   /* stop tracking if it runs */
    s->log_active = s->log_active || s->log_stale;
    s->log_stale = false;
    s->unmap_when_stopped = true;
    release_hold(s);
    for (uint16_t i = 0; i < VDPA_MAX_RINGS && i < vdpa_vf_num_queues(s->vf); i++) {
        vdpa_vf_set_kick(s->vf, i, -1);
        vdpa_vf_set_call(s->vf, i, -1);
    }
    schedule(s);
}

static void on_disconnected(void *ctx, struct vhost_dev *d)
{
    forget_front_end(ctx);
}

static int on_features(void *ctx, uint64_t f)
{
    struct vdpa_session *s = ctx;
    s->features = f;
    s->log_wanted = f & (1ull << VHOST_F_LOG_ALL);
    schedule(s);
    return 0;
}

static int on_mem(void *ctx, const struct vhost_region *r, unsigned n)
{
    struct vdpa_session *s = ctx;
    struct vdpa_region regs[VDPA_MAX_REGIONS];
    if (n > VDPA_MAX_REGIONS)
        return -E2BIG;
    for (unsigned i = 0; i < n; i++)
        regs[i] = (struct vdpa_region){r[i].gpa, r[i].size, r[i].fd, r[i].mmap_offset};
    s->unmap_when_stopped = false;
    vdpa_tl_mem(&s->tl, s->running_mask != 0);
    int rc = vdpa_vf_set_mem(s->vf, regs, n);
    vdpa_tl_dest(&s->tl, VDPA_TL_MEM_MAPPED, 0);
    /* QEMU may reuse removed memory once it has the reply: not before the device let go of it */
    return rc == 0 && vdpa_vf_unmaps_pending(s->vf) ? VHOST_MEM_WAIT : rc;
}

static void mem_synced(void *ctx, int err)
{
    struct vdpa_session *s = ctx;
    vhost_mem_done(s->mem_pending, err);
}

static void on_mem_wait(void *ctx, struct vhost_pending p)
{
    struct vdpa_session *s = ctx;
    s->mem_pending = p;
    int rc = vdpa_vf_sync(s->vf, mem_synced, s);
    if (rc < 0) {
        LOG_E("%s: cannot wait for the device's unmaps: %s", s->name, strerror(-rc));
        vhost_mem_done(p, rc);
    }
}

static int on_ring_start(void *ctx, uint16_t i, const struct vhost_ring *r)
{
    /* the front-end starts rings again: nothing is stopping any more */
    release_hold(ctx);
    /* front-ends enable rings one message at a time: gather them into one start */
    schedule_in(ctx, 0.005);
    return 0;
}

static void on_ring_stop(void *ctx, uint16_t i)
{
    schedule(ctx);
}

static int on_kick(void *ctx, uint16_t i, int fd)
{
    struct vdpa_session *s = ctx;
    return vdpa_vf_set_kick(s->vf, i, fd);
}

static int on_call(void *ctx, uint16_t i, int fd)
{
    struct vdpa_session *s = ctx;
    return vdpa_vf_set_call(s->vf, i, fd);
}

static void on_get_base(void *ctx, uint16_t i, struct vhost_pending p)
{
    struct vdpa_session *s = ctx;
    vdpa_tl_get_base(&s->tl, i, s->holding);
    if (s->npending == MAX_PENDING) {
        vhost_ring_base_done(p, vhost_get_ring(p.dev, i)->base);
        return;
    }
    s->pending[s->npending++] = p;
    s->holding = true;   /* the front-end is stopping the device: the other rings follow */
    hold_from_now(s);
    schedule(s);
}

static int on_log(void *ctx, int fd, uint64_t offset, uint64_t size, uint8_t *base)
{
    struct vdpa_session *s = ctx;
    s->log_fd = fd;
    s->log_offset = offset;
    s->log_size = size;
    s->log_known = true;
    s->log_stale = s->log_stale || s->log_active;
    s->log_fill = s->log_fill || s->log_stale;
    s->log_active = false;   /* a new log: tracking (re)starts into it */
    schedule(s);
    return 0;
}

static void on_log_wait(void *ctx, struct vhost_pending p)
{
    struct vdpa_session *s = ctx;
    s->log_waiting = true;
    s->log_pending = p;
    schedule(s);
}

static void on_rarp(void *ctx, const uint8_t mac[6])
{
    struct vdpa_session *s = ctx;
    struct announce *a = &s->announce;
    a->requests++;
    if (!vfe_mig_mac_valid(mac)) {
        a->refused++;
        LOG_W("%s: SEND_RARP for %02x:%02x:%02x:%02x:%02x:%02x refused: not a unicast address", s->name, mac[0],
              mac[1], mac[2], mac[3], mac[4], mac[5]);
        return;
    }
    if (a->unsupported)
        return;   /* said once already; the guest (GUEST_ANNOUNCE) or its own traffic is found */
    memcpy(a->mac, mac, 6);
    a->pending = true;   /* sent from converge once the VF runs */
    schedule(s);
}

/* SET_STATUS with DRIVER_OK: the front-end has set every ring up (QEMU sends
 * it after the last one), so the rings start now rather than after the wait
 * that gathers ring enables from front-ends without the STATUS feature. */
static int on_status(void *ctx, uint8_t status)
{
    struct vdpa_session *s = ctx;
    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && ev_is_active(&s->kick)) {
        ev_timer_stop(s->loop, &s->kick);
        schedule(s);
    }
    return 0;
}

static void on_persist(void *ctx, struct vhost_dev *d)
{
    persist(ctx);
}

static bool on_persist_reply(void *ctx, struct vhost_dev *d, const void *reply, size_t len)
{
    struct vdpa_session *s = ctx;
    return s->persist_reply && !s->destroying && s->persist_reply(s->persist_ctx, reply, len);
}

static void vf_step(void *ctx)
{
    persist(ctx);
}

/* ---- the guest's memory and rings, for software dirty tracking (vdpa_swlog.h) ---- */

static void *guest_host(void *ctx, uint64_t gpa, uint64_t len)
{
    struct vdpa_session *s = ctx;
    return s->dev && vhost_connected(s->dev) ? vhost_gpa_to_host(s->dev, gpa, len) : NULL;
}

static unsigned guest_regions(void *ctx, struct vdpa_swlog_span *out, unsigned max)
{
    struct vdpa_session *s = ctx;
    const struct vhost_region *r;
    unsigned n = s->dev && vhost_connected(s->dev) ? vhost_regions(s->dev, &r) : 0;
    for (unsigned i = 0; i < n && i < max; i++)
        out[i] = (struct vdpa_swlog_span){r[i].gpa, r[i].size};
    return n < max ? n : max;
}

/* Every ring the front-end has set up, started or not: marking a ring that
 * does not run costs a little, missing one that does loses pages. */
static int guest_ring(void *ctx, uint16_t q, struct vdpa_swlog_ring *out)
{
    struct vdpa_session *s = ctx;
    if (!s->dev || !vhost_connected(s->dev))
        return 0;
    if (vhost_features(s->dev) & (1ull << VIRTIO_F_RING_PACKED))
        return -EPROTONOSUPPORT;
    const struct vhost_ring *r = vhost_get_ring(s->dev, q);
    if (!r || !r->num || !r->addr_ok)
        return 0;
    *out = (struct vdpa_swlog_ring){r->num, r->desc, r->avail, r->used};
    return 1;
}

static void attach_guest(struct vdpa_session *s)
{
    const struct vdpa_swlog_guest g = {guest_host, guest_regions, guest_ring, s};
    vdpa_vf_set_guest(s->vf, &g);
}

static const struct vhost_ops session_ops = {
    .connected = on_connected, .disconnected = on_disconnected, .features = on_features, .mem_table = on_mem, .mem_wait = on_mem_wait,
    .ring_start = on_ring_start, .ring_stop = on_ring_stop, .ring_kick = on_kick, .ring_call = on_call,
    .get_ring_base = on_get_base, .log_base = on_log, .log_wait = on_log_wait, .rarp = on_rarp,
    .status = on_status,
};

static const struct vhost_ops session_ops_ha = {
    .connected = on_connected, .disconnected = on_disconnected, .features = on_features, .mem_table = on_mem, .mem_wait = on_mem_wait,
    .ring_start = on_ring_start, .ring_stop = on_ring_stop, .ring_kick = on_kick, .ring_call = on_call,
    .get_ring_base = on_get_base, .log_base = on_log, .log_wait = on_log_wait, .rarp = on_rarp,
    .status = on_status, .persist = on_persist, .persist_reply = on_persist_reply,
};

static void adopt_cb(struct ev_loop *loop, ev_timer *w, int revents);

static struct vdpa_session *session_new(struct ev_loop *loop, const struct vdpa_session_cfg *cfg)
{
    struct vdpa_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->log_fd = -1;
    s->no_host_notifiers = cfg->no_host_notifiers;
    s->persist = cfg->persist;
    s->persist_reply = cfg->persist_reply;
    s->persist_ctx = cfg->persist_ctx;
    snprintf(s->name, sizeof(s->name), "%s", cfg->name);
    ev_timer_init(&s->kick, kick_cb, 0., 0.);
    s->kick.data = s;
    ev_timer_init(&s->hold, hold_cb, 0., 0.);
    s->hold.data = s;
    ev_timer_init(&s->adopt_t, adopt_cb, 0., 0.);
    s->adopt_t.data = s;
    return s;
}

static struct vhost_cfg vhost_cfg_of(struct vdpa_session *s, const struct vdpa_session_cfg *cfg, uint16_t max_pairs,
                                     uint64_t features)
{
    uint16_t pairs = max_pairs;
    if (pairs > VHOST_MAX_QUEUE_PAIRS)
        pairs = VHOST_MAX_QUEUE_PAIRS;
    /* GUEST_ANNOUNCE is QEMU's business (its config space and control queue,
     * never the device's: start() masks it) but QEMU 7.2 takes it from the
     * back-end's features: offered, the guest announces itself after a
     * migration; not negotiated, QEMU sends SEND_RARP instead. */
    features |= 1ull << VIRTIO_NET_F_GUEST_ANNOUNCE;
    return (struct vhost_cfg){.path = cfg->socket_path, .client = cfg->client, .perm = cfg->perm,
                              .queue_pairs = pairs ? pairs : 1, .features = features,
                              .ops = cfg->persist ? &session_ops_ha : &session_ops, .ctx = s, .name = cfg->name};
}

struct vdpa_session *vdpa_session_create(struct ev_loop *loop, struct vdpa_vf *vf,
                                         const struct vdpa_session_cfg *cfg, int *err)
{
    struct vdpa_session *s = session_new(loop, cfg);
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->vf = vf;
    if (cfg->persist)
        vdpa_vf_set_observer(vf, vf_step, s);
    attach_guest(s);
    struct vhost_cfg vc = vhost_cfg_of(s, cfg, vdpa_vf_max_pairs(vf), vdpa_vf_device_features(vf));
    s->dev = vhost_dev_create(loop, &vc, err);
    if (!s->dev) {
        vdpa_vf_set_guest(vf, NULL);
        vdpa_vf_set_observer(vf, NULL, NULL);
        free(s);
        return NULL;
    }
    return s;
}

void vdpa_session_destroy(struct vdpa_session *s, void (*done)(void *ctx), void *ctx)
{
    ev_timer_stop(s->loop, &s->adopt_t);
    vdpa_vf_set_observer(s->vf, NULL, NULL);
    s->destroy_done = done;
    s->destroy_ctx = ctx;
    forget_front_end(s);
    vhost_dev_destroy(s->dev);
    s->dev = NULL;
    s->destroying = true;   /* converge stops and unmaps the device, then runs done from the loop */
}

const struct vdpa_timeline *vdpa_session_timeline(const struct vdpa_session *s)
{
    return &s->tl;
}

bool vdpa_session_connected(const struct vdpa_session *s)
{
    return s->dev && vhost_connected(s->dev);
}

void vdpa_session_stats(const struct vdpa_session *s, struct vdpa_session_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->connected = s->dev && vhost_connected(s->dev);
    st->features = s->features;
    st->rings_running = (unsigned)__builtin_popcountll(s->running_mask);
    st->dev_state = vdpa_vf_state(s->vf);
    st->logging = s->log_active;
    st->host_notifiers = s->running_mask ? s->notifiers : 0;
    st->announce_requests = s->announce.requests;
    st->announces = s->announce.sent;
    st->announce_failures = s->announce.failed + s->announce.refused;
    st->announce_pending = s->announce.pending || s->announce.op;
    st->announce_unsupported = s->announce.unsupported;
    for (unsigned i = 0; i < VDPA_MAX_RINGS; i++)
        if (s->saved_mask & (1ull << i)) {
            st->last_avail[i] = s->saved[i];
            st->nsaved = i + 1;
        }
    for (unsigned i = 0; i < VDPA_MAX_RINGS && s->dev; i++) {
        const struct vhost_ring *r = (s->running_mask & (1ull << i)) ? vhost_get_ring(s->dev, (uint16_t)i) : NULL;
        /* idx is the second le16 of both the avail and the used ring */
        const volatile uint16_t *a = r ? vhost_gpa_to_host(s->dev, r->avail + 2, 2) : NULL;
        const volatile uint16_t *u = r ? vhost_gpa_to_host(s->dev, r->used + 2, 2) : NULL;
        if (!a || !u)
            continue;
        st->live[st->nlive].ring = (uint16_t)i;
        st->live[st->nlive].avail_idx = le16toh(*a);
        st->live[st->nlive].used_idx = le16toh(*u);
        st->nlive++;
    }
}

/* ---- HA: export and adopt (vdpa_session.h) ---- */

#define SESS_MAGIC 0x53534656u   /* "VFSS" */
#define SESS_VERSION 1

struct sess_snap {
    uint8_t head[VFE_HA_BLOB_HEAD];
    uint64_t features, running_mask, saved_mask;
    uint16_t saved[VDPA_MAX_RINGS];
    uint32_t notifiers;
    int32_t log_err;
    uint64_t log_offset, log_size;
    uint8_t op, holding, log_wanted, log_active, log_known, log_stale, log_fill, unmap_when_stopped;
    uint32_t vhost_len;          /* the lib/vhost snapshot follows */
} __attribute__((packed));

int vdpa_session_export(const struct vdpa_session *s, uint8_t *buf, size_t cap, size_t *len, int *fds,
                        unsigned max_fds, unsigned *nfds)
{
    if (!s->dev || s->destroying)
        return -ENOTCONN;
    if (cap < sizeof(struct sess_snap))
        return -ENOSPC;
    struct sess_snap h;
    memset(&h, 0, sizeof(h));
    size_t vlen = 0;
    int rc = vhost_snapshot(s->dev, buf + sizeof(h), cap - sizeof(h), &vlen, fds, max_fds, nfds);
    if (rc < 0)
        return rc;
    vfe_ha_blob_put_head(h.head, SESS_MAGIC, SESS_VERSION, sizeof(h));
    h.features = s->features;
    h.running_mask = s->running_mask;
    h.saved_mask = s->saved_mask;
    memcpy(h.saved, s->saved, sizeof(h.saved));
    h.notifiers = s->notifiers;
    h.log_err = s->log_err;
    h.log_offset = s->log_offset;
    h.log_size = s->log_size;
    h.op = s->op;
    h.holding = s->holding;
    h.log_wanted = s->log_wanted;
    h.log_active = s->log_active;
    h.log_known = s->log_known;
    h.log_stale = s->log_stale;
    h.log_fill = s->log_fill;
    h.unmap_when_stopped = s->unmap_when_stopped;
    h.vhost_len = (uint32_t)vlen;
    memcpy(buf, &h, sizeof(h));
    *len = sizeof(h) + vlen;
    return 0;
}


/* The rings a start programs: a ring we stopped ourselves (to add or drop
 * others) continues where the device left it; otherwise the front-end's
 * SET_VRING_BASE says where.  A start a crash interrupted is resumed with
 * the same rings. */
static unsigned start_rings(struct vdpa_session *s, uint64_t want, struct vdpa_ring *rings)
{
    unsigned n = 0;
    memset(rings, 0, sizeof(struct vdpa_ring) * VDPA_MAX_RINGS);
    for (unsigned i = 0; i < VDPA_MAX_RINGS; i++) {
        if (!(want & (1ull << i)))
            continue;
        const struct vhost_ring *r = vhost_get_ring(s->dev, (uint16_t)i);
        uint16_t base = (s->saved_mask & (1ull << i)) ? s->saved[i] : r->base;
        rings[i] = (struct vdpa_ring){true, r->num, r->desc, r->avail, r->used, base};
        n = i + 1;
    }
    return n;
}

/* First steps of an adopted session, from the loop: finish the device
 * operation a crash interrupted, then let lib/vhost read on. */
static void adopt_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vdpa_session *s = w->data;
    if (s->op != SOP_NONE) {
        struct vdpa_ring rings[VDPA_MAX_RINGS];
        unsigned n = s->op == SOP_START ? start_rings(s, s->running_mask, rings) : 0;
        uint64_t f = device_features_of(s);
        vdpa_done_cb done = s->op == SOP_START ? started : log_op_done;
        int rc = vdpa_vf_step_pending(s->vf) ? vdpa_vf_resume(s->vf, f, rings, n, done, stopped, s) : -EALREADY;
        if (rc == -EALREADY) {
            /* the device finished before the crash, the session never heard: finish as it would have */
            uint16_t idx[VDPA_MAX_RINGS];
            unsigned ni = vdpa_vf_saved(s->vf, idx);
            s->busy = true;
            if (s->op == SOP_STOP)
                stopped(s, 0, idx, ni);
            else if (s->op == SOP_START)
                started(s, 0);
            else
                log_op_done(s, 0);
        } else if (rc < 0) {
            LOG_W("%s: the interrupted device operation cannot be resumed (%s): converging again", s->name,
                  strerror(-rc));
            if (s->op == SOP_START)
                s->running_mask = 0;
            if (s->op == SOP_LOG)
                s->log_active = !s->log_wanted;   /* tracking is set up again */
            op_done(s, 0);
        } else {
            s->busy = true;
        }
    } else {
        schedule(s);
    }
    if (s->holding) {
        hold_from_now(s);
    }
    vhost_dev_resume(s->dev);
}

/* A session that cannot be continued ends cleanly: every socket of it is shut
 * down (copies elsewhere included: the front-end sees the end and
 * reconnects, the old listener accepts nothing more) and every fd closed. */
void vdpa_session_end_fds(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct stat st;
        if (fstat(fds[i], &st) == 0 && S_ISSOCK(st.st_mode))
            shutdown(fds[i], SHUT_RDWR);
        close(fds[i]);
    }
}

static struct vdpa_session *adopt(struct ev_loop *loop, const struct vdpa_session_cfg *cfg,
                                  const struct vdpa_session_adopt_in *in, struct vdpa_vf **vf_out, int *err,
                                  bool *fds_taken);

struct vdpa_session *vdpa_session_adopt(struct ev_loop *loop, const struct vdpa_session_cfg *cfg,
                                        const struct vdpa_session_adopt_in *in, struct vdpa_vf **vf_out, int *err)
{
    bool taken = false;
    struct vdpa_session *s = adopt(loop, cfg, in, vf_out, err, &taken);
    if (!s && !taken)
        vdpa_session_end_fds(in->fds, in->nfds);
    return s;
}

static struct vdpa_session *adopt(struct ev_loop *loop, const struct vdpa_session_cfg *cfg,
                                  const struct vdpa_session_adopt_in *in, struct vdpa_vf **vf_out, int *err,
                                  bool *fds_taken)
{
    uint16_t version;
    struct sess_snap h;
    *vf_out = NULL;
    if ((*err = vfe_ha_blob_check_head(in->session_blob, in->session_len < sizeof(h) ? in->session_len : sizeof(h),
                                       SESS_MAGIC, SESS_VERSION, "session snapshot", &version)) < 0)
        return NULL;
    memcpy(&h, in->session_blob, sizeof(h));
    if (in->session_len != sizeof(h) + h.vhost_len || h.op > SOP_LOG || h.holding > 1 || h.log_wanted > 1 ||
        h.log_active > 1 || h.log_known > 1 || h.log_stale > 1 || h.log_fill > 1 || h.unmap_when_stopped > 1) {
        LOG_E("%s: session snapshot refused: bad fields", cfg->name);
        *err = -EINVAL;
        return NULL;
    }
    struct vdpa_session *s = session_new(loop, cfg);
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    struct vhost_cfg vc = vhost_cfg_of(s, cfg, in->max_pairs, in->device_features);
    /* the dev holds 2 x queue_pairs rings: a ring past them was never started */
    unsigned nrings = 2u * vc.queue_pairs;
    uint64_t ring_bits = nrings >= 64 ? ~0ull : (1ull << nrings) - 1;
    if ((h.running_mask | h.saved_mask) & ~ring_bits) {
        LOG_E("%s: session snapshot refused: rings %#llx past the %u the VF has", cfg->name,
              (unsigned long long)((h.running_mask | h.saved_mask) & ~ring_bits), nrings);
        free(s);
        *err = -EINVAL;
        return NULL;
    }
    const uint8_t *vblob = (const uint8_t *)in->session_blob + sizeof(h);
    s->dev = vhost_dev_restore(loop, &vc, vblob, h.vhost_len, in->fds, in->nfds, err);
    if (!s->dev) {
        free(s);
        return NULL;
    }
    const struct vhost_region *vr;
    unsigned nr = vhost_regions(s->dev, &vr);
    struct vdpa_region regs[VDPA_MAX_REGIONS];
    for (unsigned i = 0; i < nr && i < VDPA_MAX_REGIONS; i++)
        regs[i] = (struct vdpa_region){vr[i].gpa, vr[i].size, vr[i].fd, vr[i].mmap_offset};
    s->vf = vdpa_vf_adopt(loop, in->pf, in->t, in->dma_domain, in->vf_blob, in->vf_len, regs,
                          nr < VDPA_MAX_REGIONS ? nr : VDPA_MAX_REGIONS, in->vp, in->vp_state, err);
    if (!s->vf) {
        /* the session cannot go on: the front-end sees it end (shut down), and reconnects */
        *fds_taken = true;
        vhost_dev_destroy(s->dev);
        free(s);
        return NULL;
    }
    s->features = h.features;
    s->running_mask = h.running_mask;
    s->saved_mask = h.saved_mask;
    memcpy(s->saved, h.saved, sizeof(s->saved));
    s->notifiers = h.notifiers;
    s->log_err = h.log_err;
    s->log_offset = h.log_offset;
    s->log_size = h.log_size;
    s->log_fd = vhost_log_fd(s->dev);
    attach_guest(s);
    vdpa_vf_log_adopt(s->vf, s->log_fd, s->log_offset, s->log_size);   /* pull mode polls on, software walks on */
    s->op = h.op;
    s->holding = h.holding;
    s->log_wanted = h.log_wanted;
    s->log_active = h.log_active;
    s->log_known = h.log_known;
    s->log_stale = h.log_stale;
    s->log_fill = h.log_fill;
    s->unmap_when_stopped = h.unmap_when_stopped;
    s->gen = s->run_gen = 1;
    if (cfg->persist)
        vdpa_vf_set_observer(s->vf, vf_step, s);
    ev_timer_start(loop, &s->adopt_t);
    *vf_out = s->vf;
    *err = 0;
    return s;
}

void vdpa_session_abandon(struct vdpa_session *s)
{
    if (!s)
        return;
    ev_timer_stop(s->loop, &s->kick);
    ev_timer_stop(s->loop, &s->hold);
    ev_timer_stop(s->loop, &s->adopt_t);
    vdpa_vf_set_observer(s->vf, NULL, NULL);
    vdpa_vf_set_guest(s->vf, NULL);
    vdpa_vf_sync_cancel(s->vf);
    vhost_dev_abandon(s->dev);
    announce_orphan(s);
    free(s);
}
