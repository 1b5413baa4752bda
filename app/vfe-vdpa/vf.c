/* One provisioned VF: transport, device half, vhost-user session (see vf.h). */
#include "app/vfe-vdpa/vf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct vhostd_vf *vhostd_vf_open(struct ev_loop *loop, const struct vhostd_vf_params *p, struct vhostd_pf *pf,
                                 const struct vhostd_vf_rec *rec, char *msg, size_t len, int *err)
{
    struct vhostd_vf *vf = calloc(1, sizeof(*vf));
    if (!vf) {
        snprintf(msg, len, "out of memory");
        *err = -ENOMEM;
        return NULL;
    }
    vf->rec = *rec;
    vf->pf = pf;
    vf->loop = loop;
    ev_init(&vf->req, NULL);
    int rc = vfe_transport_open_in(p->pci_root, rec->bdf, rec->uuid, &vf->t);
    if (rc < 0) {
        char why[512];
        if (vfe_vfio_explain_open(p->pci_root, rec->bdf, why, sizeof(why)) > 0)
            snprintf(msg, len, "cannot open %s: %s", rec->bdf, why);
        else
            snprintf(msg, len, "cannot open %s: %s", rec->bdf, strerror(-rc));
        free(vf);
        *err = rc;
        return NULL;
    }
    struct vdpa_pf_ref ref = {pf ? &pf->mig : NULL, pf ? pf->iova : NULL};
    vf->dev = vdpa_vf_open(loop, rec->direct ? NULL : &ref, (uint16_t)rec->vf_num, vf->t, vf->rec.uuid);
    if (!vf->dev) {
        *err = errno ? -errno : -EIO;
        snprintf(msg, len, "%s: device bring-up failed: %s", rec->bdf, strerror(-*err));
        vf_free(vf);
        return NULL;
    }
    vf->persist = p->persist;
    vf->persist_reply = p->persist_reply;
    vf->persist_ctx = p->persist_ctx;
    struct vdpa_session_cfg sc = session_cfg(vf, p);
    vf->session = vdpa_session_create(loop, vf->dev, &sc, &rc);
    if (!vf->session) {
        snprintf(msg, len, "vhost-user socket %s: %s", vf->rec.socket, strerror(-rc));
        vf_free(vf);
        *err = rc;
        return NULL;
    }
    watch_unplug(vf, p);
    *err = 0;
    return vf;
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

struct vhostd_vf *vhostd_vf_adopt(struct ev_loop *loop, const struct vhostd_vf_params *p, struct vhostd_pf *pf,
                                  const struct ha_rec *r, const int *fds, unsigned nfds, char *msg, size_t len,
                                  int *err)
{
    unsigned tn = r->sec[0].nfds;
    struct vhostd_vf *vf = r->kind == HA_REC_VF && r->nsec == 3 && !r->sec[1].nfds ? calloc(1, sizeof(*vf)) : NULL;
    if (!vf) {
        snprintf(msg, len, "VF %s: not a VF record this daemon reads", r->bdf);
        for (unsigned i = 0; i < tn; i++)
            close(fds[i]);
        vdpa_session_end_fds(fds + tn, nfds - tn);
        *err = -EINVAL;
        return NULL;
    }
    vf->rec = r->vf;
    vf->pf = pf;
    vf->loop = loop;
    ev_init(&vf->req, NULL);
    vf->persist = p->persist;
    vf->persist_reply = p->persist_reply;
    vf->persist_ctx = p->persist_ctx;
    int rc = vfe_transport_adopt(p->pci_root, r->bdf, r->sec[0].data, r->sec[0].len, fds, tn, &vf->t);
    if (rc < 0) {
        snprintf(msg, len, "VF %s: transport cannot be taken over: %s", r->bdf, strerror(-rc));
        for (unsigned i = 0; i < tn; i++)
            close(fds[i]);
        vdpa_session_end_fds(fds + tn, nfds - tn);
        free(vf);
        *err = rc;
        return NULL;
    }
    struct vdpa_pf_ref ref = {&pf->mig, pf->iova};
    struct vdpa_session_adopt_in in = {.session_blob = r->sec[2].data, .session_len = r->sec[2].len,
                                       .fds = fds + tn, .nfds = nfds - tn, .vf_blob = r->sec[1].data,
                                       .vf_len = r->sec[1].len, .pf = &ref, .t = vf->t, .dma_domain = vf->rec.uuid,
                                       .max_pairs = r->max_pairs, .device_features = r->device_features};
    struct vdpa_session_cfg sc = session_cfg(vf, p);
    vf->session = vdpa_session_adopt(loop, &sc, &in, &vf->dev, &rc);
    if (!vf->session) {
        snprintf(msg, len, "VF %s: session cannot be continued: %s", r->bdf, strerror(-rc));
        vfe_transport_close(vf->t);
        free(vf);
        *err = rc;
        return NULL;
    }
    *err = 0;
    return vf;
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
