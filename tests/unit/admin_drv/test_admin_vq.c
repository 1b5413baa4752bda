/* Admin queue core: pipelining, timeouts and quarantine, nvidia retries,
 * malformed device answers.  The ring is tests/unit/admin_drv/fake_ring. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "drivers/common/virtio_mi/vfe_admin_vq.h"
#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "tests/unit/admin_drv/fake_ring.h"

struct done {
    bool done;
    int calls;
    int status;
    uint8_t res[64];
    uint32_t len;
    int *order;              /* appends id here when set */
    int *norder;
    int id;
};

static void record_cb(void *ctx, int status, const uint8_t *result, uint32_t len)
{
    struct done *d = ctx;
    d->calls++;
    d->done = true;
    d->status = status;
    d->len = len;
    if (result && len)
        memcpy(d->res, result, len < sizeof(d->res) ? len : sizeof(d->res));
    if (d->order)
        d->order[(*d->norder)++] = d->id;
}

struct fx {
    struct ev_loop *loop;
    struct fake_ring r;
};

static int setup_n(void **state, unsigned nslots)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    f.loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f.loop);
    assert_int_equal(fake_ring_open(&f.r, f.loop, nslots), 0);
    *state = &f;
    return 0;
}
static int setup4(void **state) { return setup_n(state, 4); }
static int setup1(void **state) { return setup_n(state, 1); }

static int teardown(void **state)
{
    struct fx *f = *state;
    vfe_admin_close(f->r.aq);
    assert_true(f->r.fini_called);
    ev_loop_destroy(f->loop);
    return 0;
}

static void nv_cmd(uint8_t *cmd, uint8_t op, uint16_t vf)
{
    cmd[0] = VFE_NV_CLASS_MIG;
    cmd[1] = op;
    vfe_put_le16(cmd + 2, vf);
    cmd[4] = cmd[5] = 0;
}

/* Several commands in the device at once, answered out of order: each
 * callback gets its own command's answer, in completion order. */
static void test_pipelined_out_of_order(void **state)
{
    struct fx *f = *state;
    struct done d[5] = { 0 };
    int order[5], norder = 0;
    uint8_t cmd[6];
    for (int i = 0; i < 5; i++) {
        d[i].order = order;
        d[i].norder = &norder;
        d[i].id = i;
        nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, (uint16_t)(10 + i));
        assert_int_equal(vfe_admin_submit(f->r.aq, cmd, sizeof(cmd), 1, record_cb, &d[i]), 0);
    }
    /* 4 slots: 4 chains in the device, the 5th waits */
    assert_int_equal(f->r.nchains, 4);
    struct vfe_admin_stats st;
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.in_flight, 4);
    assert_int_equal(st.pending, 1);
    for (unsigned i = 0; i < 4; i++) {
        struct fake_chain *c = &f->r.chain[i];
        uint8_t v = (uint8_t)vfe_get_le16(c->cmd + 2);   /* answer carries the vdev id */
        fake_nv_answer(c, &v, 1, VFE_NV_ST_OK);
    }
    int answer_order[4] = { 2, 0, 3, 1 };
    for (int i = 0; i < 4; i++)
        fake_ring_complete(&f->r, (unsigned)answer_order[i], 2);
    assert_int_equal(d[0].calls, 0);          /* nothing completes before poll */
    assert_int_equal(vfe_admin_poll(f->r.aq), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(order[i], answer_order[i]);
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].status, 0);
        assert_int_equal(d[i].len, 1);
        assert_int_equal(d[i].res[0], 10 + i);
    }
    /* the freed slot took the waiting command */
    assert_int_equal(f->r.nchains, 5);
    assert_int_equal(vfe_get_le16(f->r.chain[4].cmd + 2), 14);
    fake_ring_complete(&f->r, 4, fake_nv_answer(&f->r.chain[4], "\x0e", 1, 0));
    vfe_admin_poll(f->r.aq);
    assert_int_equal(d[4].calls, 1);
    assert_int_equal(d[4].res[0], 14);
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.in_flight + st.pending + st.quarantined, 0);
}

