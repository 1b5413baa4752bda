/* Unit tests of sim/net: the device-side chain walker, used-ring/interrupt
 * logic, the L2 switch and the RX/TX paths, over memfd guest memory with the
 * sim core replaced by fake_core.c.  The test plays the driver by writing
 * the rings by hand. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <cmocka.h>

#include "fake_core.h"
#include "sim/net/l2_switch.h"
#include "sim/net/net_dev.h"
#include "sim/net/uplink.h"
#include "sim/net/virtq_dev.h"

#define NVF      3
#define MEM_IOVA 0x40000000ull
#define MEM_SIZE (4u << 20)
#define BUF_BASE 0x100000u          /* buffers start here (offset in guest memory) */
#define QSIZE    256
#define PAIRS    2
#define CTRLQ    (2 * PAIRS)
#define HDR      12

struct tq {
    uint16_t avail_idx;     /* driver shadow of avail->idx */
    uint16_t next_desc;
};

struct tvf {
    struct sim_fn fn;
    int memfd;
    uint8_t *va;
    uint64_t buf_next;      /* bump allocator, offset in guest memory */
    struct tq tq[SIM_MAX_QUEUES];
};

static struct sim S;
static struct sim_pf PF;
static struct tvf V[NVF];
static const uint64_t BASE_FEATURES = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_CTRL_VQ) |
                                      (1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
                                      (1ull << VIRTIO_NET_F_MAC);

/* ---- the test's driver side ---- */

static uint8_t *G(struct tvf *v, uint64_t iova)
{
    assert_true(iova >= MEM_IOVA && iova < MEM_IOVA + MEM_SIZE);
    return v->va + (iova - MEM_IOVA);
}

static struct sim_queue *Q(struct tvf *v, unsigned q) { return &v->fn.queues[q]; }

static void desc_at(struct tvf *v, uint64_t table, unsigned idx, uint64_t addr, uint32_t len,
                    uint16_t flags, uint16_t next)
{
    struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
    memcpy(G(v, table + 16ull * idx), &d, sizeof(d));
}

static void set_desc(struct tvf *v, unsigned q, unsigned idx, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    desc_at(v, Q(v, q)->desc, idx, addr, len, flags, next);
}

static void avail_add(struct tvf *v, unsigned q, uint16_t head)
{
    struct sim_queue *sq = Q(v, q);
    uint16_t *ring = (uint16_t *)G(v, sq->avail + 4);
    ring[v->tq[q].avail_idx % sq->size] = head;
    v->tq[q].avail_idx++;
    __atomic_store_n((uint16_t *)G(v, sq->avail + 2), v->tq[q].avail_idx, __ATOMIC_RELEASE);
}

static uint16_t used_idx(struct tvf *v, unsigned q)
{
    return __atomic_load_n((uint16_t *)G(v, Q(v, q)->used + 2), __ATOMIC_ACQUIRE);
}

static void used_elem(struct tvf *v, unsigned q, unsigned i, uint32_t *id, uint32_t *len)
{
    struct sim_queue *sq = Q(v, q);
    uint32_t *e = (uint32_t *)G(v, sq->used + 4 + 8ull * (i % sq->size));
    *id = e[0];
    *len = e[1];
}

static void set_used_event(struct tvf *v, unsigned q, uint16_t ev)
{
    struct sim_queue *sq = Q(v, q);
    memcpy(G(v, sq->avail + 4 + 2ull * sq->size), &ev, 2);
}

static uint64_t buf_alloc(struct tvf *v, uint32_t len)
{
    uint64_t iova = MEM_IOVA + v->buf_next;
    v->buf_next += (len + 63) & ~63u;
    assert_true(v->buf_next <= MEM_SIZE);
    return iova;
}

static uint16_t take_desc(struct tvf *v, unsigned q)
{
    return v->tq[q].next_desc++ % Q(v, q)->size;
}

/* A TX chain: header descriptor + one frame descriptor. */
static uint16_t tx_post(struct tvf *v, unsigned q, const uint8_t *frame, uint32_t len)
{
    uint64_t h = buf_alloc(v, HDR), f = buf_alloc(v, len);
    memset(G(v, h), 0, HDR);
    memcpy(G(v, f), frame, len);
    uint16_t d0 = take_desc(v, q), d1 = take_desc(v, q);
    set_desc(v, q, d0, h, HDR, VRING_DESC_F_NEXT, d1);
    set_desc(v, q, d1, f, len, 0, 0);
    avail_add(v, q, d0);
    return d0;
}

/* A TX chain of one descriptor holding header and frame. */
static void tx_post1(struct tvf *v, unsigned q, const uint8_t *frame, uint32_t len)
{
    uint64_t b = buf_alloc(v, HDR + len);
    memset(G(v, b), 0, HDR);
    memcpy(G(v, b) + HDR, frame, len);
    uint16_t d = take_desc(v, q);
    set_desc(v, q, d, b, HDR + len, 0, 0);
    avail_add(v, q, d);
}

/* One writable buffer of `len` bytes per RX chain; returns its IOVA. */
static uint64_t rx_post(struct tvf *v, unsigned q, uint32_t len)
{
    uint64_t b = buf_alloc(v, len);
    memset(G(v, b), 0xee, len);
    uint16_t d = take_desc(v, q);
    set_desc(v, q, d, b, len, VRING_DESC_F_WRITE, 0);
    avail_add(v, q, d);
    return b;
}

static void make_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6], uint8_t seed)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x08;
    f[13] = 0x00;
    for (size_t i = 14; i < len; i++)
        f[i] = (uint8_t)(seed + i * 7);
}

static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static bool needs_reset(struct tvf *v)
{
    return v->fn.status & VIRTIO_CONFIG_S_NEEDS_RESET;
}

/* ---- fixture ---- */

