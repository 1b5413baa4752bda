/*
 * Paged replies of `stats` and `vf -l`: params `offset` (default 0) and
 * `limit` (default per method, at most VHOSTD_PAGE_MAX); the reply carries `total` and,
 * while more follow, `next` (the offset of the next page).  A page is built
 * in one loop turn, so its size bounds how long other clients wait (measured
 * in docs/scale.md).  Offsets count the listed items in registry order: a VF
 * added or removed between two pages may shift the rest by one.
 */
#ifndef VFE_VHOSTD_RPC_PAGE_H
#define VFE_VHOSTD_RPC_PAGE_H

#include <jansson.h>
#include <stdbool.h>

#include "lib/rpc/rpc.h"

/* stats reads the page's counters from the devices asynchronously (all at
 * once, answered when they are in or after the transport timeout,
 * docs/device-calls.md); 64 keep the reply and its JSON small */
#define VHOSTD_PAGE_STATS_DEFAULT 64
#define VHOSTD_PAGE_LIST_DEFAULT 256
#define VHOSTD_PAGE_MAX 1024

struct vhostd_page {
    unsigned offset, limit;
    unsigned seen;          /* items counted so far (vhostd_page_take) */
};

/* Validate params' offset/limit into pg.  false: an error reply was sent
 * (-32602: not an integer, negative, offset above 2^31, limit 0 or above
 * VHOSTD_PAGE_MAX). */
bool vhostd_page_params(json_t *params, unsigned dflt_limit, struct vhostd_page *pg, struct rpc_call *c);
/* Count one more item: true if it belongs on this page. */
bool vhostd_page_take(struct vhostd_page *pg);
/* Add total and next to the reply object res. */
void vhostd_page_finish(json_t *res, const struct vhostd_page *pg);

#endif