/* virtio dialect: status and qualifier come from the header, result follows. */
static void test_virtio_status_and_result(void **state)
{
    struct fx *f = *state;
    uint8_t cmd[sizeof(struct vfe_adm_std_cmd)] = { 0 };
    vfe_put_le16(cmd, VFE_ADM_LIST_QUERY);
    struct done d = { 0 };
    assert_int_equal(vfe_admin_submit(f->r.aq, cmd, sizeof(cmd), 16, record_cb, &d), 0);
    assert_int_equal(f->r.chain[0].cmd_len, sizeof(cmd));
    assert_int_equal(f->r.chain[0].res_len, 16 + 8);
    assert_memory_equal(f->r.chain[0].cmd, cmd, sizeof(cmd));
    uint32_t len = fake_std_answer(&f->r.chain[0], "abc", 3, VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_FIELD);
    fake_ring_complete(&f->r, 0, len);
    vfe_admin_poll(f->r.aq);
    assert_int_equal(d.status, VFE_ADM_ST_EINVAL | VFE_ADM_SQ_INVALID_FIELD << 16);
    assert_int_equal(d.len, 3);
    assert_memory_equal(d.res, "abc", 3);
}

/* A command times out: callback -ETIMEDOUT at once, but its slot is not
 * reused until the device hands the chain back; the late answer is dropped. */
static void test_timeout_quarantines_slot(void **state)
{
    struct fx *f = *state;
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, 1);
    struct done a = { 0 }, b = { 0 };
    struct vfe_admin_opts o = { .timeout_ms = 20 };
    assert_int_equal(vfe_admin_submit_opts(f->r.aq, cmd, sizeof(cmd), 1, &o, record_cb, &a), 0);
    vfe_admin_wait(f->r.aq, &a.done);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ETIMEDOUT);
    struct vfe_admin_stats st;
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.quarantined, 1);
    assert_int_equal(st.timeouts, 1);

    nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, 2);
    assert_int_equal(vfe_admin_submit(f->r.aq, cmd, sizeof(cmd), 1, record_cb, &b), 0);
    assert_int_equal(f->r.nchains, 1);        /* B is not given the quarantined slot */
    vfe_admin_poll(f->r.aq);
    assert_int_equal(f->r.nchains, 1);
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.pending, 1);

    /* the device finally answers A */
    fake_ring_complete(&f->r, 0, fake_nv_answer(&f->r.chain[0], "\x07", 1, 0));
    vfe_admin_poll(f->r.aq);
    assert_int_equal(a.calls, 1);             /* no second callback */
    assert_int_equal(f->r.nchains, 2);        /* now B went out, in the same slot */
    assert_ptr_equal(f->r.chain[1].res, f->r.chain[0].res);
    assert_int_equal(vfe_get_le16(f->r.chain[1].cmd + 2), 2);
    fake_ring_complete(&f->r, 1, fake_nv_answer(&f->r.chain[1], "\x01", 1, 0));
    vfe_admin_poll(f->r.aq);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.res[0], 1);
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.quarantined, 0);
}

/* A command still waiting for a slot when it times out never reaches the device. */
static void test_timeout_while_pending(void **state)
{
    struct fx *f = *state;
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, 1);
    struct done a = { 0 }, b = { 0 };
    struct vfe_admin_opts slow = { .timeout_ms = 5000 }, fast = { .timeout_ms = 15 };
    assert_int_equal(vfe_admin_submit_opts(f->r.aq, cmd, sizeof(cmd), 1, &slow, record_cb, &a), 0);
    assert_int_equal(vfe_admin_submit_opts(f->r.aq, cmd, sizeof(cmd), 1, &fast, record_cb, &b), 0);
    vfe_admin_wait(f->r.aq, &b.done);
    assert_int_equal(b.status, -ETIMEDOUT);
    assert_int_equal(a.calls, 0);
    fake_ring_complete(&f->r, 0, fake_nv_answer(&f->r.chain[0], "\x01", 1, 0));
    vfe_admin_poll(f->r.aq);
    assert_int_equal(a.calls, 1);
    assert_int_equal(f->r.nchains, 1);
}

/* The caller blocked elsewhere for longer than the timeout without running
 * the loop: the new command still gets its full timeout. */
