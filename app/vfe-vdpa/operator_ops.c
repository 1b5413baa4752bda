/* Operator operations shared by both RPC front-ends (see operator_ops.h). */
#include "app/vfe-vdpa/operator_ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/vfe-vdpa/pci_tree.h"
#include "app/vfe-vdpa/vf_msix.h"
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
    cur = 0;
    for (const struct vhostd_vf *vf; (vf = vhostd_reg_next_adding(&d->reg, &cur, bdf));)
        if (vf->rec.direct) {
            snprintf(msg, len, "VF %s of %s is being added in direct mode; retry once it has answered", vf->rec.bdf,
                     bdf);
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
    if (pf && vhostd_reg_pf_vfs_in_use(&d->reg, pf) && !(pf->adopted && pf->state == PF_STARTING)) {
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

/* An add in flight: what its completion needs. */
struct vf_add_op {
    struct vhostd *d;
    unsigned vectors, old;       /* sized: the count written, the one to write back on failure */
    vhostd_vf_added_cb done;
    void *ctx;
};

static int logged(int rc, const char *what, const char *bdf, const char *msg);

static void vf_added(void *ctx, const char *bdf, struct vhostd_vf *vf, int err, const char *msg)
{
    struct vf_add_op a = *(struct vf_add_op *)ctx;
    free(ctx);
    if (!err) {
        vhostd_prov_note_vf_added(&a.d->prov, &vf->rec);
        if (a.vectors) {
            LOG_N("VF %s: %u MSI-X vectors, %u queue pairs", bdf, a.vectors, vhostd_msix_pairs(a.vectors));
            vhostd_prov_note_vf_msix(&a.d->prov, bdf, a.vectors);
        }
    } else {
        logged(err, "vf add", bdf, msg);
        char why[200];
        if (a.vectors && a.old != a.vectors && vhostd_msix_write(a.d->opt.pci_root, bdf, a.old, why, sizeof(why)) < 0)
            LOG_W("%s", why);
    }
    a.done(a.ctx, bdf, vf, err, msg);
}

static int vf_add(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, bool direct,
                  struct vf_add_op *a, char *msg, size_t len)
{
    char pf[16];
    if (direct && pci_vf_pf(d->opt.pci_root, bdf, pf) == 0 && vhostd_reg_find_pf(&d->reg, pf)) {
        /* a VF added in direct mode earlier keeps it when its PF is added later (and after restarts) */
        snprintf(msg, len, "the PF %s of %s is managed: its VFs are driven through its admin queue, not in direct "
                 "mode", pf, bdf);
        return -EEXIST;
    }
    return vhostd_reg_add_vf_mode(&d->reg, bdf, socket, uuid, direct, vf_added, a, msg, len);
}

static int vf_add_sized(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, bool direct,
                        unsigned vectors, vhostd_vf_added_cb done, void *ctx, char *msg, size_t len);

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
                     vhostd_vf_added_cb done, void *ctx, char *msg, size_t len)
{
    return logged(vf_add_sized(d, bdf, socket, uuid, direct, 0, done, ctx, msg, len), "vf add", bdf, msg);
}

int vhostd_op_vf_remove(struct vhostd *d, const char *bdf, void (*done)(void *ctx), void *ctx, char *msg,
                        size_t len)
{
    return logged(vf_remove(d, bdf, done, ctx, msg, len), "vf remove", bdf, msg);
}

/* ---- dynamic MSI-X (vf_msix.h) ---- */

static int vf_add_sized(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, bool direct,
                        unsigned vectors, vhostd_vf_added_cb done, void *ctx, char *msg, size_t len)
{
    unsigned cur;
    if (!vectors && vhostd_msix_vf_count(d->opt.pci_root, bdf, &cur) == 0 && !vhostd_msix_pairs(cur)) {
        snprintf(msg, len, "VF %s has %u MSI-X vectors, too few for one queue pair (4 at least): add it with "
                 "--queues N or --msix N", bdf, cur);
        return -ENOSPC;
    }
    const struct vhostd_vf *adding = vhostd_reg_find_adding(&d->reg, bdf);
    if (adding) {   /* nothing may be written to it while it is probed */
        snprintf(msg, len, adding->adopting ? "VF %s is being taken over from the previous daemon (HA)"
                                            : "VF %s is being added", bdf);
        return -EBUSY;
    }
    struct vf_add_op *a = malloc(sizeof(*a));
    if (!a) {
        snprintf(msg, len, "out of memory");
        return -ENOMEM;
    }
    *a = (struct vf_add_op){.d = d, .vectors = vectors, .done = done, .ctx = ctx};
    if (!vectors) {
        int rc = vf_add(d, bdf, socket, uuid, direct, a, msg, len);
        if (rc < 0)
            free(a);
        return rc;
    }
    if (vhostd_reg_find_vf(&d->reg, bdf) || vhostd_prov_vf_pending(&d->prov, bdf)) {
        snprintf(msg, len, "VF %s is already added: remove it (with its vectors) before sizing it again", bdf);
        free(a);
        return -EEXIST;
    }
    const char *root = d->opt.pci_root;
    int rc = vhostd_msix_assign(root, bdf, vectors, &a->old, msg, len);
    if (rc < 0) {
        free(a);
        return rc;
    }
    rc = vf_add(d, bdf, socket, uuid, direct, a, msg, len);
    if (rc < 0) {
        char why[200];
        if (a->old != vectors && vhostd_msix_write(root, bdf, a->old, why, sizeof(why)) < 0)
            LOG_W("%s", why);
        free(a);
    }
    return rc;
}

int vhostd_op_vf_add_sized(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, bool direct,
                           unsigned vectors, vhostd_vf_added_cb done, void *ctx, char *msg, size_t len)
{
    return logged(vf_add_sized(d, bdf, socket, uuid, direct, vectors, done, ctx, msg, len), "vf add", bdf, msg);
}

int vhostd_op_pf_reclaim_msix(struct vhostd *d, const char *bdf, char *msg, size_t len)
{
    int rc = vhostd_msix_reclaim(&d->reg, d->opt.pci_root, bdf, msg, len);
    if (rc == 0)
        LOG_N("PF %s: MSI-X vectors of its VFs reclaimed into its pool", bdf);
    return logged(rc, "mgmtpf reclaim-msix", bdf, msg);
}

struct vf_release {
    struct vhostd *d;
    char bdf[16];
    void (*done)(void *ctx);
    void *ctx;
};

static void release_now(struct vhostd *d, const char *bdf)
{
    char msg[300];
    if (vhostd_msix_release(d->opt.pci_root, bdf, msg, sizeof(msg)) < 0)
        LOG_W("%s", msg);
    else
        LOG_N("VF %s: MSI-X vectors back in its PF's pool", bdf);
}

static void vf_gone_release(void *ctx)
{
    struct vf_release r = *(struct vf_release *)ctx;
    free(ctx);
    release_now(r.d, r.bdf);
    r.done(r.ctx);
}

int vhostd_op_vf_remove_release(struct vhostd *d, const char *bdf, bool release_msix, void (*done)(void *ctx),
                                void *ctx, char *msg, size_t len)
{
    if (!release_msix)
        return vhostd_op_vf_remove(d, bdf, done, ctx, msg, len);
    struct vf_release *r = malloc(sizeof(*r));
    if (!r) {
        snprintf(msg, len, "out of memory");
        return logged(-ENOMEM, "vf remove", bdf, msg);
    }
    *r = (struct vf_release){.d = d, .done = done, .ctx = ctx};
    snprintf(r->bdf, sizeof(r->bdf), "%s", bdf);
    int rc = vhostd_op_vf_remove(d, bdf, vf_gone_release, r, msg, len);
    if (rc != 0)
        free(r);
    if (rc == 1)
        release_now(d, bdf);   /* a pending record: no device of ours holds it */
    return rc;
}
