/* What vhostmgmt prints on stdout: vfe's replies (plain or --json) and the
 * peer's replies the way the peer's CLI prints them. */
#ifndef VHOSTMGMT_OUT_H
#define VHOSTMGMT_OUT_H

#include <jansson.h>
#include <stdbool.h>

/* A vfe JSON-RPC result: "key  value" lines (lists one block per entry), or
 * the JSON itself (as_json). */
void mgmt_out_result(json_t *result, bool as_json);

/* The switchover timelines of a stats result (vhostmgmt migration). */
void mgmt_out_migration(json_t *stats, bool as_json);

/*
 * A reply of the peer's interface, printed as its CLI prints it: the result
 * with json.dumps(indent=2); a JSON-RPC error as the request (params with
 * "method" and "req_id" added), "Got JSON-RPC error response" and the error.
 * The exit status: 0 for a result with errno 0 (or none) and no "Error"
 * member, 1 otherwise (the peer's CLI exits 0 there: vfe's says so).
 */
int mgmt_out_peer_reply(const char *method, const json_t *params, unsigned id, const json_t *reply);

/* Python's print(params): the line the peer's CLI writes before each call
 * that has params. */
void mgmt_out_peer_echo(const json_t *params);

#endif
