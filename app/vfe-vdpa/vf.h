/* One provisioned VF: its transport, device half and vhost-user session.
 * Knows nothing of the registry; the registry owns every struct vhostd_vf. */
#ifndef VFE_VHOSTD_VF_H
#define VFE_VHOSTD_VF_H

#include <ev.h>

#include "app/vfe-vdpa/pf.h"
#include "app/vfe-vdpa/sock_path.h"
#include "drivers/vdpa/virtio/vdpa_session.h"
#include "lib/devq/vfe_devq.h"

/* What the registry keeps of a VF: plain data, enough to provision it again. */
struct vhostd_vf_rec {
    char bdf[16];
    char pf[16];
    unsigned vf_num;                      /* 1-based, on its PF */
    char socket[VHOSTD_SOCK_PATH_LEN];    /* canonical */
    char uuid[64];                        /* VM id, "" for none */
    bool direct;                          /* no PF admin queue: driven through its own common config */
};

struct vhostd_vf {
    struct vhostd_vf_rec rec;
    struct vhostd_pf *pf;                 /* outlives the VF (the registry sees to it); NULL in direct mode */
    struct ev_loop *loop;
    struct vfe_transport *t;
    struct vdpa_vf *dev;
    struct vdpa_session *session;
    bool adding;                          /* bring-up job running: only rec is valid (vf.c) */
    struct vhostd_vf_adoption *adopting;  /* HA take-over not done (adding set too): its record and fds */
    bool adopt_running;                   /* the take-over's job is submitted (registry) */
    bool removing;
    ev_timer later;                       /* completes a removal from the loop */
    void (*removed)(void *ctx);
    void *removed_ctx;
    void (*persist)(void *ctx, struct vhostd_vf *vf);
    bool (*persist_reply)(void *ctx, struct vhostd_vf *vf, const void *reply, size_t len);
    void *persist_ctx;
    int conn_index;                       /* HA: of the front-end's connection in the last export */
    ev_io req;                            /* the transport's request IRQ (hot-unplug), when it has one */
    void (*unplug)(void *ctx, struct vhostd_vf *vf);
    void *unplug_ctx;
};

struct vhostd_vf_params {
    const char *pci_root;
    bool client;                          /* connect to QEMU's socket instead of listening */
    bool no_host_notifiers;               /* never offer doorbell pages */
    struct vhost_sock_perm perm;          /* server mode: the socket's mode and group */
    /* HA: deposit vhostd_vf_export() now (see vdpa_session_cfg.persist), and
     * with a reply for the HA process to write (persist_reply).  NULL: off. */
    void (*persist)(void *ctx, struct vhostd_vf *vf);
    bool (*persist_reply)(void *ctx, struct vhostd_vf *vf, const void *reply, size_t len);
    void *persist_ctx;
    /* The host asks for the function back (kernel VFIO request IRQ): called
     * from the loop; the owner removes the VF.  NULL: only logged. */
    void (*unplug)(void *ctx, struct vhostd_vf *vf);
    void *unplug_ctx;
};

/* Bring-up off the loop (docs/device-calls.md).
 * vhostd_vf_begin: the VF's shell: rec (fixed from now on), adding set, no
 *   transport, device or session yet.  The registry indexes it at once (it
 *   holds its BDF and socket path); NULL on ENOMEM.
 * vhostd_vf_open_async: a job on q keyed by the VF's BDF opens the transport
 *   (vfio-user; kernel VFIO opens here, on the loop) and probes the device
 *   on a pool thread; then, on the loop, the DMA domain is joined and the
 *   session created.  Until then the transport and the device half are the
 *   job's: nothing of the shell but rec may be read.  0: opened(ctx, vf,
 *   err, msg) follows from the loop, exactly once, never inside this call:
 *   err 0: vf serves (adding cleared); else vf is still the shell (the
 *   caller unindexes it and calls vhostd_vf_discard) and msg says why,
 *   naming the device and the step that failed (a device that does not
 *   answer: -ETIMEDOUT after VFE_TRANSPORT_TIMEOUT_MS); -ECANCELED /
 *   -ESHUTDOWN: the queue was destroyed (daemon stopping).  <0 now: refused
 *   (msg), nothing runs, the shell is the caller's.
 * vhostd_vf_discard: free a shell (or a VF whose open failed). */
