/* JSON-RPC methods of vfe-vhostd (params compatible with the peer tooling). */
#include "app/vfe-vdpa/vhostd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include "app/vfe-vdpa/operator_ops.h"
#include "app/vfe-vdpa/rpc_compat.h"
#include "app/vfe-vdpa/vf_batch.h"
#include "app/vfe-vdpa/vf_msix.h"
#include "drivers/bus/vfio/vfio_bind.h"
#include "drivers/vdpa/virtio/vdpa_timeline.h"
#include "lib/log/vfe_log.h"
#include "app/vfe-vdpa/rpc_page.h"
#include "vfe_version.h"

static int code_of(int err)
{
    switch (err) {
    case -EEXIST: case -EADDRINUSE: case -EACCES: case -EPERM: return RPC_EXISTS;
    case -ENOENT: case -ENODEV: return RPC_NOT_FOUND;
    case -EBUSY: case -EALREADY: case -ENOSPC: case -ENOTEMPTY: return RPC_BUSY;
    case -ETIMEDOUT: return RPC_TIMEOUT;
    case -EINVAL: case -ENAMETOOLONG: return RPC_INVALID_PARAMS;
    default: return RPC_DEVICE_ERROR;
    }
}

int vhostd_rpc_code(int err)
{
    return code_of(err);
}

/* A BDF param: a string naming a PCI address ([DDDD:]BB:DD.F, either case, as
 * the peer's tools write it), made canonical in params; or an error answered. */
static const char *bdf_param(json_t *params, const char *key, struct rpc_call *c)
{
    json_t *v = json_object_get(params, key);
    if (!json_is_string(v)) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"%s\" (a PCI address DDDD:BB:DD.F) is required", key);
        return NULL;
    }
    char bdf[VHOSTD_BDF_LEN];
    if (vhostd_bdf_normalise(json_string_value(v), bdf) < 0 || json_object_set_new(params, key, json_string(bdf))) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"%s\": '%.32s' is not a PCI address DDDD:BB:DD.F (or BB:DD.F)",
                       key, json_string_value(v));
        return NULL;
    }
    return json_string_value(json_object_get(params, key));
}

/* Exactly one of the action flags is true. */
static const char *action(json_t *params, const char *const *names, struct rpc_call *c)
{
    const char *found = NULL;
    for (int i = 0; names[i]; i++) {
        json_t *v = json_object_get(params, names[i]);
        if (!v)
            continue;
        if (!json_is_boolean(v)) {
            rpc_call_error(c, RPC_INVALID_PARAMS, "\"%s\" must be true or false", names[i]);
            return NULL;
        }
        if (json_is_true(v)) {
            if (found) {
                rpc_call_error(c, RPC_INVALID_PARAMS, "only one of \"%s\" and \"%s\" at a time", found, names[i]);
                return NULL;
            }
            found = names[i];
        }
    }
    if (!found)
        rpc_call_error(c, RPC_INVALID_PARAMS, "one of \"%s\", \"%s\", \"%s\" must be true", names[0], names[1],
                       names[2]);
    return found;
}

static int m_version(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_result(c, json_pack("{s:s, s:s}", "version", VFE_VERSION, "name", "vfe-vhostd"));
    return 0;
}

static void pf_added(void *ctx, const struct vhostd_pf *pf, int err)
{
    struct rpc_call *c = ctx;
    if (err)
        rpc_call_error(c, code_of(err), "PF %s: bring-up failed: %s", pf->bdf, strerror(-err));
    else
        rpc_call_result(c, json_pack("{s:s, s:i, s:s}", "pf", pf->bdf, "vfs", vhostd_pf_vfs_present(pf), "dialect",
                                     vfe_mig_dialect_name(pf->mig.dialect)));
}

static json_t *pf_json_base(const struct vhostd_registry *r, const struct vhostd_pf *pf)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:s}", "pf", pf->bdf, "state",
                     pf->state == PF_READY ? "ready" : pf->adopted ? "adopting" : "starting",
                     "vfs", vhostd_pf_vfs_present(pf), "vfs_in_use", vhostd_reg_pf_vfs_in_use(r, pf), "dialect",
                     vfe_mig_dialect_name(pf->mig.dialect));
}

