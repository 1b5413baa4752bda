/* lib/rpc inside: the server, its connections and their calls (not for users of lib/rpc). */
#ifndef VFE_RPC_INTERNAL_H
#define VFE_RPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/rpc/rpc.h"
#include "lib/sock/vfe_unix_sock.h"

#define RPC_MAX_METHODS 32
#define RPC_ACCEPT_RETRY 0.25        /* s, after EMFILE and the like */
#define RPC_LOG_INTERVAL 10.0        /* s between two log lines of one kind */

struct rpc_conn;

struct rpc_method {
    char name[32];
    rpc_handler h;
    void *ctx;
};

struct rpc_batch {
    json_t *replies;          /* array */
    unsigned outstanding;
    struct rpc_conn *conn;    /* NULL once the connection is freed */
};

/* Owned by the server until answered; answering frees it. */
struct rpc_call {
    struct rpc_conn *conn;    /* NULL once the connection is freed */
    json_t *id;               /* NULL for a notification */
    struct rpc_batch *batch;
    bool answered;
    bool *answered_now;       /* set while the handler runs */
    pid_t pid;
    bool tcp;
    struct rpc_call *next;    /* calls still open on the connection */
};

/* Where a request ends in the stream (see frame_end in rpc_conn.c). */
struct rpc_frame {
    size_t pos;               /* bytes of the buffer scanned */
    unsigned depth;           /* of objects and arrays */
    bool in_str, esc, bare;
};

/* Owned by the server (its conns list) from accept to the reaper. */
struct rpc_conn {
    struct rpc_server *s;
    struct rpc_conn *next;
    ev_io rw, ww;
    ev_timer idle;
    int fd;                   /* owned; -1 once closed */
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_off, out_cap;
    pid_t pid;
    bool privileged;          /* root or the socket's owner */
    bool tcp;                 /* accepted on the TCP listener */
    struct rpc_call *calls;
    unsigned ncalls;
    bool eof;                 /* the client sends no more */
    bool closing;             /* read no more; close once replies are out and calls answered */
    bool dead;                /* closed: only the reaper touches it now */
    struct rpc_frame frame;   /* how far the buffered value is scanned */
};

struct rpc_log_limit {
    ev_tstamp at;             /* of the last line; 0: none yet */
    unsigned count;           /* events since */
};

struct rpc_server {
    struct ev_loop *loop;
    struct vfe_listener ul;   /* the unix socket (fd and file) */
    gid_t gid;                /* the socket's group and owner when bound */
    uid_t owner;
    int tfd;
    ev_io uw, tw;
    ev_timer accept_retry;    /* accepting paused (EMFILE...) */
    ev_prepare reaper;        /* frees dead connections, from the loop */
    double idle_timeout;
    unsigned max_conns;
    struct rpc_method methods[RPC_MAX_METHODS];
    unsigned nmethods;
    struct rpc_method tcp_methods[RPC_MAX_METHODS];   /* rpc_register_tcp */
    unsigned ntcp_methods;
    struct rpc_tcp_opts tcp;  /* the TCP listener's limits and leniency */
    unsigned ntcp_conns;      /* live TCP connections */
    struct rpc_conn *conns;   /* live and dead (not yet reaped) */
    unsigned nconns;          /* live */
    struct rpc_log_limit accept_log, refusal_log;
    unsigned long tcp_refused;   /* TCP clients refused for access (rpc_server_tcp_refused) */
};

/* rpc_conn.c */
struct rpc_conn *rpc_conn_open(struct rpc_server *s, int fd, pid_t pid, bool privileged, bool tcp);
void rpc_conn_close(struct rpc_conn *c);            /* marks it dead; the reaper frees it */
void rpc_conn_free(struct rpc_conn *c);             /* reaper and destroy only */
/* Queue one reply line; id is used for the error that replaces a too large reply. */
void rpc_conn_reply(struct rpc_conn *c, json_t *reply, json_t *id);
/* Something changed (a call answered, output drained): adjust reading and closing. */
void rpc_conn_settle(struct rpc_conn *c);

/* rpc_call.c */
void rpc_handle_value(struct rpc_conn *c, json_t *v);
json_t *rpc_error_obj(json_t *id, int code, const char *msg);

/* rpc_access.c: peer credentials and who may call. */
struct rpc_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;      /* supplementary groups */
    size_t ngroups;
};

bool rpc_access_allowed(const struct rpc_peer *p, uid_t sock_owner, gid_t sock_gid);
bool rpc_access_privileged(const struct rpc_peer *p, uid_t sock_owner);
/* May a new connection be admitted with nconns live ones? */
bool rpc_admit(bool privileged, unsigned nconns, unsigned max_conns);
/* SO_PEERCRED and SO_PEERGROUPS of fd: 0, or -errno.  *groups_buf is malloc'd (free it). */
int rpc_peer_get(int fd, struct rpc_peer *p, gid_t **groups_buf);

/* rpc_tcp_peer.c: who is at the other end of a loopback TCP connection. */
#define RPC_TCP_PEER_TIMEOUT_MS 100   /* the kernel answers at once; a guard, so the loop never waits longer */
/* The uid owning the client end of the TCP connection fd (this kernel's socket
 * whose source is fd's peer address), asked of NETLINK_SOCK_DIAG within
 * timeout_ms.  0 with *uid, or -ENOENT (no such socket: the client is gone),
 * -ENOTCONN (the client closed it: its owner is no longer known), -ETIMEDOUT,
 * -EPROTO (no answer about exactly that socket), -EAFNOSUPPORT (not inet), or
 * -errno of getpeername/socket/sendto (-EAFNOSUPPORT too when AF_NETLINK is
 * not allowed to the process).  Blocks at most timeout_ms. */
int rpc_tcp_peer_uid(int fd, unsigned timeout_ms, uid_t *uid);
/* Can callers be checked?  Looks up the listening socket listen_fd itself: the
 * first lookup makes the kernel load its TCP sock_diag module, which may take
 * longer than a caller's lookup may (hence its own timeout, at start only).
 * 0, or the errors of rpc_tcp_peer_uid (-EPROTO: the answer named another owner). */
#define RPC_TCP_SELFCHECK_TIMEOUT_MS 3000
int rpc_tcp_peer_selfcheck(int listen_fd, unsigned timeout_ms);
/* "TCP client ADDR:PORT" for logs: 0, or -errno (out still says something). */
int rpc_tcp_peer_name(int fd, char *out, size_t len);
/* uid's primary group and group list (the user database: getpwuid_r,
 * getgrouplist); *groups is malloc'd (free it).  0, -ENOENT (no such user),
 * -ENOMEM, -EAGAIN (the list kept growing), or getpwuid_r's -errno. */
int rpc_user_groups(uid_t uid, gid_t *gid, gid_t **groups, size_t *ngroups);

#endif
