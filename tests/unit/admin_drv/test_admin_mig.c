/* Dialect probe and migration commands of both dialects against a fake PF. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_mig.h"
#include "drivers/common/virtio_mi/vfe_state_parts.h"
#include "drivers/common/virtio_mi/vfe_state_tlv.h"
#include "tests/unit/admin_drv/fake_ring.h"

#define NVFS 4
#define STD_HDR sizeof(struct vfe_adm_std_cmd)

/* ---- a PF speaking either dialect (or both, or neither) ---- */
struct fake_pf {
    bool nvidia, virtio, virtio_dirty, lacks_mode_set, silent;
    uint8_t nv_state[NVFS + 1];
    uint8_t mode_flags[NVFS + 1];
    uint8_t saved[8192];           /* what save returns */
    uint32_t saved_len;
    uint32_t piece;                /* nvidia SAVE piece limit */
    uint64_t pending_override;
    uint8_t restored[4096];
    uint32_t restored_len;
    uint8_t track[1024];
    uint32_t track_len;
    uint8_t bitmap[512];
    uint64_t list_use;
    int identity, list_query, list_use_calls, saves, dirty_stops;
    bool no_announce;              /* an nvidia device without ANNOUNCE */
    int announces;
    uint16_t announced_vf;
    uint8_t announced[6];
    uint32_t announce_len;
};

static uint16_t cmd_vf_nv(const uint8_t *data) { return vfe_get_le16(data); }

static int nv_handle(struct fake_pf *p, struct fake_chain *c)
{
    const uint8_t *d = c->cmd + 2;
    uint32_t dlen = c->cmd_len - 2;
    uint32_t cap = c->res_len - 1;
    uint8_t cls = c->cmd[0], op = c->cmd[1];
    if (op != VFE_NV_MIG_IDENTITY && (dlen < 4 || cmd_vf_nv(d) == 0 || cmd_vf_nv(d) > NVFS))
        return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_ENODEV | VFE_NV_ST_NO_RETRY);
    uint16_t vf = op == VFE_NV_MIG_IDENTITY ? 0 : cmd_vf_nv(d);
    uint8_t le[8];
    if (cls == VFE_NV_CLASS_MIG) {
        switch (op) {
        case VFE_NV_MIG_IDENTITY:
            p->identity++;
            return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_OK);
        case VFE_NV_MIG_GET_STATUS:
            return (int)fake_nv_answer(c, &p->nv_state[vf], 1, VFE_NV_ST_OK);
        case VFE_NV_MIG_MODIFY_STATUS:
            p->nv_state[vf] = d[2];
            return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_OK);
        case VFE_NV_MIG_PENDING_BYTES:
            vfe_put_le64(le, p->pending_override ? p->pending_override : p->saved_len);
            return (int)fake_nv_answer(c, le, 8, VFE_NV_ST_OK);
        case VFE_NV_MIG_SAVE_STATE: {
            p->saves++;
            uint32_t off = vfe_get_le32(d + offsetof(struct vfe_nv_save, offset));
            if (off > p->saved_len)
                return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_EINVAL | VFE_NV_ST_NO_RETRY);
            uint32_t n = p->saved_len - off;
            if (n > cap)
                n = cap;
            if (p->piece && n > p->piece)
                n = p->piece;
            return (int)fake_nv_answer(c, p->saved + off, n, VFE_NV_ST_OK);
        }
        case VFE_NV_MIG_ANNOUNCE:
            if (p->no_announce)
                break;
            p->announces++;
            p->announce_len = dlen;
            p->announced_vf = vf;
            memcpy(p->announced, d + offsetof(struct vfe_nv_announce, mac), 6);
            return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_OK);
        case VFE_NV_MIG_RESTORE_STATE:
            p->restored_len = dlen - 4;
            memcpy(p->restored, d + 4, p->restored_len);
            return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_OK);
        }
    } else {
        switch (op) {
        case VFE_NV_DIRTY_START:
            p->track_len = dlen;
            memcpy(p->track, d, dlen);
            return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_OK);
        case VFE_NV_DIRTY_STOP:
            p->dirty_stops++;
            return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_OK);
        case VFE_NV_DIRTY_REPORT: {
            uint32_t off = vfe_get_le32(d + offsetof(struct vfe_nv_report, offset));
            uint32_t n = off < sizeof(p->bitmap) ? (uint32_t)sizeof(p->bitmap) - off : 0;
            if (n > cap)
                n = cap;
            return (int)fake_nv_answer(c, p->bitmap + off, n, VFE_NV_ST_OK);
        }
        }
    }
    return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_EUNSUPP | VFE_NV_ST_NO_RETRY);
}

