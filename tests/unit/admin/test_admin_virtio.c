/* virtio (standard) dialect of the sim's admin queue: opcode lists, device
 * modes, device parts get/set, dirty-tracking extension. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "adm_drv.h"

#define SRIOV VFE_ADM_GROUP_SRIOV

static uint16_t st, sq;

static void expect(uint16_t status, uint16_t qual)
{
    assert_int_equal(st, status);
    assert_int_equal(sq, qual);
}

static long cmd(uint16_t op, uint64_t member, const void *data, size_t len, size_t room, uint8_t **res)
{
    return std_exec(op, SRIOV, member, data, len, room, &st, &sq, res);
}

static void mode_set(unsigned vf, uint8_t flags)
{
    struct vfe_adm_mode_set m = { .flags = flags };
    assert_int_equal(cmd(VFE_ADM_DEV_MODE_SET, vf, &m, sizeof(m), 0, NULL), 0);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
}

static void test_list_query_use(void **state)
{
    uint8_t *r;
    uint64_t bm;
    assert_int_equal(cmd(VFE_ADM_LIST_QUERY, 0, NULL, 0, 64, &r), 8);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    memcpy(&bm, r, 8);
    const unsigned ops[] = { 0, 1, 0xe, 0xf, 0x10, 0x11, 0x30, 0x31, 0x32 };
    uint64_t want = 0;
    for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        want |= 1ull << ops[i];
    assert_int_equal(bm, want);

    /* wrong group type */
    std_exec(VFE_ADM_LIST_QUERY, 2, 0, NULL, 0, 64, &st, &sq, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_GROUP);

    /* before LIST_USE everything supported works */
    mode_set(1, VFE_ADM_MODE_F_STOPPED);
    /* LIST_USE with an unsupported opcode is refused and changes nothing */
    bm = want | (1ull << 7);
    cmd(VFE_ADM_LIST_USE, 0, &bm, 8, 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_FIELD);
    assert_int_equal(cmd(VFE_ADM_DEV_PARTS_GET, 1, NULL, 0, 4096, NULL) > 0, 1);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    /* accepted subset without DEV_PARTS_GET: that opcode is now refused */
    bm = (1ull << VFE_ADM_DEV_MODE_SET) | (1ull << VFE_ADM_DEV_PARTS_METADATA_GET);
    assert_int_equal(cmd(VFE_ADM_LIST_USE, 0, &bm, 8, 0, NULL), 0);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    assert_int_equal(cmd(VFE_ADM_DEV_PARTS_GET, 1, NULL, 0, 4096, NULL), 0);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_OPCODE);
    mode_set(1, 0);
    assert_int_equal(cmd(VFE_ADM_LIST_QUERY, 0, NULL, 0, 8, NULL), 8);
    /* a PF reset forgets the choice */
    sim_admin_reset(&PF.fn);
    mode_set(1, VFE_ADM_MODE_F_STOPPED);
    assert_true(cmd(VFE_ADM_DEV_PARTS_GET, 1, NULL, 0, 4096, NULL) > 0);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
}

static void test_mode_set(void **state)
{
    vf_configure(1, 1);
    mode_set(1, VFE_ADM_MODE_F_STOPPED);
    assert_true(VF[1]->stopped);
    assert_int_equal(VF[1]->mig_state, SIM_MIG_RUNNING);
    mode_set(1, VFE_ADM_MODE_F_STOPPED | VFE_ADM_MODE_F_FROZEN);
    assert_true(VF[1]->stopped);
    assert_int_equal(VF[1]->mig_state, SIM_MIG_FREEZED);
    assert_int_equal(fake.resumes[1], 0);
    mode_set(1, VFE_ADM_MODE_F_STOPPED);   /* unfreeze, still stopped */
    assert_true(VF[1]->stopped);
    assert_int_not_equal(VF[1]->mig_state, SIM_MIG_FREEZED);
    mode_set(1, 0);
    assert_false(VF[1]->stopped);
    assert_int_equal(VF[1]->mig_state, SIM_MIG_RUNNING);
    assert_int_equal(fake.resumes[1], 1);
    struct vfe_adm_mode_set m = { .flags = 0x80 };
    cmd(VFE_ADM_DEV_MODE_SET, 1, &m, sizeof(m), 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_FIELD);
    cmd(VFE_ADM_DEV_MODE_SET, 1, NULL, 0, 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_FIELD);
    assert_false(VF[1]->stopped);
}