static void vf_setup(struct tvf *v, unsigned n)
{
    struct sim_fn *fn = &v->fn;
    memset(v, 0, sizeof(*v));
    v->memfd = memfd_create("guest", MFD_CLOEXEC);
    assert_true(v->memfd >= 0);
    assert_int_equal(ftruncate(v->memfd, MEM_SIZE), 0);
    v->va = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, v->memfd, 0);
    assert_true(v->va != MAP_FAILED);
    v->buf_next = BUF_BASE;

    fn->sim = &S;
    fn->pf = &PF.fn;
    fn->vf_num = n + 1;
    snprintf(fn->bdf, sizeof(fn->bdf), "0000:3b:00.%u", n + 1);
    fn->dma[0] = (struct sim_dma_map){ .iova = MEM_IOVA, .size = MEM_SIZE, .va = v->va,
                                       .map_len = MEM_SIZE, .prot = 3 };
    fn->ndma = 1;
    fn->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
    fn->driver_features = BASE_FEATURES;
    fn->mig_state = SIM_MIG_RUNNING;
    fn->num_queues = 2 * PAIRS + 1;
    fn->net_cfg.max_virtqueue_pairs = PAIRS;
    uint8_t mac[6] = { 0x02, 0xfe, 0, 0, 0, (uint8_t)(n + 1) };
    memcpy(fn->net_cfg.mac, mac, 6);
    for (unsigned q = 0; q < fn->num_queues; q++) {
        struct sim_queue *sq = &fn->queues[q];
        sq->index = q;
        sq->fn = fn;
        sq->size = QSIZE;
        sq->enabled = true;
        sq->kick_fd = -1;
        sq->desc = MEM_IOVA + 0x4000ull * q;
        sq->avail = sq->desc + 0x2000;
        sq->used = sq->desc + 0x2800;
    }
    sim_net_fn_init(fn);
    fake.fns[n] = fn;
}

static int setup(void **state)
{
    memset(&S, 0, sizeof(S));
    memset(&PF, 0, sizeof(PF));
    memset(&fake, 0, sizeof(fake));
    S.loop = ev_loop_new(EVFLAG_AUTO);
    S.npfs = 1;
    S.pfs[0] = &PF;
    PF.fn.sim = &S;
    PF.fn.pf = &PF.fn;
    PF.fn.is_pf = true;
    snprintf(PF.fn.bdf, sizeof(PF.fn.bdf), "0000:3b:00.0");
    PF.num_vfs = NVF;
    for (unsigned i = 0; i < NVF; i++) {
        vf_setup(&V[i], i);
        PF.vfs[i] = &V[i].fn;
    }
    assert_int_equal(sim_net_init(&S), 0);
    return 0;
}

static int teardown(void **state)
{
    for (unsigned i = 0; i < NVF; i++) {
        sim_net_fn_fini(&V[i].fn);
        munmap(V[i].va, MEM_SIZE);
        close(V[i].memfd);
    }
    sim_net_fini(&S);
    ev_loop_destroy(S.loop);
    return 0;
}

/* ---- chain walker ---- */

static struct vq_elem E;

static void test_simple_chain(void **state)
{
    struct tvf *v = &V[0];
    uint64_t a = buf_alloc(v, 12), b = buf_alloc(v, 60), c = buf_alloc(v, 100);
    set_desc(v, 1, 7, a, 12, VRING_DESC_F_NEXT, 3);
    set_desc(v, 1, 3, b, 60, VRING_DESC_F_NEXT, 9);
    set_desc(v, 1, 9, c, 100, VRING_DESC_F_WRITE, 0);
    avail_add(v, 1, 7);

    assert_int_equal(sim_vq_avail_count(Q(v, 1)), 1);
    assert_int_equal(sim_vq_pop(Q(v, 1), &E), 1);
    assert_int_equal(E.head, 7);
    assert_int_equal(E.nout, 2);
    assert_int_equal(E.nin, 1);
    assert_int_equal(E.out_len, 72);
    assert_int_equal(E.in_len, 100);
    assert_int_equal(E.segs[0].iova, a);
    assert_int_equal(E.segs[1].iova, b);
    assert_int_equal(E.segs[2].iova, c);
    assert_int_equal(Q(v, 1)->last_avail, 1);
    assert_int_equal(sim_vq_pop(Q(v, 1), &E), 0);

    /* gather across the two readable buffers, scatter into the writable one */
    memcpy(G(v, a), "0123456789AB", 12);
    memset(G(v, b), 'x', 60);
    uint8_t out[20];
    assert_int_equal(sim_vq_gather(&v->fn, &E, 8, out, sizeof(out)), 20);
    assert_memory_equal(out, "89ABxxxxxxxxxxxxxxxx", 20);
    assert_int_equal(sim_vq_scatter(&v->fn, &E, 90, "hello, world", 12), 10);
    assert_memory_equal(G(v, c + 90), "hello, wor", 10);
    assert_true(fake_written(&v->fn, c + 90, 10));

    assert_int_equal(sim_vq_push(Q(v, 1), E.head, 42), 0);
    uint32_t id, len;
    assert_int_equal(used_idx(v, 1), 1);
    used_elem(v, 1, 0, &id, &len);
    assert_int_equal(id, 7);
    assert_int_equal(len, 42);
    assert_true(fake_written(&v->fn, Q(v, 1)->used + 2, 10));  /* idx + element, dirty-tracked */
    assert_int_equal(fake.irqs[0][1], 1);
    assert_false(needs_reset(v));
}

static void test_indirect_chain(void **state)
{
    struct tvf *v = &V[0];
    uint64_t tbl = buf_alloc(v, 48), h = buf_alloc(v, 12), f = buf_alloc(v, 100), w = buf_alloc(v, 50);
    desc_at(v, tbl, 0, h, 12, VRING_DESC_F_NEXT, 2);
    desc_at(v, tbl, 2, f, 100, VRING_DESC_F_NEXT, 1);
    desc_at(v, tbl, 1, w, 50, VRING_DESC_F_WRITE, 0);
    set_desc(v, 1, 5, tbl, 48, VRING_DESC_F_INDIRECT, 0);
    avail_add(v, 1, 5);

    assert_int_equal(sim_vq_pop(Q(v, 1), &E), 1);
    assert_int_equal(E.head, 5);
    assert_int_equal(E.nout, 2);
    assert_int_equal(E.nin, 1);
    assert_int_equal(E.out_len, 112);
    assert_int_equal(E.in_len, 50);
    assert_int_equal(E.segs[1].iova, f);
    assert_int_equal(E.segs[2].iova, w);
    assert_false(Q(v, 1)->broken);
}

