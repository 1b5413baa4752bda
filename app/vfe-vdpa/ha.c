/* vfe-vhostd's side of vfe-vhostd-ha: deposits and take-over (see ha.h). */
#include "app/vfe-vdpa/ha.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "app/vfe-vdpa/ha_record.h"
#include "lib/log/vfe_log.h"

#define HA_CALL_TIMEOUT_MS 2000
#define RECORD_MAX (256u * 1024)

static uint8_t record_buf[RECORD_MAX];

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void key_of(char *key, size_t len, const char *kind, const char *bdf)
{
    snprintf(key, len, "%s/%s", kind, bdf);
}

/* A fetched record hands its fds over: the record forgets them. */
static void forget_fds(struct vfe_ha_record *rec)
{
    for (unsigned i = 0; i < rec->nfds; i++)
        rec->fds[i] = -1;
}

int vhostd_ha_fetch(struct vhostd_ha *h, struct ev_loop *loop, const char *path, struct vhostd_registry *reg)
{
    memset(h, 0, offsetof(struct vhostd_ha, fallback_rec));
    h->nfallback = 0;
    h->loop = loop;
    h->path = path;
    h->reg = reg;
    reg->ha = h;
    /* a fetch returns every fd the HA process holds at once */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int err;
    const char *why = NULL;
    double t0 = mono_ms();
    h->client = vfe_ha_client_connect(path, "vfe-vhostd", HA_CALL_TIMEOUT_MS, &err, &why);
    if (!h->client) {
        LOG_W("HA: %s does not answer (%s): starting without it; everything is deposited once it does", path,
              why ? why : strerror(-err));
        return err;
    }
    int rc = vfe_ha_get(h->client, NULL, &h->recs, &h->nrecs);
    if (rc < 0) {
        LOG_E("HA: fetching the records from %s: %s", path, vfe_ha_client_error(h->client));
        vfe_ha_client_close(h->client);
        h->client = NULL;
        return rc;
    }
    h->resume_ms = mono_ms() - t0;   /* completed by vhostd_ha_adopt */
    LOG_N("HA: %s holds %u records", path, h->nrecs);
    return 0;
}

/* The HA process drops a record at once (its copies of the fds close). */
static void drop_now(struct vhostd_ha *h, const char *key)
{
    int rc = h->client ? vfe_ha_del(h->client, key) : -ENOTCONN;
    if (rc < 0 && rc != -ENOENT)
        LOG_W("HA: deleting %s: %s", key, h->client ? vfe_ha_client_error(h->client) : strerror(-rc));
}

static void remember_fallback(struct vhostd_ha *h, const struct vhostd_vf_rec *rec)
{
    if (h->nfallback < VHOSTD_MAX_MANAGED_VFS)
        h->fallback_rec[h->nfallback++] = *rec;
}

/* One fetched record on its way (vhostd_ha_adopt). */
enum { AD_SKIP, AD_WAIT, AD_RUN, AD_DONE };
struct ha_adoption {
    struct vhostd_ha *h;
    struct ha_rec r;               /* sections point into h->recs */
    uint8_t state;
};

static bool is_stopping(const struct vhostd_ha *h, int err)
{
    return h->handing_over || err == -ESHUTDOWN || err == -ECANCELED;
}

static void one_done(struct vhostd_ha *h, struct ha_adoption *ad)
{
    ad->state = AD_DONE;
    if (--h->pending == 0 && !h->handing_over)
        ev_timer_start(h->loop, &h->finished);   /* from the loop, after this callback chain */
}

/* A VF record that cannot be continued: the HA process lets go of it (the
 * device resets, the front-end reconnects), it is provisioned afresh once
 * its PF is up. */
static void vf_reset(struct vhostd_ha *h, const struct ha_rec *r, const char *msg)
{
    char key[64];
    key_of(key, sizeof(key), "vf", r->bdf);
    LOG_E("HA: %s: reset and provisioned afresh", msg);
    drop_now(h, key);
    h->reset_vfs++;
    remember_fallback(h, &r->vf);
}

static void pf_reset(struct vhostd_ha *h, const char *bdf, const char *msg)
{
    char key[64], m2[256];
    key_of(key, sizeof(key), "pf", bdf);
    LOG_E("HA: %s: reset and provisioned afresh", msg);
    drop_now(h, key);
    h->reset_pfs++;
    vhostd_reg_add_pf(h->reg, bdf, NULL, NULL, m2, sizeof(m2));
}