/* A persisted PF not brought up (yet): same fields as pf_json, and why. */
static json_t *pf_json(const struct vhostd_registry *r, const struct vhostd_pf *pf)
{
    json_t *o = pf_json_base(r, pf);
    vhostd_msix_pf_json(r->opt->pci_root, pf->bdf, o);
    return o;
}

static json_t *pending_pf_json(const char *bdf, const char *why)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:s, s:s}", "pf", bdf, "state", "pending", "vfs", 0, "vfs_in_use", 0,
                     "dialect", "none", "pending_reason", why);
}

static int pf_add(struct vhostd *d, const char *bdf, struct rpc_call *c)
{
    char msg[256];
    int rc = vhostd_op_pf_add(d, bdf, pf_added, c, msg, sizeof(msg));
    if (rc == 0)
        return RPC_PENDING;
    rpc_call_error(c, code_of(rc), "%s", msg);
    return 0;
}

static int pf_remove(struct vhostd *d, const char *bdf, struct rpc_call *c)
{
    char msg[256];
    int rc = vhostd_op_pf_remove(d, bdf, msg, sizeof(msg));
    if (rc < 0)
        rpc_call_error(c, code_of(rc), "%s", msg);
    else
        rpc_call_result(c, json_pack("{s:s}", "removed", bdf));
    return 0;
}

static int pf_reclaim_msix(struct vhostd *d, const char *bdf, struct rpc_call *c)
{
    char msg[512];
    int rc = vhostd_op_pf_reclaim_msix(d, bdf, msg, sizeof(msg));
    if (rc < 0) {
        rpc_call_error(c, code_of(rc), "%s", msg);
        return 0;
    }
    json_t *o = json_pack("{s:s}", "pf", bdf);
    vhostd_msix_pf_json(d->opt.pci_root, bdf, o);
    rpc_call_result(c, o);
    return 0;
}

static int m_mgmtpf(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    static const char *const acts[] = {"add", "remove", "list", "reclaim_msix", NULL};
    const char *act = action(params, acts, c);
    if (!act)
        return 0;
    if (!strcmp(act, "list")) {
        json_t *a = json_array();
        unsigned cur = 0;
        for (struct vhostd_pf *pf; (pf = vhostd_reg_next_pf(&d->reg, &cur));)
            json_array_append_new(a, pf_json(&d->reg, pf));
        for (unsigned i = 0; i < d->prov.want.npfs; i++) {
            const char *why = vhostd_prov_pf_pending(&d->prov, d->prov.want.pfs[i].bdf);
            if (why)
                json_array_append_new(a, pending_pf_json(d->prov.want.pfs[i].bdf, why));
        }
        rpc_call_result(c, json_pack("{s:o}", "devices", a));
        return 0;
    }
    const char *bdf = bdf_param(params, "dev", c);
    if (!bdf)
        return 0;
    if (!strcmp(act, "reclaim_msix"))
        return pf_reclaim_msix(d, bdf, c);
    return !strcmp(act, "add") ? pf_add(d, bdf, c) : pf_remove(d, bdf, c);
}

static json_t *vf_json(const struct vhostd_vf *vf, bool full)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "vf", vf->rec.bdf, "pf", vf->rec.pf, "socket_file",
                          vf->rec.socket, "vm_uuid", vf->rec.uuid, "mode", vf->rec.direct ? "direct" : "admin");
    if (!full)
        return o;
    struct vdpa_session_stats st;
    vdpa_session_stats(vf->session, &st);
    uint8_t mac[6];
    vdpa_vf_mac(vf->dev, mac);
    char macs[20];
    snprintf(macs, sizeof(macs), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    char feat[24];
    snprintf(feat, sizeof(feat), "%#llx", (unsigned long long)vdpa_vf_device_features(vf->dev));
    json_object_update_new(o, json_pack("{s:b, s:i, s:i, s:i, s:s, s:s, s:b, s:s}", "probed", 1, "msix_num",
                                        vdpa_vf_num_queues(vf->dev) + 1, "queue_num", vdpa_vf_num_queues(vf->dev),
                                        "queue_size", 256, "device_feature", feat, "mac", macs, "configured",
                                        st.rings_running > 0, "state", vdpa_vf_state_name(st.dev_state)));
    return o;
}

