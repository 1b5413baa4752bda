/* Pull-mode dirty tracking of one VF: read the device's bitmap (read and
 * clear) a chunk at a time and OR it into the front-end's log. */
#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

/* Bits of src not yet in dst, 8 words at once.  The log is read with plain
 * loads (vectorized, not atomic): a bit seen set is in the log and whoever
 * clears it collects it; a stale miss only costs a locked OR. */
typedef uint64_t vdpa_v2 __attribute__((vector_size(16)));

static inline uint64_t block_news(const uint8_t *dst, const uint8_t *src)
{
    vdpa_v2 w[4], d[4];
    memcpy(w, src, sizeof(w));
    memcpy(d, dst, sizeof(d));
    vdpa_v2 any = (w[0] & ~d[0]) | (w[1] & ~d[1]) | (w[2] & ~d[2]) | (w[3] & ~d[3]);
    return any[0] | any[1];
}

static inline void merge_word(uint64_t *d, const uint8_t *src)
{
    uint64_t w;
    memcpy(&w, src, 8);
    /* most words are clean, or already logged: skip the locked write */
    if (w & ~__atomic_load_n(d, __ATOMIC_RELAXED))
        __atomic_fetch_or(d, w, __ATOMIC_RELAXED);
}

void vdpa_pull_merge(uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 7); i++)
        if (src[i])
            __atomic_fetch_or(dst + i, src[i], __ATOMIC_RELAXED);
    for (; i + 64 <= n; i += 64) {
        uint64_t *d = (uint64_t *)(void *)(dst + i);
        if (__builtin_expect(!block_news(dst + i, src + i), 1))
            continue;
        for (unsigned k = 0; k < 8; k++)
            merge_word(d + k, src + i + 8 * k);
    }
    for (; i + 8 <= n; i += 8)
        merge_word((uint64_t *)(void *)(dst + i), src + i);
    for (; i < n; i++)
        if (src[i])
            __atomic_fetch_or(dst + i, src[i], __ATOMIC_RELAXED);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents);

int vdpa_pull_map(struct vdpa_vf *v, int fd, uint64_t offset, uint64_t size)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t skip = offset % page;
    if (v->pull || size > SIZE_MAX - skip || size > UINT32_MAX)   /* report offsets are 32-bit */
        return -EINVAL;
    struct vdpa_pull *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    void *m = mmap(NULL, (size_t)(size + skip), PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(offset - skip));
    if (m == MAP_FAILED) {
        int err = -errno;
        free(p);
        return err;
    }
    p->v = v;
    p->map = m;
    p->map_len = (size_t)(size + skip);
    p->log = p->map + skip;
    p->size = size;
    ev_timer_init(&p->tick, tick_cb, VDPA_PULL_PERIOD, VDPA_PULL_PERIOD);
    p->tick.data = v;
    v->pull = p;
    return 0;
}

void vdpa_pull_release(struct vdpa_vf *v)
{
    struct vdpa_pull *p = v->pull;
    if (!p)
        return;
    v->pull = NULL;
    ev_timer_stop(v->loop, &p->tick);
    munmap(p->map, p->map_len);
    p->map = p->log = NULL;
    if (p->in_flight)
        p->v = NULL;   /* its callback frees it */
    else
        free(p);
}

static void submit(struct vdpa_vf *v);

/* Every page of log bytes [off, off+len) dirty: what a lost report may have held. */
static void mark_all(struct vdpa_vf *v, uint64_t off, uint64_t len)
{
    static const uint8_t ones[4096] = {[0 ... 4095] = 0xff};
    struct vdpa_pull *p = v->pull;
    if (!p || !p->log)
        return;
    if (off > p->size)
        return;
    if (len > p->size - off)
        len = p->size - off;
    for (uint64_t i = 0; i < len; i += sizeof(ones))
        vdpa_pull_merge(p->log + off + i, ones, len - i < sizeof(ones) ? len - i : sizeof(ones));
}

static void pass_ended(struct vdpa_vf *v, int err)
{
    struct vdpa_pull *p = v->pull;
    p->in_pass = false;
    p->passes++;
    if (p->final_pass) {
        void (*done)(struct vdpa_vf *, int) = p->drained;
        p->final_pass = false;
        p->drained = NULL;
        if (done)
            done(v, err);
        return;
    }
    if (p->final_wanted) {   /* bits set while this pass ran behind its reads: read it all once more */
        p->final_wanted = false;
        p->final_pass = true;
        p->in_pass = true;
        p->next = 0;
        submit(v);
    }
}