static void vf_adopted(void *ctx, const char *bdf, int err, const char *msg)
{
    struct ha_adoption *ad = ctx;
    struct vhostd_ha *h = ad->h;
    if (!err)
        h->resumed_vfs++;
    else if (!is_stopping(h, err))
        vf_reset(h, &ad->r, msg);
    else
        LOG_N("HA: %s; its record stays with %s", msg, h->path);
    one_done(h, ad);
}

/* The PF's take-over ended: its VFs' take-overs start, or they go too. */
static void pf_adopted(void *ctx, const char *bdf, int err, const char *msg)
{
    struct ha_adoption *ad = ctx;
    struct vhostd_ha *h = ad->h;
    bool stopping = is_stopping(h, err);
    if (!err)
        h->resumed_pfs++;
    for (unsigned i = 0; i < h->nrecs; i++) {
        struct ha_adoption *v = &h->adoptions[i];
        if (v->state != AD_WAIT || v->r.kind != HA_REC_VF || strcmp(v->r.vf.pf, bdf))
            continue;
        char m[512];
        int rc = err ? -ENODEV : vhostd_reg_adopt_vf_start(h->reg, v->r.bdf, vf_adopted, v);
        if (rc == 0) {
            v->state = AD_RUN;
            continue;
        }
        vhostd_reg_adopt_vf_cancel(h->reg, v->r.bdf, !stopping);
        snprintf(m, sizeof(m), "VF %s: %s", v->r.bdf, err ? "its PF was not taken over" : strerror(-rc));
        if (!stopping)
            vf_reset(h, &v->r, m);
        one_done(h, v);
    }
    if (err && !stopping)
        pf_reset(h, bdf, msg);
    else if (err)
        LOG_N("HA: %s; its record and its VFs' stay with %s", msg, h->path);
    one_done(h, ad);
}

/* Decode a fetched record; a refused one is dropped (false). */
static bool decode(struct vhostd_ha *h, struct vfe_ha_record *rec, bool pf, struct ha_rec *r)
{
    const char *why = "";
    int rc = ha_rec_decode(rec->blob, rec->blob_len, rec->nfds, r, &why);
    if (rc == 0 && (r->kind != (pf ? HA_REC_PF : HA_REC_VF) || strcmp(r->bdf, rec->key + 3)))
        rc = -EINVAL, why = "key and record disagree";
    if (rc == 0)
        return true;
    LOG_E("HA: record %s refused (%s): %s %s is provisioned afresh", rec->key, why, pf ? "PF" : "VF", rec->key + 3);
    if (!pf)
        vdpa_session_end_fds(rec->fds, rec->nfds), forget_fds(rec);
    drop_now(h, rec->key);
    if (pf)
        h->reset_pfs++;
    else
        h->reset_vfs++;
    return false;
}

static void start_kind(struct vhostd_ha *h, enum ha_rec_kind kind)
{
    char msg[512];
    for (unsigned i = 0; i < h->nrecs; i++) {
        struct vfe_ha_record *rec = &h->recs[i];
        struct ha_adoption *ad = &h->adoptions[i];
        bool pf = !strncmp(rec->key, "pf/", 3), vf = !strncmp(rec->key, "vf/", 3);
        if (!pf && !vf) {
            if (kind == HA_REC_VF) {   /* once, in the second pass */
                LOG_W("HA: record %s is not vfe-vhostd's: dropped", rec->key);
                drop_now(h, rec->key);
            }
            continue;
        }
        if ((kind == HA_REC_PF) != pf || !decode(h, rec, pf, &ad->r))
            continue;
        int rc = pf ? vhostd_reg_adopt_pf_async(h->reg, &ad->r, rec->fds, rec->nfds, pf_adopted, ad, msg, sizeof(msg))
                    : vhostd_reg_adopt_vf_hold(h->reg, &ad->r, rec->fds, rec->nfds, msg, sizeof(msg));
        forget_fds(rec);   /* taken either way */
        if (rc == 0) {
            ad->state = pf ? AD_RUN : AD_WAIT;
            h->pending++;
        } else if (pf) {
            pf_reset(h, ad->r.bdf, msg);
        } else {
            vf_reset(h, &ad->r, msg);
        }
    }
}

