/* nvidia dialect of the sim's admin queue: migration states, state
 * save/restore, dirty-page tracking. */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "adm_drv.h"

#define NR VFE_NV_ST_NO_RETRY

static uint8_t mig(uint8_t cmd, const void *data, size_t len)
{
    uint8_t st;
    nv_exec(VFE_NV_CLASS_MIG, cmd, data, len, 16, &st, NULL);
    return st;
}

static uint8_t modify(unsigned vf, uint8_t state)
{
    struct vfe_nv_modify m = { .vdev_id = (uint16_t)vf, .state = state };
    return mig(VFE_NV_MIG_MODIFY_STATUS, &m, sizeof(m));
}

static int get_status(unsigned vf)
{
    struct vfe_nv_vdev v = { .vdev_id = (uint16_t)vf };
    uint8_t st, *r;
    long n = nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_GET_STATUS, &v, sizeof(v), 4, &st, &r);
    assert_int_equal(st, VFE_NV_ST_OK);
    assert_int_equal(n, 1);
    return r[0];
}

static void test_freeze_resume(void **state)
{
    vf_configure(1, 1);
    assert_int_equal(get_status(1), SIM_MIG_RUNNING);
    assert_int_equal(modify(1, VFE_NV_STATE_QUIESCED), VFE_NV_ST_OK);
    assert_int_equal(get_status(1), SIM_MIG_QUIESCED);
    assert_int_equal(modify(1, VFE_NV_STATE_FREEZED), VFE_NV_ST_OK);
    assert_int_equal(VF[1]->mig_state, SIM_MIG_FREEZED);
    assert_int_equal(fake.resumes[1], 0);
    assert_int_equal(modify(1, VFE_NV_STATE_QUIESCED), VFE_NV_ST_OK);
    assert_int_equal(modify(1, VFE_NV_STATE_RUNNING), VFE_NV_ST_OK);
    assert_int_equal(VF[1]->mig_state, SIM_MIG_RUNNING);
    assert_int_equal(fake.resumes[1], 1);
    /* direct RUNNING -> FREEZED -> RUNNING */
    assert_int_equal(modify(1, VFE_NV_STATE_FREEZED), VFE_NV_ST_OK);
    assert_int_equal(get_status(1), SIM_MIG_FREEZED);
    assert_int_equal(modify(1, VFE_NV_STATE_RUNNING), VFE_NV_ST_OK);
    assert_int_equal(fake.resumes[1], 2);
    /* nothing goes back to INIT, unknown states are refused */
    assert_int_equal(modify(1, VFE_NV_STATE_INIT), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(modify(1, 7), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(VF[1]->mig_state, SIM_MIG_RUNNING);
    /* a fresh VF starts from INIT */
    assert_int_equal(get_status(2), SIM_MIG_INIT);
    assert_int_equal(modify(2, VFE_NV_STATE_RUNNING), VFE_NV_ST_OK);
    assert_int_equal(fake.resumes[2], 1);
    /* the other VFs were not touched */
    assert_int_equal(VF[3]->mig_state, SIM_MIG_INIT);
    assert_true(fake.irqs > 0);
}

/* Read the whole blob in pieces of `chunk` bytes through SAVE offsets. */
static size_t save_blob(unsigned vf, uint8_t *out, size_t cap, size_t chunk)
{
    struct vfe_nv_vdev v = { .vdev_id = (uint16_t)vf };
    uint8_t st, *r;
    long n = nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_PENDING_BYTES, &v, sizeof(v), 8, &st, &r);
    assert_int_equal(st, VFE_NV_ST_OK);
    assert_int_equal(n, 8);
    uint64_t total;
    memcpy(&total, r, 8);
    assert_true(total > 0 && total <= cap);
    size_t got = 0;
    while (got < total) {
        struct vfe_nv_save s = { .vdev_id = (uint16_t)vf, .offset = (uint32_t)got };
        n = nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_SAVE_STATE, &s, sizeof(s), chunk, &st, &r);
        assert_int_equal(st, VFE_NV_ST_OK);
        assert_true(n > 0 && (size_t)n <= chunk);
        memcpy(out + got, r, (size_t)n);
        got += (size_t)n;
    }
    assert_int_equal(got, total);
    /* at the end: nothing more, still OK */
    struct vfe_nv_save s = { .vdev_id = (uint16_t)vf, .offset = (uint32_t)total };
    assert_int_equal(nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_SAVE_STATE, &s, sizeof(s), chunk, &st, NULL), 0);
    assert_int_equal(st, VFE_NV_ST_OK);
    s.offset = (uint32_t)total + 1;
    nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_SAVE_STATE, &s, sizeof(s), chunk, &st, NULL);
    assert_int_equal(st, VFE_NV_ST_EINVAL | NR);
    return got;
}

