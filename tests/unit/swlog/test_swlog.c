/*
 * The software dirty-tracking walker (drivers/vdpa/virtio/vdpa_swlog.c) over
 * hand-built split rings in a malloc'd "guest memory": what it marks (page
 * exact), what it must not, and what it does with bad guest values.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <linux/virtio_ring.h>

#include "drivers/vdpa/virtio/vdpa_swlog.h"

#define PAGE 4096u
#define MEM_GPA 0x100000ull          /* guest memory: 1 MiB at 1 MiB (pages 256..511) */
#define MEM_SIZE 0x100000ull
#define LOG_BYTES 128u               /* 1024 pages: 4 MiB */
#define DESC_GPA (MEM_GPA + 0x0000)
#define AVAIL_GPA (MEM_GPA + 0x1000)
#define USED_GPA (MEM_GPA + 0x2000)
#define TX_USED_GPA (MEM_GPA + 0x3000)
#define IND_GPA (MEM_GPA + 0x4000)
#define BUF(k) (MEM_GPA + 0x10000 + (uint64_t)(k) * PAGE)

static uint8_t *mem;
static uint8_t logbits[LOG_BYTES];
static uint16_t qsize = 8;
static bool packed, tx_ring;

static void *g_host(void *ctx, uint64_t gpa, uint64_t len)
{
    if (gpa < MEM_GPA || gpa - MEM_GPA >= MEM_SIZE || len > MEM_SIZE - (gpa - MEM_GPA))
        return NULL;
    return mem + (gpa - MEM_GPA);
}

static unsigned g_regions(void *ctx, struct vdpa_swlog_span *out, unsigned max)
{
    out[0] = (struct vdpa_swlog_span){MEM_GPA, MEM_SIZE};
    return 1;
}

static int g_ring(void *ctx, uint16_t q, struct vdpa_swlog_ring *out)
{
    if (packed)
        return -EPROTONOSUPPORT;
    if (q == 0) {
        *out = (struct vdpa_swlog_ring){qsize, DESC_GPA, AVAIL_GPA, USED_GPA};
        return 1;
    }
    if (q == 1 && tx_ring) {   /* a tx ring with nothing posted: only its used ring counts */
        *out = (struct vdpa_swlog_ring){qsize, DESC_GPA + 0x800, AVAIL_GPA + 0x800, TX_USED_GPA};
        return 1;
    }
    return 0;
}

static const struct vdpa_swlog_guest guest = {g_host, g_regions, g_ring, NULL};

static struct vring_desc *desc(uint64_t gpa, unsigned i)
{
    return (struct vring_desc *)(void *)(mem + gpa - MEM_GPA) + i;
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    *desc(DESC_GPA, i) = (struct vring_desc){addr, len, flags, next};
}

static uint16_t *avail_idx(void) { return (uint16_t *)(void *)(mem + AVAIL_GPA - MEM_GPA + 2); }

static void post(uint16_t head)
{
    uint16_t *ring = (uint16_t *)(void *)(mem + AVAIL_GPA - MEM_GPA + 4);
    ring[*avail_idx() % qsize] = head;
    (*avail_idx())++;
}

static bool marked(uint64_t gpa)
{
    uint64_t p = gpa / PAGE;
    return p / 8 < LOG_BYTES && (logbits[p / 8] >> (p % 8) & 1);
}

static unsigned count_marked(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < LOG_BYTES; i++)
        n += (unsigned)__builtin_popcount(logbits[i]);
    return n;
}

static int setup(void **state)
{
    mem = calloc(1, MEM_SIZE);
    memset(logbits, 0, sizeof(logbits));
    qsize = 8;
    packed = tx_ring = false;
    struct vdpa_swlog *w = vdpa_swlog_new(logbits, LOG_BYTES, &guest, "test");
    *state = w;
    return mem && w ? 0 : -1;
}

static int teardown(void **state)
{
    vdpa_swlog_free(*state);
    free(mem);
    return 0;
}

static struct vdpa_swlog_stats stats(struct vdpa_swlog *w)
{
    struct vdpa_swlog_stats st;
    vdpa_swlog_stats(w, &st);
    return st;
}