static unsigned count_parts(const uint8_t *p, size_t len, uint16_t type)
{
    unsigned n = 0;
    size_t off = 0;
    while (off + 8 <= len) {
        struct vfe_adm_part_hdr h;
        memcpy(&h, p + off, sizeof(h));
        n += h.type == type;
        off += 8 + ((h.length + 7) & ~7u);
    }
    assert_int_equal(off, len);
    return n;
}

static void test_parts_roundtrip(void **state)
{
    static uint8_t parts[8192];
    uint8_t *r;
    vf_configure(1, 1);

    /* running: parts are not readable */
    assert_int_equal(cmd(VFE_ADM_DEV_PARTS_GET, 1, NULL, 0, 8192, NULL), 0);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_COMMAND);
    mode_set(1, VFE_ADM_MODE_F_STOPPED | VFE_ADM_MODE_F_FROZEN);

    assert_int_equal(cmd(VFE_ADM_DEV_PARTS_METADATA_GET, 1, NULL, 0, 64, &r), 8);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    struct vfe_adm_metadata_res meta;
    memcpy(&meta, r, sizeof(meta));
    /* dev/drv features, common, status, 2 per queue, net cfg, rx mode, pairs */
    assert_int_equal(meta.count, 4 + 2 * VF_QUEUES + 3);

    /* too small for all parts: refused whole */
    assert_int_equal(cmd(VFE_ADM_DEV_PARTS_GET, 1, NULL, 0, meta.total_size - 1, NULL), 0);
    expect(VFE_ADM_ST_ENOMEM, VFE_ADM_SQ_NORESOURCE);
    long n = cmd(VFE_ADM_DEV_PARTS_GET, 1, NULL, 0, meta.total_size, &r);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    assert_int_equal(n, meta.total_size);
    memcpy(parts, r, (size_t)n);
    assert_int_equal(count_parts(parts, (size_t)n, VFE_ADM_PART_VQ_CFG), VF_QUEUES);
    assert_int_equal(count_parts(parts, (size_t)n, VFE_ADM_PART_VQ_SPLIT_STATE), VF_QUEUES);
    assert_int_equal(count_parts(parts, (size_t)n, VFE_ADM_PART_DRV_FEATURES), 1);
    assert_int_equal(count_parts(parts, (size_t)n, VFE_ADM_PART_NET_CFG), 1);

    /* one type only */
    struct vfe_adm_parts_get g = { .type = VFE_ADM_PART_VQ_SPLIT_STATE };
    long ns = cmd(VFE_ADM_DEV_PARTS_GET, 1, &g, sizeof(g), 8192, &r);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    assert_int_equal(ns, VF_QUEUES * 16);
    assert_int_equal(count_parts(r, (size_t)ns, VFE_ADM_PART_VQ_SPLIT_STATE), VF_QUEUES);

    /* VF2: running refuses SET, stopped accepts it */
    vf_configure(2, 2);
    static struct sim_fn before;
    memcpy(&before, VF[2], sizeof(before));
    cmd(VFE_ADM_DEV_PARTS_SET, 2, parts, (size_t)n, 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_COMMAND);
    assert_memory_equal(&before, VF[2], sizeof(before));
    mode_set(2, VFE_ADM_MODE_F_STOPPED);
    assert_int_equal(cmd(VFE_ADM_DEV_PARTS_SET, 2, parts, (size_t)n, 0, NULL), 0);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    const struct sim_fn *a = VF[1], *b = VF[2];
    assert_int_equal(a->driver_features, b->driver_features);
    assert_int_equal(a->status, b->status);
    assert_memory_equal(a->net_cfg.mac, b->net_cfg.mac, 6);
    assert_int_equal(a->rx_mode, b->rx_mode);
    for (unsigned q = 0; q < VF_QUEUES; q++) {
        assert_int_equal(a->queues[q].size, b->queues[q].size);
        assert_int_equal(a->queues[q].enabled, b->queues[q].enabled);
        assert_int_equal(a->queues[q].desc, b->queues[q].desc);
        assert_int_equal(a->queues[q].used, b->queues[q].used);
        assert_int_equal(a->queues[q].last_avail, b->queues[q].last_avail);
        assert_int_equal(a->queues[q].used_idx, b->queues[q].used_idx);
    }
    mode_set(2, 0);
    assert_int_equal(fake.resumes[2], 1);

    /* a bad part late in the list changes nothing */
    static uint8_t bad[8192];
    memcpy(bad, parts, (size_t)n);
    size_t off = 0, last_cfg = 0;
    while (off < (size_t)n) {
        struct vfe_adm_part_hdr h;
        memcpy(&h, bad + off, sizeof(h));
        if (h.type == VFE_ADM_PART_VQ_CFG)
            last_cfg = off;
        off += 8 + ((h.length + 7) & ~7u);
    }
    struct vfe_state_vq_cfg qc;
    memcpy(&qc, bad + last_cfg + 8, sizeof(qc));
    qc.size = 96;
    memcpy(bad + last_cfg + 8, &qc, sizeof(qc));
    vf_configure(3, 3);
    mode_set(3, VFE_ADM_MODE_F_STOPPED);
    memcpy(&before, VF[3], sizeof(before));
    cmd(VFE_ADM_DEV_PARTS_SET, 3, bad, (size_t)n, 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_FIELD);
    assert_memory_equal(&before, VF[3], sizeof(before));
    /* a nvidia TLV blob is not a parts list */
    struct vfe_nv_tlv t = { .type = VFE_NV_TLV_RX_MODE, .len = 1 };
    uint8_t tlv[16] = { 0 };
    memcpy(tlv, &t, sizeof(t));
    cmd(VFE_ADM_DEV_PARTS_SET, 3, tlv, sizeof(tlv), 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_FIELD);
}

