/* The daemon's registry of PFs and VFs (see registry.h). */
#include "app/vfe-vdpa/registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/vfe-vdpa/ha.h"
#include "app/vfe-vdpa/ha_record.h"
#include "lib/log/vfe_log.h"

int vhostd_reg_init(struct vhostd_registry *r, struct ev_loop *loop, const struct vhostd_options *opt, char *msg,
                    size_t len)
{
    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->opt = opt;
    if (!realpath(opt->pci_root, r->pci_root)) {
        int e = errno;
        snprintf(msg, len, "--pci-root %s: %s", opt->pci_root, strerror(e));
        return -e;
    }
    char canon[VHOSTD_SOCK_PATH_LEN];
    int rc = vhostd_sock_path_canon(opt->rpc_path, canon, msg, len);
    if (rc < 0)
        return rc;
    snprintf(r->rpc_path, sizeof(r->rpc_path), "%s", canon);
    if (vhostd_reg_index_init(&r->index, VHOSTD_MAX_MANAGED_VFS) < 0) {
        snprintf(msg, len, "out of memory for the VF index");
        return -ENOMEM;
    }
    if (!(r->devq = vfe_devq_new(loop, VHOSTD_DEVQ_THREADS))) {
        snprintf(msg, len, "out of memory for the device queue");
        vhostd_reg_index_free(&r->index);
        return -ENOMEM;
    }
    return 0;
}

static const char *slot_key(const void *ctx, unsigned slot, int which)
{
    const struct vhostd_registry *r = ctx;
    return which ? r->vfs[slot]->rec.socket : r->vfs[slot]->rec.bdf;
}

static void slot_set(struct vhostd_registry *r, unsigned slot, struct vhostd_vf *vf)
{
    r->vfs[slot] = vf;
    vhostd_reg_index_put(&r->index, slot, vf->rec.bdf, vf->rec.socket);
}

static void slot_clear(struct vhostd_registry *r, unsigned slot)
{
    if (!r->vfs[slot])
        return;
    vhostd_reg_index_del(&r->index, slot);
    r->vfs[slot] = NULL;
}

static int free_vf_slot(struct vhostd_registry *r)
{
    return vhostd_reg_index_free_slot(&r->index, (void *const *)r->vfs);
}

void vhostd_reg_close(struct vhostd_registry *r)
{
    r->stopping = true;
    vfe_devq_destroy(r->devq);   /* the adds still running end here (their callbacks: -ESHUTDOWN) */
    r->devq = NULL;
    for (unsigned i = 0; i < VHOSTD_MAX_PFS; i++) {
        vhostd_pf_close(r->pfs[i]);
        r->pfs[i] = NULL;
    }
    vhostd_reg_index_free(&r->index);
}

/* ---- PFs ---- */

struct vhostd_pf *vhostd_reg_find_pf(const struct vhostd_registry *r, const char *bdf)
{
    for (unsigned i = 0; i < VHOSTD_MAX_PFS; i++)
        if (r->pfs[i] && !strcmp(r->pfs[i]->bdf, bdf))
            return r->pfs[i];
    return NULL;
}

struct vhostd_pf *vhostd_reg_next_pf(const struct vhostd_registry *r, unsigned *cursor)
{
    while (*cursor < VHOSTD_MAX_PFS)
        if (r->pfs[(*cursor)++])
            return r->pfs[*cursor - 1];
    return NULL;
}

unsigned vhostd_reg_pf_vfs_in_use(const struct vhostd_registry *r, const struct vhostd_pf *pf)
{
    unsigned n = 0;
    for (unsigned i = 0; i < VHOSTD_MAX_MANAGED_VFS; i++)
        n += r->vfs[i] && r->vfs[i]->pf == pf;
    return n;
}

struct pf_waiter {
    struct vhostd_registry *r;
    vhostd_pf_added_cb done;
    void *ctx;
};

