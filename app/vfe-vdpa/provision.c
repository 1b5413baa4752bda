/* Persisted provisioning applied to the registry (see provision.h). */
#include "app/vfe-vdpa/provision.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/vfe-vdpa/vf_msix.h"
#include "lib/log/vfe_log.h"

int vhostd_prov_open(struct vhostd_prov *p, const char *dir, char *msg, size_t len)
{
    /* the per-record tables (7 MB for 16k VFs) are written only as records
     * come: pages never touched cost no memory */
    memset(p, 0, offsetof(struct vhostd_prov, want));
    p->want.npfs = p->want.nvfs = 0;
    p->dirty = false;
    p->writes = p->write_failures = 0;
    p->write_error[0] = '\0';
    p->lock_fd = -1;
    if (!dir || !*dir)
        return 0;
    if (strlen(dir) + sizeof("/" VHOSTD_STATE_FILE ".lock") > sizeof(p->dir)) {
        snprintf(msg, len, "--state-dir %s: too long", dir);
        return -ENAMETOOLONG;
    }
    snprintf(p->dir, sizeof(p->dir), "%s", dir);
    snprintf(p->path, sizeof(p->path), "%s/%s", dir, VHOSTD_STATE_FILE);
    struct stat st;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        snprintf(msg, len, "--state-dir %s: cannot create it: %s", dir, strerror(e));
        return -e;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, len, "--state-dir %s: not a directory", dir);
        return -ENOTDIR;
    }
    int rc = vfe_path_lock(p->path, &p->lock_fd);
    if (rc < 0) {
        snprintf(msg, len, rc == -EBUSY ? "--state-dir %s: another vfe-vhostd uses it (it holds %s.lock)"
                                        : "--state-dir %s: cannot lock %s.lock: %s",
                 dir, p->path, strerror(-rc));
        return rc;
    }
    rc = vhostd_state_read(p->path, &p->want, msg, len);
    if (rc < 0) {
        size_t n = strlen(msg);
        snprintf(msg + n, len - n, "; refusing to start: nothing was applied and the file is left as it is; "
                 "move it away (or start with --no-state) to start without it");
        close(p->lock_fd);
        p->lock_fd = -1;
        return rc;
    }
    memset(p->pf_reason, 0, p->want.npfs * sizeof(p->pf_reason[0]));
    memset(p->vf_reason, 0, p->want.nvfs * sizeof(p->vf_reason[0]));
    memset(p->vf_pf, 0, p->want.nvfs * sizeof(p->vf_pf[0]));
    p->enabled = true;
    if (rc == 0)
        LOG_N("state %s: %u PFs and %u VFs to provision", p->path, p->want.npfs, p->want.nvfs);
    return 0;
}

void vhostd_prov_close(struct vhostd_prov *p)
{
    if (p->loop)
        ev_timer_stop(p->loop, &p->retry);
    if (p->lock_fd >= 0)
        close(p->lock_fd);   /* the lock file stays: removing it would race with a starting daemon */
    p->lock_fd = -1;
    p->enabled = false;
}

/* ---- the file ---- */

/* Retry every VHOSTD_PROV_RETRY_S while anything is pending or unsaved (retry_cb stops it after). */
static void arm(struct vhostd_prov *p)
{
    if (p->loop && !ev_is_active(&p->retry)) {
        ev_timer_set(&p->retry, VHOSTD_PROV_RETRY_S, VHOSTD_PROV_RETRY_S);
        ev_timer_start(p->loop, &p->retry);
    }
}

static void save(struct vhostd_prov *p)
{
    if (!p->enabled)
        return;
    if (p->held) {
        p->save_held = true;
        return;
    }
    char msg[300];
    int rc = vhostd_state_write(p->dir, &p->want, msg, sizeof(msg));
    if (rc < 0) {
        p->write_failures++;
        if (strcmp(msg, p->write_error))
            LOG_E("state not saved (the running state is unchanged; retried every %.0f s): %s",
                  VHOSTD_PROV_RETRY_S, msg);
        snprintf(p->write_error, sizeof(p->write_error), "%s", msg);
        p->dirty = true;
        arm(p);
        return;
    }
    if (p->dirty)
        LOG_N("state %s saved again", p->path);
    p->writes++;
    p->dirty = false;
    p->write_error[0] = '\0';
}

void vhostd_prov_hold(struct vhostd_prov *p)
{
    p->held++;
}

void vhostd_prov_release(struct vhostd_prov *p)
{
    if (!p->held || --p->held)
        return;
    if (p->save_held) {
        p->save_held = false;
        save(p);
    }
}

/* ---- records ---- */

static int pf_index(const struct vhostd_prov *p, const char *bdf)
{
    for (unsigned i = 0; i < p->want.npfs; i++)
        if (!strcmp(p->want.pfs[i].bdf, bdf))
            return (int)i;
    return -1;
}

