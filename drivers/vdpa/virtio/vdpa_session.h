/*
 * The vhost-user half of vDPA: one lib/vhost session driving one VF's
 * vdpa_vf.  It turns the front-end's requests into device operations, one at
 * a time, always converging on what the front-end asked for last:
 *   - the rings QEMU started run on the device (programmed through the PF);
 *   - GET_VRING_BASE freezes the device and answers with its own index; the
 *     rings the front-end has not asked for yet stay stopped (QEMU stops a
 *     device ring by ring, with the guest paused) until it starts a ring
 *     again, or for 2 s;
 *   - LOG_ALL (and every new log) starts device dirty tracking into QEMU's
 *     log, and the front-end gets its reply only once the device logs;
 *   - a front-end that goes away leaves the device stopped and unmapped.
 *
 * Lifetimes: the session owns its vhost_dev (and through it the socket path
 * it listens on); the VF is the caller's.  Nothing calls back into the
 * caller inside a call the caller makes: vdpa_session_destroy() returns at
 * once and `done` runs later from the loop, after the device is stopped and
 * unmapped; the session is freed just before `done` runs.
 */
#ifndef VDPA_SESSION_H
#define VDPA_SESSION_H

#include "drivers/vdpa/virtio/vdpa_vf.h"
#include "lib/vhost/vhost.h"

struct vdpa_session;

struct vdpa_session_cfg {
    const char *socket_path;
    bool client;               /* connect to QEMU's server=on socket */
    bool no_host_notifiers;    /* never offer the VF's doorbell pages */
    struct vhost_sock_perm perm;   /* server mode: the socket file's mode and group */
    const char *name;          /* the VF's BDF, for logs */
};

/* vf stays owned by the caller and must outlive the session. */
struct vdpa_session *vdpa_session_create(struct ev_loop *loop, struct vdpa_vf *vf,
                                         const struct vdpa_session_cfg *cfg, int *err);
/* Closes the socket at once, stops and unmaps the device from the loop; done
 * runs once, from the loop, when the VF may be closed. */
void vdpa_session_destroy(struct vdpa_session *s, void (*done)(void *ctx), void *ctx);

struct vdpa_session_stats {
    bool connected;
    uint64_t features;
    unsigned rings_running;
    enum vdpa_vf_state dev_state;
    bool logging;
    unsigned host_notifiers;    /* doorbell pages QEMU was offered for the running rings */
    uint16_t last_avail[VDPA_MAX_RINGS];
    unsigned nsaved;
    /* Running rings: the indices as they are in guest memory now. */
    struct { uint16_t ring, avail_idx, used_idx; } live[VDPA_MAX_RINGS];
    unsigned nlive;
};
void vdpa_session_stats(const struct vdpa_session *s, struct vdpa_session_stats *st);

#endif
