/* The daemon's non-blocking link to vfe-vhostd-ha (see vfe_ha_link.h). */
#include "drivers/common/virtio_ha/vfe_ha_link.h"
#include "drivers/common/virtio_ha/vfe_ha_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

/* Answers read per readable event before libev gets a turn. */
#define READ_BURST 64

enum link_state { L_DOWN, L_HELLO, L_UP };

/* A request: queued (unsent or being sent), then waiting for its answer. */
struct req {
    struct req *next;
    uint16_t type;             /* HELLO, PUT, DEL, STATUS */
    bool started;              /* a packet of it is written: no more coalescing */
    /* seq: given at the first attempt to write, 0 before */
    uint32_t seq;
    uint64_t id;
    char key[VFE_HA_KEY_MAX + 1];
    uint8_t *blob;             /* PUT: owned copy */
    uint32_t len;
    int *fds;                  /* PUT: owned dup()s */
    unsigned nfds;
    struct vfe_ha_split sp;    /* progress of a PUT */
    bool send;                 /* PUT with F_SEND: the last packet carries the send tail */
    uint32_t send_fd, send_len;
    uint8_t send_bytes[VFE_HA_SEND_MAX];
};

struct req_list {
    struct req *head, *tail;
    unsigned n;
};

struct vfe_ha_link {
    struct ev_loop *loop;
    struct vfe_ha_link_ops ops;
    void *ctx;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char name[65];
    enum link_state state;
    int fd;
    ev_io io;
    ev_timer retry;            /* reconnect */
    ev_timer stall;            /* no progress on outstanding work */
    ev_timer status;           /* STATUS refresh while up */
    ev_timer notify;           /* delivers down() from the loop */
    double backoff;
    bool ever_up;
    bool down_reported;        /* down() was owed or given for the current loss */
    int down_err;
    char down_why[128];
    bool down_pending;
    int in_cb;                 /* callbacks running: destroy defers the free */
    bool doomed;
    uint32_t seq;
    uint64_t next_id, last_written_id;
    struct req_list queue;     /* to send, in order */
    struct req_list waiting;   /* sent, answer expected, in order */
    bool status_outstanding;
    bool blocked;              /* the socket refused a packet: wait for EV_WRITE */
    struct vfe_ha_limits limits;
    uint8_t peer_minor;        /* the HELLO answer's header */
    struct vfe_ha_link_stats st;
    uint8_t pkt[VFE_HA_MAX_PACKET];
};

