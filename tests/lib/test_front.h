/*
 * The test playing a front-end for the device half (vdpa_vf), without
 * vhost-user: guest memory in two memfd regions (rings in A at GPA 0, buffers
 * in B), one rx and one tx split ring of TEST_FRONT_QSIZE, kick and call
 * eventfds per ring.  Every rx slot holds one posted buffer of TEST_FRONT_BUF
 * bytes; frames carry a TEST_FRONT_HDR-byte virtio-net header.
 * Owns its memory, rings and eventfds: test_front_fini() releases them.
 */
#ifndef VFE_TEST_FRONT_H
#define VFE_TEST_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/common/virtio/vfe_vring.h"
#include "drivers/vdpa/virtio/vdpa_vf.h"
#include "tests/lib/test_vf.h"

#define TEST_FRONT_QSIZE 256
#define TEST_FRONT_REG_SIZE (8u << 20)
#define TEST_FRONT_GPA_A 0x0ull          /* rings */
#define TEST_FRONT_GPA_B 0x1000000ull    /* buffers */
#define TEST_FRONT_BUF 2048u
#define TEST_FRONT_HDR 12u
#define TEST_FRONT_TMO_MS 3000

struct test_front {
    struct guest_mem a, b;
    struct vfe_vring rx, tx;
    int kick[2], call[2];
    uint64_t rx_buf0, tx_buf0;   /* GPAs of the buffer areas in region B */
    unsigned tx_next;
    void (*waiting)(void);       /* called while test_front_recv() waits, if set */
};

/* A vdpa_vf operation's completion, as its callbacks report it. */
struct test_front_op {
    bool done;
    int err;
    uint16_t idx[8];   /* a stop's last_avail indices (the first 8) */
    unsigned n;
};
/* vdpa_done_cb and vdpa_stop_cb for a struct test_front_op ctx. */
void test_front_done(void *ctx, int err);
void test_front_stopped(void *ctx, int err, const uint16_t *last_avail, unsigned n);

/* 0, or -1 (memory, rings or eventfds could not be made). */
int test_front_init(struct test_front *f);
/* Fresh rings with every rx buffer posted, as a driver sets them up after a reset. */
int test_front_rings(struct test_front *f);
void test_front_fini(struct test_front *f);
uint8_t *test_front_gpa(struct test_front *f, uint64_t gpa);
/* The two rings as vdpa_vf_start() takes them, starting at the given indices. */
void test_front_vdpa_rings(const struct test_front *f, struct vdpa_ring r[2], uint16_t rx_base, uint16_t tx_base);
/* One frame from the rx ring within TEST_FRONT_TMO_MS: its length (payload
 * copied to out, the buffer posted again), or -1. */
int test_front_recv(struct test_front *f, uint8_t *out, size_t cap);
/* Queue one frame on the tx ring and kick. */
int test_front_send(struct test_front *f, const uint8_t *frame, size_t len);
/* n frames each way between the front (MAC vmac) and a plain VF, sizes 60 to
 * 1459, each checked byte for byte (CHECK, naming `what`); with `waiting`
 * set, it also runs 2 ms after every pair. */
void test_front_traffic(struct test_front *f, struct test_vf *peer, const uint8_t vmac[6], unsigned n,
                        uint32_t seed, const char *what);

#endif