static void expect_broken(struct tvf *v, unsigned q)
{
    assert_int_equal(sim_vq_pop(Q(v, q), &E), -EIO);
    assert_true(Q(v, q)->broken);
    assert_true(needs_reset(v));
    assert_int_equal(fake.needs_reset[fake_slot(&v->fn)], 1);
    /* nothing more is processed on that queue, and no second report */
    assert_int_equal(sim_vq_pop(Q(v, q), &E), 0);
    assert_int_equal(fake.needs_reset[fake_slot(&v->fn)], 1);
    /* the other functions are untouched */
    for (unsigned i = 0; i < NVF; i++) {
        if (&V[i] == v)
            continue;
        assert_false(needs_reset(&V[i]));
        assert_int_equal(fake.needs_reset[i], 0);
    }
}

static void test_indirect_not_negotiated(void **state)
{
    struct tvf *v = &V[1];
    v->fn.driver_features &= ~(1ull << VIRTIO_RING_F_INDIRECT_DESC);
    uint64_t tbl = buf_alloc(v, 16);
    desc_at(v, tbl, 0, buf_alloc(v, 64), 64, 0, 0);
    set_desc(v, 1, 0, tbl, 16, VRING_DESC_F_INDIRECT, 0);
    avail_add(v, 1, 0);
    expect_broken(v, 1);
}

static void test_loop_detection(void **state)
{
    struct tvf *v = &V[0];
    uint64_t b = buf_alloc(v, 64);
    set_desc(v, 1, 0, b, 64, VRING_DESC_F_NEXT, 1);
    set_desc(v, 1, 1, b, 64, VRING_DESC_F_NEXT, 0);
    avail_add(v, 1, 0);
    expect_broken(v, 1);

    /* VF 2 still forwards: its frame reaches VF 3 */
    uint8_t fr[64];
    make_frame(fr, sizeof(fr), V[2].fn.net_cfg.mac, V[1].fn.net_cfg.mac, 1);
    rx_post(&V[2], 0, 2048);
    tx_post(&V[1], 1, fr, sizeof(fr));
    sim_net_queue_notify(&V[1].fn, 1);
    assert_int_equal(V[2].fn.ctr.rx_packets, 1);
    /* and VF 1's broken queue ignores kicks */
    tx_post(v, 1, fr, sizeof(fr));
    sim_net_queue_notify(&v->fn, 1);
    assert_int_equal(v->fn.ctr.tx_packets, 0);
    assert_int_equal(used_idx(v, 1), 0);
}

static void test_indirect_loop(void **state)
{
    struct tvf *v = &V[0];
    uint64_t tbl = buf_alloc(v, 32), b = buf_alloc(v, 64);
    desc_at(v, tbl, 0, b, 64, VRING_DESC_F_NEXT, 1);
    desc_at(v, tbl, 1, b, 64, VRING_DESC_F_NEXT, 0);
    set_desc(v, 1, 0, tbl, 32, VRING_DESC_F_INDIRECT, 0);
    avail_add(v, 1, 0);
    expect_broken(v, 1);
}

static void test_desc_outside_memory(void **state)
{
    struct tvf *v = &V[1];
    set_desc(v, 1, 0, MEM_IOVA + MEM_SIZE - 10, 20, 0, 0);
    avail_add(v, 1, 0);
    expect_broken(v, 1);
}

