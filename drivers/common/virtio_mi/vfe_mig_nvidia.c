/* Migration commands in the nvidia dialect (class 64 migration, 65 dirty pages). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_mig_priv.h"
#include "drivers/common/virtio_mi/vfe_state_tlv.h"
#include "lib/log/vfe_log.h"

static size_t nv_hdr(uint8_t *p, uint8_t cls, uint8_t cmd)
{
    p[0] = cls;
    p[1] = cmd;
    return 2;
}

/* ---- get_state ---- */

struct nv_get_op {
    vfe_mig_state_cb cb;
    void *ctx;
};

static void nv_get_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct nv_get_op *op = ctx;
    int err = vfe_mig_nv_errno(status);
    enum vfe_mig_state st = VFE_MIG_INIT;
    if (!err) {
        if (len < 1 || res[0] > VFE_NV_STATE_FREEZED) {
            LOG_W("nvidia GET_STATUS: bad answer (%u bytes, state %u)", len, len ? res[0] : 0);
            err = -EPROTO;
        } else {
            st = (enum vfe_mig_state)res[0];
        }
    }
    vfe_mig_state_cb cb = op->cb;
    void *cctx = op->ctx;
    vfe_mig_op_free(op);
    cb(cctx, err, st);
}

static int nv_get_state(struct vfe_mig *m, uint16_t vf, vfe_mig_state_cb cb, void *ctx)
{
    uint8_t cmd[16];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_MIG, VFE_NV_MIG_GET_STATUS);
    n += vfe_mig_put_vdev(cmd + n, vf);
    struct nv_get_op *op = vfe_mig_op_new(m, sizeof(*op), NULL);
    if (!op)
        return -ENOMEM;
    *op = (struct nv_get_op){ .cb = cb, .ctx = ctx };
    int rc = vfe_admin_submit(m->aq, cmd, (uint32_t)n, 1, nv_get_done, op);
    if (rc < 0)
        vfe_mig_op_free(op);
    return rc;
}

static int nv_set_state(struct vfe_mig *m, uint16_t vf, enum vfe_mig_state st, vfe_mig_done_cb cb, void *ctx)
{
    uint8_t cmd[16];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_MIG, VFE_NV_MIG_MODIFY_STATUS);
    memset(cmd + n, 0, sizeof(struct vfe_nv_modify));
    vfe_put_le16(cmd + n + offsetof(struct vfe_nv_modify, vdev_id), vf);
    cmd[n + offsetof(struct vfe_nv_modify, state)] = (uint8_t)st;
    n += sizeof(struct vfe_nv_modify);
    return vfe_mig_submit_simple(m, cmd, (uint32_t)n, cb, ctx);
}

/* ---- save_state: PENDING_BYTES, then SAVE pieces by offset, then decode ---- */

struct nv_save_op {
    struct vfe_mig *m;
    uint16_t vf;
    struct vfe_dev_state *out;
    vfe_mig_done_cb cb;
    void *ctx;
    uint8_t *blob;
    uint32_t total, got;
};

static void nv_save_release(void *p)
{
    struct nv_save_op *op = p;
    free(op->blob);
}

static void nv_save_end(struct nv_save_op *op, int err)
{
    if (!err)
        err = vfe_state_tlv_decode(op->blob, op->total, op->out);
    vfe_mig_done_cb cb = op->cb;
    void *cctx = op->ctx;
    free(op->blob);
    vfe_mig_op_free(op);
    cb(cctx, err);
}

static void nv_save_piece_done(void *ctx, int status, const uint8_t *res, uint32_t len);

static int nv_save_next(struct nv_save_op *op)
{
    uint8_t cmd[16];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_MIG, VFE_NV_MIG_SAVE_STATE);
    memset(cmd + n, 0, sizeof(struct vfe_nv_save));
    vfe_put_le16(cmd + n + offsetof(struct vfe_nv_save, vdev_id), op->vf);
    vfe_put_le32(cmd + n + offsetof(struct vfe_nv_save, offset), op->got);
    n += sizeof(struct vfe_nv_save);
    uint32_t want = op->total - op->got;
    if (want > VFE_MIG_SAVE_CHUNK)
        want = VFE_MIG_SAVE_CHUNK;
    return vfe_admin_submit(op->m->aq, cmd, (uint32_t)n, want, nv_save_piece_done, op);
}

static void nv_save_piece_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct nv_save_op *op = ctx;
    int err = vfe_mig_nv_errno(status);
    if (err) {
        nv_save_end(op, err);
        return;
    }
    if (len == 0) {
        LOG_W("nvidia SAVE_STATE vf %u: empty piece at %u of %u", op->vf, op->got, op->total);
        nv_save_end(op, -EPROTO);
        return;
    }
    /* the core bounds len by the capacity asked for, which is <= total - got */
    memcpy(op->blob + op->got, res, len);
    op->got += len;
    if (op->got == op->total) {
        nv_save_end(op, 0);
        return;
    }
    err = nv_save_next(op);
    if (err < 0)
        nv_save_end(op, err);
}