/* A header the device reads and a buffer it writes across a page boundary:
 * the writable pages and the used ring are marked, nothing else. */
static void test_direct_chain(void **state)
{
    struct vdpa_swlog *w = *state;
    assert_int_equal(vdpa_swlog_pass(w), 0);   /* empty ring: the used ring only */
    assert_true(marked(USED_GPA));
    assert_int_equal(count_marked(), 1);
    memset(logbits, 0, sizeof(logbits));
    set_desc(0, BUF(0), 12, VRING_DESC_F_NEXT, 1);
    set_desc(1, BUF(2) - 100, 200, VRING_DESC_F_WRITE, 0);
    post(0);
    assert_int_equal(vdpa_swlog_pass(w), 0);
    assert_false(marked(BUF(0)));
    assert_true(marked(BUF(1)));
    assert_true(marked(BUF(2)));
    assert_false(marked(BUF(3)));
    assert_true(marked(USED_GPA));
    assert_int_equal(count_marked(), 3);
    assert_int_equal(stats(w).bad, 0);
}

/* Buffers made available before tracking started are recorded by the first pass. */
static void test_first_pass_takes_posted(void **state)
{
    struct vdpa_swlog *w = *state;
    for (unsigned i = 0; i < 8; i++) {
        set_desc(i, BUF(i), 1500, VRING_DESC_F_WRITE, 0);
        post((uint16_t)i);
    }
    assert_int_equal(vdpa_swlog_pass(w), 0);
    for (unsigned i = 0; i < 8; i++)
        assert_true(marked(BUF(i)));
    assert_int_equal(stats(w).overruns, 0);
}

/* Indirect tables: each writable entry marked, readable ones not. */
static void test_indirect(void **state)
{
    struct vdpa_swlog *w = *state;
    vdpa_swlog_pass(w);
    struct vring_desc *t = desc(IND_GPA, 0);
    t[0] = (struct vring_desc){BUF(10), 64, VRING_DESC_F_NEXT, 1};
    t[1] = (struct vring_desc){BUF(11), 4096, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2};
    t[2] = (struct vring_desc){BUF(13) + 8, 100, VRING_DESC_F_WRITE, 0};
    set_desc(3, IND_GPA, 3 * 16, VRING_DESC_F_INDIRECT, 0);
    post(3);
    memset(logbits, 0, sizeof(logbits));
    assert_int_equal(vdpa_swlog_pass(w), 0);
    assert_false(marked(BUF(10)));
    assert_true(marked(BUF(11)));
    assert_false(marked(BUF(12)));
    assert_true(marked(BUF(13)));
    assert_false(marked(IND_GPA));
    assert_int_equal(stats(w).bad, 0);
}

