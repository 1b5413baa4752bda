/* The last switchover of one VF (see vdpa_timeline.h). */
#include "drivers/vdpa/virtio/vdpa_timeline.h"

#include <string.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void vdpa_tl_connected(struct vdpa_timeline *tl)
{
    tl->connected_ns = now_ns();
    tl->src_open = false;
    tl->dst_open = false;   /* a new connection: its first memory table opens a new half */
}

void vdpa_tl_get_base(struct vdpa_timeline *tl, uint16_t ring, bool stopping)
{
    if (ring >= VDPA_TL_RINGS)
        return;
    int64_t t = now_ns();
    if (!stopping || !tl->src_open) {
        memset(&tl->src, 0, sizeof(tl->src));
        tl->src.t0_ns = (uint64_t)t;
        tl->src.stop_begun_ns = tl->stop_begun_ns;
        tl->src.stopped_ns = tl->stopped_ns;
        tl->src_open = true;
        tl->dst_open = false;
    }
    tl->src.asked_mask |= 1ull << ring;
}

void vdpa_tl_source(struct vdpa_timeline *tl, enum vdpa_tl_src_event e)
{
    int64_t t = now_ns();
    struct vdpa_tl_source *s = &tl->src;
    if (e == VDPA_TL_STOP_BEGUN) {
        tl->stop_begun_ns = t;
        tl->stopped_ns = 0;
        if (tl->src_open && !s->answered_mask) {
            s->stop_begun_ns = t;
            s->stopped_ns = 0;
        }
    } else {
        tl->stopped_ns = t;
        if (tl->src_open && s->stop_begun_ns && !s->stopped_ns)
            s->stopped_ns = t;
    }
}

void vdpa_tl_answered(struct vdpa_timeline *tl, uint16_t ring)
{
    if (!tl->src_open || ring >= VDPA_TL_RINGS || !(tl->src.asked_mask & (1ull << ring)) ||
        (tl->src.answered_mask & (1ull << ring)))
        return;
    tl->src.answered_ns[ring] = now_ns();
    tl->src.answered_mask |= 1ull << ring;
}

void vdpa_tl_mem(struct vdpa_timeline *tl, bool running)
{
    if (running || (tl->dst_open && !tl->dst.started_ns))
        return;   /* a table while running, or one more before the start: the open half goes on */
    memset(&tl->dst, 0, sizeof(tl->dst));
    tl->dst.t0_ns = (uint64_t)now_ns();
    tl->dst.connected_ns = tl->connected_ns;
    tl->dst_open = true;
    tl->src_open = false;
}

void vdpa_tl_dest(struct vdpa_timeline *tl, enum vdpa_tl_dst_event e, unsigned rings)
{
    int64_t t = now_ns();
    struct vdpa_tl_dest *d = &tl->dst;
    if (e == VDPA_TL_START_BEGUN) {
        tl->stop_begun_ns = tl->stopped_ns = 0;   /* the device runs again: its last stop is history */
        tl->src_open = false;
    }
    if (!tl->dst_open)
        return;
    switch (e) {
    case VDPA_TL_MEM_MAPPED:
        if (!d->start_begun_ns)
            d->mem_mapped_ns = t;
        break;
    case VDPA_TL_START_BEGUN:
        if (!d->start_begun_ns)
            d->start_begun_ns = t;
        break;
    case VDPA_TL_STARTED:
        /* rings enabled in several steps start the device more than once: the last start counts */
        if (d->start_begun_ns) {
            d->started_ns = t;
            d->rings = rings;
        }
        break;
    }
}

static int64_t off_us(int64_t ns, uint64_t t0)
{
    return ns ? (ns - (int64_t)t0) / 1000 : VDPA_TL_UNSET;
}

void vdpa_tl_view(const struct vdpa_timeline *tl, struct vdpa_tl_view *v)
{
    int64_t now = now_ns();
    const struct vdpa_tl_source *s = &tl->src;
    const struct vdpa_tl_dest *d = &tl->dst;
    memset(v, 0, sizeof(*v));
    v->src_valid = s->t0_ns != 0;
    v->dst_valid = d->t0_ns != 0;
    v->stop_begun_us = v->stopped_us = v->first_answer_us = v->last_answer_us = VDPA_TL_UNSET;
    v->connected_us = v->mem_mapped_us = v->start_begun_us = v->started_us = VDPA_TL_UNSET;
    for (unsigned i = 0; i < VDPA_TL_RINGS; i++)
        v->answered_us[i] = VDPA_TL_UNSET;
    if (v->src_valid) {
        v->src_age_us = (uint64_t)(now - (int64_t)s->t0_ns) / 1000;
        v->stop_begun_us = off_us(s->stop_begun_ns, s->t0_ns);
        v->stopped_us = off_us(s->stopped_ns, s->t0_ns);
        v->nasked = (unsigned)__builtin_popcountll(s->asked_mask);
        v->nanswered = (unsigned)__builtin_popcountll(s->answered_mask);
        for (unsigned i = 0; i < VDPA_TL_RINGS; i++) {
            if (!(s->answered_mask & (1ull << i)))
                continue;
            int64_t us = off_us(s->answered_ns[i], s->t0_ns);
            v->answered_us[i] = us;
            if (v->first_answer_us == VDPA_TL_UNSET || us < v->first_answer_us)
                v->first_answer_us = us;
            if (v->last_answer_us == VDPA_TL_UNSET || us > v->last_answer_us)
                v->last_answer_us = us;
        }
    }
    if (v->dst_valid) {
        v->dst_age_us = (uint64_t)(now - (int64_t)d->t0_ns) / 1000;
        v->connected_us = off_us(d->connected_ns, d->t0_ns);
        v->mem_mapped_us = off_us(d->mem_mapped_ns, d->t0_ns);
        v->start_begun_us = off_us(d->start_begun_ns, d->t0_ns);
        v->started_us = off_us(d->started_ns, d->t0_ns);
        v->dst_rings = d->rings;
    }
}