static void test_timeout_counts_from_submit(void **state)
{
    struct fx *f = *state;
    ev_run(f->loop, EVRUN_NOWAIT);             /* loop time is now */
    usleep(80 * 1000);                          /* ... and goes stale */
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, 1);
    struct done d = { 0 };
    struct vfe_admin_opts o = { .timeout_ms = 50 };
    assert_int_equal(vfe_admin_submit_opts(f->r.aq, cmd, sizeof(cmd), 1, &o, record_cb, &d), 0);
    ev_run(f->loop, EVRUN_NOWAIT);
    assert_int_equal(d.calls, 0);
    fake_ring_complete(&f->r, 0, fake_nv_answer(&f->r.chain[0], "\x01", 1, 0));
    vfe_admin_wait(f->r.aq, &d.done);
    assert_int_equal(d.status, 0);
}

/* ---- nvidia retries ---- */

struct retry_dev {
    int fail_times;          /* answer this many attempts with status */
    uint8_t status;
    int attempts;
};

static int retry_handler(struct fake_ring *r, struct fake_chain *c)
{
    struct retry_dev *rd = r->priv;
    rd->attempts++;
    if (rd->attempts <= rd->fail_times)
        return (int)fake_nv_answer(c, NULL, 0, rd->status);
    return (int)fake_nv_answer(c, "\x02", 1, VFE_NV_ST_OK);
}

static void test_nv_retry_then_success(void **state)
{
    struct fx *f = *state;
    struct retry_dev rd = { .fail_times = 2, .status = VFE_NV_ST_EBUSY };
    f->r.handler = retry_handler;
    f->r.priv = &rd;
    uint8_t cmd[6], res[4];
    uint32_t len = 0;
    nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, 1);
    assert_int_equal(vfe_admin_exec_sync(f->r.aq, cmd, sizeof(cmd), res, 1, &len, 2000), 0);
    assert_int_equal(rd.attempts, 3);
    assert_int_equal(len, 1);
    assert_int_equal(res[0], 2);
    struct vfe_admin_stats st;
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.retries, 2);
    /* each retry resends the same command bytes */
    assert_memory_equal(f->r.chain[2].cmd, cmd, sizeof(cmd));
}

static void test_nv_retry_gives_up(void **state)
{
    struct fx *f = *state;
    struct retry_dev rd = { .fail_times = 100, .status = VFE_NV_ST_EBUSY };
    f->r.handler = retry_handler;
    f->r.priv = &rd;
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_MODIFY_STATUS, 1);
    assert_int_equal(vfe_admin_exec_sync(f->r.aq, cmd, sizeof(cmd), NULL, 0, NULL, 2000), VFE_NV_ST_EBUSY);
    assert_int_equal(rd.attempts, 1 + VFE_ADMIN_NV_RETRIES);
}

static void test_nv_no_retry_bit(void **state)
{
    struct fx *f = *state;
    struct retry_dev rd = { .fail_times = 100, .status = VFE_NV_ST_EBUSY | VFE_NV_ST_NO_RETRY };
    f->r.handler = retry_handler;
    f->r.priv = &rd;
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_MODIFY_STATUS, 1);
    assert_int_equal(vfe_admin_exec_sync(f->r.aq, cmd, sizeof(cmd), NULL, 0, NULL, 2000),
                     VFE_NV_ST_EBUSY | VFE_NV_ST_NO_RETRY);
    assert_int_equal(rd.attempts, 1);
}

static void test_nv_no_retry_flag(void **state)
{
    struct fx *f = *state;
    struct retry_dev rd = { .fail_times = 100, .status = VFE_NV_ST_EBUSY };
    f->r.handler = retry_handler;
    f->r.priv = &rd;
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_MODIFY_STATUS, 1);
    struct done d = { 0 };
    struct vfe_admin_opts o = { .flags = VFE_ADMIN_F_NO_RETRY };
    assert_int_equal(vfe_admin_submit_opts(f->r.aq, cmd, sizeof(cmd), 0, &o, record_cb, &d), 0);
    vfe_admin_wait(f->r.aq, &d.done);
    assert_int_equal(d.status, VFE_NV_ST_EBUSY);
    assert_int_equal(rd.attempts, 1);
}

