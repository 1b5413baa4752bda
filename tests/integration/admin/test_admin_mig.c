/*
 * The PF admin queue against the sim, once per command dialect:
 *  - freeze stops all DMA: frames sent to a frozen VF are not written into its
 *    memory, and it fetches nothing from its TX ring;
 *  - save a frozen VF's state, restore it onto another VF that is given the
 *    same guest memory: the new VF continues both rings at the saved indices;
 *  - malformed and failing admin commands get errors; the PF keeps serving.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "tests/lib/check.h"
#include "tests/lib/test_pf.h"
#include "tests/lib/test_vf.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define VF3 "0000:3b:00.3"
#define TMO 3000

static int send_check(struct test_vf *from, struct test_vf *to, size_t len, uint32_t seed)
{
    uint8_t out[2048], in[2048];
    vfe_fe_frame(out, len, to->mac, from->mac, seed);
    if (guest_net_send(from->g, 0, out, len) < 0)
        return -1;
    guest_net_reclaim_tx(from->g, 0);
    int got = guest_net_recv(to->g, 0, in, sizeof(in), TMO);
    return got == (int)len && memcmp(in, out, len) == 0 ? 0 : -1;
}

/* Wait until bdf's counter reaches want. */
static bool wait_counter(const struct sim_proc *sp, const char *bdf, const char *field, long long want)
{
    long end = check_now_ms() + TMO;
    while (check_now_ms() < end) {
        if (test_sim_counter(sp, bdf, field) >= want)
            return true;
        usleep(5000);
    }
    return false;
}

