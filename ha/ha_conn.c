/* One client connection of vfe-vhostd-ha: read packets, apply them to the store, answer (see ha_conn.h). */
#include "ha/ha_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

/* Packets handled per readable event before libev gets a turn. */
#define READ_BURST 64

struct ha_conn {
    struct ha_server *srv;
    int fd;
    ev_io io;
    ev_timer hello_timer;
    pid_t pid;
    bool hello;
    bool closing;       /* free at the end of the current callback */
    bool dead;          /* a send failed: apply what is queued, answer nothing */
    char name[65];
    uint8_t in[VFE_HA_MAX_PACKET];
    struct {            /* a PUT arriving in several packets */
        bool active;
        uint32_t seq;
        char key[VFE_HA_KEY_MAX + 1];
        uint8_t *blob;
        uint32_t len;
        int fds[VFE_HA_MAX_RECORD_FDS];   /* in arrival order */
        unsigned nfds;
        unsigned nfds_seen;   /* every fd that came, kept or not: F_SEND's fd_index bound */
        int err;        /* positive errno: the record is refused at its last packet */
        const char *why;
    } put;
    struct {            /* one reply packet the socket did not take yet */
        bool pending;
        uint8_t buf[VFE_HA_MAX_PACKET];
        size_t len;
        int fds[VFE_HA_MAX_FDS];   /* dup()s owned by this buffer */
        unsigned nfds;
    } out;
    struct {            /* a GET answer being streamed */
        bool active;
        uint32_t seq;
        uint32_t idx, end, off, fd_off, count;   /* off, fd_off: into record idx */
    } get;
};

static void conn_io(struct ev_loop *loop, ev_io *w, int revents);

static void close_fds(int *fds, unsigned *n)
{
    for (unsigned i = 0; i < *n; i++)
        close(fds[i]);
    *n = 0;
}

static void put_discard(struct ha_conn *c)
{
    close_fds(c->put.fds, &c->put.nfds);
    free(c->put.blob);
    memset(&c->put, 0, sizeof(c->put));
}

void ha_conn_destroy(struct ha_conn *c)
{
    ev_io_stop(c->srv->loop, &c->io);
    ev_timer_stop(c->srv->loop, &c->hello_timer);
    close(c->fd);
    put_discard(c);
    close_fds(c->out.fds, &c->out.nfds);
    if (c->srv->client == c)
        c->srv->client = NULL;
    LOG_I("client pid %d (%s) gone", (int)c->pid, c->name[0] ? c->name : "no HELLO");
    free(c);
}

