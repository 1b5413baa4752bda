/* vhost-user message framing: header, payload and fds off a non-blocking socket. */
#include "lib/vhost/vhost_priv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "lib/sock/vfe_fd_pass.h"

void vhost_msg_release_fds(struct vhost_msg *m)
{
    for (unsigned i = 0; i < m->nfds; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    m->nfds = 0;
}

/* Keep fds that arrived with this piece; close any beyond the limit. */
static void take_fds(struct vhost_msg *m, struct msghdr *mh)
{
    m->nfds += vfe_fds_take(mh, m->fds + m->nfds, VHOST_USER_MAX_FDS - m->nfds, NULL);
}

int vhost_msg_read(struct vhost_dev *d)
{
    struct vhost_msg *m = &d->in;
    for (;;) {
        size_t want = d->in_got < VHOST_USER_HDR_SIZE ? VHOST_USER_HDR_SIZE : VHOST_USER_HDR_SIZE + m->hdr.size;
        if (d->in_got == want)
            return 1;
        uint8_t *dst = d->in_got < VHOST_USER_HDR_SIZE ? (uint8_t *)&m->hdr + d->in_got
                                                         : m->payload + (d->in_got - VHOST_USER_HDR_SIZE);
        struct iovec iov = {dst, want - d->in_got};
        union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)]; } cm;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                            .msg_controllen = sizeof(cm.buf)};
        ssize_t n = recvmsg(d->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n <= 0)
            return -1;
        take_fds(m, &mh);
        if (mh.msg_flags & MSG_CTRUNC)
            LOG_W("vhost-user %s: control data truncated (fds lost)", d->name);
        d->in_got += (size_t)n;
        if (d->in_got == VHOST_USER_HDR_SIZE && m->hdr.size > VHOST_USER_MAX_PAYLOAD) {
            LOG_W("vhost-user %s: request %u with a %u-byte payload (max %u)", d->name, m->hdr.request,
                  m->hdr.size, VHOST_USER_MAX_PAYLOAD);
            return -1;
        }
    }
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
