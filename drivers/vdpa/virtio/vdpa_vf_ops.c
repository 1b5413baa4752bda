/* Asynchronous VF operations over the PF admin queue: start, stop, dirty log. */
#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "lib/log/vfe_log.h"

static enum vdpa_dirty_mode dirty_pref = VDPA_DIRTY_AUTO;

void vdpa_vf_set_default_dirty_mode(enum vdpa_dirty_mode m) { dirty_pref = m; }

const char *vdpa_dirty_mode_name(enum vdpa_dirty_mode m)
{
    static const char *const names[] = {"auto", "push", "pull", "software"};
    return (unsigned)m < 4 ? names[m] : "auto";
}

const char *vdpa_vf_dirty_tracking(const struct vdpa_vf *v)
{
    if (!v->log_active)
        return NULL;
    return v->log_mode == VDPA_LOG_SOFTWARE ? "software" : v->log_mode == VFE_MIG_TRACK_PULL_BITMAP ? "pull" : "push";
}

/* The dirty log's window in the PF's IOVA space (user: the VF number), the
 * software walker and the VF's mapping of the log go. */
void vdpa_vf_log_release(struct vdpa_vf *v)
{
    ev_timer_stop(v->loop, &v->log_map_t);
    /* the VF is its window's only user: one it does not know of is a
     * predecessor's that died before it told the device (HA) */
    if (v->pf.iova && vfe_pf_iova_window(v->pf.iova, v->vf_num, NULL, NULL, NULL) == 0) {
        if (!v->log_mapped)
            LOG_W("%s: a dirty-log window left by a previous daemon: released", v->t->bdf);
        vfe_pf_iova_release(v->pf.iova, v->vf_num);
    }
    v->log_mapped = false;
    vdpa_sw_release(v);
    vdpa_pull_release(v);
}

void vdpa_vf_step(struct vdpa_vf *v, enum vdpa_step s)
{
    v->step = (uint8_t)s;
    if (s != VDPA_STEP_NONE && v->observer)
        v->observer(v->observer_ctx);
}

/* Finish the current operation from the loop (callbacks never run inside a call). */
static void finish_later(struct vdpa_vf *v, int err)
{
    v->step = VDPA_STEP_NONE;   /* the caller deposits the outcome from its callback */
    v->op_err = err;
    ev_timer_set(&v->defer, 0., 0.);
    ev_timer_start(v->loop, &v->defer);
}

void vdpa_vf_defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vdpa_vf *v = w->data;
    vdpa_done_cb done = v->done_cb;
    vdpa_stop_cb stop = v->stop_cb;
    void *ctx = v->op_ctx;
    v->done_cb = NULL;
    v->stop_cb = NULL;
    if (stop)
        stop(ctx, v->op_err, v->saved_avail, v->nsaved);
    else if (done)
        done(ctx, v->op_err);
}

void vdpa_vf_finish(struct vdpa_vf *v, int err)
{
    finish_later(v, err);
}

const char *vdpa_vf_mode(const struct vdpa_vf *v)
{
    return v->direct ? "direct" : "admin";
}

static bool busy(const struct vdpa_vf *v)
{
    return v->done_cb || v->stop_cb || ev_is_active(&v->defer) || vdpa_posted_waiting(v);
}

/* ---- start: FREEZED -> restore -> RUNNING ---- */

static void start_ran(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    v->state = err ? VDPA_VF_STOPPED : VDPA_VF_RUNNING;
    if (err)
        LOG_E("%s: run after restore failed: %s", v->t->bdf, strerror(-err));
    else
        LOG_I("%s: running", v->t->bdf);
    finish_later(v, err);
}

void vdpa_vf_start_restored(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    if (!err)
        vdpa_vf_step(v, VDPA_STEP_START_RUN);
    if (!err)
        err = vfe_mig_set_state(v->pf.mig, v->vf_num, VFE_MIG_RUNNING, start_ran, v);
    if (err) {
        LOG_E("%s: state restore failed: %s", v->t->bdf, strerror(-err));
        v->state = VDPA_VF_STOPPED;
        finish_later(v, err);
    }
}

