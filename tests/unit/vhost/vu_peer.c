#include "tests/unit/vhost/vu_peer.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/vhost/vhost_priv.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int vu_peer_connect(struct vu_peer *p, struct ev_loop *loop, const char *path)
{
    p->loop = loop;
    p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
    if (p->fd < 0 || connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    vu_peer_spin(p, 20);   /* let the library accept */
    return 0;
}

void vu_peer_close(struct vu_peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    vu_peer_spin(p, 20);
}

void vu_peer_spin(struct vu_peer *p, int ms)
{
    long end = now_ms() + ms;
    do
        ev_run(p->loop, EVRUN_NOWAIT);
    while (now_ms() < end && (usleep(1000), 1));
}

int vu_peer_send(struct vu_peer *p, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                 const int *fds, unsigned nfds)
{
    return vhost_msg_send(p->fd, req, flags ? flags : VHOST_USER_VERSION, payload, size, fds, nfds);
}

int vu_peer_reply(struct vu_peer *p, uint32_t req, void *buf, size_t cap, int ms)
{
    long end = now_ms() + ms;
    while (now_ms() < end) {
        ev_run(p->loop, EVRUN_NOWAIT);
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        if (poll(&pf, 1, 1) <= 0)
            continue;
        struct vhost_user_hdr h;
        ssize_t n = recv(p->fd, &h, sizeof(h), MSG_WAITALL);
        if (n <= 0)
            return -EPIPE;
        if (n != sizeof(h) || h.request != req || !(h.flags & VHOST_USER_FLAG_REPLY) || h.size > cap)
            return -EPROTO;
        if (h.size && recv(p->fd, buf, h.size, MSG_WAITALL) != (ssize_t)h.size)
            return -EPIPE;
        return (int)h.size;
    }
    return -ETIMEDOUT;
}

long long vu_peer_call_u64(struct vu_peer *p, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                           const int *fds, unsigned nfds)
{
    int rc = vu_peer_send(p, req, flags, payload, size, fds, nfds);
    if (rc < 0)
        return rc;
    uint64_t v = 0;
    rc = vu_peer_reply(p, req, &v, sizeof(v), 1000);
    if (rc < 0)
        return rc;
    return rc == 8 ? (long long)v : -EPROTO;
}

bool vu_peer_closed(struct vu_peer *p, int ms)
{
    long end = now_ms() + ms;
    while (now_ms() < end) {
        ev_run(p->loop, EVRUN_NOWAIT);
        char c;
        ssize_t n = recv(p->fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
        if (n == 0)
            return true;
        usleep(1000);
    }
    return false;
}
