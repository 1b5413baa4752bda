/*
 * vfe_devq: jobs of one key run one at a time in submit order, a key blocked
 * on its device does not hold another, done runs only from the loop (never
 * inside submit), destroy waits for running jobs and answers queued ones,
 * stuck jobs stop counting against the running limit, the thread cap holds,
 * bad input is refused.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/devq/vfe_devq.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the loop until *flag reaches want or limit seconds pass; true if it did. */
static bool run_until(struct ev_loop *loop, atomic_int *flag, int want, double limit)
{
    double end = now_s() + limit;
    while (atomic_load(flag) < want && now_s() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(500);
    }
    return atomic_load(flag) >= want;
}

/* A gate work waits on until the test opens it. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void gate_reset(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = false;
    pthread_mutex_unlock(&gate_mu);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

struct rec {
    int id;
    unsigned sleep_us;
    bool gated;
    atomic_int *in_key;        /* jobs of this key in work() now */
    atomic_int *max_in_key;
    int *order;                /* work appends id here */
    atomic_int *norder;
    atomic_int *dones;
    atomic_int *started;       /* counts works begun */
    int status;
    bool in_submit;            /* set around submit: done must never see it */
    bool done_in_submit;
    atomic_bool worked;
};

static bool submitting;

static void rec_work(void *arg)
{
    struct rec *r = arg;
    if (r->started)
        atomic_fetch_add(r->started, 1);
    if (r->in_key) {
        int n = atomic_fetch_add(r->in_key, 1) + 1;
        if (n > atomic_load(r->max_in_key))
            atomic_store(r->max_in_key, n);
    }
    if (r->gated) {
        pthread_mutex_lock(&gate_mu);
        while (!gate_open)
            pthread_cond_wait(&gate_cv, &gate_mu);
        pthread_mutex_unlock(&gate_mu);
    }
    if (r->sleep_us)
        usleep(r->sleep_us);
    if (r->order)
        r->order[atomic_fetch_add(r->norder, 1)] = r->id;
    if (r->in_key)
        atomic_fetch_sub(r->in_key, 1);
    atomic_store(&r->worked, true);
}

static void rec_done(void *arg, int status)
{
    struct rec *r = arg;
    r->status = status;
    r->done_in_submit = submitting;
    atomic_fetch_add(r->dones, 1);
}

static int submit(struct vfe_devq *q, const char *key, struct rec *r)
{
    submitting = true;
    int rc = vfe_devq_submit(q, key, rec_work, rec_done, r);
    submitting = false;
    return rc;
}

static void test_serial_per_key(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 4);
    assert_non_null(q);
    atomic_int in_key = 0, max_in_key = 0, norder = 0, dones = 0;
    int order[8];
    struct rec r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct rec){.id = i, .sleep_us = 3000, .in_key = &in_key, .max_in_key = &max_in_key,
                            .order = order, .norder = &norder, .dones = &dones};
        assert_int_equal(submit(q, "0000:3b:00.1", &r[i]), 0);
    }
    assert_true(run_until(loop, &dones, 8, 5.0));
    assert_int_equal(atomic_load(&max_in_key), 1);   /* never two of one key at once */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(order[i], i);               /* in submit order */
        assert_int_equal(r[i].status, 0);
    }
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

/* done comes from the loop: not inside submit, and not before the loop runs,
 * however long ago the work finished. */
static void test_done_never_inside_submit(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 2);
    atomic_int dones = 0;
    struct rec r = {.dones = &dones};
    assert_int_equal(submit(q, "k", &r), 0);
    for (int i = 0; i < 200 && !atomic_load(&r.worked); i++)
        usleep(1000);
    assert_true(atomic_load(&r.worked));
    usleep(20000);
    assert_int_equal(atomic_load(&dones), 0);
    /* a second submit on the loop's thread must not deliver the first done either */
    struct rec r2 = {.dones = &dones};
    assert_int_equal(submit(q, "k", &r2), 0);
    assert_int_equal(atomic_load(&dones), 0);
    assert_true(run_until(loop, &dones, 2, 5.0));
    assert_false(r.done_in_submit);
    assert_false(r2.done_in_submit);
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

/* A job of key X waits on its device (the gate): Y's jobs complete meanwhile. */
static void test_blocked_key_does_not_hold_others(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 1);   /* one running slot: only the stuck rule lets Y run */
    gate_reset();
    atomic_int xdone = 0, ydone = 0;
    struct rec x = {.gated = true, .dones = &xdone}, x2 = {.dones = &xdone};
    struct rec y[4];
    assert_int_equal(submit(q, "X", &x), 0);
    assert_int_equal(submit(q, "X", &x2), 0);
    for (int i = 0; i < 4; i++) {
        y[i] = (struct rec){.dones = &ydone};
        assert_int_equal(submit(q, "Y", &y[i]), 0);
    }
    double t0 = now_s();
    assert_true(run_until(loop, &ydone, 4, 2.0));
    assert_true(now_s() - t0 < 1.0);
    assert_int_equal(atomic_load(&xdone), 0);          /* X's second job waits behind the first */
    assert_false(atomic_load(&x2.worked));
    struct vfe_devq_stats st;
    vfe_devq_stats(q, &st);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.stuck, 1);
    assert_int_equal(st.queued, 1);
    gate_release();
    assert_true(run_until(loop, &xdone, 2, 5.0));
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