static uint8_t restore(unsigned vf, const uint8_t *blob, size_t len)
{
    static uint8_t buf[VFE_ADM_MAX_CMD];
    struct vfe_nv_vdev v = { .vdev_id = (uint16_t)vf };
    assert_true(sizeof(v) + len <= sizeof(buf) - 2);
    memcpy(buf, &v, sizeof(v));
    memcpy(buf + sizeof(v), blob, len);
    return mig(VFE_NV_MIG_RESTORE_STATE, buf, sizeof(v) + len);
}

static void assert_same_state(const struct sim_fn *a, const struct sim_fn *b)
{
    assert_int_equal(a->driver_features, b->driver_features);
    assert_int_equal(a->msix_config, b->msix_config);
    assert_int_equal(a->status, b->status);
    assert_memory_equal(a->net_cfg.mac, b->net_cfg.mac, 6);
    assert_int_equal(a->net_cfg.status, b->net_cfg.status);
    assert_int_equal(a->rx_mode, b->rx_mode);
    assert_int_equal(a->active_pairs, b->active_pairs);
    for (unsigned q = 0; q < VF_QUEUES; q++) {
        const struct sim_queue *x = &a->queues[q], *y = &b->queues[q];
        assert_int_equal(x->size, y->size);
        assert_int_equal(x->msix_vector, y->msix_vector);
        assert_int_equal(x->enabled, y->enabled);
        assert_int_equal(x->desc, y->desc);
        assert_int_equal(x->avail, y->avail);
        assert_int_equal(x->used, y->used);
        assert_int_equal(x->last_avail, y->last_avail);
        assert_int_equal(x->used_idx, y->used_idx);
    }
}

static uint8_t blob[8192];
static size_t tlv_find(const uint8_t *b, size_t len, uint16_t type, unsigned nth);

static size_t quiesced_blob(void)
{
    vf_configure(1, 1);
    assert_int_equal(modify(1, VFE_NV_STATE_QUIESCED), VFE_NV_ST_OK);
    return save_blob(1, blob, sizeof(blob), 100);
}