void vdpa_vf_start_frozen(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    if (!err)
        vdpa_vf_step(v, VDPA_STEP_START_RESTORE);
    if (!err)
        err = vfe_mig_restore_state(v->pf.mig, v->vf_num, &v->st, vdpa_vf_start_restored, v);
    if (err) {
        LOG_E("%s: freeze before restore failed: %s", v->t->bdf, strerror(-err));
        v->state = VDPA_VF_STOPPED;
        finish_later(v, err);
    }
}

static int start_freeze(struct vdpa_vf *v)
{
    vdpa_vf_step(v, VDPA_STEP_START_FREEZE);
    int rc = vfe_mig_set_state(v->pf.mig, v->vf_num, VFE_MIG_FREEZED, vdpa_vf_start_frozen, v);
    if (rc < 0) {
        v->state = VDPA_VF_STOPPED;
        v->step = VDPA_STEP_NONE;
    }
    return rc;
}

/* The device acknowledged what was posted to it (or did not: err). */
static void start_after_barrier(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    if (!err && v->direct) {
        err = vdpa_direct_start(v, v->bfeatures, v->brings, v->bnrings);
    } else if (!err) {
        err = start_freeze(v);
    } else {
        v->state = VDPA_VF_STOPPED;
    }
    free(v->brings);
    v->brings = NULL;
    if (err)
        finish_later(v, err);
}

int vdpa_vf_start(struct vdpa_vf *v, uint64_t features, const struct vdpa_ring *rings, unsigned nrings,
                  vdpa_done_cb cb, void *ctx)
{
    if (busy(v))
        return -EBUSY;
    if (nrings == 0 || nrings > v->num_queues || nrings > VDPA_MAX_RINGS)
        return -EINVAL;
    /* every map, vector and ioeventfd posted before must be in the device first */
    if (vdpa_posted_watch(v) < 0)
        LOG_W("%s: posted device calls unavailable: the start does not wait for the device", v->t->bdf);
    if (!v->direct)
        vdpa_vf_build_start_state(v, features, rings, nrings);
    if (v->direct && !(v->brings = malloc(nrings * sizeof(*rings))))
        return -ENOMEM;
    if (v->direct) {
        memcpy(v->brings, rings, nrings * sizeof(*rings));
        v->bnrings = nrings;
        v->bfeatures = features;
    }
    /* HA: a successor that finds the start waiting for the barrier resumes it from the freeze
     * (what this process posted was answered before the successor's first request) */
    if (!v->direct)
        vdpa_vf_step(v, VDPA_STEP_START_FREEZE);
    int rc = vdpa_posted_barrier(v, start_after_barrier, v);
    if (rc < 0) {
        free(v->brings);
        v->brings = NULL;
        v->step = VDPA_STEP_NONE;
        return rc;
    }
    v->done_cb = cb;
    v->op_ctx = ctx;
    if (rc == 1) {   /* waits for the device */
        if (!v->direct)
            v->state = VDPA_VF_STARTING;
        return 0;
    }
    if (v->direct) {
        free(v->brings);
        v->brings = NULL;
        rc = vdpa_direct_start(v, features, rings, nrings);
    } else {
        v->state = VDPA_VF_STARTING;
        rc = start_freeze(v);
    }
    if (rc < 0)
        v->done_cb = NULL;
    return rc;
}

void vdpa_vf_build_start_state(struct vdpa_vf *v, uint64_t features, const struct vdpa_ring *rings, unsigned nrings)
{
    struct vfe_dev_state *s = &v->st;
    vfe_dev_state_init(s);
    s->has_common = true;
    s->device_features = v->dev_features;
    s->driver_features = (features & v->dev_features) | (1ull << VIRTIO_F_VERSION_1);
    s->msix_config = 0;
    s->num_queues = v->num_queues;
    s->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                VIRTIO_CONFIG_S_DRIVER_OK;
    unsigned pairs = 0;
    /* every queue of the VF is described: one a previous user left enabled
     * must not run on with memory that is gone */
    unsigned nq = v->num_queues < VDPA_MAX_RINGS ? v->num_queues : VDPA_MAX_RINGS;
    static const struct vdpa_ring unused;
    for (unsigned q = 0; q < nq; q++) {
        struct vfe_dev_vq_state *vq = &s->vq[q];
        const struct vdpa_ring *r = q < nrings ? &rings[q] : &unused;
        vq->has_cfg = vq->has_split = true;
        vq->enabled = r->ready;
        vq->size = r->ready ? r->size : 0;
        vq->msix_vector = (uint16_t)(q + 1);
        vq->desc = r->desc;
        vq->avail = r->avail;
        vq->used = r->used;
        vq->last_avail = vq->last_used = r->base;
        if (r->ready)
            LOG_D("%s: ring %u size %u at %u", v->t->bdf, q, r->size, r->base);
        if ((q & 1) && r->ready && q < nrings && rings[q - 1].ready)
            pairs++;
    }
    s->nvqs = (uint16_t)nq;
    if (s->driver_features & (1ull << VIRTIO_NET_F_MQ)) {
        s->has_pairs = true;
        s->pairs = (uint16_t)(pairs ? pairs : 1);
    }
}