/* Every take-over ended (from the loop, never inside a job's callback). */
static void finished_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhostd_ha *h = w->data;
    free(h->adoptions);
    h->adoptions = NULL;
    vfe_ha_records_free(h->recs, h->nrecs);
    h->recs = NULL;
    h->nrecs = 0;
    if (h->client) {
        h->resume_ms += mono_ms() - h->adopt_t0;
        h->resumed_at = (double)time(NULL);
    }
    if (h->resumed_pfs || h->resumed_vfs || h->reset_pfs || h->reset_vfs)
        LOG_N("HA: took over %u PFs and %u VFs without a reset in %.1f ms; %u PFs and %u VFs reset", h->resumed_pfs,
              h->resumed_vfs, h->resume_ms, h->reset_pfs, h->reset_vfs);
    /* VFs whose PF runs: provisioned afresh now; the others once their PF is up */
    for (unsigned i = 0; i < h->nfallback; i++) {
        struct vhostd_pf *pf = vhostd_reg_find_pf(h->reg, h->fallback_rec[i].pf);
        if (pf && pf->state == PF_READY)
            vhostd_ha_pf_ready(h, pf->bdf);
    }
    h->adopted(h->adopted_ctx);
}

void vhostd_ha_adopt(struct vhostd_ha *h, void (*adopted)(void *ctx), void *ctx)
{
    h->adopted = adopted;
    h->adopted_ctx = ctx;
    ev_timer_init(&h->finished, finished_cb, 0., 0.);
    h->finished.data = h;
    h->adopt_t0 = mono_ms();
    h->pending = 0;
    if (h->client && h->nrecs && !(h->adoptions = calloc(h->nrecs, sizeof(*h->adoptions)))) {
        LOG_E("HA: out of memory for %u records: nothing is taken over", h->nrecs);
        vfe_ha_records_free(h->recs, h->nrecs);   /* their fds close; the HA process keeps its copies */
        h->recs = NULL;
        h->nrecs = 0;
    }
    for (unsigned i = 0; h->adoptions && i < h->nrecs; i++)
        h->adoptions[i].h = h;
    if (h->client && h->adoptions) {
        start_kind(h, HA_REC_PF);
        start_kind(h, HA_REC_VF);
    }
    if (h->pending)
        LOG_N("HA: taking over %u PFs and %u VFs off the loop", h->reg->adopting_pfs, h->reg->adopting_vfs);
    else
        ev_timer_start(h->loop, &h->finished);
}

bool vhostd_ha_adopting(const struct vhostd_ha *h)
{
    return h->pending > 0;
}

void vhostd_ha_pf_ready(struct vhostd_ha *h, const char *pf)
{
    char msg[512];
    for (unsigned i = 0; h && i < h->nfallback;) {
        const struct vhostd_vf_rec *rec = &h->fallback_rec[i];
        if (strcmp(rec->pf, pf)) {
            i++;
            continue;
        }
        if (vhostd_reg_add_vf_mode(h->reg, rec->bdf, rec->socket, rec->uuid, rec->direct, NULL, NULL, msg,
                                   sizeof(msg)) < 0)
            LOG_E("HA: VF %s could not be provisioned afresh: %s", rec->bdf, msg);
        h->fallback_rec[i] = h->fallback_rec[--h->nfallback];
    }
}

/* ---- running ---- */

static void count_deposit(struct vhostd_ha *h, size_t len, double t0)
{
    h->deposits++;
    h->deposit_ns += (uint64_t)((mono_ms() - t0) * 1e6);
    h->last_record_bytes = len;
    h->record_bytes += len;
}

static void put_record(struct vhostd_ha *h, const char *kind, const char *bdf, size_t len, const int *fds,
                       unsigned nfds, double t0)
{
    char key[64];
    key_of(key, sizeof(key), kind, bdf);
    int rc = h->client ? vfe_ha_put(h->client, key, record_buf, (uint32_t)len, fds, nfds)
                       : vfe_ha_link_put(h->link, key, record_buf, (uint32_t)len, fds, nfds);
    if (rc < 0) {
        h->deposit_failures++;
        LOG_W("HA: depositing %s: %s", key, strerror(-rc));
        return;
    }
    LOG_D("HA: %s deposited: %zu bytes, %u fds%s", key, len, nfds, rc == 0 && !h->client ? " (queued)" : "");
    count_deposit(h, len, t0);
}