static void test_writable_in_readonly_map(void **state)
{
    struct tvf *v = &V[1];
    void *ro = mmap(NULL, 65536, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(ro != MAP_FAILED);
    v->fn.dma[1] = (struct sim_dma_map){ .iova = 0x80000000ull, .size = 65536, .va = ro,
                                         .map_len = 65536, .prot = 1 };
    v->fn.ndma = 2;
    set_desc(v, 0, 0, 0x80000000ull, 100, VRING_DESC_F_WRITE, 0);
    avail_add(v, 0, 0);
    expect_broken(v, 0);
    v->fn.ndma = 1;
    munmap(ro, 65536);
}

static void test_writable_then_readable(void **state)
{
    struct tvf *v = &V[2];
    uint64_t b = buf_alloc(v, 64);
    set_desc(v, 1, 0, b, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(v, 1, 1, b, 64, 0, 0);
    avail_add(v, 1, 0);
    expect_broken(v, 1);
}

static void test_indirect_too_long(void **state)
{
    struct tvf *v = &V[0];
    unsigned n = QSIZE + 1;
    uint64_t tbl = buf_alloc(v, 16 * n), b = buf_alloc(v, 64);
    for (unsigned i = 0; i < n; i++)
        desc_at(v, tbl, i, b, 64, i + 1 < n ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    set_desc(v, 1, 0, tbl, 16 * n, VRING_DESC_F_INDIRECT, 0);
    avail_add(v, 1, 0);
    expect_broken(v, 1);
}

static void test_indirect_bad_len_and_nested(void **state)
{
    struct tvf *v = &V[0];
    uint64_t tbl = buf_alloc(v, 32);
    set_desc(v, 1, 0, tbl, 20, VRING_DESC_F_INDIRECT, 0);   /* not a multiple of 16 */
    avail_add(v, 1, 0);
    expect_broken(v, 1);

    struct tvf *w = &V[1];
    uint64_t t2 = buf_alloc(w, 16), t1 = buf_alloc(w, 16);
    desc_at(w, t2, 0, buf_alloc(w, 64), 64, 0, 0);
    desc_at(w, t1, 0, t2, 16, VRING_DESC_F_INDIRECT, 0);
    set_desc(w, 1, 0, t1, 16, VRING_DESC_F_INDIRECT, 0);
    avail_add(w, 1, 0);
    assert_int_equal(sim_vq_pop(Q(w, 1), &E), -EIO);
    assert_true(Q(w, 1)->broken);
    assert_true(needs_reset(w));
    assert_false(needs_reset(&V[2]));
}

static void test_bad_indices(void **state)
{
    struct tvf *v = &V[0];
    avail_add(v, 1, QSIZE);            /* head out of range */
    expect_broken(v, 1);

    struct tvf *w = &V[1];
    set_desc(w, 1, 0, buf_alloc(w, 8), 8, VRING_DESC_F_NEXT, QSIZE + 3);  /* next out of range */
    avail_add(w, 1, 0);
    assert_int_equal(sim_vq_pop(Q(w, 1), &E), -EIO);
    assert_true(needs_reset(w));

    struct tvf *x = &V[2];
    /* avail idx jumps by more than the queue size */
    __atomic_store_n((uint16_t *)G(x, Q(x, 1)->avail + 2), (uint16_t)(QSIZE + 1), __ATOMIC_RELEASE);
    assert_int_equal(sim_vq_pop(Q(x, 1), &E), -EIO);
    assert_true(needs_reset(x));
}

/* ---- interrupts ---- */

static void test_event_idx(void **state)
{
    struct tvf *v = &V[0];
    struct sim_queue *q = Q(v, 0);
    v->fn.driver_features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
    for (int i = 0; i < 4; i++)
        rx_post(v, 0, 256);
    set_used_event(v, 0, 1);   /* interrupt when used idx passes 1, i.e. becomes 2 */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sim_vq_pop(q, &E), 1);
        assert_int_equal(sim_vq_push(q, E.head, 10), 0);
        assert_int_equal(fake.irqs[0][0], i >= 1 ? 1 : 0);
    }
    /* a batch of one covering the event index interrupts once */
    set_used_event(v, 0, 3);
    assert_int_equal(sim_vq_pop(q, &E), 1);
    assert_int_equal(sim_vq_fill(q, 0, E.head, 1), 0);
    assert_int_equal(sim_vq_flush(q, 1), 0);
    assert_int_equal(fake.irqs[0][0], 2);
    assert_int_equal(used_idx(v, 0), 4);

    /* avail_event: written through the dirty-tracked path, = last_avail */
    assert_false(sim_vq_enable_kick(q));
    uint16_t ae;
    memcpy(&ae, G(v, q->used + 4 + 8ull * QSIZE), 2);
    assert_int_equal(ae, 4);
    assert_true(fake_written(&v->fn, q->used + 4 + 8ull * QSIZE, 2));
    rx_post(v, 0, 256);
    assert_true(sim_vq_enable_kick(q));   /* a chain arrived: caller must go on */
}

static void test_no_interrupt_flag(void **state)
{
    struct tvf *v = &V[1];
    struct sim_queue *q = Q(v, 0);
    rx_post(v, 0, 256);
    rx_post(v, 0, 256);
    uint16_t flags = VRING_AVAIL_F_NO_INTERRUPT;
    memcpy(G(v, q->avail), &flags, 2);
    assert_int_equal(sim_vq_pop(q, &E), 1);
    assert_int_equal(sim_vq_push(q, E.head, 1), 0);
    assert_int_equal(fake.irqs[1][0], 0);
    flags = 0;
    memcpy(G(v, q->avail), &flags, 2);
    assert_int_equal(sim_vq_pop(q, &E), 1);
    assert_int_equal(sim_vq_push(q, E.head, 1), 0);
    assert_int_equal(fake.irqs[1][0], 1);
}

/* ---- switch ---- */

static void vf_send(struct tvf *v, const uint8_t *fr, size_t len)
{
    tx_post(v, 1, fr, (uint32_t)len);
    sim_net_queue_notify(&v->fn, 1);
}

static void test_switch_learning_flood_no_echo(void **state)
{
    uint64_t rxb[NVF][8];
    for (unsigned i = 0; i < NVF; i++)
        for (unsigned k = 0; k < 8; k++)
            rxb[i][k] = rx_post(&V[i], 0, 2048);
    const uint8_t *m0 = V[0].fn.net_cfg.mac, *m2 = V[2].fn.net_cfg.mac;
    uint8_t fr[100];

    /* 1. unicast to VF 3's configured MAC before anything is learned */
    make_frame(fr, 100, m2, m0, 1);
    vf_send(&V[0], fr, 100);
    assert_int_equal(V[2].fn.ctr.rx_packets, 1);
    assert_int_equal(V[1].fn.ctr.rx_packets, 0);
    assert_int_equal(V[0].fn.ctr.tx_packets, 1);
    assert_int_equal(V[0].fn.ctr.tx_bytes, 100);
    assert_memory_equal(G(&V[2], rxb[2][0]) + HDR, fr, 100);
    uint32_t id, len;
    used_elem(&V[2], 0, 0, &id, &len);
    assert_int_equal(len, HDR + 100);
    uint16_t nb;
    memcpy(&nb, G(&V[2], rxb[2][0]) + 10, 2);
    assert_int_equal(nb, 1);
    used_elem(&V[0], 1, 0, &id, &len);   /* TX completion: used len 0 */
    assert_int_equal(len, 0);
    assert_int_equal(used_idx(&V[0], 1), 1);

    /* 2. broadcast from VF 2 with a foreign source MAC: flooded, not echoed */
    uint8_t x[6] = { 0x02, 0xaa, 0, 0, 0, 9 };
    make_frame(fr, 80, BCAST, x, 2);
    vf_send(&V[1], fr, 80);
    assert_int_equal(V[0].fn.ctr.rx_packets, 1);
    assert_int_equal(V[2].fn.ctr.rx_packets, 2);
    assert_int_equal(V[1].fn.ctr.rx_packets, 0);
    assert_int_equal(used_idx(&V[1], 0), 0);
    struct sim_fn *port = NULL;
    assert_int_equal(sim_sw_lookup(&S, x, &port), 1);
    assert_ptr_equal(port, &V[1].fn);

    /* 3. unicast to the learned MAC goes to VF 2 only */
    make_frame(fr, 60, x, m0, 3);
    vf_send(&V[0], fr, 60);
    assert_int_equal(V[1].fn.ctr.rx_packets, 1);
    assert_int_equal(V[2].fn.ctr.rx_packets, 2);
    assert_memory_equal(G(&V[1], rxb[1][0]) + HDR, fr, 60);

    /* 4. unknown unicast floods to everyone but the sender */
    uint8_t unk[6] = { 0x02, 0xbb, 1, 2, 3, 4 };
    make_frame(fr, 60, unk, m2, 4);
    vf_send(&V[2], fr, 60);
    assert_int_equal(V[0].fn.ctr.rx_packets, 2);
    assert_int_equal(V[1].fn.ctr.rx_packets, 2);
    assert_int_equal(V[2].fn.ctr.rx_packets, 2);

    /* 5. a frame to a MAC learned on the sender's own port is not sent back */
    uint64_t filtered = sim_sw_get_stats(&S)->filtered;
    make_frame(fr, 60, x, x, 5);
    vf_send(&V[1], fr, 60);
    assert_int_equal(sim_sw_get_stats(&S)->filtered, filtered + 1);
    for (unsigned i = 0; i < NVF; i++)
        assert_int_equal(V[i].fn.ctr.rx_packets, 2);
    assert_int_equal(V[1].fn.ctr.tx_packets, 2);

    /* 6. a frozen VF receives nothing and counts a drop */
    V[1].fn.mig_state = SIM_MIG_FREEZED;
    uint16_t before = used_idx(&V[1], 0);
    make_frame(fr, 60, BCAST, m0, 6);
    vf_send(&V[0], fr, 60);
    assert_int_equal(V[1].fn.ctr.rx_packets, 2);
    assert_int_equal(V[1].fn.ctr.rx_drops, 1);
    assert_int_equal(used_idx(&V[1], 0), before);
    assert_int_equal(V[2].fn.ctr.rx_packets, 3);
    /* a MAC that moves is relearned at once */
    V[1].fn.mig_state = SIM_MIG_RUNNING;
    make_frame(fr, 60, BCAST, x, 7);
    vf_send(&V[2], fr, 60);
    assert_int_equal(sim_sw_lookup(&S, x, &port), 1);
    assert_ptr_equal(port, &V[2].fn);
}

static void test_switch_table_bounded(void **state)
{
    uint8_t fr[60];
    uint8_t src[6] = { 0x02, 0xcc, 0, 0, 0, 0 };
    for (unsigned i = 0; i < SW_MAC_TABLE_SIZE + 10; i++) {
        src[3] = (uint8_t)(i >> 16);
        src[4] = (uint8_t)(i >> 8);
        src[5] = (uint8_t)i;
        make_frame(fr, 60, V[1].fn.net_cfg.mac, src, 0);
        sim_sw_input(&S, &V[0].fn, fr, 60, 0);
    }
    struct sim_fn *port;
    src[3] = 0; src[4] = 0; src[5] = 5;          /* among the oldest: replaced */
    assert_int_equal(sim_sw_lookup(&S, src, &port), 0);
    src[4] = (SW_MAC_TABLE_SIZE + 9) >> 8;       /* newest: present */
    src[5] = (uint8_t)(SW_MAC_TABLE_SIZE + 9);
    assert_int_equal(sim_sw_lookup(&S, src, &port), 1);
    assert_ptr_equal(port, &V[0].fn);
    /* forgetting a port removes its entries */
    sim_sw_forget_port(&S, &V[0].fn);
    assert_int_equal(sim_sw_lookup(&S, src, &port), 0);
}

static uint64_t seen_by(const struct tvf *v)
{
    return v->fn.ctr.rx_packets + v->fn.ctr.rx_drops;
}

/* A real learning bridge: a stopped or reset port keeps its MACs, a MAC seen
 * elsewhere (or announced) moves at once, an entry not seen for the ageing
 * time is gone. */
static void test_switch_keeps_moves_ages(void **state)
{
    uint8_t fr[60];
    uint8_t x[6] = { 0x52, 0x54, 0, 0, 0, 0x3a };
    struct sim_fn *port;
    make_frame(fr, 60, BCAST, x, 1);
    vf_send(&V[0], fr, 60);
    assert_int_equal(sim_sw_lookup(&S, x, &port), 1);
    assert_ptr_equal(port, &V[0].fn);

    /* V[0] stops (frozen for a migration, then reset): the entry stays and
     * frames to x are V[0]'s (dropped there), not V[2]'s */
    V[0].fn.mig_state = SIM_MIG_FREEZED;
    sim_net_reset(&V[0].fn);
    assert_int_equal(sim_sw_lookup(&S, x, &port), 1);
    assert_ptr_equal(port, &V[0].fn);
    uint64_t v0 = seen_by(&V[0]), v2 = seen_by(&V[2]);
    make_frame(fr, 60, x, V[1].fn.net_cfg.mac, 2);
    vf_send(&V[1], fr, 60);
    assert_int_equal(seen_by(&V[0]), v0 + 1);
    assert_int_equal(V[0].fn.ctr.rx_packets, 0);
    assert_int_equal(seen_by(&V[2]), v2);

    /* a frozen VF announces nothing; bad MACs are refused */
    assert_int_equal(sim_net_announce(&V[0].fn, x), -EBUSY);
    static const uint8_t mcast[6] = { 0x01, 0, 0x5e, 0, 0, 1 }, zero[6];
    assert_int_equal(sim_net_announce(&V[2].fn, mcast), -EINVAL);
    assert_int_equal(sim_net_announce(&V[2].fn, zero), -EINVAL);
    assert_int_equal(sim_net_announce(&V[2].fn, BCAST), -EINVAL);
    assert_int_equal(sim_sw_get_stats(&S)->announces, 0);

    /* V[2] announces x (its guest took the MAC): moved at once, flooded */
    uint64_t v1 = seen_by(&V[1]);
    assert_int_equal(sim_net_announce(&V[2].fn, x), 0);
    assert_int_equal(sim_sw_get_stats(&S)->announces, 1);
    assert_int_equal(sim_sw_lookup(&S, x, &port), 1);
    assert_ptr_equal(port, &V[2].fn);
    assert_int_equal(seen_by(&V[1]), v1 + 1);
    assert_int_equal(seen_by(&V[2]), v2);          /* never back to the sender */

    /* the ageing time passes without x being seen: gone, counted */
    S.opt.fdb_aging = 1;
    usleep(1100 * 1000);
    ev_now_update(S.loop);
    uint64_t aged = sim_sw_get_stats(&S)->aged;
    assert_int_equal(sim_sw_lookup(&S, x, &port), 0);
    assert_int_equal(sim_sw_get_stats(&S)->aged, aged + 1);
    /* seen again: learned again */
    make_frame(fr, 60, BCAST, x, 3);
    vf_send(&V[1], fr, 60);
    assert_int_equal(sim_sw_lookup(&S, x, &port), 1);
    assert_ptr_equal(port, &V[1].fn);
}

/* The announcement, byte for byte: broadcast, source mac, RARP (0x8035),
 * Ethernet/IPv4, opcode 3 (request reverse), both hardware addresses mac,
 * both protocol addresses 0, padded to 60 bytes. */
static void test_rarp_frame(void **state)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
    static const uint8_t want[SW_RARP_FRAME_LEN] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x80, 0x35,
        0, 1, 8, 0, 6, 4, 0, 3,
        0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0, 0, 0,
        0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0, 0, 0,
    };
    uint8_t f[SW_RARP_FRAME_LEN];
    memset(f, 0xee, sizeof(f));
    sim_sw_rarp_frame(f, mac);
    assert_memory_equal(f, want, sizeof(want));
}

