/* The PF's admin virtqueue: pop chains, dispatch by dialect, complete them
 * (now, or after the injected delay, always in order). */
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>

#include "lib/log/vfe_log.h"
#include "sim/admin/admin_priv.h"

static void process(struct adm_priv *p);

static void batch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    process(w->data);
}

static struct sim_queue *admin_q(struct sim_fn *pf)
{
    if (pf->admin_queue_index >= SIM_MAX_QUEUES)
        return NULL;
    struct sim_queue *q = &pf->queues[pf->admin_queue_index];
    if (!q->fn)
        q->fn = pf;
    return q;
}

/* admin_slow fault: a command takes effect only `ms` after it reached the
 * device (as a slow device does), one at a time.  True when it is the next
 * command's turn; otherwise the turn is armed. */
static bool slow_turn(struct adm_priv *p, unsigned ms)
{
    struct ev_loop *loop = p->pf->sim->loop;
    ev_tstamp now = ev_now(loop);
    if (p->slow_due == 0.)
        p->slow_due = now + ms / 1000.;
    if (now + 1e-6 >= p->slow_due) {
        p->slow_due = 0.;
        return true;
    }
    if (!ev_is_active(&p->slow)) {
        ev_timer_set(&p->slow, p->slow_due - now, 0.);
        ev_timer_start(loop, &p->slow);
    }
    return false;
}

/* Push every delayed completion that is due, then re-arm for the next. */
static void delay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct adm_priv *p = w->data;
    struct sim_queue *q = admin_q(p->pf);
    ev_tstamp now = ev_now(loop);

    while (p->fifo_count && p->fifo[p->fifo_head].due <= now + 1e-6) {
        struct adm_done *d = &p->fifo[p->fifo_head];
        if (q && sim_vq_ready(q) && sim_vq_push(q, d->head, d->len) < 0)
            LOG_W("%s: admin queue: delayed completion not written", p->pf->bdf);
        p->fifo_head = (p->fifo_head + 1) % ADM_PENDING_MAX;
        p->fifo_count--;
    }
    if (p->fifo_count) {
        ev_timer_set(w, p->fifo[p->fifo_head].due - now, 0.);
        ev_timer_start(loop, w);
    }
    process(p);   /* popping may have paused on a full fifo */
}

void sim_admin_fn_init(struct sim_fn *pf)
{
    if (pf->admin_priv)
        return;
    struct adm_priv *p = calloc(1, sizeof(*p));
    uint8_t *res = malloc(SIM_ADM_MAX_RESULT);
    if (!p || !res) {
        LOG_E("%s: out of memory for the admin queue", pf->bdf);
        free(p);
        free(res);
        return;
    }
    p->pf = pf;
    p->res = res;
    ev_timer_init(&p->batch, batch_cb, 0., 0.);
    p->batch.data = p;
    ev_timer_init(&p->delay, delay_cb, 0., 0.);
    p->delay.data = p;
    ev_timer_init(&p->slow, batch_cb, 0., 0.);
    p->slow.data = p;
    pf->admin_priv = p;
}

static void stop_timers(struct adm_priv *p)
{
    struct sim *s = p->pf->sim;
    if (s && s->loop) {
        ev_timer_stop(s->loop, &p->batch);
        ev_timer_stop(s->loop, &p->delay);
        ev_timer_stop(s->loop, &p->slow);
    }
    p->slow_due = 0.;
}

void sim_admin_fn_fini(struct sim_fn *pf)
{
    struct adm_priv *p = pf->admin_priv;
    if (!p)
        return;
    stop_timers(p);
    free(p->res);
    free(p);
    pf->admin_priv = NULL;
}

void sim_admin_reset(struct sim_fn *pf)
{
    struct adm_priv *p = pf->admin_priv;
    if (!p)
        return;   /* core resets the PF once before admin init */
    stop_timers(p);
    if (p->fifo_count)
        LOG_I("%s: admin reset drops %u delayed completions", pf->bdf, p->fifo_count);
    p->fifo_head = p->fifo_count = 0;
    p->list_used = false;
    p->in_use = 0;
}

int sim_adm_fault_take(struct sim *s)
{
    int st = s->fault.admin_fail_status;
    if (!st)
        return 0;
    if (s->fault.admin_fail_count && --s->fault.admin_fail_count == 0)
        s->fault.admin_fail_status = 0;
    return st;
}

