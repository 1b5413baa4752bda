/* vhost-user message framing: header, payload and fds off a non-blocking socket. */
#include "lib/vhost/vhost_priv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>

#include "lib/log/vfe_log.h"
#include "lib/sock/vfe_fd_pass.h"

void vhost_msg_release_fds(struct vhost_msg *m)
{
    for (unsigned i = 0; i < m->nfds; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    m->nfds = 0;
}

/* Peek up to len bytes at the head of the socket into buf.  With fds, the
 * fds that come are stored there (up to VHOST_USER_MAX_FDS; *nfds), else
 * closed.  -errno, or 0 on close. */
static ssize_t peek(int fd, void *buf, size_t len, int *fds, unsigned *nfds)
{
    VFE_FDS_CTL(cm, VHOST_USER_MAX_FDS);
    struct iovec iov = {buf, len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    unsigned got = vfe_fds_take(&mh, fds, fds ? VHOST_USER_MAX_FDS : 0, NULL);
    if (nfds)
        *nfds = got;
    return n;
}

/* The fds a request says it carries; -1 where its payload does not say.  A
 * peek returns a message's own fds when it carries some, but may return the
 * next message's when it carries none: only this count tells them apart. */
static int fds_said(const struct vhost_user_hdr *h, const uint8_t *payload)
{
    uint64_t v = 0;
    if (h->size >= 8)
        memcpy(&v, payload, 8);
    switch (h->request) {
    case VHOST_USER_SET_MEM_TABLE:
        return (uint32_t)v > VHOST_USER_MAX_FDS ? (int)VHOST_USER_MAX_FDS : (int)(uint32_t)v;
    case VHOST_USER_ADD_MEM_REG:
    case VHOST_USER_SET_LOG_BASE:
    case VHOST_USER_SET_LOG_FD:
    case VHOST_USER_SET_BACKEND_REQ_FD:
        return 1;
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        return (v & VHOST_USER_VRING_NOFD) ? 0 : 1;
    case VHOST_USER_REM_MEM_REG:
        return -1;   /* an fd may come or not; the region is found by its range */
    default:
        return 0;
    }
}

static void close_all(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* A message is read without being taken off the socket (peek): its bytes,
 * and its fds where it says it carries some.  vhost_msg_consume() takes it
 * off once it is deposited (HA), so a process killed at any point leaves it
 * either on the socket or in its successor's deposit, never half read. */
int vhost_msg_read(struct vhost_dev *d)
{
    struct vhost_msg *m = &d->in;
    uint8_t whole[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
    d->in_got = 0;
    d->in_consumed = false;
    ssize_t n = peek(d->fd, whole, VHOST_USER_HDR_SIZE, NULL, NULL);
    if (n == -EAGAIN)
        return 0;
    if (n <= 0)
        return -1;
    if ((size_t)n < VHOST_USER_HDR_SIZE)
        return 2;
    struct vhost_user_hdr h;
    memcpy(&h, whole, sizeof(h));
    if (h.size > VHOST_USER_MAX_PAYLOAD) {
        LOG_W("vhost-user %s: request %u with a %u-byte payload (max %u)", d->name, h.request, h.size,
              VHOST_USER_MAX_PAYLOAD);
        return -1;
    }
    size_t want = VHOST_USER_HDR_SIZE + h.size;
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds = 0;
    if ((n = peek(d->fd, whole, want, fds, &nfds)) < 0 && n != -EAGAIN) {
        return -1;
    }
    if (n < (ssize_t)want) {
        close_all(fds, nfds);
        return 2;
    }
    memcpy(&m->hdr, whole, VHOST_USER_HDR_SIZE);
    memcpy(m->payload, whole + VHOST_USER_HDR_SIZE, h.size);
    int said = fds_said(&h, m->payload);
    if (said <= 0) {   /* none of them is this message's */
        close_all(fds, nfds);
        nfds = 0;
    }
    memcpy(m->fds, fds, sizeof(int) * nfds);
    m->nfds = nfds;
    d->in_got = want;
    return 1;
}

/* Take the message in d->in off the socket: one read (more only where a piece
 * carrying fds ends early).  The fds it brings replace the peeked copies (the
 * same open files); drop: close them instead (a message handled already). */
static int consume(struct vhost_dev *d, bool drop)
{
    struct vhost_msg *m = &d->in;
    size_t want = VHOST_USER_HDR_SIZE + m->hdr.size, got = 0;
    uint8_t sink[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds = 0;
    while (got < want) {
        struct iovec iov = {sink + got, want - got};
        VFE_FDS_CTL(cm, VHOST_USER_MAX_FDS);
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                            .msg_controllen = sizeof(cm.buf)};
        ssize_t r = recvmsg(d->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close_all(fds, nfds);
            return r < 0 ? -errno : -ECONNRESET;
        }
        nfds += vfe_fds_take(&mh, fds + nfds, VHOST_USER_MAX_FDS - nfds, NULL);
        if (mh.msg_flags & MSG_CTRUNC)
            LOG_W("vhost-user %s: control data truncated (fds lost)", d->name);
        got += (size_t)r;
    }
    if (drop) {
        close_all(fds, nfds);
    } else {
        vhost_msg_release_fds(m);
        memcpy(m->fds, fds, sizeof(int) * nfds);
        m->nfds = nfds;
    }
    d->in_consumed = true;
    return 0;
}

int vhost_msg_consume(struct vhost_dev *d)
{
    return consume(d, false);
}

bool vhost_msg_at_head(struct vhost_dev *d)
{
    struct vhost_msg *m = &d->in;
    size_t want = VHOST_USER_HDR_SIZE + m->hdr.size;
    uint8_t head[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds = 0;
    ssize_t n = peek(d->fd, head, want, fds, &nfds);
    bool same = n == (ssize_t)want && !memcmp(head, &m->hdr, VHOST_USER_HDR_SIZE) &&
                !memcmp(head + VHOST_USER_HDR_SIZE, m->payload, m->hdr.size);
    int said = same ? fds_said(&m->hdr, m->payload) : 0;
    if (said > 0) {   /* the same open files, not only the same bytes */
        pid_t self = getpid();
        same = nfds == m->nfds;
        for (unsigned i = 0; same && i < nfds; i++)
            same = syscall(SYS_kcmp, self, self, KCMP_FILE, fds[i], m->fds[i]) == 0;
    }
    close_all(fds, nfds);
    if (same)
        return consume(d, true) == 0;
    return false;
}

int vhost_msg_send(int fd, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
                   const int *fds, unsigned nfds)
{
    struct vhost_user_hdr h = {request, flags, size};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, size}};
    VFE_FDS_CTL(cm, VHOST_USER_MAX_FDS);
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
    if (nfds > VHOST_USER_MAX_FDS)
        return -EINVAL;
    vfe_fds_attach(&mh, cm.buf, sizeof(cm.buf), fds, nfds);
    ssize_t n;
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    /* replies are small: a full socket buffer means the peer stopped reading */
    if (n != (ssize_t)(sizeof(h) + size))
        return n < 0 ? -errno : -EIO;
    return 0;
}

/* Payload size and fd count each request must have. */
struct rule {
    bool known;
    uint16_t min, max;       /* payload bytes */
    uint8_t fds_min, fds_max;
};

static const struct rule rules[VHOST_USER_REQUEST_MAX] = {
    [VHOST_USER_GET_FEATURES] = {true, 0, 0, 0, 0},
    [VHOST_USER_SET_FEATURES] = {true, 8, 8, 0, 0},
    [VHOST_USER_SET_OWNER] = {true, 0, 0, 0, 0},
    [VHOST_USER_RESET_OWNER] = {true, 0, 8, 0, 0},
    [VHOST_USER_SET_MEM_TABLE] = {true, 8, sizeof(struct vhost_user_mem_table), 0, 8},
    [VHOST_USER_SET_LOG_BASE] = {true, 16, 16, 1, 1},
    [VHOST_USER_SET_LOG_FD] = {true, 0, 8, 1, 1},
    [VHOST_USER_SET_VRING_NUM] = {true, 8, 8, 0, 0},
    [VHOST_USER_SET_VRING_ADDR] = {true, 40, 40, 0, 0},
    [VHOST_USER_SET_VRING_BASE] = {true, 8, 8, 0, 0},
    [VHOST_USER_GET_VRING_BASE] = {true, 8, 8, 0, 0},
    [VHOST_USER_SET_VRING_KICK] = {true, 8, 8, 0, 1},
    [VHOST_USER_SET_VRING_CALL] = {true, 8, 8, 0, 1},
    [VHOST_USER_SET_VRING_ERR] = {true, 8, 8, 0, 1},
    [VHOST_USER_GET_PROTOCOL_FEATURES] = {true, 0, 0, 0, 0},
    [VHOST_USER_SET_PROTOCOL_FEATURES] = {true, 8, 8, 0, 0},
    [VHOST_USER_GET_QUEUE_NUM] = {true, 0, 0, 0, 0},
    [VHOST_USER_SET_VRING_ENABLE] = {true, 8, 8, 0, 0},
    [VHOST_USER_SEND_RARP] = {true, 8, 8, 0, 0},
    [VHOST_USER_NET_SET_MTU] = {true, 8, 8, 0, 0},
    [VHOST_USER_SET_BACKEND_REQ_FD] = {true, 0, 0, 1, 1},
    [VHOST_USER_RESET_DEVICE] = {true, 0, 0, 0, 0},
    [VHOST_USER_GET_MAX_MEM_SLOTS] = {true, 0, 0, 0, 0},
    [VHOST_USER_ADD_MEM_REG] = {true, 40, 40, 1, 1},
    [VHOST_USER_REM_MEM_REG] = {true, 40, 40, 0, 1},
    [VHOST_USER_SET_STATUS] = {true, 8, 8, 0, 0},
    [VHOST_USER_GET_STATUS] = {true, 0, 0, 0, 0},
};

const char *vhost_msg_check(const struct vhost_msg *m)
{
    static char why[96];
    uint32_t req = m->hdr.request;
    if ((m->hdr.flags & VHOST_USER_FLAG_VERSION) != VHOST_USER_VERSION)
        return "wrong version in flags";
    if (m->hdr.flags & VHOST_USER_FLAG_REPLY)
        return "a reply where a request was expected";
    if (req == 0 || req >= VHOST_USER_REQUEST_MAX || !rules[req].known)
        return NULL;   /* not served: the session refuses it */
    const struct rule *r = &rules[req];
    if (m->hdr.size < r->min || m->hdr.size > r->max) {
        snprintf(why, sizeof(why), "payload of %u bytes (%u..%u)", m->hdr.size, r->min, r->max);
        return why;
    }
    if (m->nfds < r->fds_min || m->nfds > r->fds_max) {
        snprintf(why, sizeof(why), "%u fds (%u..%u)", m->nfds, r->fds_min, r->fds_max);
        return why;
    }
    return NULL;
}