static void set_text(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_text(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static void list_push(struct req_list *q, struct req *r)
{
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->n++;
}

static struct req *list_pop(struct req_list *q)
{
    struct req *r = q->head;
    if (r) {
        q->head = r->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
    }
    return r;
}

static void req_release(struct req *r)
{
    for (unsigned i = 0; i < r->nfds; i++)
        close(r->fds[i]);
    free(r->fds);
    free(r->blob);
    r->fds = NULL;
    r->blob = NULL;
    r->nfds = 0;
    r->len = 0;
}

static void list_clear(struct req_list *q)
{
    struct req *r;
    while ((r = list_pop(q))) {
        req_release(r);
        free(r);
    }
}

static void watch(struct vfe_ha_link *l, int events)
{
    if (l->fd < 0 || (ev_is_active(&l->io) && (l->io.events & (EV_READ | EV_WRITE)) == events))
        return;
    ev_io_stop(l->loop, &l->io);
    ev_io_set(&l->io, l->fd, events);
    ev_io_start(l->loop, &l->io);
}

/* Drop the connection and everything tied to it; down() comes from the loop. */
static void teardown(struct vfe_ha_link *l)
{
    ev_io_stop(l->loop, &l->io);
    ev_timer_stop(l->loop, &l->stall);
    ev_timer_stop(l->loop, &l->status);
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    for (struct req *r = l->queue.head; r; r = r->next)
        l->st.sends_failed += r->send && r->started;   /* cut short: the HA process drops it */
    list_clear(&l->queue);
    list_clear(&l->waiting);
    l->status_outstanding = false;
    l->blocked = false;
    l->state = L_DOWN;
    l->st.connected = false;
    l->st.queued = l->st.queued_bytes = 0;
}

static void lost(struct vfe_ha_link *l, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void lost(struct vfe_ha_link *l, int err, const char *fmt, ...)
{
    bool was_up = l->state == L_UP;
    teardown(l);
    char why[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    l->st.last_err = -err;
    snprintf(l->st.last_why, sizeof(l->st.last_why), "%s", why);
    if (was_up || !l->down_reported) {
        LOG_W("HA link %s: %s (%s); reconnecting in %.1f s", l->path, why, strerror(-err), l->backoff);
        l->down_reported = true;
        l->down_pending = true;
        l->down_err = err;
        snprintf(l->down_why, sizeof(l->down_why), "%s", why);
        ev_timer_stop(l->loop, &l->notify);
        ev_timer_set(&l->notify, 0., 0.);
        ev_timer_start(l->loop, &l->notify);
    } else {
        LOG_D("HA link %s: %s; retry in %.1f s", l->path, why, l->backoff);
    }
    ev_timer_stop(l->loop, &l->retry);
    ev_timer_set(&l->retry, l->backoff, 0.);
    ev_timer_start(l->loop, &l->retry);
    l->backoff = l->backoff * 2 > VFE_HA_LINK_RETRY_MAX ? VFE_HA_LINK_RETRY_MAX : l->backoff * 2;
}

/* The stall timer measures how long the oldest outstanding request waits:
 * it starts over on every answer and stops when nothing is outstanding.  A
 * written packet only starts it (a STATUS going out every few seconds must
 * not hide a PUT that is never answered). */
static void answered(struct vfe_ha_link *l)
{
    if (l->waiting.n || l->queue.n) {
        l->stall.repeat = VFE_HA_LINK_REPLY_TIMEOUT;
        ev_timer_again(l->loop, &l->stall);
    } else {
        ev_timer_stop(l->loop, &l->stall);
    }
}

static void written(struct vfe_ha_link *l)
{
    if (!ev_is_active(&l->stall)) {
        ev_now_update(l->loop);   /* a put may come after a long stretch outside the loop */
        l->stall.repeat = VFE_HA_LINK_REPLY_TIMEOUT;
        ev_timer_again(l->loop, &l->stall);
    }
}

static uint32_t next_seq(struct vfe_ha_link *l)
{
    return ++l->seq ? l->seq : ++l->seq;
}

/* Write queued requests until the socket is full; 0, or -1 when the link was lost. */
static int pump(struct vfe_ha_link *l)
{
    struct req *r;
    while (l->state != L_DOWN && (r = l->queue.head)) {
        if (!r->seq)
            r->seq = next_seq(l);
        size_t klen = strlen(r->key);
        struct vfe_ha_split sp = r->sp;
        if (r->type == VFE_HA_PUT)   /* a send tail needs room in (the last) packet */
            vfe_ha_split_next(&sp, klen + (r->send ? VFE_HA_SEND_OVERHEAD(r->send_len) : 0), r->len, r->nfds);
        const uint8_t *chunk = sp.chunk ? r->blob + sp.off : NULL;
        int n = r->send && !sp.more
                    ? vfe_ha_encode_send(l->pkt, sizeof(l->pkt), r->seq, r->key, klen, chunk, sp.chunk,
                                         sp.chunk_fds, r->send_fd, r->send_bytes, r->send_len)
                    : vfe_ha_encode(l->pkt, sizeof(l->pkt), r->type, sp.more ? VFE_HA_F_MORE : 0, r->seq, r->key,
                                    klen, chunk, sp.chunk, sp.chunk_fds);
        int rc = n < 0 ? n
                       : vfe_ha_send_packet(l->fd, l->pkt, (size_t)n, sp.chunk_fds ? r->fds + sp.fd_off : NULL,
                                            sp.chunk_fds);
        if (rc == -EAGAIN) {
            l->blocked = true;
            watch(l, EV_READ | EV_WRITE);
            return 0;
        }
        if (rc < 0) {
            lost(l, rc == -EPIPE ? -ECONNRESET : rc, "sending %s %s: %s", vfe_ha_type_name(r->type), r->key,
                 strerror(-rc));
            return -1;
        }
        r->started = true;   /* from now on the record is finished as it is */
        written(l);
        sp.off += sp.chunk;
        sp.fd_off += sp.chunk_fds;
        r->sp = sp;
        if (sp.more)
            continue;
        list_pop(&l->queue);
        l->st.queued_bytes -= r->len;
        req_release(r);
        if (r->type == VFE_HA_PUT)
            l->st.puts++;
        else if (r->type == VFE_HA_DEL)
            l->st.dels++;
        l->last_written_id = r->id;
        list_push(&l->waiting, r);
    }
    l->st.queued = l->queue.n;
    watch(l, EV_READ);
    return 0;
}

static void queue_status(struct vfe_ha_link *l)
{
    if (l->state != L_UP || l->status_outstanding)
        return;
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return;
    r->type = VFE_HA_STATUS;
    r->id = ++l->next_id;
    l->status_outstanding = true;
    list_push(&l->queue, r);
    l->st.queued = l->queue.n;
    pump(l);
}

/* Run a callback; false if the link was destroyed inside it (then it is freed here). */
static bool callback_done(struct vfe_ha_link *l)
{
    if (--l->in_cb == 0 && l->doomed) {
        free(l);
        return false;
    }
    return !l->doomed;
}

static void on_answer_err(struct vfe_ha_link *l, const struct req *r, int err, const char *msg, int mlen)
{
    if (r->type == VFE_HA_DEL && err == ENOENT) {
        l->st.acks++;
        return;
    }
    l->st.errors++;
    l->st.last_err = err;
    /* a long key cuts the message: the log line below has it whole */
    set_text(l->st.last_why, sizeof(l->st.last_why), "%s %s: %.*s", vfe_ha_type_name(r->type), r->key, mlen, msg);
    LOG_W("HA process refused %s %s: %.*s (%s)", vfe_ha_type_name(r->type), r->key, mlen, msg, strerror(err));
}

/* One answer; false when the link was lost or destroyed. */
static bool on_answer(struct vfe_ha_link *l, const struct vfe_ha_msg *m)
{
    int err = 0, mlen = 0;
    const char *msg = "";
    if (m->hdr.type == VFE_HA_ERR) {
        struct vfe_ha_err_body e;
        memcpy(&e, m->body, sizeof(e));
        err = e.err > 0 && e.err < 4096 ? e.err : EPROTO;
        msg = (const char *)m->body + sizeof(e);
        mlen = (int)(m->body_len - sizeof(e));
        if (m->hdr.seq == 0) {   /* not an answer: the connection is refused */
            lost(l, -err, "refused by the HA process: %.*s", mlen, msg);
            return false;
        }
    } else if (m->hdr.type != VFE_HA_ACK) {
        lost(l, -EPROTO, "unexpected %s from the HA process", vfe_ha_type_name(m->hdr.type));
        return false;
    }
    struct req *r = l->waiting.head;
    if (!r || r->seq != m->hdr.seq) {
        lost(l, -EPROTO, "answer %u matches no request", m->hdr.seq);
        return false;
    }
    list_pop(&l->waiting);
    answered(l);
    bool ok = true;
    switch (r->type) {
    case VFE_HA_HELLO:
        if (err || m->body_len != sizeof(l->limits)) {
            lost(l, err ? -err : -EPROTO, "HELLO: %.*s", err ? mlen : 20, err ? msg : "answer of another size");
            ok = false;
            break;
        }
        memcpy(&l->limits, m->body, sizeof(l->limits));
        l->peer_minor = m->hdr.minor;
        l->state = L_UP;
        l->st.connected = true;
        l->backoff = VFE_HA_LINK_RETRY_MIN;
        l->down_reported = false;
        if (l->ever_up)
            l->st.reconnects++;
        l->ever_up = true;
        LOG_I("HA link %s: up (%u fds per record)", l->path, l->limits.max_record_fds);
        ev_timer_again(l->loop, &l->status);
        queue_status(l);
        if (l->state == L_UP && l->ops.up) {
            l->in_cb++;
            l->ops.up(l->ctx);
            ok = callback_done(l) && l->state != L_DOWN;
        }
        break;
    case VFE_HA_STATUS:
        l->status_outstanding = false;
        if (err)
            on_answer_err(l, r, err, msg, mlen);
        else if (m->body_len == sizeof(l->st.held)) {
            memcpy(&l->st.held, m->body, sizeof(l->st.held));
            l->st.held_at = ev_now(l->loop);
        }
        break;
    default:
        if (err) {
            l->st.sends_failed += r->send;
            on_answer_err(l, r, err, msg, mlen);
        } else
            l->st.acks++;
        break;
    }
    free(r);
    return ok;
}

static void on_readable(struct vfe_ha_link *l)
{
    for (int i = 0; i < READ_BURST && l->fd >= 0; i++) {
        int fds[VFE_HA_MAX_FDS];
        unsigned nfds;
        int n = vfe_ha_recv_packet(l->fd, l->pkt, sizeof(l->pkt), fds, &nfds);
        for (unsigned k = 0; k < nfds; k++)   /* no answer the link expects carries fds */
            close(fds[k]);
        if (n == -EAGAIN)
            return;
        if (n == 0 || n == -ECONNRESET) {
            lost(l, -ECONNRESET, "the HA process closed the connection");
            return;
        }
        if (n < 0) {
            lost(l, n, "receiving from the HA process: %s", strerror(-n));
            return;
        }
        struct vfe_ha_msg m;
        const char *why;
        int rc = vfe_ha_decode(l->pkt, (size_t)n, nfds, &m, &why);
        if (rc < 0 || nfds) {
            lost(l, rc < 0 ? rc : -EPROTO, "bad answer from the HA process: %s", rc < 0 ? why : "fds attached");
            return;
        }
        if (!on_answer(l, &m))
            return;
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct vfe_ha_link *l = w->data;
    (void)loop;
    l->in_cb++;
    if (revents & EV_READ)
        on_readable(l);
    if (!l->doomed && l->state != L_DOWN && (revents & EV_WRITE)) {
        l->blocked = false;
        pump(l);
    }
    callback_done(l);
}

static void try_connect(struct vfe_ha_link *l)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, l->path, sizeof(sa.sun_path));
    l->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0 || connect(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        lost(l, -e, "connect: %s", strerror(e));
        return;
    }
    struct req *r = calloc(1, sizeof(*r));
    if (!r) {
        lost(l, -ENOMEM, "out of memory");
        return;
    }
    r->type = VFE_HA_HELLO;
    r->started = true;
    r->seq = next_seq(l);
    r->id = ++l->next_id;
    size_t nlen = strlen(l->name);
    int n = vfe_ha_encode(l->pkt, sizeof(l->pkt), VFE_HA_HELLO, 0, r->seq, NULL, 0, l->name, nlen, 0);
    int rc = n < 0 ? n : vfe_ha_send_packet(l->fd, l->pkt, (size_t)n, NULL, 0);
    if (rc < 0) {
        free(r);
        lost(l, rc == -EPIPE ? -ECONNRESET : rc, "sending HELLO: %s", strerror(-rc));
        return;
    }
    l->state = L_HELLO;
    list_push(&l->waiting, r);
    written(l);
    watch(l, EV_READ);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vfe_ha_link *l = w->data;
    (void)loop;
    (void)revents;
    if (l->state == L_DOWN)
        try_connect(l);
}

static void on_stall(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vfe_ha_link *l = w->data;
    (void)revents;
    if (!l->waiting.n && !l->queue.n) {
        ev_timer_stop(loop, w);
        return;
    }
    lost(l, -ETIMEDOUT, "no answer from the HA process within %.0f s", VFE_HA_LINK_REPLY_TIMEOUT);
}

static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    queue_status(w->data);
}

static void on_notify(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vfe_ha_link *l = w->data;
    (void)loop;
    (void)revents;
    if (!l->down_pending)
        return;
    l->down_pending = false;
    if (l->ops.down) {
        l->in_cb++;
        l->ops.down(l->ctx, l->down_err, l->down_why);
        callback_done(l);
    }
}

struct vfe_ha_link *vfe_ha_link_create(struct ev_loop *loop, const char *path, const char *name,
                                       const struct vfe_ha_link_ops *ops, void *ctx)
{
    if (!loop || !path || !ops) {
        errno = EINVAL;
        return NULL;
    }
    struct vfe_ha_link *l = calloc(1, sizeof(*l));
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    if (strlen(path) >= sizeof(l->path)) {
        free(l);
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(l->path, path);
    snprintf(l->name, sizeof(l->name), "%s", name ? name : "");
    l->loop = loop;
    l->ops = *ops;
    l->ctx = ctx;
    l->fd = -1;
    l->backoff = VFE_HA_LINK_RETRY_MIN;
    ev_io_init(&l->io, on_io, -1, EV_READ);
    l->io.data = l;
    ev_timer_init(&l->retry, on_retry, 0., 0.);
    l->retry.data = l;
    ev_init(&l->stall, on_stall);
    l->stall.data = l;
    ev_timer_init(&l->status, on_status_timer, 0., VFE_HA_LINK_STATUS_PERIOD);
    l->status.data = l;
    ev_timer_init(&l->notify, on_notify, 0., 0.);
    l->notify.data = l;
    ev_timer_start(loop, &l->retry);   /* the first connect, from the loop */
    return l;
}

struct vfe_ha_link *vfe_ha_link_create_connected(struct ev_loop *loop, const char *path, const char *name,
                                                 const struct vfe_ha_link_ops *ops, void *ctx,
                                                 const struct vfe_ha_handover *h)
{
    struct vfe_ha_link *l = vfe_ha_link_create(loop, path, name, ops, ctx);
    if (!l) {
        close(h->fd);
        return NULL;
    }
    ev_timer_stop(loop, &l->retry);   /* connected already: no first connect */
    l->fd = h->fd;
    l->limits = h->limits;
    l->peer_minor = h->peer_minor;
    l->seq = h->seq;
    l->state = L_UP;
    l->st.connected = true;
    l->ever_up = true;
    LOG_I("HA link %s: up, continuing the start's connection (%u fds per record)", l->path,
          l->limits.max_record_fds);
    ev_timer_again(loop, &l->status);
    watch(l, EV_READ);
    return l;
}

void vfe_ha_link_destroy(struct vfe_ha_link *l)
{
    if (!l || l->doomed)
        return;
    teardown(l);
    ev_timer_stop(l->loop, &l->retry);
    ev_timer_stop(l->loop, &l->notify);
    l->down_pending = false;
    if (l->in_cb) {
        l->doomed = true;   /* freed when the running callback returns */
        return;
    }
    free(l);
}

/* The unsent request of key in the queue, if any. */
static struct req *unsent(struct vfe_ha_link *l, const char *key)
{
    for (struct req *r = l->queue.head; r; r = r->next)
        if (!r->started && (r->type == VFE_HA_PUT || r->type == VFE_HA_DEL) && strcmp(r->key, key) == 0)
            return r;
    return NULL;
}

/* Queue r's content (replacing an unsent request of its key) and write what the socket takes. */
static int submit(struct vfe_ha_link *l, struct req *fresh)
{
    struct req *r = unsent(l, fresh->key);
    if (r) {
        l->st.queued_bytes -= r->len;
        req_release(r);
        r->type = fresh->type;
        r->blob = fresh->blob;
        r->len = fresh->len;
        r->fds = fresh->fds;
        r->nfds = fresh->nfds;
        free(fresh);
    } else {
        r = fresh;
        list_push(&l->queue, r);
    }
    r->id = ++l->next_id;
    l->st.queued_bytes += r->len;
    l->st.queued = l->queue.n;
    uint64_t id = r->id;
    if (!l->blocked)
        pump(l);
    return l->state == L_UP && l->last_written_id == id ? 1 : 0;
}

/* A PUT request holding copies of blob and dup()s of fds; NULL with *err. */
static struct req *req_new_put(const char *key, const void *blob, uint32_t len, const int *fds, unsigned nfds,
                               int *err);

int vfe_ha_link_put(struct vfe_ha_link *l, const char *key, const void *blob, uint32_t len, const int *fds,
                    unsigned nfds)
{
    if (!l || !key || !vfe_ha_key_valid(key, strlen(key)) || (len && !blob) || (nfds && !fds))
        return -EINVAL;
    if (len > VFE_HA_BLOB_MAX || nfds > VFE_HA_MAX_RECORD_FDS ||
        (l->state == L_UP && nfds > l->limits.max_record_fds))
        return -E2BIG;
    for (unsigned i = 0; i < nfds; i++)
        if (fds[i] < 0)
            return -EBADF;
    if (l->state != L_UP || l->doomed)
        return 0;
    int err = 0;
    struct req *r = req_new_put(key, blob, len, fds, nfds, &err);
    return r ? submit(l, r) : err;
}

static struct req *req_new_put(const char *key, const void *blob, uint32_t len, const int *fds, unsigned nfds,
                               int *err)
{
    *err = -ENOMEM;
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->type = VFE_HA_PUT;
    strcpy(r->key, key);
    if (len && !(r->blob = malloc(len))) {
        free(r);
        return NULL;
    }
    if (len)
        memcpy(r->blob, blob, len);
    r->len = len;
    if (nfds && !(r->fds = malloc(sizeof(int) * nfds))) {
        req_release(r);
        free(r);
        return NULL;
    }
    for (; r->nfds < nfds; r->nfds++) {
        r->fds[r->nfds] = fcntl(fds[r->nfds], F_DUPFD_CLOEXEC, 0);
        if (r->fds[r->nfds] < 0) {
            *err = -errno;
            req_release(r);
            free(r);
            return NULL;
        }
    }
    return r;
}

/* put_send of a record over one packet: copies queued, the first packet
 * written now or the request taken back (nothing sent); later packets the
 * socket does not take now follow from the loop like any started record. */
static int put_send_packets(struct vfe_ha_link *l, const char *key, const void *blob, uint32_t len,
                            const int *fds, unsigned nfds, unsigned send_fd, const void *bytes, uint32_t nbytes)
{
    int err = 0;
    struct req *r = req_new_put(key, blob, len, fds, nfds, &err);
    if (!r)
        return err;
    r->send = true;
    r->send_fd = send_fd;
    r->send_len = nbytes;
    if (nbytes)
        memcpy(r->send_bytes, bytes, nbytes);
    r->id = ++l->next_id;
    list_push(&l->queue, r);   /* the queue was empty: r is its only entry */
    l->st.queued_bytes += r->len;
    uint32_t seq = l->seq;
    pump(l);
    if (l->state != L_UP)
        return 0;   /* lost while sending (r freed with the queue): the record cannot complete */
    if (l->queue.head == r && !r->started) {
        list_pop(&l->queue);
        l->st.queued_bytes -= r->len;
        l->st.queued = l->queue.n;
        req_release(r);
        free(r);
        l->seq = seq;   /* nothing went out under this number */
        l->blocked = false;
        watch(l, EV_READ);
        return 0;
    }
    return 1;   /* written completely, or started: the loop finishes it */
}

int vfe_ha_link_put_send(struct vfe_ha_link *l, const char *key, const void *blob, uint32_t len, const int *fds,
                         unsigned nfds, unsigned send_fd, const void *bytes, uint32_t nbytes)
{
    if (!l || !key || !vfe_ha_key_valid(key, strlen(key)) || (len && !blob) || (nfds && !fds) ||
        send_fd >= nfds || nbytes > VFE_HA_SEND_MAX || (nbytes && !bytes))
        return -EINVAL;
    if (len > VFE_HA_BLOB_MAX || nfds > VFE_HA_MAX_RECORD_FDS ||
        (l->state == L_UP && nfds > l->limits.max_record_fds))
        return -E2BIG;
    for (unsigned i = 0; i < nfds; i++)
        if (fds[i] < 0)
            return -EBADF;
    size_t klen = strlen(key);
    /* nothing may be ahead of it; sent now or not at all */
    if (l->state != L_UP || l->doomed || l->peer_minor < VFE_HA_SEND_MINOR || l->queue.n || l->blocked)
        return 0;
    if (nfds > VFE_HA_MAX_FDS || VFE_HA_HDR_SIZE + klen + len + VFE_HA_SEND_OVERHEAD(nbytes) > VFE_HA_MAX_PACKET)
        return put_send_packets(l, key, blob, len, fds, nfds, send_fd, bytes, nbytes);
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->type = VFE_HA_PUT;
    strcpy(r->key, key);
    r->started = true;
    r->send = true;
    uint32_t seq = l->seq;
    r->seq = next_seq(l);
    int n = vfe_ha_encode_send(l->pkt, sizeof(l->pkt), r->seq, key, klen, blob, len, nfds, send_fd, bytes, nbytes);
    int rc = n < 0 ? n : vfe_ha_send_packet(l->fd, l->pkt, (size_t)n, fds, nfds);
    if (rc < 0) {
        free(r);
        l->seq = seq;   /* nothing went out under this number */
        if (rc != -EAGAIN)   /* down() comes from the loop */
            lost(l, rc == -EPIPE ? -ECONNRESET : rc, "sending PUT %s: %s", key, strerror(-rc));
        return 0;
    }
    r->id = ++l->next_id;
    l->last_written_id = r->id;
    l->st.puts++;
    list_push(&l->waiting, r);
    written(l);
    return 1;
}

int vfe_ha_link_del(struct vfe_ha_link *l, const char *key)
{
    if (!l || !key || !vfe_ha_key_valid(key, strlen(key)))
        return -EINVAL;
    if (l->state != L_UP || l->doomed)
        return 0;
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->type = VFE_HA_DEL;
    strcpy(r->key, key);
    return submit(l, r);
}

bool vfe_ha_link_connected(const struct vfe_ha_link *l)
{
    return l && l->state == L_UP;
}

void vfe_ha_link_stats(const struct vfe_ha_link *l, struct vfe_ha_link_stats *st)
{
    *st = l->st;
    st->connected = l->state == L_UP;
    st->queued = l->queue.n;
}