static uint64_t pf_opcodes(const struct fake_pf *p)
{
    uint64_t ops = 1ull << VFE_ADM_LIST_QUERY | 1ull << VFE_ADM_LIST_USE | 1ull << VFE_ADM_DEV_PARTS_METADATA_GET |
                   1ull << VFE_ADM_DEV_PARTS_GET | 1ull << VFE_ADM_DEV_PARTS_SET;
    if (!p->lacks_mode_set)
        ops |= 1ull << VFE_ADM_DEV_MODE_SET;
    if (p->virtio_dirty)
        ops |= 1ull << VFE_ADM_DIRTY_START | 1ull << VFE_ADM_DIRTY_STOP | 1ull << VFE_ADM_DIRTY_REPORT;
    return ops;
}

static int std_handle(struct fake_pf *p, struct fake_chain *c)
{
    if (c->cmd_len < STD_HDR)
        return (int)fake_std_answer(c, NULL, 0, VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_COMMAND);
    uint16_t opc = vfe_get_le16(c->cmd);
    uint64_t member = vfe_get_le64(c->cmd + offsetof(struct vfe_adm_std_cmd, group_member_id));
    const uint8_t *d = c->cmd + STD_HDR;
    uint32_t dlen = c->cmd_len - STD_HDR, cap = c->res_len - 8;
    if (opc >= 64 || !(pf_opcodes(p) >> opc & 1))
        return (int)fake_std_answer(c, NULL, 0, VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_OPCODE);
    if (opc != VFE_ADM_LIST_QUERY && opc != VFE_ADM_LIST_USE && (member == 0 || member > NVFS))
        return (int)fake_std_answer(c, NULL, 0, VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_MEMBER);
    uint8_t out[16];
    switch (opc) {
    case VFE_ADM_LIST_QUERY:
        p->list_query++;
        vfe_put_le64(out, pf_opcodes(p));
        return (int)fake_std_answer(c, out, 8, 0, 0);
    case VFE_ADM_LIST_USE:
        p->list_use_calls++;
        p->list_use = dlen >= 8 ? vfe_get_le64(d) : 0;
        return (int)fake_std_answer(c, NULL, 0, 0, 0);
    case VFE_ADM_DEV_PARTS_METADATA_GET:
        vfe_put_le32(out, p->saved_len);
        vfe_put_le32(out + 4, 9);
        return (int)fake_std_answer(c, out, 8, 0, 0);
    case VFE_ADM_DEV_PARTS_GET:
        if (cap < p->saved_len)
            return (int)fake_std_answer(c, NULL, 0, VFE_ADM_ST_ENOMEM, 0);
        return (int)fake_std_answer(c, p->saved, p->saved_len, 0, 0);
    case VFE_ADM_DEV_PARTS_SET:
        p->restored_len = dlen;
        memcpy(p->restored, d, dlen);
        return (int)fake_std_answer(c, NULL, 0, 0, 0);
    case VFE_ADM_DEV_MODE_SET:
        p->mode_flags[member] = d[0];
        return (int)fake_std_answer(c, NULL, 0, 0, 0);
    case VFE_ADM_DIRTY_START:
        p->track_len = dlen;
        memcpy(p->track, d, dlen);
        return (int)fake_std_answer(c, NULL, 0, 0, 0);
    case VFE_ADM_DIRTY_STOP:
        p->dirty_stops++;
        return (int)fake_std_answer(c, NULL, 0, 0, 0);
    case VFE_ADM_DIRTY_REPORT: {
        uint32_t off = vfe_get_le32(d + offsetof(struct vfe_nv_report, offset));
        uint32_t n = off < sizeof(p->bitmap) ? (uint32_t)sizeof(p->bitmap) - off : 0;
        if (n > cap)
            n = cap;
        return (int)fake_std_answer(c, p->bitmap + off, n, 0, 0);
    }
    }
    return (int)fake_std_answer(c, NULL, 0, VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_OPCODE);
}

