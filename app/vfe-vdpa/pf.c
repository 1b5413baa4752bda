/* PF bring-up without blocking the loop: open, reset, the device's
 * features, the admin queue's setup and DRIVER_OK on a devq job (kernel
 * VFIO: the admin queue on the loop, see admin_device), then the admin
 * queue's watchers started and the dialect probed by callback on the loop. */
#include "app/vfe-vdpa/pf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include "app/vfe-vdpa/ha_record.h"
#include "lib/log/vfe_log.h"

#define PF_RESET_TIMEOUT_S 2.0

static void report_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhostd_pf *pf = w->data;
    /* last use of pf here: ready_cb may close it */
    pf->ready_cb(pf->ready_ctx, pf, pf->state == PF_READY ? 0 : pf->err);
}

/* Runs inside the admin queue's completion or the reset timer: the owner
 * hears of it from the loop, so it may close the PF in its callback. */
static void finish(struct vhostd_pf *pf, int err)
{
    pf->state = err ? PF_FAILED : PF_READY;
    pf->err = err;
    if (err)
        LOG_E("PF %s: bring-up failed: %s", pf->bdf, strerror(-err));
    else
        LOG_N("PF %s ready: %u VFs, admin dialect %s", pf->bdf, vhostd_pf_vfs_present(pf),
              vfe_mig_dialect_name(pf->mig.dialect));
    ev_timer_start(pf->loop, &pf->report);
}

static void probed(void *ctx, int err)
{
    finish(ctx, err == -ENOTSUP ? -EPROTONOSUPPORT : err);
}

