/*
 * Posted mode of the vfio-user client (vfe_transport.h): writes go out
 * without waiting for their replies, which are matched later by msg_id, from
 * drain (the loop, when the socket is readable) or from a synchronous call
 * that meets them first.  A refused write is latched; an asynchronous read's
 * callback runs from drain only.
 */
#include "drivers/bus/vfio/vfio_user_priv.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

static int posted_alloc(struct vfu_client *c)
{
    if (!c->pq && !(c->pq = calloc(VFE_POSTED_MAX, sizeof(*c->pq))))
        return -ENOMEM;
    if (!c->done && !(c->done = calloc(VFE_POSTED_MAX, sizeof(*c->done))))
        return -ENOMEM;
    return 0;
}

static void signal_done(struct vfu_client *c)
{
    uint64_t one = 1;
    if (c->evfd >= 0 && write(c->evfd, &one, sizeof(one)) < 0)
        LOG_D("vfio-user %s: completion signal: %s", c->t.bdf, strerror(errno));
}

/* done has room: every entry of it was an outstanding read or wcb write of pq (same bound). */
static void complete_read(struct vfu_client *c, const struct vfu_preq *r, int err, uint8_t *data, size_t len)
{
    c->done[c->ndone++] = (struct vfu_pdone){ .cb = r->cb, .wcb = r->wcb, .ctx = r->ctx, .err = err, .data = data,
                                              .len = len };
    signal_done(c);
}

static void latch(struct vfu_client *c, uint16_t cmd, int err)
{
    LOG_E("vfio-user %s: posted %s refused by the device: %s", c->t.bdf, vfu_cmd_name(cmd), strerror(-err));
    if (!c->latched) {
        c->latched = err;
        c->latched_cmd = cmd;
    }
}

static void take_replies(struct vfu_client *c);

static bool has_room(int sock, int ms)
{
    struct pollfd p = { .fd = sock, .events = POLLOUT };
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r == 1 && (p.revents & POLLOUT);
}

int vfu_posted_send(struct vfu_client *c, uint16_t cmd, const struct iovec *iov, unsigned niov, const int *fds,
                    unsigned nfds, const struct vfu_preq *r)
{
    if (c->broken)
        return -ENOTCONN;
    int rc = posted_alloc(c);
    if (rc < 0)
        return rc;
    if (c->npq + c->ndone >= VFE_POSTED_MAX || !has_room(c->sock, 0))
        take_replies(c);   /* answers the loop has not drained yet (a burst within one turn) */
    if (c->broken)
        return -ENOTCONN;
    bool room = has_room(c->sock, 0);
    /* a burst the device is still working through (its socket buffer a
     * quarter full): wait a little for it, once per episode; a device that
     * stopped reading then costs the loop this once, later calls fail at once */
    if (!room && !c->full_logged && c->npq + c->ndone < VFE_POSTED_MAX)
        room = has_room(c->sock, VFE_POSTED_ROOM_MS);
    if (c->npq + c->ndone >= VFE_POSTED_MAX || !room) {
        if (!c->full_logged)
            LOG_E("vfio-user %s: %s not sent: the device stopped reading (%u requests unanswered, the oldest %s "
                  "for %ld ms)", c->t.bdf, vfu_cmd_name(cmd), c->npq, c->npq ? vfu_cmd_name(c->pq[0].cmd) : "-",
                  c->npq ? vfu_now_ms() - c->pq[0].sent_ms : 0L);
        c->full_logged = true;
        return -ENOBUFS;
    }
    struct vfu_preq q = *r;
    q.id = c->next_id++;
    q.cmd = cmd;
    q.sent_ms = vfu_now_ms();
    struct vfu_hdr h = { .msg_id = q.id, .cmd = cmd, .flags = VFU_F_TYPE_CMD };
    /* poll said most of the send buffer is free: a small message goes whole */
    rc = vfu_msg_send(c->sock, &h, iov, niov, fds, nfds, 0);
    if (rc < 0)
        return vfu_broken(c, rc, "posted send", cmd);
    c->pq[c->npq++] = q;
    c->full_logged = false;   /* it reads again: the episode is over */
    return 0;
}