static void got(void *ctx, int err, uint32_t n)
{
    struct vdpa_pull *p = ctx;
    struct vdpa_vf *v = p->v;
    p->in_flight = false;
    if (!v) {   /* the VF let go of it while this report was out */
        free(p);
        return;
    }
    p->reports++;
    if (!err && (n > VDPA_PULL_CHUNK || n > p->size - p->next))
        err = -EPROTO;
    if (err) {   /* the device may have cleared what it could not deliver: count it all dirty */
        p->errors++;
        LOG_W("%s: dirty report at byte %u: %s; its pages marked dirty", v->t->bdf, p->next, strerror(-err));
        mark_all(v, p->next, VDPA_PULL_CHUNK);
        pass_ended(v, err);
        return;
    }
    if (p->log)
        vdpa_pull_merge(p->log + p->next, p->buf, n);
    p->next += n;
    if (n == 0 || p->next >= p->size)
        pass_ended(v, 0);
    else
        submit(v);
}

/* The next chunk of the pass (never more than one report in flight). */
static void submit(struct vdpa_vf *v)
{
    struct vdpa_pull *p = v->pull;
    uint64_t left = p->size - p->next;
    uint32_t len = left < VDPA_PULL_CHUNK ? (uint32_t)left : VDPA_PULL_CHUNK;
    int rc = vfe_mig_dirty_report(v->pf.mig, v->vf_num, p->next, p->buf, len, got, p);
    if (rc < 0) {
        /* from the loop: a final pass must end outside the drain call */
        p->errors++;
        LOG_W("%s: dirty report not sent: %s", v->t->bdf, strerror(-rc));
        if (p->final_pass || p->final_wanted) {   /* no later pass reads what is left: all of it counts */
            mark_all(v, 0, p->size);
            p->final_pass = true;
            p->final_wanted = false;
            p->final_err = rc;
            ev_timer_stop(v->loop, &p->tick);
            ev_timer_set(&p->tick, 0., 0.);
            ev_timer_start(v->loop, &p->tick);
        } else {
            mark_all(v, p->next, p->size - p->next);   /* the rest of this pass cannot be read */
        }
        p->in_pass = false;
        return;
    }
    p->in_flight = true;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vdpa_vf *v = w->data;
    struct vdpa_pull *p = v->pull;
    if (p->final_pass && !p->in_pass) {   /* a final pass that could not be sent */
        p->final_pass = false;
        void (*done)(struct vdpa_vf *, int) = p->drained;
        p->drained = NULL;
        if (done)
            done(v, p->final_err);
        return;
    }
    /* a stop reads everything once the device has stopped: a pass now would
     * only queue ahead of the stop's own admin commands */
    if (p->in_pass || !p->size || v->state == VDPA_VF_STOPPING)
        return;
    p->in_pass = true;
    p->next = 0;
    submit(v);
}

void vdpa_pull_run(struct vdpa_vf *v)
{
    struct vdpa_pull *p = v->pull;
    if (!p)
        return;
    ev_timer_stop(v->loop, &p->tick);
    ev_timer_set(&p->tick, VDPA_PULL_PERIOD, VDPA_PULL_PERIOD);
    p->final_pass = p->final_wanted = false;
    ev_timer_start(v->loop, &p->tick);
}

void vdpa_pull_drain(struct vdpa_vf *v, void (*done)(struct vdpa_vf *v, int err))
{
    struct vdpa_pull *p = v->pull;
    if (!p) {   /* callers drain only what they mapped: nothing to read */
        done(v, -ENOENT);
        return;
    }
    ev_timer_stop(v->loop, &p->tick);
    p->drained = done;
    p->final_err = 0;
    if (p->in_pass) {   /* the current pass may have read chunks before the device's last writes */
        p->final_wanted = true;
        return;
    }
    p->final_pass = true;
    p->in_pass = true;
    p->next = 0;
    submit(v);   /* on failure the tick ends the drain from the loop */
}

int vdpa_vf_log_adopt(struct vdpa_vf *v, int log_fd, uint64_t log_offset, uint64_t log_size)
{
    bool sw = v->log_mode == VDPA_LOG_SOFTWARE;
    if (!v->log_active || (v->log_mode != VFE_MIG_TRACK_PULL_BITMAP && !sw) || v->pull)
        return 0;
    if (log_fd < 0 || log_size != v->log_size) {
        LOG_E("%s: %s tracking taken over without its log", v->t->bdf, sw ? "software" : "pull");
        return -EINVAL;
    }
    int rc = vdpa_pull_map(v, log_fd, log_offset, log_size);
    if (rc < 0) {
        LOG_E("%s: mapping the dirty log again: %s", v->t->bdf, strerror(-rc));
        return rc;
    }
    if (sw) {
        /* the walker's records died with the predecessor: whatever they held
         * may be written still, and the device wrote unwatched meanwhile */
        if ((rc = vdpa_sw_start(v)) < 0) {
            LOG_E("%s: software tracking cannot be taken over: %s; every page marked dirty", v->t->bdf,
                  strerror(-rc));
            mark_all(v, 0, log_size);
            return rc;
        }
        vdpa_sw_mark_all(v);
        LOG_N("%s: software tracking taken over: all guest memory marked dirty once", v->t->bdf);
        return 0;
    }
    mark_all(v, 0, log_size);
    LOG_N("%s: pull tracking taken over: every page marked dirty once", v->t->bdf);
    vdpa_pull_run(v);
    return 0;
}