/* ---- RX paths ---- */

static void test_mrg_rxbuf_9000(void **state)
{
    struct tvf *r = &V[1];
    r->fn.driver_features |= 1ull << VIRTIO_NET_F_MRG_RXBUF;
    uint64_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = rx_post(r, 0, 2048);
    static uint8_t fr[9000];
    make_frame(fr, sizeof(fr), r->fn.net_cfg.mac, V[0].fn.net_cfg.mac, 9);
    vf_send(&V[0], fr, sizeof(fr));

    /* 12 + 9000 bytes = 4 full buffers + 820 */
    assert_int_equal(used_idx(r, 0), 5);
    assert_int_equal(Q(r, 0)->last_avail, 5);
    static uint8_t got[5 * 2048];
    size_t off = 0;
    for (unsigned i = 0; i < 5; i++) {
        uint32_t id, len;
        used_elem(r, 0, i, &id, &len);
        assert_int_equal(id, i);
        assert_int_equal(len, i < 4 ? 2048 : 820);
        memcpy(got + off, G(r, b[i]), len);
        assert_true(fake_written(&r->fn, b[i], len));
        off += len;
    }
    assert_int_equal(off, HDR + 9000);
    uint16_t nb;
    memcpy(&nb, got + 10, 2);
    assert_int_equal(nb, 5);
    assert_memory_equal(got + HDR, fr, 9000);
    assert_false(fake_written(&r->fn, b[4] + 820, 1));   /* nothing past the frame */
    assert_int_equal(r->fn.ctr.rx_packets, 1);
    assert_int_equal(r->fn.ctr.rx_bytes, 9000);
    assert_int_equal(fake.irqs[1][0], 1);

    /* only 3 buffers left: the frame is dropped and they stay available */
    vf_send(&V[0], fr, sizeof(fr));
    assert_int_equal(r->fn.ctr.rx_drops, 1);
    assert_int_equal(used_idx(r, 0), 5);
    assert_int_equal(Q(r, 0)->last_avail, 5);
    assert_int_equal(sim_vq_avail_count(Q(r, 0)), 3);
}

