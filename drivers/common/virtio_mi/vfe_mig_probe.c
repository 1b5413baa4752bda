/* Which admin dialect does the PF speak?  nvidia IDENTITY first, then the
 * standard LIST_QUERY / LIST_USE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_mig_priv.h"
#include "lib/log/vfe_log.h"

#define IDENTITY_RESULT_CAP 64   /* room for whatever either dialect writes back */
#define LIST_WORDS 4             /* opcodes 0..255 */

static const uint8_t required_ops[] = {
    VFE_ADM_LIST_QUERY, VFE_ADM_LIST_USE, VFE_ADM_DEV_PARTS_METADATA_GET,
    VFE_ADM_DEV_PARTS_GET, VFE_ADM_DEV_PARTS_SET, VFE_ADM_DEV_MODE_SET,
};
static const uint8_t dirty_ops[] = { VFE_ADM_DIRTY_START, VFE_ADM_DIRTY_STOP, VFE_ADM_DIRTY_REPORT };

struct probe_op {
    struct vfe_mig *m;
    struct vfe_admin_vq *aq;
    vfe_mig_done_cb cb;
    void *ctx;
    bool dirty;
};

static void probe_end(struct probe_op *op, int err, enum vfe_mig_dialect d)
{
    struct probe_op o = *op;
    vfe_mig_op_free(op);   /* before init: init starts with no operation in flight */
    if (!err) {
        vfe_mig_init(o.m, o.aq, d);
        o.m->virtio_dirty = o.dirty;
        LOG_I("admin vq: PF speaks the %s dialect%s", vfe_mig_dialect_name(d),
              d == VFE_MIG_DIALECT_VIRTIO ? (o.dirty ? " with dirty reports" : " without dirty reports") : "");
    }
    o.cb(o.ctx, err);
}

/* A queue that does not answer at all is not a dialect mismatch. */
static bool transport_failure(int status)
{
    return status == -ETIMEDOUT || status == -ECANCELED;
}

static bool has_op(const uint64_t *words, unsigned nwords, uint8_t opcode)
{
    return opcode / 64u < nwords && (words[opcode / 64u] >> (opcode % 64u) & 1);
}

static void use_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct probe_op *op = ctx;
    if (status != 0) {
        LOG_W("admin vq: LIST_USE refused (status 0x%x)", status);
        probe_end(op, transport_failure(status) ? status : -ENOTSUP, VFE_MIG_DIALECT_NONE);
        return;
    }
    probe_end(op, 0, VFE_MIG_DIALECT_VIRTIO);
}

static void list_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct probe_op *op = ctx;
    if (status != 0 || len < 8) {
        LOG_I("admin vq: LIST_QUERY failed (status 0x%x, %u bytes)", status, len);
        probe_end(op, transport_failure(status) ? status : -ENOTSUP, VFE_MIG_DIALECT_NONE);
        return;
    }
    uint64_t words[LIST_WORDS] = { 0 };
    unsigned nwords = len / 8 < LIST_WORDS ? len / 8 : LIST_WORDS;
    for (unsigned i = 0; i < nwords; i++)
        words[i] = vfe_get_le64(res + 8 * i);
    uint64_t use = 0;
    for (size_t i = 0; i < sizeof(required_ops); i++) {
        if (!has_op(words, nwords, required_ops[i])) {
            LOG_W("admin vq: device lacks admin opcode 0x%x", required_ops[i]);
            probe_end(op, -ENOTSUP, VFE_MIG_DIALECT_NONE);
            return;
        }
        use |= 1ull << required_ops[i];
    }
    op->dirty = true;
    for (size_t i = 0; i < sizeof(dirty_ops); i++)
        op->dirty = op->dirty && has_op(words, nwords, dirty_ops[i]);
    if (op->dirty)
        for (size_t i = 0; i < sizeof(dirty_ops); i++)
            use |= 1ull << dirty_ops[i];

    uint8_t cmd[sizeof(struct vfe_adm_std_cmd) + 8];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_LIST_USE, 0);
    vfe_put_le64(cmd + n, use);
    int rc = vfe_admin_submit(op->aq, cmd, (uint32_t)(n + 8), 0, use_done, op);
    if (rc < 0)
        probe_end(op, rc, VFE_MIG_DIALECT_NONE);
}

static void identity_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct probe_op *op = ctx;
    if (status == VFE_NV_ST_OK) {
        probe_end(op, 0, VFE_MIG_DIALECT_NVIDIA);
        return;
    }
    if (transport_failure(status)) {
        probe_end(op, status, VFE_MIG_DIALECT_NONE);
        return;
    }
    LOG_D("admin vq: nvidia IDENTITY not understood (status 0x%x), trying LIST_QUERY", status);
    uint8_t cmd[sizeof(struct vfe_adm_std_cmd)];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_LIST_QUERY, 0);
    int rc = vfe_admin_submit(op->aq, cmd, (uint32_t)n, LIST_WORDS * 8, list_done, op);
    if (rc < 0)
        probe_end(op, rc, VFE_MIG_DIALECT_NONE);
}

int vfe_mig_probe(struct vfe_mig *m, struct vfe_admin_vq *aq, vfe_mig_done_cb cb, void *ctx)
{
    if (!m || !aq || !cb)
        return -EINVAL;
    struct probe_op *op = vfe_mig_op_new(m, sizeof(*op), NULL);
    if (!op)
        return -ENOMEM;
    *op = (struct probe_op){ .m = m, .aq = aq, .cb = cb, .ctx = ctx };
    uint8_t cmd[2] = { VFE_NV_CLASS_MIG, VFE_NV_MIG_IDENTITY };
    int rc = vfe_admin_submit(aq, cmd, sizeof(cmd), IDENTITY_RESULT_CAP, identity_done, op);
    if (rc < 0)
        vfe_mig_op_free(op);
    return rc;
}

struct probe_sync {
    bool done;
    int err;
};

static void probe_sync_cb(void *ctx, int err)
{
    struct probe_sync *s = ctx;
    s->err = err;
    s->done = true;
}

int vfe_mig_probe_sync(struct vfe_mig *m, struct vfe_admin_vq *aq)
{
    struct probe_sync s = { 0 };
    int rc = vfe_mig_probe(m, aq, probe_sync_cb, &s);
    if (rc < 0)
        return rc;
    vfe_admin_wait(aq, &s.done);
    return s.err;
}
