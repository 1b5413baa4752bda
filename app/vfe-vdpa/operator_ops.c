/* Operator operations shared by both RPC front-ends (see operator_ops.h). */
#include "app/vfe-vdpa/operator_ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/vfe-vdpa/pci_tree.h"
#include "lib/log/vfe_log.h"

struct pf_add {
    struct vhostd *d;
    vhostd_pf_added_cb done;
    void *ctx;
};

static void pf_added(void *ctx, const struct vhostd_pf *pf, int err)
{
    struct pf_add a = *(struct pf_add *)ctx;
    free(ctx);
    if (!err)
        vhostd_prov_note_pf_added(&a.d->prov, pf->bdf);
    a.done(a.ctx, pf, err);
}

static int pf_add(struct vhostd *d, const char *bdf, vhostd_pf_added_cb done, void *ctx, char *msg, size_t len)
{
    unsigned cur = 0;
    for (struct vhostd_vf *vf; (vf = vhostd_reg_next_vf(&d->reg, &cur, bdf));)
        if (vf->rec.direct) {
            snprintf(msg, len, "VF %s of %s is served in direct mode; remove it first", vf->rec.bdf, bdf);
            return -EBUSY;
        }
    struct pf_add *a = malloc(sizeof(*a));
    if (!a) {
        snprintf(msg, len, "out of memory");
        return -ENOMEM;
    }
    *a = (struct pf_add){d, done, ctx};
    int rc = vhostd_reg_add_pf(&d->reg, bdf, pf_added, a, msg, len);
    if (rc < 0)
        free(a);
    return rc;
}

/* A persisted VF record whose PF is bdf (as far as the tree tells). */
static bool pf_has_pending_vfs(const struct vhostd_prov *p, const char *bdf)
{
    for (unsigned i = 0; i < p->want.nvfs; i++)
        if (!strcmp(p->vf_pf[i], bdf) && vhostd_prov_vf_pending(p, p->want.vfs[i].bdf))
            return true;
    return false;
}

static int pf_remove(struct vhostd *d, const char *bdf, char *msg, size_t len)
{
    struct vhostd_pf *pf = vhostd_reg_find_pf(&d->reg, bdf);
    if (pf && vhostd_reg_pf_vfs_in_use(&d->reg, pf)) {
        snprintf(msg, len, "PF %s has provisioned VFs; remove its VFs first", bdf);
        return -ENOTEMPTY;
    }
    int rc = vhostd_reg_remove_pf(&d->reg, bdf, msg, len);
    if (rc == -ENOENT && vhostd_prov_pf_pending(&d->prov, bdf)) {
        if (pf_has_pending_vfs(&d->prov, bdf)) {
            snprintf(msg, len, "PF %s has pending VFs; remove them first", bdf);
            return -ENOTEMPTY;
        }
        rc = 0;   /* a pending record only: it is dropped */
    }
    if (rc == 0)
        vhostd_prov_note_pf_removed(&d->prov, bdf);
    return rc;
}

static int vf_add(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, bool direct, char *msg,
                  size_t len)
{
    char pf[16];
    if (direct && pci_vf_pf(d->opt.pci_root, bdf, pf) == 0 && vhostd_reg_find_pf(&d->reg, pf)) {
        /* a VF added in direct mode earlier keeps it when its PF is added later (and after restarts) */
        snprintf(msg, len, "the PF %s of %s is managed: its VFs are driven through its admin queue, not in direct "
                 "mode", pf, bdf);
        return -EEXIST;
    }
    int rc = vhostd_reg_add_vf_mode(&d->reg, bdf, socket, uuid, direct, msg, len);
    if (rc == 0)
        vhostd_prov_note_vf_added(&d->prov, &vhostd_reg_find_vf(&d->reg, bdf)->rec);
    return rc;
}

static int vf_remove(struct vhostd *d, const char *bdf, void (*done)(void *ctx), void *ctx, char *msg, size_t len)
{
    int rc = vhostd_reg_remove_vf(&d->reg, bdf, done, ctx, msg, len);
    if (rc == -ENOENT && vhostd_prov_vf_pending(&d->prov, bdf))
        rc = 1;   /* a pending record only: it is dropped */
    if (rc >= 0)
        vhostd_prov_note_vf_removed(&d->prov, bdf);   /* out of the file at once, before the device has stopped */
    return rc;
}

/* A refused request is the operator's to see in the journal, whichever front-end it came through. */
static int logged(int rc, const char *what, const char *bdf, const char *msg)
{
    if (rc < 0)
        LOG_W("%s %s refused: %s", what, bdf, msg);
    return rc;
}

int vhostd_op_pf_add(struct vhostd *d, const char *bdf, vhostd_pf_added_cb done, void *ctx, char *msg, size_t len)
{
    return logged(pf_add(d, bdf, done, ctx, msg, len), "mgmtpf add", bdf, msg);
}

int vhostd_op_pf_remove(struct vhostd *d, const char *bdf, char *msg, size_t len)
{
    return logged(pf_remove(d, bdf, msg, len), "mgmtpf remove", bdf, msg);
}

int vhostd_op_vf_add(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, bool direct,
                     char *msg, size_t len)
{
    return logged(vf_add(d, bdf, socket, uuid, direct, msg, len), "vf add", bdf, msg);
}

int vhostd_op_vf_remove(struct vhostd *d, const char *bdf, void (*done)(void *ctx), void *ctx, char *msg,
                        size_t len)
{
    return logged(vf_remove(d, bdf, done, ctx, msg, len), "vf remove", bdf, msg);
}
