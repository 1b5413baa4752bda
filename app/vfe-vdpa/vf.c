/* One provisioned VF: transport, device half, vhost-user session (see vf.h). */
#include "app/vfe-vdpa/vf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/vfe-vdpa/ha_record.h"
#include "drivers/bus/vfio/vfio_bind.h"
#include "lib/log/vfe_log.h"

static void vf_free(struct vhostd_vf *vf)
{
    ev_io_stop(vf->loop, &vf->req);
    vdpa_vf_close(vf->dev);
    vfe_transport_close(vf->t);
    free(vf);
}

static void vf_persist(void *ctx)
{
    struct vhostd_vf *vf = ctx;
    if (vf->persist && vf->session && !vf->removing)
        vf->persist(vf->persist_ctx, vf);
}

static bool vf_persist_reply(void *ctx, const void *reply, size_t len)
{
    struct vhostd_vf *vf = ctx;
    return vf->persist_reply && vf->session && !vf->removing && vf->persist_reply(vf->persist_ctx, vf, reply, len);
}

static struct vdpa_session_cfg session_cfg(struct vhostd_vf *vf, const struct vhostd_vf_params *p)
{
    return (struct vdpa_session_cfg){.socket_path = vf->rec.socket, .client = p->client, .perm = p->perm,
                                     .no_host_notifiers = p->no_host_notifiers, .name = vf->rec.bdf,
                                     .persist = p->persist ? vf_persist : NULL,
                                     .persist_reply = p->persist_reply ? vf_persist_reply : NULL, .persist_ctx = vf};
}

static void req_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct vhostd_vf *vf = w->data;
    uint64_t n;
    if (read(w->fd, &n, sizeof(n)) < 0)
        return;
    LOG_N("VF %s: hot-unplug requested by the host: releasing the function", vf->rec.bdf);
    ev_io_stop(loop, w);   /* asked once is enough: the removal is under way */
    if (vf->unplug && !vf->removing)
        vf->unplug(vf->unplug_ctx, vf);
}

/* The transport's request IRQ, if it has one (kernel VFIO). */
static void watch_unplug(struct vhostd_vf *vf, const struct vhostd_vf_params *p)
{
    int fd = vfe_transport_req_fd(vf->t);
    vf->unplug = p->unplug;
    vf->unplug_ctx = p->unplug_ctx;
    if (fd < 0)
        return;
    ev_io_init(&vf->req, req_cb, fd, EV_READ);
    vf->req.data = vf;
    ev_io_start(vf->loop, &vf->req);
}

/* ---- bring-up off the loop (vf.h) ---- */

struct open_job {
    struct vhostd_vf *vf;          /* the shell: the worker reads its rec only (fixed since begin) */
    struct vhostd_vf_params p;
    struct vdpa_pf_ref ref;
    bool use_ref;
    struct vfe_transport *t;       /* the job's until open_done (the worker's while it runs) */
    struct vdpa_vf *dev;           /* same */
    int err;
    char msg[512];
    vhostd_vf_opened_cb opened;
    void *ctx;
};

struct vhostd_vf *vhostd_vf_begin(struct ev_loop *loop, struct vhostd_pf *pf, const struct vhostd_vf_rec *rec)
{
    struct vhostd_vf *vf = calloc(1, sizeof(*vf));
    if (!vf)
        return NULL;
    vf->rec = *rec;
    vf->pf = pf;
    vf->loop = loop;
    vf->adding = true;
    ev_init(&vf->req, NULL);
    return vf;
}

void vhostd_vf_discard(struct vhostd_vf *vf)
{
    if (vf)
        vf_free(vf);
}

