/* Migration commands in the standard virtio dialect (+ vfe's dirty-report extension). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_mig_priv.h"
#include "drivers/common/virtio_mi/vfe_state_parts.h"
#include "lib/log/vfe_log.h"

#define STD_HDR sizeof(struct vfe_adm_std_cmd)

static int vio_get_state(struct vfe_mig *m, uint16_t vf, vfe_mig_state_cb cb, void *ctx)
{
    return -EOPNOTSUPP;      /* the standard has DEV_MODE_SET but no query */
}

static int vio_set_state(struct vfe_mig *m, uint16_t vf, enum vfe_mig_state st, vfe_mig_done_cb cb, void *ctx)
{
    uint8_t cmd[STD_HDR + sizeof(struct vfe_adm_mode_set)];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_DEV_MODE_SET, vf);
    memset(cmd + n, 0, sizeof(struct vfe_adm_mode_set));
    cmd[n + offsetof(struct vfe_adm_mode_set, flags)] =
        st == VFE_MIG_QUIESCED ? VFE_ADM_MODE_F_STOPPED : st == VFE_MIG_FREEZED ? VFE_ADM_MODE_F_FROZEN : 0;
    n += sizeof(struct vfe_adm_mode_set);
    return vfe_mig_submit_simple(m, cmd, (uint32_t)n, cb, ctx);
}

/* ---- save_state: DEV_PARTS_METADATA_GET for the size, DEV_PARTS_GET all ---- */

struct vio_save_op {
    struct vfe_mig *m;
    uint16_t vf;
    struct vfe_dev_state *out;
    vfe_mig_done_cb cb;
    void *ctx;
};

static void vio_save_end(struct vio_save_op *op, int err)
{
    vfe_mig_done_cb cb = op->cb;
    void *cctx = op->ctx;
    vfe_mig_op_free(op);
    cb(cctx, err);
}

static void vio_parts_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct vio_save_op *op = ctx;
    int err = vfe_mig_std_errno(status);
    if (!err)
        err = vfe_state_parts_decode(res, len, op->out);
    vio_save_end(op, err);
}

static void vio_meta_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct vio_save_op *op = ctx;
    int err = vfe_mig_std_errno(status);
    if (err) {
        vio_save_end(op, err);
        return;
    }
    if (len < sizeof(struct vfe_adm_metadata_res)) {
        LOG_W("virtio DEV_PARTS_METADATA_GET vf %u: %u result bytes", op->vf, len);
        vio_save_end(op, -EPROTO);
        return;
    }
    uint32_t total = vfe_get_le32(res + offsetof(struct vfe_adm_metadata_res, total_size));
    if (total == 0 || total > VFE_ADMIN_RESULT_MAX) {
        LOG_W("virtio DEV_PARTS_METADATA_GET vf %u: parts of %u bytes", op->vf, total);
        vio_save_end(op, total ? -EFBIG : -EPROTO);
        return;
    }
    uint8_t cmd[STD_HDR + sizeof(struct vfe_adm_parts_get)];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_DEV_PARTS_GET, op->vf);
    memset(cmd + n, 0, sizeof(struct vfe_adm_parts_get));   /* type 0: all parts */
    n += sizeof(struct vfe_adm_parts_get);
    err = vfe_admin_submit(op->m->aq, cmd, (uint32_t)n, total, vio_parts_done, op);
    if (err < 0)
        vio_save_end(op, err);
}

static int vio_save_state(struct vfe_mig *m, uint16_t vf, struct vfe_dev_state *out, vfe_mig_done_cb cb, void *ctx)
{
    uint8_t cmd[STD_HDR];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_DEV_PARTS_METADATA_GET, vf);
    struct vio_save_op *op = vfe_mig_op_new(m, sizeof(*op), NULL);
    if (!op)
        return -ENOMEM;
    *op = (struct vio_save_op){ .m = m, .vf = vf, .out = out, .cb = cb, .ctx = ctx };
    int rc = vfe_admin_submit(m->aq, cmd, (uint32_t)n, sizeof(struct vfe_adm_metadata_res), vio_meta_done, op);
    if (rc < 0)
        vfe_mig_op_free(op);
    return rc;
}

static int vio_restore_state(struct vfe_mig *m, uint16_t vf, const struct vfe_dev_state *s, vfe_mig_done_cb cb,
                             void *ctx)
{
    uint8_t cmd[VFE_ADMIN_CMD_MAX];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_DEV_PARTS_SET, vf);
    size_t parts;
    int rc = vfe_state_parts_encode(s, cmd + n, sizeof(cmd) - n, &parts);
    if (rc < 0)
        return rc;
    return vfe_mig_submit_simple(m, cmd, (uint32_t)(n + parts), cb, ctx);
}

static int vio_dirty_start(struct vfe_mig *m, uint16_t vf, const struct vfe_mig_dirty_cfg *c, vfe_mig_done_cb cb,
                           void *ctx)
{
    if (!m->virtio_dirty)
        return -EOPNOTSUPP;
    uint8_t cmd[STD_HDR + sizeof(struct vfe_nv_start_track) + VFE_MIG_MAX_SGES * sizeof(struct vfe_nv_sge)];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_DIRTY_START, vf);
    n += vfe_mig_put_start_track(cmd + n, vf, c);
    return vfe_mig_submit_simple(m, cmd, (uint32_t)n, cb, ctx);
}

static int vio_dirty_stop(struct vfe_mig *m, uint16_t vf, vfe_mig_done_cb cb, void *ctx)
{
    if (!m->virtio_dirty)
        return -EOPNOTSUPP;
    uint8_t cmd[STD_HDR + sizeof(struct vfe_nv_vdev)];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_DIRTY_STOP, vf);
    n += vfe_mig_put_vdev(cmd + n, vf);
    return vfe_mig_submit_simple(m, cmd, (uint32_t)n, cb, ctx);
}

static int vio_dirty_report(struct vfe_mig *m, uint16_t vf, uint32_t offset, void *buf, uint32_t len,
                            vfe_mig_report_cb cb, void *ctx)
{
    if (!m->virtio_dirty)
        return -EOPNOTSUPP;
    uint8_t cmd[STD_HDR + sizeof(struct vfe_nv_report)];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_DIRTY_REPORT, vf);
    n += vfe_mig_put_report(cmd + n, vf, offset);
    return vfe_mig_submit_report(m, cmd, (uint32_t)n, buf, len, cb, ctx);
}

const struct vfe_mig_ops vfe_mig_virtio_ops = {
    .name = "virtio",
    .get_state = vio_get_state,
    .set_state = vio_set_state,
    .save_state = vio_save_state,
    .restore_state = vio_restore_state,
    .dirty_start = vio_dirty_start,
    .dirty_stop = vio_dirty_stop,
    .dirty_report = vio_dirty_report,
    .announce = NULL,   /* no standard command sends a frame for a VF */
};
