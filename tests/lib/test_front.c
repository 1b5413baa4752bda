/* The test playing a front-end for vdpa_vf: test_front.h. */
#include "tests/lib/test_front.h"

#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tests/frontend/vfe_frontend.h"
#include "tests/lib/check.h"

#define RING_SPAN 0x100000ull   /* each ring's share of region A */

void test_front_done(void *ctx, int err)
{
    struct test_front_op *w = ctx;
    w->err = err;
    w->done = true;
}

void test_front_stopped(void *ctx, int err, const uint16_t *last_avail, unsigned n)
{
    struct test_front_op *w = ctx;
    w->n = n < 8 ? n : 8;
    memcpy(w->idx, last_avail, w->n * sizeof(uint16_t));
    test_front_done(ctx, err);
}

uint8_t *test_front_gpa(struct test_front *f, uint64_t gpa)
{
    if (gpa >= TEST_FRONT_GPA_B)
        return (uint8_t *)f->b.va + (gpa - TEST_FRONT_GPA_B);
    return (uint8_t *)f->a.va + (gpa - TEST_FRONT_GPA_A);
}

static void post_rx(struct test_front *f, unsigned i)
{
    struct vfe_sg sg = {f->rx_buf0 + (uint64_t)(i % TEST_FRONT_QSIZE) * TEST_FRONT_BUF, TEST_FRONT_BUF};
    vfe_vring_add(&f->rx, &sg, 0, 1, (void *)(uintptr_t)(i % TEST_FRONT_QSIZE + 1));
}

int test_front_rings(struct test_front *f)
{
    vfe_vring_fini(&f->rx);
    vfe_vring_fini(&f->tx);
    memset(f->a.va, 0, 2 * RING_SPAN);
    if (vfe_vring_mem_size(TEST_FRONT_QSIZE) > RING_SPAN ||
        vfe_vring_init(&f->rx, TEST_FRONT_QSIZE, f->a.va, TEST_FRONT_GPA_A, false) < 0 ||
        vfe_vring_init(&f->tx, TEST_FRONT_QSIZE, (uint8_t *)f->a.va + RING_SPAN, TEST_FRONT_GPA_A + RING_SPAN,
                       false) < 0)
        return -1;
    for (unsigned i = 0; i < TEST_FRONT_QSIZE; i++)
        post_rx(f, i);
    vfe_vring_publish(&f->rx);
    f->tx_next = 0;
    return 0;
}

int test_front_init(struct test_front *f)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < 2; i++)
        f->kick[i] = f->call[i] = -1;
    if (guest_mem_create(&f->a, TEST_FRONT_REG_SIZE) < 0 || guest_mem_create(&f->b, TEST_FRONT_REG_SIZE) < 0)
        return -1;
    f->rx_buf0 = TEST_FRONT_GPA_B;
    f->tx_buf0 = TEST_FRONT_GPA_B + TEST_FRONT_QSIZE * TEST_FRONT_BUF;
    for (int i = 0; i < 2; i++) {
        f->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        f->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (f->kick[i] < 0 || f->call[i] < 0)
            return -1;
    }
    return test_front_rings(f);
}

void test_front_fini(struct test_front *f)
{
    vfe_vring_fini(&f->rx);
    vfe_vring_fini(&f->tx);
    for (int i = 0; i < 2; i++) {
        if (f->kick[i] > 0)   /* 0: a zeroed front never initialized */
            close(f->kick[i]);
        if (f->call[i] > 0)
            close(f->call[i]);
        f->kick[i] = f->call[i] = -1;
    }
    if (f->a.va)
        guest_mem_destroy(&f->a);
    if (f->b.va)
        guest_mem_destroy(&f->b);
}

void test_front_vdpa_rings(const struct test_front *f, struct vdpa_ring r[2], uint16_t rx_base, uint16_t tx_base)
{
    r[0] = (struct vdpa_ring){true, TEST_FRONT_QSIZE, f->rx.desc_iova, f->rx.avail_iova, f->rx.used_iova, rx_base};
    r[1] = (struct vdpa_ring){true, TEST_FRONT_QSIZE, f->tx.desc_iova, f->tx.avail_iova, f->tx.used_iova, tx_base};
}

int test_front_recv(struct test_front *f, uint8_t *out, size_t cap)
{
    long end = check_now_ms() + TEST_FRONT_TMO_MS;
    uint32_t len;
    void *cookie;
    while (!(cookie = vfe_vring_get_used(&f->rx, &len))) {
        if (check_now_ms() > end)
            return -1;
        struct pollfd p = {.fd = f->call[0], .events = POLLIN};
        poll(&p, 1, 10);
        if (f->waiting)
            f->waiting();
    }
    unsigned slot = (unsigned)(uintptr_t)cookie - 1;
    const uint8_t *buf = test_front_gpa(f, f->rx_buf0 + (uint64_t)slot * TEST_FRONT_BUF);
    int n = len > TEST_FRONT_HDR && len - TEST_FRONT_HDR <= cap ? (int)(len - TEST_FRONT_HDR) : -1;
    if (n > 0)
        memcpy(out, buf + TEST_FRONT_HDR, (size_t)n);
    post_rx(f, slot);
    vfe_vring_publish(&f->rx);
    return n;
}

int test_front_send(struct test_front *f, const uint8_t *frame, size_t len)
{
    if (len > TEST_FRONT_BUF - TEST_FRONT_HDR)
        return -1;
    unsigned slot = f->tx_next++ % TEST_FRONT_QSIZE;
    uint64_t gpa = f->tx_buf0 + (uint64_t)slot * TEST_FRONT_BUF;
    uint8_t *p = test_front_gpa(f, gpa);
    memset(p, 0, TEST_FRONT_HDR);
    memcpy(p + TEST_FRONT_HDR, frame, len);
    struct vfe_sg sg = {gpa, (uint32_t)(TEST_FRONT_HDR + len)};
    uint32_t l;
    while (vfe_vring_get_used(&f->tx, &l))
        ;
    vfe_vring_add(&f->tx, &sg, 1, 0, (void *)(uintptr_t)(slot + 1));
    vfe_vring_publish(&f->tx);
    uint64_t one = 1;
    return write(f->kick[1], &one, sizeof(one)) == sizeof(one) ? 0 : -1;
}

void test_front_traffic(struct test_front *f, struct test_vf *peer, const uint8_t vmac[6], unsigned n,
                        uint32_t seed, const char *what)
{
    uint8_t out[1600], in[1600];
    for (unsigned i = 0; i < n; i++) {
        size_t len = 60 + (i * 131) % 1400;
        vfe_fe_frame(out, len, vmac, peer->mac, seed + i);
        CHECK(guest_net_send(peer->g, 0, out, len) == 0, "peer send");
        guest_net_reclaim_tx(peer->g, 0);
        int got = test_front_recv(f, in, sizeof(in));
        CHECK(got == (int)len && memcmp(in, out, len) == 0, "frame %u into the %s: %d", i, what, got);
        vfe_fe_frame(out, len, peer->mac, vmac, seed + 1000 + i);
        CHECK(test_front_send(f, out, len) == 0, "frame %u not sent", i);
        got = guest_net_recv(peer->g, 0, in, sizeof(in), TEST_FRONT_TMO_MS);
        CHECK(got == (int)len && memcmp(in, out, len) == 0, "frame %u out of the %s: %d", i, what, got);
        if (f->waiting) {   /* e.g. a software logging pass between two frames: no slot reused unseen */
            usleep(2000);
            f->waiting();
        }
    }
}
