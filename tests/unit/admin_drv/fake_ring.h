/*
 * Device side of the admin queue for unit tests: replaces the split ring
 * under the admin core (vfe_admin_ring_ops).  Chains are recorded with host
 * pointers into the admin memfd; a test answers them by hand (any order) or
 * through a handler run at each kick.
 */
#ifndef FAKE_RING_H
#define FAKE_RING_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "drivers/common/virtio_mi/vfe_admin_vq.h"

#define FAKE_MAX_CHAINS 512

struct fake_chain {
    void *cookie;
    uint8_t *cmd;
    uint32_t cmd_len;
    uint8_t *res;
    uint32_t res_len;
};

struct fake_ring;
/* Returns the used length to post at once, or -1 to leave the chain pending. */
typedef int (*fake_handler)(struct fake_ring *r, struct fake_chain *c);

struct fake_ring {
    struct vfe_admin_vq *aq;
    struct fake_chain chain[FAKE_MAX_CHAINS];
    unsigned nchains;        /* chains ever added */
    unsigned handled;        /* chains already shown to the handler */
    struct { void *cookie; uint32_t len; } used[FAKE_MAX_CHAINS];
    unsigned used_head, used_tail;
    unsigned kicks;
    fake_handler handler;
    void *priv;
    int irq_fd;              /* written after each answer if >= 0 */
    bool fini_called;
};

int fake_ring_open(struct fake_ring *r, struct ev_loop *loop, unsigned nslots);
/* Post chain number n as used with length len. */
void fake_ring_complete(struct fake_ring *r, unsigned n, uint32_t len);
void fake_ring_push_raw(struct fake_ring *r, void *cookie, uint32_t len);

/* Answer helpers: write result bytes and status the way each dialect does,
 * return the used length. */
uint32_t fake_nv_answer(struct fake_chain *c, const void *res, uint32_t n, uint8_t status);
uint32_t fake_std_answer(struct fake_chain *c, const void *res, uint32_t n, uint16_t status, uint16_t qual);

#endif
