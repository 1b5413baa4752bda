/* virtio (standard) admin dialect, SR-IOV group: LIST_QUERY/LIST_USE,
 * DEV_PARTS_*, DEV_MODE_SET, plus vfe's dirty-tracking opcodes 0x30..0x32.
 * Result: struct sim_adm_cmd_status then the result bytes; used length =
 * 8 + result bytes.
 *
 * LIST_USE is optional: until the driver sends it every supported opcode
 * may be used; once accepted, only the opcodes it listed (LIST_QUERY and
 * LIST_USE always). */
#include <endian.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lib/log/vfe_log.h"
#include "sim/admin/admin_priv.h"

#define WHY(r, ...) snprintf((r)->why, sizeof((r)->why), __VA_ARGS__)
#define OP(n) (1ull << (n))

static const uint64_t SUPPORTED =
    OP(SIM_ADM_LIST_QUERY) | OP(SIM_ADM_LIST_USE) | OP(SIM_ADM_DEV_PARTS_METADATA_GET) |
    OP(SIM_ADM_DEV_PARTS_GET) | OP(SIM_ADM_DEV_PARTS_SET) | OP(SIM_ADM_DEV_MODE_SET) |
    OP(SIM_ADM_DIRTY_START) | OP(SIM_ADM_DIRTY_STOP) | OP(SIM_ADM_DIRTY_REPORT);
static const uint64_t ALWAYS = OP(SIM_ADM_LIST_QUERY) | OP(SIM_ADM_LIST_USE);
static const uint64_t DIRTY_OPS = OP(SIM_ADM_DIRTY_START) | OP(SIM_ADM_DIRTY_STOP) | OP(SIM_ADM_DIRTY_REPORT);

struct std_cmd {
    struct adm_priv *p;
    struct adm_req r;
    uint16_t op;
    uint16_t qual;          /* overrides the default qualifier of an error */
};

static void std_status(enum adm_err e, uint16_t qual, uint16_t *st, uint16_t *sq)
{
    static const struct { uint16_t st, sq; } map[] = {
        [ADM_OK] = { SIM_ADM_STATUS_OK, SIM_ADM_Q_OK },
        [ADM_EINVAL] = { SIM_ADM_STATUS_EINVAL, SIM_ADM_Q_INVALID_FIELD },
        [ADM_ENODEV] = { SIM_ADM_STATUS_EINVAL, SIM_ADM_Q_INVALID_MEMBER },
        [ADM_EBUSY] = { SIM_ADM_STATUS_EINVAL, SIM_ADM_Q_INVALID_COMMAND },
        [ADM_ENOSPC] = { SIM_ADM_STATUS_ENOMEM, SIM_ADM_Q_NORESOURCE },
        [ADM_EUNSUPP] = { SIM_ADM_STATUS_EINVAL, SIM_ADM_Q_INVALID_OPCODE },
    };
    *st = map[e].st;
    *sq = e != ADM_OK && qual ? qual : map[e].sq;
}

static enum adm_err put_bytes(struct adm_req *r, const void *v, size_t n)
{
    if (r->res_cap < n) {
        WHY(r, "result needs %zu bytes, %zu writable", n, r->res_cap);
        return ADM_ENOSPC;
    }
    memcpy(r->res, v, n);
    r->res_len = n;
    return ADM_OK;
}

/* The opcodes this PF lists: without any dirty-tracking mode (--dirty-tracking
 * none) the extension is not there at all. */
static uint64_t supported(const struct adm_priv *p)
{
    return sim_adm_dirty_modes(p->pf->sim) ? SUPPORTED : SUPPORTED & ~DIRTY_OPS;
}

static enum adm_err list_use(struct std_cmd *c)
{
    struct adm_req *r = &c->r;
    uint64_t want;
    if (r->data_len < 8 || r->data_len % 8) {
        WHY(r, "LIST_USE data of %zu bytes", r->data_len);
        return ADM_EINVAL;
    }
    memcpy(&want, r->data, 8);
    want = le64toh(want);
    bool extra = false;
    for (size_t i = 8; i < r->data_len; i++)
        extra |= r->data[i] != 0;
    if ((want & ~supported(c->p)) || extra) {
        WHY(r, "LIST_USE asks for unsupported opcodes (0x%llx)", (unsigned long long)want);
        return ADM_EINVAL;
    }
    c->p->in_use = want | ALWAYS;
    c->p->list_used = true;
    LOG_I("%s: admin opcodes in use 0x%llx", c->p->pf->bdf, (unsigned long long)c->p->in_use);
    return ADM_OK;
}

