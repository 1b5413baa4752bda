/* vfio-user message framing: send/receive with SCM_RIGHTS, strict validation. */
#include "lib/vfio_user/vfu_msg.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "lib/sock/vfe_fd_pass.h"

void vfu_msg_close_fds(struct vfu_msg *m)
{
    for (unsigned i = 0; i < m->nfds; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    m->nfds = 0;
}

void vfu_msg_free(struct vfu_msg *m)
{
    vfu_msg_close_fds(m);
    free(m->payload);
    m->payload = NULL;
    m->len = 0;
}

int vfu_msg_take_fd(struct vfu_msg *m, unsigned i)
{
    if (i >= m->nfds)
        return -1;
    int fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Wait for `events` on sock until deadline (< 0: forever).  0, -ETIMEDOUT or -errno. */
static int wait_sock(int sock, short events, long deadline)
{
    for (;;) {
        int tmo = -1;
        if (deadline >= 0) {
            long left = deadline - now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            tmo = (int)left;
        }
        struct pollfd p = { .fd = sock, .events = events };
        int r = poll(&p, 1, tmo);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -ETIMEDOUT;
        return 0;   /* readable/writable, or an error the next syscall reports */
    }
}

int vfu_msg_send(int sock, struct vfu_hdr *hdr, const struct iovec *iov, unsigned niov,
                 const int *fds, unsigned nfds, int timeout_ms)
{
    if (nfds > VFU_MAX_MSG_FDS || niov > 8)
        return -EINVAL;
    size_t total = sizeof(*hdr);
    for (unsigned i = 0; i < niov; i++)
        total += iov[i].iov_len;
    if (total > VFU_MAX_MSG_SIZE)
        return -EMSGSIZE;
    hdr->size = (uint32_t)total;

    struct iovec v[9];
    v[0].iov_base = hdr;
    v[0].iov_len = sizeof(*hdr);
    for (unsigned i = 0; i < niov; i++)
        v[i + 1] = iov[i];
    unsigned nv = niov + 1, first = 0;

    VFE_FDS_CTL(ctl, VFU_MAX_MSG_FDS);
    bool fds_sent = nfds == 0;
    long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    size_t sent = 0;

    while (sent < total) {
        struct msghdr mh = { .msg_iov = &v[first], .msg_iovlen = nv - first };
        if (!fds_sent)
            vfe_fds_attach(&mh, ctl.buf, sizeof(ctl.buf), fds, nfds);
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int r = wait_sock(sock, POLLOUT, deadline);
                if (r < 0)
                    return r;
                continue;
            }
            return -errno;
        }
        fds_sent = true;
        sent += (size_t)n;
        /* advance the iovecs past n bytes */
        size_t adv = (size_t)n;
        while (first < nv && adv >= v[first].iov_len) {
            adv -= v[first].iov_len;
            first++;
        }
        if (first < nv && adv) {
            v[first].iov_base = (uint8_t *)v[first].iov_base + adv;
            v[first].iov_len -= adv;
        }
    }
    return 0;
}

int vfu_msg_send_simple(int sock, uint16_t msg_id, uint16_t cmd, uint32_t flags, uint32_t error,
                        const void *payload, size_t len, const int *fds, unsigned nfds, int timeout_ms)
{
    struct vfu_hdr h = { .msg_id = msg_id, .cmd = cmd, .flags = flags, .error = error };
    struct iovec iov = { .iov_base = (void *)payload, .iov_len = len };
    return vfu_msg_send(sock, &h, &iov, len ? 1 : 0, fds, nfds, timeout_ms);
}

void vfu_reader_init(struct vfu_reader *r)
{
    memset(r, 0, sizeof(*r));
    r->max_size = VFU_MAX_MSG_SIZE;
    r->max_fds = VFU_MAX_MSG_FDS;
}

void vfu_reader_reset(struct vfu_reader *r)
{
    vfu_msg_free(&r->msg);
    memset(&r->msg, 0, sizeof(r->msg));
    r->have = 0;
}

/* Keep received fds up to the limit, close the rest and remember that. */
static void collect_fds(struct vfu_reader *r, struct msghdr *mh)
{
    unsigned limit = r->max_fds < VFU_MAX_MSG_FDS ? r->max_fds : VFU_MAX_MSG_FDS;
    unsigned dropped = 0;
    r->msg.nfds += vfe_fds_take(mh, r->msg.fds + r->msg.nfds, limit > r->msg.nfds ? limit - r->msg.nfds : 0,
                                &dropped);
    if (dropped)
        r->msg.fds_dropped = true;
    if (mh->msg_flags & MSG_CTRUNC)
        r->msg.fds_dropped = true;   /* the kernel discarded the ones that did not fit */
}