static bool is_vfio_user(const char *pci_root, const char *bdf)
{
    char sock[4200];
    struct stat st;
    snprintf(sock, sizeof(sock), "%s/%s/vfio-user.sock", pci_root, bdf);
    return stat(sock, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool no_answer(int err)
{
    return err == -ETIMEDOUT || err == -EAGAIN;
}

static void open_transport(struct open_job *j)
{
    const char *bdf = j->vf->rec.bdf;
    j->err = vfe_transport_open_in(j->p.pci_root, bdf, j->vf->rec.uuid, &j->t);
    if (j->err < 0) {
        char why[400];
        j->t = NULL;
        if (no_answer(j->err))
            snprintf(j->msg, sizeof(j->msg), "cannot open %s: its vfio-user server did not answer the negotiation "
                     "within %d ms", bdf, VFE_TRANSPORT_TIMEOUT_MS);
        else if (vfe_vfio_explain_open(j->p.pci_root, bdf, why, sizeof(why)) > 0)
            snprintf(j->msg, sizeof(j->msg), "cannot open %s: %s", bdf, why);
        else
            snprintf(j->msg, sizeof(j->msg), "cannot open %s: %s", bdf, strerror(-j->err));
    }
}

/* On a devq worker: only device calls, on a transport nobody else holds. */
static void open_work(void *arg)
{
    struct open_job *j = arg;
    if (!j->t)
        open_transport(j);
    if (!j->t)
        return;
    const char *step = NULL;
    j->dev = vdpa_vf_probe(j->use_ref ? &j->ref : NULL, (uint16_t)j->vf->rec.vf_num, j->t, &j->err, &step);
    if (!j->dev && no_answer(j->err))
        snprintf(j->msg, sizeof(j->msg), "%s: device bring-up failed: no answer to the %s request within %d ms",
                 j->vf->rec.bdf, step ? step : "?", VFE_TRANSPORT_TIMEOUT_MS);
    else if (!j->dev)
        snprintf(j->msg, sizeof(j->msg), "%s: device bring-up failed at %s: %s", j->vf->rec.bdf,
                 step ? step : "?", strerror(-j->err));
}

static void job_release(struct open_job *j)
{
    vdpa_vf_discard(j->dev);
    vfe_transport_close(j->t);
    j->dev = NULL;
    j->t = NULL;
}

/* On the loop: the transport and the device half come back from the worker. */
static void open_done(void *arg, int status)
{
    struct open_job *j = arg;
    struct vhostd_vf *vf = j->vf;
    int rc = status < 0 ? status : j->err;
    if (status < 0)
        snprintf(j->msg, sizeof(j->msg), "%s: not added: the daemon is stopping", vf->rec.bdf);
    if (rc == 0 && (rc = vdpa_vf_attach(j->dev, vf->loop, vf->rec.uuid)) < 0)
        snprintf(j->msg, sizeof(j->msg), "%s: DMA domain %s: %s", vf->rec.bdf, *vf->rec.uuid ? vf->rec.uuid : "(own)",
                 strerror(-rc));
    if (rc < 0) {
        job_release(j);
    } else {
        vf->t = j->t;
        vf->dev = j->dev;
        vf->persist = j->p.persist;
        vf->persist_reply = j->p.persist_reply;
        vf->persist_ctx = j->p.persist_ctx;
        struct vdpa_session_cfg sc = session_cfg(vf, &j->p);
        vf->session = vdpa_session_create(vf->loop, vf->dev, &sc, &rc);
        if (!vf->session) {
            snprintf(j->msg, sizeof(j->msg), "vhost-user socket %s: %s", vf->rec.socket, strerror(-rc));
            vdpa_vf_close(vf->dev);
            vfe_transport_close(vf->t);
            vf->dev = NULL;
            vf->t = NULL;
        } else {
            watch_unplug(vf, &j->p);
            vf->adding = false;
            j->msg[0] = '\0';
        }
    }
    vhostd_vf_opened_cb opened = j->opened;
    void *ctx = j->ctx;
    char msg[sizeof(j->msg)];
    memcpy(msg, j->msg, sizeof(msg));
    free(j);
    opened(ctx, vf, rc, msg);
}

int vhostd_vf_open_async(struct vhostd_vf *vf, struct vfe_devq *q, const struct vhostd_vf_params *p,
                         vhostd_vf_opened_cb opened, void *ctx, char *msg, size_t len)
{
    struct open_job *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(msg, len, "out of memory");
        return -ENOMEM;
    }
    *j = (struct open_job){.vf = vf, .p = *p, .opened = opened, .ctx = ctx};
    if (!vf->rec.direct) {
        j->ref = (struct vdpa_pf_ref){vf->pf ? &vf->pf->mig : NULL, vf->pf ? vf->pf->iova : NULL};
        j->use_ref = true;
    }
    /* Kernel VFIO shares process-wide container and group lists with the
     * loop (closes, adoptions, DMA domains): its open stays here, its probe
     * (reset, config reads) goes to the worker.  A vfio-user open touches
     * nothing shared. */
    if (!is_vfio_user(p->pci_root, vf->rec.bdf)) {
        open_transport(j);
        if (!j->t) {
            snprintf(msg, len, "%s", j->msg);
            int rc = j->err;
            free(j);
            return rc;
        }
    }
    /* a PF's VFs share its device: one that stopped answering waits behind the others */
    int rc = vfe_devq_submit_grouped(q, vf->rec.pf[0] ? vf->rec.pf : vf->rec.bdf, vf->rec.bdf, open_work, open_done, j);
    if (rc < 0) {
        snprintf(msg, len, "%s: bring-up cannot be queued: %s", vf->rec.bdf, strerror(-rc));
        job_release(j);
        free(j);
    }
    return rc;
}

static void finish_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhostd_vf *vf = w->data;
    void (*done)(void *) = vf->removed;
    void *ctx = vf->removed_ctx;
    LOG_N("VF %s removed", vf->rec.bdf);
    vf_free(vf);
    if (done)
        done(ctx);
}

