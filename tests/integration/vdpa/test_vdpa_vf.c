/*
 * The device half of vDPA (drivers/vdpa/virtio/vdpa_vf) against the sim, with
 * the test playing the front-end: guest memory in two memfd regions, split
 * rings written by the test, kick and call eventfds.  Frames cross between
 * the accelerated VF and a plain VF byte-exact; stop returns the ring indices
 * and a restart continues from them; the device's dirty log marks the pages
 * it wrote; a changed memory table is applied as a diff; a posted DMA map or
 * the device refuses fails the next start with its error, once.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
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
#include "tests/lib/test_pf.h"
#include "tests/lib/test_vf.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"

static int wait_op(struct test_pf *pf, struct test_front_op *w, int rc)
{
    if (rc < 0)
        return rc;
    vfe_admin_wait(pf->aq, &w->done);
    return w->err;
}

/* The PF's writes are posted: a released window goes once the PF acknowledged its unmap. */
static unsigned windows_settled(struct test_pf *pf, unsigned want)
{
    struct ev_loop *loop = vfe_admin_loop(pf->aq);
    long end = check_now_ms() + TEST_FRONT_TMO_MS;
    while (vfe_pf_iova_windows(pf->iova) != want && check_now_ms() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    return vfe_pf_iova_windows(pf->iova);
}

/* frames both ways: peer -> accelerated VF and back */
int main(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "2", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    struct test_pf pf = {0};
    struct test_vf peer = {0};
    struct test_front f = {0};
    struct vfe_transport *t1 = NULL;
    struct vdpa_vf *v = NULL;
    struct guest_mem log = {0};
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true};
    REQUIRE(test_pf_open(&pf, &sp, PF) == 0, out, "PF");
    REQUIRE(test_vf_open(&peer, &sp, VF2, &o) == 0, out, "peer VF");
    REQUIRE(test_front_init(&f) == 0, out, "front-end memory and rings");
    REQUIRE(vfe_transport_open(sp.root, VF1, &t1) == 0, out, "VF1 transport");
    struct vdpa_pf_ref ref = {&pf.mig, pf.iova};
    v = vdpa_vf_open(EV_DEFAULT, &ref, 1, t1, NULL);
    REQUIRE(v != NULL, out, "vdpa_vf_open");
    CHECK(vdpa_vf_state(v) == VDPA_VF_IDLE, "state %s", vdpa_vf_state_name(vdpa_vf_state(v)));
    uint8_t vmac[6];
    vdpa_vf_mac(v, vmac);

    struct vdpa_region regs[2] = {{TEST_FRONT_GPA_A, TEST_FRONT_REG_SIZE, f.a.fd, 0}, {TEST_FRONT_GPA_B, TEST_FRONT_REG_SIZE, f.b.fd, 0}};
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem");
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem again (no change)");
    for (uint16_t q = 0; q < 2; q++) {
        CHECK(vdpa_vf_set_kick(v, q, f.kick[q]) == 0, "kick %u", q);
        CHECK(vdpa_vf_set_call(v, q, f.call[q]) == 0, "call %u", q);
    }
    CHECK(vdpa_vf_set_kick(v, 200, f.kick[0]) == -EINVAL, "kick on ring 200 accepted");
    /* the VF's per-ring state is sized by its queue count: the first ring past it is refused */
    uint16_t nq = vdpa_vf_num_queues(v);
    CHECK(nq >= 2 && vdpa_vf_set_kick(v, nq, f.kick[0]) == -EINVAL, "kick on ring %u of %u accepted", nq, nq);
    CHECK(vdpa_vf_set_call(v, nq, f.call[0]) == -EINVAL, "call on ring %u of %u accepted", nq, nq);
    CHECK(vdpa_vf_set_kick(v, 63, f.kick[0]) == -EINVAL && vdpa_vf_set_call(v, 63, f.call[0]) == -EINVAL,
          "ring 63 of %u accepted", nq);

    /* listings: the device's facts are read once and kept with the VF; a
     * device that stops answering afterwards does not delay the next call */
    struct vdpa_vf_facts facts, again;
    vdpa_vf_facts(v, &facts);
    CHECK(facts.msix > 0 && facts.queue_size > 0 && facts.mtu >= 68, "facts: msix %u, ring size %u, mtu %u",
          facts.msix, facts.queue_size, facts.mtu);
    REQUIRE(kill(sp.pid, SIGSTOP) == 0, out, "SIGSTOP sim");
    long t0 = check_now_ms();
    vdpa_vf_facts(v, &again);
    long took = check_now_ms() - t0;
    kill(sp.pid, SIGCONT);
    CHECK(took < 500 && !memcmp(&facts, &again, sizeof(facts)), "facts read again from the device (%ld ms)", took);
    uint64_t feat = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF;
    struct vdpa_ring r[2];
    test_front_vdpa_rings(&f, r, 0, 0);
    struct test_front_op w = {0};
    REQUIRE(wait_op(&pf, &w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w)) == 0, out, "start");
    CHECK(vdpa_vf_state(v) == VDPA_VF_RUNNING, "state %s", vdpa_vf_state_name(vdpa_vf_state(v)));
    test_front_traffic(&f, &peer, vmac, 20, 1, "accelerated VF");
    uint64_t calls = 0;
    CHECK(read(f.call[0], &calls, sizeof(calls)) == sizeof(calls) && calls > 0, "no rx interrupt");

    /* stop: indices come back from the device */
    memset(&w, 0, sizeof(w));
    REQUIRE(wait_op(&pf, &w, vdpa_vf_stop(v, test_front_stopped, &w)) == 0, out, "stop");
    CHECK(w.n >= 2 && w.idx[0] == 20 && w.idx[1] == 20, "indices after stop: %u %u", w.idx[0], w.idx[1]);
    /* stopped: a frame for the VF is not written */
    uint8_t fr[100];
    vfe_fe_frame(fr, sizeof(fr), vmac, peer.mac, 77);
    long long drops = test_sim_counter(&sp, VF1, "rx_drops");
    CHECK(guest_net_send(peer.g, 0, fr, sizeof(fr)) == 0, "send to stopped VF");
    guest_net_reclaim_tx(peer.g, 0);
    long end = check_now_ms() + TEST_FRONT_TMO_MS;
    while (test_sim_counter(&sp, VF1, "rx_drops") == drops && check_now_ms() < end)
        usleep(2000);
    CHECK(test_sim_counter(&sp, VF1, "rx_drops") == drops + 1, "stopped VF did not drop");

    /* restart at the saved indices: both rings continue */
    memset(&w, 0, sizeof(w));
    test_front_vdpa_rings(&f, r, 20, 20);
    REQUIRE(wait_op(&pf, &w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w)) == 0, out, "restart");
    test_front_traffic(&f, &peer, vmac, 10, 100, "accelerated VF");

    /* dirty log: pages the device writes into guest memory are marked */
    size_t log_size = (size_t)((TEST_FRONT_GPA_B + TEST_FRONT_REG_SIZE) / 4096 / 8);
    REQUIRE(guest_mem_create(&log, 4096) == 0 && log_size <= 4096, out, "log memory");
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_log_start(v, log.fd, 0, log_size, test_front_done, &w)) == 0, "log start");
    /* the log is mapped by the PF's IOVA owner, in VF 1's window, apart from the admin queue's */
    uint64_t log_iova = 0, log_len = 0, aq_iova = 0, aq_len = 0;
    bool log_in_pf = false;
    CHECK(vfe_pf_iova_window(pf.iova, 1, &log_iova, &log_len, &log_in_pf) == 0 && log_in_pf && log_len == 4096,
          "VF 1's log window: iova %#llx len %#llx mapped %d", (unsigned long long)log_iova,
          (unsigned long long)log_len, log_in_pf);
    CHECK(vfe_pf_iova_window(pf.iova, VFE_PF_IOVA_ADMIN, &aq_iova, &aq_len, NULL) == 0 &&
          (log_iova >= aq_iova + aq_len || aq_iova >= log_iova + log_len), "log window overlaps the admin queue");
    CHECK(vdpa_vf_log_start(v, log.fd, 0, log_size, test_front_done, &w) == -EBUSY, "log start while logging");
    test_front_traffic(&f, &peer, vmac, 5, 200, "accelerated VF");
    const uint8_t *lb = log.va;
    uint64_t used_pg = f.rx.used_iova / 4096;
    CHECK(lb[used_pg / 8] >> (used_pg % 8) & 1, "rx used ring page not marked");
    /* rx frames 30..34 went into buffer slots 30..34 */
    for (uint64_t gpa = f.rx_buf0 + 30 * TEST_FRONT_BUF; gpa < f.rx_buf0 + 35 * TEST_FRONT_BUF; gpa += 4096)
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
    CHECK(wait_op(&pf, &w, vdpa_vf_log_stop(v, test_front_done, &w)) == 0, "log stop");
    CHECK(vfe_pf_iova_window(pf.iova, 1, NULL, NULL, NULL) == -ENOENT && windows_settled(&pf, 1) == 1,
          "the log window outlived the log (%u windows)", vfe_pf_iova_windows(pf.iova));
    /* a log larger than its memory: the PF refuses the map, no window is left behind */
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_log_start(v, log.fd, 0, 64u << 20, test_front_done, &w)) == -EINVAL &&
              windows_settled(&pf, 1) == 1 && vfe_pf_iova_window(pf.iova, 1, NULL, NULL, NULL) == -ENOENT,
          "a log beyond its memory was mapped (%d, %u windows)", w.err, vfe_pf_iova_windows(pf.iova));
    /* a window a killed predecessor left in VF 1's name (imported with the PF's
     * IOVA space, never told to the device): the next log start takes its place */
    uint64_t stale_iova = 0;
    CHECK(vfe_pf_iova_alloc(pf.iova, 1, 4096, &stale_iova) == 0 &&
              vfe_pf_iova_map(pf.iova, 1, log.fd, 0, VFE_DMA_READ | VFE_DMA_WRITE) == 0,
          "a stale window for VF 1");
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_log_start(v, log.fd, 0, log_size, test_front_done, &w)) == 0,
          "log start over a stale window");
    CHECK(vfe_pf_iova_window(pf.iova, 1, NULL, &log_len, &log_in_pf) == 0 && log_in_pf && log_len == 4096 &&
              windows_settled(&pf, 2) == 2, "VF 1 holds its new window only (%u windows)",
          vfe_pf_iova_windows(pf.iova));
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_log_stop(v, test_front_done, &w)) == 0 && windows_settled(&pf, 1) == 1,
          "log stop after the stale window");

    /* memory table change: region B moves to another memfd; buffers follow */
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_stop(v, test_front_stopped, &w)) == 0 && w.idx[0] == 35 && w.idx[1] == 35,
          "stop before the memory change: %u %u", w.idx[0], w.idx[1]);
    struct guest_mem nb;
    REQUIRE(guest_mem_create(&nb, TEST_FRONT_REG_SIZE) == 0, out, "new region");
    memcpy(nb.va, f.b.va, TEST_FRONT_REG_SIZE);
    guest_mem_destroy(&f.b);
    f.b = nb;
    regs[1].fd = f.b.fd;
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem with a replaced region");
    memset(&w, 0, sizeof(w));
    test_front_vdpa_rings(&f, r, 35, 35);
    CHECK(wait_op(&pf, &w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w)) == 0, "start after the memory change");
    test_front_traffic(&f, &peer, vmac, 5, 300, "accelerated VF");

    /* a posted write the device refuses (a region larger than its memfd):
     * set_mem returns before the device answers, the start after it fails
     * with the device's error; each refusal is reported once */
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_stop(v, test_front_stopped, &w)) == 0 && w.idx[0] == 40, "stop: %u", w.idx[0]);
    struct vdpa_region bad[3] = {regs[0], regs[1], {0x4000000, 2 * TEST_FRONT_REG_SIZE, f.a.fd, 0}};
    CHECK(vdpa_vf_set_mem(v, bad, 3) == 0, "set_mem waited for the device");
    test_front_vdpa_rings(&f, r, 40, 40);
    memset(&w, 0, sizeof(w));
    int rc = wait_op(&pf, &w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w));
    CHECK(rc == -EINVAL && vdpa_vf_state(v) != VDPA_VF_RUNNING, "start after a refused DMA_MAP: %d (%s)", rc,
          vdpa_vf_state_name(vdpa_vf_state(v)));
    /* the unmap of what the device never had counts as done (repeatable after a crash, vfe_dma_apply.h) */
    CHECK(vdpa_vf_set_mem(v, regs, 2) == 0, "set_mem back");
    memset(&w, 0, sizeof(w));
    CHECK(wait_op(&pf, &w, vdpa_vf_start(v, feat, r, 2, test_front_done, &w)) == 0, "start once all is acknowledged");
    test_front_traffic(&f, &peer, vmac, 5, 400, "accelerated VF");
out:
    if (v) {
        struct test_front_op ws = {0};
        wait_op(&pf, &ws, vdpa_vf_stop(v, test_front_stopped, &ws));
        vdpa_vf_close(v);
    }
    vfe_transport_close(t1);
    test_vf_close(&peer);
    test_pf_close(&pf);
    test_front_fini(&f);
    if (log.va)
        guest_mem_destroy(&log);
    CHECK(sim_proc_alive(&sp), "sim died");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("vdpa_vf");
}