static void test_no_mrg_single_chain(void **state)
{
    struct tvf *r = &V[2];
    uint8_t fr[1500];
    make_frame(fr, sizeof(fr), r->fn.net_cfg.mac, V[0].fn.net_cfg.mac, 11);
    rx_post(r, 0, 1024);
    vf_send(&V[0], fr, sizeof(fr));
    assert_int_equal(r->fn.ctr.rx_drops, 1);
    assert_int_equal(Q(r, 0)->last_avail, 0);   /* too small: left for the next frame */
    assert_int_equal(used_idx(r, 0), 0);

    /* a two-descriptor chain that holds it */
    uint64_t b1 = buf_alloc(r, 1000), b2 = buf_alloc(r, 1000);
    struct tvf *v = r;
    /* the 1024 buffer is still first in the ring: the next frame uses it */
    uint8_t small[100];
    make_frame(small, sizeof(small), r->fn.net_cfg.mac, V[0].fn.net_cfg.mac, 12);
    vf_send(&V[0], small, sizeof(small));
    assert_int_equal(r->fn.ctr.rx_packets, 1);
    set_desc(v, 0, 10, b1, 1000, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 11);
    set_desc(v, 0, 11, b2, 1000, VRING_DESC_F_WRITE, 0);
    avail_add(v, 0, 10);
    vf_send(&V[0], fr, sizeof(fr));
    assert_int_equal(r->fn.ctr.rx_packets, 2);
    uint32_t id, len;
    used_elem(r, 0, 1, &id, &len);
    assert_int_equal(id, 10);
    assert_int_equal(len, HDR + 1500);
    uint16_t nb;
    memcpy(&nb, G(r, b1) + 10, 2);
    assert_int_equal(nb, 1);
    assert_memory_equal(G(r, b1) + HDR, fr, 1000 - HDR);
    assert_memory_equal(G(r, b2), fr + 1000 - HDR, 1500 - (1000 - HDR));
}