/* Stuck jobs (past VFE_DEVQ_STUCK_MS) do not starve the pool: with a limit
 * of 2 and 2 dead devices, 20 jobs on healthy keys finish quickly. */
static void test_stuck_jobs_do_not_starve(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 2);
    gate_reset();
    atomic_int dead = 0, ok = 0;
    struct rec d[2], h[20];
    char key[16];
    for (int i = 0; i < 2; i++) {
        d[i] = (struct rec){.gated = true, .dones = &dead};
        snprintf(key, sizeof(key), "dead%d", i);
        assert_int_equal(submit(q, key, &d[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        h[i] = (struct rec){.sleep_us = 1000, .dones = &ok};
        snprintf(key, sizeof(key), "ok%d", i);
        assert_int_equal(submit(q, key, &h[i]), 0);
    }
    double t0 = now_s();
    assert_true(run_until(loop, &ok, 20, 3.0));
    assert_true(now_s() - t0 < 1.0);
    assert_int_equal(atomic_load(&dead), 0);
    gate_release();
    assert_true(run_until(loop, &dead, 2, 5.0));
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

/* A group whose device is stuck (a dead PF) waits behind groups that answer:
 * 40 of B's devices queued first, then 40 of A's, 1 running slot.  Once B's
 * first jobs are stuck, A's take the slots; B's others start as stuck (on
 * threads of their own, not on slots).  In plain FIFO order A would wait
 * behind B's, each holding the slot until it is found stuck. */
static void test_stuck_group_waits_behind_others(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 1);
    gate_reset();
    atomic_int bdone = 0, adone = 0, bstarted = 0;
    struct rec b[40], a[40];
    char key[16];
    for (int i = 0; i < 40; i++) {
        b[i] = (struct rec){.gated = true, .dones = &bdone, .started = &bstarted};
        snprintf(key, sizeof(key), "b%d", i);
        assert_int_equal(vfe_devq_submit_grouped(q, "pfB", key, rec_work, rec_done, &b[i]), 0);
    }
    for (int i = 0; i < 40; i++) {
        a[i] = (struct rec){.sleep_us = 2000, .dones = &adone};
        snprintf(key, sizeof(key), "a%d", i);
        assert_int_equal(vfe_devq_submit_grouped(q, "pfA", key, rec_work, rec_done, &a[i]), 0);
    }
    double t0 = now_s();
    bool a_done = run_until(loop, &adone, 40, 5.0);
    double took = now_s() - t0;
    struct vfe_devq_stats st;
    vfe_devq_stats(q, &st);
    int b_started = atomic_load(&bstarted);
    gate_release();   /* before any assert: the gated workers must not outlive the test */
    assert_true(a_done);
    assert_true(took < 0.4);
    assert_int_equal(b_started, 40);   /* B's others started as stuck at once, not one per stuck period */
    assert_int_equal(st.stuck, 40);
    assert_int_equal(st.threads <= VFE_DEVQ_HARD_CAP, 1);
    assert_true(run_until(loop, &bdone, 40, 5.0));
    assert_int_equal(vfe_devq_submit_grouped(q, "", "k", rec_work, rec_done, &a[0]), -EINVAL);
    assert_int_equal(vfe_devq_submit_grouped(q, NULL, "k", rec_work, rec_done, &a[0]), -EINVAL);
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

/* A dead PF with more VFs queued than the hard cap: its jobs stop starting
 * at VFE_DEVQ_HARD_CAP stuck, and the other group's jobs still run at once. */
static void test_dead_group_beyond_cap(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 2);
    gate_reset();
    enum { NB = VFE_DEVQ_HARD_CAP + 30, NA = 10 };
    static struct rec b[NB], a[NA];
    atomic_int bdone = 0, adone = 0, bstarted = 0, never = 0;
    char key[16];
    for (int i = 0; i < NB; i++) {
        b[i] = (struct rec){.gated = true, .dones = &bdone, .started = &bstarted};
        snprintf(key, sizeof(key), "b%d", i);
        assert_int_equal(vfe_devq_submit_grouped(q, "pfB", key, rec_work, rec_done, &b[i]), 0);
    }
    run_until(loop, &never, 1, 0.5);   /* B's first jobs go stuck, the others start as stuck up to the cap */
    struct vfe_devq_stats st;
    vfe_devq_stats(q, &st);
    for (int i = 0; i < NA; i++) {
        a[i] = (struct rec){.sleep_us = 1000, .dones = &adone};
        snprintf(key, sizeof(key), "a%d", i);
        assert_int_equal(vfe_devq_submit_grouped(q, "pfA", key, rec_work, rec_done, &a[i]), 0);
    }
    bool a_done = run_until(loop, &adone, NA, 1.0);
    gate_release();
    assert_true(a_done);
    /* the cap, plus at most the jobs that went stuck on running slots */
    assert_true(st.stuck >= VFE_DEVQ_HARD_CAP && st.stuck <= VFE_DEVQ_HARD_CAP + 2);
    assert_int_equal(st.queued, NB - st.running);
    assert_true(st.threads <= VFE_DEVQ_HARD_CAP + 2);
    assert_true(run_until(loop, &bdone, NB, 10.0));
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

/* More dead devices than the hard cap: threads stop at VFE_DEVQ_HARD_CAP +
 * max_threads (every job here went stuck on its own), the rest queue. */
static void test_thread_cap(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 4);
    gate_reset();
    enum { N = VFE_DEVQ_HARD_CAP + 4 + 16 };
    static struct rec r[N];
    atomic_int dones = 0, never = 0;
    char key[16];
    for (int i = 0; i < N; i++) {
        r[i] = (struct rec){.gated = true, .dones = &dones};
        snprintf(key, sizeof(key), "dev%d", i);
        assert_int_equal(submit(q, key, &r[i]), 0);
    }
    struct vfe_devq_stats st;
    double end = now_s() + 5.0;
    do {
        run_until(loop, &never, 1, 0.05);
        vfe_devq_stats(q, &st);
    } while (st.running < VFE_DEVQ_HARD_CAP + 4 && now_s() < end);
    run_until(loop, &never, 1, 0.3);   /* time for more threads, were there no cap */
    vfe_devq_stats(q, &st);
    assert_int_equal(st.threads, VFE_DEVQ_HARD_CAP + 4);
    assert_int_equal(st.running, VFE_DEVQ_HARD_CAP + 4);
    assert_int_equal(st.queued, 16);
    gate_release();
    assert_true(run_until(loop, &dones, N, 10.0));
    vfe_devq_stats(q, &st);
    assert_int_equal(st.completed, N);
    assert_int_equal(st.running + st.queued + st.stuck, 0);
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

static struct vfe_devq *destroying;
static int resubmit_rc;

static void resubmit_done(void *arg, int status)
{
    rec_done(arg, status);
    resubmit_rc = vfe_devq_submit(destroying, "X", rec_work, rec_done, arg);
}

/* destroy waits for the running job, then answers it (ran, SHUTDOWN) and the
 * queued ones (never ran, CANCELED), inside the call; a submit from them is
 * refused; nothing runs afterwards. */
static void test_destroy_running_and_queued(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 2);
    atomic_int dones = 0;
    struct rec run = {.sleep_us = 200000, .dones = &dones}, queued[3];
    assert_int_equal(submit(q, "X", &run), 0);
    for (int i = 0; i < 3; i++) {
        queued[i] = (struct rec){.dones = &dones};
        assert_int_equal(vfe_devq_submit(q, "X", rec_work, i == 0 ? resubmit_done : rec_done, &queued[i]), 0);
    }
    for (int i = 0; i < 200 && !atomic_load(&dones); i++) {   /* the first job is in work() */
        struct vfe_devq_stats st;
        vfe_devq_stats(q, &st);
        if (st.running)
            break;
        usleep(1000);
    }
    destroying = q;
    resubmit_rc = 0;
    double t0 = now_s();
    vfe_devq_destroy(q);
    assert_true(now_s() - t0 > 0.1);             /* it waited for the running job */
    assert_int_equal(atomic_load(&dones), 4);
    assert_true(atomic_load(&run.worked));
    assert_int_equal(run.status, VFE_DEVQ_SHUTDOWN);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(queued[i].status, VFE_DEVQ_CANCELED);
        assert_false(atomic_load(&queued[i].worked));
    }
    assert_int_equal(resubmit_rc, -ESHUTDOWN);
    ev_run(loop, EVRUN_NOWAIT);                 /* nothing left to call */
    assert_int_equal(atomic_load(&dones), 4);
    ev_loop_destroy(loop);
}

/* Threads leave when idle; the loop is not kept running by an idle queue. */
static void test_idle_threads_leave(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 3);
    atomic_int dones = 0, never = 0;
    struct rec r[3];
    char key[8];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct rec){.sleep_us = 20000, .dones = &dones};
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(submit(q, key, &r[i]), 0);
    }
    assert_true(run_until(loop, &dones, 3, 5.0));
    struct vfe_devq_stats st;
    vfe_devq_stats(q, &st);
    assert_true(st.threads >= 1);
    run_until(loop, &never, 1, VFE_DEVQ_IDLE_S + 0.5);
    vfe_devq_stats(q, &st);
    assert_int_equal(st.threads, 0);
    double t0 = now_s();
    ev_run(loop, 0);                             /* returns: nothing active */
    assert_true(now_s() - t0 < 0.5);
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