static int pf_handler(struct fake_ring *r, struct fake_chain *c)
{
    struct fake_pf *p = r->priv;
    if (p->silent)
        return -1;
    bool nv_cmd = c->cmd[0] == VFE_NV_CLASS_MIG || c->cmd[0] == VFE_NV_CLASS_DIRTY;
    if (nv_cmd && p->nvidia)
        return nv_handle(p, c);
    if (!nv_cmd && p->virtio)
        return std_handle(p, c);
    /* a command of the other dialect: the device answers in its own */
    if (p->virtio)
        return (int)fake_std_answer(c, NULL, 0, VFE_ADM_ST_EINVAL, VFE_ADM_SQ_INVALID_OPCODE);
    return (int)fake_nv_answer(c, NULL, 0, VFE_NV_ST_EUNSUPP | VFE_NV_ST_NO_RETRY);
}

/* ---- fixture ---- */
struct fx {
    struct ev_loop *loop;
    struct fake_ring r;
    struct fake_pf pf;
    struct vfe_mig m;
};

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    f.loop = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(fake_ring_open(&f.r, f.loop, 8), 0);
    f.r.handler = pf_handler;
    f.r.priv = &f.pf;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    vfe_admin_close(f->r.aq);
    ev_loop_destroy(f->loop);
    return 0;
}

struct res {
    bool done;
    int calls, err;
    enum vfe_mig_state st;
    uint32_t n;
};
static void done_cb(void *ctx, int err) { struct res *r = ctx; r->calls++; r->err = err; r->done = true; }
static void state_cb(void *ctx, int err, enum vfe_mig_state st)
{
    struct res *r = ctx;
    r->calls++;
    r->err = err;
    r->st = st;
    r->done = true;
}
static void report_cb(void *ctx, int err, uint32_t n)
{
    struct res *r = ctx;
    r->calls++;
    r->err = err;
    r->n = n;
    r->done = true;
}

static int wait_res(struct fx *f, struct res *r)
{
    vfe_admin_wait(f->r.aq, &r->done);
    assert_int_equal(r->calls, 1);
    return r->err;
}

static void sample_state(struct vfe_dev_state *s)
{
    vfe_dev_state_init(s);
    s->has_common = true;
    s->device_features = 0x300010020ull;
    s->driver_features = 0x100000020ull;
    s->num_queues = 3;
    s->status = 0x0f;
    s->msix_config = 0;
    s->has_rx_mode = true;
    s->rx_mode = 1;
    s->has_pairs = true;
    s->pairs = 1;
    s->net_cfg_len = 8;
    memcpy(s->net_cfg, "\x02\x00\x00\x00\x00\x07\x01\x00", 8);
    s->nvqs = 2;
    for (uint16_t q = 0; q < 2; q++) {
        s->vq[q].has_cfg = s->vq[q].has_split = s->vq[q].enabled = true;
        s->vq[q].size = 256;
        s->vq[q].msix_vector = (uint16_t)(q + 1);
        s->vq[q].desc = 0x10000ull << q;
        s->vq[q].avail = s->vq[q].desc + 0x1000;
        s->vq[q].used = s->vq[q].desc + 0x2000;
        s->vq[q].last_avail = (uint16_t)(77 + q);
        s->vq[q].last_used = (uint16_t)(70 + q);
    }
}

/* ---- probe ---- */

static void test_probe_nvidia(void **state)
{
    struct fx *f = *state;
    f->pf.nvidia = true;
    f->pf.virtio = true;   /* speaks both: nvidia is asked first */
    assert_int_equal(vfe_mig_probe_sync(&f->m, f->r.aq), 0);
    assert_int_equal(f->m.dialect, VFE_MIG_DIALECT_NVIDIA);
    assert_int_equal(f->pf.identity, 1);
    assert_int_equal(f->pf.list_query, 0);
}