static int vf_index(const struct vhostd_prov *p, const char *bdf)
{
    for (unsigned i = 0; i < p->want.nvfs; i++)
        if (!strcmp(p->want.vfs[i].bdf, bdf))
            return (int)i;
    return -1;
}

void vhostd_prov_note_pf_added(struct vhostd_prov *p, const char *bdf)
{
    if (!p->enabled || pf_index(p, bdf) >= 0 || p->want.npfs == VHOSTD_MAX_PFS)
        return;
    unsigned i = p->want.npfs++;
    snprintf(p->want.pfs[i].bdf, sizeof(p->want.pfs[i].bdf), "%s", bdf);
    p->pf_reason[i][0] = '\0';
    save(p);
}

void vhostd_prov_note_pf_removed(struct vhostd_prov *p, const char *bdf)
{
    int i = pf_index(p, bdf);
    if (!p->enabled || i < 0)
        return;
    unsigned rest = p->want.npfs - (unsigned)i - 1;
    memmove(&p->want.pfs[i], &p->want.pfs[i + 1], rest * sizeof(p->want.pfs[0]));
    memmove(p->pf_reason[i], p->pf_reason[i + 1], rest * sizeof(p->pf_reason[0]));
    p->want.npfs--;
    save(p);
}

void vhostd_prov_note_vf_added(struct vhostd_prov *p, const struct vhostd_vf_rec *rec)
{
    if (!p->enabled)
        return;
    int i = vf_index(p, rec->bdf);
    if (i < 0) {
        if (p->want.nvfs == VHOSTD_MAX_MANAGED_VFS)
            return;
        i = (int)p->want.nvfs++;
        p->want.vfs[i].msix = 0;
    }
    struct vhostd_state_vf *v = &p->want.vfs[i];
    snprintf(v->bdf, sizeof(v->bdf), "%s", rec->bdf);
    snprintf(v->socket, sizeof(v->socket), "%s", rec->socket);
    snprintf(v->uuid, sizeof(v->uuid), "%s", rec->uuid);
    snprintf(v->mode, sizeof(v->mode), "%s", rec->direct ? "direct" : "");
    snprintf(p->vf_pf[i], sizeof(p->vf_pf[i]), "%s", rec->pf);
    p->vf_reason[i][0] = '\0';
    save(p);
}

void vhostd_prov_note_vf_msix(struct vhostd_prov *p, const char *bdf, unsigned vectors)
{
    int i = vf_index(p, bdf);
    if (!p->enabled || i < 0)
        return;
    p->want.vfs[i].msix = vectors;
    save(p);
}

void vhostd_prov_note_vf_removed(struct vhostd_prov *p, const char *bdf)
{
    int i = vf_index(p, bdf);
    if (!p->enabled || i < 0)
        return;
    unsigned rest = p->want.nvfs - (unsigned)i - 1;
    memmove(&p->want.vfs[i], &p->want.vfs[i + 1], rest * sizeof(p->want.vfs[0]));
    memmove(p->vf_reason[i], p->vf_reason[i + 1], rest * sizeof(p->vf_reason[0]));
    memmove(p->vf_pf[i], p->vf_pf[i + 1], rest * sizeof(p->vf_pf[0]));
    p->want.nvfs--;
    save(p);
}

const char *vhostd_prov_pf_pending(const struct vhostd_prov *p, const char *bdf)
{
    int i = pf_index(p, bdf);
    if (!p->enabled || i < 0 || !p->reg || vhostd_reg_find_pf(p->reg, bdf))
        return NULL;
    return p->pf_reason[i][0] ? p->pf_reason[i] : "not applied yet";
}

const char *vhostd_prov_vf_pending(const struct vhostd_prov *p, const char *bdf)
{
    int i = vf_index(p, bdf);
    if (!p->enabled || i < 0 || !p->reg || vhostd_reg_find_vf(p->reg, bdf) || vhostd_reg_find_adding(p->reg, bdf))
        return NULL;   /* served, or being added (listed as adding) */
    return p->vf_reason[i][0] ? p->vf_reason[i] : "not applied yet";
}

unsigned vhostd_prov_pending_count(const struct vhostd_prov *p, unsigned *pfs, unsigned *vfs)
{
    *pfs = *vfs = 0;
    for (unsigned i = 0; i < p->want.npfs; i++)
        *pfs += vhostd_prov_pf_pending(p, p->want.pfs[i].bdf) != NULL;
    for (unsigned i = 0; i < p->want.nvfs; i++)
        *vfs += vhostd_prov_vf_pending(p, p->want.vfs[i].bdf) != NULL;
    return *pfs + *vfs;
}

/* ---- applying ---- */