json_t *vhostd_rpc_vf_json(const struct vhostd_vf *vf)
{
    return vf_json(vf, false);
}

struct vf_rm {
    struct rpc_call *call;
    char bdf[16];
};

static void vf_removed(void *ctx)
{
    struct vf_rm *r = ctx;
    rpc_call_result(r->call, json_pack("{s:s}", "removed", r->bdf));
    free(r);
}

struct vf_add_call {
    struct rpc_call *call;
    struct vhostd *d;
    unsigned vectors;
};

static void vf_add_answer(void *ctx, const char *bdf, struct vhostd_vf *vf, int err, const char *msg)
{
    struct vf_add_call *a = ctx;
    if (err) {
        rpc_call_error(a->call, code_of(err), "%s", msg);
    } else {
        json_t *o = vf_json(vf, false);
        if (a->vectors)
            vhostd_msix_vf_json(a->d->opt.pci_root, bdf, o);
        rpc_call_result(a->call, o);
    }
    free(a);
}

/* A VF whose bring-up job (or HA take-over) runs: what is known of it yet. */
static json_t *adding_json(const struct vhostd_vf *vf)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "vf", vf->rec.bdf, "pf", vf->rec.pf, "socket_file",
                     vf->rec.socket, "vm_uuid", vf->rec.uuid, "mode", vf->rec.direct ? "direct" : "admin", "state",
                     vf->adopting ? "adopting" : "adding");
}

static int vf_add(struct vhostd *d, const char *bdf, json_t *params, struct rpc_call *c)
{
    json_t *js = json_object_get(params, "socket_file"), *ju = json_object_get(params, "uuid");
    if ((js && !json_is_string(js)) || (ju && !json_is_string(ju) && !json_is_null(ju))) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"socket_file\" and \"uuid\" must be strings");
        return 0;
    }
    const char *sock = json_string_value(js), *uuid = json_string_value(ju);
    if (sock && sock[0] != '/') {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"socket_file\" must be an absolute path");
        return 0;
    }
    if (uuid && strlen(uuid) >= sizeof(((struct vhostd_vf_rec *)0)->uuid)) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"uuid\" is too long");
        return 0;
    }
    json_t *jd = json_object_get(params, "direct");
    if (jd && !json_is_boolean(jd)) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"direct\" must be true or false");
        return 0;
    }
    char msg[512];
    unsigned vectors;
    if (vhostd_msix_param(params, &vectors, msg, sizeof(msg)) < 0) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "%s", msg);
        return 0;
    }
    struct vf_add_call *a = malloc(sizeof(*a));
    if (!a) {
        rpc_call_error(c, RPC_INTERNAL_ERROR, "out of memory");
        return 0;
    }
    *a = (struct vf_add_call){c, d, vectors};
    int rc = vhostd_op_vf_add_sized(d, bdf, sock, uuid, json_is_true(jd), vectors, vf_add_answer, a, msg, sizeof(msg));
    if (rc < 0) {
        free(a);
        rpc_call_error(c, code_of(rc), "%s", msg);
        return 0;
    }
    return RPC_PENDING;   /* answered when the device is up (or failed) */
}

