/* Migration interface: dialect dispatch and helpers both dialects use. */
#include "drivers/common/virtio_mi/vfe_mig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_mig_priv.h"
#include "lib/log/vfe_log.h"

int vfe_mig_init(struct vfe_mig *m, struct vfe_admin_vq *aq, enum vfe_mig_dialect d)
{
    if (!m || !aq)
        return -EINVAL;
    const struct vfe_mig_ops *ops;
    switch (d) {
    case VFE_MIG_DIALECT_NVIDIA: ops = &vfe_mig_nvidia_ops; break;
    case VFE_MIG_DIALECT_VIRTIO: ops = &vfe_mig_virtio_ops; break;
    default: return -EINVAL;
    }
    memset(m, 0, sizeof(*m));   /* nothing is in flight yet (a probe frees its op first) */
    m->aq = aq;
    m->dialect = d;
    m->ops = ops;
    return 0;
}

const char *vfe_mig_dialect_name(enum vfe_mig_dialect d)
{
    switch (d) {
    case VFE_MIG_DIALECT_NVIDIA: return "nvidia";
    case VFE_MIG_DIALECT_VIRTIO: return "virtio";
    default: return "none";
    }
}

int vfe_mig_nv_errno(int status)
{
    if (status <= 0)
        return status;
    switch (status & ~VFE_NV_ST_NO_RETRY) {
    case VFE_NV_ST_OK: return 0;
    case VFE_NV_ST_EINVAL: return -EINVAL;
    case VFE_NV_ST_ENODEV: return -ENODEV;
    case VFE_NV_ST_EBUSY: return -EBUSY;
    case VFE_NV_ST_ENOSPC: return -ENOSPC;
    case VFE_NV_ST_EUNSUPP: return -EOPNOTSUPP;
    default: return -EIO;
    }
}

int vfe_mig_std_errno(int status)
{
    if (status <= 0)
        return status;
    unsigned st = (unsigned)status & 0xffff, q = (unsigned)status >> 16;
    if (st == VFE_ADM_ST_OK)
        return 0;
    if (q == VFE_ADM_SQ_INVALID_MEMBER || q == VFE_ADM_SQ_INVALID_GROUP)
        return -ENODEV;
    if (q == VFE_ADM_SQ_INVALID_OPCODE)
        return -EOPNOTSUPP;
    switch (st) {
    case VFE_ADM_ST_EAGAIN: return -EAGAIN;
    case VFE_ADM_ST_ENOMEM: return -ENOMEM;
    case VFE_ADM_ST_EINVAL: return -EINVAL;
    default: return -EIO;
    }
}

int vfe_mig_status_errno(const struct vfe_mig *m, int status)
{
    return m->dialect == VFE_MIG_DIALECT_NVIDIA ? vfe_mig_nv_errno(status) : vfe_mig_std_errno(status);
}

size_t vfe_mig_std_hdr(uint8_t *p, uint16_t opcode, uint64_t member)
{
    memset(p, 0, sizeof(struct vfe_adm_std_cmd));
    vfe_put_le16(p + offsetof(struct vfe_adm_std_cmd, opcode), opcode);
    vfe_put_le16(p + offsetof(struct vfe_adm_std_cmd, group_type), VFE_ADM_GROUP_SRIOV);
    vfe_put_le64(p + offsetof(struct vfe_adm_std_cmd, group_member_id), member);
    return sizeof(struct vfe_adm_std_cmd);
}

int vfe_mig_dirty_cfg_check(const struct vfe_mig_dirty_cfg *c)
{
    if (!c)
        return -EINVAL;
    bool push = c->mode == VFE_MIG_TRACK_PUSH_BITMAP || c->mode == VFE_MIG_TRACK_PUSH_BYTEMAP;
    bool pull = c->mode == VFE_MIG_TRACK_PULL_BITMAP || c->mode == VFE_MIG_TRACK_PULL_BYTEMAP;
    if (!push && !pull)
        return -EINVAL;
    if (push ? (c->nsges == 0 || c->nsges > VFE_MIG_MAX_SGES) : c->nsges != 0)
        return -EINVAL;
    if (c->page_size < 4096 || (c->page_size & (c->page_size - 1)))
        return -EINVAL;
    if (c->range_len == 0 || c->range_addr + c->range_len < c->range_addr)
        return -EINVAL;
    for (unsigned i = 0; i < c->nsges; i++)
        if (c->sges[i].len == 0 || c->sges[i].addr + c->sges[i].len < c->sges[i].addr)
            return -EINVAL;
    return 0;
}

