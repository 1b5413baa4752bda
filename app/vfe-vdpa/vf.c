/* VF provisioning: transport, device half, vhost-user session. */
#include "app/vfe-vdpa/vhostd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log/vfe_log.h"

struct vhostd_vf *vhostd_find_vf(struct vhostd *d, const char *bdf)
{
    for (unsigned i = 0; i < VHOSTD_MAX_MANAGED_VFS; i++)
        if (d->vfs[i] && !strcmp(d->vfs[i]->bdf, bdf))
            return d->vfs[i];
    return NULL;
}

struct vhostd_vf *vhostd_find_socket(struct vhostd *d, const char *path)
{
    for (unsigned i = 0; i < VHOSTD_MAX_MANAGED_VFS; i++)
        if (d->vfs[i] && !strcmp(d->vfs[i]->socket, path))
            return d->vfs[i];
    return NULL;
}

static void vf_free(struct vhostd_vf *vf)
{
    vdpa_vf_close(vf->dev);
    vfe_transport_close(vf->t);
    if (vf->pf)
        vf->pf->vfs_in_use--;
    free(vf);
}

int vhostd_vf_add(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, char *msg, size_t len)
{
    char pfbdf[16], path[108];
    if (vhostd_find_vf(d, bdf)) {
        snprintf(msg, len, "VF %s is already added", bdf);
        return -EEXIST;
    }
    if (!pci_fn_exists(d->opt.pci_root, bdf)) {
        snprintf(msg, len, "no PCI function %s under %s", bdf, d->opt.pci_root);
        return -ENOENT;
    }
    if (pci_vf_pf(d->opt.pci_root, bdf, pfbdf) < 0) {
        snprintf(msg, len, "%s is not a VF (no physfn link)", bdf);
        return -ENOENT;
    }
    struct vhostd_pf *pf = vhostd_find_pf(d, pfbdf);
    if (!pf || pf->state != PF_READY) {
        snprintf(msg, len, "the PF %s of %s is not %s; add it first with 'vhostmgmt mgmtpf -a %s'", pfbdf, bdf,
                 pf ? "ready yet" : "added", pfbdf);
        return -ENODEV;
    }
    unsigned num = vhostd_pf_vf_num(pf, bdf);
    if (!num) {
        /* the VF may have been created after the PF was added */
        int n = pci_pf_vfs(d->opt.pci_root, pf->bdf, pf->vfs, VHOSTD_MAX_VFS);
        pf->num_vfs = n > 0 ? n : 0;
        num = vhostd_pf_vf_num(pf, bdf);
    }
    if (!num) {
        snprintf(msg, len, "%s is not listed among the VFs of %s", bdf, pfbdf);
        return -ENOENT;
    }
    if (socket && *socket)
        snprintf(path, sizeof(path), "%s", socket);
    else
        snprintf(path, sizeof(path), "%s%s", d->opt.iface_prefix, bdf);
    if (vhostd_find_socket(d, path)) {
        snprintf(msg, len, "socket %s is already used by %s", path, vhostd_find_socket(d, path)->bdf);
        return -EEXIST;
    }
    unsigned slot = 0;
    while (slot < VHOSTD_MAX_MANAGED_VFS && d->vfs[slot])
        slot++;
    if (slot == VHOSTD_MAX_MANAGED_VFS) {
        snprintf(msg, len, "at most %d VFs", VHOSTD_MAX_MANAGED_VFS);
        return -ENOSPC;
    }
    struct vhostd_vf *vf = calloc(1, sizeof(*vf));
    if (!vf)
        return -ENOMEM;
    snprintf(vf->bdf, sizeof(vf->bdf), "%s", bdf);
    snprintf(vf->socket, sizeof(vf->socket), "%s", path);
    snprintf(vf->uuid, sizeof(vf->uuid), "%s", uuid ? uuid : "");
    vf->vf_num = num;
    int rc = vfe_transport_open(d->opt.pci_root, bdf, &vf->t);
    if (rc < 0) {
        snprintf(msg, len, "cannot open %s: %s", bdf, strerror(-rc));
        free(vf);
        return rc;
    }
    vf->pf = pf;
    pf->vfs_in_use++;
    struct vdpa_pf_ref ref = {&pf->mig, pf->iova};
    vf->dev = vdpa_vf_open(d->loop, &ref, (uint16_t)num, vf->t, vf->uuid);
    if (!vf->dev) {
        rc = -errno;
        snprintf(msg, len, "%s: device bring-up failed: %s", bdf, strerror(errno));
        vf_free(vf);
        return rc;
    }
    struct vdpa_session_cfg sc = {.socket_path = path, .client = d->opt.client, .name = vf->bdf};
    vf->session = vdpa_session_create(d->loop, vf->dev, &sc, &rc);
    if (!vf->session) {
        snprintf(msg, len, "vhost-user socket %s: %s", path, strerror(-rc));
        vf_free(vf);
        return rc;
    }
    d->vfs[slot] = vf;
    LOG_N("VF %s (VF %u of %s) added, vhost-user %s %s%s%s", bdf, num, pf->bdf, d->opt.client ? "client to" : "on",
          path, *vf->uuid ? ", VM " : "", vf->uuid);
    return 0;
}

struct removal {
    struct vhostd *d;
    struct vhostd_vf *vf;
    void (*done)(void *ctx);
    void *ctx;
};

static void removed(void *ctx)
{
    struct removal *r = ctx;
    LOG_N("VF %s removed", r->vf->bdf);
    vf_free(r->vf);
    if (r->done)
        r->done(r->ctx);
    free(r);
}

int vhostd_vf_remove(struct vhostd *d, struct vhostd_vf *vf, void (*done)(void *ctx), void *ctx)
{
    if (vf->removing)
        return -EALREADY;
    struct removal *r = malloc(sizeof(*r));
    if (!r)
        return -ENOMEM;
    *r = (struct removal){d, vf, done, ctx};
    vf->removing = true;
    for (unsigned i = 0; i < VHOSTD_MAX_MANAGED_VFS; i++)
        if (d->vfs[i] == vf)
            d->vfs[i] = NULL;
    vdpa_session_destroy(vf->session, removed, r);
    return 0;
}
