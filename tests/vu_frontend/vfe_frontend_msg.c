/* The test front-end's vhost-user messages: connect, negotiate, replies,
 * and the backend channel. */
#include "tests/vu_frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>


static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* One message with its fds (written here, not shared with lib/vhost, so the
 * two sides check each other). */
int fe_send(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
            unsigned nfds)
{
    struct vhost_user_hdr h = {req, flags, size};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, size}};
    char cbuf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
    if (nfds > VHOST_USER_MAX_FDS)
        return -EINVAL;
    if (nfds) {
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    return n == (ssize_t)(sizeof(h) + size) ? 0 : n < 0 ? -errno : -EIO;
}

int fe_connect(struct vfe_fe *fe)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(fe->o.path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, fe->o.path);
    long end = now_ms() + fe->o.timeout_ms;
    if (fe->o.server) {
        if (fe->lsock < 0) {
            unlink(fe->o.path);
            fe->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fe->lsock < 0 || bind(fe->lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fe->lsock, 1) < 0)
                return -errno;
        }
        struct pollfd p = {.fd = fe->lsock, .events = POLLIN};
        if (poll(&p, 1, fe->o.timeout_ms) <= 0)
            return -ETIMEDOUT;
        fe->sock = accept4(fe->lsock, NULL, NULL, SOCK_CLOEXEC);
        return fe->sock < 0 ? -errno : 0;
    }
    for (;;) {
        fe->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fe->sock, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return 0;
        int e = errno;
        close(fe->sock);
        fe->sock = -1;
        if (now_ms() > end)
            return -e;
        usleep(20000);
    }
}

/* Answer what the back-end sent on its channel (host notifiers and the like). */
void fe_serve_backend(struct vfe_fe *fe)
{
    if (fe->backend[0] < 0)
        return;
    for (;;) {
        struct vhost_user_hdr h;
        uint8_t payload[256];
        char cbuf[CMSG_SPACE(sizeof(int) * 8)];
        struct iovec iov = {&h, sizeof(h)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
        ssize_t n = recvmsg(fe->backend[0], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n != sizeof(h))
            return;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_type == SCM_RIGHTS)
                for (unsigned i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                    close(((int *)CMSG_DATA(c))[i]);
        if (h.size > sizeof(payload) || (h.size && recv(fe->backend[0], payload, h.size, MSG_WAITALL) != h.size))
            return;
        if (h.request < 8)
            fe->backend_counts[h.request]++;
        if (h.flags & VHOST_USER_FLAG_NEED_REPLY) {
            uint64_t ok = 0;
            fe_send(fe->backend[0], h.request, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY, &ok, 8, NULL, 0);
        }
    }
}

int fe_read_reply(struct vfe_fe *fe, uint32_t req, void *buf, size_t cap, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    for (;;) {
        fe_serve_backend(fe);
        long left = end - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fe->sock, .events = POLLIN};
        if (poll(&p, 1, left < 20 ? (int)left : 20) <= 0)
            continue;
        struct vhost_user_hdr h;
        ssize_t n = recv(fe->sock, &h, sizeof(h), MSG_WAITALL);
        if (n <= 0)
            return -EPIPE;
        if (n != sizeof(h) || h.request != req || !(h.flags & VHOST_USER_FLAG_REPLY) || h.size > cap)
            return -EPROTO;
        if (h.size && recv(fe->sock, buf, h.size, MSG_WAITALL) != (ssize_t)h.size)
            return -EPIPE;
        return (int)h.size;
    }
}

/* A request; with REPLY_ACK it asks for and checks the ack, as QEMU does. */
int fe_request(struct vfe_fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
               unsigned nfds)
{
    bool ack = fe->proto & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
    uint32_t flags = VHOST_USER_VERSION | (ack ? VHOST_USER_FLAG_NEED_REPLY : 0);
    int rc = fe_send(fe->sock, req, flags, payload, size, fds, nfds);
    if (rc < 0 || !ack)
        return rc;
    uint64_t v = 1;
    rc = fe_read_reply(fe, req, &v, sizeof(v), fe->o.timeout_ms);
    if (rc < 0)
        return rc;
    return rc == 8 && v == 0 ? 0 : -EIO;
}

