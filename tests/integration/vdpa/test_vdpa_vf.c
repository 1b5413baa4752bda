/*
 * The device half of vDPA (drivers/vdpa/virtio/vdpa_vf) against the sim, with
 * the test playing the front-end: guest memory in two memfd regions, split
 * rings written by the test, kick and call eventfds.  Frames cross between
 * the accelerated VF and a plain VF byte-exact; stop returns the ring indices
 * and a restart continues from them; the device's dirty log marks the pages
 * it wrote; a changed memory table is applied as a diff.
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
#include "tests/lib/test_pf.h"
#include "tests/lib/test_vf.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define TMO 3000
#define QSIZE 256
#define REG_SIZE (8u << 20)
#define GPA_A 0x0ull          /* rings */
#define GPA_B 0x1000000ull    /* buffers */
#define BUF 2048u
#define HDR 12u

struct front {
    struct guest_mem a, b;
    struct vfe_vring rx, tx;
    int kick[2], call[2];
    uint64_t rx_buf0, tx_buf0;   /* GPAs of the buffer areas in region B */
    unsigned tx_next;
};

static uint8_t *gpa_ptr(struct front *f, uint64_t gpa)
{
    return gpa >= GPA_B ? (uint8_t *)f->b.va + (gpa - GPA_B) : (uint8_t *)f->a.va + (gpa - GPA_A);
}

static void post_rx(struct front *f, unsigned i)
{
    struct vfe_sg sg = {f->rx_buf0 + (uint64_t)(i % QSIZE) * BUF, BUF};
    vfe_vring_add(&f->rx, &sg, 0, 1, (void *)(uintptr_t)(i % QSIZE + 1));
}