/* ---- stop: QUIESCED -> FREEZED -> save ---- */

/* The device no longer writes: its last dirty bits are in the log before
 * the stop completes (the front-end answers GET_VRING_BASE after it). */
static void stop_drained(struct vdpa_vf *v, int err)
{
    if (err)   /* the pages of the failed reports are marked dirty: the stop stands */
        LOG_E("%s: final dirty report failed (%s): its pages count as dirty", v->t->bdf, strerror(-err));
    vdpa_pull_run(v);   /* tracking stays on: a VF started again writes again */
    finish_later(v, v->op_err);
}

static void stop_saved(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    if (err) {
        LOG_E("%s: state save failed: %s", v->t->bdf, strerror(-err));
    } else {
        v->nsaved = v->st.nvqs < VDPA_MAX_RINGS ? v->st.nvqs : VDPA_MAX_RINGS;
        for (unsigned q = 0; q < v->nsaved; q++)
            v->saved_avail[q] = v->st.vq[q].has_split ? v->st.vq[q].last_avail : 0;
        LOG_I("%s: stopped, %u rings saved", v->t->bdf, v->nsaved);
    }
    v->state = VDPA_VF_STOPPED;
    if (v->log_active && v->log_mode == VDPA_LOG_SOFTWARE)
        vdpa_sw_final(v);   /* the device stopped: everything it may have written, before GET_VRING_BASE's reply */
    if (v->log_active && v->log_mode == VFE_MIG_TRACK_PULL_BITMAP && v->pull) {
        v->op_err = err;
        vdpa_pull_drain(v, stop_drained);
        return;
    }
    finish_later(v, err);
}

void vdpa_vf_stop_frozen(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    if (!err)
        vdpa_vf_step(v, VDPA_STEP_STOP_SAVE);
    if (!err)
        err = vfe_mig_save_state(v->pf.mig, v->vf_num, &v->st, stop_saved, v);
    if (err) {
        v->state = VDPA_VF_STOPPED;
        finish_later(v, err);
    }
}

void vdpa_vf_stop_quiesced(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    if (!err)
        vdpa_vf_step(v, VDPA_STEP_STOP_FREEZE);
    if (!err)
        err = vfe_mig_set_state(v->pf.mig, v->vf_num, VFE_MIG_FREEZED, vdpa_vf_stop_frozen, v);
    if (err) {
        v->state = VDPA_VF_STOPPED;
        finish_later(v, err);
    }
}

int vdpa_vf_stop(struct vdpa_vf *v, vdpa_stop_cb cb, void *ctx)
{
    if (busy(v))
        return -EBUSY;
    v->stop_cb = cb;
    v->op_ctx = ctx;
    if (v->state != VDPA_VF_RUNNING) {   /* nothing runs: the last saved indices stand */
        finish_later(v, 0);
        return 0;
    }
    if (v->direct) {
        int rc = vdpa_direct_stop(v);
        if (rc < 0)
            v->stop_cb = NULL;
        return rc;
    }
    v->state = VDPA_VF_STOPPING;
    vdpa_vf_step(v, VDPA_STEP_STOP_QUIESCE);
    int rc = vfe_mig_set_state(v->pf.mig, v->vf_num, VFE_MIG_QUIESCED, vdpa_vf_stop_quiesced, v);
    if (rc < 0) {
        v->stop_cb = NULL;
        v->state = VDPA_VF_RUNNING;
        v->step = VDPA_STEP_NONE;
    }
    return rc;
}

