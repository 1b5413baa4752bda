/* JSON-RPC 2.0 server: sockets, access control, framing, dispatch, batches. */
#include "lib/rpc/rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

#define MAX_METHODS 32

struct method {
    char name[32];
    rpc_handler h;
    void *ctx;
};

struct conn;

struct batch {
    json_t *replies;          /* array */
    unsigned outstanding;
    struct conn *conn;
};

struct rpc_call {
    struct conn *conn;        /* NULL once the connection is gone */
    json_t *id;               /* NULL for a notification */
    struct batch *batch;
    bool answered;
    bool *answered_now;       /* set while the handler runs */
    pid_t pid;
    struct rpc_call *next;    /* calls still open on the connection */
};

struct conn {
    struct rpc_server *s;
    ev_io rw, ww;
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_off;
    pid_t pid;
    struct rpc_call *calls;
    bool closing;
};

struct rpc_server {
    struct ev_loop *loop;
    char path[108];
    int ufd, tfd;
    ev_io uw, tw;
    gid_t gid;
    struct method methods[MAX_METHODS];
    unsigned nmethods;
    unsigned nconns;
};

static void conn_close(struct conn *c);

static void conn_write(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->rw.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            ev_io_start(c->s->loop, &c->ww);
            return;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    ev_io_stop(c->s->loop, &c->ww);
    c->out_len = c->out_off = 0;
    if (c->closing)
        conn_close(c);
}

static void send_json(struct conn *c, json_t *v)
{
    char *txt = json_dumps(v, JSON_COMPACT);
    if (!txt)
        return;
    size_t n = strlen(txt);
    char *grown = realloc(c->out, c->out_len + n + 1);
    if (grown) {
        c->out = grown;
        memcpy(c->out + c->out_len, txt, n);
        c->out[c->out_len + n] = '\n';
        c->out_len += n + 1;
        conn_write(c);
    }
    free(txt);
}

static json_t *error_obj(json_t *id, int code, const char *msg)
{
    return json_pack("{s:s, s:{s:i, s:s}, s:O?}", "jsonrpc", "2.0", "error", "code", code, "message", msg, "id",
                     id ? id : json_null());
}

/* A reply for call c is ready: send it, or file it in its batch. */
static void batch_done(struct batch *b)
{
    if (--b->outstanding)
        return;
    if (b->conn && json_array_size(b->replies))
        send_json(b->conn, b->replies);
    json_decref(b->replies);
    free(b);
}

static void deliver(struct rpc_call *c, json_t *reply)
{
    struct conn *conn = c->conn;
    c->answered = true;
    if (c->answered_now)
        *c->answered_now = true;
    if (c->batch) {
        if (reply)
            json_array_append_new(c->batch->replies, reply);
        batch_done(c->batch);
    } else if (reply) {
        if (conn)
            send_json(conn, reply);
        json_decref(reply);
    }
    if (conn) {   /* unlink from the connection's open calls */
        for (struct rpc_call **p = &conn->calls; *p; p = &(*p)->next)
            if (*p == c) {
                *p = c->next;
                break;
            }
    }
    json_decref(c->id);
    free(c);
}

void rpc_call_result(struct rpc_call *c, json_t *result)
{
    if (!c || c->answered) {
        json_decref(result);
        return;
    }
    json_t *r = c->id ? json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "result", result ? result : json_null(), "id", c->id)
                      : (json_decref(result), NULL);
    deliver(c, r);
}

void rpc_call_error(struct rpc_call *c, int code, const char *fmt, ...)
{
    if (!c || c->answered)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    deliver(c, c->id ? error_obj(c->id, code, msg) : NULL);
}

pid_t rpc_call_peer_pid(const struct rpc_call *c) { return c->pid; }

static const struct method *find(const struct rpc_server *s, const char *name)
{
    for (unsigned i = 0; i < s->nmethods; i++)
        if (!strcmp(s->methods[i].name, name))
            return &s->methods[i];
    return NULL;
}

static void method_list(const struct rpc_server *s, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < s->nmethods && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ", " : "", s->methods[i].name);
}