size_t vfe_mig_put_vdev(uint8_t *p, uint16_t vf)
{
    memset(p, 0, sizeof(struct vfe_nv_vdev));
    vfe_put_le16(p + offsetof(struct vfe_nv_vdev, vdev_id), vf);
    return sizeof(struct vfe_nv_vdev);
}

size_t vfe_mig_put_report(uint8_t *p, uint16_t vf, uint32_t offset)
{
    memset(p, 0, sizeof(struct vfe_nv_report));
    vfe_put_le16(p + offsetof(struct vfe_nv_report, vdev_id), vf);
    vfe_put_le32(p + offsetof(struct vfe_nv_report, offset), offset);
    return sizeof(struct vfe_nv_report);
}

size_t vfe_mig_put_start_track(uint8_t *p, uint16_t vf, const struct vfe_mig_dirty_cfg *c)
{
    size_t n = sizeof(struct vfe_nv_start_track);
    memset(p, 0, n + c->nsges * sizeof(struct vfe_nv_sge));
    vfe_put_le16(p + offsetof(struct vfe_nv_start_track, vdev_id), vf);
    p[offsetof(struct vfe_nv_start_track, track_mode)] = (uint8_t)c->mode;
    p[offsetof(struct vfe_nv_start_track, num_sges)] = (uint8_t)c->nsges;
    vfe_put_le32(p + offsetof(struct vfe_nv_start_track, vdev_host_page_size), c->page_size);
    vfe_put_le64(p + offsetof(struct vfe_nv_start_track, range_addr), c->range_addr);
    vfe_put_le64(p + offsetof(struct vfe_nv_start_track, range_length), c->range_len);
    for (unsigned i = 0; i < c->nsges; i++, n += sizeof(struct vfe_nv_sge)) {
        vfe_put_le64(p + n + offsetof(struct vfe_nv_sge, addr), c->sges[i].addr);
        vfe_put_le32(p + n + offsetof(struct vfe_nv_sge, len), c->sges[i].len);
    }
    return n;
}

struct simple_op {
    struct vfe_mig *m;
    vfe_mig_done_cb cb;
    void *ctx;
};

struct vfe_mig_op {
    struct vfe_mig_op *next, *prev;
    struct vfe_mig *m;
    void (*release)(void *op);
    max_align_t body[];
};

void *vfe_mig_op_new(struct vfe_mig *m, size_t size, void (*release)(void *op))
{
    struct vfe_mig_op *o = calloc(1, sizeof(*o) + size);
    if (!o)
        return NULL;
    o->m = m;
    o->release = release;
    o->next = m->live;
    if (m->live)
        m->live->prev = o;
    m->live = o;
    return o->body;
}

void vfe_mig_op_free(void *op)
{
    if (!op)
        return;
    struct vfe_mig_op *o = (struct vfe_mig_op *)((char *)op - offsetof(struct vfe_mig_op, body));
    if (o->prev)
        o->prev->next = o->next;
    else
        o->m->live = o->next;
    if (o->next)
        o->next->prev = o->prev;
    free(o);
}

void vfe_mig_abandon(struct vfe_mig *m)
{
    while (m->live) {
        struct vfe_mig_op *o = m->live;
        if (o->release)
            o->release(o->body);
        vfe_mig_op_free(o->body);
    }
}

static void simple_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct simple_op *op = ctx;
    int err = vfe_mig_status_errno(op->m, status);
    vfe_mig_done_cb cb = op->cb;
    void *cctx = op->ctx;
    vfe_mig_op_free(op);
    cb(cctx, err);
}

int vfe_mig_submit_simple(struct vfe_mig *m, const uint8_t *cmd, uint32_t len, vfe_mig_done_cb cb, void *ctx)
{
    struct simple_op *op = vfe_mig_op_new(m, sizeof(*op), NULL);
    if (!op)
        return -ENOMEM;
    *op = (struct simple_op){ .m = m, .cb = cb, .ctx = ctx };
    int rc = vfe_admin_submit(m->aq, cmd, len, 0, simple_done, op);
    if (rc < 0)
        vfe_mig_op_free(op);
    return rc;
}

struct report_op {
    struct vfe_mig *m;
    vfe_mig_report_cb cb;
    void *ctx;
    uint8_t *buf;
    uint32_t len;
};