/* Check a reply against its request; 0, or the error the request ends with. */
static int reply_check(const struct vfu_preq *r, const struct vfu_msg *m, uint8_t **data)
{
    if (m->hdr.flags & VFU_F_ERROR) {
        uint32_t e = m->hdr.error;
        return -(int)(e == 0 || e > 4095 ? EIO : e);
    }
    struct vfu_region_access a;
    switch (r->cmd) {
    case VFU_CMD_REGION_WRITE:
    case VFU_CMD_REGION_READ: {
        size_t want = sizeof(a) + (r->cmd == VFU_CMD_REGION_READ ? r->count : 0);
        if (m->len != want)
            return -EPROTO;
        memcpy(&a, m->payload, sizeof(a));
        if (a.offset != r->off || a.region != r->region || a.count != r->count)
            return -EPROTO;
        if (r->cmd == VFU_CMD_REGION_READ) {
            if (!(*data = malloc(r->count ? r->count : 1)))
                return -ENOMEM;
            memcpy(*data, m->payload + sizeof(a), r->count);
        }
        return 0;
    }
    case VFU_CMD_DMA_UNMAP: {
        struct vfu_dma_unmap u;
        if (m->len == 0)
            return 0;   /* tolerated, as in the synchronous call */
        if (m->len != sizeof(u))
            return -EPROTO;
        memcpy(&u, m->payload, sizeof(u));
        return u.addr == r->addr && u.size == r->size ? 0 : -EPROTO;
    }
    default:
        return m->len == 0 ? 0 : -EPROTO;
    }
}

bool vfu_posted_absorb(struct vfu_client *c, struct vfu_msg *m)
{
    unsigned i = 0;
    while (i < c->npq && !(c->pq[i].id == m->hdr.msg_id && c->pq[i].cmd == m->hdr.cmd))
        i++;
    if (i == c->npq)
        return false;
    struct vfu_preq r = c->pq[i];
    memmove(&c->pq[i], &c->pq[i + 1], (c->npq - i - 1) * sizeof(*c->pq));
    c->npq--;
    if (m->nfds || m->fds_dropped) {
        LOG_W("vfio-user %s: %s reply carried %u unexpected fds, closed", c->t.bdf, vfu_cmd_name(r.cmd), m->nfds);
        vfu_msg_close_fds(m);
    }
    uint8_t *data = NULL;
    int err = reply_check(&r, m, &data);
    if (err == -ENOENT && r.enoent_ok) {
        LOG_D("vfio-user %s: iova %#llx+%#llx was not mapped", c->t.bdf, (unsigned long long)r.addr,
              (unsigned long long)r.size);
        err = 0;
    }
    if (err == -EPROTO)
        LOG_E("vfio-user %s: %s reply (%zu bytes) does not match the request", c->t.bdf, vfu_cmd_name(r.cmd), m->len);
    vfu_msg_free(m);
    if (r.cancelled)
        free(data);
    else if (r.cb || r.wcb)
        complete_read(c, &r, err, data, err ? 0 : r.count);
    else if (err)
        latch(c, r.cmd, err);
    if (!c->npq)
        c->full_logged = false;
    if (!c->in_drain)
        signal_done(c);   /* the owner's drain looks at what changed (a start waiting for acknowledgements) */
    return true;
}

void vfu_posted_fail_all(struct vfu_client *c)
{
    for (unsigned i = 0; i < c->npq; i++) {
        if (c->pq[i].cb || c->pq[i].wcb) {
            if (!c->pq[i].cancelled)
                complete_read(c, &c->pq[i], -ENOTCONN, NULL, 0);
        } else if (!c->latched) {
            c->latched = -ENOTCONN;
            c->latched_cmd = c->pq[i].cmd;
        }
    }
    c->npq = 0;
}

void vfu_posted_fini(struct vfu_client *c)
{
    for (unsigned i = 0; i < c->ndone; i++)
        free(c->done[i].data);
    free(c->pq);
    free(c->done);
    c->pq = NULL;
    c->done = NULL;
    c->npq = c->ndone = 0;
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->evfd >= 0)
        close(c->evfd);
    c->epfd = c->evfd = -1;
}

int vfu_posted_set(struct vfe_transport *t, bool on)
{
    struct vfu_client *c = CL(t);
    int rc = on ? posted_alloc(c) : 0;
    if (rc == 0)
        c->posted = on;
    if (!on && !c->npq && !c->ndone && c->epfd < 0) {
        /* posted only for a while (a pipelined probe): the tables go again */
        free(c->pq);
        free(c->done);
        c->pq = NULL;
        c->done = NULL;
    }
    return rc;
}

int vfu_posted_watch_fd(struct vfe_transport *t)
{
    struct vfu_client *c = CL(t);
    if (c->epfd >= 0)
        return c->epfd;
    int ep = epoll_create1(EPOLL_CLOEXEC), ev = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event e1 = { .events = EPOLLIN, .data.fd = c->sock }, e2 = { .events = EPOLLIN, .data.fd = ev };
    if (ep < 0 || ev < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->sock, &e1) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e2) < 0) {
        int rc = -errno;
        if (ep >= 0)
            close(ep);
        if (ev >= 0)
            close(ev);
        LOG_E("vfio-user %s: no fd to watch: %s", t->bdf, strerror(-rc));
        return rc;
    }
    c->epfd = ep;
    c->evfd = ev;
    if (c->ndone)
        signal_done(c);
    return ep;
}