static int front_init(struct front *f)
{
    memset(f, 0, sizeof(*f));
    if (guest_mem_create(&f->a, REG_SIZE) < 0 || guest_mem_create(&f->b, REG_SIZE) < 0)
        return -1;
    size_t rsz = vfe_vring_mem_size(QSIZE);
    if (vfe_vring_init(&f->rx, QSIZE, f->a.va, GPA_A, false) < 0 ||
        vfe_vring_init(&f->tx, QSIZE, (uint8_t *)f->a.va + 0x100000, GPA_A + 0x100000, false) < 0 ||
        rsz > 0x100000)
        return -1;
    f->rx_buf0 = GPA_B;
    f->tx_buf0 = GPA_B + QSIZE * BUF;
    for (unsigned i = 0; i < QSIZE; i++)
        post_rx(f, i);
    vfe_vring_publish(&f->rx);
    for (int i = 0; i < 2; i++) {
        f->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        f->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    return 0;
}

static void front_fini(struct front *f)
{
    vfe_vring_fini(&f->rx);
    vfe_vring_fini(&f->tx);
    for (int i = 0; i < 2; i++) {
        if (f->kick[i] > 0)
            close(f->kick[i]);
        if (f->call[i] > 0)
            close(f->call[i]);
    }
    if (f->a.va)
        guest_mem_destroy(&f->a);
    if (f->b.va)
        guest_mem_destroy(&f->b);
}

static void rings(struct front *f, struct vdpa_ring r[2], uint16_t rx_base, uint16_t tx_base)
{
    r[0] = (struct vdpa_ring){true, QSIZE, f->rx.desc_iova, f->rx.avail_iova, f->rx.used_iova, rx_base};
    r[1] = (struct vdpa_ring){true, QSIZE, f->tx.desc_iova, f->tx.avail_iova, f->tx.used_iova, tx_base};
}

/* Wait for one frame on the accelerated VF's rx ring; its length or -1. */
static int front_recv(struct front *f, uint8_t *out, size_t cap)
{
    long end = check_now_ms() + TMO;
    uint32_t len;
    void *cookie;
    while (!(cookie = vfe_vring_get_used(&f->rx, &len))) {
        if (check_now_ms() > end)
            return -1;
        struct pollfd p = {.fd = f->call[0], .events = POLLIN};
        poll(&p, 1, 10);
    }
    unsigned slot = (unsigned)(uintptr_t)cookie - 1;
    const uint8_t *buf = gpa_ptr(f, f->rx_buf0 + (uint64_t)slot * BUF);
    int n = len > HDR && len - HDR <= cap ? (int)(len - HDR) : -1;
    if (n > 0)
        memcpy(out, buf + HDR, (size_t)n);
    post_rx(f, slot);
    vfe_vring_publish(&f->rx);
    return n;
}

static void front_send(struct front *f, const uint8_t *frame, size_t len)
{
    unsigned slot = f->tx_next++ % QSIZE;
    uint64_t gpa = f->tx_buf0 + (uint64_t)slot * BUF;
    uint8_t *p = gpa_ptr(f, gpa);
    memset(p, 0, HDR);
    memcpy(p + HDR, frame, len);
    struct vfe_sg sg = {gpa, (uint32_t)(HDR + len)};
    uint32_t l;
    while (vfe_vring_get_used(&f->tx, &l))
        ;
    vfe_vring_add(&f->tx, &sg, 1, 0, (void *)(uintptr_t)(slot + 1));
    vfe_vring_publish(&f->tx);
    uint64_t one = 1;
    if (write(f->kick[1], &one, sizeof(one)) != sizeof(one))
        CHECK(0, "kick write");
}

struct wait { bool done; int err; uint16_t idx[8]; unsigned n; };

static void done_cb(void *ctx, int err)
{
    struct wait *w = ctx;
    w->err = err;
    w->done = true;
}

static void stop_cb(void *ctx, int err, const uint16_t *last_avail, unsigned n)
{
    struct wait *w = ctx;
    w->n = n < 8 ? n : 8;
    memcpy(w->idx, last_avail, w->n * sizeof(uint16_t));
    done_cb(ctx, err);
}

static int wait_op(struct test_pf *pf, struct wait *w, int rc)
{
    if (rc < 0)
        return rc;
    vfe_admin_wait(pf->aq, &w->done);
    return w->err;
}

/* frames both ways: peer -> accelerated VF and back */
static void traffic(struct front *f, struct test_vf *peer, const uint8_t vmac[6], unsigned n, uint32_t seed)
{
    uint8_t out[1600], in[1600];
    for (unsigned i = 0; i < n; i++) {
        size_t len = 60 + (i * 131) % 1400;
        vfe_fe_frame(out, len, vmac, peer->mac, seed + i);
        CHECK(guest_net_send(peer->g, 0, out, len) == 0, "peer send");
        guest_net_reclaim_tx(peer->g, 0);
        int got = front_recv(f, in, sizeof(in));
        CHECK(got == (int)len && memcmp(in, out, len) == 0, "frame %u into the accelerated VF: %d", i, got);
        vfe_fe_frame(out, len, peer->mac, vmac, seed + 1000 + i);
        front_send(f, out, len);
        got = guest_net_recv(peer->g, 0, in, sizeof(in), TMO);
        CHECK(got == (int)len && memcmp(in, out, len) == 0, "frame %u out of the accelerated VF: %d", i, got);
    }
}

int main(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "2", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    struct test_pf pf = {0};
    struct test_vf peer = {0};
    struct front f = {0};
    struct vfe_transport *t1 = NULL;
    struct vdpa_vf *v = NULL;
    struct guest_mem log = {0};
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true};
    REQUIRE(test_pf_open(&pf, &sp, PF) == 0, out, "PF");
    REQUIRE(test_vf_open(&peer, &sp, VF2, &o) == 0, out, "peer VF");
    REQUIRE(front_init(&f) == 0, out, "front-end memory and rings");
    REQUIRE(vfe_transport_open(sp.root, VF1, &t1) == 0, out, "VF1 transport");
    struct vdpa_pf_ref ref = {&pf.mig, pf.iova};
    v = vdpa_vf_open(EV_DEFAULT, &ref, 1, t1, NULL);
    REQUIRE(v != NULL, out, "vdpa_vf_open");
    CHECK(vdpa_vf_state(v) == VDPA_VF_IDLE, "state %s", vdpa_vf_state_name(vdpa_vf_state(v)));
    uint8_t vmac[6];
    vdpa_vf_mac(v, vmac);

    struct vdpa_region regs[2] = {{GPA_A, REG_SIZE, f.a.fd, 0}, {GPA_B, REG_SIZE, f.b.fd, 0}};
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem");
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem again (no change)");
    for (uint16_t q = 0; q < 2; q++) {
        CHECK(vdpa_vf_set_kick(v, q, f.kick[q]) == 0, "kick %u", q);
        CHECK(vdpa_vf_set_call(v, q, f.call[q]) == 0, "call %u", q);
    }
    CHECK(vdpa_vf_set_kick(v, 200, f.kick[0]) == -EINVAL, "kick on ring 200 accepted");
    uint64_t feat = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF;
    struct vdpa_ring r[2];
    rings(&f, r, 0, 0);
    struct wait w = {0};
    REQUIRE(wait_op(&pf, &w, vdpa_vf_start(v, feat, r, 2, done_cb, &w)) == 0, out, "start");
    CHECK(vdpa_vf_state(v) == VDPA_VF_RUNNING, "state %s", vdpa_vf_state_name(vdpa_vf_state(v)));
    traffic(&f, &peer, vmac, 20, 1);
    uint64_t calls = 0;
    CHECK(read(f.call[0], &calls, sizeof(calls)) == sizeof(calls) && calls > 0, "no rx interrupt");

    /* stop: indices come back from the device */
    memset(&w, 0, sizeof(w));
    REQUIRE(wait_op(&pf, &w, vdpa_vf_stop(v, stop_cb, &w)) == 0, out, "stop");
    CHECK(w.n >= 2 && w.idx[0] == 20 && w.idx[1] == 20, "indices after stop: %u %u", w.idx[0], w.idx[1]);
    /* stopped: a frame for the VF is not written */
    uint8_t fr[100];
    vfe_fe_frame(fr, sizeof(fr), vmac, peer.mac, 77);
    long long drops = test_sim_counter(&sp, VF1, "rx_drops");
    CHECK(guest_net_send(peer.g, 0, fr, sizeof(fr)) == 0, "send to stopped VF");
    guest_net_reclaim_tx(peer.g, 0);
    long end = check_now_ms() + TMO;
    while (test_sim_counter(&sp, VF1, "rx_drops") == drops && check_now_ms() < end)
        usleep(2000);
    CHECK(test_sim_counter(&sp, VF1, "rx_drops") == drops + 1, "stopped VF did not drop");

    /* restart at the saved indices: both rings continue */
    memset(&w, 0, sizeof(w));
    rings(&f, r, 20, 20);
    REQUIRE(wait_op(&pf, &w, vdpa_vf_start(v, feat, r, 2, done_cb, &w)) == 0, out, "restart");
    traffic(&f, &peer, vmac, 10, 100);

    /* dirty log: pages the device writes into guest memory are marked */
    size_t log_size = (size_t)((GPA_B + REG_SIZE) / 4096 / 8);
    REQUIRE(guest_mem_create(&log, 4096) == 0 && log_size <= 4096, out, "log memory");
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_log_start(v, log.fd, 0, log_size, done_cb, &w)) == 0, "log start");
    /* the log is mapped by the PF's IOVA owner, in VF 1's window, apart from the admin queue's */
    uint64_t log_iova = 0, log_len = 0, aq_iova = 0, aq_len = 0;
    bool log_in_pf = false;
    CHECK(vfe_pf_iova_window(pf.iova, 1, &log_iova, &log_len, &log_in_pf) == 0 && log_in_pf && log_len == 4096,
          "VF 1's log window: iova %#llx len %#llx mapped %d", (unsigned long long)log_iova,
          (unsigned long long)log_len, log_in_pf);
    CHECK(vfe_pf_iova_window(pf.iova, VFE_PF_IOVA_ADMIN, &aq_iova, &aq_len, NULL) == 0 &&
          (log_iova >= aq_iova + aq_len || aq_iova >= log_iova + log_len), "log window overlaps the admin queue");
    CHECK(vdpa_vf_log_start(v, log.fd, 0, log_size, done_cb, &w) == -EBUSY, "log start while logging");
    traffic(&f, &peer, vmac, 5, 200);
    const uint8_t *lb = log.va;
    uint64_t used_pg = f.rx.used_iova / 4096;
    CHECK(lb[used_pg / 8] >> (used_pg % 8) & 1, "rx used ring page not marked");
    /* rx frames 30..34 went into buffer slots 30..34 */
    for (uint64_t gpa = f.rx_buf0 + 30 * BUF; gpa < f.rx_buf0 + 35 * BUF; gpa += 4096)
        CHECK(lb[gpa / 4096 / 8] >> (gpa / 4096 % 8) & 1, "rx buffer page %#llx not marked",
              (unsigned long long)gpa);
    unsigned marked = 0;
    for (size_t i = 0; i < log_size; i++)
        marked += (unsigned)__builtin_popcount(lb[i]);
    CHECK(marked >= 2, "only %u pages marked", marked);
    uint64_t tx_desc_pg = f.tx.desc_iova / 4096;
    CHECK(!(lb[tx_desc_pg / 8] >> (tx_desc_pg % 8) & 1) || tx_desc_pg == used_pg,
          "tx descriptor page marked: the device only reads it");
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_log_stop(v, done_cb, &w)) == 0, "log stop");
    CHECK(vfe_pf_iova_window(pf.iova, 1, NULL, NULL, NULL) == -ENOENT && vfe_pf_iova_windows(pf.iova) == 1,
          "the log window outlived the log (%u windows)", vfe_pf_iova_windows(pf.iova));
    /* a log larger than its memory: the PF refuses the map, no window is left behind */
    memset(&w, 0, sizeof(w));
    CHECK(vdpa_vf_log_start(v, log.fd, 0, 64u << 20, done_cb, &w) < 0 && vfe_pf_iova_windows(pf.iova) == 1,
          "a log beyond its memory was mapped");
    /* a window a killed predecessor left in VF 1's name (imported with the PF's
     * IOVA space, never told to the device): the next log start takes its place */
    uint64_t stale_iova = 0;
    CHECK(vfe_pf_iova_alloc(pf.iova, 1, 4096, &stale_iova) == 0 &&
              vfe_pf_iova_map(pf.iova, 1, log.fd, 0, VFE_DMA_READ | VFE_DMA_WRITE) == 0,
          "a stale window for VF 1");
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_log_start(v, log.fd, 0, log_size, done_cb, &w)) == 0,
          "log start over a stale window");
    CHECK(vfe_pf_iova_window(pf.iova, 1, NULL, &log_len, &log_in_pf) == 0 && log_in_pf && log_len == 4096 &&
              vfe_pf_iova_windows(pf.iova) == 2, "VF 1 holds its new window only (%u windows)",
          vfe_pf_iova_windows(pf.iova));
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_log_stop(v, done_cb, &w)) == 0 && vfe_pf_iova_windows(pf.iova) == 1,
          "log stop after the stale window");

    /* memory table change: region B moves to another memfd; buffers follow */
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_stop(v, stop_cb, &w)) == 0 && w.idx[0] == 35 && w.idx[1] == 35,
          "stop before the memory change: %u %u", w.idx[0], w.idx[1]);
    struct guest_mem nb;
    REQUIRE(guest_mem_create(&nb, REG_SIZE) == 0, out, "new region");
    memcpy(nb.va, f.b.va, REG_SIZE);
    guest_mem_destroy(&f.b);
    f.b = nb;
    regs[1].fd = f.b.fd;
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem with a replaced region");
    memset(&w, 0, sizeof(w));
    rings(&f, r, 35, 35);
    CHECK(wait_op(&pf, &w, vdpa_vf_start(v, feat, r, 2, done_cb, &w)) == 0, "start after the memory change");
    traffic(&f, &peer, vmac, 5, 300);
out:
    if (v) {
        struct wait ws = {0};
        wait_op(&pf, &ws, vdpa_vf_stop(v, stop_cb, &ws));
        vdpa_vf_close(v);
    }
    vfe_transport_close(t1);
    test_vf_close(&peer);
    test_pf_close(&pf);
    front_fini(&f);
    if (log.va)
        guest_mem_destroy(&log);
    CHECK(sim_proc_alive(&sp), "sim died");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("vdpa_vf");
}