/* ---- dirty log ---- */

static int pull_submit(struct vdpa_vf *v);

/* The device tracks in no mode: vfe walks the rings itself. */
static int software_start(struct vdpa_vf *v)
{
    v->step = VDPA_STEP_NONE;
    int rc = vdpa_sw_start(v);
    if (rc == 0) {
        v->log_mode = VDPA_LOG_SOFTWARE;
        LOG_I("%s: dirty tracking in software: the rings in guest memory are walked every %g ms", v->t->bdf,
              VDPA_SWLOG_PERIOD * 1e3);
    }
    return rc;
}

static void log_started(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    bool pull = v->log_mode == VFE_MIG_TRACK_PULL_BITMAP;
    if (err == -EOPNOTSUPP && !pull && dirty_pref == VDPA_DIRTY_AUTO && v->pull) {
        LOG_I("%s: the device does not push dirty pages: pulling them", v->t->bdf);
        if (v->log_mapped)
            vfe_pf_iova_release(v->pf.iova, v->vf_num);
        v->log_mapped = false;
        if ((err = pull_submit(v)) == 0)
            return;
    }
    if (err == -EOPNOTSUPP && dirty_pref == VDPA_DIRTY_AUTO && v->pull) {
        LOG_I("%s: the device tracks no dirty pages: tracking them in software", v->t->bdf);
        err = software_start(v);
        pull = false;
    }
    v->log_active = err == 0;
    if (err) {
        LOG_E("%s: dirty tracking start failed: %s", v->t->bdf, strerror(-err));
        vdpa_vf_log_release(v);
    } else {
        if (v->log_mode != VDPA_LOG_SOFTWARE)
            LOG_I("%s: device dirty tracking (%s) into the front-end's log", v->t->bdf, pull ? "pull" : "push");
        if (pull)
            vdpa_pull_run(v);
        else if (v->log_mode != VDPA_LOG_SOFTWARE)
            vdpa_pull_release(v);   /* the device writes the log itself */
    }
    finish_later(v, err);
}

/* The front-end's log: log_size bytes, bit n = guest page n (4 KiB). */
static void track_range(struct vfe_mig_dirty_cfg *c, enum vfe_mig_track_mode mode, uint64_t log_size)
{
    *c = (struct vfe_mig_dirty_cfg){.mode = mode, .page_size = 4096, .range_addr = 0,
                                    .range_len = log_size * 8 * 4096};
}

static int pull_submit(struct vdpa_vf *v)
{
    struct vfe_mig_dirty_cfg c;
    track_range(&c, VFE_MIG_TRACK_PULL_BITMAP, v->log_size);
    v->log_mode = VFE_MIG_TRACK_PULL_BITMAP;
    vdpa_vf_step(v, VDPA_STEP_LOG_PULL_START);
    return vfe_mig_dirty_start(v->pf.mig, v->vf_num, &c, log_started, v);
}

static int tracking_submit(struct vdpa_vf *v, uint64_t iova);

/* The device answered the log window's map (from the PF's drain). */
static void window_mapped(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    ev_timer_stop(v->loop, &v->log_map_t);
    uint64_t iova = 0;
    if (!err)
        err = vfe_pf_iova_window(v->pf.iova, v->vf_num, &iova, NULL, NULL);
    if (!err)
        err = tracking_submit(v, iova);
    if (err) {
        LOG_E("%s: dirty tracking start failed: %s", v->t->bdf, strerror(-err));
        vdpa_vf_log_release(v);
        finish_later(v, err);
    }
}

static void window_map_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vdpa_vf *v = w->data;
    LOG_E("%s: the PF did not answer the dirty log's map within %d ms: tracking not started", v->t->bdf,
          vfe_transport_timeout_ms(v->t));
    vdpa_vf_log_release(v);   /* its answer is not waited for any more */
    finish_later(v, -ETIMEDOUT);
}

/* The PF writes the log: it goes in a window of the PF's IOVA space, whole
 * pages.  0: mapped (*iova); 1: the map is sent, window_mapped goes on; -errno. */