static int std_fail_handler(struct fake_ring *r, struct fake_chain *c)
{
    (*(int *)r->priv)++;
    return (int)fake_std_answer(c, NULL, 0, VFE_ADM_ST_EAGAIN, 0);
}

/* The retry policy is the nvidia dialect's only. */
static void test_virtio_failure_not_retried(void **state)
{
    struct fx *f = *state;
    int attempts = 0;
    f->r.handler = std_fail_handler;
    f->r.priv = &attempts;
    uint8_t cmd[sizeof(struct vfe_adm_std_cmd)] = { 0 };
    vfe_put_le16(cmd, VFE_ADM_DEV_MODE_SET);
    assert_int_equal(vfe_admin_exec_sync(f->r.aq, cmd, sizeof(cmd), NULL, 0, NULL, 2000), VFE_ADM_ST_EAGAIN);
    assert_int_equal(attempts, 1);
}

/* ---- malformed answers ---- */

static void test_bad_used_ids_ignored(void **state)
{
    struct fx *f = *state;
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, 1);
    struct done d = { 0 };
    assert_int_equal(vfe_admin_submit(f->r.aq, cmd, sizeof(cmd), 1, record_cb, &d), 0);
    fake_ring_push_raw(&f->r, (void *)(uintptr_t)999, 2);     /* no such slot */
    fake_ring_push_raw(&f->r, (void *)(uintptr_t)3, 2);       /* a free slot */
    assert_int_equal(vfe_admin_poll(f->r.aq), 2);
    assert_int_equal(d.calls, 0);
    struct vfe_admin_stats st;
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.bad_answers, 2);
    assert_int_equal(st.in_flight, 1);
    /* the real answer still completes, a duplicate of it is ignored */
    uint32_t len = fake_nv_answer(&f->r.chain[0], "\x01", 1, 0);
    fake_ring_complete(&f->r, 0, len);
    fake_ring_complete(&f->r, 0, len);
    vfe_admin_poll(f->r.aq);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.bad_answers, 3);
}

static void test_bad_lengths(void **state)
{
    struct fx *f = *state;
    uint8_t nv[6], std[sizeof(struct vfe_adm_std_cmd)] = { 0 };
    nv_cmd(nv, VFE_NV_MIG_GET_STATUS, 1);
    struct done d[3] = { 0 };
    assert_int_equal(vfe_admin_submit(f->r.aq, nv, sizeof(nv), 8, record_cb, &d[0]), 0);
    assert_int_equal(vfe_admin_submit(f->r.aq, nv, sizeof(nv), 8, record_cb, &d[1]), 0);
    assert_int_equal(vfe_admin_submit(f->r.aq, std, sizeof(std), 8, record_cb, &d[2]), 0);
    fake_nv_answer(&f->r.chain[0], NULL, 0, 0);
    fake_ring_complete(&f->r, 0, f->r.chain[0].res_len + 1);  /* longer than the area */
    fake_ring_complete(&f->r, 1, 0);                          /* no status byte */
    fake_ring_complete(&f->r, 2, 4);                          /* half a header */
    vfe_admin_poll(f->r.aq);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].status, -EIO);
    }
    struct vfe_admin_stats st;
    vfe_admin_get_stats(f->r.aq, &st);
    assert_int_equal(st.in_flight + st.quarantined, 0);   /* the slots are usable again */
}

/* An nvidia command answered the virtio way: the status byte was never
 * written, which must read as a failure that is not retried. */
static void test_nv_status_not_written(void **state)
{
    struct fx *f = *state;
    uint8_t cmd[2] = { VFE_NV_CLASS_MIG, VFE_NV_MIG_IDENTITY };
    struct done d = { 0 };
    assert_int_equal(vfe_admin_submit(f->r.aq, cmd, sizeof(cmd), 32, record_cb, &d), 0);
    fake_ring_complete(&f->r, 0, fake_std_answer(&f->r.chain[0], NULL, 0, VFE_ADM_ST_EINVAL, 0));
    vfe_admin_poll(f->r.aq);
    assert_int_equal(d.calls, 1);
    assert_int_not_equal(d.status, 0);
    assert_true(d.status & VFE_NV_ST_NO_RETRY);
    assert_int_equal(f->r.nchains, 1);
}