static int m_vf(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    static const char *const acts[] = {"add", "remove", "list", "info", NULL};
    const char *act = action(params, acts, c);
    if (!act)
        return 0;
    if (!strcmp(act, "list")) {
        const char *pf = bdf_param(params, "mgmtpf", c);
        if (!pf)
            return 0;
        if (!vhostd_reg_find_pf(&d->reg, pf) && !vhostd_prov_pf_pending(&d->prov, pf)) {
            rpc_call_error(c, RPC_NOT_FOUND, "PF %s is not added", pf);
            return 0;
        }
        struct vhostd_page pg;
        if (!vhostd_page_params(params, VHOSTD_PAGE_LIST_DEFAULT, &pg, c))
            return 0;
        json_t *a = json_array();
        unsigned cur = 0;
        for (struct vhostd_vf *vf; (vf = vhostd_reg_next_vf(&d->reg, &cur, pf));)
            if (vhostd_page_take(&pg))
                json_array_append_new(a, vf_json(vf, false));
        cur = 0;
        for (const struct vhostd_vf *vf; (vf = vhostd_reg_next_adding(&d->reg, &cur, pf));)
            if (vhostd_page_take(&pg))
                json_array_append_new(a, adding_json(vf));
        for (unsigned i = 0; i < d->prov.want.nvfs; i++) {
            const struct vhostd_state_vf *v = &d->prov.want.vfs[i];
            const char *why = vhostd_prov_vf_pending(&d->prov, v->bdf);
            if (why && !strcmp(d->prov.vf_pf[i], pf) && vhostd_page_take(&pg))
                json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "vf", v->bdf, "pf", pf,
                                                   "socket_file", v->socket, "vm_uuid", v->uuid, "state", "pending",
                                                   "pending_reason", why));
        }
        json_t *res = json_pack("{s:o}", "devices", a);
        vhostd_page_finish(res, &pg);
        rpc_call_result(c, res);
        return 0;
    }
    const char *bdf = bdf_param(params, "vfdev", c);
    if (!bdf)
        return 0;
    if (!strcmp(act, "add"))
        return vf_add(d, bdf, params, c);
    if (!strcmp(act, "info")) {
        struct vhostd_vf *vf = vhostd_reg_find_vf(&d->reg, bdf);
        const struct vhostd_vf *adding = vhostd_reg_find_adding(&d->reg, bdf);
        const char *why = vhostd_prov_vf_pending(&d->prov, bdf);
        if (vf) {
            json_t *o = vf_json(vf, true);
            vhostd_msix_vf_json(d->opt.pci_root, bdf, o);
            rpc_call_result(c, o);
        } else if (adding)
            rpc_call_result(c, adding_json(adding));
        else if (why)
            rpc_call_error(c, RPC_NOT_FOUND, "VF %s is pending: %s", bdf, why);
        else
            rpc_call_error(c, RPC_NOT_FOUND, "VF %s is not added", bdf);
        return 0;
    }
    json_t *jr = json_object_get(params, "release_msix");
    if (jr && !json_is_boolean(jr)) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"release_msix\" must be true or false");
        return 0;
    }
    if (jr && json_is_true(jr) && strcmp(act, "remove")) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"release_msix\" goes with \"remove\"");
        return 0;
    }
    struct vf_rm *r = malloc(sizeof(*r));
    if (!r) {
        rpc_call_error(c, RPC_INTERNAL_ERROR, "out of memory");
        return 0;
    }
    r->call = c;
    snprintf(r->bdf, sizeof(r->bdf), "%s", bdf);
    char msg[256];
    int rc = vhostd_op_vf_remove_release(d, bdf, json_is_true(jr), vf_removed, r, msg, sizeof(msg));
    if (rc == 0)
        return RPC_PENDING;
    free(r);
    if (rc == 1)
        rpc_call_result(c, json_pack("{s:s}", "removed", bdf));
    else
        rpc_call_error(c, code_of(rc), "%s", msg);
    return 0;
}

/* An offset in ms (µs precision), null where the event did not happen. */
static json_t *ms_json(int64_t us)
{
    return us == VDPA_TL_UNSET ? json_null() : json_real((double)us / 1000.0);
}