static void test_probe_virtio(void **state)
{
    struct fx *f = *state;
    f->pf.virtio = true;
    f->pf.virtio_dirty = true;
    assert_int_equal(vfe_mig_probe_sync(&f->m, f->r.aq), 0);
    assert_int_equal(f->m.dialect, VFE_MIG_DIALECT_VIRTIO);
    assert_true(f->m.virtio_dirty);
    assert_int_equal(f->pf.list_query, 1);
    assert_int_equal(f->pf.list_use_calls, 1);
    assert_int_equal(f->pf.list_use, pf_opcodes(&f->pf));
    /* the nvidia IDENTITY was not retried against a virtio device */
    assert_int_equal(f->r.nchains, 3);
}

static void test_probe_virtio_without_dirty(void **state)
{
    struct fx *f = *state;
    f->pf.virtio = true;
    assert_int_equal(vfe_mig_probe_sync(&f->m, f->r.aq), 0);
    assert_int_equal(f->m.dialect, VFE_MIG_DIALECT_VIRTIO);
    assert_false(f->m.virtio_dirty);
    assert_int_equal(f->pf.list_use >> VFE_ADM_DIRTY_START & 1, 0);
    struct res r = { 0 };
    uint8_t buf[8];
    assert_int_equal(vfe_mig_dirty_report(&f->m, 1, 0, buf, sizeof(buf), report_cb, &r), -EOPNOTSUPP);
}

static void test_probe_virtio_missing_opcode(void **state)
{
    struct fx *f = *state;
    f->pf.virtio = true;
    f->pf.lacks_mode_set = true;
    f->m.dialect = VFE_MIG_DIALECT_NONE;
    assert_int_equal(vfe_mig_probe_sync(&f->m, f->r.aq), -ENOTSUP);
    assert_int_equal(f->m.dialect, VFE_MIG_DIALECT_NONE);
    assert_int_equal(f->pf.list_use_calls, 0);
}

static void test_probe_neither(void **state)
{
    struct fx *f = *state;   /* answers everything with an nvidia "unsupported" */
    assert_int_equal(vfe_mig_probe_sync(&f->m, f->r.aq), -ENOTSUP);
    assert_int_equal(f->r.nchains, 2);
}

static void test_probe_silent_device(void **state)
{
    struct fx *f = *state;
    f->pf.silent = true;
    vfe_admin_set_timeout(f->r.aq, 20);
    assert_int_equal(vfe_mig_probe_sync(&f->m, f->r.aq), -ETIMEDOUT);
    assert_int_equal(f->r.nchains, 1);   /* no LIST_QUERY after a timeout */
}

/* ---- nvidia dialect ---- */

static void use_nvidia(struct fx *f)
{
    f->pf.nvidia = true;
    assert_int_equal(vfe_mig_init(&f->m, f->r.aq, VFE_MIG_DIALECT_NVIDIA), 0);
}

