/* PF bring-up without blocking the loop: reset polled by a timer, admin queue
 * opened, dialect probed by callback. */
#include "app/vfe-vdpa/pf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>

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

static int after_reset(struct vhostd_pf *pf)
{
    uint64_t want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_ACCESS_PLATFORM | 1ull << VFE_VIRTIO_F_ADMIN_VQ;
    uint64_t have = 0;
    int rc = vfe_vpci_add_status(&pf->vp, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    if (rc == 0)
        rc = vfe_vpci_get_features(&pf->vp, &have);
    if (rc == 0 && !(have & (1ull << VFE_VIRTIO_F_ADMIN_VQ))) {
        LOG_E("PF %s offers no admin virtqueue (features %#llx)", pf->bdf, (unsigned long long)have);
        return -EPROTONOSUPPORT;
    }
    if (rc == 0)
        rc = vfe_vpci_negotiate(&pf->vp, want & have);
    if (rc == 0)
        rc = vfe_vpci_msix_enable(&pf->vp);
    if (rc == 0)
        rc = vfe_admin_open(&pf->vp, pf->loop, pf->iova, &pf->aq);
    if (rc == 0)
        rc = vfe_vpci_add_status(&pf->vp, VIRTIO_CONFIG_S_DRIVER_OK);
    if (rc == 0)
        rc = vfe_mig_probe(&pf->mig, pf->aq, probed, pf);
    return rc;
}

static void reset_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhostd_pf *pf = w->data;
    bool done = false;
    int rc = vfe_vpci_reset_done(&pf->vp, &done);
    if (rc == 0 && !done) {
        if (ev_now(loop) < pf->reset_deadline)
            return;   /* the repeating timer polls again */
        rc = -ETIMEDOUT;
    }
    ev_timer_stop(loop, w);
    if (rc == 0)
        rc = after_reset(pf);
    if (rc < 0)
        finish(pf, rc);
}

struct vhostd_pf *vhostd_pf_open(struct ev_loop *loop, const char *root, const char *bdf,
                                 void (*cb)(void *ctx, struct vhostd_pf *pf, int err), void *ctx, int *err)
{
    struct vhostd_pf *pf = calloc(1, sizeof(*pf));
    if (!pf) {
        *err = -ENOMEM;
        return NULL;
    }
    snprintf(pf->bdf, sizeof(pf->bdf), "%s", bdf);
    pf->loop = loop;
    pf->ready_cb = cb;
    pf->ready_ctx = ctx;
    pf->state = PF_STARTING;
    ev_timer_init(&pf->reset_poll, reset_poll_cb, 0.001, 0.001);
    pf->reset_poll.data = pf;
    ev_timer_init(&pf->report, report_cb, 0., 0.);
    pf->report.data = pf;
    int rc = pci_pf_vfs(root, bdf, pf->vfs, VHOSTD_MAX_VFS);
    if (rc >= 0) {
        pf->num_vfs = rc;
        rc = vfe_transport_open(root, bdf, &pf->t);
    }
    if (rc == 0 && !(pf->iova = vfe_pf_iova_create(pf->t)))
        rc = -errno;
    if (rc == 0)
        rc = vfe_vpci_init(&pf->vp, pf->t);
    if (rc == 0)
        rc = vfe_vpci_reset(&pf->vp);
    if (rc < 0) {
        LOG_E("PF %s: %s", bdf, strerror(-rc));
        vhostd_pf_close(pf);
        *err = rc;
        return NULL;
    }
    ev_now_update(loop);
    pf->reset_deadline = ev_now(loop) + PF_RESET_TIMEOUT_S;
    ev_timer_start(loop, &pf->reset_poll);
    *err = 0;
    return pf;
}

void vhostd_pf_close(struct vhostd_pf *pf)
{
    if (!pf)
        return;
    ev_timer_stop(pf->loop, &pf->reset_poll);
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