/* The last switchover's timeline (vdpa_timeline.h): each half null until seen. */
static json_t *migration_json(const struct vdpa_session *session)
{
    struct vdpa_tl_view v;
    vdpa_tl_view(vdpa_session_timeline(session), &v);
    json_t *src = json_null(), *dst = json_null();
    if (v.src_valid) {
        json_t *answered = json_array();
        for (unsigned i = 0; i < VDPA_TL_RINGS; i++)
            if (v.answered_us[i] != VDPA_TL_UNSET)
                json_array_append_new(answered, json_pack("{s:i, s:o}", "ring", i, "ms", ms_json(v.answered_us[i])));
        src = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:i, s:o}", "age_ms",
                        ms_json((int64_t)v.src_age_us), "first_get_vring_base_ms", ms_json(0), "stop_begun_ms",
                        ms_json(v.stop_begun_us), "stopped_ms", ms_json(v.stopped_us), "first_answer_ms",
                        ms_json(v.first_answer_us), "last_answer_ms", ms_json(v.last_answer_us), "switchover_ms",
                        ms_json(v.nanswered == v.nasked ? v.last_answer_us : VDPA_TL_UNSET), "rings_asked", v.nasked,
                        "rings_answered", v.nanswered, "answered", answered);
    }
    if (v.dst_valid)
        dst = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:i}", "age_ms", ms_json((int64_t)v.dst_age_us),
                        "connected_ms", ms_json(v.connected_us), "mem_table_ms", ms_json(0), "mem_mapped_ms",
                        ms_json(v.mem_mapped_us), "start_begun_ms", ms_json(v.start_begun_us), "rings_started_ms",
                        ms_json(v.started_us), "switchover_ms", ms_json(v.started_us), "rings", v.dst_rings);
    return json_pack("{s:o, s:o}", "source", src, "destination", dst);
}

static json_t *vf_stats(struct vhostd_vf *vf)
{
    struct vdpa_session_stats st;
    vdpa_session_stats(vf->session, &st);
    json_t *idx = json_array();
    for (unsigned i = 0; i < st.nsaved; i++)
        json_array_append_new(idx, json_integer(st.last_avail[i]));
    json_t *rings = json_array();
    for (unsigned i = 0; i < st.nlive; i++)
        json_array_append_new(rings, json_pack("{s:i, s:i, s:i}", "ring", st.live[i].ring, "avail_idx",
                                               st.live[i].avail_idx, "used_idx", st.live[i].used_idx));
    char feat[24];
    snprintf(feat, sizeof(feat), "%#llx", (unsigned long long)st.features);
    const char *tracking = vdpa_vf_dirty_tracking(vf->dev);   /* "push", "pull", "software" */
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o}", "vf", vf->rec.bdf, "state",
                          vdpa_vf_state_name(st.dev_state), "vhost_user", st.connected ? "connected" : "waiting",
                          "features", feat, "rings_running", st.rings_running, "dirty_tracking",
                          tracking ? json_string(tracking) : json_false(), "rings", rings, "saved_ring_indices", idx);
    unsigned members, maps;
    vdpa_vf_dma_domain(vf->dev, &members, &maps);
    json_object_set_new(o, "host_notifiers", json_integer(st.host_notifiers));
    json_object_set_new(o, "mode", json_string(vdpa_vf_mode(vf->dev)));
    struct vdpa_swlog_stats sw;
    if (vdpa_vf_swlog_stats(vf->dev, &sw) == 0)
        json_object_set_new(o, "software_log", json_pack("{s:I, s:I, s:I}", "passes", (json_int_t)sw.passes,
                                                         "sw_overruns", (json_int_t)sw.overruns,
                                                         "bad_descriptors", (json_int_t)sw.bad));
    json_object_set_new(o, "announce", json_pack("{s:I, s:I, s:I, s:b, s:b}", "requests",
                                                 (json_int_t)st.announce_requests, "sent", (json_int_t)st.announces,
                                                 "failed", (json_int_t)st.announce_failures, "pending",
                                                 st.announce_pending, "unsupported", st.announce_unsupported));
    json_object_set_new(o, "resumed", json_integer(vdpa_vf_resumed(vf->dev)));
    json_object_set_new(o, "migration", migration_json(vf->session));
    json_object_set_new(o, "dma_domain", json_pack("{s:s, s:i, s:i}", "vm_uuid", vf->rec.uuid, "members", members,
                                                   "maps", maps));
    return o;
}

