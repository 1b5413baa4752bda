/* Per-device serial job queues on a bounded thread pool (see vfe_devq.h). */
#include "lib/devq/vfe_devq.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log/vfe_log.h"

#define TICK_S 0.025   /* how often the loop looks for stuck jobs while any is outstanding */

struct dkey;
struct dgroup;

struct job {
    struct job *next;
    struct dkey *key;          /* while queued or running */
    vfe_devq_work work;
    vfe_devq_done done;
    void *arg;
    int64_t started_ns;
    bool stuck;
};

/* Devices that share a path to the hardware (a PF's VFs): picked round robin,
 * and a group with a stuck job only when no other group has work. */
struct dgroup {
    char name[VFE_DEVQ_KEY_MAX];
    struct dgroup *next;       /* q->groups */
    struct dgroup *rnext;      /* q->ready */
    struct dkey *kready, *kready_tail;   /* its keys with a queued job and none running */
    unsigned keys;             /* its keys alive */
    unsigned nready;           /* keys in kready */
    unsigned stuck;            /* its jobs running past VFE_DEVQ_STUCK_MS */
    bool in_ready;
};

/* A device with jobs queued or running; freed when it has neither. */
struct dkey {
    char name[VFE_DEVQ_KEY_MAX];
    struct dgroup *g;
    struct dkey *next;         /* q->keys */
    struct dkey *rnext;        /* g->kready */
    struct job *head, *tail;   /* queued, in submit order */
    struct job *running;
    bool in_ready;
};

struct worker {
    pthread_t tid;
    struct vfe_devq *q;
    struct worker *next;
    bool exited;
};

