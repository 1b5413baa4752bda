/*
 * Mappable doorbells.  A VF's BAR0 is backed by a memfd whose notify pages
 * (one per queue) a client may map and hand to QEMU as vhost-user host
 * notifiers, so guest kicks reach the device without any exit.  Hardware sees
 * such a write on the bus; the sim polls instead: each armed doorbell holds an
 * idle pattern no queue index can have, and an atomic exchange takes a write
 * and re-arms it in one step, so no kick is lost between the two.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "sim/sim.h"

#define DOORBELL_IDLE    0xffffu
#define DOORBELL_POLL_S  0.001

static uint16_t *doorbell(struct sim_fn *fn, unsigned q)
{
    return (uint16_t *)(fn->db_map + SIM_BAR0_NOTIFY + (size_t)q * SIM_NOTIFY_MULT);
}

static void poll_fn(struct sim_fn *fn)
{
    for (unsigned i = 0; i < fn->num_queues && i < SIM_MAX_QUEUES; i++) {
        struct sim_queue *q = &fn->queues[i];
        if (!q->enabled) {
            q->db_armed = false;
            continue;
        }
        uint16_t *db = doorbell(fn, i);
        if (!q->db_armed) {
            /* a write before arming is not lost: the device looks at the ring once */
            __atomic_store_n(db, DOORBELL_IDLE, __ATOMIC_SEQ_CST);
            q->db_armed = true;
            sim_queue_notify(fn, (uint16_t)i);
            continue;
        }
        if (__atomic_exchange_n(db, DOORBELL_IDLE, __ATOMIC_SEQ_CST) != DOORBELL_IDLE) {
            fn->ctr.mapped_doorbell_kicks++;
            sim_queue_notify(fn, (uint16_t)i);
        }
    }
}

static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sim *s = w->data;
    for (unsigned p = 0; p < s->npfs; p++)
        for (unsigned v = 0; v < s->pfs[p]->num_vfs; v++) {
            struct sim_fn *fn = s->pfs[p]->vfs[v];
            if (fn && fn->db_map && !fn->removed)
                poll_fn(fn);
        }
}

int sim_doorbell_map_fd(struct sim_fn *fn)
{
    if (fn->db_map)
        return fn->db_fd;
    int fd = memfd_create("vfe-sim-bar0", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, SIM_BAR0_SIZE) < 0) {
        int e = errno;
        LOG_E("%s: doorbell memory: %m", fn->bdf);
        if (fd >= 0)
            close(fd);
        return -e;
    }
    void *m = mmap(NULL, SIM_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(fd);
        return -e;
    }
    fn->db_fd = fd;
    fn->db_map = m;
    struct sim *s = fn->sim;
    if (s->doorbell_maps++ == 0) {
        ev_timer_init(&s->doorbell_poll, poll_cb, DOORBELL_POLL_S, DOORBELL_POLL_S);
        s->doorbell_poll.data = s;
        ev_timer_start(s->loop, &s->doorbell_poll);
    }
    return fd;
}

void sim_doorbell_map_fini(struct sim_fn *fn)
{
    if (!fn->db_map)
        return;
    munmap(fn->db_map, SIM_BAR0_SIZE);
    close(fn->db_fd);
    fn->db_map = NULL;
    fn->db_fd = -1;
    for (unsigned i = 0; i < SIM_MAX_QUEUES; i++)
        fn->queues[i].db_armed = false;
    struct sim *s = fn->sim;
    if (--s->doorbell_maps == 0)
        ev_timer_stop(s->loop, &s->doorbell_poll);
}
