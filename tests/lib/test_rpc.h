/*
 * The tests' side of vfe-vhostd's JSON-RPC socket: one call (quiet, or with
 * the daemon's message), and one VF's entry of `stats`.  Synchronous, bounded by the timeouts below.
 */
#ifndef VFE_TEST_RPC_H
#define VFE_TEST_RPC_H

#include <jansson.h>

/* method(params) on the daemon's socket at path, within 5 s: 0 or the
 * client's -errno (the reason printed to stderr).  Takes params; the result
 * goes to *result (the caller's to drop) when result is not NULL. */
int test_rpc_call(const char *path, const char *method, json_t *params, json_t **result);

/* The same within timeout_ms, the daemon's message in msg (cleared first)
 * for callers that check it: 0 or the error code. */
int test_rpc_ask(const char *path, const char *method, json_t *params, int timeout_ms, json_t **result, char *msg,
                 size_t len);

/* bdf's entry of `stats` (the caller's to drop), NULL if the call failed. */
json_t *test_rpc_vf_stats(const char *path, const char *bdf);

#endif
