/* The sim's admin queue machinery: batching, malformed chains, dialect
 * selection, injected failures and delays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "adm_drv.h"

#define NR VFE_NV_ST_NO_RETRY

static uint8_t get_status_cmd[6] = { VFE_NV_CLASS_MIG, VFE_NV_MIG_GET_STATUS, 1, 0, 0, 0 };

static void test_malformed_chains(void **state)
{
    uint8_t *r;
    /* no writable bytes: nowhere to put a status */
    assert_int_equal(adm_exec(get_status_cmd, sizeof(get_status_cmd), 0, NULL), 0);
    /* no readable bytes */
    assert_int_equal(adm_exec(NULL, 0, 16, &r), 0);
    /* longer than VFE_ADM_MAX_CMD: refused in the dialect of its first byte */
    static uint8_t big[VFE_ADM_MAX_CMD + 1];
    memcpy(big, get_status_cmd, sizeof(get_status_cmd));
    assert_int_equal(adm_exec(big, sizeof(big), 4, &r), 1);
    assert_int_equal(r[3], VFE_NV_ST_EINVAL | NR);
    memset(big, 0, sizeof(big));
    struct vfe_adm_std_cmd q = { .opcode = VFE_ADM_LIST_QUERY, .group_type = 1 };
    memcpy(big, &q, sizeof(q));
    assert_int_equal(adm_exec(big, sizeof(big), 16, &r), 8);
    struct vfe_adm_std_res h;
    memcpy(&h, r, sizeof(h));
    assert_int_equal(h.status, VFE_ADM_ST_EINVAL);
    assert_int_equal(h.status_qualifier, VFE_ADM_SQ_INVALID_COMMAND);
    /* nvidia header cut short */
    assert_int_equal(adm_exec(get_status_cmd, 1, 4, &r), 1);
    assert_int_equal(r[3], VFE_NV_ST_EINVAL | NR);
    /* exactly VFE_ADM_MAX_CMD is fine */
    memcpy(big, get_status_cmd, sizeof(get_status_cmd));
    assert_int_equal(adm_exec(big, VFE_ADM_MAX_CMD, 4, &r), 2);
    assert_int_equal(r[0], SIM_MIG_INIT);
    assert_int_equal(r[3], VFE_NV_ST_OK);
}

static void test_batches(void **state)
{
    const unsigned n = 100;
    for (unsigned i = 0; i < n; i++)
        adm_post(get_status_cmd, sizeof(get_status_cmd), 4, NULL);
    adm_notify();
    /* one batch now, the rest on the next loop turn */
    assert_int_equal(adm_used_idx(), 64);
    ev_run(S.loop, EVRUN_NOWAIT);
    assert_int_equal(adm_used_idx(), n);
    for (unsigned i = 0; i < n; i++) {
        uint32_t id, len;
        adm_used(i, &id, &len);
        assert_int_equal(id, (2 * i) % AQ_SIZE);
        assert_int_equal(len, 2);
    }
}

static void test_pf_not_serving(void **state)
{
    PF.fn.dma_stalled = true;
    adm_post(get_status_cmd, sizeof(get_status_cmd), 4, NULL);
    adm_notify();
    assert_int_equal(adm_used_idx(), 0);
    PF.fn.dma_stalled = false;
    adm_notify();
    assert_int_equal(adm_used_idx(), 1);
    /* a disabled admin queue is left alone */
    PF.fn.queues[AQ_INDEX].enabled = false;
    adm_post(get_status_cmd, sizeof(get_status_cmd), 4, NULL);
    adm_notify();
    PF.fn.queues[AQ_INDEX].enabled = true;
    assert_int_equal(adm_used_idx(), 1);
}

static void test_dialect_selection(void **state)
{
    uint8_t st, *r;
    uint16_t s16, q16;
    S.opt.admin_dialect = "virtio";
    nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_IDENTITY, NULL, 0, 4, &st, NULL);
    assert_int_equal(st, VFE_NV_ST_EUNSUPP | NR);
    assert_int_equal(std_exec(VFE_ADM_LIST_QUERY, 1, 0, NULL, 0, 8, &s16, &q16, &r), 8);
    assert_int_equal(s16, VFE_ADM_ST_OK);
    S.opt.admin_dialect = "nvidia";
    std_exec(VFE_ADM_LIST_QUERY, 1, 0, NULL, 0, 8, &s16, &q16, NULL);
    assert_int_equal(s16, VFE_ADM_ST_EINVAL);
    assert_int_equal(q16, VFE_ADM_SQ_INVALID_OPCODE);
    nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_IDENTITY, NULL, 0, 4, &st, NULL);
    assert_int_equal(st, VFE_NV_ST_OK);
}

