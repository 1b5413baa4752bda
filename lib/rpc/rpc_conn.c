/*
 * One client connection: framing of the request stream, the reply buffer and
 * its bounds, idle timeout, and closing without freeing under a caller's feet
 * (rpc_conn_close marks; the server's reaper frees, from the loop).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "lib/rpc/rpc_internal.h"

#define OUT_KEEP (64 * 1024)   /* reply buffer kept while idle */

static size_t unsent(const struct rpc_conn *c) { return c->out_len - c->out_off; }

/* May the connection take further requests now? */
static bool takes_requests(const struct rpc_conn *c)
{
    return !c->dead && !c->closing && unsent(c) <= RPC_MAX_UNSENT && c->ncalls < RPC_MAX_OPEN_CALLS;
}

static void touch(struct rpc_conn *c)
{
    ev_timer_again(c->s->loop, &c->idle);
}

void rpc_conn_close(struct rpc_conn *c)
{
    if (c->dead)
        return;
    struct rpc_server *s = c->s;
    c->dead = true;
    ev_io_stop(s->loop, &c->rw);
    ev_io_stop(s->loop, &c->ww);
    ev_timer_stop(s->loop, &c->idle);
    close(c->fd);
    c->fd = -1;
    s->nconns--;
    if (c->tcp)
        s->ntcp_conns--;
    ev_prepare_start(s->loop, &s->reaper);
}

void rpc_conn_free(struct rpc_conn *c)
{
    rpc_conn_close(c);
    for (struct rpc_call *k = c->calls; k; k = k->next) {
        k->conn = NULL;   /* answered later into the void */
        if (k->batch)
            k->batch->conn = NULL;
    }
    free(c->in);
    free(c->out);
    free(c);
}

