/* JSON-RPC 2.0 requests: validation, dispatch to methods, batches, answers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log/vfe_log.h"
#include "lib/rpc/rpc_internal.h"

json_t *rpc_error_obj(json_t *id, int code, const char *msg)
{
    return json_pack("{s:s, s:{s:i, s:s}, s:O?}", "jsonrpc", "2.0", "error", "code", code, "message", msg, "id",
                     id ? id : json_null());
}

static void batch_done(struct rpc_batch *b)
{
    if (--b->outstanding)
        return;
    if (b->conn && json_array_size(b->replies))
        rpc_conn_reply(b->conn, b->replies, NULL);
    json_decref(b->replies);
    free(b);
}

static void unlink_call(struct rpc_conn *conn, struct rpc_call *c)
{
    for (struct rpc_call **p = &conn->calls; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            conn->ncalls--;
            return;
        }
}

/* The answer of call c is ready (reply NULL: none, a notification): send it or
 * file it in its batch, and free the call. */
static void deliver(struct rpc_call *c, json_t *reply)
{
    struct rpc_conn *conn = c->conn;
    c->answered = true;
    if (c->answered_now)
        *c->answered_now = true;
    if (conn)
        unlink_call(conn, c);
    if (c->batch) {
        if (reply && json_array_append_new(c->batch->replies, reply) < 0)
            LOG_W("rpc: reply lost (out of memory)");
        batch_done(c->batch);
    } else if (reply) {
        if (conn)
            rpc_conn_reply(conn, reply, c->id);
        json_decref(reply);
    }
    json_decref(c->id);
    free(c);
    if (conn)
        rpc_conn_settle(conn);
}

void rpc_call_result(struct rpc_call *c, json_t *result)
{
    if (!c || c->answered) {
        json_decref(result);
        return;
    }
    json_t *r = NULL;
    if (c->id) {
        r = json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "result", result ? result : json_null(), "id", c->id);
        if (!r)   /* out of memory: json_pack released result */
            r = rpc_error_obj(c->id, RPC_INTERNAL_ERROR, "out of memory");
    } else {
        json_decref(result);
    }
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
    deliver(c, c->id ? rpc_error_obj(c->id, code, msg) : NULL);
}

pid_t rpc_call_peer_pid(const struct rpc_call *c) { return c->pid; }
bool rpc_call_is_tcp(const struct rpc_call *c) { return c->tcp; }

/* The methods a connection sees (rpc_register_tcp's on TCP once there are any). */
static const struct rpc_method *table(const struct rpc_conn *conn, unsigned *n)
{
    const struct rpc_server *s = conn->s;
    if (conn->tcp && s->ntcp_methods) {
        *n = s->ntcp_methods;
        return s->tcp_methods;
    }
    *n = s->nmethods;
    return s->methods;
}

static const struct rpc_method *find(const struct rpc_conn *conn, const char *name)
{
    unsigned n;
    const struct rpc_method *t = table(conn, &n);
    for (unsigned i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

static void method_list(const struct rpc_conn *conn, char *out, size_t len)
{
    unsigned n;
    const struct rpc_method *t = table(conn, &n);
    size_t o = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ", " : "", t[i].name);
}

/* One request object. */
static void dispatch(struct rpc_conn *conn, json_t *req, struct rpc_batch *b)
{
    struct rpc_call *c = calloc(1, sizeof(*c));
    if (!c) {
        json_t *e = rpc_error_obj(NULL, RPC_INTERNAL_ERROR, "out of memory");
        rpc_conn_reply(conn, e, NULL);
        json_decref(e);
        return;
    }
    c->conn = conn;
    c->batch = b;
    c->pid = conn->pid;
    c->tcp = conn->tcp;
    c->next = conn->calls;
    conn->calls = c;
    conn->ncalls++;
    if (b)
        b->outstanding++;
    json_t *id = json_is_object(req) ? json_object_get(req, "id") : NULL;
    if (id && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id)) {
        c->id = json_null();
        rpc_call_error(c, RPC_INVALID_REQUEST, "\"id\" must be a string, an integer or null");
        return;
    }
    /* the peer's server (and so its users' scripts) need neither "jsonrpc" nor "id" */
    bool lenient = conn->tcp && conn->s->tcp.lenient;
    c->id = json_incref(id);
    if (!c->id && lenient && json_is_object(req))
        c->id = json_null();
    json_t *jv = json_object_get(req, "jsonrpc");
    const char *ver = json_string_value(jv);
    json_t *jm = json_object_get(req, "method");
    json_t *params = json_object_get(req, "params");
    bool ver_ok = (ver && !strcmp(ver, "2.0")) || (lenient && !jv);
    if (!json_is_object(req) || !ver_ok || !json_is_string(jm)) {
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
    const struct rpc_method *m = find(conn, json_string_value(jm));
    if (!m) {
        char list[512];
        method_list(conn, list, sizeof(list));
        rpc_call_error(c, RPC_METHOD_NOT_FOUND, "no method '%.64s'; methods: %s", json_string_value(jm), list);
        return;
    }
    json_t *p = params ? json_incref(params) : json_object();
    if (!p) {
        rpc_call_error(c, RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
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

void rpc_handle_value(struct rpc_conn *c, json_t *v)
{
    if (!json_is_array(v)) {
        dispatch(c, v, NULL);
        return;
    }
    if (json_array_size(v) == 0) {
        json_t *e = rpc_error_obj(NULL, RPC_INVALID_REQUEST, "empty batch");
        rpc_conn_reply(c, e, NULL);
        json_decref(e);
        return;
    }
    struct rpc_batch *b = calloc(1, sizeof(*b));
    if (b)
        b->replies = json_array();
    if (!b || !b->replies) {
        free(b);
        json_t *e = rpc_error_obj(NULL, RPC_INTERNAL_ERROR, "out of memory");
        rpc_conn_reply(c, e, NULL);
        json_decref(e);
        return;
    }
    b->conn = c;
    b->outstanding = 1;   /* held while dispatching */
    size_t i;
    json_t *r;
    json_array_foreach(v, i, r) {
        if (c->dead)
            break;    /* nobody to answer: run no more of the client's commands */
        dispatch(c, r, b);
    }
    batch_done(b);
}
