/* vdpa_timeline on its own: which event opens a half, what is ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "drivers/vdpa/virtio/vdpa_timeline.h"

static void tick(void)
{
    usleep(2000);
}

/* QEMU's stop: the first GET_VRING_BASE opens, the stop follows, each ring answered once. */
static void source_in_order(void **state)
{
    struct vdpa_timeline tl;
    struct vdpa_tl_view v;
    memset(&tl, 0, sizeof(tl));
    vdpa_tl_view(&tl, &v);
    assert_false(v.src_valid);
    assert_false(v.dst_valid);
    vdpa_tl_get_base(&tl, 0, false);
    tick();
    vdpa_tl_source(&tl, VDPA_TL_STOP_BEGUN);
    tick();
    vdpa_tl_source(&tl, VDPA_TL_STOPPED);
    vdpa_tl_answered(&tl, 0);
    vdpa_tl_answered(&tl, 0);   /* twice: the first counts */
    vdpa_tl_answered(&tl, 1);   /* never asked: ignored */
    tick();
    vdpa_tl_get_base(&tl, 1, true);
    vdpa_tl_answered(&tl, 1);
    vdpa_tl_get_base(&tl, 64, true);   /* out of range: ignored */
    vdpa_tl_answered(&tl, 64);
    vdpa_tl_view(&tl, &v);
    assert_true(v.src_valid);
    assert_int_equal(v.nasked, 2);
    assert_int_equal(v.nanswered, 2);
    assert_true(v.stop_begun_us > 0 && v.stop_begun_us < v.stopped_us);
    assert_true(v.stopped_us <= v.first_answer_us && v.first_answer_us == v.answered_us[0]);
    assert_true(v.answered_us[0] < v.answered_us[1] && v.last_answer_us == v.answered_us[1]);
    assert_true(v.answered_us[2] == VDPA_TL_UNSET);
    /* not stopping any more (the hold ended): a new switchover replaces it */
    vdpa_tl_get_base(&tl, 1, false);
    vdpa_tl_view(&tl, &v);
    assert_int_equal(v.nasked, 1);
    assert_int_equal(v.nanswered, 0);
    assert_true(v.last_answer_us == VDPA_TL_UNSET);
    /* the device was still stopped from before: the stop shows before offset 0 */
    assert_true(v.stop_begun_us < 0 && v.stopped_us < 0);
}

/* A device that never ran has no stop; a start clears the last stop. */
static void source_without_stop(void **state)
{
    struct vdpa_timeline tl;
    struct vdpa_tl_view v;
    memset(&tl, 0, sizeof(tl));
    vdpa_tl_source(&tl, VDPA_TL_STOP_BEGUN);
    vdpa_tl_source(&tl, VDPA_TL_STOPPED);
    vdpa_tl_dest(&tl, VDPA_TL_START_BEGUN, 0);
    vdpa_tl_get_base(&tl, 0, false);
    vdpa_tl_answered(&tl, 0);
    vdpa_tl_view(&tl, &v);
    assert_true(v.stop_begun_us == VDPA_TL_UNSET && v.stopped_us == VDPA_TL_UNSET);
    assert_true(v.last_answer_us >= 0);
}

/* The first memory table while stopped opens; more tables before the start
 * do not; a table while running does not; the last start counts. */
static void destination(void **state)
{
    struct vdpa_timeline tl;
    struct vdpa_tl_view v;
    memset(&tl, 0, sizeof(tl));
    vdpa_tl_dest(&tl, VDPA_TL_STARTED, 2);   /* no half open: ignored */
    vdpa_tl_view(&tl, &v);
    assert_false(v.dst_valid);
    vdpa_tl_connected(&tl);
    tick();
    vdpa_tl_mem(&tl, false);
    vdpa_tl_dest(&tl, VDPA_TL_MEM_MAPPED, 0);
    tick();
    vdpa_tl_mem(&tl, false);   /* one more region */
    vdpa_tl_dest(&tl, VDPA_TL_MEM_MAPPED, 0);
    tick();
    vdpa_tl_dest(&tl, VDPA_TL_START_BEGUN, 0);
    tick();
    vdpa_tl_dest(&tl, VDPA_TL_STARTED, 2);
    vdpa_tl_view(&tl, &v);
    assert_true(v.dst_valid);
    assert_true(v.connected_us < 0);
    assert_true(v.mem_mapped_us >= 2000 && v.mem_mapped_us < v.start_begun_us);
    assert_true(v.start_begun_us < v.started_us);
    assert_int_equal(v.dst_rings, 2);
    int64_t mapped = v.mem_mapped_us, begun = v.start_begun_us;
    /* more rings later: the device restarts, the half goes on */
    vdpa_tl_mem(&tl, true);
    vdpa_tl_dest(&tl, VDPA_TL_MEM_MAPPED, 0);
    tick();
    vdpa_tl_dest(&tl, VDPA_TL_START_BEGUN, 0);
    vdpa_tl_dest(&tl, VDPA_TL_STARTED, 4);
    vdpa_tl_view(&tl, &v);
    assert_int_equal(v.mem_mapped_us, mapped);
    assert_int_equal(v.start_begun_us, begun);
    assert_int_equal(v.dst_rings, 4);
    assert_true(v.started_us > begun + 2000);
    /* a GET_VRING_BASE closes it: a later start from stopped is a new half */
    vdpa_tl_get_base(&tl, 0, false);
    vdpa_tl_dest(&tl, VDPA_TL_STARTED, 6);
    vdpa_tl_view(&tl, &v);
    assert_int_equal(v.dst_rings, 4);
    vdpa_tl_mem(&tl, false);
    vdpa_tl_view(&tl, &v);
    assert_true(v.started_us == VDPA_TL_UNSET && v.dst_rings == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(source_in_order),
        cmocka_unit_test(source_without_stop),
        cmocka_unit_test(destination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