static void test_tx_bad_length(void **state)
{
    struct tvf *v = &V[0];
    uint8_t fr[10] = { 0 };
    vf_send(v, fr, sizeof(fr));
    assert_int_equal(v->fn.ctr.tx_drops, 1);
    assert_int_equal(v->fn.ctr.tx_packets, 0);
    assert_int_equal(used_idx(v, 1), 1);   /* completed anyway */
    assert_false(needs_reset(v));
}

static void test_tx_batching(void **state)
{
    struct tvf *v = &V[0];
    Q(v, 1)->size = 512;
    uint8_t fr[64];
    make_frame(fr, sizeof(fr), BCAST, v->fn.net_cfg.mac, 0);
    for (int i = 0; i < 300; i++)
        tx_post1(v, 1, fr, sizeof(fr));
    sim_net_queue_notify(&v->fn, 1);
    assert_int_equal(v->fn.ctr.tx_packets, NET_TX_BATCH);
    assert_int_equal(used_idx(v, 1), NET_TX_BATCH);
    for (int i = 0; i < 5 && v->fn.ctr.tx_packets < 300; i++)
        ev_run(S.loop, EVRUN_NOWAIT);
    assert_int_equal(v->fn.ctr.tx_packets, 300);
    assert_int_equal(used_idx(v, 1), 300);
}

static void test_quiesced_and_resume(void **state)
{
    struct tvf *v = &V[0];
    rx_post(&V[1], 0, 2048);
    uint8_t fr[64];
    make_frame(fr, sizeof(fr), V[1].fn.net_cfg.mac, v->fn.net_cfg.mac, 0);
    v->fn.mig_state = SIM_MIG_QUIESCED;
    vf_send(v, fr, sizeof(fr));
    assert_int_equal(Q(v, 1)->last_avail, 0);
    assert_int_equal(used_idx(v, 1), 0);
    v->fn.mig_state = SIM_MIG_RUNNING;
    v->fn.dma_stalled = true;
    sim_net_resume(&v->fn);
    assert_int_equal(used_idx(v, 1), 0);
    v->fn.dma_stalled = false;
    sim_net_resume(&v->fn);
    assert_int_equal(used_idx(v, 1), 1);
    assert_int_equal(V[1].fn.ctr.rx_packets, 1);
}

/* ---- control queue ---- */

static uint8_t ctrl(struct tvf *v, const uint8_t *cmd, uint32_t len)
{
    uint64_t c = buf_alloc(v, len), a = buf_alloc(v, 1);
    memcpy(G(v, c), cmd, len);
    *G(v, a) = 0x77;
    uint16_t d0 = take_desc(v, CTRLQ), d1 = take_desc(v, CTRLQ);
    set_desc(v, CTRLQ, d0, c, len, VRING_DESC_F_NEXT, d1);
    set_desc(v, CTRLQ, d1, a, 1, VRING_DESC_F_WRITE, 0);
    avail_add(v, CTRLQ, d0);
    uint16_t before = used_idx(v, CTRLQ);
    sim_net_queue_notify(&v->fn, CTRLQ);
    assert_int_equal(used_idx(v, CTRLQ), (uint16_t)(before + 1));
    return *G(v, a);
}

static void test_ctrl_queue(void **state)
{
    struct tvf *v = &V[1];
    assert_int_equal(sim_net_ctrl_index(&v->fn), CTRLQ);
    const uint8_t pairs2[] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0 };
    const uint8_t pairs0[] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 0, 0 };
    const uint8_t pairs3[] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 3, 0 };
    const uint8_t promisc[] = { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, 1 };
    const uint8_t allmulti[] = { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, 1 };
    const uint8_t macset[] = { VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, 2, 0, 0, 0, 0, 1 };
    assert_int_equal(ctrl(v, pairs0, 4), VIRTIO_NET_ERR);
    assert_int_equal(ctrl(v, pairs3, 4), VIRTIO_NET_ERR);
    assert_int_equal(v->fn.active_pairs, 1);
    assert_int_equal(ctrl(v, pairs2, 4), VIRTIO_NET_OK);
    assert_int_equal(v->fn.active_pairs, 2);
    assert_int_equal(ctrl(v, promisc, 3), VIRTIO_NET_OK);
    assert_int_equal(ctrl(v, allmulti, 3), VIRTIO_NET_OK);
    assert_int_equal(v->fn.rx_mode, 3);
    assert_int_equal(ctrl(v, macset, 8), VIRTIO_NET_ERR);

    /* with 2 pairs, a frame sent on VF 1's pair 1 lands in VF 2's rx queue 2 */
    uint64_t b0 = rx_post(v, 0, 2048), b2 = rx_post(v, 2, 2048);
    uint8_t fr[64];
    make_frame(fr, sizeof(fr), v->fn.net_cfg.mac, V[0].fn.net_cfg.mac, 3);
    tx_post(&V[0], 3, fr, sizeof(fr));
    sim_net_queue_notify(&V[0].fn, 3);
    assert_int_equal(used_idx(v, 2), 1);
    assert_int_equal(used_idx(v, 0), 0);
    assert_memory_equal(G(v, b2) + HDR, fr, sizeof(fr));
    (void)b0;

    /* reset forgets the ring state and the pairs */
    sim_net_reset(&v->fn);
    assert_int_equal(v->fn.active_pairs, 1);
    assert_int_equal(Q(v, 2)->last_avail, 0);
    assert_int_equal(Q(v, 2)->used_idx, 0);
}

/* ---- uplink ---- */