static void conn_fail(struct ha_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(struct ha_conn *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    LOG_W("client pid %d: %s: closing the connection", (int)c->pid, msg);
    c->closing = true;
}

/* Queue one packet; the socket takes it now or when writable.  The fds are moved into the buffer. */
static void send_or_keep(struct ha_conn *c, const void *pkt, size_t len, int *fds, unsigned nfds)
{
    if (c->dead || c->closing) {
        close_fds(fds, &nfds);
        return;
    }
    int rc = vfe_ha_send_packet(c->fd, pkt, len, fds, nfds);
    if (rc == 0) {
        close_fds(fds, &nfds);
        return;
    }
    if (rc != -EAGAIN) {
        c->dead = true;
        close_fds(fds, &nfds);
        return;
    }
    memcpy(c->out.buf, pkt, len);
    c->out.len = len;
    if (nfds)
        memcpy(c->out.fds, fds, sizeof(int) * nfds);
    c->out.nfds = nfds;
    c->out.pending = true;
}

static void reply(struct ha_conn *c, uint16_t type, uint32_t seq, const void *body, size_t len)
{
    uint8_t pkt[VFE_HA_HDR_SIZE + 64 + sizeof(struct vfe_ha_err_body) + VFE_HA_ERRMSG_MAX];
    int n = vfe_ha_encode(pkt, sizeof(pkt), type, 0, seq, NULL, 0, body, len, 0);
    int no_fds[1] = {-1};
    if (n > 0)
        send_or_keep(c, pkt, (size_t)n, no_fds, 0);
}

static void reply_err(struct ha_conn *c, uint32_t seq, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_err(struct ha_conn *c, uint32_t seq, int err, const char *fmt, ...)
{
    uint8_t body[VFE_HA_ERR_BODY_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t len = vfe_ha_err_vformat(body, err, fmt, ap);
    va_end(ap);
    LOG_I("client pid %d: request %u refused: %s (%s)", (int)c->pid, seq,
          (char *)body + sizeof(struct vfe_ha_err_body), strerror(err));
    reply(c, VFE_HA_ERR, seq, body, len);
}

static void key_copy(char *dst, const struct vfe_ha_msg *m)
{
    memcpy(dst, m->key, m->hdr.key_len);
    dst[m->hdr.key_len] = '\0';
}

/* Write a PUT's send bytes to one of its record's fds without ever blocking.
 * A socket (what the protocol is for: the peer of a deposited connection)
 * takes them with send(MSG_DONTWAIT); at most VFE_HA_SEND_MAX bytes fit one
 * skb, so a unix stream socket takes all or nothing.  Another fd (an
 * eventfd, a pipe) is written only when poll() says it is writable, which
 * for those means the bytes fit.  0, or -errno with why filled. */
static int send_bytes(int fd, const uint8_t *bytes, uint32_t len, char *why, size_t cap)
{
    ssize_t n;
    do
        n = send(fd, bytes, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ENOTSOCK) {
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLOUT)) {
            snprintf(why, cap, "fd is not writable now");
            return -EAGAIN;
        }
        do
            n = write(fd, bytes, len);
        while (n < 0 && errno == EINTR);
    }
    if (n < 0) {
        int e = errno == EWOULDBLOCK ? EAGAIN : errno;
        snprintf(why, cap, "%s", e == EAGAIN ? "peer's socket buffer is full" : strerror(e));
        return -e;
    }
    if ((size_t)n != len) {
        snprintf(why, cap, "short write: %zd of %u bytes", n, len);
        return -EIO;
    }
    return 0;
}

/* One PUT packet: start or continue the record; commit at the last one.  fds are moved in. */
static void on_put(struct ha_conn *c, const struct vfe_ha_msg *m, int *fds, unsigned nfds)
{
    const struct vfe_ha_limits *lim = &c->srv->store.lim;
    if (!c->put.active) {
        c->put.active = true;
        c->put.seq = m->hdr.seq;
        key_copy(c->put.key, m);
    } else if (m->hdr.key_len != strlen(c->put.key) || memcmp(m->key, c->put.key, m->hdr.key_len) != 0 ||
               m->hdr.seq != c->put.seq) {
        close_fds(fds, &nfds);
        conn_fail(c, "PUT continuation for another record");
        return;
    }
    c->put.nfds_seen += nfds;
    if (c->put.err || c->put.nfds + nfds > lim->max_record_fds || c->put.nfds + nfds > VFE_HA_MAX_RECORD_FDS) {
        if (!c->put.err) {
            c->put.err = E2BIG;
            c->put.why = "more fds than a record may hold";
        }
        close_fds(fds, &nfds);   /* the record is refused at its last packet: keep nothing of it */
        close_fds(c->put.fds, &c->put.nfds);
    } else {
        memcpy(c->put.fds + c->put.nfds, fds, sizeof(int) * nfds);
        c->put.nfds += nfds;
    }
    if (!c->put.err && m->body_len) {
        if ((uint64_t)c->put.len + m->body_len > lim->max_blob) {
            c->put.err = E2BIG;
            c->put.why = "blob larger than a record may hold";
            free(c->put.blob);
            c->put.blob = NULL;
        } else {
            uint8_t *b = realloc(c->put.blob, c->put.len + m->body_len);
            if (!b) {
                c->put.err = ENOMEM;
                c->put.why = "out of memory";
            } else {
                memcpy(b + c->put.len, m->body, m->body_len);
                c->put.blob = b;
                c->put.len += m->body_len;
            }
        }
    }
    if (m->hdr.flags & VFE_HA_F_MORE)
        return;
    uint32_t seq = c->put.seq;
    if (m->send_bytes && m->send_fd >= c->put.nfds_seen) {
        reply_err(c, seq, EPROTO, "PUT %s: SEND to fd %u of a record of %u fds", c->put.key, m->send_fd,
                  c->put.nfds_seen);
        conn_fail(c, "PUT %s: SEND fd index out of the record", c->put.key);
        put_discard(c);
        return;
    }
    if (c->put.err) {
        reply_err(c, seq, c->put.err, "PUT %s: %s", c->put.key, c->put.why);
        put_discard(c);
        return;
    }
    int rc = ha_store_put(&c->srv->store, c->put.key, c->put.blob, c->put.len, c->put.fds, c->put.nfds);
    if (rc < 0) {
        reply_err(c, seq, -rc, "PUT %s: %s", c->put.key,
                  rc == -EMFILE ? "the HA process holds its maximum of fds"
                  : rc == -ENOSPC ? "record or byte limit reached" : strerror(-rc));
        put_discard(c);
        return;
    }
    LOG_D("PUT %s: %u bytes, %u fds", c->put.key, c->put.len, c->put.nfds);
    c->put.blob = NULL;   /* the store's now */
    c->put.nfds = 0;
    char key[VFE_HA_KEY_MAX + 1];
    memcpy(key, c->put.key, sizeof(key));
    put_discard(c);
    if (m->send_bytes) {
        /* in the same step as the store: a successor sees both or neither */
        const struct ha_record *r = ha_store_find(&c->srv->store, key);
        char why[96];
        if (!r || send_bytes(r->fds[m->send_fd], m->send_bytes, m->send_len, why, sizeof(why)) < 0) {
            LOG_W("client pid %d: PUT %s stored, %u bytes not written to its fd %u: %s", (int)c->pid, key,
                  m->send_len, m->send_fd, r ? why : "record vanished");
            reply_err(c, seq, EIO, "stored, reply not written: %s", r ? why : "record vanished");
            return;
        }
    }
    reply(c, VFE_HA_ACK, seq, NULL, 0);
}

static void on_del(struct ha_conn *c, const struct vfe_ha_msg *m)
{
    char key[VFE_HA_KEY_MAX + 1];
    key_copy(key, m);
    int rc = ha_store_del(&c->srv->store, key);
    if (rc < 0)
        reply_err(c, m->hdr.seq, -rc, "DEL %s: no such record", key);
    else
        reply(c, VFE_HA_ACK, m->hdr.seq, NULL, 0);
}

static void on_get(struct ha_conn *c, const struct vfe_ha_msg *m)
{
    const struct ha_store *st = &c->srv->store;
    memset(&c->get, 0, sizeof(c->get));
    c->get.seq = m->hdr.seq;
    c->get.end = st->n;
    if (m->hdr.key_len) {
        char key[VFE_HA_KEY_MAX + 1];
        key_copy(key, m);
        const struct ha_record *r = ha_store_find(st, key);
        if (!r) {
            reply_err(c, m->hdr.seq, ENOENT, "GET %s: no such record", key);
            return;
        }
        c->get.idx = (uint32_t)(r - st->recs);
        c->get.end = c->get.idx + 1;
    }
    c->get.active = true;
}

static void on_status(struct ha_conn *c, const struct vfe_ha_msg *m)
{
    const struct ha_store *st = &c->srv->store;
    struct vfe_ha_status s = {.records = st->n, .fds = st->fds, .bytes = st->bytes,
                              .uptime_ms = (uint64_t)((ev_now(c->srv->loop) - c->srv->started) * 1000),
                              .clients = c->srv->accepted, .server_pid = (uint32_t)getpid()};
    reply(c, VFE_HA_ACK, m->hdr.seq, &s, sizeof(s));
}

static void on_hello(struct ha_conn *c, const struct vfe_ha_msg *m)
{
    size_t n = m->body_len < sizeof(c->name) - 1 ? m->body_len : sizeof(c->name) - 1;
    for (size_t i = 0; i < n; i++)
        c->name[i] = m->body[i] >= 0x20 && m->body[i] < 0x7f ? (char)m->body[i] : '?';
    c->name[n] = '\0';
    c->hello = true;
    ev_timer_stop(c->srv->loop, &c->hello_timer);
    LOG_I("client pid %d: HELLO from \"%s\" (protocol %u.%u)", (int)c->pid, c->name, m->hdr.major, m->hdr.minor);
    reply(c, VFE_HA_ACK, m->hdr.seq, &c->srv->store.lim, sizeof(c->srv->store.lim));
}

/* A well-formed packet: apply it.  fds are moved in. */
static void dispatch(struct ha_conn *c, const struct vfe_ha_msg *m, int *fds, unsigned nfds)
{
    unsigned type = m->hdr.type;
    if (type == VFE_HA_ACK || type == VFE_HA_ERR || type == VFE_HA_RECORD) {
        close_fds(fds, &nfds);
        conn_fail(c, "sent a %s, which only the HA process sends", vfe_ha_type_name(type));
        return;
    }
    if (!c->hello && type != VFE_HA_HELLO) {
        close_fds(fds, &nfds);
        reply_err(c, m->hdr.seq, EPROTO, "HELLO first");
        conn_fail(c, "%s before HELLO", vfe_ha_type_name(type));
        return;
    }
    if (c->put.active && type != VFE_HA_PUT) {
        close_fds(fds, &nfds);
        conn_fail(c, "%s in the middle of a multi-packet PUT", vfe_ha_type_name(type));
        return;
    }
    switch (type) {
    case VFE_HA_HELLO: on_hello(c, m); break;
    case VFE_HA_PUT: on_put(c, m, fds, nfds); break;
    case VFE_HA_DEL: on_del(c, m); break;
    case VFE_HA_GET: on_get(c, m); break;
    case VFE_HA_STATUS: on_status(c, m); break;
    default: break;   /* the rules table knows no other type */
    }
}

/* Build the next packet of the GET answer into c->out (not sent yet). */
static int get_next(struct ha_conn *c)
{
    const struct ha_store *st = &c->srv->store;
    if (c->get.idx >= c->get.end) {
        uint32_t count = c->get.count;
        c->get.active = false;
        int n = vfe_ha_encode(c->out.buf, sizeof(c->out.buf), VFE_HA_ACK, 0, c->get.seq, NULL, 0, &count,
                              sizeof(count), 0);
        c->out.len = (size_t)n;
        c->out.nfds = 0;
        return 0;
    }
    const struct ha_record *r = &st->recs[c->get.idx];
    size_t klen = strlen(r->key);
    struct vfe_ha_split sp = {.off = c->get.off, .fd_off = c->get.fd_off};
    vfe_ha_split_next(&sp, klen, r->blob_len, r->nfds);
    c->out.nfds = 0;
    for (unsigned i = 0; i < sp.chunk_fds; i++) {
        int d = fcntl(r->fds[sp.fd_off + i], F_DUPFD_CLOEXEC, 0);
        if (d < 0) {
            int e = errno;
            close_fds(c->out.fds, &c->out.nfds);
            return -e;
        }
        c->out.fds[c->out.nfds++] = d;
    }
    int n = vfe_ha_encode(c->out.buf, sizeof(c->out.buf), VFE_HA_RECORD, sp.more ? VFE_HA_F_MORE : 0, c->get.seq,
                          r->key, klen, r->blob ? r->blob + sp.off : NULL, sp.chunk, c->out.nfds);
    c->out.len = (size_t)n;
    c->get.off += sp.chunk;
    c->get.fd_off += sp.chunk_fds;
    if (!sp.more) {
        c->get.idx++;
        c->get.off = 0;
        c->get.fd_off = 0;
        c->get.count++;
    }
    return 0;
}

/* Send what is pending and the rest of a GET answer; false while the socket is full. */
static bool pump_out(struct ha_conn *c)
{
    for (;;) {
        if (c->dead || c->closing) {
            close_fds(c->out.fds, &c->out.nfds);
            c->out.pending = false;
            c->get.active = false;
            return true;
        }
        if (c->out.pending) {
            int rc = vfe_ha_send_packet(c->fd, c->out.buf, c->out.len, c->out.fds, c->out.nfds);
            if (rc == -EAGAIN)
                return false;
            close_fds(c->out.fds, &c->out.nfds);
            c->out.pending = false;
            if (rc < 0) {
                c->dead = true;
                continue;
            }
        }
        if (!c->get.active)
            return true;
        int rc = get_next(c);
        if (rc < 0) {
            c->get.active = false;
            reply_err(c, c->get.seq, -rc, "GET: cannot duplicate a held fd");
            continue;
        }
        c->out.pending = true;
    }
}

/* Read and apply packets while nothing waits to be sent. */
static void read_packets(struct ha_conn *c, bool drain)
{
    for (int burst = 0; drain || burst < READ_BURST; burst++) {
        if (c->closing || !pump_out(c))
            return;
        int fds[VFE_HA_MAX_FDS];
        unsigned nfds;
        int n = vfe_ha_recv_packet(c->fd, c->in, sizeof(c->in), fds, &nfds);
        if (n == -EAGAIN)
            return;
        if (n == -ECONNRESET) {
            /* the peer closed with our answers unread: the kernel reports that
             * before the packets it sent, which are still to be applied */
            c->dead = true;
            drain = true;
            continue;
        }
        if (n == 0) {
            c->closing = true;
            return;
        }
        if (n < 0) {
            if (n == -EMSGSIZE)
                reply_err(c, 0, EMSGSIZE, "packet or its fds larger than the protocol allows");
            conn_fail(c, "receive: %s", strerror(-n));
            return;
        }
        struct vfe_ha_msg m;
        const char *why;
        int rc = vfe_ha_decode(c->in, (size_t)n, nfds, &m, &why);
        if (rc < 0) {
            close_fds(fds, &nfds);
            uint32_t seq = 0;
            if ((size_t)n >= VFE_HA_HDR_SIZE)
                memcpy(&seq, c->in + offsetof(struct vfe_ha_hdr, seq), sizeof(seq));
            if (rc == -EPROTONOSUPPORT)
                reply_err(c, seq, EPROTONOSUPPORT, "%s: this HA process speaks %u.%u", why, VFE_HA_MAJOR,
                          VFE_HA_MINOR);
            else
                reply_err(c, seq, -rc, "bad message: %s", why);
            conn_fail(c, "bad message (%s)", why);
            return;
        }
        dispatch(c, &m, fds, nfds);
    }
}

static void conn_update_watch(struct ha_conn *c)
{
    int want = c->out.pending ? EV_WRITE : EV_READ;
    if ((c->io.events & (EV_READ | EV_WRITE)) != want) {
        ev_io_stop(c->srv->loop, &c->io);
        ev_io_set(&c->io, c->fd, want);
        ev_io_start(c->srv->loop, &c->io);
    }
}

static void conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ha_conn *c = w->data;
    if (pump_out(c))
        read_packets(c, false);
    if (c->dead && !c->closing)
        read_packets(c, true);   /* the peer is gone: apply what it sent, up to the end */
    if (c->closing || c->dead) {
        ha_conn_destroy(c);
        return;
    }
    conn_update_watch(c);
}

static void hello_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ha_conn *c = w->data;
    reply_err(c, 0, ETIMEDOUT, "no HELLO within %.1f s", c->srv->hello_timeout);
    conn_fail(c, "no HELLO");
    ha_conn_destroy(c);
}

bool ha_conn_gone(struct ha_conn *c)
{
    struct pollfd p = {c->fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLHUP | POLLRDHUP)))
        return false;
    c->dead = true;
    read_packets(c, true);
    ha_conn_destroy(c);
    return true;
}

struct ha_conn *ha_conn_new(struct ha_server *s, int fd, pid_t pid)
{
    struct ha_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = s;
    c->fd = fd;
    c->pid = pid;
    c->io.data = c;
    ev_io_init(&c->io, conn_io, fd, EV_READ);
    ev_io_start(s->loop, &c->io);
    c->hello_timer.data = c;
    ev_timer_init(&c->hello_timer, hello_timeout, s->hello_timeout, 0.);
    ev_timer_start(s->loop, &c->hello_timer);
    LOG_I("client pid %d connected", (int)pid);
    return c;
}

pid_t ha_conn_pid(const struct ha_conn *c)
{
    return c->pid;
}
