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
    ev_timer reset_poll;
    double reset_deadline;
    void (*ready_cb)(void *ctx, struct vhostd_pf *pf, int err);
    void *ready_ctx;
    char vfs[VHOSTD_MAX_VFS][16];    /* VF n is vfs[n-1] */
    int num_vfs;
    unsigned vfs_in_use;             /* provisioned VFs: removal refused while > 0 */
};

/* Open the PF under root and bring its admin queue up; cb runs once, later,
 * with 0 (pf READY) or -errno (pf FAILED: free it with vhostd_pf_close). */
struct vhostd_pf *vhostd_pf_open(struct ev_loop *loop, const char *root, const char *bdf,
                                 void (*cb)(void *ctx, struct vhostd_pf *pf, int err), void *ctx, int *err);
void vhostd_pf_close(struct vhostd_pf *pf);
/* VF number of bdf on this PF, 0 if it is not one of its VFs. */
unsigned vhostd_pf_vf_num(const struct vhostd_pf *pf, const char *bdf);

#endif
