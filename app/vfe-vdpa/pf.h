/* A managed PF: its transport, virtio-pci device, admin queue and dialect. */
#ifndef VFE_VHOSTD_PF_H
#define VFE_VHOSTD_PF_H

#include <ev.h>

#include "app/vfe-vdpa/pci_tree.h"
#include "drivers/common/virtio_mi/vfe_mig.h"

enum vhostd_pf_state { PF_STARTING, PF_READY, PF_FAILED };

struct vhostd_pf {
    char bdf[16];
    enum vhostd_pf_state state;
    struct ev_loop *loop;
    struct vfe_transport *t;
    struct vfe_pf_iova *iova;        /* the PF's IOVA space: admin queue, VF dirty logs */
    struct vfe_virtio_pci vp;
    struct vfe_admin_vq *aq;
    struct vfe_mig mig;
    ev_timer report;                 /* ready_cb from the loop, never inside a device call */
    int err;                         /* why it FAILED */
    void (*ready_cb)(void *ctx, struct vhostd_pf *pf, int err);
    void *ready_ctx;
    char vfs[VHOSTD_MAX_VFS][16];    /* VF n is vfs[n-1]; "" where it is gone */
    int num_vfs;                     /* slots in vfs */
    uint8_t admin_blob[512];         /* HA: the admin queue as exported right after it opened */
    size_t admin_blob_len;
    bool adopted;                    /* taken over from a predecessor (HA) */
    uint64_t ha_iova_changes;        /* HA: vfe_pf_iova_changes() when the PF was last deposited */
};

/* Open the PF under root and bring its admin queue up; cb runs once, later and
 * from the loop, with 0 (pf READY) or -errno (pf FAILED).  cb may close pf.
 * The device calls up to the admin queue (vfio-user open, reset and its
 * poll, features, MSI-X) run as a job on q keyed by the PF's BDF: while pf
 * is STARTING its t, iova and vp are the job's, the loop reads bdf, state
 * and the VF list only.  q must outlive the job (the registry destroys q
 * before it closes its PFs). */
struct vfe_devq;
struct vhostd_pf *vhostd_pf_open(struct ev_loop *loop, struct vfe_devq *q, const char *root, const char *bdf,
                                 void (*cb)(void *ctx, struct vhostd_pf *pf, int err), void *ctx, int *err);
void vhostd_pf_close(struct vhostd_pf *pf);
struct ha_rec;
/* HA (docs/ha.md).  export: the PF's record (transport, IOVA space, admin
 * queue, dialect) into buf and the fds it needs into fds (they stay the
 * PF's).  -ENOSPC, -EAGAIN (not ready), -errno of a layer. */
int vhostd_pf_export(struct vhostd_pf *pf, uint8_t *buf, size_t cap, size_t *len, int *fds, unsigned max_fds,
                     unsigned *nfds);
/* adopt: a READY PF from a decoded record and its fds, without a reset or
 * any write that changes the device: the transport continued, the admin
 * queue taken over as it runs (docs/device-calls.md, "HA take-over"): a PF shell,
 * STARTING with adopted set, is returned at once (the loop reads its bdf,
 * state and VF list only); a job on q keyed by the PF's BDF continues the
 * transport (its resync probe), imports the IOVA space, reads the virtio-pci
 * state and takes the admin queue's device half over; then, on the loop,
 * the admin queue's watchers start and the dialect is adopted.  cb(ctx, pf,
 * err, msg) runs once, from the loop, never inside this call: 0 and pf
 * READY, or -errno (-ESHUTDOWN/-ECANCELED: the queue was destroyed) and pf
 * FAILED with every fd the record gave closed or owned by pf: the owner
 * calls vhostd_pf_abandon(pf) (no device call: the HA process still holds
 * the device).  r's sections must stay valid until cb ran (r itself is
 * copied).  NULL now: refused (msg, *err), every fd closed, cb never runs. */
typedef void (*vhostd_pf_adopted_cb)(void *ctx, struct vhostd_pf *pf, int err, const char *msg);
struct vhostd_pf *vhostd_pf_adopt_async(struct ev_loop *loop, struct vfe_devq *q, const char *root,
                                        const struct ha_rec *r, const int *fds, unsigned nfds,
                                        vhostd_pf_adopted_cb cb, void *ctx, char *msg, size_t len, int *err);
/* Forget the PF as a crash would (no device call; tests, hand-over). */
void vhostd_pf_abandon(struct vhostd_pf *pf);

/* VF number of bdf on this PF, 0 if it is not one of its VFs. */
unsigned vhostd_pf_vf_num(const struct vhostd_pf *pf, const char *bdf);
/* VFs listed in the tree now (holes left by removed VFs not counted). */
unsigned vhostd_pf_vfs_present(const struct vhostd_pf *pf);
/* Read the PF's VF links again (VFs created or removed since it was opened). */
void vhostd_pf_rescan(struct vhostd_pf *pf, const char *root);

#endif