/* Device calls after the reset, up to the admin queue (a devq worker). */
static int after_reset(struct vhostd_pf *pf, const char **step)
{
    uint64_t want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_ACCESS_PLATFORM | 1ull << VFE_VIRTIO_F_ADMIN_VQ;
    uint64_t have = 0;
    *step = "status";
    int rc = vfe_vpci_add_status(&pf->vp, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    if (rc == 0 && (*step = "device features"))
        rc = vfe_vpci_get_features(&pf->vp, &have);
    if (rc == 0 && !(have & (1ull << VFE_VIRTIO_F_ADMIN_VQ))) {
        LOG_E("PF %s offers no admin virtqueue (features %#llx)", pf->bdf, (unsigned long long)have);
        return -EPROTONOSUPPORT;
    }
    if (rc == 0 && (*step = "feature negotiation"))
        rc = vfe_vpci_negotiate(&pf->vp, want & have);
    if (rc == 0 && (*step = "MSI-X enable"))
        rc = vfe_vpci_msix_enable(&pf->vp);
    if (rc == 0 && (*step = "bus master enable"))   /* kernel VFIO leaves it off after a reset: the admin queue needs DMA */
        rc = vfe_vpci_enable_bus_master(&pf->vp);
    return rc;
}

/* The admin queue's device calls and DRIVER_OK (a devq worker for a
 * vfio-user PF; on the loop for kernel VFIO, whose DMA map changes the
 * process-wide container the loop maps into: those are ioctls and MMIO, no
 * device round trip). */
static int admin_device(struct vhostd_pf *pf, const char **step)
{
    *step = "admin queue";
    int rc = vfe_admin_open_device(&pf->vp, pf->loop, pf->iova, &pf->aq);
    if (rc == 0 && (*step = "DRIVER_OK"))
        rc = vfe_vpci_add_status(&pf->vp, VIRTIO_CONFIG_S_DRIVER_OK);
    return rc;
}

/* The admin queue's watchers and the dialect probe: on the loop. */
static int start_admin(struct vhostd_pf *pf)
{
    vfe_admin_open_watch(pf->aq);
    int memfd;
    if (vfe_admin_export(pf->aq, pf->admin_blob, sizeof(pf->admin_blob), &pf->admin_blob_len, &memfd) < 0)
        pf->admin_blob_len = 0;   /* this PF cannot be taken over by a successor: it is reset then */
    return vfe_mig_probe(&pf->mig, pf->aq, probed, pf);
}

/* A PF struct with its timers set up, nothing opened yet. */
static struct vhostd_pf *pf_new(struct ev_loop *loop, const char *bdf, enum vhostd_pf_state state)
{
    struct vhostd_pf *pf = calloc(1, sizeof(*pf));
    if (!pf)
        return NULL;
    snprintf(pf->bdf, sizeof(pf->bdf), "%s", bdf);
    pf->loop = loop;
    pf->state = state;
    ev_timer_init(&pf->report, report_cb, 0., 0.);
    pf->report.data = pf;
    return pf;
}

/* ---- bring-up job (pf.h) ---- */

struct pf_job {
    struct vhostd_pf *pf;          /* STARTING: its t, iova and vp are the job's until pf_done */
    char root[4096];
    int err;
    const char *step;
    bool admin_off_loop;           /* vfio-user: the admin queue's device calls are the job's too */
};

static bool is_vfio_user(const char *root, const char *bdf)
{
    char sock[4200];
    struct stat st;
    snprintf(sock, sizeof(sock), "%s/%s/vfio-user.sock", root, bdf);
    return stat(sock, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int open_transport(struct vhostd_pf *pf, const char *root, const char **step)
{
    *step = "transport open";
    int rc = vfe_transport_open(root, pf->bdf, &pf->t);
    if (rc == 0 && (*step = "IOVA space") && !(pf->iova = vfe_pf_iova_create(pf->t)))
        rc = errno ? -errno : -ENOMEM;
    return rc;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* On a devq worker: the device calls of the bring-up, up to the admin queue. */
static void pf_work(void *arg)
{
    struct pf_job *j = arg;
    struct vhostd_pf *pf = j->pf;
    int rc = pf->t ? 0 : open_transport(pf, j->root, &j->step);
    if (rc == 0 && (j->step = "virtio capabilities"))
        rc = vfe_vpci_init(&pf->vp, pf->t);
    if (rc == 0 && (j->step = "reset"))
        rc = vfe_vpci_reset(&pf->vp);
    double deadline = mono_s() + PF_RESET_TIMEOUT_S;
    for (bool done = false; rc == 0 && !done;) {
        rc = vfe_vpci_reset_done(&pf->vp, &done);
        if (rc == 0 && !done && mono_s() >= deadline)
            rc = -ETIMEDOUT;
        else if (rc == 0 && !done)
            usleep(1000);
    }
    if (rc == 0)
        rc = after_reset(pf, &j->step);
    if (rc == 0 && j->admin_off_loop)
        rc = admin_device(pf, &j->step);
    j->err = rc;
}

/* On the loop: the PF comes back from the worker. */
static void pf_done(void *arg, int status)
{
    struct pf_job *j = arg;
    struct vhostd_pf *pf = j->pf;
    int rc = status < 0 ? status : j->err;
    if (rc == 0 && !j->admin_off_loop)
        rc = admin_device(pf, &j->step);
    if (rc == 0 && (rc = start_admin(pf)) < 0)
        j->step = "admin dialect probe";
    if (rc < 0 && status == 0)
        LOG_E("PF %s: bring-up failed at %s%s", pf->bdf, j->step ? j->step : "?",
              rc == -ETIMEDOUT || rc == -EAGAIN ? ": the device did not answer" : "");
    free(j);
    if (rc < 0)
        finish(pf, rc);
}

struct vhostd_pf *vhostd_pf_open(struct ev_loop *loop, struct vfe_devq *q, const char *root, const char *bdf,
                                 void (*cb)(void *ctx, struct vhostd_pf *pf, int err), void *ctx, int *err)
{
    struct vhostd_pf *pf = pf_new(loop, bdf, PF_STARTING);
    struct pf_job *j = pf ? calloc(1, sizeof(*j)) : NULL;
    if (!j) {
        free(pf);
        *err = -ENOMEM;
        return NULL;
    }
    pf->ready_cb = cb;
    pf->ready_ctx = ctx;
    j->pf = pf;
    snprintf(j->root, sizeof(j->root), "%s", root);
    int rc = pci_pf_vfs(root, bdf, pf->vfs, VHOSTD_MAX_VFS);
    if (rc >= 0) {
        pf->num_vfs = rc;
        rc = 0;
    }
    /* kernel VFIO's open and DMA space share process-wide state with the loop: here, not in the job */
    j->admin_off_loop = is_vfio_user(root, bdf);
    if (rc == 0 && !j->admin_off_loop)
        rc = open_transport(pf, root, &j->step);
    if (rc == 0)
        rc = vfe_devq_submit(q, bdf, pf_work, pf_done, j);
    if (rc < 0) {
        LOG_E("PF %s: %s", bdf, strerror(-rc));
        free(j);
        vhostd_pf_close(pf);
        *err = rc;
        return NULL;
    }
    *err = 0;
    return pf;
}

void vhostd_pf_close(struct vhostd_pf *pf)
{
    if (!pf)
        return;
    ev_timer_stop(pf->loop, &pf->report);
    if (pf->vp.t)
        vfe_vpci_reset(&pf->vp);
    if (pf->aq)
        vfe_admin_close(pf->aq);
    vfe_pf_iova_destroy(pf->iova);
    vfe_transport_close(pf->t);
    free(pf);
}

unsigned vhostd_pf_vf_num(const struct vhostd_pf *pf, const char *bdf)
{
    for (int i = 0; i < pf->num_vfs; i++)
        if (pf->vfs[i][0] && !strcmp(pf->vfs[i], bdf))
            return (unsigned)i + 1;
    return 0;
}

unsigned vhostd_pf_vfs_present(const struct vhostd_pf *pf)
{
    unsigned n = 0;
    for (int i = 0; i < pf->num_vfs; i++)
        n += pf->vfs[i][0] != '\0';
    return n;
}

void vhostd_pf_rescan(struct vhostd_pf *pf, const char *root)
{
    int n = pci_pf_vfs(root, pf->bdf, pf->vfs, VHOSTD_MAX_VFS);
    pf->num_vfs = n > 0 ? n : 0;
}

/* ---- HA ---- */

int vhostd_pf_export(struct vhostd_pf *pf, uint8_t *buf, size_t cap, size_t *len, int *fds, unsigned max_fds,
                     unsigned *nfds)
{
    if (pf->state != PF_READY || !pf->admin_blob_len)
        return -EAGAIN;
    uint8_t tb[VFE_TRANSPORT_BLOB_MAX], ib[4096], mb[256];
    size_t tl, il, ml;
    unsigned tn;
    int memfd;
    uint8_t ab[512];
    size_t al;
    int rc = vfe_transport_export(pf->t, tb, sizeof(tb), &tl, fds, max_fds, &tn);
    if (rc == 0)
        rc = vfe_pf_iova_export(pf->iova, ib, sizeof(ib), &il);
    if (rc == 0)
        rc = vfe_admin_export(pf->aq, ab, sizeof(ab), &al, &memfd);   /* for its memfd; the blob is the first one */
    if (rc == 0)
        rc = vfe_mig_export(&pf->mig, mb, sizeof(mb), &ml);
    if (rc == 0 && tn >= max_fds)
        rc = -ENOSPC;
    if (rc < 0)
        return rc;
    fds[tn] = memfd;
    struct ha_rec r = {.kind = HA_REC_PF, .nsec = 4,
                       .sec = {{tb, (uint32_t)tl, tn}, {ib, (uint32_t)il, 0},
                               {pf->admin_blob, (uint32_t)pf->admin_blob_len, 1}, {mb, (uint32_t)ml, 0}}};
    snprintf(r.bdf, sizeof(r.bdf), "%s", pf->bdf);
    *nfds = tn + 1;
    return ha_rec_encode(&r, buf, cap, len);
}

static void close_fds(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* ---- HA take-over off the loop (pf.h) ---- */

struct adopt_job {
    struct vhostd_pf *pf;          /* STARTING: its t, iova, vp and aq are the job's until adopt_done */
    struct ha_rec r;               /* sections point into the fetched record (the caller keeps it) */
    int *fds;                      /* the record's: the transport's, then the admin queue's memfd */
    unsigned nfds;
    bool fds_taken;                /* the transport's fds are its own now, or closed */
    char root[4096];
    const char *step;
    int err;
    vhostd_pf_adopted_cb cb;
    void *ctx;
};

/* On a devq worker: every device call of the take-over. */
static void adopt_work(void *arg)
{
    struct adopt_job *j = arg;
    struct vhostd_pf *pf = j->pf;
    const struct ha_rec *r = &j->r;
    unsigned tn = r->sec[0].nfds;
    j->step = "transport";
    int rc = vfe_transport_adopt(j->root, r->bdf, r->sec[0].data, r->sec[0].len, j->fds, tn, &pf->t);
    if (rc < 0)
        close_fds(j->fds, tn);
    j->fds_taken = true;
    if (rc == 0 && (j->step = "IOVA space") && !(pf->iova = vfe_pf_iova_import(pf->t, r->sec[1].data, r->sec[1].len)))
        rc = errno ? -errno : -ENOMEM;
    struct vfe_vpci_state st;
    if (rc == 0 && (j->step = "virtio-pci state"))
        rc = vfe_vpci_adopt(&pf->vp, pf->t, &st);
    if (rc == 0 && (j->step = "admin queue"))
        rc = vfe_admin_adopt_device(&pf->vp, pf->loop, pf->iova, r->sec[2].data, r->sec[2].len, j->fds[tn], &pf->aq);
    j->err = rc;
}

/* On the loop: the watchers, the dialect, then the owner hears. */
static void adopt_done(void *arg, int status)
{
    struct adopt_job *j = arg;
    struct vhostd_pf *pf = j->pf;
    const struct ha_rec *r = &j->r;
    unsigned tn = r->sec[0].nfds;
    char msg[300] = "";
    int rc = status < 0 ? status : j->err;
    if (!j->fds_taken)
        close_fds(j->fds, tn);   /* never ran (the daemon stops): the HA process still holds its copies */
    if (rc == 0) {
        vfe_admin_adopt_watch(pf->aq);
        j->step = "admin dialect";
        rc = vfe_mig_adopt(&pf->mig, pf->aq, r->sec[3].data, r->sec[3].len);
    }
    close(j->fds[tn]);   /* the admin queue keeps its own */
    if (rc == 0) {
        memcpy(pf->admin_blob, r->sec[2].data, r->sec[2].len);
        pf->admin_blob_len = r->sec[2].len;
        pf->state = PF_READY;
        LOG_N("PF %s taken over as it runs: %u VFs, admin dialect %s, no reset", pf->bdf, vhostd_pf_vfs_present(pf),
              vfe_mig_dialect_name(pf->mig.dialect));
    } else if (status < 0) {
        snprintf(msg, sizeof(msg), "PF %s: take-over abandoned: the daemon is stopping", pf->bdf);
    } else {
        snprintf(msg, sizeof(msg), "PF %s cannot be taken over (%s: %s%s)", pf->bdf, j->step, strerror(-rc),
                 rc == -ETIMEDOUT ? ": the device did not answer" : "");
    }
    if (rc < 0) {
        pf->state = PF_FAILED;
        pf->err = rc;
    }
    vhostd_pf_adopted_cb cb = j->cb;
    void *ctx = j->ctx;
    free(j->fds);
    free(j);
    cb(ctx, pf, rc, msg);   /* on failure the owner abandons pf (no device call: the HA process holds it) */
}

struct vhostd_pf *vhostd_pf_adopt_async(struct ev_loop *loop, struct vfe_devq *q, const char *root,
                                        const struct ha_rec *r, const int *fds, unsigned nfds,
                                        vhostd_pf_adopted_cb cb, void *ctx, char *msg, size_t len, int *err)
{
    if (r->kind != HA_REC_PF || r->nsec != 4 || r->sec[2].nfds != 1 || r->sec[1].nfds || r->sec[3].nfds ||
        r->sec[2].len > sizeof(((struct vhostd_pf *)0)->admin_blob) || nfds != r->sec[0].nfds + 1) {
        close_fds(fds, nfds);
        snprintf(msg, len, "PF %s: not a PF record this daemon reads", r->bdf);
        *err = -EINVAL;
        return NULL;
    }
    struct vhostd_pf *pf = pf_new(loop, r->bdf, PF_STARTING);
    struct adopt_job *j = pf ? calloc(1, sizeof(*j)) : NULL;
    int *copy = j ? malloc(nfds * sizeof(int)) : NULL;
    int rc = copy ? pci_pf_vfs(root, r->bdf, pf->vfs, VHOSTD_MAX_VFS) : -ENOMEM;
    if (rc >= 0) {
        pf->num_vfs = rc;
        pf->adopted = true;
        memcpy(copy, fds, nfds * sizeof(int));
        *j = (struct adopt_job){.pf = pf, .r = *r, .fds = copy, .nfds = nfds, .cb = cb, .ctx = ctx};
        snprintf(j->root, sizeof(j->root), "%s", root);
        rc = vfe_devq_submit(q, r->bdf, adopt_work, adopt_done, j);
    }
    if (rc < 0) {
        snprintf(msg, len, "PF %s cannot be taken over (%s: %s)", r->bdf, pf ? "PCI tree" : "memory", strerror(-rc));
        close_fds(fds, nfds);
        free(copy);
        free(j);
        free(pf);
        *err = rc;
        return NULL;
    }
    *err = 0;
    return pf;
}

void vhostd_pf_abandon(struct vhostd_pf *pf)
{
    if (!pf)
        return;
    ev_timer_stop(pf->loop, &pf->report);
    if (pf->aq)
        vfe_admin_abandon(pf->aq);
    vfe_mig_abandon(&pf->mig);
    vfe_pf_iova_destroy_quiet(pf->iova);
    vfe_transport_close(pf->t);
    free(pf);
}