static void test_member_errors(void **state)
{
    const uint64_t bad_members[] = { 0, NVF + 1, 1ull << 40 };
    for (unsigned i = 0; i < 3; i++) {
        cmd(VFE_ADM_DEV_PARTS_METADATA_GET, bad_members[i], NULL, 0, 64, NULL);
        expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_MEMBER);
    }
    std_exec(VFE_ADM_DEV_PARTS_METADATA_GET, 0, 1, NULL, 0, 64, &st, &sq, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_GROUP);
    const uint16_t bad_ops[] = { 0x5, 0x12, 0x2f, 0x33, 0x1ff, 0x4000 };
    for (unsigned i = 0; i < sizeof(bad_ops) / sizeof(bad_ops[0]); i++) {
        cmd(bad_ops[i], 1, NULL, 0, 64, NULL);
        expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_OPCODE);
    }
    /* shorter than the 24-byte header */
    uint8_t *r;
    uint8_t shortcmd[10] = { VFE_ADM_LIST_QUERY };
    assert_int_equal(adm_exec(shortcmd, sizeof(shortcmd), 64, &r), 8);
    struct vfe_adm_std_res h;
    memcpy(&h, r, sizeof(h));
    assert_int_equal(h.status, VFE_ADM_ST_EINVAL);
    assert_int_equal(h.status_qualifier, VFE_ADM_SQ_INVALID_COMMAND);
    /* the result area cannot hold the 8-byte header: empty completion */
    struct vfe_adm_std_cmd q = { .opcode = VFE_ADM_LIST_QUERY, .group_type = SRIOV };
    assert_int_equal(adm_exec(&q, sizeof(q), 7, NULL), 0);
    assert_int_equal(adm_exec(&q, sizeof(q), 0, NULL), 0);
    /* header only: LIST_QUERY's bitmap does not fit */
    assert_int_equal(adm_exec(&q, sizeof(q), 8, &r), 8);
    memcpy(&h, r, sizeof(h));
    assert_int_equal(h.status, VFE_ADM_ST_ENOMEM);
}

