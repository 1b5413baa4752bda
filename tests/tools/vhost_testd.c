/*
 * vfe-vhost-testd: a vhost-user back-end built on lib/vhost with a recording
 * glue and no device.  It prints every glue event as one JSON line on stdout,
 * answers GET_VRING_BASE with the base the ring was given, and can hand its
 * live session to another process (HA test):
 *
 *   vfe-vhost-testd --socket PATH [--client] [--pairs N] [--handoff HSOCK]
 *   vfe-vhost-testd --socket PATH --adopt HSOCK
 *
 * With --handoff, SIGUSR1 snapshots the session, sends it with its fds to the
 * process waiting on HSOCK (--adopt) and exits; the adopter continues the same
 * connection.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "lib/log/vfe_log.h"
#include "lib/vhost/vhost.h"

#define MAX_FDS 253

static struct vhost_dev *dev;
static const char *handoff_path;

static void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void g_connected(void *c, struct vhost_dev *d) { event("{\"ev\":\"connected\"}"); }
static void g_disconnected(void *c, struct vhost_dev *d) { event("{\"ev\":\"disconnected\"}"); }
static int g_features(void *c, uint64_t f) { event("{\"ev\":\"features\",\"features\":%llu}", (unsigned long long)f); return 0; }
static int g_mem(void *c, const struct vhost_region *r, unsigned n)
{
    printf("{\"ev\":\"mem\",\"regions\":[");
    for (unsigned i = 0; i < n; i++)
        printf("%s{\"gpa\":%llu,\"size\":%llu}", i ? "," : "", (unsigned long long)r[i].gpa,
               (unsigned long long)r[i].size);
    event("]}");
    return 0;
}
static int g_start(void *c, uint16_t i, const struct vhost_ring *r)
{
    event("{\"ev\":\"ring_start\",\"ring\":%u,\"num\":%u,\"base\":%u,\"desc\":%llu,\"avail\":%llu,\"used\":%llu}", i,
          r->num, r->base, (unsigned long long)r->desc, (unsigned long long)r->avail, (unsigned long long)r->used);
    return 0;
}
static void g_stop(void *c, uint16_t i) { event("{\"ev\":\"ring_stop\",\"ring\":%u}", i); }
static void g_base(void *c, uint16_t i, struct vhost_pending p)
{
    uint16_t base = vhost_get_ring(p.dev, i)->base;
    event("{\"ev\":\"get_base\",\"ring\":%u,\"base\":%u}", i, base);
    vhost_ring_base_done(p, base);
}
static int g_log(void *c, int fd, uint64_t off, uint64_t size, uint8_t *base)
{
    event("{\"ev\":\"log\",\"size\":%llu}", (unsigned long long)size);
    return 0;
}
static int g_status(void *c, uint8_t s) { event("{\"ev\":\"status\",\"status\":%u}", s); return 0; }
static void g_reset(void *c) { event("{\"ev\":\"reset\"}"); }
static void g_rarp(void *c, const uint8_t m[6]) { event("{\"ev\":\"rarp\"}"); }

static const struct vhost_ops ops = {
    .connected = g_connected, .disconnected = g_disconnected, .features = g_features, .mem_table = g_mem,
    .ring_start = g_start, .ring_stop = g_stop, .get_ring_base = g_base, .log_base = g_log,
    .status = g_status, .reset = g_reset, .rarp = g_rarp,
};

static int unix_sock(const char *path, bool listen_on)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (listen_on) {
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
            return -1;
    } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        return -1;
    }
    return fd;
}

static void handoff(struct ev_loop *loop, ev_signal *w, int revents)
{
    static uint8_t blob[65536];
    size_t len;
    int fds[MAX_FDS];
    unsigned nfds;
    int rc = vhost_snapshot(dev, blob, sizeof(blob), &len, fds, MAX_FDS, &nfds);
    int s = rc == 0 ? unix_sock(handoff_path, false) : -1;
    if (s < 0) {
        event("{\"ev\":\"handoff_failed\",\"err\":%d}", rc);
        return;
    }
    uint32_t hdr[2] = {(uint32_t)len, nfds};
    char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {blob, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE(sizeof(int) * nfds)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    bool ok = sendmsg(s, &mh, 0) == (ssize_t)(sizeof(hdr) + len);
    event("{\"ev\":\"handoff\",\"ok\":%s,\"fds\":%u}", ok ? "true" : "false", nfds);
    /* exit without closing the session: the adopter owns it now */
    _exit(ok ? 0 : 1);
}

static struct vhost_dev *adopt(struct ev_loop *loop, const struct vhost_cfg *cfg, const char *path)
{
    int l = unix_sock(path, true);
    event("{\"ev\":\"adopt_waiting\"}");
    int s = l >= 0 ? accept(l, NULL, NULL) : -1;
    if (s < 0)
        return NULL;
    static uint8_t blob[65536 + 8];
    char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct iovec iov = {blob, sizeof(blob)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(s, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    uint32_t hdr[2];
    if (n < 8 || !c)
        return NULL;
    memcpy(hdr, blob, 8);
    unsigned nfds = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    if (hdr[0] != (size_t)n - 8 || hdr[1] != nfds)
        return NULL;
    int err;
    struct vhost_dev *d = vhost_dev_restore(loop, cfg, blob + 8, hdr[0], (int *)CMSG_DATA(c), nfds, &err);
    event("{\"ev\":\"adopted\",\"ok\":%s}", d ? "true" : "false");
    /* restore runs no callback: this glue takes the running rings over from the accessors */
    for (uint16_t i = 0; d && i < 2u * cfg->queue_pairs; i++) {
        const struct vhost_ring *r = vhost_get_ring(d, i);
        if (r->started)
            g_start(NULL, i, r);
    }
    if (d)
        vhost_dev_resume(d);
    close(s);
    close(l);
    unlink(path);
    return d;
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"client", no_argument, NULL, 'c'},
        {"pairs", required_argument, NULL, 'p'},  {"handoff", required_argument, NULL, 'H'},
        {"adopt", required_argument, NULL, 'A'},  {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    struct vhost_cfg cfg = {.queue_pairs = 1, .ops = &ops, .name = "testd",
                            .features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF |
                                        1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_MQ |
                                        1ull << VIRTIO_NET_F_STATUS | 1ull << VIRTIO_RING_F_EVENT_IDX};
    const char *adopt_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': cfg.path = optarg; break;
        case 'c': cfg.client = true; break;
        case 'p': cfg.queue_pairs = (uint16_t)atoi(optarg); break;
        case 'H': handoff_path = optarg; break;
        case 'A': adopt_path = optarg; break;
        default:
            fprintf(stderr, "usage: vfe-vhost-testd --socket PATH [--client] [--pairs N] [--handoff S | --adopt S]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!cfg.path)
        return 2;
    vfe_log_set_ident("vfe-vhost-testd");
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = EV_DEFAULT;
    int err = 0;
    dev = adopt_path ? adopt(loop, &cfg, adopt_path) : vhost_dev_create(loop, &cfg, &err);
    if (!dev) {
        fprintf(stderr, "vfe-vhost-testd: %s\n", strerror(-err));
        return 1;
    }
    event("{\"ev\":\"ready\"}");
    ev_signal sterm, susr;
    ev_signal_init(&sterm, on_term, SIGTERM);
    ev_signal_start(loop, &sterm);
    if (handoff_path) {
        ev_signal_init(&susr, handoff, SIGUSR1);
        ev_signal_start(loop, &susr);
    }
    ev_run(loop, 0);
    vhost_dev_destroy(dev);
    return 0;
}