static void nv_pending_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct nv_save_op *op = ctx;
    int err = vfe_mig_nv_errno(status);
    if (err) {
        nv_save_end(op, err);
        return;
    }
    if (len != 8) {
        LOG_W("nvidia PENDING_BYTES vf %u: %u result bytes", op->vf, len);
        nv_save_end(op, -EPROTO);
        return;
    }
    uint64_t total = vfe_get_le64(res);
    if (total == 0 || total > VFE_MIG_STATE_MAX) {
        LOG_W("nvidia PENDING_BYTES vf %u: %lu bytes of state", op->vf, (unsigned long)total);
        nv_save_end(op, total ? -EFBIG : -EPROTO);
        return;
    }
    op->total = (uint32_t)total;
    op->blob = malloc(op->total);
    if (!op->blob) {
        nv_save_end(op, -ENOMEM);
        return;
    }
    err = nv_save_next(op);
    if (err < 0)
        nv_save_end(op, err);
}

static int nv_save_state(struct vfe_mig *m, uint16_t vf, struct vfe_dev_state *out, vfe_mig_done_cb cb, void *ctx)
{
    uint8_t cmd[16];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_MIG, VFE_NV_MIG_PENDING_BYTES);
    n += vfe_mig_put_vdev(cmd + n, vf);
    struct nv_save_op *op = vfe_mig_op_new(m, sizeof(*op), nv_save_release);
    if (!op)
        return -ENOMEM;
    *op = (struct nv_save_op){ .m = m, .vf = vf, .out = out, .cb = cb, .ctx = ctx };
    int rc = vfe_admin_submit(m->aq, cmd, (uint32_t)n, 8, nv_pending_done, op);
    if (rc < 0)
        vfe_mig_op_free(op);
    return rc;
}

static int nv_restore_state(struct vfe_mig *m, uint16_t vf, const struct vfe_dev_state *s, vfe_mig_done_cb cb,
                            void *ctx)
{
    uint8_t cmd[VFE_ADMIN_CMD_MAX];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_MIG, VFE_NV_MIG_RESTORE_STATE);
    n += vfe_mig_put_vdev(cmd + n, vf);
    size_t blob;
    int rc = vfe_state_tlv_encode(s, cmd + n, sizeof(cmd) - n, &blob);
    if (rc < 0)
        return rc;
    return vfe_mig_submit_simple(m, cmd, (uint32_t)(n + blob), cb, ctx);
}

static int nv_dirty_start(struct vfe_mig *m, uint16_t vf, const struct vfe_mig_dirty_cfg *c, vfe_mig_done_cb cb,
                          void *ctx)
{
    uint8_t cmd[2 + sizeof(struct vfe_nv_start_track) + VFE_MIG_MAX_SGES * sizeof(struct vfe_nv_sge)];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_DIRTY, VFE_NV_DIRTY_START);
    n += vfe_mig_put_start_track(cmd + n, vf, c);
    return vfe_mig_submit_simple(m, cmd, (uint32_t)n, cb, ctx);
}

static int nv_dirty_stop(struct vfe_mig *m, uint16_t vf, vfe_mig_done_cb cb, void *ctx)
{
    uint8_t cmd[16];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_DIRTY, VFE_NV_DIRTY_STOP);
    n += vfe_mig_put_vdev(cmd + n, vf);
    return vfe_mig_submit_simple(m, cmd, (uint32_t)n, cb, ctx);
}

static int nv_dirty_report(struct vfe_mig *m, uint16_t vf, uint32_t offset, void *buf, uint32_t len,
                           vfe_mig_report_cb cb, void *ctx)
{
    uint8_t cmd[16];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_DIRTY, VFE_NV_DIRTY_REPORT);
    n += vfe_mig_put_report(cmd + n, vf, offset);
    return vfe_mig_submit_report(m, cmd, (uint32_t)n, buf, len, cb, ctx);
}

static int nv_announce(struct vfe_mig *m, uint16_t vf, const uint8_t mac[6], vfe_mig_done_cb cb, void *ctx)
{
    uint8_t cmd[2 + sizeof(struct vfe_nv_announce)];
    size_t n = nv_hdr(cmd, VFE_NV_CLASS_MIG, VFE_NV_MIG_ANNOUNCE);
    vfe_put_le16(cmd + n + offsetof(struct vfe_nv_announce, vdev_id), vf);
    memcpy(cmd + n + offsetof(struct vfe_nv_announce, mac), mac, 6);
    n += sizeof(struct vfe_nv_announce);
    return vfe_mig_submit_simple(m, cmd, (uint32_t)n, cb, ctx);
}

const struct vfe_mig_ops vfe_mig_nvidia_ops = {
    .name = "nvidia",
    .get_state = nv_get_state,
    .set_state = nv_set_state,
    .save_state = nv_save_state,
    .restore_state = nv_restore_state,
    .dirty_start = nv_dirty_start,
    .dirty_stop = nv_dirty_stop,
    .dirty_report = nv_dirty_report,
    .announce = nv_announce,
};