/* The session may call this inside vdpa_session_destroy: finish from the loop. */
static void session_gone(void *ctx)
{
    struct vhostd_vf *vf = ctx;
    vf->session = NULL;
    ev_timer_start(vf->loop, &vf->later);
}

void vhostd_vf_close(struct vhostd_vf *vf, void (*done)(void *ctx), void *ctx)
{
    vf->removing = true;
    ev_io_stop(vf->loop, &vf->req);
    vf->removed = done;
    vf->removed_ctx = ctx;
    ev_timer_init(&vf->later, finish_cb, 0., 0.);
    vf->later.data = vf;
    vdpa_session_destroy(vf->session, session_gone, vf);
}

/* ---- HA ---- */

int vhostd_vf_export(struct vhostd_vf *vf, uint8_t *buf, size_t cap, size_t *len, int *fds, unsigned max_fds,
                     unsigned *nfds)
{
    static uint8_t sb[VDPA_SESSION_SNAPSHOT_MAX];
    uint8_t tb[VFE_TRANSPORT_BLOB_MAX], vb[VDPA_VF_SNAPSHOT_MAX];
    size_t tl, vl, sl;
    unsigned tn, sn;
    if (!vf->session || vf->removing)
        return -ENOTCONN;
    int rc = vfe_transport_export(vf->t, tb, sizeof(tb), &tl, fds, max_fds, &tn);
    if (rc == 0)
        rc = vdpa_vf_export(vf->dev, vb, sizeof(vb), &vl);
    if (rc == 0)
        rc = vdpa_session_export(vf->session, sb, sizeof(sb), &sl, fds + tn, max_fds - tn, &sn);
    if (rc < 0)
        return rc;
    struct ha_rec r = {.kind = HA_REC_VF, .vf = vf->rec, .max_pairs = vdpa_vf_max_pairs(vf->dev),
                       .device_features = vdpa_vf_device_features(vf->dev), .nsec = 3,
                       .sec = {{tb, (uint32_t)tl, tn}, {vb, (uint32_t)vl, 0}, {sb, (uint32_t)sl, sn}}};
    snprintf(r.bdf, sizeof(r.bdf), "%s", vf->rec.bdf);
    *nfds = tn + sn;
    vf->conn_index = vdpa_session_connected(vf->session) ? (int)tn : -1;   /* the session's first fd */
    return ha_rec_encode(&r, buf, cap, len);
}