static int push_window(struct vdpa_vf *v, int log_fd, uint64_t log_offset, uint64_t log_size, uint64_t *iova)
{
    int rc = vfe_pf_iova_alloc(v->pf.iova, v->vf_num, log_size, iova);
    if (rc == 0) {
        rc = vfe_pf_iova_map_async(v->pf.iova, v->vf_num, log_fd, log_offset, VFE_DMA_READ | VFE_DMA_WRITE,
                                   window_mapped, v);
        if (rc < 0)
            vfe_pf_iova_release(v->pf.iova, v->vf_num);
    }
    if (rc < 0) {
        LOG_E("%s: mapping the dirty log for the PF: %s", v->t->bdf, strerror(-rc));
        return rc;
    }
    v->log_mapped = true;
    if (rc == 1) {
        ev_timer_init(&v->log_map_t, window_map_timeout, vfe_transport_timeout_ms(v->t) / 1000., 0.);
        v->log_map_t.data = v;
        ev_timer_start(v->loop, &v->log_map_t);
    }
    return rc;
}

/* Direct mode: no admin queue, so no device tracking: software or nothing. */
static int direct_log_start(struct vdpa_vf *v, int log_fd, uint64_t log_offset, uint64_t log_size, vdpa_done_cb cb,
                            void *ctx)
{
    if (dirty_pref == VDPA_DIRTY_PUSH || dirty_pref == VDPA_DIRTY_PULL) {
        LOG_E("%s: direct mode has no PF admin queue: %s dirty tracking is impossible (software only)", v->t->bdf,
              vdpa_dirty_mode_name(dirty_pref));
        return -EOPNOTSUPP;
    }
    if (log_size == 0 || log_size > (uint64_t)VFE_MIG_MAX_SGES * 0x80000000ull)
        return -EINVAL;
    vdpa_vf_log_release(v);
    int rc = vdpa_pull_map(v, log_fd, log_offset, log_size);
    if (rc == 0)
        rc = software_start(v);
    if (rc < 0) {
        LOG_E("%s: direct mode: migration refused: software dirty tracking cannot run (%s; it walks split rings "
              "in guest memory)", v->t->bdf, strerror(-rc));
        vdpa_vf_log_release(v);
        return rc;
    }
    v->log_size = log_size;
    v->done_cb = cb;
    v->op_ctx = ctx;
    v->log_active = true;
    finish_later(v, 0);
    return 0;
}

int vdpa_vf_log_start(struct vdpa_vf *v, int log_fd, uint64_t log_offset, uint64_t log_size, vdpa_done_cb cb,
                      void *ctx)
{
    if (busy(v) || v->log_active)   /* the device writes the current log until stopped */
        return -EBUSY;
    if (v->direct)
        return direct_log_start(v, log_fd, log_offset, log_size, cb, ctx);
    if (log_size == 0 || log_size > (uint64_t)VFE_MIG_MAX_SGES * 0x80000000ull || v->vf_num == VFE_PF_IOVA_ADMIN)
        return -EINVAL;
    vdpa_vf_log_release(v);
    enum vdpa_dirty_mode pref = dirty_pref;
    uint64_t iova = 0;
    int rc = 0;
    if (pref != VDPA_DIRTY_PUSH && (rc = vdpa_pull_map(v, log_fd, log_offset, log_size)) < 0) {
        LOG_E("%s: mapping the dirty log for pulling: %s", v->t->bdf, strerror(-rc));
        if (pref != VDPA_DIRTY_AUTO)
            return rc;
        rc = 0;   /* auto: push may still work */
    }
    bool push = pref != VDPA_DIRTY_PULL && pref != VDPA_DIRTY_SOFTWARE;
    if (push && (rc = push_window(v, log_fd, log_offset, log_size, &iova)) < 0) {
        vdpa_vf_log_release(v);
        return rc;
    }
    v->log_size = log_size;
    v->done_cb = cb;
    v->op_ctx = ctx;
    if (pref == VDPA_DIRTY_SOFTWARE) {   /* no device call: the reply waits only for the first pass */
        if ((rc = software_start(v)) < 0) {
            LOG_E("%s: software dirty tracking cannot start: %s", v->t->bdf, strerror(-rc));
            v->done_cb = NULL;
            vdpa_vf_log_release(v);
            return rc;
        }
        v->log_active = true;
        finish_later(v, 0);
        return 0;
    }
    if (push && rc == 1) {   /* the admin command goes once the PF acknowledged the window */
        vdpa_vf_step(v, VDPA_STEP_LOG_START);
        return 0;
    }
    if ((rc = tracking_submit(v, iova)) < 0) {
        v->done_cb = NULL;
        v->step = VDPA_STEP_NONE;
        vdpa_vf_log_release(v);
    }
    return rc;
}

