/* One provisioned VF: transport, device half, vhost-user session (see vf.h). */
#include "app/vfe-vdpa/vf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log/vfe_log.h"

static void vf_free(struct vhostd_vf *vf)
{
    vdpa_vf_close(vf->dev);
    vfe_transport_close(vf->t);
    free(vf);
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
    int rc = vfe_transport_open(p->pci_root, rec->bdf, &vf->t);
    if (rc < 0) {
        snprintf(msg, len, "cannot open %s: %s", rec->bdf, strerror(-rc));
        free(vf);
        *err = rc;
        return NULL;
    }
    struct vdpa_pf_ref ref = {&pf->mig, pf->iova};
    vf->dev = vdpa_vf_open(loop, &ref, (uint16_t)rec->vf_num, vf->t, vf->rec.uuid);
    if (!vf->dev) {
        *err = errno ? -errno : -EIO;
        snprintf(msg, len, "%s: device bring-up failed: %s", rec->bdf, strerror(-*err));
        vf_free(vf);
        return NULL;
    }
    struct vdpa_session_cfg sc = {.socket_path = vf->rec.socket, .client = p->client, .perm = p->perm,
                                  .no_host_notifiers = p->no_host_notifiers,
                                  .name = vf->rec.bdf};
    vf->session = vdpa_session_create(loop, vf->dev, &sc, &rc);
    if (!vf->session) {
        snprintf(msg, len, "vhost-user socket %s: %s", vf->rec.socket, strerror(-rc));
        vf_free(vf);
        *err = rc;
        return NULL;
    }
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
    vf->removed = done;
    vf->removed_ctx = ctx;
    ev_timer_init(&vf->later, finish_cb, 0., 0.);
    vf->later.data = vf;
    vdpa_session_destroy(vf->session, session_gone, vf);
}