static void test_save_restore(void **state)
{
    vf_configure(1, 1);
    /* not while running */
    struct vfe_nv_save s = { .vdev_id = 1 };
    uint8_t st;
    nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_SAVE_STATE, &s, sizeof(s), 64, &st, NULL);
    assert_int_equal(st, VFE_NV_ST_EBUSY);
    assert_int_equal(mig(VFE_NV_MIG_PENDING_BYTES, &s, 4), VFE_NV_ST_EBUSY);

    size_t len = quiesced_blob();
    /* the same blob comes out in one piece */
    uint8_t *r;
    assert_int_equal(nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_SAVE_STATE, &s, sizeof(s), 8192, &st, &r), (long)len);
    assert_memory_equal(r, blob, len);

    /* VF2 is fresh (INIT): restore programs it */
    assert_int_equal(restore(2, blob, len), VFE_NV_ST_OK);
    assert_same_state(VF[1], VF[2]);
    assert_int_equal(VF[2]->queues[4].last_avail, 1000 + 17 * 4 + 1);
    assert_int_equal(VF[2]->queues[4].used_idx, 1000 + 13 * 4);
    assert_int_equal(modify(2, VFE_NV_STATE_RUNNING), VFE_NV_ST_OK);
    assert_int_equal(fake.resumes[2], 1);
    /* a running VF refuses a restore (retry may succeed later) */
    assert_int_equal(restore(2, blob, len), VFE_NV_ST_EBUSY);

    /* an unused (disabled) queue may come with size 0: the VF keeps its size */
    static uint8_t b2[8192];
    memcpy(b2, blob, len);
    size_t q3 = tlv_find(b2, len, VFE_NV_TLV_VQ_CFG, 3);
    struct vfe_state_vq_cfg qc;
    memcpy(&qc, b2 + q3 + 8, sizeof(qc));
    assert_int_equal(qc.enabled, 0);
    qc.size = 0;
    memcpy(b2 + q3 + 8, &qc, sizeof(qc));
    vf_configure(3, 3);
    assert_int_equal(modify(3, VFE_NV_STATE_QUIESCED), VFE_NV_ST_OK);
    assert_int_equal(restore(3, b2, len), VFE_NV_ST_OK);
    assert_int_equal(VF[3]->queues[3].size, 64);
    assert_int_equal(VF[3]->queues[3].last_avail, VF[1]->queues[3].last_avail);

    /* a frozen VF3 with other state gets VF1's */
    vf_configure(3, 3);
    assert_int_equal(modify(3, VFE_NV_STATE_FREEZED), VFE_NV_ST_OK);
    assert_int_equal(restore(3, blob, len), VFE_NV_ST_OK);
    assert_same_state(VF[1], VF[3]);
}

/* Offset of the nth TLV of `type` in the blob. */
static size_t tlv_find(const uint8_t *b, size_t len, uint16_t type, unsigned nth)
{
    size_t off = 0;
    while (off + 8 <= len) {
        struct vfe_nv_tlv h;
        memcpy(&h, b + off, sizeof(h));
        if (h.type == type && nth-- == 0)
            return off;
        off += 8 + ((h.len + 7) & ~7u);
    }
    fail_msg("tlv %u not found", type);
    return 0;
}

static void expect_rejected(const uint8_t *bad, size_t len)
{
    static struct sim_fn before;
    memcpy(&before, VF[2], sizeof(before));
    assert_int_equal(restore(2, bad, len), VFE_NV_ST_EINVAL | NR);
    assert_memory_equal(&before, VF[2], sizeof(before));
}

static void test_restore_rejects(void **state)
{
    static uint8_t bad[8192];
    size_t len = quiesced_blob();
    size_t last_cfg = tlv_find(blob, len, VFE_NV_TLV_VQ_CFG, VF_QUEUES - 1);
    size_t common = tlv_find(blob, len, VFE_NV_TLV_COMMON_CFG, 0);
    struct vfe_nv_tlv h;
    struct vfe_state_vq_cfg qc;
    struct vfe_state_common c;

    /* The defect sits late in the blob: nothing before it may be applied. */
#define MUTATE_QC(stmt) do { \
        memcpy(bad, blob, len); \
        memcpy(&qc, bad + last_cfg + 8, sizeof(qc)); \
        stmt; \
        memcpy(bad + last_cfg + 8, &qc, sizeof(qc)); \
        expect_rejected(bad, len); \
    } while (0)
    MUTATE_QC(qc.index = SIM_MAX_QUEUES);
    MUTATE_QC(qc.index = VF_QUEUES);
    MUTATE_QC(qc.index = 0);            /* queue 0 twice */
    MUTATE_QC(qc.size = 100);
    MUTATE_QC(qc.size = 2048);
    MUTATE_QC(qc.size = 0);
    MUTATE_QC(qc.msix_vector = SIM_MSIX_VECTORS);
    MUTATE_QC(qc.desc += 8);

    /* record length beyond the end, and a wrong fixed length */
    memcpy(bad, blob, len);
    memcpy(&h, bad + last_cfg, sizeof(h));
    h.len = (uint32_t)(len - last_cfg);
    memcpy(bad + last_cfg, &h, sizeof(h));
    expect_rejected(bad, len);
    memcpy(bad, blob, len);
    h.len = sizeof(qc) - 2;
    memcpy(bad + last_cfg, &h, sizeof(h));
    expect_rejected(bad, len);
    /* truncated header */
    expect_rejected(blob, len - (len - last_cfg) + 4);
    /* unknown record type */
    memcpy(bad, blob, len);
    h.type = 99;
    h.len = sizeof(qc);
    memcpy(bad + last_cfg, &h, sizeof(h));
    expect_rejected(bad, len);

    /* features the VF does not offer */
    memcpy(bad, blob, len);
    memcpy(&c, bad + common + 8, sizeof(c));
    c.driver_features |= 1ull << 63;
    memcpy(bad + common + 8, &c, sizeof(c));
    expect_rejected(bad, len);

    /* split state of a queue that does not exist */
    memcpy(bad, blob, len);
    size_t split = tlv_find(bad, len, VFE_NV_TLV_VQ_SPLIT, VF_QUEUES - 1);
    bad[split + 8] = 200;
    expect_rejected(bad, len);

    /* the untouched blob still applies */
    assert_int_equal(restore(2, blob, len), VFE_NV_ST_OK);
    assert_same_state(VF[1], VF[2]);
}