/* One log line per record each time its reason changes. */
static void set_reason(char reason[VHOSTD_PROV_REASON_LEN], const char *what, const char *bdf, const char *now)
{
    if (!strcmp(reason, now))
        return;
    if (*now)
        LOG_W("state: %s %s pending (retried every %.0f s): %s", what, bdf, VHOSTD_PROV_RETRY_S, now);
    else
        LOG_N("state: %s %s provisioned", what, bdf);
    snprintf(reason, VHOSTD_PROV_REASON_LEN, "%s", now);
}

static void apply_soon(struct vhostd_prov *p)
{
    ev_timer_stop(p->loop, &p->retry);
    ev_timer_set(&p->retry, 0., VHOSTD_PROV_RETRY_S);
    ev_timer_start(p->loop, &p->retry);
}

static void pf_brought_up(void *ctx, const struct vhostd_pf *pf, int err)
{
    struct vhostd_prov *p = ctx;
    int i = pf_index(p, pf->bdf);
    if (i < 0)
        return;   /* the record went meanwhile; the PF stays as the registry has it */
    if (err) {
        char why[VHOSTD_PROV_REASON_LEN];
        snprintf(why, sizeof(why), "bring-up failed: %s", strerror(-err));
        set_reason(p->pf_reason[i], "PF", pf->bdf, why);
        arm(p);
    } else {
        set_reason(p->pf_reason[i], "PF", pf->bdf, "");
        apply_soon(p);   /* its VFs next */
    }
}

static void apply_pfs(struct vhostd_prov *p)
{
    char msg[VHOSTD_PROV_REASON_LEN];
    for (unsigned i = 0; i < p->want.npfs; i++) {
        const char *bdf = p->want.pfs[i].bdf;
        if (vhostd_reg_find_pf(p->reg, bdf))
            continue;   /* starting, ready, or failing right now (then it reports) */
        if (vhostd_reg_add_pf(p->reg, bdf, pf_brought_up, p, msg, sizeof(msg)) < 0)
            set_reason(p->pf_reason[i], "PF", bdf, msg);
    }
}

/* A record's add ended (from the loop). */
static void vf_restored(void *ctx, const char *bdf, struct vhostd_vf *vf, int err, const char *msg)
{
    struct vhostd_prov *p = ctx;
    p->restoring--;
    int i = p->enabled ? vf_index(p, bdf) : -1;
    if (i >= 0)
        set_reason(p->vf_reason[i], "VF", bdf, err ? msg : "");
    if (i >= 0 && err && !ev_is_active(&p->retry)) {   /* tried again later, as a refused add is */
        ev_timer_set(&p->retry, VHOSTD_PROV_RETRY_S, VHOSTD_PROV_RETRY_S);
        ev_timer_start(p->loop, &p->retry);
    }
}

static void apply_vfs(struct vhostd_prov *p)
{
    char msg[VHOSTD_PROV_REASON_LEN];
    for (unsigned i = 0; i < p->want.nvfs; i++) {
        const struct vhostd_state_vf *v = &p->want.vfs[i];
        if (vhostd_reg_find_vf(p->reg, v->bdf) || vhostd_reg_find_adding(p->reg, v->bdf))
            continue;
        if (!p->vf_pf[i][0])
            pci_vf_pf(p->reg->opt->pci_root, v->bdf, p->vf_pf[i]);
        struct vhostd_pf *pf = p->vf_pf[i][0] ? vhostd_reg_find_pf(p->reg, p->vf_pf[i]) : NULL;
        if (pf && pf->state == PF_STARTING)
            continue;   /* its PF reports soon and applies again */
        /* its size first, while no driver holds it (nothing written when it already has it) */
        unsigned old;
        int rc = v->msix ? vhostd_msix_assign(p->reg->opt->pci_root, v->bdf, v->msix, &old, msg, sizeof(msg)) : 0;
        if (rc == 0)
            rc = vhostd_reg_add_vf_mode(p->reg, v->bdf, v->socket, v->uuid, !strcmp(v->mode, "direct"), vf_restored,
                                        p, msg, sizeof(msg));
        if (rc < 0)
            set_reason(p->vf_reason[i], "VF", v->bdf, msg);
        else
            p->restoring++;   /* the reason is set when its bring-up ends */
    }
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhostd_prov *p = w->data;
    apply_pfs(p);
    apply_vfs(p);
    if (p->dirty)
        save(p);
    unsigned pfs, vfs;
    if (!p->dirty && !vhostd_prov_pending_count(p, &pfs, &vfs))
        ev_timer_stop(loop, w);   /* nothing to retry: no scan of every record every few seconds */
}

void vhostd_prov_start(struct vhostd_prov *p, struct ev_loop *loop, struct vhostd_registry *reg)
{
    p->reg = reg;
    p->loop = loop;
    if (!p->enabled)
        return;
    ev_timer_init(&p->retry, retry_cb, 0., VHOSTD_PROV_RETRY_S);
    p->retry.data = p;
    ev_timer_start(loop, &p->retry);
}
