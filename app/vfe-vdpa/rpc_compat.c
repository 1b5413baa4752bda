/* The peer's methods on the --compat-tcp listener: version, mgmtpf, vf (see rpc_compat.h). */
#include "app/vfe-vdpa/rpc_compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "app/vfe-vdpa/operator_ops.h"
#include "app/vfe-vdpa/vhostd.h"
#include "lib/log/vfe_log.h"
#include "vfe_version.h"

#define HA_UNKNOWN "Not Known Due to HA Disconnected"   /* the peer's words when it cannot ask its HA process */

/* ---- parameters ---- */

bool compat_bdf_param(json_t *params, const char *key, const char *what, char out[VHOSTD_BDF_LEN],
                      struct rpc_call *c)
{
    json_t *v = json_object_get(params, key);
    if (!json_is_string(v)) {
        compat_bad_params(c, what, v ? "the device is not a string" : "no device");
        return false;
    }
    if (vhostd_bdf_normalise(json_string_value(v), out) < 0) {
        compat_bad_params(c, what, "the device is not a PCI address [DDDD:]BB:DD.F");
        return false;
    }
    return true;
}

/* The one action flag that is true among names; NULL with an answer given. */
static const char *compat_action(json_t *params, const char *const *names, const char *what, struct rpc_call *c)
{
    const char *found = NULL;
    for (int i = 0; names[i]; i++) {
        json_t *v = json_object_get(params, names[i]);
        if (v && !json_is_boolean(v)) {
            compat_bad_params(c, what, "an action flag is not true or false");
            return NULL;
        }
        if (json_is_true(v)) {
            if (found) {
                compat_bad_params(c, what, "more than one action");
                return NULL;
            }
            found = names[i];
        }
    }
    if (!found)
        compat_bad_params(c, what, "no action");
    return found;
}

/* ---- version ---- */

/* Build time of the running binary as the peer shows its own ("Mmm dd yyyy
 * hh:mm:ss"): the executable's modification time (a reproducible build has no
 * clock of its own to show). */
static void build_time(const char *exe, char *out, size_t len)
{
    struct stat st;
    struct tm tm;
    snprintf(out, len, "unknown");
    if (stat(exe, &st) == 0 && gmtime_r(&st.st_mtime, &tm))
        strftime(out, len, "%b %e %Y %H:%M:%S", &tm);
}

static int m_version(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    char bt[64];
    build_time(d->exe, bt, sizeof(bt));
    /* The HA process comes from the same package; its link reports no version
     * of its own.  Without --ha the daemon's own values; with --ha but no link,
     * the peer's "not known". */
    bool ha_known = true;
    if (d->opt.ha_path) {
        json_t *h = vhostd_ha_health(&d->ha);
        ha_known = json_is_true(json_object_get(h, "connected"));
        json_decref(h);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "vfe-vhostd version", VFE_VERSION,
                          "vfe-vhostd build time", bt, "vfe-vhostd-ha version",
                          ha_known ? VFE_VERSION : HA_UNKNOWN, "vfe-vhostd-ha build time",
                          ha_known ? bt : HA_UNKNOWN);
    compat_answer(c, o, COMPAT_OK);
    return 0;
}

/* ---- mgmtpf ---- */

static void pf_added(void *ctx, const struct vhostd_pf *pf, int err)
{
    if (err)
        LOG_W("compat: PF %s: bring-up failed: %s", pf->bdf, strerror(-err));
    compat_answer(ctx, NULL, err ? compat_code(COMPAT_OP_PF_ADD, err) : COMPAT_OK);
}

static int pf_add(struct vhostd *d, const char *bdf, struct rpc_call *c)
{
    char msg[256];
    int rc = vhostd_op_pf_add(d, bdf, pf_added, c, msg, sizeof(msg));
    if (rc == 0)
        return RPC_PENDING;
    compat_answer(c, NULL, compat_code(COMPAT_OP_PF_ADD, rc));
    return 0;
}

