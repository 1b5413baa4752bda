/*
 * A VF's device calls on the loop never wait for the device: its transport
 * runs in posted mode (vfe_transport.h) from the VF's first use on the loop,
 * a watcher drains the replies, a start waits (asynchronously, bounded by
 * the transport timeout) until the device acknowledged every posted write,
 * and the counters are read asynchronously.
 */
#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>

#include "lib/log/vfe_log.h"

static void wait_end(struct vdpa_ack_wait *w, int err)
{
    ev_timer_stop(w->v->loop, &w->t);
    vdpa_done_cb cb = w->cb;
    w->cb = NULL;
    cb(w->ctx, err);
}

/* The device acknowledged everything, refused something or went away
 * (broken, or the bound passed): w ends; else it waits on. */
static void wait_check(struct vdpa_ack_wait *w, bool broken, bool timed_out)
{
    struct vdpa_vf *v = w->v;
    if (!w->cb)
        return;
    struct vfe_posted_state st;
    vfe_transport_posted_state(v->t, &st, false);
    if (!broken && !timed_out && st.outstanding && !st.error)
        return;
    if (st.error && w->take)
        vfe_transport_posted_state(v->t, &st, true);
    if (st.error) {
        if (w->take)
            LOG_E("%s: the device refused a posted %s (%s): %s", v->t->bdf, st.error_op ? st.error_op : "request",
                  strerror(-st.error), w->what);
        wait_end(w, st.error);
    } else if (st.outstanding) {
        LOG_E("%s: the device did not acknowledge %u posted requests within %d ms (the oldest for %ld ms): %s",
              v->t->bdf, st.outstanding, vfe_transport_timeout_ms(v->t), st.oldest_ms, w->what);
        wait_end(w, -ETIMEDOUT);
    } else {
        wait_end(w, broken ? -ENOTCONN : 0);
    }
}

static void wait_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    wait_check(t->data, false, true);
}

/* Wait on w; settled already: it ends from the loop (never inside). */
static int wait_start(struct vdpa_vf *v, struct vdpa_ack_wait *w, vdpa_done_cb cb, void *ctx)
{
    int rc = vdpa_posted_watch(v);
    if (rc < 0)
        return rc;
    struct vfe_posted_state st;
    vfe_transport_posted_state(v->t, &st, false);
    w->v = v;
    w->cb = cb;
    w->ctx = ctx;
    ev_timer_init(&w->t, wait_timer_cb, st.outstanding && !st.error ? vfe_transport_timeout_ms(v->t) / 1000. : 0., 0.);
    w->t.data = w;
    ev_timer_start(v->loop, &w->t);
    return 0;
}

static void wait_cancel(struct vdpa_vf *v, struct vdpa_ack_wait *w)
{
    ev_timer_stop(v->loop, &w->t);
    w->cb = NULL;
}

static void watch_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct vdpa_vf *v = w->data;
    int rc = vfe_transport_drain(v->t);
    if (rc < 0) {   /* broken: the socket may stay readable, nothing more to read from it */
        ev_io_stop(loop, w);
        LOG_E("%s: device connection lost: its posted requests are unanswered", v->t->bdf);
    }
    wait_check(&v->mem_wait, rc < 0, false);
    wait_check(&v->start_wait, rc < 0, false);
}

bool vdpa_vf_unmaps_pending(struct vdpa_vf *v)
{
    struct vfe_posted_state st;
    vfe_transport_posted_state(v->t, &st, false);
    return v->unmapped && st.outstanding;
}

int vdpa_vf_sync(struct vdpa_vf *v, vdpa_done_cb cb, void *ctx)
{
    if (v->mem_wait.cb)
        return -EBUSY;
    v->mem_wait.take = false;
    v->mem_wait.what = "the memory table is answered with an error";
    return wait_start(v, &v->mem_wait, cb, ctx);
}

void vdpa_vf_sync_cancel(struct vdpa_vf *v)
{
    wait_cancel(v, &v->mem_wait);
}

int vdpa_posted_watch(struct vdpa_vf *v)
{
    if (v->pwatch_on)
        return 0;
    int fd = vfe_transport_watch_fd(v->t);
    if (fd < 0)
        return 0;   /* kernel VFIO: every write is acknowledged when its call returns */
    int rc = vfe_transport_set_posted(v->t, true);
    if (rc < 0)
        return rc;
    ev_io_init(&v->pwatch, watch_cb, fd, EV_READ);
    v->pwatch.data = v;
    ev_io_start(v->loop, &v->pwatch);
    v->pwatch_on = true;
    return 0;
}

void vdpa_posted_unwatch(struct vdpa_vf *v)
{
    ev_io_stop(v->loop, &v->pwatch);
    wait_cancel(v, &v->start_wait);
    wait_cancel(v, &v->mem_wait);
    v->pwatch_on = false;
    vdpa_vf_counters_cancel_all(v);
}