/* The next whole message, never waiting: VFU_RD_MSG, 0 (nothing whole yet:
 * the part that is there goes into c->rd), or -errno of the stream. */
static int next_msg(struct vfu_client *c, struct vfu_msg *m)
{
    if (!c->rd.have) {
        /* whole messages are taken in one read, as the synchronous call does (HA) */
        int rc = vfu_msg_recv_whole(&c->rd, c->sock, m, 0);
        if (rc != -ETIMEDOUT)
            return rc;
    }
    return vfu_reader_feed(&c->rd, c->sock, m);
}

/* Every whole reply that is there already, never waiting: absorbed (read
 * completions queued for the next drain). */
static void take_replies(struct vfu_client *c)
{
    while (!c->broken) {
        struct vfu_msg m;
        int rc = next_msg(c, &m);
        if (rc == 0)
            break;
        if (rc < 0) {
            vfu_broken(c, rc, "stream", c->npq ? c->pq[0].cmd : 0);
            break;
        }
        uint32_t type = m.hdr.flags & VFU_F_TYPE_MASK;
        if (type == VFU_F_TYPE_CMD) {
            vfu_refuse_server_cmd(c, &m, 0);
            vfu_msg_free(&m);
            continue;
        }
        if (type == VFU_F_TYPE_REPLY && vfu_posted_absorb(c, &m))
            continue;
        LOG_E("vfio-user %s: reply type %u id %u cmd %u answers no request", c->t.bdf, type, m.hdr.msg_id, m.hdr.cmd);
        uint16_t cmd = m.hdr.cmd;
        vfu_msg_free(&m);
        vfu_broken(c, -EPROTO, "unexpected reply", cmd);
    }
}

int vfu_posted_drain(struct vfe_transport *t)
{
    struct vfu_client *c = CL(t);
    uint64_t cnt;
    if (c->evfd >= 0 && read(c->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
        LOG_D("vfio-user %s: completion signal: %s", t->bdf, strerror(errno));
    c->in_drain = true;
    take_replies(c);
    c->in_drain = false;
    /* one at a time from the front: a callback may cancel the ones still
     * waiting (cancel_reads drops them from done) or post new reads */
    for (unsigned n = c->ndone; n && c->ndone; n--) {
        struct vfu_pdone d = c->done[0];
        memmove(c->done, c->done + 1, --c->ndone * sizeof(*c->done));
        if (d.wcb)
            d.wcb(d.ctx, d.err);
        else
            d.cb(d.ctx, d.err, d.data, d.len);
        free(d.data);
    }
    return c->broken ? -ENOTCONN : 0;
}

void vfu_posted_state(struct vfe_transport *t, struct vfe_posted_state *st, bool take_error)
{
    struct vfu_client *c = CL(t);
    *st = (struct vfe_posted_state){ .error = c->latched, .error_op = c->latched ? vfu_cmd_name(c->latched_cmd) : NULL };
    for (unsigned i = 0; i < c->npq; i++) {
        if (c->pq[i].cb)
            st->reads++;
        else
            st->outstanding++;
    }
    if (c->npq)
        st->oldest_ms = vfu_now_ms() - c->pq[0].sent_ms;
    if (c->broken && !st->error) {
        st->error = -ENOTCONN;
        st->error_op = "connection";
    }
    if (take_error) {
        c->latched = 0;
        c->latched_cmd = 0;
    }
}

int vfu_posted_read_async(struct vfe_transport *t, uint32_t index, uint64_t off, size_t len, vfe_read_cb cb,
                          void *ctx)
{
    struct vfu_client *c = CL(t);
    if (!cb || !len)
        return -EINVAL;
    if (len > c->xfer_max)
        return -EMSGSIZE;
    int rc = vfu_check_range(t, index, off, len);
    if (rc < 0)
        return rc;
    struct vfu_region_access req = { .offset = off, .region = index, .count = (uint32_t)len };
    struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
    struct vfu_preq r = { .region = index, .off = off, .count = (uint32_t)len, .cb = cb, .ctx = ctx };
    return vfu_posted_send(c, VFU_CMD_REGION_READ, &iov, 1, NULL, 0, &r);
}

void vfu_posted_cancel_reads(struct vfe_transport *t, void *ctx)
{
    struct vfu_client *c = CL(t);
    /* the request stays outstanding (its reply is still absorbed), only the callback goes */
    for (unsigned i = 0; i < c->npq; i++)
        if ((c->pq[i].cb || c->pq[i].wcb) && c->pq[i].ctx == ctx)
            c->pq[i].cancelled = true;
    unsigned keep = 0;
    for (unsigned i = 0; i < c->ndone; i++) {
        if (c->done[i].ctx == ctx)
            free(c->done[i].data);
        else
            c->done[keep++] = c->done[i];
    }
    c->ndone = keep;
}