static json_t *vf_stats_msix(struct vhostd *d, struct vhostd_vf *vf)
{
    json_t *o = vf_stats(vf);
    vhostd_msix_vf_json(d->opt.pci_root, vf->rec.bdf, o);
    json_object_set_new(o, "queue_pairs", json_integer(vdpa_vf_max_pairs(vf->dev)));
    return o;
}

/* ---- stats: the page's counters are read asynchronously (a device that
 * does not answer delays only this reply, by at most the transport timeout,
 * and its entry shows an error instead of numbers) ---- */

struct stats_entry {
    struct stats_job *job;
    char bdf[32];
    struct vdpa_vf *dev;       /* to cancel the read; compared, never used once the VF may be gone */
    bool pending, has;
    int err;
    uint64_t ctr[VFE_CTR_COUNT];
};

struct stats_job {
    struct vhostd *d;
    struct rpc_call *c;
    struct vhostd_page pg;
    bool paged;
    unsigned n, pending;
    ev_timer bound;
    struct stats_entry e[];
};

static void counters_json(json_t *o, const struct stats_entry *e)
{
    if (e->has) {
        const uint64_t *c = e->ctr;
        json_object_set_new(o, "counters", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "rx_packets",
                                                     (json_int_t)c[VFE_CTR_RX_PACKETS], "rx_bytes",
                                                     (json_int_t)c[VFE_CTR_RX_BYTES], "rx_drops",
                                                     (json_int_t)c[VFE_CTR_RX_DROPS], "tx_packets",
                                                     (json_int_t)c[VFE_CTR_TX_PACKETS], "tx_bytes",
                                                     (json_int_t)c[VFE_CTR_TX_BYTES], "tx_drops",
                                                     (json_int_t)c[VFE_CTR_TX_DROPS]));
    } else if (e->err == -ETIMEDOUT) {
        char msg[96];
        snprintf(msg, sizeof(msg), "counters: the device did not answer within %d ms", VFE_TRANSPORT_TIMEOUT_MS);
        json_object_set_new(o, "error", json_string(msg));
    } else if (e->err) {
        char msg[96];
        snprintf(msg, sizeof(msg), "counters: %s", strerror(-e->err));
        json_object_set_new(o, "error", json_string(msg));
    }
}

static void stats_finish(struct stats_job *j)
{
    struct vhostd *d = j->d;
    ev_timer_stop(d->loop, &j->bound);
    json_t *a = json_array();
    for (unsigned i = 0; i < j->n; i++) {
        struct stats_entry *e = &j->e[i];
        struct vhostd_vf *vf = vhostd_reg_find_vf(&d->reg, e->bdf);
        if (e->pending) {   /* no answer within the bound */
            if (vf && vf->dev == e->dev)
                vdpa_vf_counters_cancel(vf->dev, e);
            e->pending = false;
            e->err = -ETIMEDOUT;
        }
        if (!vf || !vf->dev) {   /* removed meanwhile */
            json_array_append_new(a, json_pack("{s:s, s:s}", "vf", e->bdf, "error", "removed"));
            continue;
        }
        json_t *o = vf_stats_msix(d, vf);
        counters_json(o, e);
        json_array_append_new(a, o);
    }
    json_t *res = json_pack("{s:o}", "vfs", a);
    if (j->paged)
        vhostd_page_finish(res, &j->pg);
    rpc_call_result(j->c, res);
    free(j);
}

static void stats_counters_in(void *ctx, int err, const uint64_t *ctr)
{
    struct stats_entry *e = ctx;
    struct stats_job *j = e->job;
    e->pending = false;
    e->err = err;
    if (!err && ctr) {
        memcpy(e->ctr, ctr, sizeof(e->ctr));
        e->has = true;
    }
    if (--j->pending == 0)
        stats_finish(j);
}

static void stats_bound_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    stats_finish(w->data);
}

static void stats_entry_start(struct stats_job *j, struct vhostd_vf *vf)
{
    struct stats_entry *e = &j->e[j->n++];
    e->job = j;
    snprintf(e->bdf, sizeof(e->bdf), "%s", vf->rec.bdf);
    e->dev = vf->dev;
    int rc = vf->dev ? vdpa_vf_counters_async(vf->dev, stats_counters_in, e) : -ENODEV;
    if (rc == 0) {
        e->pending = true;
        j->pending++;
    } else if (rc != -ENOTSUP) {   /* no counters window: no counters, no error */
        e->err = rc;
    }
}