static int pf_remove(struct vhostd *d, const char *bdf, struct rpc_call *c)
{
    char msg[256];
    int rc = vhostd_op_pf_remove(d, bdf, msg, sizeof(msg));
    compat_answer(c, NULL, rc == -ENOTEMPTY ? COMPAT_PF_HAS_VFS : rc < 0 ? compat_code(COMPAT_OP_PF_REMOVE, rc)
                                                                          : COMPAT_OK);
    return 0;
}

static json_t *pf_entry(const char *bdf) { return json_pack("{s:s}", "pf", bdf); }

static int pf_list(struct vhostd *d, struct rpc_call *c)
{
    json_t *a = json_array();
    unsigned cur = 0;
    for (struct vhostd_pf *pf; (pf = vhostd_reg_next_pf(&d->reg, &cur));)
        json_array_append_new(a, pf_entry(pf->bdf));
    for (unsigned i = 0; i < d->prov.want.npfs; i++)
        if (vhostd_prov_pf_pending(&d->prov, d->prov.want.pfs[i].bdf))
            json_array_append_new(a, pf_entry(d->prov.want.pfs[i].bdf));
    if (!json_array_size(a)) {   /* the peer: no PF is an error, and no "devices" */
        json_decref(a);
        compat_answer(c, NULL, COMPAT_NO_PF);
        return 0;
    }
    compat_answer(c, json_pack("{s:o}", "devices", a), COMPAT_OK);
    return 0;
}

static int m_mgmtpf(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    static const char *const acts[] = {"add", "remove", "list", NULL};
    const char *act = compat_action(params, acts, "pf", c);
    if (!act)
        return 0;
    if (!strcmp(act, "list"))
        return pf_list(d, c);
    char bdf[VHOSTD_BDF_LEN];
    if (!compat_bdf_param(params, "dev", "pf", bdf, c))
        return 0;
    return !strcmp(act, "add") ? pf_add(d, bdf, c) : pf_remove(d, bdf, c);
}

/* ---- vf ---- */

static const struct vhostd_state_vf *pending_vf(const struct vhostd_prov *p, const char *bdf, const char *pf)
{
    for (unsigned i = 0; i < p->want.nvfs; i++) {
        const struct vhostd_state_vf *v = &p->want.vfs[i];
        if ((!bdf || !strcmp(v->bdf, bdf)) && (!pf || !strcmp(p->vf_pf[i], pf)) &&
            vhostd_prov_vf_pending(p, v->bdf))
            return v;
    }
    return NULL;
}

static int vf_list(struct vhostd *d, json_t *params, struct rpc_call *c)
{
    char pf[VHOSTD_BDF_LEN];
    if (!compat_bdf_param(params, "mgmtpf", "vf", pf, c))
        return 0;
    if (!vhostd_reg_find_pf(&d->reg, pf) && !vhostd_prov_pf_pending(&d->prov, pf)) {
        compat_answer(c, NULL, COMPAT_NO_PF);
        return 0;
    }
    json_t *a = json_array();
    unsigned cur = 0;
    for (struct vhostd_vf *vf; (vf = vhostd_reg_next_vf(&d->reg, &cur, pf));)
        json_array_append_new(a, compat_vf_device(vf));
    for (unsigned i = 0; i < d->prov.want.nvfs; i++) {
        const struct vhostd_state_vf *v = &d->prov.want.vfs[i];
        if (!strcmp(d->prov.vf_pf[i], pf) && vhostd_prov_vf_pending(&d->prov, v->bdf))
            json_array_append_new(a, compat_pending_device(v));
    }
    if (!json_array_size(a)) {   /* the peer: no VF is a success without "devices" */
        json_decref(a);
        compat_answer(c, NULL, COMPAT_OK);
        return 0;
    }
    compat_answer(c, json_pack("{s:o}", "devices", a), COMPAT_OK);
    return 0;
}