/* ---- dirty tracking ---- */

static uint8_t dirty(uint8_t cmd, const void *data, size_t len)
{
    uint8_t st;
    nv_exec(VFE_NV_CLASS_DIRTY, cmd, data, len, 16, &st, NULL);
    return st;
}

struct start_cmd {
    struct vfe_nv_start_track t;
    struct vfe_nv_sge sge[4];
} __attribute__((packed));

static uint8_t start(unsigned vf, uint8_t mode, uint32_t page, uint64_t addr, uint64_t len,
                     const struct vfe_nv_sge *sges, unsigned n)
{
    struct start_cmd c = { .t = { .vdev_id = (uint16_t)vf, .track_mode = mode, .num_sges = (uint8_t)n,
                                  .vdev_host_page_size = page, .range_addr = addr, .range_length = len } };
    if (n)
        memcpy(c.sge, sges, n * sizeof(*sges));
    return dirty(VFE_NV_DIRTY_START, &c, sizeof(c.t) + n * sizeof(*sges));
}

static uint64_t dirty_pending(unsigned vf)
{
    struct vfe_nv_vdev v = { .vdev_id = (uint16_t)vf };
    uint8_t st, *r;
    uint64_t n;
    assert_int_equal(nv_exec(VFE_NV_CLASS_DIRTY, VFE_NV_DIRTY_PENDING_BYTES, &v, sizeof(v), 8, &st, &r), 8);
    assert_int_equal(st, VFE_NV_ST_OK);
    memcpy(&n, r, 8);
    return n;
}