static void test_submit_validation(void **state)
{
    struct fx *f = *state;
    static uint8_t big[VFE_ADMIN_CMD_MAX + 1];
    big[0] = VFE_NV_CLASS_MIG;
    struct done d = { 0 };
    uint8_t std[8] = { 0 };
    assert_int_equal(vfe_admin_submit(f->r.aq, big, sizeof(big), 0, record_cb, &d), -E2BIG);
    assert_int_equal(vfe_admin_submit(f->r.aq, big, 2, VFE_ADMIN_RESULT_MAX + 1, record_cb, &d), -E2BIG);
    assert_int_equal(vfe_admin_submit(f->r.aq, big, 1, 0, record_cb, &d), -EINVAL);
    assert_int_equal(vfe_admin_submit(f->r.aq, std, sizeof(std), 0, record_cb, &d), -EINVAL);
    assert_int_equal(vfe_admin_submit(f->r.aq, big, 2, 0, NULL, &d), -EINVAL);
    assert_int_equal(f->r.nchains, 0);
    /* the largest allowed sizes go through */
    assert_int_equal(vfe_admin_submit(f->r.aq, big, VFE_ADMIN_CMD_MAX, VFE_ADMIN_RESULT_MAX, record_cb, &d), 0);
    assert_int_equal(f->r.chain[0].res_len, VFE_ADMIN_RESULT_MAX + 1);
    fake_ring_complete(&f->r, 0, fake_nv_answer(&f->r.chain[0], NULL, 0, 0));
    vfe_admin_poll(f->r.aq);
    assert_int_equal(d.status, 0);
}

static void test_close_cancels(void **state)
{
    struct fx *f = *state;
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, 1);
    struct done a = { 0 }, b = { 0 };
    assert_int_equal(vfe_admin_submit(f->r.aq, cmd, sizeof(cmd), 1, record_cb, &a), 0);
    assert_int_equal(vfe_admin_submit(f->r.aq, cmd, sizeof(cmd), 1, record_cb, &b), 0);
    vfe_admin_close(f->r.aq);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ECANCELED);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, -ECANCELED);
    assert_true(f->r.fini_called);
    /* reopen so teardown has something to close */
    assert_int_equal(fake_ring_open(&f->r, f->loop, 1), 0);
}

static int answer_ok(struct fake_ring *r, struct fake_chain *c)
{
    return (int)fake_nv_answer(c, "\x05", 1, 0);
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* Completion through the interrupt eventfd, with no explicit poll. */
static void test_irq_drives_completion(void **state)
{
    struct fx *f = *state;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(efd >= 0);
    f->r.irq_fd = efd;
    f->r.handler = answer_ok;
    vfe_admin_set_irq_fd(f->r.aq, efd);
    uint8_t cmd[6];
    nv_cmd(cmd, VFE_NV_MIG_GET_STATUS, 1);
    struct done d = { 0 };
    assert_int_equal(vfe_admin_submit(f->r.aq, cmd, sizeof(cmd), 1, record_cb, &d), 0);
    assert_int_equal(d.calls, 0);
    ev_timer guard;
    ev_timer_init(&guard, stop_cb, 2.0, 0);
    ev_timer_start(f->loop, &guard);
    while (!d.done && ev_is_active(&guard))
        ev_run(f->loop, EVRUN_ONCE);
    ev_timer_stop(f->loop, &guard);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.res[0], 5);
    vfe_admin_set_irq_fd(f->r.aq, -1);
    close(efd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipelined_out_of_order, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_virtio_status_and_result, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_quarantines_slot, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_while_pending, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_counts_from_submit, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_nv_retry_then_success, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_nv_retry_gives_up, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_nv_no_retry_bit, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_nv_no_retry_flag, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_virtio_failure_not_retried, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_bad_used_ids_ignored, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lengths, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_nv_status_not_written, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_submit_validation, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels, setup1, teardown),
        cmocka_unit_test_setup_teardown(test_irq_drives_completion, setup4, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
