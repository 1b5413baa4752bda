/* Requests and replies on the front-end socket, with QEMU's rules for
 * REPLY_ACK; the backend channel is served while we wait, since a back-end
 * may block on a request of its own before it answers ours. */
#include "tests/frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

#include "lib/log/vfe_log.h"

/* Until the socket is readable or the deadline passes. */
static int wait_readable(struct vfe_fe *fe, long end)
{
    for (;;) {
        fe_backend_serve(fe);
        if (fe->sock < 0)
            return -EPIPE;
        long left = end - fe_now_ms();
        struct pollfd p[2] = {{.fd = fe->sock, .events = POLLIN}, {.fd = fe->backend, .events = POLLIN}};
        int pr = poll(p, fe->backend >= 0 ? 2 : 1, left > 0 ? (int)left : 0);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return -errno;
        if (p[0].revents)
            return 0;
        if (pr == 0 || left <= 0)
            return -ETIMEDOUT;
    }
}

static bool reply_flags_ok(uint32_t flags)
{
    return (flags & VFE_FE_VERSION_MASK) == VFE_FE_VERSION && (flags & VFE_FE_FLAG_REPLY);
}

int fe_read_reply(struct vfe_fe *fe, uint32_t req, void *buf, size_t cap)
{
    long end = fe_now_ms() + fe->o.timeout_ms;
    int rc = wait_readable(fe, end);
    if (rc < 0)
        return rc;
    struct vfe_fe_msg_hdr h;
    rc = fe_recv_msg(fe->sock, &h, buf, cap, NULL, NULL, end);
    if (rc == -EPIPE || rc == -EPROTO)
        fe_drop_connection(fe);
    if (rc < 0)
        return rc;
    if (h.request != req || !reply_flags_ok(h.flags)) {
        LOG_W("vfe-frontend: reply %u flags %#x to request %u", h.request, h.flags, req);
        return -EPROTO;
    }
    return rc;
}

int fe_get_u64(struct vfe_fe *fe, uint32_t req, uint64_t *v)
{
    int rc = fe_send_msg(fe->sock, req, VFE_FE_VERSION, NULL, 0, NULL, 0, fe->o.timeout_ms);
    if (rc == -EPIPE)
        fe_drop_connection(fe);
    if (rc == 0)
        rc = fe_read_reply(fe, req, v, sizeof(*v));
    return rc < 0 ? rc : rc == 8 ? 0 : -EPROTO;
}

int fe_request(struct vfe_fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
               unsigned nfds, bool want_ack)
{
    bool reply_ack = fe->proto & (1ull << VFE_FE_PF_REPLY_ACK);
    bool ack = reply_ack && (want_ack || fe->o.ack_all);
    uint32_t flags = VFE_FE_VERSION | (ack ? VFE_FE_FLAG_NEED_REPLY : 0);
    int rc = fe_send_msg(fe->sock, req, flags, payload, size, fds, nfds, fe->o.timeout_ms);
    if (rc == -EPIPE)
        fe_drop_connection(fe);
    if (rc < 0)
        return rc;
    if (!ack) {
        /* without REPLY_ACK QEMU makes sure a request took effect by a
         * request that has a reply: the back-end answers in order */
        uint64_t unused;
        return want_ack ? fe_get_u64(fe, VFE_FE_GET_FEATURES, &unused) : 0;
    }
    uint64_t v = 0;
    rc = fe_read_reply(fe, req, &v, sizeof(v));
    if (rc < 0)
        return rc;
    if (rc != 8)
        return -EPROTO;
    return v == 0 ? 0 : -EIO;
}

int fe_set_u64(struct vfe_fe *fe, uint32_t req, uint64_t v, bool want_ack)
{
    return fe_request(fe, req, &v, sizeof(v), NULL, 0, want_ack);
}

int vfe_fe_raw_send(struct vfe_fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                    const int *fds, unsigned nfds)
{
    return fe_send_msg(fe->sock, req, flags, payload, size, fds, nfds, fe->o.timeout_ms);
}

int vfe_fe_raw_recv(struct vfe_fe *fe, struct vfe_fe_msg_hdr *hdr, void *payload, size_t cap, int timeout_ms)
{
    struct vfe_fe_msg_hdr h;
    long end = fe_now_ms() + timeout_ms;
    int rc = wait_readable(fe, end);
    if (rc == 0)
        rc = fe_recv_msg(fe->sock, &h, payload, cap, NULL, NULL, end);
    if (rc == -EPIPE || rc == -EPROTO)
        fe_drop_connection(fe);
    if (hdr && (rc >= 0 || rc == -EMSGSIZE))
        *hdr = h;
    return rc;
}

int vfe_fe_raw(struct vfe_fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
               const int *fds, unsigned nfds, void *reply, size_t cap, int timeout_ms)
{
    int rc = vfe_fe_raw_send(fe, req, flags, payload, size, fds, nfds);
    if (rc < 0)
        return rc == -ETIMEDOUT ? rc : -EPIPE;
    struct vfe_fe_msg_hdr h;
    rc = vfe_fe_raw_recv(fe, &h, reply, cap, timeout_ms);
    if (rc < 0)
        return rc;
    return h.request == req && reply_flags_ok(h.flags) ? rc : -EPROTO;
}

bool vfe_fe_peer_closed(struct vfe_fe *fe, int timeout_ms)
{
    long end = fe_now_ms() + timeout_ms;
    while (fe->sock >= 0) {
        uint8_t sink[256];
        int rc = vfe_fe_raw_recv(fe, NULL, sink, sizeof(sink), (int)(end - fe_now_ms()));
        if (rc == -ETIMEDOUT)
            return false;
        if (rc < 0 && rc != -EMSGSIZE)
            fe_drop_connection(fe);   /* a broken stream counts as closed */
        else if (fe_now_ms() >= end)
            return false;
    }
    return true;
}
