/*
 * Paged list calls (`stats`, `vf -l`): the daemon answers a page at a time
 * with `total` and, while more follow, `next` (docs/rpc.md).  mgmt_page_call
 * asks page after page and hands back one merged result, as an unpaged daemon
 * would have answered (the list key holds every item, `total` kept, no `next`).
 */
#ifndef VHOSTMGMT_PAGE_H
#define VHOSTMGMT_PAGE_H

#include <jansson.h>
#include <stddef.h>

/* Pages asked at most: VHOSTD's 16384 VFs at the smallest default page, and slack. */
#define MGMT_PAGE_MAX_PAGES 1024

/* The list key of a paged result ("vfs", "devices"), or NULL if result is
 * not a paged list. */
const char *mgmt_page_key(const json_t *result);

/* Merge page (borrowed) into acc (owned, the first page): append its items.
 * 0, or -1 with msg if the page is not a continuation (wrong key, type). */
int mgmt_page_merge(json_t *acc, const json_t *page, char *msg, size_t len);

/* rpc_client_call (params borrowed), then every further page while the answer
 * has `next`.  next must grow (a daemon that repeats an offset is an error). */
int mgmt_page_call(const char *path, const char *method, json_t *params, int timeout_ms, json_t **result, char *msg,
                   size_t len);

#endif
