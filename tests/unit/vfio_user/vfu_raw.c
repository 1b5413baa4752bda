#include "tests/unit/vfio_user/vfu_raw.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/vfio_user/vfu_sock.h"

static uint16_t next_id = 100;

int raw_connect(const char *path)
{
    int s = vfu_sock_connect(path, false);
    return s < 0 ? -1 : s;
}

int raw_call(int sock, uint16_t cmd, const void *p, size_t len, const int *fds, unsigned nfds,
             struct vfu_msg *rep, int timeout_ms)
{
    uint16_t id = next_id++;
    int rc = vfu_msg_send_simple(sock, id, cmd, VFU_F_TYPE_CMD, 0, p, len, fds, nfds, 1000);
    if (rc < 0)
        return rc == -EPIPE ? -ECONNRESET : rc;
    struct vfu_reader r;
    vfu_reader_init(&r);
    rc = vfu_msg_recv(&r, sock, rep, timeout_ms);
    vfu_reader_reset(&r);
    if (rc == VFU_RD_MSG) {
        if (rep->hdr.msg_id != id || rep->hdr.cmd != cmd ||
            (rep->hdr.flags & VFU_F_TYPE_MASK) != VFU_F_TYPE_REPLY) {
            vfu_msg_free(rep);
            return -EPROTO;
        }
        return 0;
    }
    return rc;
}

int raw_status(int sock, uint16_t cmd, const void *p, size_t len, const int *fds, unsigned nfds)
{
    struct vfu_msg m;
    int rc = raw_call(sock, cmd, p, len, fds, nfds, &m, 2000);
    if (rc < 0)
        return rc;
    rc = (m.hdr.flags & VFU_F_ERROR) ? (int)m.hdr.error : 0;
    vfu_msg_free(&m);
    return rc;
}

int raw_version(int sock)
{
    struct vfu_caps c;
    vfu_caps_ours(&c);
    size_t len;
    void *p = vfu_version_build(&c, &len);
    int rc = raw_status(sock, VFU_CMD_VERSION, p, len, NULL, 0);
    free(p);
    return rc;
}

int raw_send_bytes(int sock, const void *p, size_t len, const int *fds, unsigned nfds)
{
    char ctl[CMSG_SPACE(sizeof(int) * 128)];
    memset(ctl, 0, sizeof(ctl));
    struct iovec iov = { (void *)p, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        if (nfds > 128)
            return -EINVAL;
        mh.msg_control = ctl;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

int raw_wait_closed(int sock, int timeout_ms)
{
    for (;;) {
        struct pollfd p = { .fd = sock, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) <= 0)
            return -1;
        char buf[256];
        ssize_t n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 0;
        if (n < 0 && errno != EAGAIN)
            return -1;
    }
}

int raw_region_read(int sock, uint32_t region, uint64_t off, void *buf, uint32_t count)
{
    struct vfu_region_access a = { .offset = off, .region = region, .count = count };
    struct vfu_msg m;
    int rc = raw_call(sock, VFU_CMD_REGION_READ, &a, sizeof(a), NULL, 0, &m, 2000);
    if (rc < 0)
        return rc;
    if (m.hdr.flags & VFU_F_ERROR) {
        rc = (int)m.hdr.error;
    } else if (m.len != sizeof(a) + count) {
        rc = -EPROTO;
    } else {
        memcpy(buf, m.payload + sizeof(a), count);
        rc = 0;
    }
    vfu_msg_free(&m);
    return rc;
}

int raw_connect_version(const char *path)
{
    /* The server may still be tearing down the previous client: retry briefly. */
    for (int i = 0; i < 100; i++) {
        int s = raw_connect(path);
        if (s >= 0 && raw_version(s) == 0)
            return s;
        if (s >= 0)
            close(s);
        usleep(10000);
    }
    return -1;
}
