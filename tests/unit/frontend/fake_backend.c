#include "tests/unit/frontend/fake_backend.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* wire format, from the vhost-user spec */
struct hdr {
    uint32_t request, flags, size;
} __attribute__((packed));

#define F_REPLY (1u << 2)
#define F_NEED_REPLY (1u << 3)

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void reply(int fd, uint32_t req, const void *p, uint32_t size)
{
    struct hdr h = {req, 1u | F_REPLY, size};
    uint8_t buf[64];
    if (size > sizeof(buf) - sizeof(h))
        return;
    memcpy(buf, &h, sizeof(h));
    if (size)                        /* p is NULL for a reply without payload */
        memcpy(buf + sizeof(h), p, size);
    if (send(fd, buf, sizeof(h) + size, MSG_NOSIGNAL) < 0)
        return;
}

static void reply_u64(int fd, uint32_t req, uint64_t v)
{
    reply(fd, req, &v, sizeof(v));
}

/* One whole message; false on EOF or error. */
static bool read_msg(struct fake_backend *f, struct fake_msg *m, int *fds)
{
    struct hdr h;
    struct iovec iov = {&h, sizeof(h)};
    char cbuf[CMSG_SPACE(8 * sizeof(int))];
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    if (recvmsg(f->sock, &mh, MSG_WAITALL) != sizeof(h))
        return false;
    memset(m, 0, sizeof(*m));
    m->request = h.request;
    m->flags = h.flags;
    m->size = h.size;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_type == SCM_RIGHTS) {
            m->nfds = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds, CMSG_DATA(c), m->nfds * sizeof(int));
        }
    uint8_t body[4096];
    if (h.size > sizeof(body) || (h.size && recv(f->sock, body, h.size, MSG_WAITALL) != (ssize_t)h.size))
        return false;
    memcpy(m->payload, body, h.size < sizeof(m->payload) ? h.size : sizeof(m->payload));
    return true;
}

static void answer(struct fake_backend *f, const struct fake_msg *m, int *fds)
{
    uint32_t r = m->request;
    if (r == f->silent_request)
        return;
    if (r == f->bad_reply_request) {
        reply_u64(f->sock, r + 100, 0);
        return;
    }
    bool has_reply = true;
    uint64_t u;
    switch (r) {
    case 1: reply_u64(f->sock, r, f->features); break;
    case 15: reply_u64(f->sock, r, f->protocol_features); break;
    case 17: reply_u64(f->sock, r, f->queue_num ? f->queue_num : 4); break;
    case 36: reply_u64(f->sock, r, 8); break;
    case 40: reply_u64(f->sock, r, f->status); break;
    case 11: {
        uint32_t st[2];
        memcpy(st, m->payload, 8);
        st[1] = 40 + st[0];
        reply(f->sock, r, st, 8);
        break;
    }
    case 6: reply(f->sock, r, NULL, 0); break;   /* as DPDK does: no payload */
    default: has_reply = false;
    }
    if (r == 39) {
        memcpy(&u, m->payload, 8);
        f->status = u;
    }
    if (r == 21 && m->nfds == 1) {
        if (f->backend_fd >= 0)
            close(f->backend_fd);
        f->backend_fd = fds[0];
        fds[0] = -1;
    }
    if (!has_reply && (m->flags & F_NEED_REPLY))
        reply_u64(f->sock, r, r == f->nack_request ? 1 : 0);
}

static void *run(void *arg)
{
    struct fake_backend *f = arg;
    while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
        int fd = f->sock >= 0 ? f->sock : f->lsock;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        if (f->sock < 0) {
            f->sock = accept(f->lsock, NULL, NULL);
            continue;
        }
        struct fake_msg m;
        int fds[8];
        if (!read_msg(f, &m, fds)) {
            close(f->sock);
            f->sock = -1;
            continue;
        }
        pthread_mutex_lock(&f->lock);
        if (f->nmsgs < FAKE_MAX_MSGS)
            f->msgs[f->nmsgs++] = m;
        pthread_mutex_unlock(&f->lock);
        if (m.request > 40 && f->close_on_unknown) {
            close(f->sock);
            f->sock = -1;
        } else {
            answer(f, &m, fds);
        }
        for (unsigned i = 0; i < m.nfds; i++)
            if (fds[i] >= 0)
                close(fds[i]);
    }
    return NULL;
}

int fake_start(struct fake_backend *f, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(f->path, sizeof(f->path), "%s", path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    f->sock = f->backend_fd = -1;
    f->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (f->lsock < 0 || bind(f->lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(f->lsock, 4) < 0)
        return -errno;
    pthread_mutex_init(&f->lock, NULL);
    return -pthread_create(&f->thread, NULL, run, f);
}

void fake_stop(struct fake_backend *f)
{
    __atomic_store_n(&f->stop, true, __ATOMIC_RELEASE);
    pthread_join(f->thread, NULL);
    if (f->sock >= 0)
        close(f->sock);
    if (f->backend_fd >= 0)
        close(f->backend_fd);
    close(f->lsock);
    unlink(f->path);
    pthread_mutex_destroy(&f->lock);
}

unsigned fake_wait(struct fake_backend *f, unsigned n, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    unsigned have;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        have = f->nmsgs;
        pthread_mutex_unlock(&f->lock);
        if (have >= n || now_ms() >= end)
            return have;
        usleep(2000);
    }
}

bool fake_msg(struct fake_backend *f, unsigned i, struct fake_msg *m)
{
    pthread_mutex_lock(&f->lock);
    bool ok = i < f->nmsgs;
    if (ok)
        *m = f->msgs[i];
    pthread_mutex_unlock(&f->lock);
    return ok;
}

int fake_find(struct fake_backend *f, uint32_t req, unsigned from)
{
    struct fake_msg m;
    for (unsigned i = from; fake_msg(f, i, &m); i++)
        if (m.request == req)
            return (int)i;
    return -1;
}