static void test_uplink_parse(void **state)
{
    uint16_t l, r;
    uint32_t a, la;
    assert_int_equal(sim_uplink_parse("udp:4000,127.0.0.1:4001", &l, &la, &a, &r), 0);
    assert_int_equal(la, htonl(0x7f000001));
    assert_int_equal(l, 4000);
    assert_int_equal(r, 4001);
    assert_int_equal(a, htonl(0x7f000001));
    assert_int_equal(sim_uplink_parse("udp:4000,localhost:4001", &l, &la, &a, &r), 0);
    assert_int_equal(ntohl(a) >> 24, 127);
    assert_int_equal(sim_uplink_parse("udp:4000,10.1.2.3:4001", &l, &la, &a, &r), -EINVAL);  /* not loopback */
    assert_int_equal(sim_uplink_parse("tcp:4000,127.0.0.1:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:0,127.0.0.1:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:4000,127.0.0.1:70000", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:4000,127.0.0.1", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:40x0,127.0.0.1:1", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:4000,:4001", &l, &la, &a, &r), -EINVAL);
    /* a local address (a veth end between two namespaces) allows a unicast peer */
    assert_int_equal(sim_uplink_parse("udp:192.0.2.1:4000,192.0.2.2:4001", &l, &la, &a, &r), 0);
    assert_int_equal(la, htonl(0xc0000201));
    assert_int_equal(a, htonl(0xc0000202));
    assert_int_equal(l, 4000);
    assert_int_equal(r, 4001);
    assert_int_equal(sim_uplink_parse("udp:127.0.0.2:4000,127.0.0.1:4001", &l, &la, &a, &r), 0);
    assert_int_equal(sim_uplink_parse("udp:127.0.0.1:4000,10.1.2.3:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:192.0.2.1:4000,224.0.0.1:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:192.0.2.1:4000,255.255.255.255:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:192.0.2.1:4000,0.0.0.0:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:0.0.0.0:4000,192.0.2.2:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:host:4000,192.0.2.2:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp::4000,192.0.2.2:4001", &l, &la, &a, &r), -EINVAL);
    assert_int_equal(sim_uplink_parse("udp:192.0.2.1:,192.0.2.2:4001", &l, &la, &a, &r), -EINVAL);
}

static int udp_bound(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void send_dgram(int fd, uint16_t port, const void *buf, size_t len)
{
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)len);
}

static void run_loop_briefly(void)
{
    for (int i = 0; i < 20; i++)
        ev_run(S.loop, EVRUN_NOWAIT);
}

static void test_uplink_exchange(void **state)
{
    uint16_t peer_port, local_port;
    int peer = udp_bound(&peer_port);
    int tmp = udp_bound(&local_port);   /* reserve a free port number for the sim */
    close(tmp);
    char spec[64];
    snprintf(spec, sizeof(spec), "udp:%u,127.0.0.1:%u", local_port, peer_port);
    assert_int_equal(sim_uplink_open(&S, spec), 0);
    assert_true(sim_uplink_present(&S));
    for (unsigned i = 0; i < NVF; i++)
        for (unsigned k = 0; k < 4; k++)
            rx_post(&V[i], 0, 2048);

    /* VF 1's broadcast leaves on the uplink, byte-exact, one per datagram */
    uint8_t fr[200], got[400];
    make_frame(fr, sizeof(fr), BCAST, V[0].fn.net_cfg.mac, 21);
    vf_send(&V[0], fr, sizeof(fr));
    struct pollfd pfd = { .fd = peer, .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    assert_int_equal(recv(peer, got, sizeof(got), 0), (ssize_t)sizeof(fr));
    assert_memory_equal(got, fr, sizeof(fr));
    assert_int_equal(sim_uplink_get_stats(&S)->tx_packets, 1);

    /* a frame from the peer reaches VF 2 by its MAC; its source is learned on the uplink */
    uint8_t remote[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
    make_frame(fr, 120, V[1].fn.net_cfg.mac, remote, 22);
    send_dgram(peer, local_port, fr, 120);
    for (int i = 0; i < 100 && V[1].fn.ctr.rx_packets < 2; i++) {
        poll(NULL, 0, 5);
        run_loop_briefly();
    }
    assert_int_equal(V[1].fn.ctr.rx_packets, 2);   /* the broadcast, then this */
    assert_int_equal(V[2].fn.ctr.rx_packets, 1);   /* only the broadcast */
    struct sim_fn *port = &V[0].fn;
    assert_int_equal(sim_sw_lookup(&S, remote, &port), 1);
    assert_null(port);

    /* runts and datagrams from strangers are dropped */
    send_dgram(peer, local_port, fr, 10);
    int stranger = udp_bound(&peer_port);
    send_dgram(stranger, local_port, fr, 120);
    for (int i = 0; i < 100 && sim_uplink_get_stats(&S)->rx_drops < 2; i++) {
        poll(NULL, 0, 5);
        run_loop_briefly();
    }
    assert_int_equal(sim_uplink_get_stats(&S)->rx_drops, 2);
    assert_int_equal(V[1].fn.ctr.rx_packets, 2);

    /* unicast to the remote MAC goes to the uplink only */
    make_frame(fr, 90, remote, V[2].fn.net_cfg.mac, 23);
    vf_send(&V[2], fr, 90);
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    assert_int_equal(recv(peer, got, sizeof(got), 0), 90);
    assert_memory_equal(got, fr, 90);
    assert_int_equal(V[0].fn.ctr.rx_packets, 0);
    assert_int_equal(V[1].fn.ctr.rx_packets, 2);
    close(stranger);
    close(peer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_simple_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect_not_negotiated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_detection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_desc_outside_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_in_readonly_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_then_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect_bad_len_and_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_indices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_interrupt_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_learning_flood_no_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_table_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_keeps_moves_ages, setup, teardown),
        cmocka_unit_test(test_rarp_frame),
        cmocka_unit_test_setup_teardown(test_mrg_rxbuf_9000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_mrg_single_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_bad_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_batching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quiesced_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctrl_queue, setup, teardown),
        cmocka_unit_test(test_uplink_parse),
        cmocka_unit_test_setup_teardown(test_uplink_exchange, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