static void test_freeze_save_restore(const struct sim_proc *sp, struct test_pf *pf)
{
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true};
    struct test_vf a = {0}, b = {0};
    struct vfe_transport *t3 = NULL;
    uint8_t *snap = NULL;
    REQUIRE(test_vf_open(&a, sp, VF1, &o) == 0, out, "open VF1");
    REQUIRE(test_vf_open(&b, sp, VF2, &o) == 0, out, "open VF2");

    /* some traffic both ways so both rings of VF2 have moved */
    const unsigned a_to_b = 7, b_to_a = 5;
    for (unsigned i = 0; i < a_to_b; i++)
        CHECK(send_check(&a, &b, 200 + i, i) == 0, "a->b frame %u", i);
    for (unsigned i = 0; i < b_to_a; i++)
        CHECK(send_check(&b, &a, 300 + i, 50 + i) == 0, "b->a frame %u", i);

    enum vfe_mig_state st = VFE_MIG_INIT;
    if (pf->mig.dialect == VFE_MIG_DIALECT_NVIDIA) {
        CHECK(test_mig_get_state(pf, 2, &st) == 0, "get state");
        CHECK(st == VFE_MIG_INIT || st == VFE_MIG_RUNNING, "VF2 state %d", st);
    }
    CHECK(test_mig_set_state(pf, 2, VFE_MIG_QUIESCED) == 0, "quiesce VF2");
    CHECK(test_mig_set_state(pf, 2, VFE_MIG_FREEZED) == 0, "freeze VF2");
    if (pf->mig.dialect == VFE_MIG_DIALECT_NVIDIA)
        CHECK(test_mig_get_state(pf, 2, &st) == 0 && st == VFE_MIG_FREEZED, "state after freeze %d", st);

    /* frozen: nothing may land in VF2's memory */
    snap = malloc(b.gm.size);
    memcpy(snap, b.gm.va, b.gm.size);
    long long drops = test_sim_counter(sp, VF2, "rx_drops");
    uint8_t f[256];
    for (unsigned i = 0; i < 20; i++) {
        vfe_fe_frame(f, 128, b.mac, a.mac, 900 + i);
        CHECK(guest_net_send(a.g, 0, f, 128) == 0, "send to frozen VF");
        guest_net_reclaim_tx(a.g, 0);
    }
    CHECK(wait_counter(sp, VF2, "rx_drops", drops + 20), "frozen VF2 did not drop 20 frames");
    CHECK(memcmp(snap, b.gm.va, b.gm.size) == 0, "frozen VF2's memory was written");

    struct vfe_dev_state s;
    memset(&s, 0, sizeof(s));
    REQUIRE(test_mig_save(pf, 2, &s) == 0, out, "save VF2");
    CHECK(memcmp(snap, b.gm.va, b.gm.size) == 0, "saving wrote VF2's memory");
    CHECK(s.nvqs >= 2 && s.vq[0].has_split && s.vq[1].has_split, "queue records missing");
    CHECK(s.vq[0].last_used == a_to_b && s.vq[0].last_avail == a_to_b, "rx indices %u/%u, want %u",
          s.vq[0].last_avail, s.vq[0].last_used, a_to_b);
    CHECK(s.vq[1].last_avail == b_to_a && s.vq[1].last_used == b_to_a, "tx indices %u/%u, want %u",
          s.vq[1].last_avail, s.vq[1].last_used, b_to_a);
    CHECK(s.vq[0].enabled && s.vq[0].size > 0, "rx queue config");

    /* VF3 takes over VF2's memory and state */
    REQUIRE(vfe_transport_open(sp->root, VF3, &t3) == 0, out, "open VF3");
    REQUIRE(t3->ops->dma_map(t3, TEST_VF_IOVA, b.gm.size, b.gm.fd, 0, VFE_DMA_READ | VFE_DMA_WRITE) == 0, out,
            "map VF2's memory into VF3");
    /* a destination is frozen before its state is written (virtio DEV_PARTS_SET needs it) */
    CHECK(test_mig_set_state(pf, 3, VFE_MIG_FREEZED) == 0, "freeze VF3");
    CHECK(test_mig_restore(pf, 3, &s) == 0, "restore onto VF3");
    CHECK(test_mig_set_state(pf, 3, VFE_MIG_RUNNING) == 0, "run VF3");

    /* the guest's next TX frame leaves through VF3 (VF2 is frozen: kick VF3's doorbell) */
    struct vfe_virtio_pci vp3;
    REQUIRE(vfe_vpci_init(&vp3, t3) == 0, out, "VF3 virtio-pci");
    uint8_t in[2048];
    vfe_fe_frame(f, 222, a.mac, b.mac, 4242);
    CHECK(guest_net_send(b.g, 0, f, 222) == 0, "migrated guest sends");
    CHECK(vfe_vpci_queue_notify(&vp3, 1) == 0, "kick VF3 tx");
    int got = guest_net_recv(a.g, 0, in, sizeof(in), TMO);
    CHECK(got == 222 && memcmp(in, f, 222) == 0, "frame from VF3 continuing at tx index %u: got %d",
          b_to_a, got);
    /* and frames for the guest's MAC now land in its RX ring through VF3 */
    for (unsigned i = 0; i < 5; i++)
        CHECK(send_check(&a, &b, 400 + i, 700 + i) == 0, "a->b frame %u after restore", i);
    CHECK(test_sim_counter(sp, VF3, "rx_packets") == 5, "VF3 rx_packets");
    CHECK(test_sim_counter(sp, VF3, "tx_packets") == 1, "VF3 tx_packets");
    CHECK(test_sim_counter(sp, VF2, "rx_packets") == a_to_b, "frozen VF2 rx_packets moved");

    /* save from VF3 shows the indices moved on from the restored ones */
    CHECK(test_mig_set_state(pf, 3, VFE_MIG_QUIESCED) == 0, "quiesce VF3");
    memset(&s, 0, sizeof(s));
    CHECK(test_mig_save(pf, 3, &s) == 0, "save VF3");
    CHECK(s.vq[0].last_used == a_to_b + 5 && s.vq[1].last_avail == b_to_a + 1, "VF3 indices %u %u",
          s.vq[0].last_used, s.vq[1].last_avail);