static void pf_ready(void *ctx, struct vhostd_pf *pf, int err)
{
    struct pf_waiter w = *(struct pf_waiter *)ctx;
    free(ctx);
    if (err)
        for (unsigned i = 0; i < VHOSTD_MAX_PFS; i++)
            if (w.r->pfs[i] == pf)
                w.r->pfs[i] = NULL;
    if (!err && w.r->ha) {
        vhostd_ha_put_pf(w.r->ha, pf);
        vhostd_ha_pf_ready(w.r->ha, pf->bdf);
    }
    if (w.done)
        w.done(w.ctx, pf, err);
    if (err)
        vhostd_pf_close(pf);   /* from the PF's own report timer: nothing uses it after this */
}

int vhostd_reg_add_pf(struct vhostd_registry *r, const char *bdf, vhostd_pf_added_cb done, void *ctx, char *msg,
                      size_t len)
{
    const char *root = r->opt->pci_root;
    char pf_of[16];
    const struct vhostd_pf *had = vhostd_reg_find_pf(r, bdf);
    if (had && had->adopted && had->state == PF_STARTING) {
        snprintf(msg, len, "PF %s is being taken over from the previous daemon (HA)", bdf);
        return -EBUSY;
    }
    if (had) {
        snprintf(msg, len, "PF %s is already added", bdf);
        return -EEXIST;
    }
    if (!pci_fn_exists(root, bdf)) {
        snprintf(msg, len, "no PCI function %s under %s", bdf, root);
        return -ENOENT;
    }
    if (pci_vf_pf(root, bdf, pf_of) == 0) {
        snprintf(msg, len, "%s is a VF of %s; add the PF with mgmtpf, the VF with vf -a", bdf, pf_of);
        return -EINVAL;
    }
    unsigned slot = 0;
    while (slot < VHOSTD_MAX_PFS && r->pfs[slot])
        slot++;
    if (slot == VHOSTD_MAX_PFS) {
        snprintf(msg, len, "at most %d PFs", VHOSTD_MAX_PFS);
        return -ENOSPC;
    }
    struct pf_waiter *w = malloc(sizeof(*w));
    if (!w) {
        snprintf(msg, len, "out of memory");
        return -ENOMEM;
    }
    *w = (struct pf_waiter){r, done, ctx};
    int err;
    struct vhostd_pf *pf = vhostd_pf_open(r->loop, r->devq, root, bdf, pf_ready, w, &err);
    if (!pf) {
        free(w);
        snprintf(msg, len, "PF %s: %s", bdf, strerror(-err));
        return err;
    }
    r->pfs[slot] = pf;
    return 0;
}

int vhostd_reg_remove_pf(struct vhostd_registry *r, const char *bdf, char *msg, size_t len)
{
    struct vhostd_pf *pf = vhostd_reg_find_pf(r, bdf);
    if (!pf) {
        snprintf(msg, len, "PF %s is not added", bdf);
        return -ENOENT;
    }
    if (pf->state == PF_STARTING && pf->adopted) {
        snprintf(msg, len, "PF %s is being taken over from the previous daemon (HA); retry once it is ready", bdf);
        return -EBUSY;
    }
    if (pf->state == PF_STARTING || vhostd_reg_pf_vfs_in_use(r, pf)) {
        snprintf(msg, len, "PF %s %s; remove its VFs first", bdf,
                 pf->state == PF_STARTING ? "is still starting" : "has provisioned VFs");
        return -EBUSY;
    }
    for (unsigned i = 0; i < VHOSTD_MAX_PFS; i++)
        if (r->pfs[i] == pf)
            r->pfs[i] = NULL;
    vhostd_ha_del(r->ha, "pf", bdf);
    vhostd_pf_close(pf);
    LOG_N("PF %s removed", bdf);
    return 0;
}

/* ---- VFs ---- */

#define ADOPTING_MSG "VF %s is being taken over from the previous daemon (HA)"

static int vf_slot(const struct vhostd_registry *r, const char *bdf)
{
    return vhostd_reg_index_find(&r->index, 0, bdf, slot_key, r);
}

struct vhostd_vf *vhostd_reg_find_vf(const struct vhostd_registry *r, const char *bdf)
{
    int i = vf_slot(r, bdf);
    return i >= 0 && !r->vfs[i]->removing && !r->vfs[i]->adding ? r->vfs[i] : NULL;
}

