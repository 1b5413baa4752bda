/*
 * Script mode's bulk adds: consecutive `vf -a` lines on stdin go to the
 * daemon as one vf_batch call (app/vfe-vdpa/vf_batch.h) instead of one call
 * per line, with what a line-by-line run prints and returns:
 *   - each line's output (or its error and "line N failed") in line order;
 *   - without --keep-going the daemon stops at the first failed add
 *     ("stop_on_error") and the lines after it are not applied;
 *   - a batch the daemon refuses as a whole (nothing applied: an older daemon
 *     without vf_batch, a line it finds malformed) is sent again line by line.
 * A batch holds at most MGMT_BATCH_MAX lines (the request stays well under
 * the daemon's RPC_MAX_REQUEST); a line naming a VF or socket path already
 * in the pending batch starts a new one (so it fails as "already added"
 * or "already used", as it would alone).
 *
 * Ownership: the batch owns the params of its pending lines (copies; the
 * line buffer is reused).
 */
#ifndef VHOSTMGMT_BATCH_H
#define VHOSTMGMT_BATCH_H

#include <jansson.h>
#include <stdbool.h>

#include "tools/vhostmgmt/mgmt_cmd.h"

#define MGMT_BATCH_MAX 128

struct mgmt_batch_ctx {
    const char *prog;
    const char *sock_path;
    int timeout_ms;
    bool as_json;
    bool keep_going;
};

struct mgmt_batch {
    json_t *ops;                  /* vf add params of the pending lines */
    int line[MGMT_BATCH_MAX];
};

void mgmt_batch_init(struct mgmt_batch *b);
void mgmt_batch_free(struct mgmt_batch *b);
/* c is a `vf -a` that may be batched (not -h; the caller checks the transport). */
bool mgmt_batch_wants(const struct mgmt_cmd *c);
/* c can join the pending lines (room left, its VF and socket not among them). */
bool mgmt_batch_fits(const struct mgmt_batch *b, const struct mgmt_cmd *c);
/* Take line n's command (must fit). */
void mgmt_batch_add(struct mgmt_batch *b, const struct mgmt_cmd *c, int n);
/* Run the pending lines (none: nothing happens) and empty the batch.  Each
 * failed line is reported on stderr and raises *worst to 1.  Returns true
 * when the script must stop (a failure without keep_going). */
bool mgmt_batch_flush(struct mgmt_batch *b, struct mgmt_batch_ctx *x, int *worst);

#endif
