/*
 * JSON-RPC 2.0 over unix sockets (and an optional loopback TCP listener for
 * compatibility), on the caller's libev loop.  Requests are JSON objects (or
 * arrays of them: batches) one after another on the stream (a newline between
 * them is usual, not needed; anything else is a parse error that closes it);
 * every reply is one line (compact JSON, then '\n').  Methods may answer later
 * (rpc_call_result / rpc_call_error on the call).
 *
 * Ownership: the server owns its listening sockets, the socket file it bound
 * (removed on destroy only if the inode there is still its own, see
 * lib/sock/vfe_unix_sock.h), every accepted connection and every struct
 * rpc_call until the call is answered.  A handler owns nothing it is given:
 * params is borrowed for the duration of the handler.
 *
 * Lifetime rule: a handler runs from the loop (never inside rpc_call_result /
 * rpc_call_error or any other call into this library).  A connection is never
 * freed inside a call chain that may still use it: when it fails or ends it is
 * marked closed and freed later from the loop (an ev_prepare watcher).  A call
 * stays valid until it is answered, even if its client went away meanwhile: the
 * answer then goes nowhere.  rpc_server_destroy() must not be called from a
 * handler; open calls stay valid after it and may still be answered.
 *
 * Limits (per connection, so one careless or hostile client cannot stall the
 * others): a request is at most RPC_MAX_REQUEST bytes; a reply at most
 * RPC_MAX_REPLY (a larger one is replaced by an RPC_INTERNAL_ERROR); while more
 * than RPC_MAX_UNSENT reply bytes wait for the client to read them, or
 * RPC_MAX_OPEN_CALLS calls are unanswered, the connection's further requests are
 * not read.  A connection without traffic and without open calls for
 * idle_timeout seconds is closed.
 *
 * Access (unix socket): root, the socket's owner (the daemon's user), and
 * members of the socket's group (primary or supplementary, SO_PEERGROUPS).  At
 * most max_conns connections; unprivileged peers (neither root nor the owner)
 * get at most max_conns - RPC_RESERVED_CONNS(max_conns) of them, so they can
 * never lock root or the owner out.
 *
 * Access (TCP): the listener binds loopback addresses only (127.0.0.0/8), so
 * the client's socket is in this kernel; its owner is asked of the kernel
 * (NETLINK_SOCK_DIAG, synchronous in accept, at most 100 ms; the kernel answers
 * in microseconds) and the unix socket's rule applies to that uid: root, the
 * unix socket's owner, or a user whose groups in the user database
 * (getpwuid_r, getgrouplist; not the client process's current list, which the
 * kernel does not tell; a network user database makes that lookup as slow as
 * it is) hold the unix socket's group at that moment.  No answer, a closed
 * client socket, an unknown user: refused (fail closed), one reply line (see
 * rpc_tcp_opts.lenient), logged (rate-limited) and counted
 * (rpc_server_tcp_refused).  Admitted TCP clients are unprivileged and have
 * limits of their own
 * (struct rpc_tcp_opts): at most max_conns TCP connections, and a request must
 * arrive whole within idle_timeout (bytes of an unfinished request do not
 * count as traffic), so a client that sends nothing or half a request holds
 * one connection for a bounded time and never delays the others.
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
#define RPC_MAX_REPLY (16 * 1024 * 1024)
#define RPC_MAX_UNSENT (1024 * 1024)
#define RPC_MAX_OPEN_CALLS 64
#define RPC_DEFAULT_MAX_CONNS 64
#define RPC_MAX_MAX_CONNS 4096
#define RPC_DEFAULT_IDLE_TIMEOUT 60.0
/* Connections only root and the socket's owner may use. */
#define RPC_RESERVED_CONNS(max) ((max) >= 4 ? (max) / 4 : (max) > 1 ? 1u : 0u)

struct rpc_server;
struct rpc_call;

/* 0: the handler answered (or will: it returned RPC_PENDING). */
#define RPC_PENDING 1
typedef int (*rpc_handler)(void *ctx, json_t *params, struct rpc_call *call);