int vfu_reader_feed(struct vfu_reader *r, int sock, struct vfu_msg *out)
{
    const size_t hsz = sizeof(struct vfu_hdr);
    for (;;) {
        uint8_t *dst;
        size_t want;
        if (r->have < hsz) {
            dst = r->hdr_buf + r->have;
            want = hsz - r->have;
        } else {
            size_t total = r->msg.hdr.size;
            if (r->have == total)
                goto done;
            dst = r->msg.payload + (r->have - hsz);
            want = total - r->have;
        }

        union {
            char buf[CMSG_SPACE(sizeof(int) * VFU_RECV_FDS_SPACE)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { .iov_base = dst, .iov_len = want };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
        ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        collect_fds(r, &mh);
        if (n == 0)
            return r->have == 0 && r->msg.nfds == 0 ? -ECONNRESET : -EPROTO;
        r->have += (size_t)n;

        if (r->have == hsz && !r->msg.payload) {
            memcpy(&r->msg.hdr, r->hdr_buf, hsz);
            uint32_t size = r->msg.hdr.size;
            if (size < hsz || size > r->max_size)
                return -EMSGSIZE;
            r->msg.len = size - hsz;
            if (r->msg.len) {
                r->msg.payload = malloc(r->msg.len);
                if (!r->msg.payload)
                    return -ENOMEM;
            } else {
                goto done;
            }
        }
        if (r->have >= hsz && r->have == r->msg.hdr.size)
            goto done;
    }
done:
    *out = r->msg;
    memset(&r->msg, 0, sizeof(r->msg));
    r->have = 0;
    return VFU_RD_MSG;
}

int vfu_msg_recv(struct vfu_reader *r, int sock, struct vfu_msg *out, int timeout_ms)
{
    long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int rc = vfu_reader_feed(r, sock, out);
        if (rc != 0)
            return rc;
        rc = wait_sock(sock, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

/* Peek up to len bytes (fds that come are closed: the read collects them). */
static ssize_t peek_bytes(int sock, void *buf, size_t len)
{
    VFE_FDS_CTL(ctl, VFU_MAX_MSG_FDS);
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        vfe_fds_take(&mh, NULL, 0, NULL);
    return n < 0 ? -errno : n;
}

/* Wait until the socket holds at least len bytes (peeked into buf). */
static int wait_bytes(int sock, void *buf, size_t len, long deadline)
{
    for (;;) {
        ssize_t n = peek_bytes(sock, buf, len);
        if (n == (ssize_t)len)
            return 0;
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && n != -EAGAIN)
            return (int)n;
        if (deadline >= 0 && now_ms() >= deadline)
            return -ETIMEDOUT;
        if (n > 0)
            usleep(100);   /* part of it is there: readable already, poll would not wait */
        else if (wait_sock(sock, POLLIN, deadline) < 0)
            return -ETIMEDOUT;
    }
}

int vfu_msg_recv_whole(struct vfu_reader *r, int sock, struct vfu_msg *out, int timeout_ms)
{
    if (r->have)
        return vfu_msg_recv(r, sock, out, timeout_ms);
    long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    const size_t hsz = sizeof(struct vfu_hdr);
    struct vfu_hdr h;
    int rc = wait_bytes(sock, &h, hsz, deadline);
    if (rc < 0)
        return rc;
    if (h.size < hsz || h.size > r->max_size)
        return -EMSGSIZE;
    struct vfu_msg m;
    memset(&m, 0, sizeof(m));
    m.len = h.size - hsz;
    uint8_t *whole = malloc(h.size);
    if (!whole)
        return -ENOMEM;
    if ((rc = wait_bytes(sock, whole, h.size, deadline)) < 0) {
        free(whole);
        return rc;
    }
    /* all of it is there: one read takes it (more only where a piece carrying fds ends early) */
    size_t got = 0;
    while (got < h.size) {
        VFE_FDS_CTL(ctl, VFU_MAX_MSG_FDS);
        struct iovec iov = { .iov_base = whole + got, .iov_len = h.size - got };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                             .msg_controllen = sizeof(ctl.buf) };
        ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            vfu_msg_close_fds(&m);
            free(whole);
            return n < 0 ? -errno : -EPROTO;
        }
        unsigned limit = r->max_fds < VFU_MAX_MSG_FDS ? r->max_fds : VFU_MAX_MSG_FDS, dropped = 0;
        m.nfds += vfe_fds_take(&mh, m.fds + m.nfds, limit > m.nfds ? limit - m.nfds : 0, &dropped);
        if (dropped || (mh.msg_flags & MSG_CTRUNC))
            m.fds_dropped = true;
        got += (size_t)n;
    }
    memcpy(&m.hdr, whole, hsz);
    if (m.len) {
        m.payload = malloc(m.len);
        if (!m.payload) {
            vfu_msg_close_fds(&m);
            free(whole);
            return -ENOMEM;
        }
        memcpy(m.payload, whole + hsz, m.len);
    }
    free(whole);
    *out = m;
    return VFU_RD_MSG;
}

const char *vfu_cmd_name(uint16_t cmd)
{
    switch (cmd) {
    case VFU_CMD_VERSION: return "VERSION";
    case VFU_CMD_DMA_MAP: return "DMA_MAP";
    case VFU_CMD_DMA_UNMAP: return "DMA_UNMAP";
    case VFU_CMD_DEVICE_GET_INFO: return "DEVICE_GET_INFO";
    case VFU_CMD_DEVICE_GET_REGION_INFO: return "DEVICE_GET_REGION_INFO";
    case VFU_CMD_DEVICE_GET_REGION_IO_FDS: return "DEVICE_GET_REGION_IO_FDS";
    case VFU_CMD_DEVICE_GET_IRQ_INFO: return "DEVICE_GET_IRQ_INFO";
    case VFU_CMD_DEVICE_SET_IRQS: return "DEVICE_SET_IRQS";
    case VFU_CMD_REGION_READ: return "REGION_READ";
    case VFU_CMD_REGION_WRITE: return "REGION_WRITE";
    case VFU_CMD_DMA_READ: return "DMA_READ";
    case VFU_CMD_DMA_WRITE: return "DMA_WRITE";
    case VFU_CMD_DEVICE_RESET: return "DEVICE_RESET";
    case VFU_CMD_VFE_IOEVENTFD: return "VFE_IOEVENTFD";
    default: return "unknown";
    }
}