static void test_dirty_push(void **state)
{
    const uint64_t range = 256ull << 20;   /* 65536 pages: 8192 bitmap bytes */
    uint64_t bm = pf_alloc(8192);
    struct vfe_nv_sge two[2] = { { .addr = bm, .len = 4096 }, { .addr = bm + 4096, .len = 4096 } };

    /* refused: page size, short sges, unmapped / read-only sge, no sges, bytemap */
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 8192, 0, range, two, 2), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, range, two, 1), VFE_NV_ST_EINVAL | NR);
    struct vfe_nv_sge unmapped[2] = { two[0], { .addr = 0x90000000ull, .len = 4096 } };
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, range, unmapped, 2), VFE_NV_ST_EINVAL | NR);
    struct vfe_nv_sge ro[2] = { two[0], { .addr = PF_RO_IOVA, .len = 4096 } };
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, range, ro, 2), VFE_NV_ST_EINVAL | NR);
    struct vfe_nv_sge past_end[2] = { two[0], { .addr = PF_IOVA + PF_MEM - 100, .len = 4096 } };
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, range, past_end, 2), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, range, NULL, 0), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 100, range, two, 2), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, 0, two, 2), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BYTEMAP, 4096, 0, range, two, 2), VFE_NV_ST_EUNSUPP | NR);
    assert_int_equal(start(1, VFE_NV_TRACK_PULL_BYTEMAP, 4096, 0, range, two, 2), VFE_NV_ST_EUNSUPP | NR);
    assert_int_equal(start(1, 9, 4096, 0, range, two, 2), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(start(9, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, range, two, 2), VFE_NV_ST_ENODEV | NR);
    /* the sge count claims more than the command holds */
    struct start_cmd c = { .t = { .vdev_id = 1, .track_mode = 1, .num_sges = 3, .vdev_host_page_size = 4096,
                                  .range_length = range } };
    memcpy(c.sge, two, sizeof(two));
    assert_int_equal(dirty(VFE_NV_DIRTY_START, &c, sizeof(c.t) + 2 * sizeof(two[0])), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(VF[1]->dirty.mode, 0);
    assert_int_equal(dirty_pending(1), 0);

    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, range, two, 2), VFE_NV_ST_OK);
    const struct sim_dirty *d = &VF[1]->dirty;
    assert_int_equal(d->mode, 1);
    assert_int_equal(d->page_size, 4096);
    assert_int_equal(d->range_addr, 0);
    assert_int_equal(d->range_len, range);
    assert_int_equal(d->nsges, 2);
    assert_int_equal(d->sges[1].iova, bm + 4096);
    assert_int_equal(d->sges[1].len, 4096);
    assert_null(d->pull_bitmap);
    assert_int_equal(dirty_pending(1), 8192);
    /* a push VF has nothing to report */
    struct vfe_nv_report rep = { .vdev_id = 1 };
    assert_int_equal(dirty(VFE_NV_DIRTY_REPORT, &rep, sizeof(rep)), VFE_NV_ST_EINVAL | NR);

    struct vfe_nv_vdev v = { .vdev_id = 1 };
    assert_int_equal(dirty(VFE_NV_DIRTY_STOP, &v, sizeof(v)), VFE_NV_ST_OK);
    assert_int_equal(VF[1]->dirty.mode, 0);
    assert_int_equal(VF[1]->dirty.nsges, 0);
}

/* --dirty-tracking: a mode not offered is refused as unsupported, and
 * DIRTY_IDENTITY says which modes are */
static void test_dirty_modes_offered(void **state)
{
    uint64_t bm = pf_alloc(4096);
    struct vfe_nv_sge one = { .addr = bm, .len = 4096 };
    uint8_t st, *r;
    uint32_t modes;
    const unsigned push = 1u << VFE_NV_TRACK_PUSH_BITMAP, pull = 1u << VFE_NV_TRACK_PULL_BITMAP;

    assert_int_equal(nv_exec(VFE_NV_CLASS_DIRTY, VFE_NV_DIRTY_IDENTITY, NULL, 0, 8, &st, &r), 4);
    memcpy(&modes, r, 4);
    assert_int_equal(le32toh(modes), push | pull);

    S.opt.dirty_refused = push;   /* --dirty-tracking pull */
    assert_int_equal(nv_exec(VFE_NV_CLASS_DIRTY, VFE_NV_DIRTY_IDENTITY, NULL, 0, 8, &st, &r), 4);
    memcpy(&modes, r, 4);
    assert_int_equal(le32toh(modes), pull);
    assert_int_equal(start(1, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, 1ull << 20, &one, 1), VFE_NV_ST_EUNSUPP | NR);
    assert_int_equal(VF[1]->dirty.mode, 0);
    assert_int_equal(start(1, VFE_NV_TRACK_PULL_BITMAP, 4096, 0, 1ull << 20, NULL, 0), VFE_NV_ST_OK);

    S.opt.dirty_refused = pull;   /* --dirty-tracking push */
    assert_int_equal(start(2, VFE_NV_TRACK_PULL_BITMAP, 4096, 0, 1ull << 20, NULL, 0), VFE_NV_ST_EUNSUPP | NR);
    assert_int_equal(start(2, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, 1ull << 20, &one, 1), VFE_NV_ST_OK);

    S.opt.dirty_refused = push | pull;   /* --dirty-tracking none */
    assert_int_equal(nv_exec(VFE_NV_CLASS_DIRTY, VFE_NV_DIRTY_IDENTITY, NULL, 0, 8, &st, &r), 4);
    memcpy(&modes, r, 4);
    assert_int_equal(modes, 0);
    assert_int_equal(start(3, VFE_NV_TRACK_PUSH_BITMAP, 4096, 0, 1ull << 20, &one, 1), VFE_NV_ST_EUNSUPP | NR);
    S.opt.dirty_refused = 0;
}

