/* Software-mode dirty tracking of one VF: the walker (vdpa_swlog.c) on a
 * timer, into the VF's own mapping of the front-end's log. */
#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

#include <errno.h>
#include <string.h>

#include "lib/log/vfe_log.h"

void vdpa_vf_set_guest(struct vdpa_vf *v, const struct vdpa_swlog_guest *g)
{
    v->has_guest = g != NULL;
    if (g)
        v->guest = *g;
    if (v->sw)
        vdpa_swlog_set_guest(v->sw, g);
}

static void sw_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vdpa_vf *v = w->data;
    if (v->sw)
        vdpa_swlog_pass(v->sw);
}

int vdpa_sw_start(struct vdpa_vf *v)
{
    if (!v->has_guest || !v->pull || !v->pull->log)
        return -EOPNOTSUPP;
    vdpa_sw_release(v);
    v->sw = vdpa_swlog_new(v->pull->log, v->pull->size, &v->guest, v->t->bdf);
    if (!v->sw)
        return -errno;
    if (vdpa_swlog_check(v->sw) < 0) {
        LOG_E("%s: packed rings negotiated: software dirty tracking walks split rings only", v->t->bdf);
        vdpa_sw_release(v);
        return -EOPNOTSUPP;
    }
    vdpa_swlog_pass(v->sw);   /* whatever the guest made available before tracking started */
    ev_timer_init(&v->sw_tick, sw_tick_cb, VDPA_SWLOG_PERIOD, VDPA_SWLOG_PERIOD);
    v->sw_tick.data = v;
    ev_timer_start(v->loop, &v->sw_tick);
    return 0;
}

void vdpa_sw_final(struct vdpa_vf *v)
{
    if (v->sw)
        vdpa_swlog_pass(v->sw);
}

void vdpa_sw_release(struct vdpa_vf *v)
{
    if (!v->sw)
        return;
    ev_timer_stop(v->loop, &v->sw_tick);
    vdpa_swlog_free(v->sw);
    v->sw = NULL;
}

void vdpa_sw_mark_all(struct vdpa_vf *v)
{
    if (v->sw)
        vdpa_swlog_mark_all(v->sw);
}

int vdpa_vf_swlog_stats(const struct vdpa_vf *v, struct vdpa_swlog_stats *st)
{
    if (!v->sw)
        return -ENOENT;
    vdpa_swlog_stats(v->sw, st);
    return 0;
}