/* One request object. */
static void dispatch(struct conn *conn, json_t *req, struct batch *b)
{
    struct rpc_server *s = conn->s;
    struct rpc_call *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->conn = conn;
    c->batch = b;
    c->pid = conn->pid;
    c->next = conn->calls;
    conn->calls = c;
    if (b)
        b->outstanding++;
    json_t *id = json_is_object(req) ? json_object_get(req, "id") : NULL;
    if (id && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id)) {
        c->id = json_null();
        rpc_call_error(c, RPC_INVALID_REQUEST, "\"id\" must be a string, an integer or null");
        return;
    }
    c->id = json_incref(id);
    const char *ver = json_string_value(json_object_get(req, "jsonrpc"));
    json_t *jm = json_object_get(req, "method");
    json_t *params = json_object_get(req, "params");
    if (!json_is_object(req) || !ver || strcmp(ver, "2.0") || !json_is_string(jm)) {
        if (!c->id)
            c->id = json_null();
        rpc_call_error(c, RPC_INVALID_REQUEST,
                       "a request is an object with \"jsonrpc\":\"2.0\", a string \"method\" and optional \"params\"");
        return;
    }
    if (params && !json_is_object(params) && !json_is_array(params)) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "\"params\" must be an object");
        return;
    }
    const struct method *m = find(s, json_string_value(jm));
    if (!m) {
        char list[512];
        method_list(s, list, sizeof(list));
        rpc_call_error(c, RPC_METHOD_NOT_FOUND, "no method '%.64s'; methods: %s", json_string_value(jm), list);
        return;
    }
    json_t *p = params ? json_incref(params) : json_object();
    bool answered = false;
    c->answered_now = &answered;
    int rc = m->h(m->ctx, p, c);
    json_decref(p);
    if (!answered) {
        c->answered_now = NULL;
        if (rc != RPC_PENDING)
            rpc_call_error(c, RPC_INTERNAL_ERROR, "method '%s' gave no answer", m->name);
    }
}

static void handle_value(struct conn *c, json_t *v)
{
    if (json_is_array(v)) {
        if (json_array_size(v) == 0) {
            json_t *e = error_obj(NULL, RPC_INVALID_REQUEST, "empty batch");
            send_json(c, e);
            json_decref(e);
            return;
        }
        struct batch *b = calloc(1, sizeof(*b));
        b->replies = json_array();
        b->conn = c;
        b->outstanding = 1;   /* held while dispatching */
        size_t i;
        json_t *r;
        json_array_foreach(v, i, r)
            dispatch(c, r, b);
        batch_done(b);
        return;
    }
    dispatch(c, v, NULL);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    if (c->in_len == RPC_MAX_REQUEST) {
        LOG_W("rpc: request from pid %d larger than %d bytes, connection closed", (int)c->pid, RPC_MAX_REQUEST);
        json_t *e = error_obj(NULL, RPC_INVALID_REQUEST, "request too large");
        send_json(c, e);
        json_decref(e);
        c->closing = true;
        ev_io_stop(loop, &c->rw);
        if (!c->out_len)
            conn_close(c);
        return;
    }
    ssize_t n = read(w->fd, c->in + c->in_len, RPC_MAX_REQUEST - c->in_len);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        conn_close(c);
        return;
    }
    c->in_len += (size_t)n;
    for (;;) {
        size_t skip = 0;
        while (skip < c->in_len && strchr(" \t\r\n", c->in[skip]))
            skip++;
        if (skip == c->in_len) {
            c->in_len = 0;
            return;
        }
        json_error_t je;
        json_t *v = json_loadb(c->in + skip, c->in_len - skip, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &je);
        if (!v) {
            if (je.position >= (int)(c->in_len - skip) && strstr(je.text, "end of"))
                return;   /* incomplete: wait for more */
            json_t *e = error_obj(NULL, RPC_PARSE_ERROR, je.text);
            send_json(c, e);
            json_decref(e);
            c->in_len = 0;   /* the stream cannot be resynchronised */
            c->closing = true;
            ev_io_stop(loop, &c->rw);
            if (!c->out_len)
                conn_close(c);
            return;
        }
        size_t used = skip + (size_t)je.position;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        handle_value(c, v);
        json_decref(v);
        if (c->closing)
            return;
    }
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    conn_write(w->data);
}

static void conn_close(struct conn *c)
{
    struct rpc_server *s = c->s;
    ev_io_stop(s->loop, &c->rw);
    ev_io_stop(s->loop, &c->ww);
    close(c->rw.fd);
    for (struct rpc_call *k = c->calls; k; k = k->next) {
        k->conn = NULL;   /* answered later into the void */
        if (k->batch)
            k->batch->conn = NULL;
    }
    free(c->in);
    free(c->out);
    s->nconns--;
    free(c);
}