bool sim_adm_dialect_enabled(const struct sim_fn *pf, bool nvidia)
{
    const struct sim *s = pf->sim;
    const char *d = s->opt.admin_dialect;
    for (unsigned i = 0; i < s->npfs && i < s->opt.npfs; i++)   /* s->pfs[] is in --pf order */
        if (&s->pfs[i]->fn == pf && s->opt.pfs[i].admin_dialect)
            d = s->opt.pfs[i].admin_dialect;
    if (!d || !strcmp(d, "both"))
        return true;
    return !strcmp(d, nvidia ? "nvidia" : "virtio");
}

static void complete(struct adm_priv *p, struct sim_queue *q, uint16_t head, uint32_t len)
{
    struct sim *s = p->pf->sim;
    unsigned ms = s->loop ? s->fault.admin_delay_ms : 0;

    if (!ms && (!p->fifo_count || !s->loop)) {
        if (sim_vq_push(q, head, len) < 0)
            LOG_W("%s: admin queue: completion not written", p->pf->bdf);
        return;
    }
    /* Behind earlier delayed commands: never overtake them. */
    ev_tstamp due = ev_now(s->loop) + ms / 1000.;
    if (p->fifo_count) {
        ev_tstamp last = p->fifo[(p->fifo_head + p->fifo_count - 1) % ADM_PENDING_MAX].due;
        if (due < last)
            due = last;
    }
    p->fifo[(p->fifo_head + p->fifo_count) % ADM_PENDING_MAX] = (struct adm_done){ head, len, due };
    p->fifo_count++;
    if (!ev_is_active(&p->delay)) {
        ev_tstamp wait = p->fifo[p->fifo_head].due - ev_now(s->loop);
        ev_timer_set(&p->delay, wait > 0 ? wait : 0., 0.);
        ev_timer_start(s->loop, &p->delay);
    }
}

static void serve_one(struct adm_priv *p, struct sim_queue *q)
{
    struct sim_fn *pf = p->pf;
    const struct vq_elem *e = &p->elem;
    uint32_t used = 0;

    if (e->out_len == 0) {
        LOG_W("%s: admin command without readable bytes: completed empty", pf->bdf);
    } else {
        bool too_long = e->out_len > SIM_ADM_MAX_CMD;
        size_t n = too_long ? SIM_ADM_MAX_CMD : (size_t)e->out_len;
        long got = sim_vq_gather(pf, e, 0, p->cmd, n);
        if (got != (long)n) {
            LOG_W("%s: admin command not readable: completed empty", pf->bdf);
        } else {
            int injected = sim_adm_fault_take(pf->sim);
            if (p->cmd[0] == SIM_NV_CLASS_MIG || p->cmd[0] == SIM_NV_CLASS_DIRTY)
                used = sim_adm_nv_serve(p, e, n, too_long, injected);
            else
                used = sim_adm_std_serve(p, e, n, too_long, injected);
        }
    }
    complete(p, q, e->head, used);
}

static bool pf_can_serve(const struct sim_fn *pf)
{
    return !(pf->status & VIRTIO_CONFIG_S_NEEDS_RESET) && !pf->removed && sim_fn_dma_allowed(pf);
}

static void process(struct adm_priv *p)
{
    struct sim_fn *pf = p->pf;
    struct sim_queue *q = admin_q(pf);
    unsigned done = 0;

    if (!q)
        return;
    for (;;) {
        if (!pf_can_serve(pf) || !sim_vq_ready(q))
            return;
        if (p->fifo_count >= ADM_PENDING_MAX)
            return;   /* delay_cb continues once completions drain */
        if (done >= ADM_BATCH) {
            if (pf->sim->loop && !ev_is_active(&p->batch)) {
                ev_timer_set(&p->batch, 0., 0.);
                ev_timer_start(pf->sim->loop, &p->batch);
            }
            return;
        }
        int rc = sim_vq_pop(q, &p->elem);
        if (rc < 0)
            return;
        if (rc == 0) {
            if (sim_vq_enable_kick(q))
                continue;
            return;
        }
        unsigned slow = pf->sim->loop ? pf->sim->fault.admin_slow_ms : 0;
        if (slow && !slow_turn(p, slow)) {
            sim_vq_unpop(q, 1);   /* it stays available until its turn */
            return;
        }
        done++;
        serve_one(p, q);
    }
}

void sim_admin_queue_notify(struct sim_fn *pf)
{
    if (!pf->is_pf)
        return;
    if (!pf->admin_priv)
        sim_admin_fn_init(pf);
    struct adm_priv *p = pf->admin_priv;
    if (p)
        process(p);
}
