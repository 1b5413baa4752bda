/*
 * libFuzzer target: arbitrary bytes as a stream of vhost-user front-end
 * messages through lib/vhost's checks and handlers.  Each message's first
 * byte (taken out of the stream) says how many fds (memfds) travel with it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "lib/vhost/vhost_priv.h"

static int g_start(void *c, uint16_t i, const struct vhost_ring *r) { return 0; }
static int g_mem(void *c, const struct vhost_region *r, unsigned n) { return 0; }
static const struct vhost_ops ops = {.ring_start = g_start, .mem_table = g_mem};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_loop *loop;
    static int memfd = -1;
    if (!loop) {
        loop = ev_loop_new(0);
        vfe_log_set_level(0);
        memfd = memfd_create("fuzz", MFD_CLOEXEC);
        if (ftruncate(memfd, 1 << 20) < 0)
            abort();
    }
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
        return 0;
    struct vhost_cfg cfg = {.path = "/nonexistent/fuzz", .features = 1ull << 32, .queue_pairs = 2, .ops = &ops,
                            .name = "fuzz"};
    int err;
    struct vhost_dev *d = vhost_dev_new(loop, &cfg, &err);
    if (!d) {
        close(sp[0]);
        close(sp[1]);
        return 0;
    }
    vhost_conn_attach(d, sp[0]);
    size_t off = 0;
    while (off + 1 + VHOST_USER_HDR_SIZE <= size && d->fd >= 0) {
        unsigned nfds = data[off++] % 4;
        struct vhost_msg *m = &d->in;
        memcpy(&m->hdr, data + off, VHOST_USER_HDR_SIZE);
        off += VHOST_USER_HDR_SIZE;
        if (m->hdr.size > VHOST_USER_MAX_PAYLOAD || m->hdr.size > size - off)
            break;
        memcpy(m->payload, data + off, m->hdr.size);
        off += m->hdr.size;
        m->nfds = 0;
        for (unsigned i = 0; i < nfds; i++)
            m->fds[m->nfds++] = dup(memfd);
        int rc = vhost_session_handle(d);
        vhost_msg_release_fds(m);
        if (d->paused)
            vhost_ring_base_done((struct vhost_pending){d, 0, d->serial}, 0);
        char sink[4096];
        while (read(sp[1], sink, sizeof(sink)) > 0)
            ;
        if (rc < 0)
            break;
    }
    vhost_dev_destroy(d);
    close(sp[1]);
    return 0;
}
