/* nvidia pre-standard admin dialect: class 64 migration, class 65 dirty
 * pages.  Result bytes go to the start of the writable area, the status
 * byte to its last byte; used length = result bytes + 1. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log/vfe_log.h"
#include "sim/admin/admin_priv.h"

#define WHY(r, ...) snprintf((r)->why, sizeof((r)->why), __VA_ARGS__)

static uint8_t nv_status(enum adm_err e)
{
    switch (e) {
    case ADM_OK: return SIM_NV_ST_OK;
    case ADM_EINVAL: return SIM_NV_ST_EINVAL | SIM_NV_ST_NO_RETRY;
    case ADM_ENODEV: return SIM_NV_ST_ENODEV | SIM_NV_ST_NO_RETRY;
    case ADM_EBUSY: return SIM_NV_ST_EBUSY;
    case ADM_ENOSPC: return SIM_NV_ST_ENOSPC | SIM_NV_ST_NO_RETRY;
    case ADM_EUNSUPP: return SIM_NV_ST_EUNSUPP | SIM_NV_ST_NO_RETRY;
    }
    return SIM_NV_ST_FAULT;
}

/* Copy the fixed part of the command data, or refuse a short command. */
static bool take(struct adm_req *r, void *out, size_t n)
{
    if (r->data_len < n) {
        WHY(r, "%zu bytes of data, %zu needed", r->data_len, n);
        return false;
    }
    memcpy(out, r->data, n);
    return true;
}

static struct sim_fn *vdev(struct adm_req *r, uint16_t id)
{
    struct sim_fn *vf = sim_pf_vf(r->pf, le16toh(id));
    if (!vf)
        WHY(r, "no vdev %u", le16toh(id));
    return vf;
}

static bool state_saveable(struct adm_req *r, const struct sim_fn *vf)
{
    if (vf->mig_state == SIM_MIG_QUIESCED || vf->mig_state == SIM_MIG_FREEZED)
        return true;
    WHY(r, "vf %s is %s, not QUIESCED or FREEZED", vf->bdf, sim_adm_mig_name(vf->mig_state));
    return false;
}

static enum adm_err put_le64(struct adm_req *r, uint64_t v)
{
    if (r->res_cap < 8) {
        WHY(r, "no room for the result");
        return ADM_ENOSPC;
    }
    v = htole64(v);
    memcpy(r->res, &v, 8);
    r->res_len = 8;
    return ADM_OK;
}

static enum adm_err save_state(struct adm_req *r, struct sim_fn *vf, uint32_t offset, bool size_only)
{
    /* Encoded in the result buffer, then the requested window moved to its start. */
    size_t total = sim_adm_state_encode(vf, ADM_FMT_TLV, 0, r->res, ADM_STATE_MAX, NULL);
    if (total == ADM_ENCODE_OVERFLOW) {
        WHY(r, "state does not fit %u bytes", ADM_STATE_MAX);
        return ADM_ENOSPC;
    }
    if (size_only) {
        r->res_len = 0;
        return put_le64(r, total);
    }
    if (offset > total) {
        WHY(r, "offset %u beyond the %zu-byte state", offset, total);
        return ADM_EINVAL;
    }
    size_t n = total - offset;
    if (n > r->res_cap)
        n = r->res_cap;
    if (n == 0 && offset < total) {
        WHY(r, "no room for the result");
        return ADM_ENOSPC;
    }
    memmove(r->res, r->res + offset, n);
    r->res_len = n;
    return ADM_OK;
}

static enum adm_err restore_state(struct adm_req *r, struct sim_fn *vf)
{
    struct adm_state st;
    if (vf->mig_state == SIM_MIG_RUNNING) {
        WHY(r, "vf %s is RUNNING", vf->bdf);
        return ADM_EBUSY;
    }
    const size_t hdr = sizeof(struct sim_nv_vdev);
    enum adm_err e = sim_adm_state_parse(vf, ADM_FMT_TLV, r->data + hdr, r->data_len - hdr, &st,
                                         r->why, sizeof(r->why));
    if (e)
        return e;
    sim_adm_state_apply(vf, &st);
    return ADM_OK;
}

/* The VF announces a MAC into the switch: only while it runs, as a device
 * transmits only then. */
static enum adm_err announce(struct adm_req *r, struct sim_fn *vf, const uint8_t mac[6])
{
    int rc = sim_net_announce(vf, mac);
    if (rc == -EBUSY) {
        WHY(r, "vf %s does not run (%s)", vf->bdf, sim_adm_mig_name(vf->mig_state));
        return ADM_EBUSY;
    }
    if (rc < 0) {
        WHY(r, "announce of %02x:%02x:%02x:%02x:%02x:%02x refused: multicast or zero", mac[0], mac[1], mac[2],
            mac[3], mac[4], mac[5]);
        return ADM_EINVAL;
    }
    LOG_I("%s: announced %02x:%02x:%02x:%02x:%02x:%02x (RARP)", vf->bdf, mac[0], mac[1], mac[2], mac[3], mac[4],
          mac[5]);
    return ADM_OK;
}

static enum adm_err mig_cmd(struct adm_req *r, uint8_t cmd)
{
    struct sim_nv_announce an;
    struct sim_nv_vdev v;
    struct sim_nv_modify m;
    struct sim_nv_save sv;
    struct sim_fn *vf;

