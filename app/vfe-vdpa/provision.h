/*
 * Persisted provisioning: the PFs and VFs the operator asked for, kept in
 * DIR/provisioning.json (state_file.h) and applied to the registry.
 *
 * The record set is what the operator wants; the registry is what runs.  A
 * record whose PF or VF cannot be brought up yet (device absent, PF bring-up
 * failed, PF not ready) is "pending": it stays persisted and is applied again
 * by a retry timer (every VHOSTD_PROV_RETRY_S while anything is pending or
 * unsaved), with one log line per record each time its reason changes.  A daemon started before the DPU provisions
 * everything once the devices appear.
 *
 * Ownership: struct vhostd_prov owns the state directory's lock fd
 * (DIR/provisioning.json.lock) and the file; the registry is borrowed and
 * must outlive it.  Persistence off (no state dir): every call is a no-op
 * and nothing is written anywhere.
 *
 * The file is rewritten after every successful change (vhostd_prov_note_*),
 * never on a failed one; a write failure is logged, kept for health and
 * retried on the timer; the live state is never touched by it.
 * Callbacks: none.  The retry timer applies records from the loop only.
 */
#ifndef VFE_VHOSTD_PROVISION_H
#define VFE_VHOSTD_PROVISION_H

#include <ev.h>
#include <stdbool.h>

#include "app/vfe-vdpa/registry.h"
#include "app/vfe-vdpa/state_file.h"

#define VHOSTD_PROV_RETRY_S 2.0
#define VHOSTD_PROV_REASON_LEN 200

struct vhostd_prov {
    bool enabled;
    char dir[PATH_MAX];
    char path[PATH_MAX];                  /* dir/provisioning.json */
    int lock_fd;                          /* flock on path.lock for the daemon's life */
    struct vhostd_registry *reg;
    struct ev_loop *loop;
    ev_timer retry;
    struct vhostd_state want;             /* the persisted records */
    /* per record, same index as want: why it is not applied ("" when it is) */
    char pf_reason[VHOSTD_MAX_PFS][VHOSTD_PROV_REASON_LEN];
    char vf_reason[VHOSTD_MAX_MANAGED_VFS][VHOSTD_PROV_REASON_LEN];
    char vf_pf[VHOSTD_MAX_MANAGED_VFS][16];   /* the VF's PF once known from the tree */
    bool dirty;                           /* the file lags the records (a write failed) */
    unsigned writes, write_failures;
    char write_error[300];                /* last failure, "" after a success */
    unsigned held;                        /* vhostd_prov_hold depth: saves wait for the last release */
    bool save_held;                       /* a change came while held */
    unsigned restoring;                   /* adds of records in flight (bring-up jobs, registry.h) */
};

/* Persistence on with dir (NULL or "": off).  Creates dir 0700 if missing,
 * takes its lock, reads and validates the whole file.  0, or:
 *   -EINVAL / -EPROTONOSUPPORT  the file is bad (nothing applied, file untouched)
 *   -EBUSY      another daemon uses dir
 *   other       dir cannot be created or read
 * with one sentence in msg. */
int vhostd_prov_open(struct vhostd_prov *p, const char *dir, char *msg, size_t len);
/* Start applying the records to reg (first pass from the loop, soon). */
void vhostd_prov_start(struct vhostd_prov *p, struct ev_loop *loop, struct vhostd_registry *reg);
void vhostd_prov_close(struct vhostd_prov *p);

/* Successful registry changes, each persisted at once. */
void vhostd_prov_note_pf_added(struct vhostd_prov *p, const char *bdf);
void vhostd_prov_note_pf_removed(struct vhostd_prov *p, const char *bdf);
void vhostd_prov_note_vf_added(struct vhostd_prov *p, const struct vhostd_vf_rec *rec);
void vhostd_prov_note_vf_removed(struct vhostd_prov *p, const char *bdf);
/* The VF (already noted) was sized with `vectors` MSI-X vectors.  A record
 * noted again (HA adoption) keeps its size. */
void vhostd_prov_note_vf_msix(struct vhostd_prov *p, const char *bdf, unsigned vectors);

/* Batches (vf_batch.h): while held, the changes noted above are kept in
 * memory and the file is written once, by the release that ends the last
 * hold (if anything changed).  Holds nest; every hold needs one release.
 * A crash meanwhile loses the held changes (the devices are re-applied or
 * not from the last file written, as after any crash between two writes). */
void vhostd_prov_hold(struct vhostd_prov *p);
void vhostd_prov_release(struct vhostd_prov *p);

/* Pending records: reason (non-empty) or NULL if bdf is not pending. */
const char *vhostd_prov_pf_pending(const struct vhostd_prov *p, const char *bdf);
const char *vhostd_prov_vf_pending(const struct vhostd_prov *p, const char *bdf);
unsigned vhostd_prov_pending_count(const struct vhostd_prov *p, unsigned *pfs, unsigned *vfs);

#endif
