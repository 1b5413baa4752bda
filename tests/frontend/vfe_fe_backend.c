/* The backend channel (SET_BACKEND_REQ_FD): requests the back-end makes of
 * us are recorded, their fds closed, and answered when they ask for it.  A
 * host notifier is kept mapped and kicks go through it, as QEMU does. */
#include "tests/frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

void fe_backend_close(struct vfe_fe *fe)
{
    if (fe->backend >= 0)
        close(fe->backend);
    fe->backend = -1;
    for (unsigned i = 0; i < FE_RINGS; i++)
        fe_notifier_drop(fe, i);
}

void fe_notifier_drop(struct vfe_fe *fe, unsigned ring)
{
    struct fe_queue *q = &fe->q[ring];
    if (q->notifier)
        munmap((void *)q->notifier, q->notifier_size);
    q->notifier = NULL;
}

/* Map a host notifier (one page, like QEMU's page-per-vq doorbell) or drop one. */
static uint64_t take_notifier(struct vfe_fe *fe, const uint8_t *payload, int size, const int *fds, unsigned nfds)
{
    struct vfe_fe_vring_area a;
    if (size != (int)sizeof(a))
        return 1;
    memcpy(&a, payload, sizeof(a));
    unsigned ring = (unsigned)(a.u64 & 0xff);
    if (ring >= 2 * fe->o.pairs)
        return 1;
    fe_notifier_drop(fe, ring);
    if (a.u64 & VFE_FE_VRING_NOFD)
        return nfds == 0 ? 0 : 1;          /* removal */
    if (nfds != 1 || a.size != 4096 || (a.offset & 4095))
        return 1;
    void *p = mmap(NULL, a.size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], (off_t)a.offset);
    if (p == MAP_FAILED)
        return 1;
    fe->q[ring].notifier = p;
    fe->q[ring].notifier_size = a.size;
    return 0;
}

static void record(struct vfe_fe *fe, const struct vfe_fe_msg_hdr *h, const uint8_t *payload, int size,
                   unsigned nfds)
{
    struct vfe_fe_backend_msg *m = &fe->backend_log[fe->backend_total % FE_BACKEND_LOG];
    memset(m, 0, sizeof(*m));
    m->request = h->request;
    m->flags = h->flags;
    m->size = h->size;
    m->nfds = nfds;
    memcpy(m->payload, payload, size < (int)sizeof(m->payload) ? (size_t)size : sizeof(m->payload));
    fe->backend_total++;
    if (h->request < VFE_FE_B_MAX_REQ)
        fe->backend_counts[h->request]++;
}

void fe_backend_serve(struct vfe_fe *fe)
{
    while (fe->backend >= 0) {
        struct pollfd p = {.fd = fe->backend, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0)
            return;
        struct vfe_fe_msg_hdr h;
        uint8_t payload[256];
        int fds[VFE_FE_MAX_FDS];
        unsigned nfds = 0;
        int rc = fe_recv_msg(fe->backend, &h, payload, sizeof(payload), fds, &nfds, fe_now_ms() + 1000);
        if (rc < 0 && rc != -EMSGSIZE) {
            LOG_D("vfe-frontend: backend channel: %s", strerror(-rc));
            fe_backend_close(fe);
            return;
        }
        int size = rc < 0 ? (int)sizeof(payload) : rc;
        record(fe, &h, payload, size, nfds);
        uint64_t result = rc < 0 ? 1 : 0;
        if (rc >= 0 && h.request == VFE_FE_B_HOST_NOTIFIER)
            result = take_notifier(fe, payload, rc, fds, nfds);
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        if (h.flags & VFE_FE_FLAG_NEED_REPLY)
            fe_send_msg(fe->backend, h.request, VFE_FE_VERSION | VFE_FE_FLAG_REPLY, &result, sizeof(result), NULL,
                        0, fe->o.timeout_ms);
    }
}

void vfe_fe_backend_poll(struct vfe_fe *fe, int timeout_ms)
{
    long end = fe_now_ms() + timeout_ms;
    do {
        fe_backend_serve(fe);
        if (fe->backend < 0)
            return;
        long left = end - fe_now_ms();
        struct pollfd p = {.fd = fe->backend, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
    } while (fe_now_ms() < end);
    fe_backend_serve(fe);
}

unsigned vfe_fe_backend_msgs(struct vfe_fe *fe, uint32_t request)
{
    fe_backend_serve(fe);
    return request < VFE_FE_B_MAX_REQ ? fe->backend_counts[request] : 0;
}

bool vfe_fe_backend_msg(struct vfe_fe *fe, unsigned i, struct vfe_fe_backend_msg *m)
{
    unsigned kept = fe->backend_total < FE_BACKEND_LOG ? fe->backend_total : FE_BACKEND_LOG;
    if (i >= kept)
        return false;
    *m = fe->backend_log[(fe->backend_total - kept + i) % FE_BACKEND_LOG];
    return true;
}