typedef void (*vhostd_vf_opened_cb)(void *ctx, struct vhostd_vf *vf, int err, const char *msg);
struct vhostd_vf *vhostd_vf_begin(struct ev_loop *loop, struct vhostd_pf *pf, const struct vhostd_vf_rec *rec);
int vhostd_vf_open_async(struct vhostd_vf *vf, struct vfe_devq *q, const struct vhostd_vf_params *p,
                         vhostd_vf_opened_cb opened, void *ctx, char *msg, size_t len);
void vhostd_vf_discard(struct vhostd_vf *vf);
/* Stop the device, close the session and the socket, free vf; done(ctx) runs
 * afterwards, from the loop (never inside this call). */
void vhostd_vf_close(struct vhostd_vf *vf, void (*done)(void *ctx), void *ctx);

struct ha_rec;
/* HA (docs/ha.md).  export: the VF's record (transport, device half, session)
 * and its fds (they stay the VF's). */
int vhostd_vf_export(struct vhostd_vf *vf, uint8_t *buf, size_t cap, size_t *len, int *fds, unsigned max_fds,
                     unsigned *nfds);
/* The index, among the exported fds, of the front-end's connection (-1: none). */
int vhostd_vf_conn_fd_index(struct vhostd_vf *vf);
/* adopt: continue a VF from a decoded record without resetting or
 * reprogramming it, off the loop (docs/device-calls.md, "HA take-over"), in
 * two steps:
 * vhostd_vf_adopt_begin: the VF's shell (adding set, `adopting` holds a copy
 *   of r - its sections must stay valid until the take-over ends - and every
 *   fd of the record).  It waits for its PF's take-over; the registry
 *   indexes it (BDF and socket path held).  NULL: refused (msg, *err), the
 *   transport's fds closed, the session's ended (vdpa_session_end_fds).
 * vhostd_vf_adopt_start: once the PF is READY: a job on q, in the PF's
 *   group, continues the transport (its resync probe) and reads the
 *   virtio-pci state; then, on the loop, the session is adopted
 *   (vdpa_session_adopt with that state: DMA domain, vhost-user fds,
 *   watchers).  0: cb(ctx, vf, err, msg) runs once, from the loop, never
 *   inside this call: 0 and vf serving (adding cleared), or -errno and vf
 *   the bare shell (the caller unindexes it and calls vhostd_vf_discard):
 *   the session ended cleanly (front-end reconnects); -ESHUTDOWN/-ECANCELED
 *   (queue destroyed): only this process's copies closed, nothing reset or
 *   shut down.  <0: not queued, vf still waits (cancel it).
 * vhostd_vf_adopt_cancel: a shell whose job was never started: its fds
 *   closed (end_session: the session ended as above), the shell freed. */
typedef void (*vhostd_vf_adopted_cb)(void *ctx, struct vhostd_vf *vf, int err, const char *msg);
struct vhostd_vf *vhostd_vf_adopt_begin(struct ev_loop *loop, struct vhostd_pf *pf, const struct ha_rec *r,
                                        const int *fds, unsigned nfds, char *msg, size_t len, int *err);
int vhostd_vf_adopt_start(struct vhostd_vf *vf, struct vfe_devq *q, const struct vhostd_vf_params *p,
                          vhostd_vf_adopted_cb cb, void *ctx);
void vhostd_vf_adopt_cancel(struct vhostd_vf *vf, bool end_session);
/* Forget the VF as a crash would (no device call, no socket shut down). */
void vhostd_vf_abandon(struct vhostd_vf *vf);

#endif
