/*
 * The peer's control interface (JSON-RPC 2.0 on TCP, its daemon's default
 * 127.0.0.1:12190), spoken the way its own CLI speaks it: one request per
 * connection, written as Python's json.dumps writes it, no trailing newline;
 * the reply is one JSON value (pretty-printed or not, with or without a newline,
 * possibly ended by the server closing).  vfe-vhostd --compat-tcp answers the
 * same requests.
 *
 * Ownership: a struct mgmt_peer_conn owns the socket mgmt_peer_connect opened
 * until mgmt_peer_call closes it (always, whatever its outcome); params is
 * borrowed; *reply is the caller's.
 */
#ifndef VHOSTMGMT_PEER_H
#define VHOSTMGMT_PEER_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#define MGMT_PEER_DEFAULT_ADDR "127.0.0.1:12190"
#define MGMT_PEER_MAX_REPLY (16 * 1024 * 1024)

/* "[ADDR:]PORT" (ADDR a host name, an IPv4 address or [IPv6]; default 127.0.0.1)
 * into host and port.  0, or -1 with msg. */
int mgmt_peer_addr(const char *spec, char *host, size_t host_len, char *port, size_t port_len, char *msg,
                   size_t msg_len);

/* The request text: {"jsonrpc": "2.0", "method": M, "id": ID[, "params": P]}, params left
 * out when NULL or empty (as the peer's CLI does).  malloc'd; NULL when out of memory. */
char *mgmt_peer_request(const char *method, const json_t *params, unsigned id);

struct mgmt_peer_conn {
    int fd;                  /* -1 once closed */
    struct timespec start;   /* the time-out counts from the connect */
    int timeout_ms;
    char where[280];         /* host:port, for messages */
};

/* Connect to spec ("[ADDR:]PORT") within timeout_ms.  0, or -1 with msg (bad
 * address, cannot resolve, refused, time-out). */
int mgmt_peer_connect(struct mgmt_peer_conn *c, const char *spec, int timeout_ms, char *msg, size_t msg_len);

/*
 * Send the request on c and read one JSON value back, within what is left of
 * c's time-out; c's socket is closed on return.  0 with *reply (the whole
 * response object, "result" or "error" inside), or -1 with msg: send failed,
 * time-out, closed without an answer, a reply that is not JSON or larger than
 * MGMT_PEER_MAX_REPLY.
 */
int mgmt_peer_call(struct mgmt_peer_conn *c, const char *method, const json_t *params, unsigned id, json_t **reply,
                   char *msg, size_t msg_len);

#endif
