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
    /* HA: runs (synchronously, from the loop) at every point a successor must
     * be able to continue from: the caller deposits vdpa_session_export(),
     * vdpa_vf_export() and its transport then.  NULL: no HA. */
    void (*persist)(void *ctx);
    /* ... and with a reply the HA process writes on the front-end's
     * connection once it holds the deposit (lib/vhost persist_reply). */
    bool (*persist_reply)(void *ctx, const void *reply, size_t len);
    void *persist_ctx;
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
    /* SEND_RARP: requests from the front-end, RARPs the device sent, requests
     * refused (bad MAC) or failed; one waits for the VF to run; the device
     * cannot announce (the guest must) */
    uint64_t announce_requests, announces, announce_failures;
    bool announce_pending, announce_unsupported;
    uint16_t last_avail[VDPA_MAX_RINGS];
    unsigned nsaved;
    /* Running rings: the indices as they are in guest memory now. */
    struct { uint16_t ring, avail_idx, used_idx; } live[VDPA_MAX_RINGS];
    unsigned nlive;
};
void vdpa_session_stats(const struct vdpa_session *s, struct vdpa_session_stats *st);
bool vdpa_session_connected(const struct vdpa_session *s);

/* ---- HA (docs/ha.md) ----
 * vdpa_session_export: the session (its state and the lib/vhost snapshot)
 * and the fds it needs (they stay the session's).  -ENOTCONN, -ENOSPC.
 * vdpa_session_adopt: continue a session from such a blob, with the VF's
 * device half adopted from its own blob over the adopted transport t: no
 * reset, no map, the front-end's connection and socket continued.  From the
 * loop, later: the device operation a crash interrupted is resumed (or
 * finished as it would have been), then lib/vhost reads on.  The fds are
 * always taken: on success the session owns them and *vf is the caller's
 * (as with create); on failure (-EINVAL/-EPROTO/-EPROTONOSUPPORT: a blob
 * refused, -errno) the session has ended cleanly: its sockets shut down
 * (the front-end sees it and reconnects; the old listener, wherever a copy
 * lives, accepts nothing more, so its path may be bound again), its fds
 * closed.  t stays the caller's either way.
 * vdpa_session_abandon: forget the session as a crash would (tests). */
struct vdpa_session_adopt_in {
    const void *session_blob;       /* vdpa_session_export()'s blob */
    size_t session_len;
    const int *fds;
    unsigned nfds;
    const void *vf_blob;            /* vdpa_vf_export()'s */
    size_t vf_len;
    const struct vdpa_pf_ref *pf;
    struct vfe_transport *t;        /* adopted, the caller's */
    const char *dma_domain;
    uint16_t max_pairs;             /* as the VF was created with */
    uint64_t device_features;
    /* vfe_vpci_adopt(vp, t, vp_state) done before, off the loop; NULL: the
     * VF's state is read in the call (device round trips on the loop) */
    const struct vfe_virtio_pci *vp;
    const struct vfe_vpci_state *vp_state;
};
#define VDPA_SESSION_SNAPSHOT_MAX (256u + VHOST_SNAPSHOT_MAX)
#define VDPA_SESSION_SNAPSHOT_FDS VHOST_SNAPSHOT_MAX_FDS
int vdpa_session_export(const struct vdpa_session *s, uint8_t *buf, size_t cap, size_t *len, int *fds,
                        unsigned max_fds, unsigned *nfds);
struct vdpa_session *vdpa_session_adopt(struct ev_loop *loop, const struct vdpa_session_cfg *cfg,
                                        const struct vdpa_session_adopt_in *in, struct vdpa_vf **vf, int *err);
void vdpa_session_abandon(struct vdpa_session *s);
/* End a session from its exported fds without adopting it: shut every socket
 * down (the front-end sees the end), close every fd. */
void vdpa_session_end_fds(const int *fds, unsigned n);

#endif