static int m_stats(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    json_t *jv = json_object_get(params, "vfdev");
    struct vhostd_vf *one = NULL;
    struct vhostd_page pg;
    if (jv) {
        const char *bdf = bdf_param(params, "vfdev", c);
        if (!bdf)
            return 0;
        if (!(one = vhostd_reg_find_vf(&d->reg, bdf))) {
            rpc_call_error(c, RPC_NOT_FOUND, "VF %s is not added", bdf);
            return 0;
        }
    } else if (!vhostd_page_params(params, VHOSTD_PAGE_STATS_DEFAULT, &pg, c)) {
        return 0;
    }
    unsigned cap = one ? 1 : pg.limit;
    struct stats_job *j = calloc(1, sizeof(*j) + cap * sizeof(j->e[0]));
    if (!j) {
        rpc_call_error(c, RPC_INTERNAL_ERROR, "out of memory");
        return 0;
    }
    j->d = d;
    j->c = c;
    if (one) {
        stats_entry_start(j, one);
    } else {
        j->paged = true;
        unsigned cur = 0;
        for (struct vhostd_vf *vf; (vf = vhostd_reg_next_vf(&d->reg, &cur, NULL));)
            if (vhostd_page_take(&pg) && j->n < cap)
                stats_entry_start(j, vf);
        j->pg = pg;
    }
    if (!j->pending) {
        stats_finish(j);
        return 0;
    }
    ev_timer_init(&j->bound, stats_bound_cb, VFE_TRANSPORT_TIMEOUT_MS / 1000., 0.);
    j->bound.data = j;
    ev_timer_start(d->loop, &j->bound);
    return RPC_PENDING;
}

static int m_health(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    unsigned pfs = 0, vfs = 0, failed = 0, starting = 0;
    unsigned cur = 0;
    for (struct vhostd_pf *pf; (pf = vhostd_reg_next_pf(&d->reg, &cur));) {
        pfs++;
        failed += pf->state == PF_FAILED;
        starting += pf->state == PF_STARTING;
    }
    cur = 0;
    while (vhostd_reg_next_vf(&d->reg, &cur, NULL))
        vfs++;
    unsigned ppfs, pvfs;
    unsigned pending = vhostd_prov_pending_count(&d->prov, &ppfs, &pvfs);
    const struct vhostd_prov *p = &d->prov;
    /* saved: the file has what runs (a vf_batch holds its one write to its end: not yet, but not degraded) */
    json_t *state = p->enabled ? json_pack("{s:s, s:b, s:b, s:i, s:i, s:s}", "file", p->path, "saved",
                                           !p->dirty && !p->save_held, "held_by_batch", p->save_held, "writes",
                                           p->writes, "write_failures", p->write_failures, "last_error",
                                           p->write_error)
                               : json_pack("{s:b}", "enabled", 0);
    json_t *ha = d->opt.ha_path ? vhostd_ha_health(&d->ha) : json_pack("{s:b}", "enabled", 0);
    bool ha_down = d->opt.ha_path && !json_is_true(json_object_get(ha, "connected"));
    struct vfe_devq_stats q;
    vfe_devq_stats(d->reg.devq, &q);
    /* the state file's PFs and VFs coming up, or the HA take-over before them */
    bool restoring = p->restoring || (p->enabled && starting) || d->reg.adopting_pfs || d->reg.adopting_vfs;
    /* records pending while the restore still runs are expected: restoring, not degraded */
    const char *status = failed || p->dirty || ha_down ? "degraded" : restoring ? "restoring" : pending ? "degraded" : "ok";
    json_t *res = json_pack("{s:s, s:i, s:i, s:f, s:i, s:i, s:o, s:o, s:I}", "status", status, "pfs", pfs, "vfs", vfs,
                            "uptime_s", ev_now(d->loop) - d->started_at, "pending_pfs", ppfs, "pending_vfs", pvfs,
                            "state", state, "ha", ha, "tcp_refused", (json_int_t)rpc_server_tcp_refused(d->rpc));
    json_object_set_new(res, "adding_vfs", json_integer(d->reg.adding - d->reg.adopting_vfs));
    json_object_set_new(res, "adopting_pfs", json_integer(d->reg.adopting_pfs));
    json_object_set_new(res, "adopting_vfs", json_integer(d->reg.adopting_vfs));
    json_object_set_new(res, "starting_pfs", json_integer(starting));
    json_object_set_new(res, "restoring", json_boolean(restoring));
    json_object_set_new(res, "device_jobs", json_pack("{s:i, s:i, s:i, s:i, s:I}", "queued", q.queued, "running",
                                                      q.running, "stuck", q.stuck, "threads", q.threads, "completed",
                                                      (json_int_t)q.completed));
    rpc_call_result(c, res);
    return 0;
}

