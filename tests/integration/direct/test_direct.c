/*
 * Direct mode (drivers/vdpa/virtio/vdpa_vf_direct.c) against the sim: a VF
 * driven through its own common configuration, with no PF admin queue at all
 * (the sim's PF is never opened).  The test plays the front-end: guest memory
 * in two memfd regions, split rings, kick and call eventfds.  Frames cross
 * byte-exact both ways; a stop resets the device and reports each ring's used
 * index from guest memory; a start at another index is refused before the
 * device is touched, a start after the front-end reset its rings runs again;
 * dirty tracking runs in software only (device modes refused) and marks the
 * pages the device wrote; announce is refused.  Then again over a transport
 * without ioeventfds (as kernel VFIO can be): the kicks are relayed by the
 * loop and frames still flow.  A start reads the device only asynchronously
 * (the sim transport's synchronous reads are counted: none), and fails
 * after the transport's bound when a read is never answered; the transport
 * without asynchronous reads (as kernel VFIO) reads in place and runs too.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "drivers/common/virtio/vfe_vring.h"
#include "drivers/vdpa/virtio/vdpa_vf.h"
#include "tests/lib/check.h"
#include "tests/lib/test_front.h"
#include "tests/lib/test_vf.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"

static void run_loop(void)
{
    ev_run(EV_DEFAULT, EVRUN_NOWAIT);
}

/* ---- the guest accessors a session would give the VF ---- */

static void *g_host(void *ctx, uint64_t gpa, uint64_t len)
{
    struct test_front *f = ctx;
    if (gpa >= TEST_FRONT_GPA_B && gpa - TEST_FRONT_GPA_B <= TEST_FRONT_REG_SIZE && len <= TEST_FRONT_REG_SIZE - (gpa - TEST_FRONT_GPA_B))
        return test_front_gpa(f, gpa);
    if (gpa < TEST_FRONT_GPA_A + TEST_FRONT_REG_SIZE && len <= TEST_FRONT_REG_SIZE - gpa)
        return test_front_gpa(f, gpa);
    return NULL;
}

static unsigned g_regions(void *ctx, struct vdpa_swlog_span *out, unsigned max)
{
    if (max < 2)
        return 0;
    out[0] = (struct vdpa_swlog_span){TEST_FRONT_GPA_A, TEST_FRONT_REG_SIZE};
    out[1] = (struct vdpa_swlog_span){TEST_FRONT_GPA_B, TEST_FRONT_REG_SIZE};
    return 2;
}

static int g_ring(void *ctx, uint16_t q, struct vdpa_swlog_ring *out)
{
    struct test_front *f = ctx;
    const struct vfe_vring *r = q == 0 ? &f->rx : q == 1 ? &f->tx : NULL;
    if (!r)
        return 0;
    *out = (struct vdpa_swlog_ring){TEST_FRONT_QSIZE, r->desc_iova, r->avail_iova, r->used_iova};
    return 1;
}

/* ---- a transport that offers no ioeventfd: the sim's, every other op forwarded ---- */

struct no_ioev {
    struct vfe_transport t;
    struct vfe_transport *in;
    unsigned refused;
};