struct vhostd_vf *vhostd_reg_next_vf(const struct vhostd_registry *r, unsigned *cursor, const char *pf)
{
    while (*cursor < VHOSTD_MAX_MANAGED_VFS) {
        struct vhostd_vf *vf = r->vfs[(*cursor)++];
        if (vf && !vf->removing && !vf->adding && (!pf || !strcmp(vf->rec.pf, pf)))
            return vf;
    }
    return NULL;
}

const struct vhostd_vf *vhostd_reg_find_adding(const struct vhostd_registry *r, const char *bdf)
{
    int i = vf_slot(r, bdf);
    return i >= 0 && r->vfs[i]->adding ? r->vfs[i] : NULL;
}

const struct vhostd_vf *vhostd_reg_next_adding(const struct vhostd_registry *r, unsigned *cursor, const char *pf)
{
    if (!r->adding)
        return NULL;
    while (*cursor < VHOSTD_MAX_MANAGED_VFS) {
        const struct vhostd_vf *vf = r->vfs[(*cursor)++];
        if (vf && vf->adding && (!pf || !strcmp(vf->rec.pf, pf)))
            return vf;
    }
    return NULL;
}

const char *vhostd_reg_socket_user(const struct vhostd_registry *r, const char *canon, char *buf, size_t len)
{
    if (!strcmp(canon, r->rpc_path))
        return "the daemon's RPC socket";
    int i = vhostd_reg_index_find(&r->index, 1, canon, slot_key, r);
    if (i < 0)
        return NULL;
    snprintf(buf, len, "VF %s", r->vfs[i]->rec.bdf);
    return buf;
}