int fe_get_u64(struct vfe_fe *fe, uint32_t req, uint64_t *v)
{
    int rc = fe_send(fe->sock, req, VHOST_USER_VERSION, NULL, 0, NULL, 0);
    if (rc == 0)
        rc = fe_read_reply(fe, req, v, sizeof(*v), fe->o.timeout_ms);
    return rc < 0 ? rc : rc == 8 ? 0 : -EPROTO;
}

int fe_negotiate(struct vfe_fe *fe)
{
    fe->proto = 0;
    int rc = fe_get_u64(fe, VHOST_USER_GET_FEATURES, &fe->offered);
    if (rc < 0)
        return rc;
    if (fe->offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
        if ((rc = fe_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &fe->proto_offered)) < 0)
            return rc;
        static const unsigned want[] = {VHOST_USER_PROTOCOL_F_MQ, VHOST_USER_PROTOCOL_F_LOG_SHMFD,
                                        VHOST_USER_PROTOCOL_F_REPLY_ACK, VHOST_USER_PROTOCOL_F_BACKEND_REQ,
                                        VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD, VHOST_USER_PROTOCOL_F_HOST_NOTIFIER,
                                        VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, VHOST_USER_PROTOCOL_F_STATUS,
                                        VHOST_USER_PROTOCOL_F_RARP};
        uint64_t p = 0;
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
            p |= 1ull << want[i];
        p &= fe->proto_offered;
        if ((rc = fe_send(fe->sock, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, &p, 8, NULL, 0)) < 0)
            return rc;
        fe->proto = p;
        if (p & (1ull << VHOST_USER_PROTOCOL_F_MQ)) {
            uint64_t q = 0;
            if ((rc = fe_get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &q)) < 0)
                return rc;
            fe->queue_num = (unsigned)q;
            if (q < fe->o.pairs)
                return -ERANGE;
        }
    }
    if ((rc = fe_request(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0)) < 0)
        return rc;
    if (fe->proto & (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ)) {
        if (fe->backend[0] >= 0)
            close(fe->backend[0]);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fe->backend) < 0)
            return -errno;
        rc = fe_request(fe, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &fe->backend[1], 1);
        close(fe->backend[1]);
        fe->backend[1] = -1;
        if (rc < 0)
            return rc;
    }
    fe->features = (fe->o.features & fe->offered) | (fe->offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
    if ((rc = fe_request(fe, VHOST_USER_SET_FEATURES, &fe->features, 8, NULL, 0)) < 0)
        return rc;
    struct vhost_user_mem_table t = {.nregions = 2};
    int fds[2];
    for (int i = 0; i < 2; i++) {
        t.regions[i] = (struct vhost_user_region){fe->reg[i].gpa, fe->reg[i].size,
                                                  (uint64_t)(uintptr_t)fe->reg[i].va, 0};
        fds[i] = fe->reg[i].fd;
    }
    return fe_request(fe, VHOST_USER_SET_MEM_TABLE, &t, 8 + 2 * sizeof(struct vhost_user_region), fds, 2);
}

int vfe_fe_raw(struct vfe_fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
               const int *fds, unsigned nfds, void *reply, size_t cap, int timeout_ms)
{
    int rc = fe_send(fe->sock, req, flags, payload, size, fds, nfds);
    if (rc < 0)
        return -EPIPE;
    return fe_read_reply(fe, req, reply, cap, timeout_ms);
}

unsigned vfe_fe_backend_msgs(struct vfe_fe *fe, uint32_t request)
{
    fe_serve_backend(fe);
    return request < 8 ? fe->backend_counts[request] : 0;
}