/* Bind a function to vfio-pci (drivers/bus/vfio/vfio_bind.h): sysfs writes and
 * a wait of at most 1 s for the group node, on the loop (a probe is quick). */
static int m_bind(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    const char *bdf = bdf_param(params, "dev", c);
    if (!bdf)
        return 0;
    json_t *jf = json_object_get(params, "force");
    if (jf && !json_is_boolean(jf)) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"force\" must be true or false");
        return 0;
    }
    /* the bus directory is the parent of --pci-root (/sys/bus/pci/devices) */
    char bus[PATH_MAX];
    const char *root = d->opt.pci_root;
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n < 8 || n >= sizeof(bus) || strncmp(root + n - 8, "/devices", 8)) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "bind needs --pci-root to be a bus's devices directory "
                       "(/sys/bus/pci/devices), not %s", root);
        return 0;
    }
    memcpy(bus, root, n - 8);
    bus[n - 8] = '\0';
    struct vfe_bind_opts o = {.bus_root = bus, .vfio_dir = d->opt.vfio_dir, .force = json_is_true(jf),
                              .wait_ms = 1000};
    char msg[768];
    int rc = vfe_vfio_bind(&o, bdf, msg, sizeof(msg));
    if (rc < 0) {
        LOG_W("bind %s: %s", bdf, msg);
        rpc_call_error(c, rc == -ENOPKG || rc == -ENXIO ? RPC_DEVICE_ERROR : code_of(rc), "%s", msg);
        return 0;
    }
    rpc_call_result(c, json_pack("{s:s, s:s}", "dev", bdf, "message", msg));
    return 0;
}

static void upgrade_now(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* Hand everything to vfe-vhostd-ha and become the binary on disk (a planned crash). */
static int m_upgrade(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    if (!d->opt.ha_path) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "upgrade needs --ha: without vfe-vhostd-ha every device would reset");
        return 0;
    }
    if (access(d->exe, X_OK) < 0) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "%s is not executable: %s", d->exe, strerror(errno));
        return 0;
    }
    LOG_N("upgrade requested: handing over to %s", d->exe);
    d->upgrade = true;
    rpc_call_result(c, json_pack("{s:s}", "exec", d->exe));
    ev_timer_start(d->loop, &d->upgrade_t);   /* main hands over once this answer went out */
    return 0;
}

int vhostd_rpc_register(struct vhostd *d)
{
    int rc = rpc_register(d->rpc, "version", m_version, d);
    rc = rc ?: rpc_register(d->rpc, "mgmtpf", m_mgmtpf, d);
    rc = rc ?: rpc_register(d->rpc, "vf", m_vf, d);
    rc = rc ?: rpc_register(d->rpc, "vf_batch", vhostd_batch_method, d);
    rc = rc ?: rpc_register(d->rpc, "stats", m_stats, d);
    rc = rc ?: rpc_register(d->rpc, "health", m_health, d);
    rc = rc ?: rpc_register(d->rpc, "upgrade", m_upgrade, d);
    rc = rc ?: rpc_register(d->rpc, "bind", m_bind, d);
    ev_timer_init(&d->upgrade_t, upgrade_now, 0.05, 0.);
    return rc;
}