static void flush(struct rpc_conn *c)
{
    while (unsent(c)) {
        ssize_t n = send(c->fd, c->out + c->out_off, unsent(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (errno == EAGAIN) {
                ev_io_start(c->s->loop, &c->ww);
                return;
            }
            continue;
        }
        if (n <= 0) {
            LOG_D("rpc: pid %d: send: %s", (int)c->pid, n < 0 ? strerror(errno) : "nothing sent");
            rpc_conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
        touch(c);
    }
    ev_io_stop(c->s->loop, &c->ww);
    c->out_len = c->out_off = 0;
    if (c->out_cap > OUT_KEEP) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
}

static int reserve(struct rpc_conn *c, size_t more)
{
    if (c->out_off) {   /* drop what is sent */
        memmove(c->out, c->out + c->out_off, unsent(c));
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + more <= c->out_cap)
        return 0;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more)
        cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p)
        return -ENOMEM;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

struct dump_state {
    struct rpc_conn *c;
    size_t start;
};

static int dump_cb(const char *buf, size_t size, void *data)
{
    struct dump_state *d = data;
    struct rpc_conn *c = d->c;
    if (c->out_len - d->start + size + 1 > RPC_MAX_REPLY || reserve(c, size + 1) < 0)
        return -1;
    memcpy(c->out + c->out_len, buf, size);
    c->out_len += size;
    return 0;
}

static int append(struct rpc_conn *c, json_t *v)
{
    if (reserve(c, 0) < 0)
        return -ENOMEM;
    struct dump_state d = {c, c->out_len};
    if (json_dump_callback(v, dump_cb, &d, JSON_COMPACT) < 0 || reserve(c, 1) < 0) {
        c->out_len = d.start;
        return -EMSGSIZE;
    }
    c->out[c->out_len++] = '\n';
    return 0;
}

void rpc_conn_reply(struct rpc_conn *c, json_t *reply, json_t *id)
{
    if (c->dead || !reply)
        return;
    if (append(c, reply) < 0) {
        LOG_W("rpc: pid %d: a reply larger than %d bytes (or no memory for it) replaced by an error", (int)c->pid,
              RPC_MAX_REPLY);
        json_t *e = rpc_error_obj(id, RPC_INTERNAL_ERROR, "reply too large");
        if (!e || append(c, e) < 0) {
            json_decref(e);
            rpc_conn_close(c);
            return;
        }
        json_decref(e);
    }
    flush(c);
}

static void stop_taking(struct rpc_conn *c, int code, const char *msg)
{
    json_t *e = rpc_error_obj(NULL, code, msg);
    rpc_conn_reply(c, e, NULL);
    json_decref(e);
    c->in_len = 0;   /* the stream cannot be resynchronised */
    c->frame = (struct rpc_frame){0};
    c->closing = true;
}

void rpc_conn_settle(struct rpc_conn *c)
{
    if (c->dead)
        return;
    if (c->closing && !unsent(c) && !c->ncalls) {
        rpc_conn_close(c);
        return;
    }
    bool take = takes_requests(c);
    bool was_reading = ev_is_active(&c->rw);
    if (take && !c->eof)
        ev_io_start(c->s->loop, &c->rw);
    else
        ev_io_stop(c->s->loop, &c->rw);   /* (also drops a pending read event) */
    /* requests already buffered are parsed from the loop, not from here */
    if (take && c->in_len && (c->eof || !was_reading))
        ev_feed_event(c->s->loop, &c->rw, EV_READ);
}

/* End (exclusive) of the first complete top-level value in the buffer, 0 if
 * it is not complete yet.  Each byte is looked at once, however the value
 * trickles in; the parser then runs once per value.  Only the nesting and the
 * strings are followed: whether the value is valid JSON is the parser's call. */
static size_t frame_end(struct rpc_conn *c)
{
    struct rpc_frame *f = &c->frame;
    for (; f->pos < c->in_len; f->pos++) {
        char ch = c->in[f->pos];
        if (f->in_str) {
            if (f->esc)
                f->esc = false;
            else if (ch == '\\')
                f->esc = true;
            else if (ch == '"' && (f->in_str = false, f->depth == 0))
                return ++f->pos;
            continue;
        }
        if (f->bare) {   /* a number or literal at top level ends where it cannot go on */
            if (!isalnum((unsigned char)ch) && !strchr("+-.", ch))
                return f->pos;
            continue;
        }
        switch (ch) {
        case ' ': case '\t': case '\r': case '\n':
            break;
        case '"':
            f->in_str = true;
            break;
        case '{': case '[':
            f->depth++;
            break;
        case '}': case ']':
            if (f->depth == 0 || --f->depth == 0)   /* (a stray closer: the parser reports it) */
                return ++f->pos;
            break;
        default:
            if (f->depth == 0)
                f->bare = true;
        }
    }
    return 0;
}

/* Parse and run the buffered requests while the connection takes them. */
static void parse_buffered(struct rpc_conn *c)
{
    while (takes_requests(c) && c->in_len) {
        size_t end = frame_end(c);
        bool blank = !c->frame.depth && !c->frame.in_str && !c->frame.bare;
        if (!end && blank) {   /* only whitespace */
            c->in_len = 0;
            c->frame = (struct rpc_frame){0};
            return;
        }
        if (!end && !c->eof)
            return;            /* wait for the rest */
        json_error_t je;
        json_t *v = json_loadb(c->in, end ? end : c->in_len, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &je);
        if (!v) {
            stop_taking(c, RPC_PARSE_ERROR, je.text);
            return;
        }
        size_t used = end ? end : c->in_len;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        c->frame = (struct rpc_frame){0};
        rpc_handle_value(c, v);
        json_decref(v);
    }
}

static void too_large(struct rpc_conn *c)
{
    LOG_W("rpc: request from pid %d larger than %d bytes, connection closed", (int)c->pid, RPC_MAX_REQUEST);
    stop_taking(c, RPC_INVALID_REQUEST, "request too large");
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rpc_conn *c = w->data;
    parse_buffered(c);   /* requests left by a pause first */
    if (takes_requests(c) && !c->eof && c->in_len == RPC_MAX_REQUEST)
        too_large(c);
    if (takes_requests(c) && !c->eof) {
        ssize_t n = read(c->fd, c->in + c->in_len, RPC_MAX_REQUEST - c->in_len);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            rpc_conn_close(c);
            return;
        }
        if (n > 0)
            c->in_len += (size_t)n;
        else if (n == 0)
            c->eof = true;
        parse_buffered(c);
        /* over TCP (no credentials of its own) only whole requests are
         * traffic: half a request trickling in does not keep the connection.
         * (Not once parsing closed it: a closed connection's timer stays off.) */
        if (n > 0 && !c->dead && (!c->tcp || c->in_len == 0))
            touch(c);
        if (takes_requests(c) && !c->eof && c->in_len == RPC_MAX_REQUEST)
            too_large(c);
    }
    if (c->eof && takes_requests(c))
        c->closing = true;   /* every complete request taken; the rest never will be */
    rpc_conn_settle(c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rpc_conn *c = w->data;
    flush(c);
    rpc_conn_settle(c);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rpc_conn *c = w->data;
    if (c->ncalls) {
        ev_timer_again(loop, w);   /* waiting for us, not for the client */
        return;
    }
    if (c->tcp)
        LOG_I("rpc: TCP client idle or sending an unfinished request for %.1f s, connection closed", w->repeat);
    else
        LOG_I("rpc: pid %d idle for %.1f s, connection closed", (int)c->pid, w->repeat);
    rpc_conn_close(c);
}

struct rpc_conn *rpc_conn_open(struct rpc_server *s, int fd, pid_t pid, bool privileged, bool tcp)
{
    struct rpc_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->in = malloc(RPC_MAX_REQUEST);
    if (!c->in) {
        free(c);
        return NULL;
    }
    c->s = s;
    c->fd = fd;
    c->pid = pid;
    c->privileged = privileged;
    c->tcp = tcp;
    ev_io_init(&c->rw, read_cb, fd, EV_READ);
    ev_io_init(&c->ww, write_cb, fd, EV_WRITE);
    ev_init(&c->idle, idle_cb);
    c->idle.repeat = tcp ? s->tcp.idle_timeout : s->idle_timeout;
    c->rw.data = c->ww.data = c->idle.data = c;
    ev_io_start(s->loop, &c->rw);
    ev_timer_again(s->loop, &c->idle);
    c->next = s->conns;
    s->conns = c;
    s->nconns++;
    if (tcp)
        s->ntcp_conns++;
    return c;
}