#define IN(t) (((struct no_ioev *)(t))->in)
static int f_region_info(struct vfe_transport *t, uint32_t i, struct vfe_region_info *info)
{ return IN(t)->ops->region_info(IN(t), i, info); }
static int f_read(struct vfe_transport *t, uint32_t i, uint64_t off, void *buf, size_t len)
{ return IN(t)->ops->region_read(IN(t), i, off, buf, len); }
static int f_write(struct vfe_transport *t, uint32_t i, uint64_t off, const void *buf, size_t len)
{ return IN(t)->ops->region_write(IN(t), i, off, buf, len); }
static int f_mmap_fd(struct vfe_transport *t, uint32_t i, uint64_t off, uint64_t len, int *fd, uint64_t *fo)
{ return IN(t)->ops->region_mmap_fd(IN(t), i, off, len, fd, fo); }
static int f_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t off, uint32_t prot)
{ return IN(t)->ops->dma_map(IN(t), iova, len, fd, off, prot); }
static int f_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len)
{ return IN(t)->ops->dma_unmap(IN(t), iova, len); }
static int f_irqs(struct vfe_transport *t, uint32_t idx, uint32_t start, uint32_t count, const int *fds)
{ return IN(t)->ops->set_irqs(IN(t), idx, start, count, fds); }
static int f_reset(struct vfe_transport *t) { return IN(t)->ops->reset(IN(t)); }
static void f_close(struct vfe_transport *t) { vfe_transport_close(IN(t)); }
static int f_ioeventfd(struct vfe_transport *t, uint32_t region, uint64_t off, uint32_t size, uint64_t data, int fd)
{
    ((struct no_ioev *)t)->refused++;
    return -EOPNOTSUPP;
}
static const struct vfe_transport_ops no_ioev_ops = {
    .region_info = f_region_info, .region_read = f_read, .region_write = f_write, .region_mmap_fd = f_mmap_fd,
    .dma_map = f_map, .dma_unmap = f_unmap, .set_irqs = f_irqs, .ioeventfd = f_ioeventfd, .reset = f_reset,
    .close = f_close,
};

/* ---- the sim's own transport, its synchronous reads counted ---- */

static const struct vfe_transport_ops *real_ops;
static struct vfe_transport_ops counted_ops;
static unsigned sync_reads;

static int counted_read(struct vfe_transport *t, uint32_t i, uint64_t off, void *buf, size_t len)
{
    sync_reads++;
    return real_ops->region_read(t, i, off, buf, len);
}

/* While set, asynchronous reads of a ring's size (common config offset 24,
 * 2 bytes) are taken and never answered: a device that stops answering in
 * the middle of a start. */
static bool swallow_qsize;
static unsigned swallowed;

static int filtered_read_async(struct vfe_transport *t, uint32_t i, uint64_t off, size_t len, vfe_read_cb cb,
                               void *ctx)
{
    if (swallow_qsize && len == 2 && off % 4096 == VFE_CC_Q_SIZE) {
        swallowed++;
        return 0;
    }
    return real_ops->region_read_async(t, i, off, len, cb, ctx);
}

static void count_sync_reads(struct vfe_transport *t)
{
    real_ops = t->ops;
    counted_ops = *t->ops;
    counted_ops.region_read = counted_read;
    counted_ops.region_read_async = filtered_read_async;
    t->ops = &counted_ops;
}

static int wait_op(struct test_front_op *w, int rc)
{
    if (rc < 0)
        return rc;
    CHECK(!w->done, "completion ran inside the call");
    long end = check_now_ms() + TEST_FRONT_TMO_MS;
    while (!w->done && check_now_ms() < end)
        ev_run(EV_DEFAULT, EVRUN_ONCE);
    return w->done ? w->err : -ETIMEDOUT;
}

/* tx frames whose kick only the loop can deliver: it runs while the peer waits */
static void traffic_relayed(struct test_front *f, struct test_vf *peer, const uint8_t vmac[6], unsigned n, uint32_t seed)
{
    uint8_t out[1600], in[1600];
    for (unsigned i = 0; i < n; i++) {
        size_t len = 60 + (i * 97) % 1400;
        vfe_fe_frame(out, len, peer->mac, vmac, seed + i);
        CHECK(test_front_send(f, out, len) == 0, "frame %u not sent", i);
        int got = -1;
        long end = check_now_ms() + TEST_FRONT_TMO_MS;
        while (got < 0 && check_now_ms() < end) {
            ev_run(EV_DEFAULT, EVRUN_NOWAIT);
            got = guest_net_recv(peer->g, 0, in, sizeof(in), 5);
        }
        CHECK(got == (int)len && memcmp(in, out, len) == 0, "relayed frame %u out of the direct VF: %d", i, got);
    }
}

