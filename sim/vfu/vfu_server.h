/* vfio-user server internals (sim/vfu): per-function connection state. */
#ifndef SIM_VFU_SERVER_H
#define SIM_VFU_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/vfio_user/vfu_msg.h"
#include "lib/vfio_user/vfu_sock.h"
#include "sim/core/sim_acceptor.h"
#include "sim/sim.h"

#define VFU_SRV_MAX_IOEVENTFDS (2 * SIM_MAX_QUEUES)

struct vfu_srv {
    struct sim_fn *fn;
    struct vfu_listener lis;   /* owns the listening fd and fn->sock_path */
    struct sim_acceptor acc;
    int csock;                 /* the one client, -1 if none */
    ev_io cwatch;
    struct vfu_reader rd;
    bool versioned;            /* VERSION done on this connection */
    struct vfu_caps peer;
    /* kick registrations of this client, removed when it goes away */
    struct vfu_ioev { uint32_t region, size; uint64_t off, data; } ioev[VFU_SRV_MAX_IOEVENTFDS];
    unsigned nioev;
    struct vfu_msg held;       /* fault vfu_stall at: the request held unanswered (holding) */
    bool holding;
};

/* Reply being built by a handler: a small inline buffer or a malloc'd one. */
struct vfu_reply {
    uint8_t small[64];
    uint8_t *big;
    size_t len;
    int fd;           /* sent with the reply when >= 0; stays owned by the handler's object */
};

static inline uint8_t *vfu_reply_buf(struct vfu_reply *r)
{
    return r->big ? r->big : r->small;
}

/* Handle one command message (fds still in m; the handler takes what it uses).
 * 0 with *rep filled, or -errno for an error reply. */
int vfu_srv_handle(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep);

#endif