int vhostd_vf_conn_fd_index(struct vhostd_vf *vf)
{
    return vf->conn_index;
}

/* ---- HA take-over off the loop (vf.h) ---- */

struct vhostd_vf_adoption {
    struct vhostd_vf *vf;          /* the shell: the worker reads its rec only */
    struct ha_rec r;               /* sections point into the fetched record (ha.c keeps it) */
    int *fds;                      /* the record's: the transport's, then the session's */
    unsigned nfds;
    bool transport_taken;          /* fds[0..tn) are the transport's now, or closed */
    char root[4096];
    struct vhostd_vf_params p;
    struct vfe_transport *t;       /* the job's until adopt_done */
    struct vfe_virtio_pci vp;      /* read by the worker */
    struct vfe_vpci_state st;
    int err;
    const char *step;
    vhostd_vf_adopted_cb cb;
    void *ctx;
};

static void close_all(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

struct vhostd_vf *vhostd_vf_adopt_begin(struct ev_loop *loop, struct vhostd_pf *pf, const struct ha_rec *r,
                                        const int *fds, unsigned nfds, char *msg, size_t len, int *err)
{
    struct vhostd_vf_adoption *a = NULL;
    struct vhostd_vf *vf = NULL;
    *err = -EINVAL;
    if (r->kind == HA_REC_VF && r->nsec == 3 && !r->sec[1].nfds && r->sec[0].nfds <= nfds) {
        *err = -ENOMEM;
        if ((a = calloc(1, sizeof(*a))) && (vf = vhostd_vf_begin(loop, pf, &r->vf)))
            a->fds = malloc((nfds ? nfds : 1) * sizeof(int));
    }
    if (!a || !vf || !a->fds) {
        snprintf(msg, len, "VF %s: %s", r->bdf, *err == -EINVAL ? "not a VF record this daemon reads" : "out of memory");
        unsigned tn = r->sec[0].nfds <= nfds ? r->sec[0].nfds : nfds;
        close_all(fds, tn);
        vdpa_session_end_fds(fds + tn, nfds - tn);
        if (a)
            free(a->fds);
        free(a);
        free(vf);
        return NULL;
    }
    memcpy(a->fds, fds, nfds * sizeof(int));
    a->nfds = nfds;
    a->r = *r;
    a->vf = vf;
    vf->adopting = a;
    *err = 0;
    return vf;
}

/* The record's fds not handed to anything yet.  end: the session ends as
 * for a record that cannot be continued (the front-end sees it and
 * reconnects); otherwise only this process's copies close (the HA process
 * still holds the VF: the daemon stops). */
static void adoption_release(struct vhostd_vf_adoption *a, bool end)
{
    unsigned tn = a->r.sec[0].nfds;
    if (!a->transport_taken)
        close_all(a->fds, tn);
    if (end)
        vdpa_session_end_fds(a->fds + tn, a->nfds - tn);
    else
        close_all(a->fds + tn, a->nfds - tn);
    vfe_transport_close(a->t);
    free(a->fds);
    free(a);
}

void vhostd_vf_adopt_cancel(struct vhostd_vf *vf, bool end_session)
{
    if (!vf)
        return;
    if (vf->adopting)
        adoption_release(vf->adopting, end_session);
    vf->adopting = NULL;
    free(vf);
}

/* On a devq worker: the transport continued (its resync probe) and the
 * virtio-pci state read back: every device round trip of the take-over. */
static void vf_adopt_work(void *arg)
{
    struct vhostd_vf_adoption *a = arg;
    const struct ha_rec *r = &a->r;
    unsigned tn = r->sec[0].nfds;
    a->step = "transport cannot be taken over";
    a->err = vfe_transport_adopt(a->root, r->bdf, r->sec[0].data, r->sec[0].len, a->fds, tn, &a->t);
    if (a->err < 0) {
        a->t = NULL;
        close_all(a->fds, tn);
    }
    a->transport_taken = true;
    if (a->err == 0 && (a->step = "session cannot be continued"))
        a->err = vfe_vpci_adopt(&a->vp, a->t, &a->st);
}

/* On the loop: the session and its fds, the DMA domain, the watchers. */
static void vf_adopt_done(void *arg, int status)
{
    struct vhostd_vf_adoption *a = arg;
    struct vhostd_vf *vf = a->vf;
    const struct ha_rec *r = &a->r;
    unsigned tn = r->sec[0].nfds;
    int rc = status < 0 ? status : a->err;
    char msg[300] = "";
    vhostd_vf_adopted_cb cb = a->cb;
    void *ctx = a->ctx;
    vf->adopting = NULL;
    if (rc == 0) {
        vf->persist = a->p.persist;
        vf->persist_reply = a->p.persist_reply;
        vf->persist_ctx = a->p.persist_ctx;
        vf->t = a->t;
        struct vdpa_pf_ref ref = {&vf->pf->mig, vf->pf->iova};
        struct vdpa_session_adopt_in in = {.session_blob = r->sec[2].data, .session_len = r->sec[2].len,
                                           .fds = a->fds + tn, .nfds = a->nfds - tn, .vf_blob = r->sec[1].data,
                                           .vf_len = r->sec[1].len, .pf = &ref, .t = vf->t,
                                           .dma_domain = vf->rec.uuid, .max_pairs = r->max_pairs,
                                           .device_features = r->device_features, .vp = &a->vp, .vp_state = &a->st};
        struct vdpa_session_cfg sc = session_cfg(vf, &a->p);
        vf->session = vdpa_session_adopt(vf->loop, &sc, &in, &vf->dev, &rc);   /* takes the session's fds */
        a->t = NULL;
        if (!vf->session) {
            snprintf(msg, sizeof(msg), "VF %s: session cannot be continued: %s", r->bdf, strerror(-rc));
            vfe_transport_close(vf->t);
            vf->t = NULL;
        } else {
            vf->adding = false;
        }
        free(a->fds);
        free(a);
    } else {
        if (status < 0)
            snprintf(msg, sizeof(msg), "VF %s: take-over abandoned: the daemon is stopping", r->bdf);
        else
            snprintf(msg, sizeof(msg), "VF %s: %s: %s%s", r->bdf, a->step, strerror(-rc),
                     rc == -ETIMEDOUT ? " (the device did not answer)" : "");
        adoption_release(a, status == 0);   /* the daemon stopping: the HA process keeps the session */
    }
    cb(ctx, vf, rc, msg);   /* the owner discards the shell on failure */
}

int vhostd_vf_adopt_start(struct vhostd_vf *vf, struct vfe_devq *q, const struct vhostd_vf_params *p,
                          vhostd_vf_adopted_cb cb, void *ctx)
{
    struct vhostd_vf_adoption *a = vf->adopting;
    a->p = *p;
    snprintf(a->root, sizeof(a->root), "%s", p->pci_root);
    a->cb = cb;
    a->ctx = ctx;
    /* behind its PF's other devices: one that stopped answering waits with its PF's group */
    return vfe_devq_submit_grouped(q, vf->rec.pf, vf->rec.bdf, vf_adopt_work, vf_adopt_done, a);
}

void vhostd_vf_abandon(struct vhostd_vf *vf)
{
    if (!vf)
        return;
    vdpa_session_abandon(vf->session);
    vdpa_vf_abandon(vf->dev);
    ev_io_stop(vf->loop, &vf->req);
    vfe_transport_close(vf->t);
    free(vf);
}