static void nop_work(void *arg) {}
static void nop_done(void *arg, int status) {}

/* Many works finished together: one loop turn runs their done calls for at
 * most VFE_DEVQ_DONE_BUDGET_US (each here takes 400 us), the rest follow in
 * later turns, in order; a timer ready meanwhile runs in between. */
static atomic_int slow_dones;
static int slow_order[64];   /* ids in the order their done ran (rec's order is its work's) */
static void slow_done(void *arg, int status)
{
    struct rec *r = arg;
    usleep(400);
    slow_order[atomic_fetch_add(&slow_dones, 1)] = r->id;
}

static int timer_fired_at = -1;
static void note_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    timer_fired_at = atomic_load(&slow_dones);
}

static void test_done_budget_per_turn(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct vfe_devq *q = vfe_devq_new(loop, 4);
    assert_non_null(q);
    enum { N = 40 };
    struct rec r[N];
    atomic_store(&slow_dones, 0);
    for (int i = 0; i < N; i++) {
        r[i] = (struct rec){.id = i};
        assert_int_equal(vfe_devq_submit(q, "0000:3b:00.1", rec_work, slow_done, &r[i]), 0);
    }
    for (int i = 0; i < N; i++)   /* every work is over before the loop runs a done */
        while (!atomic_load(&r[i].worked))
            usleep(1000);
    usleep(20000);
    ev_timer tm;
    ev_timer_init(&tm, note_timer, 0., 0.);
    ev_timer_start(loop, &tm);
    ev_run(loop, EVRUN_ONCE);   /* the first turn */
    int first = atomic_load(&slow_dones);
    assert_true(first >= 1 && first < N);   /* not all in one turn */
    double end = now_s() + 5;
    while (atomic_load(&slow_dones) < N && now_s() < end)
        ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(atomic_load(&slow_dones), N);
    assert_true(timer_fired_at >= 0 && timer_fired_at < N);   /* the timer did not wait for all of them */
    for (int i = 0; i < N; i++)
        assert_int_equal(slow_order[i], i);
    vfe_devq_destroy(q);
    ev_loop_destroy(loop);
}

