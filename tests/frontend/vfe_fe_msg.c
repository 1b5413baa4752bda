/* vhost-user messages on a unix socket: header, payload and SCM_RIGHTS fds,
 * with every read bounded by a deadline. */
#include "tests/frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FE_MAX_PAYLOAD 65536u

long fe_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int fe_send_msg(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
                unsigned nfds, int timeout_ms)
{
    if (fd < 0)
        return -EPIPE;
    if (nfds > VFE_FE_MAX_FDS)
        return -EINVAL;
    struct vfe_fe_msg_hdr h = {req, flags, size};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, size}};
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFE_FE_MAX_FDS)];
        struct cmsghdr align;
    } cb;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
    if (nfds) {
        memset(&cb, 0, sizeof(cb));
        mh.msg_control = cb.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    size_t total = sizeof(h) + size, done = 0;
    long end = fe_now_ms() + timeout_ms;
    /* the fds go with the first byte; a short write continues without them */
    while (done < total) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return errno == ECONNRESET ? -EPIPE : -errno;
            long left = end - fe_now_ms();
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                return -ETIMEDOUT;
            continue;
        }
        done += (size_t)n;
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        while (n > 0 && mh.msg_iovlen) {
            size_t take = (size_t)n < mh.msg_iov->iov_len ? (size_t)n : mh.msg_iov->iov_len;
            mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + take;
            mh.msg_iov->iov_len -= take;
            n -= (ssize_t)take;
            if (mh.msg_iov->iov_len == 0) {
                mh.msg_iov++;
                mh.msg_iovlen--;
            }
        }
    }
    return 0;
}

static void close_fds(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* Read exactly len bytes (fds, if any, collected) before the deadline. */
static int read_exact(int fd, void *buf, size_t len, int *fds, unsigned *nfds, long end_ms)
{
    size_t got = 0;
    while (got < len) {
        long left = end_ms - fe_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, left > 0 ? (int)left : 0);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -ETIMEDOUT;
        struct iovec iov = {(uint8_t *)buf + got, len - got};
        union {
            char buf[CMSG_SPACE(sizeof(int) * VFE_FE_MAX_FDS)];
            struct cmsghdr align;
        } cb;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof(cb)};
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            return errno == ECONNRESET ? -EPIPE : -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int tmp[VFE_FE_MAX_FDS];
            if (k > VFE_FE_MAX_FDS)
                k = VFE_FE_MAX_FDS;   /* the control buffer holds no more */
            memcpy(tmp, CMSG_DATA(c), k * sizeof(int));
            for (unsigned i = 0; i < k; i++) {
                if (fds && *nfds < VFE_FE_MAX_FDS)
                    fds[(*nfds)++] = tmp[i];
                else
                    close(tmp[i]);
            }
        }
        if (n == 0)
            return -EPIPE;
        got += (size_t)n;
    }
    return 0;
}

int fe_recv_msg(int fd, struct vfe_fe_msg_hdr *h, void *payload, size_t cap, int *fds_out, unsigned *nfds,
                long end_ms)
{
    int fds[VFE_FE_MAX_FDS];
    unsigned nf = 0;
    if (nfds)
        *nfds = 0;
    if (fd < 0)
        return -EPIPE;
    int rc = read_exact(fd, h, sizeof(*h), fds, &nf, end_ms);
    if (rc == 0 && h->size > FE_MAX_PAYLOAD)
        rc = -EPROTO;   /* no vhost-user message is that big: the stream is lost */
    if (rc == 0 && h->size) {
        /* the header is in: the rest of the message is due promptly */
        long end = end_ms > fe_now_ms() + 1000 ? end_ms : fe_now_ms() + 1000;
        size_t keep = h->size < cap ? h->size : cap;
        rc = read_exact(fd, payload, keep, fds, &nf, end);
        uint8_t sink[256];
        for (size_t left = h->size - keep; rc == 0 && left;) {
            size_t k = left < sizeof(sink) ? left : sizeof(sink);
            rc = read_exact(fd, sink, k, fds, &nf, end);
            left -= k;
        }
        if (rc == 0 && keep < h->size)
            rc = -EMSGSIZE;
    }
    if (fds_out && rc >= 0) {
        memcpy(fds_out, fds, nf * sizeof(int));
        *nfds = nf;
    } else {
        close_fds(fds, nf);
    }
    return rc < 0 ? rc : (int)h->size;
}