static bool parts_access(struct adm_req *r, const struct sim_fn *vf)
{
    if (vf->stopped || vf->mig_state == SIM_MIG_QUIESCED || vf->mig_state == SIM_MIG_FREEZED)
        return true;
    WHY(r, "vf %s is neither stopped nor frozen", vf->bdf);
    return false;
}

static uint32_t parts_filter(const struct adm_req *r)
{
    struct sim_adm_parts_get g;
    if (r->data_len < sizeof(g))
        return 0;
    memcpy(&g, r->data, sizeof(g));
    return le32toh(g.type);
}

static enum adm_err parts_get(struct adm_req *r, struct sim_fn *vf, bool meta)
{
    uint32_t filter = parts_filter(r);
    unsigned count = 0;
    size_t total = sim_adm_state_encode(vf, ADM_FMT_PARTS, filter, r->res, ADM_STATE_MAX, &count);
    if (total == ADM_ENCODE_OVERFLOW) {
        WHY(r, "parts do not fit %u bytes", ADM_STATE_MAX);
        return ADM_ENOSPC;
    }
    if (meta) {
        struct sim_adm_parts_metadata m = { htole32((uint32_t)total), htole32(count) };
        return put_bytes(r, &m, sizeof(m));
    }
    if (total > r->res_cap) {
        WHY(r, "parts need %zu bytes, %zu writable", total, r->res_cap);
        return ADM_ENOSPC;
    }
    r->res_len = total;
    return ADM_OK;
}

static enum adm_err parts_set(struct adm_req *r, struct sim_fn *vf)
{
    struct adm_state st;
    enum adm_err e = sim_adm_state_parse(vf, ADM_FMT_PARTS, r->data, r->data_len, &st, r->why, sizeof(r->why));
    if (e)
        return e;
    sim_adm_state_apply(vf, &st);
    return ADM_OK;
}

static enum adm_err member_cmd(struct std_cmd *c, struct sim_fn *vf)
{
    struct adm_req *r = &c->r;
    struct sim_nv_report rep;

    switch (c->op) {
    case SIM_ADM_DEV_PARTS_METADATA_GET:
        return parts_get(r, vf, true);
    case SIM_ADM_DEV_PARTS_GET:
        if (!parts_access(r, vf))
            return ADM_EBUSY;
        return parts_get(r, vf, false);
    case SIM_ADM_DEV_PARTS_SET:
        if (!parts_access(r, vf))
            return ADM_EBUSY;
        return parts_set(r, vf);
    case SIM_ADM_DEV_MODE_SET:
        if (r->data_len < 1) {
            WHY(r, "DEV_MODE_SET without flags");
            return ADM_EINVAL;
        }
        return sim_adm_mode_set(vf, r->data[0], r->why, sizeof(r->why));
    case SIM_ADM_DIRTY_START:   /* the member id names the VF, not the payload's vdev_id */
        return sim_adm_dirty_start(r->pf, vf, r->data, r->data_len, r->why, sizeof(r->why));
    case SIM_ADM_DIRTY_STOP:
        sim_adm_dirty_stop(vf);
        return ADM_OK;
    case SIM_ADM_DIRTY_REPORT:
        if (r->data_len < sizeof(rep)) {
            WHY(r, "dirty report data of %zu bytes", r->data_len);
            return ADM_EINVAL;
        }
        memcpy(&rep, r->data, sizeof(rep));
        return sim_adm_dirty_report(vf, le32toh(rep.offset), r);
    }
    WHY(r, "opcode 0x%x", c->op);
    return ADM_EUNSUPP;
}

static enum adm_err dispatch(struct std_cmd *c, const struct sim_adm_cmd_hdr *h)
{
    struct adm_req *r = &c->r;
    uint16_t group = le16toh(h->group_type);
    uint64_t member = le64toh(h->group_member_id);