static bool can_put(const struct vhostd_ha *h)
{
    return h && (h->client || (h->link && vfe_ha_link_connected(h->link)));
}

void vhostd_ha_put_pf(struct vhostd_ha *h, struct vhostd_pf *pf)
{
    if (!can_put(h))
        return;
    double t0 = mono_ms();
    int fds[VFE_HA_MAX_RECORD_FDS];
    unsigned n;
    size_t len;
    int rc = vhostd_pf_export(pf, record_buf, sizeof(record_buf), &len, fds, VFE_HA_MAX_RECORD_FDS, &n);
    if (rc == -EAGAIN)
        return;
    if (rc < 0) {
        LOG_W("HA: PF %s cannot be deposited: %s (a restart resets it)", pf->bdf, strerror(-rc));
        h->deposit_failures++;
        return;
    }
    pf->ha_iova_changes = vfe_pf_iova_changes(pf->iova);
    put_record(h, "pf", pf->bdf, len, fds, n, t0);
}

/* Export vf into record_buf (its PF first when the PF's IOVA space changed:
 * a VF's dirty log lives there).  0, or -errno (-ENOTCONN: nothing to keep). */
static int export_vf(struct vhostd_ha *h, struct vhostd_vf *vf, size_t *len, int *fds, unsigned *nfds)
{
    if (vf->pf && vf->pf->ha_iova_changes != vfe_pf_iova_changes(vf->pf->iova))
        vhostd_ha_put_pf(h, vf->pf);
    int rc = vhostd_vf_export(vf, record_buf, sizeof(record_buf), len, fds, VFE_HA_MAX_RECORD_FDS, nfds);
    if (rc < 0 && rc != -ENOTCONN) {
        LOG_W("HA: VF %s cannot be deposited: %s", vf->rec.bdf, strerror(-rc));
        h->deposit_failures++;
    }
    return rc;
}

void vhostd_ha_put_vf(struct vhostd_ha *h, struct vhostd_vf *vf)
{
    if (!can_put(h))
        return;
    double t0 = mono_ms();
    int fds[VFE_HA_MAX_RECORD_FDS];
    unsigned n;
    size_t len;
    if (export_vf(h, vf, &len, fds, &n) == 0)
        put_record(h, "vf", vf->rec.bdf, len, fds, n, t0);
}

bool vhostd_ha_put_vf_reply(struct vhostd_ha *h, struct vhostd_vf *vf, const void *reply, size_t reply_len)
{
    if (!h || h->client || !h->link || !vfe_ha_link_connected(h->link))
        return false;
    double t0 = mono_ms();
    int fds[VFE_HA_MAX_RECORD_FDS];
    unsigned n;
    size_t len;
    int conn;
    if (export_vf(h, vf, &len, fds, &n) < 0 || (conn = vhostd_vf_conn_fd_index(vf)) < 0)
        return false;
    char key[64];
    key_of(key, sizeof(key), "vf", vf->rec.bdf);
    if (vfe_ha_link_put_send(h->link, key, record_buf, (uint32_t)len, fds, n, (unsigned)conn, reply,
                             (uint32_t)reply_len) != 1)
        return false;   /* nothing was sent: the caller writes the reply itself */
    LOG_D("HA: %s deposited with its reply: %zu bytes, %u fds", key, len, n);
    count_deposit(h, len, t0);
    return true;
}

void vhostd_ha_del(struct vhostd_ha *h, const char *kind, const char *bdf)
{
    char key[64];
    key_of(key, sizeof(key), kind, bdf);
    if (h && h->client)
        drop_now(h, key);
    else if (h && h->link)
        vfe_ha_link_del(h->link, key);
}

static void put_all(struct vhostd_ha *h)
{
    unsigned c = 0;
    struct vhostd_pf *pf;
    while ((pf = vhostd_reg_next_pf(h->reg, &c)))
        vhostd_ha_put_pf(h, pf);
    c = 0;
    struct vhostd_vf *vf;
    while ((vf = vhostd_reg_next_vf(h->reg, &c, NULL)))
        vhostd_ha_put_vf(h, vf);
}

