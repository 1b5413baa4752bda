/*
 * Bulk VF provisioning: the "vf_batch" JSON-RPC method of vfe-vhostd (docs/rpc.md).
 *
 *   params {"ops": [OP, ...], "stop_on_error": BOOL?}, at most VHOSTD_BATCH_MAX_OPS ops, each OP one of
 *     {"add": true, "vfdev": BDF, "socket_file": PATH?, "uuid": STR|null?, "direct": BOOL?}
 *     {"remove": true, "vfdev": BDF}
 *   result {"results": [{"vfdev": BDF, "op": "add"|"remove", "ok": true, "device": {as vf -a answers}?}
 *                     | {"vfdev": BDF, "op": ..., "ok": false, "code": C, "message": M}, ...],
 *           "ok": N, "failed": N, "elapsed_ms": F}   (results in the order of ops)
 *
 * Two phases.  Validation of the whole list first (types, BDF syntax, unknown
 * keys, a VF or a socket path named twice, the size limit): one bad entry and
 * the call is refused with RPC_INVALID_PARAMS naming the bad entries, and
 * nothing is applied.  Then the ops run in order through operator_ops (the
 * same rules as single "vf" calls), a few per loop iteration (at most
 * VHOSTD_BATCH_TICK_S of work, at least one op, per tick), so other clients'
 * calls and vhost-user traffic are served in between.  An op the registry or
 * the device refuses fails alone: the others are applied and stay applied.
 * An add starts its device's bring-up job (registry.h) and the next op goes
 * on at once: the adds of a batch run in parallel on the device queue's
 * pool, each VF's result filled in when its device answers.
 * With "stop_on_error" the ops after the first failed one are not run (each
 * answered "not run", code RPC_DEVICE_ERROR): vhostmgmt's script mode without
 * --keep-going; an op then starts only after every earlier add answered.
 * The answer comes once every op ran, every add answered and every removed
 * VF's device stopped.
 *
 * Persistence: the provisioning file is written once, when the batch ends
 * (vhostd_prov_hold/release), not once per VF.
 *
 * Ownership and lifetime: each running batch is owned by the daemon's list
 * (struct vhostd.batches) from the call until its answer; it holds the
 * rpc_call until then (a client gone meanwhile: the batch still completes,
 * the answer goes nowhere, rpc.h).  Ops run from the loop's timer only, never
 * inside the handler.
 */
#ifndef VFE_VHOSTD_VF_BATCH_H
#define VFE_VHOSTD_VF_BATCH_H

#include <jansson.h>

#define VHOSTD_BATCH_MAX_OPS 1024
#define VHOSTD_BATCH_TICK_S 0.001    /* work per chunk (at least one op) */
#define VHOSTD_BATCH_GUARD_S 0.05    /* a chunk at least this often, however busy the loop is */

struct vhostd;
struct rpc_call;
struct vhostd_batch;

/* The RPC handler (ctx: struct vhostd). */
int vhostd_batch_method(void *ctx, json_t *params, struct rpc_call *c);

/* Shutdown: no further op starts; ops not run yet are answered as not applied;
 * the file is written now.  A batch still waiting for removed devices or
 * running adds answers when they are done (the daemon's drain, or the end of
 * the device queue), otherwise at once.  Call before vhostd_prov_close. */
void vhostd_batch_stop_all(struct vhostd *d);

#endif