static void test_fault_fail(void **state)
{
    struct vfe_nv_modify m = { .vdev_id = 1, .state = VFE_NV_STATE_RUNNING };
    uint8_t st;
    uint16_t s16, q16;

    S.fault.admin_fail_status = VFE_NV_ST_FAULT;
    S.fault.admin_fail_count = 2;
    assert_int_equal(nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_MODIFY_STATUS, &m, sizeof(m), 4, &st, NULL), 0);
    assert_int_equal(st, VFE_NV_ST_FAULT);
    assert_int_equal(VF[1]->mig_state, SIM_MIG_INIT);   /* a failed command did nothing */
    /* the virtio dialect gets EAGAIN for a status it does not know */
    assert_int_equal(std_exec(VFE_ADM_LIST_QUERY, 1, 0, NULL, 0, 8, &s16, &q16, NULL), 0);
    assert_int_equal(s16, VFE_ADM_ST_EAGAIN);
    assert_int_equal(S.fault.admin_fail_status, 0);    /* count used up: cleared */
    nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_MODIFY_STATUS, &m, sizeof(m), 4, &st, NULL);
    assert_int_equal(st, VFE_NV_ST_OK);
    assert_int_equal(VF[1]->mig_state, SIM_MIG_RUNNING);

    /* count 0: until cleared; a valid virtio status is passed through */
    S.fault.admin_fail_status = VFE_ADM_ST_EINVAL;
    S.fault.admin_fail_count = 0;
    for (unsigned i = 0; i < 5; i++) {
        std_exec(VFE_ADM_LIST_QUERY, 1, 0, NULL, 0, 8, &s16, &q16, NULL);
        assert_int_equal(s16, VFE_ADM_ST_EINVAL);
    }
    nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_IDENTITY, NULL, 0, 4, &st, NULL);
    assert_int_equal(st, VFE_ADM_ST_EINVAL);
    S.fault.admin_fail_status = 0;
    nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_IDENTITY, NULL, 0, 4, &st, NULL);
    assert_int_equal(st, VFE_NV_ST_OK);
}

static void run_until_used(uint16_t want, double timeout)
{
    ev_tstamp end = ev_time() + timeout;
    while (adm_used_idx() != want && ev_time() < end)
        ev_run(S.loop, EVRUN_ONCE);
}

static void test_fault_delay(void **state)
{
    S.fault.admin_delay_ms = 50;
    uint16_t heads[3];
    uint64_t res[3];
    for (unsigned i = 0; i < 3; i++)
        heads[i] = adm_post(get_status_cmd, sizeof(get_status_cmd), 4, &res[i]);
    ev_now_update(S.loop);
    ev_tstamp t0 = ev_now(S.loop);
    adm_notify();
    assert_int_equal(adm_used_idx(), 0);
    /* a command arriving with the delay lifted still waits its turn */
    S.fault.admin_delay_ms = 0;
    uint16_t h4 = adm_post(get_status_cmd, sizeof(get_status_cmd), 4, NULL);
    adm_notify();
    assert_int_equal(adm_used_idx(), 0);
    run_until_used(4, 2.0);
    assert_int_equal(adm_used_idx(), 4);
    assert_true(ev_time() - t0 >= 0.045);
    for (unsigned i = 0; i < 4; i++) {
        uint32_t id, len;
        adm_used(i, &id, &len);
        assert_int_equal(id, i < 3 ? heads[i] : h4);
        assert_int_equal(len, 2);
        if (i < 3)
            assert_int_equal(pf_mem(res[i])[3], VFE_NV_ST_OK);
    }

    /* a PF reset drops completions still waiting */
    S.fault.admin_delay_ms = 30;
    adm_post(get_status_cmd, sizeof(get_status_cmd), 4, NULL);
    adm_notify();
    sim_admin_reset(&PF.fn);
    ev_tstamp end = ev_time() + 0.1;
    while (ev_time() < end)
        ev_run(S.loop, EVRUN_NOWAIT);
    assert_int_equal(adm_used_idx(), 4);
}

/* admin_slow: a command takes effect only at its turn, one at a time */
static void test_fault_slow(void **state)
{
    S.fault.admin_slow_ms = 40;
    uint64_t res[2];
    for (unsigned i = 0; i < 2; i++)
        adm_post(get_status_cmd, sizeof(get_status_cmd), 4, &res[i]);
    ev_now_update(S.loop);
    ev_tstamp t0 = ev_now(S.loop);
    adm_notify();
    assert_int_equal(adm_used_idx(), 0);
    assert_int_not_equal(pf_mem(res[0])[3], VFE_NV_ST_OK);   /* nothing written before its turn */
    run_until_used(1, 2.0);
    assert_int_equal(adm_used_idx(), 1);
    assert_true(ev_time() - t0 >= 0.035);
    assert_int_equal(pf_mem(res[0])[3], VFE_NV_ST_OK);
    assert_int_not_equal(pf_mem(res[1])[3], VFE_NV_ST_OK);
    run_until_used(2, 2.0);
    assert_true(ev_time() - t0 >= 0.075);
    assert_int_equal(pf_mem(res[1])[3], VFE_NV_ST_OK);
    S.fault.admin_slow_ms = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_malformed_chains, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_batches, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_pf_not_serving, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_dialect_selection, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_fault_fail, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_fault_delay, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_fault_slow, adm_setup, adm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