struct vfe_devq {
    struct ev_loop *loop;
    unsigned max;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* workers: a key became ready, or a slot freed */
    pthread_cond_t idle_cv;    /* destroy: a job ended or a thread left */
    ev_async wake;             /* a job finished: its done goes to the loop */
    ev_timer tick;             /* stuck detection and spawning while jobs are outstanding */
    struct dkey *keys;
    struct dgroup *groups;
    struct dgroup *ready, *ready_tail; /* groups with a ready key, round robin */
    unsigned nready;                   /* ready keys */
    struct job *fin, *fin_tail;        /* work returned, done not run yet */
    struct worker *workers;
    unsigned threads, idle, counted, running, stuck, queued;
    uint64_t completed;
    bool stopping;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void group_ready_append(struct vfe_devq *q, struct dgroup *g)
{
    g->rnext = NULL;
    g->in_ready = true;
    if (q->ready_tail)
        q->ready_tail->rnext = g;
    else
        q->ready = g;
    q->ready_tail = g;
}

static void ready_push(struct vfe_devq *q, struct dkey *k)
{
    struct dgroup *g = k->g;
    k->rnext = NULL;
    k->in_ready = true;
    if (g->kready_tail)
        g->kready_tail->rnext = k;
    else
        g->kready = k;
    g->kready_tail = k;
    g->nready++;
    if (!g->in_ready)
        group_ready_append(q, g);
    q->nready++;
}

/* Ready keys of groups with a stuck job: they start without a running slot. */
static unsigned ready_behind_stuck(const struct vfe_devq *q)
{
    unsigned n = 0;
    for (const struct dgroup *g = q->ready; g; g = g->rnext)
        n += g->stuck ? g->nready : 0;
    return n;
}

/* The next key to run: from the first group without a stuck job if a
 * running slot is free (slot), else from the first group with one. */
static struct dkey *ready_pop(struct vfe_devq *q, bool slot)
{
    struct dgroup *g = NULL, *prev = NULL, *first_stuck = NULL, *first_stuck_prev = NULL;
    for (struct dgroup *p = NULL, *c = q->ready; c; p = c, c = c->rnext) {
        if (c->stuck && !first_stuck) {
            first_stuck = c;
            first_stuck_prev = p;
        }
        if (!c->stuck && slot) {
            g = c;
            prev = p;
            break;
        }
    }
    if (!g) {
        g = first_stuck;
        prev = first_stuck_prev;
    }
    if (prev)   /* out of the ring; back at its tail if it has more */
        prev->rnext = g->rnext;
    else
        q->ready = g->rnext;
    if (q->ready_tail == g)
        q->ready_tail = prev;
    g->in_ready = false;
    struct dkey *k = g->kready;
    g->kready = k->rnext;
    if (!g->kready)
        g->kready_tail = NULL;
    else
        group_ready_append(q, g);
    k->in_ready = false;
    g->nready--;
    q->nready--;
    return k;
}

static void key_free_if_empty(struct vfe_devq *q, struct dkey *k)
{
    if (k->head || k->running || k->in_ready)
        return;
    for (struct dkey **p = &q->keys; *p; p = &(*p)->next)
        if (*p == k) {
            *p = k->next;
            break;
        }
    struct dgroup *g = k->g;
    free(k);
    if (--g->keys || g->in_ready)
        return;
    for (struct dgroup **p = &q->groups; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            break;
        }
    free(g);
}

/* A running slot is free and a device of a group that answers is ready. */
static bool slot_start(const struct vfe_devq *q)
{
    return q->counted < q->max && q->nready > ready_behind_stuck(q);
}

/* A job may start: on a free slot, or, while fewer than VFE_DEVQ_HARD_CAP
 * jobs are stuck, a device of a group whose hardware does not answer (it
 * runs as stuck from the start). */
static bool can_start(const struct vfe_devq *q)
{
    return q->ready && (slot_start(q) || (ready_behind_stuck(q) && q->stuck < VFE_DEVQ_HARD_CAP));
}

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct vfe_devq *q = w->q;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        bool timed_out = false;
        while (!q->stopping && !can_start(q) && !timed_out) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)VFE_DEVQ_IDLE_S;
            timed_out = pthread_cond_timedwait(&q->work_cv, &q->mu, &until) == ETIMEDOUT;
        }
        if (q->stopping || !can_start(q))
            break;
        struct dkey *k = ready_pop(q, slot_start(q));
        struct job *j = k->head;
        k->head = j->next;
        if (!k->head)
            k->tail = NULL;
        k->running = j;
        j->started_ns = now_ns();
        j->stuck = k->g->stuck > 0;   /* its group's hardware does not answer: it will wait too */
        q->queued--;
        q->running++;
        if (j->stuck) {
            k->g->stuck++;
            q->stuck++;
        } else {
            q->counted++;
        }
        q->idle--;
        pthread_mutex_unlock(&q->mu);

        j->work(j->arg);

        pthread_mutex_lock(&q->mu);
        q->idle++;
        q->running--;
        if (j->stuck) {
            q->stuck--;
            k->g->stuck--;
        } else {
            q->counted--;
        }
        k->running = NULL;
        j->key = NULL;
        if (k->head)
            ready_push(q, k);
        else
            key_free_if_empty(q, k);
        j->next = NULL;
        if (q->fin_tail)
            q->fin_tail->next = j;
        else
            q->fin = j;
        q->fin_tail = j;
        ev_async_send(q->loop, &q->wake);
        pthread_cond_broadcast(&q->work_cv);
        pthread_cond_broadcast(&q->idle_cv);
    }
    q->idle--;
    q->threads--;
    w->exited = true;
    pthread_cond_broadcast(&q->idle_cv);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Under q->mu, on the loop's thread: enough threads for what may start now. */
static void spawn(struct vfe_devq *q)
{
    unsigned slots = q->max > q->counted ? q->max - q->counted : 0;
    unsigned behind = ready_behind_stuck(q), free_ready = q->nready - behind;
    unsigned stuck_room = VFE_DEVQ_HARD_CAP > q->stuck ? VFE_DEVQ_HARD_CAP - q->stuck : 0;
    unsigned want = (free_ready < slots ? free_ready : slots) + (behind < stuck_room ? behind : stuck_room);
    while (want > q->idle && q->threads < VFE_DEVQ_HARD_CAP + q->max) {
        struct worker *w = calloc(1, sizeof(*w));
        if (!w)
            break;
        w->q = q;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);   /* signals stay the loop's */
        int rc = pthread_create(&w->tid, NULL, worker_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc) {
            free(w);
            if (!q->threads)
                LOG_E("devq: no thread can be started (%s): jobs wait", strerror(rc));
            break;
        }
        w->next = q->workers;
        q->workers = w;
        q->threads++;
        q->idle++;
    }
}