int vdpa_posted_barrier(struct vdpa_vf *v, vdpa_done_cb next, void *ctx)
{
    struct vfe_posted_state st;
    vfe_transport_posted_state(v->t, &st, false);
    if (st.error) {
        vfe_transport_posted_state(v->t, &st, true);
        LOG_E("%s: the device refused a posted %s (%s): the VF is not started", v->t->bdf,
              st.error_op ? st.error_op : "request", strerror(-st.error));
        return st.error;
    }
    if (!st.outstanding)
        return 0;
    v->start_wait.take = true;
    v->start_wait.what = "the VF is not started";
    int rc = wait_start(v, &v->start_wait, next, ctx);
    if (rc < 0)
        return rc;
    LOG_D("%s: start waits for %u posted requests", v->t->bdf, st.outstanding);
    return 1;
}

bool vdpa_posted_waiting(const struct vdpa_vf *v)
{
    return v->start_wait.cb != NULL;
}

/* ---- counters, read without waiting ---- */

struct vdpa_ctr_req {
    struct vdpa_ctr_req *next;
    struct vdpa_vf *v;
    vdpa_counters_cb cb;
    void *ctx;
    bool ready;                /* answered synchronously (kernel VFIO): delivered from the timer */
    int err;
    uint64_t ctr[VFE_CTR_COUNT];
};

static void req_unlink(struct vdpa_vf *v, struct vdpa_ctr_req *r)
{
    for (struct vdpa_ctr_req **p = &v->ctr_reqs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            return;
        }
}

static void decode(const void *data, uint64_t ctr[VFE_CTR_COUNT])
{
    for (unsigned i = 0; i < VFE_CTR_COUNT; i++) {
        uint64_t x;
        memcpy(&x, (const uint8_t *)data + 8 * i, 8);
        ctr[i] = le64toh(x);
    }
}

static void ctr_read_done(void *ctx, int err, const void *data, size_t len)
{
    struct vdpa_ctr_req *r = ctx;
    struct vdpa_vf *v = r->v;
    req_unlink(v, r);
    uint64_t ctr[VFE_CTR_COUNT] = {0};
    if (!err && len == VFE_CTR_COUNT * 8)
        decode(data, ctr);
    else if (!err)
        err = -EPROTO;
    r->cb(r->ctx, err, err ? NULL : ctr);
    free(r);
}

static void ctr_defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vdpa_vf *v = w->data;
    for (struct vdpa_ctr_req **p = &v->ctr_reqs; *p;) {
        struct vdpa_ctr_req *r = *p;
        if (!r->ready) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        r->cb(r->ctx, r->err, r->err ? NULL : r->ctr);
        free(r);
        p = &v->ctr_reqs;   /* the callback may have changed the list */
    }
}

int vdpa_vf_counters_async(struct vdpa_vf *v, vdpa_counters_cb cb, void *ctx)
{
    const struct vfe_vpci_window *w = &v->vp.counters;
    if (!cb)
        return -EINVAL;
    if (!w->present || w->length < VFE_CTR_COUNT * 8)
        return -ENOTSUP;
    struct vdpa_ctr_req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    *r = (struct vdpa_ctr_req){ .v = v, .cb = cb, .ctx = ctx };
    int rc = vdpa_posted_watch(v);
    if (rc == 0)
        rc = vfe_transport_read_async(v->t, w->bar, w->offset, VFE_CTR_COUNT * 8, ctr_read_done, r);
    if (rc == -EOPNOTSUPP) {   /* kernel VFIO: an MMIO read, answered now, delivered from the loop */
        r->ready = true;
        r->err = vfe_vpci_read_counters(&v->vp, r->ctr);
        if (!ev_is_active(&v->ctr_defer)) {
            ev_timer_init(&v->ctr_defer, ctr_defer_cb, 0., 0.);
            v->ctr_defer.data = v;
            ev_timer_start(v->loop, &v->ctr_defer);
        }
        rc = 0;
    }
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->next = v->ctr_reqs;
    v->ctr_reqs = r;
    return 0;
}

void vdpa_vf_counters_cancel(struct vdpa_vf *v, void *ctx)
{
    for (struct vdpa_ctr_req **p = &v->ctr_reqs; *p;) {
        struct vdpa_ctr_req *r = *p;
        if (r->ctx != ctx) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        vfe_transport_cancel_reads(v->t, r);
        free(r);
    }
}

void vdpa_vf_counters_cancel_all(struct vdpa_vf *v)
{
    ev_timer_stop(v->loop, &v->ctr_defer);
    while (v->ctr_reqs) {
        struct vdpa_ctr_req *r = v->ctr_reqs;
        v->ctr_reqs = r->next;
        vfe_transport_cancel_reads(v->t, r);
        free(r);
    }
}