    switch (cmd) {
    case SIM_NV_MIG_IDENTITY:
        return ADM_OK;
    case SIM_NV_MIG_GET_STATUS:
        if (!take(r, &v, sizeof(v)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, v.vdev_id)))
            return ADM_ENODEV;
        if (r->res_cap < 1) {
            WHY(r, "no room for the result");
            return ADM_ENOSPC;
        }
        r->res[0] = (uint8_t)vf->mig_state;
        r->res_len = 1;
        return ADM_OK;
    case SIM_NV_MIG_MODIFY_STATUS:
        if (!take(r, &m, sizeof(m)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, m.vdev_id)))
            return ADM_ENODEV;
        return sim_adm_mig_modify(vf, m.state, r->why, sizeof(r->why));
    case SIM_NV_MIG_PENDING_BYTES:
        if (!take(r, &v, sizeof(v)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, v.vdev_id)))
            return ADM_ENODEV;
        if (!state_saveable(r, vf))
            return ADM_EBUSY;
        return save_state(r, vf, 0, true);
    case SIM_NV_MIG_SAVE_STATE:
        if (!take(r, &sv, sizeof(sv)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, sv.vdev_id)))
            return ADM_ENODEV;
        if (!state_saveable(r, vf))
            return ADM_EBUSY;
        return save_state(r, vf, le32toh(sv.offset), false);
    case SIM_NV_MIG_RESTORE_STATE:
        if (!take(r, &v, sizeof(v)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, v.vdev_id)))
            return ADM_ENODEV;
        return restore_state(r, vf);
    case SIM_NV_MIG_ANNOUNCE:
        if (!take(r, &an, sizeof(an)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, an.vdev_id)))
            return ADM_ENODEV;
        return announce(r, vf, an.mac);
    }
    WHY(r, "unknown migration command %u", cmd);
    return ADM_EUNSUPP;
}

static enum adm_err dirty_cmd(struct adm_req *r, uint8_t cmd)
{
    struct sim_nv_vdev v;
    struct sim_nv_report rep;
    struct sim_fn *vf;

    switch (cmd) {
    case SIM_NV_DIRTY_IDENTITY:   /* result (when there is room): le32, bit m = track mode m offered */
        if (r->res_cap < 4)
            return ADM_OK;
        {
            uint32_t modes = htole32(sim_adm_dirty_modes(r->pf->sim));
            memcpy(r->res, &modes, 4);
            r->res_len = 4;
        }
        return ADM_OK;
    case SIM_NV_DIRTY_START:
        if (!take(r, &v.vdev_id, sizeof(v.vdev_id)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, v.vdev_id)))
            return ADM_ENODEV;
        return sim_adm_dirty_start(r->pf, vf, r->data, r->data_len, r->why, sizeof(r->why));
    case SIM_NV_DIRTY_STOP:
        if (!take(r, &v, sizeof(v)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, v.vdev_id)))
            return ADM_ENODEV;
        sim_adm_dirty_stop(vf);
        return ADM_OK;
    case SIM_NV_DIRTY_PENDING_BYTES:
        if (!take(r, &v, sizeof(v)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, v.vdev_id)))
            return ADM_ENODEV;
        return put_le64(r, sim_adm_dirty_pending_bytes(vf));
    case SIM_NV_DIRTY_REPORT:
        if (!take(r, &rep, sizeof(rep)))
            return ADM_EINVAL;
        if (!(vf = vdev(r, rep.vdev_id)))
            return ADM_ENODEV;
        return sim_adm_dirty_report(vf, le32toh(rep.offset), r);
    }
    WHY(r, "unknown dirty-page command %u", cmd);
    return ADM_EUNSUPP;
}

uint32_t sim_adm_nv_serve(struct adm_priv *p, const struct vq_elem *e, size_t len, bool too_long, int injected)
{
    struct sim_fn *pf = p->pf;
    uint64_t room = e->in_len;
    uint8_t cls = p->cmd[0], cmd = len >= 2 ? p->cmd[1] : 0;
    enum adm_err err = ADM_OK;
    uint8_t st;

    if (room == 0) {
        LOG_W("%s: nvidia class %u cmd %u: no writable status byte, completed empty", pf->bdf, cls, cmd);
        return 0;
    }
    struct adm_req r = {
        .pf = pf, .data = p->cmd + 2, .data_len = len >= 2 ? len - 2 : 0, .res = p->res,
        .res_cap = room - 1 < SIM_ADM_MAX_RESULT ? (size_t)(room - 1) : SIM_ADM_MAX_RESULT,
    };
    if (injected) {
        st = injected > 0 && injected <= 0xff ? (uint8_t)injected : SIM_NV_ST_FAULT;
        WHY(&r, "injected failure");
    } else {
        if (too_long) {
            WHY(&r, "command longer than %u bytes", SIM_ADM_MAX_CMD);
            err = ADM_EINVAL;
        } else if (len < 2) {
            WHY(&r, "command shorter than its header");
            err = ADM_EINVAL;
        } else if (!sim_adm_dialect_enabled(pf, true)) {
            WHY(&r, "nvidia dialect disabled");
            err = ADM_EUNSUPP;
        } else {
            err = cls == SIM_NV_CLASS_MIG ? mig_cmd(&r, cmd) : dirty_cmd(&r, cmd);
        }
        st = nv_status(err);
    }
    if (st != SIM_NV_ST_OK) {
        r.res_len = 0;
        LOG_W("%s: nvidia class %u cmd %u refused (status 0x%02x): %s", pf->bdf, cls, cmd, st,
              r.why[0] ? r.why : "-");
    }
    if (r.res_len && sim_vq_scatter(pf, e, 0, r.res, r.res_len) != (long)r.res_len)
        return 0;
    if (sim_vq_scatter(pf, e, room - 1, &st, 1) != 1)
        return 0;
    return (uint32_t)r.res_len + 1;
}