static int vf_info(struct vhostd *d, const char *bdf, struct rpc_call *c)
{
    struct vhostd_vf *vf = vhostd_reg_find_vf(&d->reg, bdf);
    const struct vhostd_state_vf *p = vf ? NULL : pending_vf(&d->prov, bdf, NULL);
    if (!vf && !p) {
        compat_answer(c, NULL, COMPAT_NO_VF);
        return 0;
    }
    compat_answer(c, json_pack("{s:o}", "device", vf ? compat_vf_device(vf) : compat_pending_device(p)), COMPAT_OK);
    return 0;
}

/* socket_file and uuid: a string or null (the peer's CLI sends null for "not given"). */
static bool opt_string(json_t *params, const char *key, const char **out)
{
    json_t *v = json_object_get(params, key);
    *out = json_string_value(v);
    return !v || json_is_null(v) || json_is_string(v);
}

static void vf_added(void *ctx, const char *bdf, struct vhostd_vf *vf, int err, const char *msg)
{
    compat_answer(ctx, NULL, err ? compat_code(COMPAT_OP_VF_ADD, err) : COMPAT_OK);
}

static int vf_add(struct vhostd *d, const char *bdf, json_t *params, struct rpc_call *c)
{
    const char *sock, *uuid;
    if (!opt_string(params, "socket_file", &sock) || !opt_string(params, "uuid", &uuid)) {
        compat_bad_params(c, "vf", "socket_file and uuid must be strings or null");
        return 0;
    }
    if (sock && sock[0] != '/') {
        LOG_I("compat: vf add %s: socket_file %.64s is not an absolute path", bdf, sock);
        compat_answer(c, NULL, COMPAT_SOCK_ACCESS);
        return 0;
    }
    if (uuid && strlen(uuid) >= sizeof(((struct vhostd_vf_rec *)0)->uuid)) {
        compat_bad_params(c, "vf", "uuid too long");
        return 0;
    }
    if (vhostd_reg_find_vf(&d->reg, bdf)) {
        compat_answer(c, NULL, COMPAT_VF_EXISTS);
        return 0;
    }
    char msg[512];
    int rc = vhostd_op_vf_add(d, bdf, sock, uuid, false, vf_added, c, msg, sizeof(msg));
    if (rc == 0)
        return RPC_PENDING;   /* answered when the device is up */
    compat_answer(c, NULL, compat_code(COMPAT_OP_VF_ADD, rc));
    return 0;
}

static void vf_removed(void *ctx)
{
    compat_answer(ctx, NULL, COMPAT_OK);
}

static int vf_remove(struct vhostd *d, const char *bdf, struct rpc_call *c)
{
    char msg[256];
    int rc = vhostd_op_vf_remove(d, bdf, vf_removed, c, msg, sizeof(msg));
    if (rc == 0)
        return RPC_PENDING;
    compat_answer(c, NULL, rc < 0 ? compat_code(COMPAT_OP_VF_REMOVE, rc) : COMPAT_OK);
    return 0;
}

static int m_vf(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    static const char *const acts[] = {"add", "remove", "list", "info", "debug", NULL};
    const char *act = compat_action(params, acts, "vf", c);
    if (!act)
        return 0;
    if (!strcmp(act, "list"))
        return vf_list(d, params, c);
    char bdf[VHOSTD_BDF_LEN];
    if (!compat_bdf_param(params, "vfdev", "vf", bdf, c))
        return 0;
    if (!strcmp(act, "add"))
        return vf_add(d, bdf, params, c);
    if (!strcmp(act, "remove"))
        return vf_remove(d, bdf, c);
    if (!strcmp(act, "info"))
        return vf_info(d, bdf, c);
    return compat_vf_debug(d, bdf, params, c);
}

int vhostd_compat_register(struct vhostd *d)
{
    int rc = rpc_register_tcp(d->rpc, "version", m_version, d);
    rc = rc ?: rpc_register_tcp(d->rpc, "mgmtpf", m_mgmtpf, d);
    rc = rc ?: rpc_register_tcp(d->rpc, "vf", m_vf, d);
    return rc;
}