static void report_done(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct report_op *op = ctx;
    int err = vfe_mig_status_errno(op->m, status);
    uint32_t n = 0;
    if (!err) {
        n = len < op->len ? len : op->len;
        if (n)
            memcpy(op->buf, res, n);
    }
    vfe_mig_report_cb cb = op->cb;
    void *cctx = op->ctx;
    vfe_mig_op_free(op);
    cb(cctx, err, n);
}

int vfe_mig_submit_report(struct vfe_mig *m, const uint8_t *cmd, uint32_t cmd_len, void *buf, uint32_t len,
                          vfe_mig_report_cb cb, void *ctx)
{
    struct report_op *op = vfe_mig_op_new(m, sizeof(*op), NULL);
    if (!op)
        return -ENOMEM;
    *op = (struct report_op){ .m = m, .cb = cb, .ctx = ctx, .buf = buf, .len = len };
    int rc = vfe_admin_submit(m->aq, cmd, cmd_len, len, report_done, op);
    if (rc < 0)
        vfe_mig_op_free(op);
    return rc;
}

/* ---- public entry points: argument checks, then the dialect ---- */

static bool ready(const struct vfe_mig *m, uint16_t vf, const void *cb)
{
    return m && m->ops && cb && vf != 0;
}

int vfe_mig_get_state(struct vfe_mig *m, uint16_t vf, vfe_mig_state_cb cb, void *ctx)
{
    if (!ready(m, vf, cb))
        return -EINVAL;
    return m->ops->get_state(m, vf, cb, ctx);
}

int vfe_mig_set_state(struct vfe_mig *m, uint16_t vf, enum vfe_mig_state st, vfe_mig_done_cb cb, void *ctx)
{
    if (!ready(m, vf, cb) || (st != VFE_MIG_RUNNING && st != VFE_MIG_QUIESCED && st != VFE_MIG_FREEZED))
        return -EINVAL;
    return m->ops->set_state(m, vf, st, cb, ctx);
}

int vfe_mig_save_state(struct vfe_mig *m, uint16_t vf, struct vfe_dev_state *out, vfe_mig_done_cb cb, void *ctx)
{
    if (!ready(m, vf, cb) || !out)
        return -EINVAL;
    return m->ops->save_state(m, vf, out, cb, ctx);
}

int vfe_mig_restore_state(struct vfe_mig *m, uint16_t vf, const struct vfe_dev_state *s, vfe_mig_done_cb cb,
                          void *ctx)
{
    if (!ready(m, vf, cb) || !s)
        return -EINVAL;
    return m->ops->restore_state(m, vf, s, cb, ctx);
}

int vfe_mig_dirty_start(struct vfe_mig *m, uint16_t vf, const struct vfe_mig_dirty_cfg *c, vfe_mig_done_cb cb,
                        void *ctx)
{
    if (!ready(m, vf, cb) || vfe_mig_dirty_cfg_check(c) < 0)
        return -EINVAL;
    return m->ops->dirty_start(m, vf, c, cb, ctx);
}

int vfe_mig_dirty_stop(struct vfe_mig *m, uint16_t vf, vfe_mig_done_cb cb, void *ctx)
{
    if (!ready(m, vf, cb))
        return -EINVAL;
    return m->ops->dirty_stop(m, vf, cb, ctx);
}

int vfe_mig_dirty_report(struct vfe_mig *m, uint16_t vf, uint32_t offset, void *buf, uint32_t len,
                         vfe_mig_report_cb cb, void *ctx)
{
    if (!ready(m, vf, cb) || !buf || len == 0)
        return -EINVAL;
    if (len > VFE_ADMIN_RESULT_MAX)
        return -E2BIG;
    return m->ops->dirty_report(m, vf, offset, buf, len, cb, ctx);
}

bool vfe_mig_mac_valid(const uint8_t mac[6])
{
    static const uint8_t zero[6];
    return mac && !(mac[0] & 1) && memcmp(mac, zero, 6) != 0;
}

int vfe_mig_announce(struct vfe_mig *m, uint16_t vf, const uint8_t mac[6], vfe_mig_done_cb cb, void *ctx)
{
    if (!ready(m, vf, cb) || !vfe_mig_mac_valid(mac))
        return -EINVAL;
    if (!m->ops->announce)
        return -EOPNOTSUPP;
    return m->ops->announce(m, vf, mac, cb, ctx);
}