static bool marked(const uint8_t *lb, uint64_t gpa)
{
    return lb[gpa / 4096 / 8] >> (gpa / 4096 % 8) & 1;
}

int main(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "2", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    struct test_vf peer = {0};
    struct test_front f = {0};
    struct vfe_transport *t1 = NULL;
    struct vdpa_vf *v = NULL;
    struct guest_mem log = {0};
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true};
    REQUIRE(test_vf_open(&peer, &sp, VF2, &o) == 0, out, "peer VF");
    REQUIRE(test_front_init(&f) == 0, out, "front-end memory and rings");
    f.waiting = run_loop;   /* software logging passes run while a frame is awaited */
    REQUIRE(vfe_transport_open(sp.root, VF1, &t1) == 0, out, "VF1 transport");
    v = vdpa_vf_open(EV_DEFAULT, NULL, 0, t1, "vm-direct");
    REQUIRE(v != NULL, out, "vdpa_vf_open without a PF");
    CHECK(!strcmp(vdpa_vf_mode(v), "direct"), "mode %s", vdpa_vf_mode(v));
    /* the sim's VF has 4 pairs and MQ, but without our control queue it uses one: one is offered */
    CHECK(vdpa_vf_max_pairs(v) == 1 && !(vdpa_vf_device_features(v) & (1ull << VIRTIO_NET_F_MQ)),
          "direct mode offers %u pairs, features %#llx", vdpa_vf_max_pairs(v),
          (unsigned long long)vdpa_vf_device_features(v));
    const struct vdpa_swlog_guest g = {g_host, g_regions, g_ring, &f};
    vdpa_vf_set_guest(v, &g);
    uint8_t vmac[6];
    vdpa_vf_mac(v, vmac);

    struct vdpa_region regs[2] = {{TEST_FRONT_GPA_A, TEST_FRONT_REG_SIZE, f.a.fd, 0}, {TEST_FRONT_GPA_B, TEST_FRONT_REG_SIZE, f.b.fd, 0}};
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem");
    for (uint16_t q = 0; q < 2; q++) {
        CHECK(vdpa_vf_set_kick(v, q, f.kick[q]) == 0, "kick %u", q);
        CHECK(vdpa_vf_set_call(v, q, f.call[q]) == 0, "call %u", q);
    }
    /* the front-end may offer control-queue features: the device does not get them */
    uint64_t feat = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF | 1ull << VIRTIO_NET_F_CTRL_VQ |
                    1ull << VIRTIO_NET_F_MQ;
    struct vdpa_ring r[2];
    test_front_vdpa_rings(&f, r, 0, 0);
    struct test_front_op w = {0};
    /* the loop never waits for the device: the start reads nothing synchronously */
    count_sync_reads(t1);
    REQUIRE(wait_op(&w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w)) == 0, out, "direct start");
    CHECK(sync_reads == 0, "the direct start made %u synchronous reads on the loop", sync_reads);
    CHECK(vdpa_vf_state(v) == VDPA_VF_RUNNING, "state %s", vdpa_vf_state_name(vdpa_vf_state(v)));
    test_front_traffic(&f, &peer, vmac, 20, 1, "direct VF");
    uint64_t calls = 0;
    CHECK(read(f.call[0], &calls, sizeof(calls)) == sizeof(calls) && calls > 0, "no rx interrupt");
    memset(&w, 0, sizeof(w));
    CHECK(vdpa_vf_announce(v, vmac, test_front_done, &w) == -EOPNOTSUPP, "announce without an admin queue");

    /* stop: the device is reset, the indices come from the used rings in guest memory */
    memset(&w, 0, sizeof(w));
    REQUIRE(wait_op(&w, vdpa_vf_stop(v, test_front_stopped, &w)) == 0, out, "direct stop");
    CHECK(w.n == 2 && w.idx[0] == 20 && w.idx[1] == 20, "indices after stop: n %u, %u %u", w.n, w.idx[0], w.idx[1]);
    CHECK(vdpa_vf_state(v) == VDPA_VF_STOPPED, "state %s", vdpa_vf_state_name(vdpa_vf_state(v)));
    /* stopped: a frame for the VF is dropped, not written into guest memory */
    uint8_t fr[100];
    vfe_fe_frame(fr, sizeof(fr), vmac, peer.mac, 77);
    long long drops = test_sim_counter(&sp, VF1, "rx_drops");
    uint16_t used_before = f.rx.used->idx;
    CHECK(guest_net_send(peer.g, 0, fr, sizeof(fr)) == 0, "send to the stopped VF");
    guest_net_reclaim_tx(peer.g, 0);
    long end = check_now_ms() + TEST_FRONT_TMO_MS;
    while (test_sim_counter(&sp, VF1, "rx_drops") == drops && check_now_ms() < end)
        usleep(2000);
    CHECK(test_sim_counter(&sp, VF1, "rx_drops") == drops + 1, "stopped VF did not drop");
    CHECK(f.rx.used->idx == used_before, "the stopped VF wrote a used entry");

    /* virtio cannot start a ring at index 20: refused at once, nothing written */
    test_front_vdpa_rings(&f, r, 20, 20);
    memset(&w, 0, sizeof(w));
    CHECK(vdpa_vf_start(v, feat, r, 2, test_front_done, &w) == -EOPNOTSUPP, "start at index 20 accepted");
    CHECK(vdpa_vf_state(v) == VDPA_VF_STOPPED && !w.done, "a refused start changed the VF");

    /* the device does not answer a read of the start: it fails after the bound, the loop ran meanwhile */
    test_front_vdpa_rings(&f, r, 0, 0);
    swallow_qsize = true;
    t1->timeout_ms = 300;
    memset(&w, 0, sizeof(w));
    long t0 = check_now_ms();
    int unanswered = wait_op(&w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w));
    long took = check_now_ms() - t0;
    swallow_qsize = false;
    t1->timeout_ms = VFE_TRANSPORT_TIMEOUT_MS;
    printf("measure: a start whose read is never answered failed after %ld ms (bound 300 ms)\n", took);
    CHECK(unanswered == -ETIMEDOUT && swallowed > 0 && took >= 250 && took < 1500,
          "start with an unanswered read: %d after %ld ms (%u reads taken)", unanswered, took, swallowed);
    CHECK(vdpa_vf_state(v) == VDPA_VF_STOPPED, "state %s after the failed start", vdpa_vf_state_name(vdpa_vf_state(v)));
    CHECK(sync_reads == 0, "the failed start made %u synchronous reads", sync_reads);

    /* the guest driver resets its rings: runs again from 0 */
    REQUIRE(test_front_rings(&f) == 0, out, "fresh rings");
    test_front_vdpa_rings(&f, r, 0, 0);
    memset(&w, 0, sizeof(w));
    sync_reads = 0;
    REQUIRE(wait_op(&w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w)) == 0, out, "restart on fresh rings");
    CHECK(sync_reads == 0, "the restart made %u synchronous reads on the loop", sync_reads);
    test_front_traffic(&f, &peer, vmac, 10, 100, "direct VF");

    /* dirty tracking: device modes are refused, software marks what the device wrote */
    size_t log_size = (size_t)((TEST_FRONT_GPA_B + TEST_FRONT_REG_SIZE) / 4096 / 8);
    REQUIRE(guest_mem_create(&log, 4096) == 0 && log_size <= 4096, out, "log memory");
    vdpa_vf_set_default_dirty_mode(VDPA_DIRTY_PUSH);
    memset(&w, 0, sizeof(w));
    CHECK(vdpa_vf_log_start(v, log.fd, 0, log_size, test_front_done, &w) == -EOPNOTSUPP, "push tracking in direct mode");
    vdpa_vf_set_default_dirty_mode(VDPA_DIRTY_AUTO);
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&w, vdpa_vf_log_start(v, log.fd, 0, log_size, test_front_done, &w)) == 0, "log start");
    const char *mode = vdpa_vf_dirty_tracking(v);
    CHECK(mode && !strcmp(mode, "software"), "tracking %s", mode ? mode : "off");
    memset(log.va, 0, 4096);
    test_front_traffic(&f, &peer, vmac, 5, 200, "direct VF");
    /* the final pass of a stop covers everything the device wrote before it */
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&w, vdpa_vf_stop(v, test_front_stopped, &w)) == 0 && w.idx[0] == 15 && w.idx[1] == 15,
          "stop while logging: %u %u", w.idx[0], w.idx[1]);
    const uint8_t *lb = log.va;
    CHECK(marked(lb, f.rx.used_iova), "rx used ring page not marked");
    CHECK(marked(lb, f.tx.used_iova), "tx used ring page not marked");
    for (uint64_t gpa = f.rx_buf0 + 10 * TEST_FRONT_BUF; gpa < f.rx_buf0 + 15 * TEST_FRONT_BUF; gpa += 4096)
        CHECK(marked(lb, gpa), "rx buffer page %#llx not marked", (unsigned long long)gpa);
    /* and only that: not the whole memory (an overrun would mark every page) */
    CHECK(!marked(lb, TEST_FRONT_GPA_B + TEST_FRONT_REG_SIZE - 4096), "an untouched page is marked");
    struct vdpa_swlog_stats sw;
    CHECK(vdpa_vf_swlog_stats(v, &sw) == 0 && sw.passes > 0 && sw.overruns == 0, "software log passes %llu, "
          "overruns %llu", (unsigned long long)sw.passes, (unsigned long long)sw.overruns);
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&w, vdpa_vf_log_stop(v, test_front_done, &w)) == 0, "log stop");
    CHECK(vdpa_vf_dirty_tracking(v) == NULL, "tracking after log stop");

    /* no ioeventfd: the same VF, its kicks relayed by the loop */
    vdpa_vf_set_guest(v, NULL);
    vdpa_vf_close(v);
    v = NULL;
    struct no_ioev ni = {.t = {.ops = &no_ioev_ops, .timeout_ms = VFE_TRANSPORT_TIMEOUT_MS}, .in = t1};
    snprintf(ni.t.bdf, sizeof(ni.t.bdf), "%s", VF1);
    v = vdpa_vf_open(EV_DEFAULT, NULL, 0, &ni.t, NULL);
    REQUIRE(v != NULL, out, "vdpa_vf_open over a transport without ioeventfds");
    vdpa_vf_set_guest(v, &g);
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem (no ioeventfd)");
    for (uint16_t q = 0; q < 2; q++) {
        CHECK(vdpa_vf_set_kick(v, q, f.kick[q]) == 0, "kick %u relayed", q);
        CHECK(vdpa_vf_set_call(v, q, f.call[q]) == 0, "call %u", q);
    }
    CHECK(ni.refused == 2, "ioeventfd asked %u times", ni.refused);
    REQUIRE(test_front_rings(&f) == 0, out, "fresh rings");
    test_front_vdpa_rings(&f, r, 0, 0);
    memset(&w, 0, sizeof(w));
    REQUIRE(wait_op(&w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w)) == 0, out, "start without ioeventfds");
    traffic_relayed(&f, &peer, vmac, 10, 400);
    CHECK(vdpa_vf_set_kick(v, 1, -1) == 0, "kick detached");
out:
    if (v) {
        struct test_front_op ws = {0};
        wait_op(&ws, vdpa_vf_stop(v, test_front_stopped, &ws));
        vdpa_vf_set_guest(v, NULL);
        vdpa_vf_close(v);
    }
    vfe_transport_close(t1);
    test_vf_close(&peer);
    test_front_fini(&f);
    if (log.va)
        guest_mem_destroy(&log);
    CHECK(sim_proc_alive(&sp), "sim died");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("direct");
}