static long report(unsigned vf, uint32_t off, size_t room, uint8_t *st, uint8_t **r)
{
    struct vfe_nv_report rep = { .vdev_id = (uint16_t)vf, .offset = off };
    return nv_exec(VFE_NV_CLASS_DIRTY, VFE_NV_DIRTY_REPORT, &rep, sizeof(rep), room, st, r);
}

static void test_dirty_pull_report(void **state)
{
    const uint64_t base = 0x40000000ull, range = 1ull << 20;   /* 256 pages: 32 bytes */
    uint8_t st, *r;

    assert_int_equal(start(2, VFE_NV_TRACK_PULL_BITMAP, 4096, base, 65ull << 30, NULL, 0), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(report(2, 0, 32, &st, NULL), 0);
    assert_int_equal(st, VFE_NV_ST_EINVAL | NR);

    assert_int_equal(start(2, VFE_NV_TRACK_PULL_BITMAP, 4096, base, range, NULL, 0), VFE_NV_ST_OK);
    struct sim_dirty *d = &VF[2]->dirty;
    assert_int_equal(d->mode, 3);
    assert_non_null(d->pull_bitmap);
    assert_int_equal(d->pull_bytes, 32);
    assert_int_equal(dirty_pending(2), 32);
    for (unsigned i = 0; i < 32; i++)
        d->pull_bitmap[i] = (uint8_t)(i + 1);

    /* 16 bytes fit; they come back and are cleared, the rest stays */
    assert_int_equal(report(2, 0, 16, &st, &r), 16);
    assert_int_equal(st, VFE_NV_ST_OK);
    for (unsigned i = 0; i < 16; i++) {
        assert_int_equal(r[i], i + 1);
        assert_int_equal(d->pull_bitmap[i], 0);
        assert_int_equal(d->pull_bitmap[16 + i], 17 + i);
    }
    assert_int_equal(report(2, 16, 64, &st, &r), 16);
    assert_int_equal(r[15], 32);
    assert_int_equal(d->pull_bitmap[31], 0);
    /* a second report of the same range is empty */
    assert_int_equal(report(2, 0, 64, &st, &r), 32);
    for (unsigned i = 0; i < 32; i++)
        assert_int_equal(r[i], 0);
    /* offset past the bitmap; no room at all */
    report(2, 33, 64, &st, NULL);
    assert_int_equal(st, VFE_NV_ST_EINVAL | NR);
    assert_int_equal(report(2, 0, 0, &st, NULL), 0);
    assert_int_equal(st, VFE_NV_ST_ENOSPC | NR);

    /* restarting the same range keeps collected bits; another range starts clean */
    d->pull_bitmap[5] = 0x80;
    assert_int_equal(start(2, VFE_NV_TRACK_PULL_BITMAP, 4096, base, range, NULL, 0), VFE_NV_ST_OK);
    assert_int_equal(VF[2]->dirty.pull_bitmap[5], 0x80);
    assert_int_equal(start(2, VFE_NV_TRACK_PULL_BITMAP, 4096, base, 2 * range, NULL, 0), VFE_NV_ST_OK);
    assert_int_equal(VF[2]->dirty.pull_bitmap[5], 0);
    assert_int_equal(VF[2]->dirty.pull_bytes, 64);

    struct vfe_nv_vdev v = { .vdev_id = 2 };
    assert_int_equal(dirty(VFE_NV_DIRTY_STOP, &v, sizeof(v)), VFE_NV_ST_OK);
    assert_null(VF[2]->dirty.pull_bitmap);
    assert_int_equal(VF[2]->dirty.mode, 0);
}

/* ANNOUNCE: the VF must run, the MAC must be unicast and not zero; the RARP
 * itself is the switch's (tests/unit/sim_net). */
static void test_announce(void **state)
{
    vf_configure(2, 1);
    struct vfe_nv_announce a = { .vdev_id = 2, .mac = {0x52, 0x54, 0, 0, 0, 0x3a} };
    assert_int_equal(mig(VFE_NV_MIG_ANNOUNCE, &a, sizeof(a)), VFE_NV_ST_OK);
    assert_int_equal(fake.announces, 1);
    assert_int_equal(fake.announced_vf, 2);
    assert_memory_equal(fake.announced, a.mac, 6);
    /* bad MACs */
    a.mac[0] = 0x01;
    assert_int_equal(mig(VFE_NV_MIG_ANNOUNCE, &a, sizeof(a)), VFE_NV_ST_EINVAL | NR);
    memset(a.mac, 0, 6);
    assert_int_equal(mig(VFE_NV_MIG_ANNOUNCE, &a, sizeof(a)), VFE_NV_ST_EINVAL | NR);
    memset(a.mac, 0xff, 6);
    assert_int_equal(mig(VFE_NV_MIG_ANNOUNCE, &a, sizeof(a)), VFE_NV_ST_EINVAL | NR);
    /* short data, unknown VF */
    a.mac[0] = 0x52;
    assert_int_equal(mig(VFE_NV_MIG_ANNOUNCE, &a, 7), VFE_NV_ST_EINVAL | NR);
    a.vdev_id = NVF + 1;
    assert_int_equal(mig(VFE_NV_MIG_ANNOUNCE, &a, sizeof(a)), VFE_NV_ST_ENODEV | NR);
    /* a frozen VF sends nothing: busy, may be retried */
    a.vdev_id = 2;
    assert_int_equal(modify(2, VFE_NV_STATE_FREEZED), VFE_NV_ST_OK);
    assert_int_equal(mig(VFE_NV_MIG_ANNOUNCE, &a, sizeof(a)), VFE_NV_ST_EBUSY);
    assert_int_equal(fake.announces, 1);
}

static void test_unknown_and_short(void **state)
{
    struct vfe_nv_vdev v = { .vdev_id = 1 };
    uint8_t st;
    assert_int_equal(mig(9, &v, sizeof(v)), VFE_NV_ST_EUNSUPP | NR);
    assert_int_equal(dirty(9, &v, sizeof(v)), VFE_NV_ST_EUNSUPP | NR);
    v.vdev_id = 0;
    assert_int_equal(mig(VFE_NV_MIG_GET_STATUS, &v, sizeof(v)), VFE_NV_ST_ENODEV | NR);
    v.vdev_id = NVF + 1;
    assert_int_equal(mig(VFE_NV_MIG_GET_STATUS, &v, sizeof(v)), VFE_NV_ST_ENODEV | NR);
    VF[3]->removed = true;
    v.vdev_id = 3;
    assert_int_equal(mig(VFE_NV_MIG_GET_STATUS, &v, sizeof(v)), VFE_NV_ST_ENODEV | NR);
    assert_int_equal(mig(VFE_NV_MIG_MODIFY_STATUS, &v, 2), VFE_NV_ST_EINVAL | NR);
    assert_int_equal(nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_IDENTITY, NULL, 0, 16, &st, NULL), 0);
    assert_int_equal(st, VFE_NV_ST_OK);
    /* GET_STATUS with room for the status byte only */
    v.vdev_id = 1;
    assert_int_equal(nv_exec(VFE_NV_CLASS_MIG, VFE_NV_MIG_GET_STATUS, &v, sizeof(v), 0, &st, NULL), 0);
    assert_int_equal(st, VFE_NV_ST_ENOSPC | NR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_freeze_resume, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_save_restore, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_restore_rejects, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_dirty_push, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_dirty_pull_report, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_dirty_modes_offered, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_short, adm_setup, adm_teardown),
        cmocka_unit_test_setup_teardown(test_announce, adm_setup, adm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