static void link_up(void *ctx)
{
    struct vhostd_ha *h = ctx;
    LOG_N("HA: connected to %s: depositing every PF and VF", h->path);
    put_all(h);
}

static void link_down(void *ctx, int err, const char *why)
{
    struct vhostd_ha *h = ctx;
    LOG_W("HA: %s lost (%s): the devices run on; everything is deposited again when it answers", h->path,
          why ? why : strerror(err > 0 ? err : -err));
}

int vhostd_ha_link_start(struct vhostd_ha *h)
{
    static const struct vfe_ha_link_ops ops = {.up = link_up, .down = link_down};
    struct vfe_ha_handover ho;
    if (h->client && vfe_ha_client_release(h->client, &ho) == 0) {
        /* the start's connection goes on as the link: no moment without a place to deposit */
        h->client = NULL;
        h->link = vfe_ha_link_create_connected(h->loop, h->path, "vfe-vhostd", &ops, h, &ho);
        if (h->link)
            put_all(h);   /* what was taken over, as it is now (its resume count included) */
    } else {
        h->client = NULL;
        h->link = vfe_ha_link_create(h->loop, h->path, "vfe-vhostd", &ops, h);
    }
    return h->link ? 0 : -ENOMEM;
}

void vhostd_ha_handover(struct vhostd_ha *h)
{
    h->handing_over = true;
    ev_timer_stop(h->loop, &h->finished);
    vfe_ha_link_destroy(h->link);
    h->link = NULL;
    int err;
    const char *why = NULL;
    if (!h->client)   /* still the start's connection while take-overs run */
        h->client = vfe_ha_client_connect(h->path, "vfe-vhostd", HA_CALL_TIMEOUT_MS, &err, &why);
    if (!h->client) {
        LOG_E("HA: %s does not answer (%s): the last changes are not deposited", h->path, why ? why : strerror(-err));
        return;
    }
    put_all(h);
    vfe_ha_client_close(h->client);
    h->client = NULL;
    LOG_N("HA: every PF and VF deposited with %s for the next vfe-vhostd", h->path);
}

void vhostd_ha_close(struct vhostd_ha *h)
{
    if (h->loop)
        ev_timer_stop(h->loop, &h->finished);
    free(h->adoptions);
    h->adoptions = NULL;
    vfe_ha_link_destroy(h->link);
    h->link = NULL;
    if (h->client)
        vfe_ha_client_close(h->client);
    h->client = NULL;
    vfe_ha_records_free(h->recs, h->nrecs);
    h->recs = NULL;
    h->nrecs = 0;
}

json_t *vhostd_ha_health(const struct vhostd_ha *h)
{
    struct vfe_ha_link_stats st;
    memset(&st, 0, sizeof(st));
    if (h->link)
        vfe_ha_link_stats(h->link, &st);
    if (!st.connected)
        memset(&st.held, 0, sizeof(st.held));   /* what a lost HA process held is gone with it */
    json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "socket", h->path, "connected",
                          st.connected, "records", (json_int_t)st.held.records, "fds", (json_int_t)st.held.fds,
                          "bytes", (json_int_t)st.held.bytes, "deposits", (json_int_t)h->deposits,
                          "deposit_failures", (json_int_t)(h->deposit_failures + st.errors), "reconnects",
                          (json_int_t)st.reconnects, "queued", (json_int_t)st.queued, "last_record_bytes",
                          (json_int_t)h->last_record_bytes, "deposit_us_avg",
                          (json_int_t)(h->deposits ? h->deposit_ns / h->deposits / 1000 : 0));
    if (st.last_err)
        json_object_set_new(j, "last_error", json_string(st.last_why));
    if (h->resumed_at > 0)
        json_object_set_new(j, "last_resume",
                            json_pack("{s:I, s:f, s:i, s:i, s:i, s:i}", "at", (json_int_t)h->resumed_at, "ms",
                                      h->resume_ms, "pfs", h->resumed_pfs, "vfs", h->resumed_vfs, "reset_pfs",
                                      h->reset_pfs, "reset_vfs", h->reset_vfs));
    return j;
}
