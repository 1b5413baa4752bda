/*
 * What an operator asks of vfe-vhostd: add and remove PFs and VFs.  The rules
 * (a PF whose VF runs in direct mode, a pending record dropped, the
 * persisted provisioning noted after each success) live here once; the two
 * RPC front-ends (rpc_methods.c: vfe's replies, rpc_compat.c: the peer's)
 * only decode params and format the answer.
 *
 * Every call answers now (0 or -errno with one sentence in msg, which is also
 * logged as a warning: the journal explains every refusal) or, where it
 * says so, later through its callback: from the loop, exactly once, never
 * inside the call.  Nothing here keeps the caller's ctx after that callback.
 */
#ifndef VFE_VHOSTD_OPERATOR_OPS_H
#define VFE_VHOSTD_OPERATOR_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "app/vfe-vdpa/vhostd.h"

/* 0: bring-up started, done(ctx, pf, err) follows (pf valid during the call
 * only; on success the PF is persisted).  Refused now:
 *   -EBUSY   a VF of it is served in direct mode (the bring-up would reset it)
 *   -ENOMEM, and the registry's errors (vhostd_reg_add_pf). */
int vhostd_op_pf_add(struct vhostd *d, const char *bdf, vhostd_pf_added_cb done, void *ctx, char *msg, size_t len);

/* Remove a PF, or its pending record.  0, or:
 *   -ENOTEMPTY  it has VFs (serving, being removed, or pending records)
 *   -EBUSY      its bring-up is still running
 *   -ENOENT     neither added nor pending */
int vhostd_op_pf_remove(struct vhostd *d, const char *bdf, char *msg, size_t len);

/* Add a VF (socket NULL: the --iface prefix + bdf; uuid NULL: none).  The
 * device is brought up by a job off the loop (registry.h): 0, and
 * done(ctx, bdf, vf, err, msg) follows once it serves (err 0: persisted)
 * or failed (err, msg; logged); refused now:
 *   -EEXIST  direct requested but its PF is managed; the registry's errors
 *   -EBUSY   it is being added or removed */
int vhostd_op_vf_add(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, bool direct,
                     vhostd_vf_added_cb done, void *ctx, char *msg, size_t len);

/* The same, sized first: vectors > 0 writes the VF's MSI-X count from its PF's
 * pool before the VF is opened (vf_msix.h), persisted with the record; the
 * old count is written back if the add then fails.  Besides the above:
 *   -EEXIST  already added or pending (nothing written)
 *   vhostd_msix_assign's errors (-ENOSPC says how many vectors are free) */
int vhostd_op_vf_add_sized(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, bool direct,
                           unsigned vectors, vhostd_vf_added_cb done, void *ctx, char *msg, size_t len);

/* Give every VF of a PF's MSI-X vectors back to its pool.  0, or -EBUSY while
 * any VF of it is served, or vhostd_msix_reclaim's errors. */
int vhostd_op_pf_reclaim_msix(struct vhostd *d, const char *bdf, char *msg, size_t len);

/* Remove a VF (out of the persisted provisioning at once).
 *   0  its device is stopping; done(ctx) follows once it is gone
 *   1  it was a pending record only: dropped now, done is not called
 *   <0 refused (the registry's errors), done is not called */
int vhostd_op_vf_remove(struct vhostd *d, const char *bdf, void (*done)(void *ctx), void *ctx, char *msg,
                        size_t len);
/* The same; release_msix: once the device is closed (or now, for a pending
 * record) its MSI-X vectors go back to the PF's pool (a failure is logged). */
int vhostd_op_vf_remove_release(struct vhostd *d, const char *bdf, bool release_msix, void (*done)(void *ctx),
                                void *ctx, char *msg, size_t len);

#endif