    if (c->op >= 64 || !(supported(c->p) & OP(c->op))) {
        WHY(r, "unknown opcode 0x%x", c->op);
        return ADM_EUNSUPP;
    }
    if (group != SIM_ADM_GROUP_SRIOV) {
        WHY(r, "group type %u, only SR-IOV (1)", group);
        c->qual = SIM_ADM_Q_INVALID_GROUP;
        return ADM_EINVAL;
    }
    if (c->op == SIM_ADM_LIST_QUERY) {
        uint64_t bm = htole64(supported(c->p));
        return put_bytes(r, &bm, sizeof(bm));
    }
    if (c->op == SIM_ADM_LIST_USE)
        return list_use(c);
    if (c->p->list_used && !(c->p->in_use & OP(c->op))) {
        WHY(r, "opcode 0x%x not in the LIST_USE set", c->op);
        return ADM_EUNSUPP;
    }
    struct sim_fn *vf = member <= UINT_MAX ? sim_pf_vf(r->pf, (unsigned)member) : NULL;
    if (!vf) {
        WHY(r, "no member %llu", (unsigned long long)member);
        return ADM_ENODEV;
    }
    return member_cmd(c, vf);
}

uint32_t sim_adm_std_serve(struct adm_priv *p, const struct vq_elem *e, size_t len, bool too_long, int injected)
{
    struct sim_fn *pf = p->pf;
    const size_t hlen = sizeof(struct sim_adm_cmd_hdr), rlen = sizeof(struct sim_adm_cmd_status);
    uint64_t room = e->in_len;
    struct sim_adm_cmd_hdr h = { 0 };
    uint16_t st, sq;

    memcpy(&h, p->cmd, len < hlen ? len : hlen);
    struct std_cmd c = { .p = p, .op = le16toh(h.opcode) };
    if (room < rlen) {
        LOG_W("%s: admin opcode 0x%x: writable area of %llu bytes, completed empty", pf->bdf, c.op,
              (unsigned long long)room);
        return 0;
    }
    c.r = (struct adm_req){
        .pf = pf, .data = p->cmd + hlen, .data_len = len > hlen ? len - hlen : 0, .res = p->res,
        .res_cap = room - rlen < SIM_ADM_MAX_RESULT ? (size_t)(room - rlen) : SIM_ADM_MAX_RESULT,
    };
    if (injected) {
        bool known = injected == SIM_ADM_STATUS_EAGAIN || injected == SIM_ADM_STATUS_ENOMEM ||
                     injected == SIM_ADM_STATUS_EINVAL;
        st = known ? (uint16_t)injected : SIM_ADM_STATUS_EAGAIN;
        sq = SIM_ADM_Q_OK;
        WHY(&c.r, "injected failure");
    } else {
        enum adm_err err;
        if (too_long || len < hlen) {
            if (too_long)
                WHY(&c.r, "command longer than %u bytes", SIM_ADM_MAX_CMD);
            else
                WHY(&c.r, "command shorter than its header");
            err = ADM_EINVAL;
            c.qual = SIM_ADM_Q_INVALID_COMMAND;
        } else if (!sim_adm_dialect_enabled(pf, false)) {
            WHY(&c.r, "virtio dialect disabled");
            err = ADM_EUNSUPP;
        } else {
            err = dispatch(&c, &h);
        }
        std_status(err, c.qual, &st, &sq);
    }
    if (st != SIM_ADM_STATUS_OK) {
        c.r.res_len = 0;
        LOG_W("%s: admin opcode 0x%x refused (status %u, qualifier %u): %s", pf->bdf, c.op, st, sq,
              c.r.why[0] ? c.r.why : "-");
    }
    if (c.r.res_len && sim_vq_scatter(pf, e, rlen, c.r.res, c.r.res_len) != (long)c.r.res_len)
        return 0;
    struct sim_adm_cmd_status res = { .status = htole16(st), .status_qualifier = htole16(sq) };
    if (sim_vq_scatter(pf, e, 0, &res, rlen) != (long)rlen)
        return 0;
    return (uint32_t)(rlen + c.r.res_len);
}