/* Under q->mu: running jobs past VFE_DEVQ_STUCK_MS stop counting. */
static void mark_stuck(struct vfe_devq *q)
{
    int64_t limit = now_ns() - (int64_t)VFE_DEVQ_STUCK_MS * 1000000;
    bool freed = false;
    for (struct dkey *k = q->keys; k; k = k->next)
        if (k->running && !k->running->stuck && k->running->started_ns < limit) {
            LOG_I("devq: %s: job running for more than %d ms, waiting on the device; the other jobs of %s now go "
                  "after those of devices that answer", k->name, VFE_DEVQ_STUCK_MS, k->g->name);
            k->running->stuck = true;
            k->g->stuck++;
            q->stuck++;
            q->counted--;
            freed = true;
        }
    if (freed)
        pthread_cond_broadcast(&q->work_cv);
}

/* Under q->mu: the workers that left, taken off the list (joined by the caller). */
static struct worker *take_exited(struct vfe_devq *q)
{
    struct worker *gone = NULL;
    for (struct worker **p = &q->workers; *p;) {
        struct worker *w = *p;
        if (w->exited) {
            *p = w->next;
            w->next = gone;
            gone = w;
        } else {
            p = &w->next;
        }
    }
    return gone;
}

static void join_all(struct worker *w)
{
    while (w) {
        struct worker *next = w->next;
        pthread_join(w->tid, NULL);
        free(w);
        w = next;
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct vfe_devq *q = t->data;
    pthread_mutex_lock(&q->mu);
    mark_stuck(q);
    spawn(q);
    struct worker *gone = take_exited(q);
    bool outstanding = q->queued || q->running;
    pthread_mutex_unlock(&q->mu);
    join_all(gone);
    if (!outstanding)
        ev_timer_stop(loop, t);
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct vfe_devq *q = a->data;
    pthread_mutex_lock(&q->mu);
    struct job *j = q->fin;
    q->fin = q->fin_tail = NULL;
    struct worker *gone = take_exited(q);
    pthread_mutex_unlock(&q->mu);
    join_all(gone);
    /* a budget per loop turn: a batch's adds finishing together must not
     * keep the loop from its other clients (their done does loop work: a
     * socket bound, a session created) */
    int64_t until = now_ns() + (int64_t)VFE_DEVQ_DONE_BUDGET_US * 1000;
    while (j && now_ns() < until) {
        struct job *next = j->next;
        q->completed++;
        j->done(j->arg, 0);
        free(j);
        j = next;
    }
    if (!j)
        return;
    struct job *last = j;   /* the rest go first next turn, ahead of what finished meanwhile */
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&q->mu);
    last->next = q->fin;
    if (!q->fin)
        q->fin_tail = last;
    q->fin = j;
    pthread_mutex_unlock(&q->mu);
    ev_async_send(loop, a);
}

struct vfe_devq *vfe_devq_new(struct ev_loop *loop, unsigned max_threads)
{
    if (!loop || !max_threads || max_threads > VFE_DEVQ_HARD_CAP) {
        errno = EINVAL;
        return NULL;
    }
    struct vfe_devq *q = calloc(1, sizeof(*q));
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    q->loop = loop;
    q->max = max_threads;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work_cv, NULL);
    pthread_cond_init(&q->idle_cv, NULL);
    ev_async_init(&q->wake, wake_cb);
    q->wake.data = q;
    ev_async_start(loop, &q->wake);
    ev_unref(loop);   /* an idle queue does not keep the loop running */
    ev_timer_init(&q->tick, tick_cb, TICK_S, TICK_S);
    q->tick.data = q;
    return q;
}

static struct dgroup *group_get(struct vfe_devq *q, const char *name)
{
    for (struct dgroup *g = q->groups; g; g = g->next)
        if (!strcmp(g->name, name))
            return g;
    struct dgroup *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    memcpy(g->name, name, strlen(name) + 1);
    g->next = q->groups;
    q->groups = g;
    return g;
}