/* Unix peers: root, our own user, or a member of the socket's group. */
static bool allowed(struct rpc_server *s, int fd, pid_t *pid)
{
    struct ucred cr;
    socklen_t l = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
        return false;
    *pid = cr.pid;
    return cr.uid == 0 || cr.uid == getuid() || cr.gid == s->gid;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rpc_server *s = w->data;
    int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    pid_t pid = 0;
    bool unix_sock = w == &s->uw;
    if (s->nconns >= RPC_MAX_CLIENTS || (unix_sock && !allowed(s, fd, &pid))) {
        const char *msg = s->nconns >= RPC_MAX_CLIENTS ? "too many clients" : "access denied";
        LOG_W("rpc: connection from pid %d refused: %s", (int)pid, msg);
        json_t *e = error_obj(NULL, s->nconns >= RPC_MAX_CLIENTS ? RPC_BUSY : RPC_ACCESS_DENIED, msg);
        char *txt = json_dumps(e, JSON_COMPACT);
        if (txt && send(fd, txt, strlen(txt), MSG_NOSIGNAL) < 0)
            LOG_D("rpc: refusal not sent");
        free(txt);
        json_decref(e);
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    c->in = malloc(RPC_MAX_REQUEST);
    if (!c || !c->in) {
        free(c);
        close(fd);
        return;
    }
    c->s = s;
    c->pid = pid;
    ev_io_init(&c->rw, read_cb, fd, EV_READ);
    ev_io_init(&c->ww, write_cb, fd, EV_WRITE);
    c->rw.data = c->ww.data = c;
    ev_io_start(loop, &c->rw);
    s->nconns++;
}

static int mkdir_parent(const char *path)
{
    char dir[108];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    struct stat st;
    if (stat(dir, &st) == 0)
        return 0;
    return mkdir(dir, 0750) < 0 && errno != EEXIST ? -errno : 0;
}

struct rpc_server *rpc_server_create(struct ev_loop *loop, const char *path, int *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
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
    snprintf(s->path, sizeof(s->path), "%s", path);
    strcpy(sa.sun_path, path);
    struct stat st;
    if ((*err = mkdir_parent(path)) < 0)
        goto fail;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        *err = -EEXIST;
        goto fail;
    }
    unlink(path);
    s->ufd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->ufd < 0 || bind(s->ufd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
        listen(s->ufd, 64) < 0) {
        *err = -errno;
        if (s->ufd >= 0)
            close(s->ufd);
        goto fail;
    }
    s->gid = stat(path, &st) == 0 ? st.st_gid : getgid();
    ev_io_init(&s->uw, accept_cb, s->ufd, EV_READ);
    s->uw.data = s;
    ev_io_start(loop, &s->uw);
    *err = 0;
    return s;
fail:
    free(s);
    return NULL;
}

int rpc_server_listen_tcp(struct rpc_server *s, const char *spec)
{
    char host[64] = "127.0.0.1";
    unsigned port;
    const char *colon = strrchr(spec, ':');
    if (colon) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
        spec = colon + 1;
    }
    char *end;
    port = (unsigned)strtoul(spec, &end, 10);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*end || port == 0 || port > 65535 || inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 16) < 0) {
        int e = -errno;
        if (fd >= 0)
            close(fd);
        return e;
    }
    if ((ntohl(sin.sin_addr.s_addr) >> 24) != 127)
        LOG_W("rpc: TCP listener on %s:%u is reachable from other hosts and has no access control", host, port);
    s->tfd = fd;
    ev_io_init(&s->tw, accept_cb, fd, EV_READ);
    s->tw.data = s;
    ev_io_start(s->loop, &s->tw);
    return 0;
}

void rpc_server_destroy(struct rpc_server *s)
{
    if (!s)
        return;
    ev_io_stop(s->loop, &s->uw);
    close(s->ufd);
    unlink(s->path);
    if (s->tfd >= 0) {
        ev_io_stop(s->loop, &s->tw);
        close(s->tfd);
    }
    free(s);
}

int rpc_register(struct rpc_server *s, const char *method, rpc_handler h, void *ctx)
{
    if (s->nmethods == MAX_METHODS || strlen(method) >= sizeof(s->methods[0].name))
        return -ENOSPC;
    struct method *m = &s->methods[s->nmethods++];
    snprintf(m->name, sizeof(m->name), "%s", method);
    m->h = h;
    m->ctx = ctx;
    return 0;
}