out:
    free(snap);
    vfe_transport_close(t3);   /* the sim resets VF3 when its client goes */
    test_vf_close(&a);
    test_vf_close(&b);
}

static int raw(struct test_pf *pf, const void *cmd, uint32_t len, uint8_t *res, uint32_t cap)
{
    uint32_t rlen = 0;
    return vfe_admin_exec_sync(pf->aq, cmd, len, res, cap, &rlen, TMO);
}

static void test_bad_commands(const struct sim_proc *sp, struct test_pf *pf)
{
    uint8_t res[256];
    bool nv = pf->mig.dialect == VFE_MIG_DIALECT_NVIDIA;
    /* unknown command, unknown VF, wrong state transition, truncated data */
    if (nv) {
        uint8_t unknown[] = {VFE_NV_CLASS_MIG, 99, 1, 0, 0, 0};
        CHECK(raw(pf, unknown, sizeof(unknown), res, sizeof(res)) > 0, "unknown nvidia command accepted");
        uint8_t trunc[] = {VFE_NV_CLASS_MIG, VFE_NV_MIG_MODIFY_STATUS, 1};
        CHECK(raw(pf, trunc, sizeof(trunc), res, sizeof(res)) > 0, "truncated command accepted");
        uint8_t blob[] = {VFE_NV_CLASS_MIG, VFE_NV_MIG_RESTORE_STATE, 1, 0, 0, 0,
                          VFE_NV_TLV_VQ_CFG, 0, 0, 0, 0xff, 0xff, 0, 0};   /* TLV longer than the command */
        CHECK(raw(pf, blob, sizeof(blob), res, sizeof(res)) > 0, "overlong TLV accepted");
    } else {
        struct vfe_adm_std_cmd c = {.opcode = 0x2f, .group_type = VFE_ADM_GROUP_SRIOV, .group_member_id = 1};
        CHECK(raw(pf, &c, sizeof(c), res, sizeof(res)) > 0, "unknown opcode accepted");
        c.opcode = VFE_ADM_DEV_MODE_SET;
        c.group_type = 7;
        CHECK(raw(pf, &c, sizeof(c), res, sizeof(res)) > 0, "bad group type accepted");
        uint8_t parts[sizeof(c) + 8];
        c.group_type = VFE_ADM_GROUP_SRIOV;
        c.opcode = VFE_ADM_DEV_PARTS_SET;
        memcpy(parts, &c, sizeof(c));
        struct vfe_adm_part_hdr h = {.type = VFE_ADM_PART_VQ_CFG, .length = 4000};
        memcpy(parts + sizeof(c), &h, sizeof(h));
        CHECK(raw(pf, parts, sizeof(parts), res, sizeof(res)) > 0, "overlong part accepted");
    }
    uint8_t one = nv ? VFE_NV_CLASS_MIG : 0;
    CHECK(raw(pf, &one, 1, res, sizeof(res)) != 0, "one-byte command accepted");
    CHECK(test_mig_set_state(pf, 99, VFE_MIG_FREEZED) < 0, "VF 99 accepted");
    CHECK(test_mig_set_state(pf, 0, VFE_MIG_FREEZED) < 0, "VF 0 accepted");
    struct vfe_dev_state s;
    memset(&s, 0, sizeof(s));
    CHECK(test_mig_save(pf, 1, &s) < 0, "save of a running VF accepted");

    /* injected failure and delay */
    char reply[512];
    CHECK(sim_proc_ctl(sp, "{\"cmd\":\"fault\",\"type\":\"admin_fail\",\"status\":5,\"count\":1}", reply,
                       sizeof(reply)) == 0 && strstr(reply, "true"), "fault admin_fail");
    if (nv) {
        enum vfe_mig_state st;   /* the driver retries a failure without do-not-retry: it succeeds */
        CHECK(test_mig_get_state(pf, 1, &st) == 0, "retry after one injected failure");
    } else {
        CHECK(test_mig_set_state(pf, 1, VFE_MIG_RUNNING) < 0, "injected failure not reported");
    }
    CHECK(sim_proc_ctl(sp, "{\"cmd\":\"fault\",\"type\":\"admin_delay\",\"ms\":300}", reply, sizeof(reply)) == 0,
          "fault admin_delay");
    long t0 = check_now_ms();
    int rc = test_mig_set_state(pf, 1, VFE_MIG_RUNNING);
    CHECK(rc == 0, "delayed command: %s", strerror(-rc));
    CHECK(check_now_ms() - t0 >= 290, "delay not applied (%ld ms)", check_now_ms() - t0);
    vfe_admin_set_timeout(pf->aq, 100);
    CHECK(test_mig_set_state(pf, 1, VFE_MIG_RUNNING) == -ETIMEDOUT, "timeout not reported");
    vfe_admin_set_timeout(pf->aq, VFE_ADMIN_DEFAULT_TIMEOUT_MS);
    CHECK(sim_proc_ctl(sp, "{\"cmd\":\"fault\",\"type\":\"clear\"}", reply, sizeof(reply)) == 0, "clear");
    usleep(350 * 1000);   /* the timed-out command comes back from the device */
    CHECK(test_mig_set_state(pf, 1, VFE_MIG_RUNNING) == 0, "PF does not serve after the faults");
}