static struct dkey *key_get(struct vfe_devq *q, const char *group, const char *name)
{
    for (struct dkey *k = q->keys; k; k = k->next)
        if (!strcmp(k->name, name))
            return k;
    struct dgroup *g = group_get(q, group);
    struct dkey *k = g ? calloc(1, sizeof(*k)) : NULL;
    if (!k) {
        if (g && !g->keys && !g->in_ready) {
            q->groups = g->next;   /* just added at the head */
            free(g);
        }
        return NULL;
    }
    memcpy(k->name, name, strlen(name) + 1);
    k->g = g;
    g->keys++;
    k->next = q->keys;
    q->keys = k;
    return k;
}

static bool key_ok(const char *key)
{
    return key && *key;
}

int vfe_devq_submit_grouped(struct vfe_devq *q, const char *group, const char *device_key, vfe_devq_work work,
                            vfe_devq_done done, void *arg)
{
    if (!q || !key_ok(group) || !key_ok(device_key) || !work || !done)
        return -EINVAL;
    if (strnlen(device_key, VFE_DEVQ_KEY_MAX) >= VFE_DEVQ_KEY_MAX || strnlen(group, VFE_DEVQ_KEY_MAX) >= VFE_DEVQ_KEY_MAX)
        return -ENAMETOOLONG;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    *j = (struct job){.work = work, .done = done, .arg = arg};
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    struct dkey *k = q->stopping ? NULL : key_get(q, group, device_key);
    if (!k) {
        rc = q->stopping ? -ESHUTDOWN : -ENOMEM;
    } else {
        j->key = k;
        if (k->tail)
            k->tail->next = j;
        else
            k->head = j;
        k->tail = j;
        q->queued++;
        if (!k->running && !k->in_ready)
            ready_push(q, k);
        pthread_cond_signal(&q->work_cv);
        spawn(q);
    }
    struct worker *gone = take_exited(q);
    pthread_mutex_unlock(&q->mu);
    join_all(gone);
    if (rc < 0) {
        free(j);
        return rc;
    }
    if (!ev_is_active(&q->tick))
        ev_timer_start(q->loop, &q->tick);
    return 0;
}

int vfe_devq_submit(struct vfe_devq *q, const char *device_key, vfe_devq_work work, vfe_devq_done done, void *arg)
{
    return vfe_devq_submit_grouped(q, device_key ? device_key : "", device_key, work, done, arg);
}

void vfe_devq_stats(struct vfe_devq *q, struct vfe_devq_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    mark_stuck(q);
    *st = (struct vfe_devq_stats){.queued = q->queued, .running = q->running, .stuck = q->stuck,
                                  .threads = q->threads, .completed = q->completed};
    pthread_mutex_unlock(&q->mu);
}

void vfe_devq_destroy(struct vfe_devq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->work_cv);
    while (q->threads)   /* running jobs end first: a worker leaves only between jobs */
        pthread_cond_wait(&q->idle_cv, &q->mu);
    struct worker *gone = take_exited(q);
    struct job *fin = q->fin;
    q->fin = q->fin_tail = NULL;
    pthread_mutex_unlock(&q->mu);
    join_all(gone);
    ev_timer_stop(q->loop, &q->tick);
    ev_ref(q->loop);
    ev_async_stop(q->loop, &q->wake);
    for (struct job *j = fin, *next; j; j = next) {
        next = j->next;
        q->completed++;
        j->done(j->arg, VFE_DEVQ_SHUTDOWN);
        free(j);
    }
    /* never started: per key, in submit order (keys newest first) */
    while (q->keys) {
        struct dkey *k = q->keys;
        q->keys = k->next;
        for (struct job *j = k->head, *next; j; j = next) {
            next = j->next;
            q->completed++;
            j->done(j->arg, VFE_DEVQ_CANCELED);
            free(j);
        }
        free(k);
    }
    while (q->groups) {
        struct dgroup *g = q->groups;
        q->groups = g->next;
        free(g);
    }
    pthread_cond_destroy(&q->work_cv);
    pthread_cond_destroy(&q->idle_cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