/* Bad guest values: counted, the walk stops safely, what was read before stays. */
static void test_bad_values(void **state)
{
    struct vdpa_swlog *w = *state;
    vdpa_swlog_pass(w);
    uint64_t bad0 = stats(w).bad;
    post(200);   /* head beyond the table */
    vdpa_swlog_pass(w);
    assert_int_equal(stats(w).bad, bad0 + 1);
    /* a loop: 0 -> 1 -> 0 ..., both writable: stopped after the queue size, pages kept */
    set_desc(0, BUF(0), 10, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(1, BUF(1), 10, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
    post(0);
    memset(logbits, 0, sizeof(logbits));
    vdpa_swlog_pass(w);
    assert_true(marked(BUF(0)) && marked(BUF(1)));
    assert_int_equal(stats(w).bad, bad0 + 2);
    /* next beyond the table */
    set_desc(2, BUF(2), 10, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 9);
    post(2);
    vdpa_swlog_pass(w);
    assert_true(marked(BUF(2)));
    assert_int_equal(stats(w).bad, bad0 + 3);
    /* indirect: bad length, too long, outside memory, nested */
    struct vring_desc *t = desc(IND_GPA, 0);
    t[0] = (struct vring_desc){BUF(20), 10, VRING_DESC_F_WRITE, 0};
    set_desc(3, IND_GPA, 24, VRING_DESC_F_INDIRECT, 0);
    set_desc(4, IND_GPA, 16 * 9, VRING_DESC_F_INDIRECT, 0);
    set_desc(5, 0x10, 16, VRING_DESC_F_INDIRECT, 0);
    post(3);
    post(4);
    post(5);
    memset(logbits, 0, sizeof(logbits));
    vdpa_swlog_pass(w);
    assert_false(marked(BUF(20)));
    assert_int_equal(stats(w).bad, bad0 + 6);
    t[0] = (struct vring_desc){IND_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0};
    set_desc(6, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
    post(6);
    vdpa_swlog_pass(w);
    assert_int_equal(stats(w).bad, bad0 + 7);
    /* writable buffers outside memory: not marked (the device cannot reach them);
     * a huge one is clipped to the memory's end */
    set_desc(7, 0x10, 100, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(1, MEM_GPA + MEM_SIZE - PAGE, 0xffffffffu, VRING_DESC_F_WRITE, 0);
    post(7);
    memset(logbits, 0, sizeof(logbits));
    vdpa_swlog_pass(w);
    assert_false(marked(0x10));
    assert_true(marked(MEM_GPA + MEM_SIZE - PAGE));
    assert_false(marked(MEM_GPA + MEM_SIZE));
    assert_int_equal(stats(w).bad, bad0 + 8);
    assert_int_equal(stats(w).overruns, 0);
}

/* The avail index wraps at 65535 without a false overrun or a lost entry. */
static void test_wrap(void **state)
{
    struct vdpa_swlog *w = *state;
    *avail_idx() = 65533;
    vdpa_swlog_pass(w);
    for (unsigned i = 0; i < 5; i++) {
        set_desc(i, BUF(i), 100, VRING_DESC_F_WRITE, 0);
        post((uint16_t)i);
    }
    assert_int_equal(*avail_idx(), 2);
    memset(logbits, 0, sizeof(logbits));
    assert_int_equal(vdpa_swlog_pass(w), 0);
    for (unsigned i = 0; i < 5; i++)
        assert_true(marked(BUF(i)));
    assert_int_equal(stats(w).overruns, 0);
}

/* A buffer recorded, then its descriptor rewritten (consumed, refilled, not
 * posted yet): the old pages are marked again at the next passes. */
static void test_recycled_record(void **state)
{
    struct vdpa_swlog *w = *state;
    vdpa_swlog_pass(w);
    set_desc(2, BUF(30), 1500, VRING_DESC_F_WRITE, 0);
    post(2);
    vdpa_swlog_pass(w);
    set_desc(2, BUF(40), 1500, VRING_DESC_F_WRITE, 0);
    memset(logbits, 0, sizeof(logbits));   /* the front-end synced */
    vdpa_swlog_pass(w);
    assert_true(marked(BUF(30)));
    /* posted again: both kept (the old one until its slot is reused) */
    post(2);
    memset(logbits, 0, sizeof(logbits));
    vdpa_swlog_pass(w);
    assert_true(marked(BUF(30)));
    assert_true(marked(BUF(40)));
    /* qsize more entries reuse every slot: the old record goes */
    for (unsigned i = 0; i < qsize; i++) {
        set_desc(i, BUF(50 + i), 100, VRING_DESC_F_WRITE, 0);
        post((uint16_t)i);
        vdpa_swlog_pass(w);
    }
    memset(logbits, 0, sizeof(logbits));
    vdpa_swlog_pass(w);
    assert_false(marked(BUF(30)));
    assert_false(marked(BUF(40)));
    assert_true(marked(BUF(50)));
    assert_int_equal(stats(w).overruns, 0);
}

/* More new entries than the queue holds, or a head posted twice between two
 * passes: an overrun, every page of guest memory marked. */
static void test_overrun(void **state)
{
    struct vdpa_swlog *w = *state;
    vdpa_swlog_pass(w);
    for (unsigned i = 0; i < 8; i++)
        set_desc(i, BUF(i), 100, VRING_DESC_F_WRITE, 0);
    for (unsigned i = 0; i < 9; i++)
        post((uint16_t)(i % 8));
    memset(logbits, 0, sizeof(logbits));
    assert_int_equal(vdpa_swlog_pass(w), 1);
    assert_int_equal(stats(w).overruns, 1);
    assert_int_equal(count_marked(), MEM_SIZE / PAGE);
    assert_true(marked(MEM_GPA) && marked(MEM_GPA + MEM_SIZE - 1) && !marked(MEM_GPA + MEM_SIZE));
    /* nothing new: no overrun */
    memset(logbits, 0, sizeof(logbits));
    assert_int_equal(vdpa_swlog_pass(w), 0);
    assert_int_equal(stats(w).overruns, 1);
    /* head 3 twice among one pass's new entries */
    post(3);
    post(5);
    post(3);
    memset(logbits, 0, sizeof(logbits));
    assert_int_equal(vdpa_swlog_pass(w), 1);
    assert_int_equal(stats(w).overruns, 2);
    assert_int_equal(count_marked(), MEM_SIZE / PAGE);
    /* the same head in two passes is normal */
    post(3);
    assert_int_equal(vdpa_swlog_pass(w), 0);
    assert_int_equal(stats(w).overruns, 2);
}

/* Used rings of every ring (tx too) are marked; bits others set stay set. */
static void test_used_rings_and_or(void **state)
{
    struct vdpa_swlog *w = *state;
    tx_ring = true;
    logbits[100] = 0x5a;   /* the front-end's own bits, far from guest memory's pages */
    vdpa_swlog_pass(w);
    assert_true(marked(USED_GPA));
    assert_true(marked(TX_USED_GPA));
    assert_int_equal(logbits[100], 0x5a);
    /* a 256-entry used ring spans pages */
    qsize = 256;
    memset(logbits, 0, sizeof(logbits));
    vdpa_swlog_pass(w);
    assert_true(marked(USED_GPA) && marked(USED_GPA + 4 + 8 * 256));
}

/* Packed rings are refused; a detached guest is not walked. */
static void test_packed_and_detached(void **state)
{
    struct vdpa_swlog *w = *state;
    packed = true;
    assert_int_equal(vdpa_swlog_check(w), -EPROTONOSUPPORT);
    vdpa_swlog_pass(w);
    assert_int_equal(count_marked(), 0);
    packed = false;
    assert_int_equal(vdpa_swlog_check(w), 0);
    vdpa_swlog_set_guest(w, NULL);
    assert_int_equal(vdpa_swlog_pass(w), 0);
    vdpa_swlog_mark_all(w);
    assert_int_equal(count_marked(), 0);
    vdpa_swlog_set_guest(w, &guest);
    vdpa_swlog_mark_all(w);
    assert_int_equal(count_marked(), MEM_SIZE / PAGE);
}

/* A ring whose addresses or size change starts again (the old record marked once more). */
static void test_ring_change(void **state)
{
    struct vdpa_swlog *w = *state;
    set_desc(0, BUF(60), 100, VRING_DESC_F_WRITE, 0);
    post(0);
    vdpa_swlog_pass(w);
    memset(logbits, 0, sizeof(logbits));
    memset(mem, 0, 0x3000);   /* the guest's driver resets: new ring, nothing posted */
    qsize = 16;
    assert_int_equal(vdpa_swlog_pass(w), 0);
    assert_true(marked(BUF(60)));   /* the last time */
    memset(logbits, 0, sizeof(logbits));
    vdpa_swlog_pass(w);
    assert_false(marked(BUF(60)));
    /* a size that is not a power of two: refused, counted */
    qsize = 12;
    uint64_t bad = stats(w).bad;
    vdpa_swlog_pass(w);
    assert_int_equal(stats(w).bad, bad + 1);
}

static void test_new_bad_args(void **state)
{
    assert_null(vdpa_swlog_new(NULL, 8, &guest, "x"));
    assert_null(vdpa_swlog_new(logbits, 0, &guest, "x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_direct_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_pass_takes_posted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recycled_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_used_rings_and_or, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packed_and_detached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_change, setup, teardown),
        cmocka_unit_test(test_new_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
