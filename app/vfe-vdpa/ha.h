/*
 * vfe-vhostd's side of vfe-vhostd-ha (docs/ha.md): what it deposits, when,
 * and how a restarted daemon takes every PF, VF and vhost-user session over.
 *
 * Start: vhostd_ha_fetch() asks the HA process for every record (blocking,
 * bounded: it is the daemon's first act, before the loop runs);
 * vhostd_ha_adopt() takes each PF and VF over from them without a reset,
 * their device calls on the registry's devq while the loop serves RPC.
 * The start's blocking client stays (deposits, deletes) until every
 * take-over ended; then it becomes the link.  A
 * record that cannot be continued is deleted from the HA process at once (it
 * then closes its copies: the device sees its transport end and resets, the
 * front-end sees its connection end and reconnects) and the PF or VF is
 * provisioned afresh - a clean, logged reset of that one PF or VF.
 *
 * Running: a non-blocking link (vfe_ha_link).  Each PF is deposited when it
 * is ready; each VF when it is added and at every point its device half or
 * session asks (vdpa_session_cfg.persist); records are deleted when a PF or
 * VF is removed.  A lost HA process costs a log line; when a new one comes up
 * everything is deposited again.
 *
 * Stop: vhostd_ha_handover() deposits everything once more, synchronously
 * (bounded), so a successor finds the latest state; the daemon then exits
 * without stopping any device or closing any session.
 *
 * Ownership: the struct is main()'s; fds deposited stay the PFs' and VFs'
 * (the HA process holds copies); fds of fetched records are handed to the
 * PFs and VFs that adopt them or closed.
 */
#ifndef VFE_VHOSTD_HA_H
#define VFE_VHOSTD_HA_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>

#include "app/vfe-vdpa/registry.h"
#include "drivers/common/virtio_ha/vfe_ha_client.h"
#include "drivers/common/virtio_ha/vfe_ha_link.h"

struct vhostd_ha {
    struct ev_loop *loop;
    const char *path;
    struct vhostd_registry *reg;
    struct vfe_ha_client *client;      /* start only: fetch, and deletes of what cannot be adopted */
    struct vfe_ha_record *recs;        /* fetched, until every take-over ended */
    unsigned nrecs;
    struct ha_adoption *adoptions;     /* one per record, while take-overs run (ha.c) */
    unsigned pending;                  /* take-overs not ended */
    ev_timer finished;                 /* reports the end from the loop */
    void (*adopted)(void *ctx);
    void *adopted_ctx;
    double adopt_t0;
    struct vfe_ha_link *link;
    bool handing_over;
    /* what the last start took over */
    unsigned resumed_pfs, resumed_vfs, reset_pfs, reset_vfs;
    double resume_ms;                  /* fetch to every session reading again */
    double resumed_at;                 /* wall clock */
    /* deposits */
    uint64_t deposits, deposit_failures, deposit_ns;
    uint64_t last_record_bytes, record_bytes;
    /* VFs re-added once their PF is up again; entries past nfallback are not
     * cleared (3.5 MB for 16k VFs: untouched pages cost no memory) */
    struct vhostd_vf_rec fallback_rec[VHOSTD_MAX_MANAGED_VFS];
    unsigned nfallback;
};

/* Connect to path and fetch every record; 0, or -errno (logged: the daemon
 * starts fresh then, and deposits once the HA process answers). */
int vhostd_ha_fetch(struct vhostd_ha *h, struct ev_loop *loop, const char *path, struct vhostd_registry *reg);
/* Take over every PF and VF the fetched records hold (see above), off the
 * loop (docs/device-calls.md, "HA take-over"): each PF's device calls are a
 * devq job; its VFs' jobs are submitted once its own done ran (a VF needs
 * its PF's IOVA space and dialect), in its group.  Meanwhile the registry
 * shows them `adopting`.  adopted(ctx) runs once, from the loop (never inside
 * this call), when every take-over ended - adopted, or reset and re-added -
 * after the take-over log line: then the link and the persisted
 * provisioning start.  Stopped by a hand-over: the take-overs still running
 * are abandoned (nothing reset, no record deleted) and adopted never runs. */
void vhostd_ha_adopt(struct vhostd_ha *h, void (*adopted)(void *ctx), void *ctx);
bool vhostd_ha_adopting(const struct vhostd_ha *h);
/* Start the running link (after adopt). */
int vhostd_ha_link_start(struct vhostd_ha *h);

void vhostd_ha_put_pf(struct vhostd_ha *h, struct vhostd_pf *pf);
void vhostd_ha_put_vf(struct vhostd_ha *h, struct vhostd_vf *vf);
/* Deposit vf and have the HA process write `reply` on its front-end's
 * connection once stored (atomic for a successor).  false: not possible now
 * (link down or busy, older HA process): nothing was sent. */
bool vhostd_ha_put_vf_reply(struct vhostd_ha *h, struct vhostd_vf *vf, const void *reply, size_t len);
void vhostd_ha_del(struct vhostd_ha *h, const char *kind, const char *bdf);
/* A PF came up (fresh): re-add the VFs of it a failed adoption left. */
void vhostd_ha_pf_ready(struct vhostd_ha *h, const char *pf);

/* Final synchronous deposit before exiting without teardown. */
void vhostd_ha_handover(struct vhostd_ha *h);
void vhostd_ha_close(struct vhostd_ha *h);
json_t *vhostd_ha_health(const struct vhostd_ha *h);

#endif