static void test_virtio_dirty(void **state)
{
    struct vfe_nv_start_track t = { .track_mode = VFE_NV_TRACK_PULL_BITMAP, .vdev_host_page_size = 4096,
                                    .range_addr = 0, .range_length = 64 * 4096 };
    uint8_t *r;
    assert_int_equal(cmd(VFE_ADM_DIRTY_START, 2, &t, sizeof(t), 0, NULL), 0);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    assert_int_equal(VF[2]->dirty.mode, 3);
    assert_int_equal(VF[2]->dirty.pull_bytes, 8);
    VF[2]->dirty.pull_bitmap[3] = 0x5a;
    struct vfe_nv_report rep = { .offset = 2 };
    assert_int_equal(cmd(VFE_ADM_DIRTY_REPORT, 2, &rep, sizeof(rep), 64, &r), 6);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    assert_int_equal(r[1], 0x5a);
    assert_int_equal(VF[2]->dirty.pull_bitmap[3], 0);
    t.track_mode = VFE_NV_TRACK_PUSH_BYTEMAP;
    cmd(VFE_ADM_DIRTY_START, 2, &t, sizeof(t), 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_OPCODE);
    assert_int_equal(VF[2]->dirty.mode, 3);
    assert_int_equal(cmd(VFE_ADM_DIRTY_STOP, 2, NULL, 0, 0, NULL), 0);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    assert_int_equal(VF[2]->dirty.mode, 0);
    assert_null(VF[2]->dirty.pull_bitmap);
    cmd(VFE_ADM_DIRTY_REPORT, 2, &rep, sizeof(rep), 64, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_FIELD);
}

/* --dirty-tracking: none hides the dirty opcodes from LIST_QUERY (and
 * refuses them); one mode lists them and refuses the other mode's START */
static void test_virtio_dirty_modes(void **state)
{
    const unsigned push = 1u << VFE_NV_TRACK_PUSH_BITMAP, pull = 1u << VFE_NV_TRACK_PULL_BITMAP;
    const uint64_t dirty_ops = (1ull << 0x30) | (1ull << 0x31) | (1ull << 0x32);
    struct vfe_nv_start_track t = { .track_mode = VFE_NV_TRACK_PULL_BITMAP, .vdev_host_page_size = 4096,
                                    .range_addr = 0, .range_length = 64 * 4096 };
    uint8_t *r;
    uint64_t bm;

    S.opt.dirty_refused = push | pull;
    assert_int_equal(cmd(VFE_ADM_LIST_QUERY, 0, NULL, 0, 64, &r), 8);
    memcpy(&bm, r, 8);
    assert_int_equal(bm & dirty_ops, 0);
    assert_true(bm & (1ull << VFE_ADM_DEV_MODE_SET));
    cmd(VFE_ADM_DIRTY_START, 2, &t, sizeof(t), 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_OPCODE);
    assert_int_equal(VF[2]->dirty.mode, 0);
    bm = dirty_ops;
    cmd(VFE_ADM_LIST_USE, 0, &bm, 8, 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_FIELD);

    S.opt.dirty_refused = push;   /* pull only */
    assert_int_equal(cmd(VFE_ADM_LIST_QUERY, 0, NULL, 0, 64, &r), 8);
    memcpy(&bm, r, 8);
    assert_int_equal(bm & dirty_ops, dirty_ops);
    t.track_mode = VFE_NV_TRACK_PUSH_BITMAP;
    cmd(VFE_ADM_DIRTY_START, 2, &t, sizeof(t), 0, NULL);
    expect(VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_OPCODE);
    t.track_mode = VFE_NV_TRACK_PULL_BITMAP;
    assert_int_equal(cmd(VFE_ADM_DIRTY_START, 2, &t, sizeof(t), 0, NULL), 0);
    expect(VFE_ADM_ST_OK, VFE_ADM_SQ_OK);
    assert_int_equal(VF[2]->dirty.mode, 3);
    S.opt.dirty_refused = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_query_use, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_mode_set, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_parts_roundtrip, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_member_errors, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_virtio_dirty, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_virtio_dirty_modes, adm_setup, adm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
