/* JSON-RPC 2.0 server: listening sockets, admission (access, limits), method table, teardown. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "lib/rpc/rpc_internal.h"

/* At most one line per RPC_LOG_INTERVAL for one kind of event; the count of
 * events since the last line, or 0: stay quiet. */
static unsigned rate_limit(struct ev_loop *loop, struct rpc_log_limit *l)
{
    l->count++;
    ev_tstamp now = ev_now(loop);
    if (l->at != 0 && now - l->at < RPC_LOG_INTERVAL)
        return 0;
    unsigned n = l->count;
    l->at = now;
    l->count = 0;
    return n;
}

/* Tell a refused client why (one reply line, best effort) and close it. */
static void refuse(struct rpc_server *s, int fd, const char *who, json_t *reply, const char *why)
{
    unsigned count = rate_limit(s->loop, &s->refusal_log);
    if (count)
        LOG_W("rpc: connection from %s refused: %s (%u refusal(s) since the last message)", who, why, count);
    char *txt = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    if (txt) {
        size_t n = strlen(txt);
        txt[n] = '\n';   /* replaces the terminating NUL: one reply line */
        if (send(fd, txt, n + 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            LOG_D("rpc: refusal not sent: %s", strerror(errno));
    }
    free(txt);
    json_decref(reply);
    /* The reply, then the end of the stream; what the client sent is read
     * away first, so that closing does not reset the connection (a reset can
     * cost the client the unread reply). */
    shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < RPC_MAX_REQUEST / (int)sizeof(sink) && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    close(fd);
}

static void refuse_err(struct rpc_server *s, int fd, const char *who, int code, const char *msg, const char *why)
{
    refuse(s, fd, who, rpc_error_obj(NULL, code, msg), why ? why : msg);
}

/* The socket's owner and group as they are now (an admin may chgrp it); those
 * recorded at bind if the path is no longer our socket. */
static void socket_owner(const struct rpc_server *s, uid_t *uid, gid_t *gid)
{
    struct stat st;
    *uid = s->owner;
    *gid = s->gid;
    if (lstat(s->ul.path, &st) == 0 && st.st_dev == s->ul.dev && st.st_ino == s->ul.ino) {
        *uid = st.st_uid;
        *gid = st.st_gid;
    }
}

/* A TCP client is let in under the unix socket's rule, applied to the owner
 * of its socket: root, the socket's owner (the daemon's user), or a user whose
 * groups (user database) hold the socket's group.  Unknown owner: refused. */
static bool tcp_allowed(struct rpc_server *s, int fd, char *why, size_t len)
{
    uid_t uid;
    int rc = rpc_tcp_peer_uid(fd, RPC_TCP_PEER_TIMEOUT_MS, &uid);
    if (rc < 0) {
        snprintf(why, len, "access denied: owner of the client's socket unknown (%s)", strerror(-rc));
        return false;
    }
    uid_t owner;
    gid_t gid;
    socket_owner(s, &owner, &gid);
    struct rpc_peer p = {.uid = uid, .gid = (gid_t)-1};
    if (rpc_access_privileged(&p, owner))
        return true;
    gid_t *groups = NULL;
    size_t n = 0;
    rc = rpc_user_groups(uid, &p.gid, &groups, &n);
    p.groups = groups;
    p.ngroups = n;
    bool ok = rc == 0 && rpc_access_allowed(&p, owner, gid);
    free(groups);
    if (rc < 0)
        snprintf(why, len, "access denied: uid %u: groups unknown (%s)", (unsigned)uid, strerror(-rc));
    else if (!ok)
        snprintf(why, len, "access denied: uid %u is neither root, nor uid %u, nor in group %u", (unsigned)uid,
                 (unsigned)owner, (unsigned)gid);
    return ok;
}

/* What a TCP client refused for access reads: on a lenient (peer-compatible)
 * listener a result in the peer's format, which its CLI prints like its other
 * refusals; otherwise vfe's JSON-RPC error. */
static json_t *tcp_denial(const struct rpc_server *s)
{
    if (s->tcp.lenient)
        return json_pack("{s:s, s:{s:i, s:s}, s:n}", "jsonrpc", "2.0", "result", "errno", -EACCES, "errstr",
                         "Permission denied", "id");
    return rpc_error_obj(NULL, RPC_ACCESS_DENIED, "access denied");
}

static void admit(struct rpc_server *s, int fd, bool unix_sock)
{
    struct rpc_peer peer = {.uid = (uid_t)-1, .gid = (gid_t)-1};
    bool privileged = false;
    char who[80], why[160];
    if (unix_sock) {
        gid_t *groups = NULL;
        int rc = rpc_peer_get(fd, &peer, &groups);
        uid_t owner;
        gid_t gid;
        socket_owner(s, &owner, &gid);
        bool ok = rc == 0 && rpc_access_allowed(&peer, owner, gid);
        privileged = rc == 0 && rpc_access_privileged(&peer, owner);
        free(groups);
        snprintf(who, sizeof(who), "pid %d", (int)peer.pid);
        if (!ok) {
            refuse_err(s, fd, who, RPC_ACCESS_DENIED, rc ? "access denied: no peer credentials" : "access denied",
                       NULL);
            return;
        }
    } else {
        rpc_tcp_peer_name(fd, who, sizeof(who));
        /* over the TCP bound the client is refused below without a lookup */
        if (s->ntcp_conns < s->tcp.max_conns && !tcp_allowed(s, fd, why, sizeof(why))) {
            s->tcp_refused++;
            refuse(s, fd, who, tcp_denial(s), why);
            return;
        }
        /* TCP clients stay unprivileged: the reserved slots are the unix socket's */
    }
    if (!rpc_admit(privileged, s->nconns, s->max_conns) || (!unix_sock && s->ntcp_conns >= s->tcp.max_conns)) {
        refuse_err(s, fd, who, RPC_BUSY, "too many clients", NULL);
        return;
    }
    if (!rpc_conn_open(s, fd, peer.pid, privileged, !unix_sock))
        refuse_err(s, fd, who, RPC_INTERNAL_ERROR, "out of memory", NULL);
}

static void listeners(struct rpc_server *s, bool on)
{
    if (on) {
        ev_io_start(s->loop, &s->uw);
        if (s->tfd >= 0)
            ev_io_start(s->loop, &s->tw);
    } else {
        ev_io_stop(s->loop, &s->uw);
        ev_io_stop(s->loop, &s->tw);
    }
}

/* Out of fds or memory: the pending connection stays in the backlog and the
 * listener stays readable; retry later instead of spinning. */
static void pause_accepting(struct rpc_server *s, int err)
{
    listeners(s, false);
    ev_timer_again(s->loop, &s->accept_retry);
    unsigned n = rate_limit(s->loop, &s->accept_log);
    if (n)
        LOG_W("rpc: cannot accept connections: %s; retrying every %.2f s (%u failure(s) since the last message)",
              strerror(err), RPC_ACCEPT_RETRY, n);
}

static void accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rpc_server *s = w->data;
    ev_timer_stop(loop, w);
    listeners(s, true);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rpc_server *s = w->data;
    for (int i = 0; i < 8; i++) {   /* a few per wakeup, then let the others run */
        int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(s, errno);
            return;
        }
        admit(s, fd, w == &s->uw);
    }
}