static void test_nv_states(void **state)
{
    struct fx *f = *state;
    use_nvidia(f);
    struct res r = { 0 };
    assert_int_equal(vfe_mig_set_state(&f->m, 2, VFE_MIG_QUIESCED, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(f->pf.nv_state[2], VFE_NV_STATE_QUIESCED);
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_set_state(&f->m, 2, VFE_MIG_FREEZED, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_get_state(&f->m, 2, state_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(r.st, VFE_MIG_FREEZED);
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_get_state(&f->m, NVFS + 1, state_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), -ENODEV);
    /* a state byte the dialect does not define */
    f->pf.nv_state[1] = 9;
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_get_state(&f->m, 1, state_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), -EPROTO);
    assert_int_equal(vfe_mig_set_state(&f->m, 1, VFE_MIG_INIT, done_cb, &r), -EINVAL);
    assert_int_equal(vfe_mig_set_state(&f->m, 0, VFE_MIG_RUNNING, done_cb, &r), -EINVAL);
}

static void test_nv_save_in_pieces(void **state)
{
    struct fx *f = *state;
    use_nvidia(f);
    struct vfe_dev_state ref, got;
    sample_state(&ref);
    size_t len;
    assert_int_equal(vfe_state_tlv_encode(&ref, f->pf.saved, sizeof(f->pf.saved), &len), 0);
    f->pf.saved_len = (uint32_t)len;
    f->pf.piece = 50;
    struct res r = { 0 };
    assert_int_equal(vfe_mig_save_state(&f->m, 1, &got, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_true(vfe_dev_state_equal(&ref, &got));
    assert_int_equal(f->pf.saves, (int)((len + 49) / 50));
}

static void test_nv_save_bad_answers(void **state)
{
    struct fx *f = *state;
    use_nvidia(f);
    struct vfe_dev_state ref, got;
    sample_state(&ref);
    size_t len;
    assert_int_equal(vfe_state_tlv_encode(&ref, f->pf.saved, sizeof(f->pf.saved), &len), 0);
    /* a blob whose last record is cut */
    f->pf.saved_len = (uint32_t)len - 3;
    struct res r = { 0 };
    assert_int_equal(vfe_mig_save_state(&f->m, 1, &got, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), -EINVAL);
    /* more pending bytes than the driver accepts */
    f->pf.pending_override = (uint64_t)VFE_MIG_STATE_MAX + 1;
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_save_state(&f->m, 1, &got, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), -EFBIG);
    /* pending bytes promise more than SAVE delivers: an empty piece ends it */
    f->pf.saved_len = (uint32_t)len;
    f->pf.pending_override = len + 100;
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_save_state(&f->m, 1, &got, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), -EPROTO);
}

static void test_nv_restore(void **state)
{
    struct fx *f = *state;
    use_nvidia(f);
    struct vfe_dev_state ref, got;
    sample_state(&ref);
    struct res r = { 0 };
    assert_int_equal(vfe_mig_restore_state(&f->m, 3, &ref, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(vfe_state_tlv_decode(f->pf.restored, f->pf.restored_len, &got), 0);
    assert_true(vfe_dev_state_equal(&ref, &got));
    /* a state that cannot be encoded is refused before anything is sent */
    unsigned before = f->r.nchains;
    ref.nvqs = 5;
    assert_int_equal(vfe_mig_restore_state(&f->m, 3, &ref, done_cb, &r), -EINVAL);
    assert_int_equal(f->r.nchains, before);
}

static void test_nv_dirty(void **state)
{
    struct fx *f = *state;
    use_nvidia(f);
    struct vfe_mig_dirty_cfg c = {
        .mode = VFE_MIG_TRACK_PUSH_BITMAP, .page_size = 4096, .range_addr = 0, .range_len = 1ull << 30,
        .nsges = 2, .sges = { { 0xfd00000000ull, 16384 }, { 0xfd00100000ull, 16384 } },
    };
    struct res r = { 0 };
    assert_int_equal(vfe_mig_dirty_start(&f->m, 1, &c, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    const uint8_t *t = f->pf.track;
    assert_int_equal(f->pf.track_len, sizeof(struct vfe_nv_start_track) + 2 * sizeof(struct vfe_nv_sge));
    assert_int_equal(vfe_get_le16(t), 1);
    assert_int_equal(t[offsetof(struct vfe_nv_start_track, track_mode)], VFE_NV_TRACK_PUSH_BITMAP);
    assert_int_equal(t[offsetof(struct vfe_nv_start_track, num_sges)], 2);
    assert_int_equal(vfe_get_le32(t + offsetof(struct vfe_nv_start_track, vdev_host_page_size)), 4096);
    assert_int_equal(vfe_get_le64(t + offsetof(struct vfe_nv_start_track, range_length)), 1ull << 30);
    const uint8_t *sge1 = t + sizeof(struct vfe_nv_start_track) + sizeof(struct vfe_nv_sge);
    assert_int_equal(vfe_get_le64(sge1), 0xfd00100000ull);
    assert_int_equal(vfe_get_le32(sge1 + 8), 16384);

    /* pull report: bytes from the offset asked */
    for (unsigned i = 0; i < sizeof(f->pf.bitmap); i++)
        f->pf.bitmap[i] = (uint8_t)(i * 7);
    uint8_t buf[64];
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_dirty_report(&f->m, 1, 100, buf, sizeof(buf), report_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(r.n, sizeof(buf));
    assert_memory_equal(buf, f->pf.bitmap + 100, sizeof(buf));
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_dirty_report(&f->m, 1, sizeof(f->pf.bitmap) - 10, buf, sizeof(buf), report_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(r.n, 10);

    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_dirty_stop(&f->m, 1, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(f->pf.dirty_stops, 1);

    /* configurations refused up front */
    c.nsges = 0;
    assert_int_equal(vfe_mig_dirty_start(&f->m, 1, &c, done_cb, &r), -EINVAL);
    c.mode = VFE_MIG_TRACK_PULL_BITMAP;
    c.page_size = 3000;
    assert_int_equal(vfe_mig_dirty_start(&f->m, 1, &c, done_cb, &r), -EINVAL);
    c.page_size = 4096;
    c.nsges = 1;
    assert_int_equal(vfe_mig_dirty_start(&f->m, 1, &c, done_cb, &r), -EINVAL);
    c.nsges = 0;
    c.range_addr = ~0ull;
    assert_int_equal(vfe_mig_dirty_start(&f->m, 1, &c, done_cb, &r), -EINVAL);
}

/* Several VFs' operations in flight at once on one queue. */
static void test_nv_concurrent_vfs(void **state)
{
    struct fx *f = *state;
    use_nvidia(f);
    struct vfe_dev_state ref, got[NVFS];
    sample_state(&ref);
    size_t len;
    assert_int_equal(vfe_state_tlv_encode(&ref, f->pf.saved, sizeof(f->pf.saved), &len), 0);
    f->pf.saved_len = (uint32_t)len;
    f->pf.piece = 64;
    struct res r[NVFS] = { 0 }, s[NVFS] = { 0 };
    for (uint16_t vf = 1; vf <= NVFS; vf++) {
        assert_int_equal(vfe_mig_set_state(&f->m, vf, VFE_MIG_QUIESCED, done_cb, &s[vf - 1]), 0);
        assert_int_equal(vfe_mig_save_state(&f->m, vf, &got[vf - 1], done_cb, &r[vf - 1]), 0);
    }
    for (int i = 0; i < NVFS; i++) {
        assert_int_equal(wait_res(f, &s[i]), 0);
        assert_int_equal(wait_res(f, &r[i]), 0);
        assert_true(vfe_dev_state_equal(&ref, &got[i]));
        assert_int_equal(f->pf.nv_state[i + 1], VFE_NV_STATE_QUIESCED);
    }
}

/* ---- virtio dialect ---- */

/* ANNOUNCE: nvidia class 64 cmd 6 with the VF and the MAC; bad MACs refused
 * before anything is sent; a device without the command says so (callback). */
static void test_nv_announce(void **state)
{
    struct fx *f = *state;
    use_nvidia(f);
    static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    struct res r = { 0 };
    assert_int_equal(vfe_mig_announce(&f->m, 3, mac, done_cb, &r), 0);
    assert_int_equal(r.calls, 0);                  /* never inside the call */
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(f->pf.announces, 1);
    assert_int_equal(f->pf.announce_len, sizeof(struct vfe_nv_announce));
    assert_int_equal(f->pf.announced_vf, 3);
    assert_memory_equal(f->pf.announced, mac, 6);
    static const uint8_t bad[3][6] = {{0x01, 0, 0x5e, 0, 0, 1}, {0}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(vfe_mig_announce(&f->m, 3, bad[i], done_cb, &r), -EINVAL);
    assert_int_equal(vfe_mig_announce(&f->m, 3, NULL, done_cb, &r), -EINVAL);
    assert_int_equal(vfe_mig_announce(&f->m, 0, mac, done_cb, &r), -EINVAL);
    assert_int_equal(vfe_mig_announce(&f->m, 3, mac, NULL, &r), -EINVAL);
    assert_int_equal(f->pf.announces, 1);
    assert_int_equal(r.calls, 1);
    f->pf.no_announce = true;
    struct res r2 = { 0 };
    assert_int_equal(vfe_mig_announce(&f->m, 3, mac, done_cb, &r2), 0);
    assert_int_equal(wait_res(f, &r2), -EOPNOTSUPP);
}

static void use_virtio(struct fx *f, bool dirty)
{
    f->pf.virtio = true;
    f->pf.virtio_dirty = dirty;
    assert_int_equal(vfe_mig_probe_sync(&f->m, f->r.aq), 0);
    assert_int_equal(f->m.dialect, VFE_MIG_DIALECT_VIRTIO);
}

static void test_virtio_modes(void **state)
{
    struct fx *f = *state;
    use_virtio(f, false);
    static const struct { enum vfe_mig_state st; uint8_t flags; } map[] = {
        { VFE_MIG_QUIESCED, VFE_ADM_MODE_F_STOPPED },
        { VFE_MIG_FREEZED, VFE_ADM_MODE_F_FROZEN },
        { VFE_MIG_RUNNING, 0 },
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        struct res r = { 0 };
        f->pf.mode_flags[2] = 0xaa;
        assert_int_equal(vfe_mig_set_state(&f->m, 2, map[i].st, done_cb, &r), 0);
        assert_int_equal(wait_res(f, &r), 0);
        assert_int_equal(f->pf.mode_flags[2], map[i].flags);
    }
    struct res r = { 0 };
    assert_int_equal(vfe_mig_get_state(&f->m, 2, state_cb, &r), -EOPNOTSUPP);
    static const uint8_t mac[6] = {0x52, 0x54, 0, 0, 0, 1};
    assert_int_equal(vfe_mig_announce(&f->m, 2, mac, done_cb, &r), -EOPNOTSUPP);   /* no standard command */
    assert_int_equal(r.calls, 0);
    assert_int_equal(vfe_mig_set_state(&f->m, NVFS + 1, VFE_MIG_RUNNING, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), -ENODEV);
}

static void test_virtio_save_restore(void **state)
{
    struct fx *f = *state;
    use_virtio(f, false);
    struct vfe_dev_state ref, got;
    sample_state(&ref);
    size_t len;
    assert_int_equal(vfe_state_parts_encode(&ref, f->pf.saved, sizeof(f->pf.saved), &len), 0);
    f->pf.saved_len = (uint32_t)len;
    struct res r = { 0 };
    assert_int_equal(vfe_mig_save_state(&f->m, 1, &got, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_true(vfe_dev_state_equal(&ref, &got));

    ref.vq[1].last_avail = 4242;
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_restore_state(&f->m, 4, &ref, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(vfe_state_parts_decode(f->pf.restored, f->pf.restored_len, &got), 0);
    assert_true(vfe_dev_state_equal(&ref, &got));

    /* parts with a queue index past the device's queues */
    ref.vq[1].last_avail = 1;
    assert_int_equal(vfe_state_parts_encode(&ref, f->pf.saved, sizeof(f->pf.saved), &len), 0);
    vfe_put_le16(f->pf.saved + len - 8, 40);    /* last part: vq 1 split state -> index 40 */
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_save_state(&f->m, 1, &got, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), -EINVAL);
}

static void test_virtio_dirty_extension(void **state)
{
    struct fx *f = *state;
    use_virtio(f, true);
    struct vfe_mig_dirty_cfg c = {
        .mode = VFE_MIG_TRACK_PULL_BITMAP, .page_size = 4096, .range_addr = 1ull << 20, .range_len = 1ull << 28,
    };
    struct res r = { 0 };
    assert_int_equal(vfe_mig_dirty_start(&f->m, 3, &c, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(f->pf.track_len, sizeof(struct vfe_nv_start_track));
    assert_int_equal(vfe_get_le16(f->pf.track), 3);
    assert_int_equal(f->pf.track[offsetof(struct vfe_nv_start_track, track_mode)], VFE_NV_TRACK_PULL_BITMAP);
    assert_int_equal(vfe_get_le64(f->pf.track + offsetof(struct vfe_nv_start_track, range_addr)), 1ull << 20);
    memset(f->pf.bitmap, 0, sizeof(f->pf.bitmap));
    f->pf.bitmap[3] = 0x81;
    uint8_t buf[16];
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_dirty_report(&f->m, 3, 0, buf, sizeof(buf), report_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(r.n, 16);
    assert_int_equal(buf[3], 0x81);
    memset(&r, 0, sizeof(r));
    assert_int_equal(vfe_mig_dirty_stop(&f->m, 3, done_cb, &r), 0);
    assert_int_equal(wait_res(f, &r), 0);
    assert_int_equal(f->pf.dirty_stops, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe_nvidia, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_virtio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_virtio_without_dirty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_virtio_missing_opcode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_neither, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_silent_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nv_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nv_save_in_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nv_save_bad_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nv_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nv_dirty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nv_concurrent_vfs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nv_announce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virtio_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virtio_save_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virtio_dirty_extension, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