struct rpc_server_opts {
    mode_t mode;             /* of the socket; 0: 0660 */
    gid_t gid;               /* group of the socket (and of a parent directory we create); 0 or (gid_t)-1:
                              * our own (0 is what a zero-initialised struct says, not a choice of root's group) */
    double idle_timeout;     /* seconds; 0: RPC_DEFAULT_IDLE_TIMEOUT */
    unsigned max_conns;      /* 0: RPC_DEFAULT_MAX_CONNS; at most RPC_MAX_MAX_CONNS */
};

/*
 * Listen on the unix socket path (lib/sock's vfe_listener_open: an existing
 * path is replaced only if it is a provably stale socket).  A missing parent
 * directory is created 0750 (group opts->gid).  opts NULL: all defaults.
 * NULL with *err: -EINVAL (bad opts), -ENAMETOOLONG, -EEXIST (not a socket),
 * -EADDRINUSE (another process listens there), -EACCES/-EPERM, -ENOMEM.
 */
struct rpc_server *rpc_server_create(struct ev_loop *loop, const char *path, const struct rpc_server_opts *opts,
                                     int *err);
struct rpc_tcp_opts {
    double idle_timeout;     /* seconds; 0: RPC_TCP_IDLE_TIMEOUT */
    unsigned max_conns;      /* TCP connections at once; 0: RPC_TCP_MAX_CONNS (never above the server's) */
    bool lenient;            /* serve requests without "jsonrpc":"2.0" and answer those without "id" (with
                              * "id":null), as the peer project's server does; a client refused for
                              * access then reads the result {"errno":-13,"errstr":"Permission denied"}
                              * (id null) instead of the error RPC_ACCESS_DENIED */
};
#define RPC_TCP_IDLE_TIMEOUT 10.0
#define RPC_TCP_MAX_CONNS 16

/* Parse a TCP listener spec [ADDR:]PORT (ADDR an IPv4 address, default
 * 127.0.0.1).  0; -EINVAL (malformed); -EADDRNOTAVAIL (ADDR not loopback:
 * the owner of a remote client cannot be known). */
struct sockaddr_in;
int rpc_tcp_spec_parse(const char *spec, struct sockaddr_in *out);
/* Also listen on TCP (spec as above; opts NULL: defaults, not lenient).
 * 0, or -EINVAL, -EADDRNOTAVAIL, -EEXIST (already), -errno of bind, or the
 * error of the start's check that callers can be identified (logged; the
 * kernel's TCP sock_diag must answer: AF_NETLINK allowed, tcp_diag loadable). */
int rpc_server_listen_tcp(struct rpc_server *s, const char *spec);
int rpc_server_listen_tcp_opts(struct rpc_server *s, const char *spec, const struct rpc_tcp_opts *opts);
void rpc_server_destroy(struct rpc_server *s);
/* TCP clients refused for access since the server was created. */
unsigned long rpc_server_tcp_refused(const struct rpc_server *s);
/* -ENOSPC: too many methods or name too long. */
int rpc_register(struct rpc_server *s, const char *method, rpc_handler h, void *ctx);
/* A method for TCP connections only.  Once one is registered, TCP
 * connections see only these (those of rpc_register stay on the unix
 * socket): the TCP listener gets its own, smaller set. */
int rpc_register_tcp(struct rpc_server *s, const char *method, rpc_handler h, void *ctx);

/* Answer a call (takes the reference to result).  A call is answered once. */
void rpc_call_result(struct rpc_call *c, json_t *result);
void rpc_call_error(struct rpc_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Peer of the call (unix socket), for logs. */
pid_t rpc_call_peer_pid(const struct rpc_call *c);
/* The call came over the TCP listener. */
bool rpc_call_is_tcp(const struct rpc_call *c);

/* Client: one call, blocking with a timeout.  0 with *result, or the error
 * code (< 0) with msg filled; transport failures (and a reply larger than
 * RPC_MAX_REPLY) are reported as RPC_INTERNAL_ERROR with a message.  params is
 * borrowed (NULL: no params). */
int rpc_client_call(const char *path, const char *method, json_t *params, int timeout_ms, json_t **result,
                    char *msg, size_t msg_len);

#endif