static void reap_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct rpc_server *s = w->data;
    for (struct rpc_conn **p = &s->conns; *p;) {
        struct rpc_conn *c = *p;
        if (c->dead) {
            *p = c->next;
            rpc_conn_free(c);
        } else {
            p = &c->next;
        }
    }
    ev_prepare_stop(loop, w);
}

static int mkdir_parent(const char *path, gid_t gid)
{
    char dir[sizeof(((struct vfe_listener *)0)->path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    struct stat st;
    if (stat(dir, &st) == 0)
        return 0;
    if (mkdir(dir, 0750) < 0)
        return errno == EEXIST ? 0 : -errno;
    if (gid != (gid_t)-1 && chown(dir, (uid_t)-1, gid) < 0)
        return -errno;
    return 0;
}

static int check_opts(const struct rpc_server_opts *o)
{
    if (!o)
        return 0;
    if ((o->mode & ~0777u) || !isfinite(o->idle_timeout) || o->idle_timeout < 0 ||
        o->max_conns > RPC_MAX_MAX_CONNS)
        return -EINVAL;
    return 0;
}

struct rpc_server *rpc_server_create(struct ev_loop *loop, const char *path, const struct rpc_server_opts *opts,
                                     int *err)
{
    if ((*err = check_opts(opts)) < 0)
        return NULL;
    if (strlen(path) > VFE_SUN_PATH_MAX) {
        *err = -ENAMETOOLONG;
        return NULL;
    }
    struct rpc_server *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->loop = loop;
    s->tfd = -1;
    s->idle_timeout = opts && opts->idle_timeout > 0 ? opts->idle_timeout : RPC_DEFAULT_IDLE_TIMEOUT;
    s->max_conns = opts && opts->max_conns ? opts->max_conns : RPC_DEFAULT_MAX_CONNS;
    mode_t mode = opts && opts->mode ? opts->mode : 0660;
    gid_t gid = opts && opts->gid != 0 ? opts->gid : (gid_t)-1;
    struct stat st;
    if ((*err = mkdir_parent(path, gid)) < 0 || (*err = vfe_listener_open(&s->ul, path, mode, gid, 64)) < 0)
        goto fail;
    if (lstat(path, &st) < 0) {
        *err = -errno;
        vfe_listener_close(&s->ul);
        goto fail;
    }
    s->owner = st.st_uid;
    s->gid = st.st_gid;
    ev_io_init(&s->uw, accept_cb, s->ul.fd, EV_READ);
    s->uw.data = s;
    ev_init(&s->tw, accept_cb);
    s->tw.data = s;
    ev_init(&s->accept_retry, accept_retry_cb);
    s->accept_retry.repeat = RPC_ACCEPT_RETRY;
    s->accept_retry.data = s;
    ev_prepare_init(&s->reaper, reap_cb);
    s->reaper.data = s;
    ev_io_start(loop, &s->uw);
    *err = 0;
    return s;
fail:
    free(s);
    return NULL;
}

int rpc_tcp_spec_parse(const char *spec, struct sockaddr_in *out)
{
    char host[64] = "127.0.0.1";
    const char *colon = strrchr(spec, ':');
    if (colon) {
        if (colon == spec || (size_t)(colon - spec) >= sizeof(host))
            return -EINVAL;
        snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
        spec = colon + 1;
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(spec, &end, 10);
    *out = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*spec < '0' || *spec > '9' || *end || errno || port == 0 || port > 65535 ||
        inet_pton(AF_INET, host, &out->sin_addr) != 1)
        return -EINVAL;
    if ((ntohl(out->sin_addr.s_addr) >> 24) != 127)
        return -EADDRNOTAVAIL;
    return 0;
}

int rpc_server_listen_tcp_opts(struct rpc_server *s, const char *spec, const struct rpc_tcp_opts *opts)
{
    if (s->tfd >= 0)
        return -EEXIST;
    if (opts && (!isfinite(opts->idle_timeout) || opts->idle_timeout < 0))
        return -EINVAL;
    struct sockaddr_in sin;
    int rc = rpc_tcp_spec_parse(spec, &sin);
    if (rc < 0)
        return rc;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 16) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    /* every caller is checked; a listener whose callers cannot be would refuse them all */
    if ((rc = rpc_tcp_peer_selfcheck(fd, RPC_TCP_SELFCHECK_TIMEOUT_MS)) < 0) {
        LOG_E("rpc: TCP %s: callers cannot be checked: the kernel's TCP sock_diag %s (%s)", spec,
              rc == -EAFNOSUPPORT || rc == -EPERM || rc == -EACCES ? "is not reachable (AF_NETLINK not allowed?)"
                                                                   : "does not answer (tcp_diag module missing?)",
              strerror(-rc));
        close(fd);
        return rc;
    }
    s->tcp = opts ? *opts : (struct rpc_tcp_opts){0};
    if (s->tcp.idle_timeout <= 0)
        s->tcp.idle_timeout = RPC_TCP_IDLE_TIMEOUT;
    if (!s->tcp.max_conns)
        s->tcp.max_conns = RPC_TCP_MAX_CONNS;
    if (s->tcp.max_conns > s->max_conns)
        s->tcp.max_conns = s->max_conns;
    s->tfd = fd;
    ev_io_set(&s->tw, fd, EV_READ);
    if (!ev_is_active(&s->accept_retry))
        ev_io_start(s->loop, &s->tw);
    return 0;
}

int rpc_server_listen_tcp(struct rpc_server *s, const char *spec)
{
    return rpc_server_listen_tcp_opts(s, spec, NULL);
}

void rpc_server_destroy(struct rpc_server *s)
{
    if (!s)
        return;
    listeners(s, false);
    ev_timer_stop(s->loop, &s->accept_retry);
    while (s->conns) {
        struct rpc_conn *c = s->conns;
        s->conns = c->next;
        rpc_conn_free(c);
    }
    ev_prepare_stop(s->loop, &s->reaper);   /* after the frees: closing starts it */
    vfe_listener_close(&s->ul);
    if (s->tfd >= 0)
        close(s->tfd);
    free(s);
}

unsigned long rpc_server_tcp_refused(const struct rpc_server *s)
{
    return s->tcp_refused;
}

static int add_method(struct rpc_method *table, unsigned *n, const char *method, rpc_handler h, void *ctx)
{
    if (*n == RPC_MAX_METHODS || strlen(method) >= sizeof(table[0].name))
        return -ENOSPC;
    struct rpc_method *m = &table[(*n)++];
    snprintf(m->name, sizeof(m->name), "%s", method);
    m->h = h;
    m->ctx = ctx;
    return 0;
}

int rpc_register(struct rpc_server *s, const char *method, rpc_handler h, void *ctx)
{
    return add_method(s->methods, &s->nmethods, method, h, ctx);
}

int rpc_register_tcp(struct rpc_server *s, const char *method, rpc_handler h, void *ctx)
{
    return add_method(s->tcp_methods, &s->ntcp_methods, method, h, ctx);
}