/* The VF's socket path: canonical, not another's, and (server mode) free to bind. */
static int vf_socket(struct vhostd_registry *r, const char *bdf, const char *socket, char out[VHOSTD_SOCK_PATH_LEN],
                     char *msg, size_t len)
{
    char raw[PATH_MAX], who[32];
    if (socket && *socket)
        snprintf(raw, sizeof(raw), "%s", socket);
    else
        snprintf(raw, sizeof(raw), "%s%s", r->opt->iface_prefix, bdf);
    int rc = vhostd_sock_path_canon(raw, out, msg, len);
    if (rc < 0)
        return rc == -ENAMETOOLONG ? rc : -EINVAL;
    if (vhostd_path_is_under(out, r->pci_root)) {
        snprintf(msg, len, "socket path %s is inside the PCI tree %s", out, r->pci_root);
        return -EINVAL;
    }
    const char *user = vhostd_reg_socket_user(r, out, who, sizeof(who));
    if (user) {
        snprintf(msg, len, "socket %s is already used by %s", out, user);
        return -EEXIST;
    }
    if (r->opt->client)
        return 0;   /* QEMU's socket: it may exist and be in use, and it is not ours to create */
    struct stat st;
    if (lstat(out, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        snprintf(msg, len, "%s exists and is not a socket; it is left alone", out);
        return -EEXIST;
    }
    if (vfe_unix_path_in_use(out)) {
        snprintf(msg, len, "socket %s is in use by another process; it is left alone", out);
        return -EADDRINUSE;
    }
    return 0;
}

static void vf_persist(void *ctx, struct vhostd_vf *vf)
{
    vhostd_ha_put_vf(ctx, vf);
}

static bool vf_persist_reply(void *ctx, struct vhostd_vf *vf, const void *reply, size_t len)
{
    return vhostd_ha_put_vf_reply(ctx, vf, reply, len);
}

/* The host wants the function back (hot-unplug): it leaves the registry (the
 * state file keeps it: it comes back as pending if the function returns). */
static void vf_unplug(void *ctx, struct vhostd_vf *vf)
{
    char msg[256];
    if (vhostd_reg_remove_vf(ctx, vf->rec.bdf, NULL, NULL, msg, sizeof(msg)) < 0)
        LOG_E("VF %s: release after the unplug request failed: %s", vf->rec.bdf, msg);
}

static struct vhostd_vf_params vf_params(struct vhostd_registry *r)
{
    return (struct vhostd_vf_params){
        .pci_root = r->opt->pci_root, .client = r->opt->client, .no_host_notifiers = r->opt->no_host_notifiers,
        .perm = {.mode = 0660, .set_group = r->opt->socket_group_set, .group = r->opt->socket_gid},
        .persist = r->ha ? vf_persist : NULL, .persist_reply = r->ha ? vf_persist_reply : NULL,
        .persist_ctx = r->ha, .unplug = vf_unplug, .unplug_ctx = r};
}

struct add_waiter {
    struct vhostd_registry *r;
    unsigned slot;
    vhostd_vf_added_cb done;
    void *ctx;
};

static void check_drained(struct vhostd_registry *r);
static int start_removal(struct vhostd_registry *r, unsigned slot, void (*done)(void *ctx), void *ctx);

/* The bring-up job of an add ended (from the loop). */
static void vf_opened(void *ctx, struct vhostd_vf *vf, int err, const char *msg)
{
    struct add_waiter w = *(struct add_waiter *)ctx;
    struct vhostd_registry *r = w.r;
    free(ctx);
    r->adding--;
    char bdf[sizeof(vf->rec.bdf)];
    snprintf(bdf, sizeof(bdf), "%s", vf->rec.bdf);
    if (err) {
        LOG_W("VF %s not added: %s", bdf, msg);
        slot_clear(r, w.slot);
        vhostd_vf_discard(vf);
        if (w.done)
            w.done(w.ctx, bdf, NULL, err, msg);
        check_drained(r);
        return;
    }
    if (r->stopping) {
        /* the daemon drains: the VF goes again at once and the add is not applied (not persisted) */
        LOG_N("VF %s: brought up while the daemon stops: not added", bdf);
        start_removal(r, w.slot, NULL, NULL);
        if (w.done)
            w.done(w.ctx, bdf, NULL, -ECANCELED, "not added: the daemon is stopping");
        return;
    }
    const struct vhostd_vf_rec *rec = &vf->rec;
    vhostd_ha_put_vf(r->ha, vf);   /* its transport and listening socket, before any front-end comes */
    if (rec->direct)
        LOG_N("VF %s added in direct mode (no PF admin queue), vhost-user %s %s%s%s", bdf,
              r->opt->client ? "client to" : "on", rec->socket, *rec->uuid ? ", VM " : "", rec->uuid);
    else
        LOG_N("VF %s (VF %u of %s) added, vhost-user %s %s%s%s", bdf, rec->vf_num, rec->pf,
              r->opt->client ? "client to" : "on", rec->socket, *rec->uuid ? ", VM " : "", rec->uuid);
    if (w.done)
        w.done(w.ctx, bdf, vf, 0, "");
}

int vhostd_reg_add_vf_mode(struct vhostd_registry *r, const char *bdf, const char *socket, const char *uuid,
                           bool direct, vhostd_vf_added_cb done, void *ctx, char *msg, size_t len)
{
    const char *root = r->opt->pci_root;
    struct vhostd_vf_rec rec = {0};
    int i = vf_slot(r, bdf);
    if (i >= 0) {
        const struct vhostd_vf *o = r->vfs[i];
        snprintf(msg, len, o->removing ? "VF %s is being removed" : o->adopting ? ADOPTING_MSG
                           : o->adding ? "VF %s is being added" : "VF %s is already added", bdf);
        return o->removing || o->adding ? -EBUSY : -EEXIST;
    }
    if (!pci_fn_exists(root, bdf)) {
        snprintf(msg, len, "no PCI function %s under %s", bdf, root);
        return -ENOENT;
    }
    if (vhostd_reg_find_pf(r, bdf)) {
        snprintf(msg, len, "%s is a managed PF, not a VF", bdf);
        return -EEXIST;
    }
    if (pci_vf_pf(root, bdf, rec.pf) < 0) {
        rec.pf[0] = '\0';
        direct = true;   /* QEMU's virtio-net-pci, a plain function: nobody's admin queue */
    }
    struct vhostd_pf *pf = rec.pf[0] && !direct ? vhostd_reg_find_pf(r, rec.pf) : NULL;
    if (!direct && (!pf || pf->state != PF_READY)) {
        snprintf(msg, len, "the PF %s of %s is not %s; add it first with 'vhostmgmt mgmtpf -a %s'", rec.pf, bdf,
                 pf ? "ready yet" : "added", rec.pf);
        return -ENODEV;
    }
    if (!direct && !(rec.vf_num = vhostd_pf_vf_num(pf, bdf))) {
        vhostd_pf_rescan(pf, root);   /* the VF may have been created after the PF was added */
        rec.vf_num = vhostd_pf_vf_num(pf, bdf);
    }
    if (!direct && !rec.vf_num) {
        snprintf(msg, len, "%s is not listed among the VFs of %s (virtfn0..virtfn%d: a PF's first %d VFs are managed)",
                 bdf, rec.pf, VHOSTD_MAX_VFS - 1, VHOSTD_MAX_VFS);
        return -ENOENT;
    }
    int rc = vf_socket(r, bdf, socket, rec.socket, msg, len);
    if (rc < 0)
        return rc;
    int slot = free_vf_slot(r);
    if (slot < 0) {
        snprintf(msg, len, "at most %d VFs (%d PFs x %d)", VHOSTD_MAX_MANAGED_VFS, VHOSTD_MAX_PFS, VHOSTD_MAX_VFS);
        return -ENOSPC;
    }
    snprintf(rec.bdf, sizeof(rec.bdf), "%s", bdf);
    snprintf(rec.uuid, sizeof(rec.uuid), "%s", uuid ? uuid : "");
    rec.direct = direct;
    struct vhostd_vf_params p = vf_params(r);
    struct vhostd_vf *vf = vhostd_vf_begin(r->loop, pf, &rec);
    struct add_waiter *w = vf ? malloc(sizeof(*w)) : NULL;
    if (!w) {
        free(vf);
        snprintf(msg, len, "out of memory");
        return -ENOMEM;
    }
    *w = (struct add_waiter){r, (unsigned)slot, done, ctx};
    slot_set(r, (unsigned)slot, vf);   /* its BDF and socket path are held from now on */
    rc = vhostd_vf_open_async(vf, r->devq, &p, vf_opened, w, msg, len);
    if (rc < 0) {
        slot_clear(r, (unsigned)slot);
        vhostd_vf_discard(vf);
        free(w);
        return rc;
    }
    r->adding++;
    return 0;
}

struct removal {
    struct vhostd_registry *r;
    unsigned slot;
    void (*done)(void *ctx);
    void *ctx;
};

static bool no_vfs(const struct vhostd_registry *r)
{
    return r->index.used == 0;
}

static void check_drained(struct vhostd_registry *r)
{
    if (r->drained && no_vfs(r)) {
        void (*drained)(void *) = r->drained;
        r->drained = NULL;
        drained(r->drained_ctx);
    }
}

static void vf_gone(void *ctx)
{
    struct removal m = *(struct removal *)ctx;
    free(ctx);
    slot_clear(m.r, m.slot);
    if (m.done)
        m.done(m.ctx);
    check_drained(m.r);
}

static int start_removal(struct vhostd_registry *r, unsigned slot, void (*done)(void *ctx), void *ctx)
{
    struct removal *m = malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    *m = (struct removal){r, slot, done, ctx};
    vhostd_ha_del(r->ha, "vf", r->vfs[slot]->rec.bdf);   /* the HA process lets go of its copies too */
    vhostd_vf_close(r->vfs[slot], vf_gone, m);
    return 0;
}

int vhostd_reg_remove_vf(struct vhostd_registry *r, const char *bdf, void (*done)(void *ctx), void *ctx, char *msg,
                         size_t len)
{
    int i = vf_slot(r, bdf);
    if (i < 0) {
        snprintf(msg, len, "VF %s is not added", bdf);
        return -ENOENT;
    }
    if (r->vfs[i]->removing) {
        snprintf(msg, len, "VF %s is being removed", bdf);
        return -EALREADY;
    }
    if (r->vfs[i]->adding) {
        snprintf(msg, len, r->vfs[i]->adopting ? ADOPTING_MSG "; remove it once it runs"
                                               : "VF %s is being added; remove it once its add has answered", bdf);
        return -EBUSY;
    }
    int rc = start_removal(r, (unsigned)i, done, ctx);
    if (rc < 0)
        snprintf(msg, len, "VF %s: %s", bdf, strerror(-rc));
    return rc;
}

unsigned vhostd_reg_drain(struct vhostd_registry *r, void (*drained)(void *ctx), void *ctx)
{
    r->stopping = true;
    unsigned left = 0;
    for (unsigned i = 0; i < VHOSTD_MAX_MANAGED_VFS; i++)
        if (r->vfs[i] && (r->vfs[i]->removing || r->vfs[i]->adding || start_removal(r, i, NULL, NULL) == 0))
            left++;
    r->drained = left ? drained : NULL;
    r->drained_ctx = ctx;
    return left;
}

/* ---- HA ---- */

/* Why a record's PF or VF cannot be taken in (NULL: it can). */
static const char *pf_unfit(const struct vhostd_registry *r, const struct ha_rec *rec)
{
    unsigned slot = 0;
    while (slot < VHOSTD_MAX_PFS && r->pfs[slot])
        slot++;
    return slot == VHOSTD_MAX_PFS                       ? "no slot"
           : vhostd_reg_find_pf(r, rec->bdf)            ? "listed twice"
           : !pci_fn_exists(r->opt->pci_root, rec->bdf) ? "gone from the PCI tree" : NULL;
}

struct pf_adopt_waiter {
    struct vhostd_registry *r;
    vhostd_reg_adopted_cb done;
    void *ctx;
};

static void pf_adopted(void *ctx, struct vhostd_pf *pf, int err, const char *msg)
{
    struct pf_adopt_waiter w = *(struct pf_adopt_waiter *)ctx;
    free(ctx);
    w.r->adopting_pfs--;
    if (err)
        for (unsigned i = 0; i < VHOSTD_MAX_PFS; i++)
            if (w.r->pfs[i] == pf)
                w.r->pfs[i] = NULL;
    char bdf[sizeof(pf->bdf)];
    snprintf(bdf, sizeof(bdf), "%s", pf->bdf);
    w.done(w.ctx, bdf, err, msg);   /* its VFs waiting are started or cancelled first */
    if (err)
        vhostd_pf_abandon(pf);      /* the HA process still holds the device: no reset here */
}

int vhostd_reg_adopt_pf_async(struct vhostd_registry *r, const struct ha_rec *rec, const int *fds, unsigned nfds,
                              vhostd_reg_adopted_cb done, void *ctx, char *msg, size_t len)
{
    const char *why = pf_unfit(r, rec);
    struct pf_adopt_waiter *w = why ? NULL : malloc(sizeof(*w));
    if (!w) {
        snprintf(msg, len, "PF %s: %s", rec->bdf, why ? why : "out of memory");
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        return why ? -ENOENT : -ENOMEM;
    }
    *w = (struct pf_adopt_waiter){r, done, ctx};
    int err;
    struct vhostd_pf *pf = vhostd_pf_adopt_async(r->loop, r->devq, r->opt->pci_root, rec, fds, nfds, pf_adopted, w,
                                                 msg, len, &err);
    if (!pf) {
        free(w);
        return err;
    }
    unsigned slot = 0;
    while (r->pfs[slot])
        slot++;
    r->pfs[slot] = pf;
    r->adopting_pfs++;
    return 0;
}

int vhostd_reg_adopt_vf_hold(struct vhostd_registry *r, const struct ha_rec *rec, const int *fds, unsigned nfds,
                             char *msg, size_t len)
{
    struct vhostd_pf *pf = vhostd_reg_find_pf(r, rec->vf.pf);
    char who[32];
    const char *why = NULL;
    int slot = free_vf_slot(r);
    if (!pf || pf->state != PF_STARTING || !pf->adopted)   /* its take-over starts the VF's (ha.c) */
        why = "its PF was not taken over";
    else if (vf_slot(r, rec->bdf) >= 0)
        why = "listed twice";
    else if (vhostd_pf_vf_num(pf, rec->bdf) != rec->vf.vf_num)
        why = "no longer that VF of its PF";
    else if (vhostd_reg_socket_user(r, rec->vf.socket, who, sizeof(who)))
        why = "its socket is another's";
    else if (slot < 0)
        why = "no slot";
    if (why) {
        snprintf(msg, len, "VF %s: %s", rec->bdf, why);
        unsigned tn = rec->nsec && rec->sec[0].nfds <= nfds ? rec->sec[0].nfds : nfds;
        for (unsigned i = 0; i < tn; i++)
            close(fds[i]);
        vdpa_session_end_fds(fds + tn, nfds - tn);
        return -ENOENT;
    }
    int err;
    struct vhostd_vf *vf = vhostd_vf_adopt_begin(r->loop, pf, rec, fds, nfds, msg, len, &err);
    if (!vf)
        return err;
    slot_set(r, (unsigned)slot, vf);   /* its BDF and socket path are held from now on */
    r->adding++;
    r->adopting_vfs++;
    return 0;
}

struct vf_adopt_waiter {
    struct vhostd_registry *r;
    unsigned slot;
    vhostd_reg_adopted_cb done;
    void *ctx;
};

static void vf_adopted(void *ctx, struct vhostd_vf *vf, int err, const char *msg)
{
    struct vf_adopt_waiter w = *(struct vf_adopt_waiter *)ctx;
    struct vhostd_registry *r = w.r;
    free(ctx);
    r->adding--;
    r->adopting_vfs--;
    char bdf[sizeof(vf->rec.bdf)];
    snprintf(bdf, sizeof(bdf), "%s", vf->rec.bdf);
    if (err) {
        slot_clear(r, w.slot);
        vhostd_vf_discard(vf);
    } else {
        LOG_N("VF %s taken over: vhost-user %s %s continues", bdf, r->opt->client ? "client to" : "on",
              vf->rec.socket);
    }
    w.done(w.ctx, bdf, err, msg);
}

/* The slot of an adopting shell whose job has not started. */
static int waiting_slot(const struct vhostd_registry *r, const char *bdf)
{
    int i = vf_slot(r, bdf);
    return i >= 0 && r->vfs[i]->adopting && !r->vfs[i]->adopt_running ? i : -1;
}

int vhostd_reg_adopt_vf_start(struct vhostd_registry *r, const char *bdf, vhostd_reg_adopted_cb done, void *ctx)
{
    int i = waiting_slot(r, bdf);
    if (i < 0)
        return -ENOENT;
    struct vhostd_vf *vf = r->vfs[i];
    struct vf_adopt_waiter *w = vf->pf && vf->pf->state == PF_READY ? malloc(sizeof(*w)) : NULL;
    if (!w)
        return vf->pf && vf->pf->state == PF_READY ? -ENOMEM : -ENODEV;
    *w = (struct vf_adopt_waiter){r, (unsigned)i, done, ctx};
    struct vhostd_vf_params p = vf_params(r);
    int rc = vhostd_vf_adopt_start(vf, r->devq, &p, vf_adopted, w);
    if (rc < 0)
        free(w);
    else
        vf->adopt_running = true;
    return rc;
}

void vhostd_reg_adopt_vf_cancel(struct vhostd_registry *r, const char *bdf, bool end_session)
{
    int i = waiting_slot(r, bdf);
    if (i < 0)
        return;
    struct vhostd_vf *vf = r->vfs[i];
    slot_clear(r, (unsigned)i);
    r->adding--;
    r->adopting_vfs--;
    vhostd_vf_adopt_cancel(vf, end_session);
}

void vhostd_reg_abandon(struct vhostd_registry *r)
{
    /* jobs first: adds end (-ESHUTDOWN: the successor redoes them), take-overs
     * running are abandoned, nothing reset (the HA process holds their records) */
    r->stopping = true;
    vfe_devq_destroy(r->devq);
    r->devq = NULL;
    for (unsigned i = 0; i < VHOSTD_MAX_MANAGED_VFS; i++) {
        if (r->vfs[i] && r->vfs[i]->adopting) {
            vhostd_reg_adopt_vf_cancel(r, r->vfs[i]->rec.bdf, false);   /* waited for its PF */
            continue;
        }
        vhostd_vf_abandon(r->vfs[i]);
        slot_clear(r, i);
    }
    for (unsigned i = 0; i < VHOSTD_MAX_PFS; i++) {
        vhostd_pf_abandon(r->pfs[i]);
        r->pfs[i] = NULL;
    }
}