static void test_bad_input(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    errno = 0;
    assert_null(vfe_devq_new(loop, 0));
    assert_int_equal(errno, EINVAL);
    assert_null(vfe_devq_new(loop, VFE_DEVQ_HARD_CAP + 1));
    assert_null(vfe_devq_new(NULL, 2));
    struct vfe_devq *q = vfe_devq_new(loop, 2);
    char long_key[VFE_DEVQ_KEY_MAX + 1];
    memset(long_key, 'a', sizeof(long_key) - 1);
    long_key[VFE_DEVQ_KEY_MAX] = '\0';
    assert_int_equal(vfe_devq_submit(NULL, "k", nop_work, nop_done, NULL), -EINVAL);
    assert_int_equal(vfe_devq_submit(q, NULL, nop_work, nop_done, NULL), -EINVAL);
    assert_int_equal(vfe_devq_submit(q, "", nop_work, nop_done, NULL), -EINVAL);
    assert_int_equal(vfe_devq_submit(q, "k", NULL, nop_done, NULL), -EINVAL);
    assert_int_equal(vfe_devq_submit(q, "k", nop_work, NULL, NULL), -EINVAL);
    assert_int_equal(vfe_devq_submit(q, long_key, nop_work, nop_done, NULL), -ENAMETOOLONG);
    long_key[VFE_DEVQ_KEY_MAX - 1] = '\0';      /* 63 bytes: fits */
    assert_int_equal(vfe_devq_submit(q, long_key, nop_work, nop_done, NULL), 0);
    struct vfe_devq_stats st;
    vfe_devq_stats(NULL, &st);
    assert_int_equal(st.threads, 0);
    vfe_devq_destroy(q);
    vfe_devq_destroy(NULL);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial_per_key),
        cmocka_unit_test(test_done_never_inside_submit),
        cmocka_unit_test(test_blocked_key_does_not_hold_others),
        cmocka_unit_test(test_stuck_jobs_do_not_starve),
        cmocka_unit_test(test_stuck_group_waits_behind_others),
        cmocka_unit_test(test_dead_group_beyond_cap),
        cmocka_unit_test(test_thread_cap),
        cmocka_unit_test(test_destroy_running_and_queued),
        cmocka_unit_test(test_idle_threads_leave),
        cmocka_unit_test(test_done_budget_per_turn),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