/* The admin command that starts tracking (push into the window at iova,
 * or pull), or software tracking when the device does neither. */
static int tracking_submit(struct vdpa_vf *v, uint64_t iova)
{
    enum vdpa_dirty_mode pref = dirty_pref;
    int rc = pref == VDPA_DIRTY_PULL ? pull_submit(v) : vdpa_vf_log_submit(v, iova, v->log_size);
    if (rc == -EOPNOTSUPP && pref == VDPA_DIRTY_AUTO && v->pull) {   /* refused before it was sent */
        vfe_pf_iova_release(v->pf.iova, v->vf_num);
        v->log_mapped = false;
        rc = pull_submit(v);
    }
    if (rc == -EOPNOTSUPP && pref == VDPA_DIRTY_AUTO && v->pull && (rc = software_start(v)) == 0) {
        v->log_active = true;
        finish_later(v, 0);
    }
    return rc;
}

int vdpa_vf_log_submit(struct vdpa_vf *v, uint64_t iova, uint64_t log_size)
{
    struct vfe_mig_dirty_cfg c;
    track_range(&c, VFE_MIG_TRACK_PUSH_BITMAP, log_size);
    for (uint64_t off = 0; off < log_size; off += 0x80000000ull) {
        uint64_t len = log_size - off < 0x80000000ull ? log_size - off : 0x80000000ull;
        c.sges[c.nsges++] = (struct vfe_mig_sge){iova + off, (uint32_t)len};
    }
    v->log_mode = VFE_MIG_TRACK_PUSH_BITMAP;
    vdpa_vf_step(v, VDPA_STEP_LOG_START);
    return vfe_mig_dirty_start(v->pf.mig, v->vf_num, &c, log_started, v);
}

void vdpa_vf_log_stopped(void *ctx, int err)
{
    struct vdpa_vf *v = ctx;
    v->log_active = false;
    vdpa_vf_log_release(v);
    finish_later(v, err);
}

static int log_stop_submit(struct vdpa_vf *v)
{
    vdpa_vf_step(v, VDPA_STEP_LOG_STOP);
    int rc = vfe_mig_dirty_stop(v->pf.mig, v->vf_num, vdpa_vf_log_stopped, v);
    if (rc < 0) {
        v->done_cb = NULL;
        v->step = VDPA_STEP_NONE;
    }
    return rc;
}

static void log_drained(struct vdpa_vf *v, int err)
{
    if (err)
        LOG_E("%s: final dirty report before the stop failed: %s", v->t->bdf, strerror(-err));
    vdpa_vf_step(v, VDPA_STEP_LOG_STOP);
    int rc = vfe_mig_dirty_stop(v->pf.mig, v->vf_num, vdpa_vf_log_stopped, v);
    if (rc < 0)
        vdpa_vf_log_stopped(v, rc);   /* we are in an admin callback: the caller hears later */
}

int vdpa_vf_log_stop(struct vdpa_vf *v, vdpa_done_cb cb, void *ctx)
{
    if (busy(v))
        return -EBUSY;
    v->done_cb = cb;
    v->op_ctx = ctx;
    if (!v->log_active) {
        vdpa_vf_log_stopped(v, 0);
        return 0;
    }
    if (v->log_mode == VDPA_LOG_SOFTWARE) {   /* the device never tracked: the last pass, and done */
        vdpa_sw_final(v);
        vdpa_vf_log_stopped(v, 0);
        return 0;
    }
    if (v->log_mode == VFE_MIG_TRACK_PULL_BITMAP && v->pull) {   /* the bits since the last pass first */
        vdpa_vf_step(v, VDPA_STEP_LOG_STOP);   /* a successor stops tracking (its take-over marked all dirty) */
        vdpa_pull_drain(v, log_drained);
        return 0;
    }
    return log_stop_submit(v);
}
