/*
 * JSON-RPC 2.0 over unix sockets (and an optional loopback TCP listener for
 * compatibility), on the caller's libev loop.  Requests are JSON values one
 * after another on the stream (a newline between them is usual, not needed).
 * Methods may answer later (rpc_call_result / rpc_call_error on the call).
 */
#ifndef VFE_RPC_H
#define VFE_RPC_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

/* JSON-RPC 2.0 codes, and vfe's application codes (stable, documented in docs/rpc.md). */
enum {
    RPC_PARSE_ERROR = -32700,
    RPC_INVALID_REQUEST = -32600,
    RPC_METHOD_NOT_FOUND = -32601,
    RPC_INVALID_PARAMS = -32602,
    RPC_INTERNAL_ERROR = -32603,
    RPC_ACCESS_DENIED = -32001,
    RPC_NOT_FOUND = -32002,        /* unknown PF/VF/BDF */
    RPC_EXISTS = -32003,           /* already added / socket in use */
    RPC_BUSY = -32004,             /* in use (PF with VFs, operation running) */
    RPC_DEVICE_ERROR = -32005,     /* the device or transport failed */
    RPC_TIMEOUT = -32006,
};

#define RPC_MAX_REQUEST (64 * 1024)
#define RPC_MAX_CLIENTS 64

struct rpc_server;
struct rpc_call;

/* 0: the handler answered (or will: it returned RPC_PENDING). */
#define RPC_PENDING 1
typedef int (*rpc_handler)(void *ctx, json_t *params, struct rpc_call *call);

/* Listen on a unix socket (parent directory created 0750, mode 0660). */
struct rpc_server *rpc_server_create(struct ev_loop *loop, const char *path, int *err);
/* Also listen on TCP [ADDR:]PORT (ADDR default 127.0.0.1). */
int rpc_server_listen_tcp(struct rpc_server *s, const char *spec);
void rpc_server_destroy(struct rpc_server *s);
int rpc_register(struct rpc_server *s, const char *method, rpc_handler h, void *ctx);

/* Answer a call (takes the reference to result).  A call is answered once. */
void rpc_call_result(struct rpc_call *c, json_t *result);
void rpc_call_error(struct rpc_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Peer of the call (unix socket), for logs. */
pid_t rpc_call_peer_pid(const struct rpc_call *c);

/* Client: one call, blocking with a timeout.  0 with *result, or the error
 * code (< 0) with msg filled; -errno style codes for transport failures
 * are reported as RPC_INTERNAL_ERROR with a message. */
int rpc_client_call(const char *path, const char *method, json_t *params, int timeout_ms, json_t **result,
                    char *msg, size_t msg_len);

#endif