static void run_dialect(const char *dialect, enum vfe_mig_dialect want)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "3", "--admin-dialect", dialect, NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    struct test_pf pf;
    int rc = test_pf_open(&pf, &sp, PF);
    CHECK(rc == 0, "%s: PF bring-up: %s", dialect, strerror(-rc));
    if (rc == 0) {
        CHECK(pf.mig.dialect == want, "%s: probed dialect %s", dialect, vfe_mig_dialect_name(pf.mig.dialect));
        test_freeze_save_restore(&sp, &pf);
        test_bad_commands(&sp, &pf);
        test_pf_close(&pf);
    }
    CHECK(sim_proc_alive(&sp), "%s: sim died", dialect);
    CHECK(sim_proc_stop(&sp) == 0, "%s: sim exit status", dialect);
}

/* --admin-dialect after a --pf is that PF's: the global one (virtio) holds for
 * the PF without its own, the other speaks only nvidia. */
static void run_per_pf_dialects(void)
{
    static const char *const PF2 = "0000:5e:00.0";
    struct sim_proc sp;
    const char *args[] = {"--admin-dialect", "virtio", "--pf", PF, "--vfs", "1", "--pf", PF2, "--vfs", "1",
                          "--admin-dialect", "nvidia", NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    struct test_pf a, b;
    int ra = test_pf_open(&a, &sp, PF), rb = test_pf_open(&b, &sp, PF2);
    CHECK(ra == 0 && rb == 0, "per-PF dialects: bring-up %s / %s", strerror(-ra), strerror(-rb));
    if (ra == 0) {
        CHECK(a.mig.dialect == VFE_MIG_DIALECT_VIRTIO, "%s: probed %s, not virtio", PF,
              vfe_mig_dialect_name(a.mig.dialect));
        test_pf_close(&a);
    }
    if (rb == 0) {
        CHECK(b.mig.dialect == VFE_MIG_DIALECT_NVIDIA, "%s: probed %s, not nvidia", PF2,
              vfe_mig_dialect_name(b.mig.dialect));
        test_pf_close(&b);
    }
    CHECK(sim_proc_stop(&sp) == 0, "per-PF dialects: sim exit status");
}

int main(void)
{
    run_dialect("nvidia", VFE_MIG_DIALECT_NVIDIA);
    run_dialect("virtio", VFE_MIG_DIALECT_VIRTIO);
    run_per_pf_dialects();
    return check_result("admin_mig");
}
