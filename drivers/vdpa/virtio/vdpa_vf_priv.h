/* Internals of vdpa_vf (device half of one VF). */
#ifndef VDPA_VF_PRIV_H
#define VDPA_VF_PRIV_H

#include <sys/types.h>

#include "drivers/bus/vfio/vfe_dma_domain.h"
#include "drivers/vdpa/virtio/vdpa_vf.h"

struct vdpa_map {
    uint64_t gpa, size, fd_offset;
    dev_t dev;
    ino_t ino;
};

struct vdpa_vf {
    struct ev_loop *loop;
    struct vdpa_pf_ref pf;
    uint16_t vf_num;
    struct vfe_transport *t;
    struct vfe_dma_domain *dom;
    struct vfe_virtio_pci vp;
    uint64_t dev_features;
    uint16_t max_pairs, num_queues;
    uint8_t mac[6];
    enum vdpa_vf_state state;

    struct vdpa_map maps[VDPA_MAX_REGIONS];
    unsigned nmaps;
    bool kick_set[VDPA_MAX_RINGS], call_set[VDPA_MAX_RINGS];

    /* the operation in progress (one at a time) */
    struct vfe_dev_state st;
    vdpa_done_cb done_cb;
    vdpa_stop_cb stop_cb;
    void *op_ctx;
    int op_err;
    ev_timer defer;            /* completes an operation outside the caller's call */
    uint16_t saved_avail[VDPA_MAX_RINGS];
    unsigned nsaved;

    /* dirty log in the PF's IOVA space (window of user vf_num, vfe_pf_iova.h) */
    bool log_mapped, log_active;
};

void vdpa_vf_defer_cb(struct ev_loop *loop, ev_timer *w, int revents);
void vdpa_vf_log_release(struct vdpa_vf *v);

#endif
