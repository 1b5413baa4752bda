/*
 * Fault injection and the uplink, seen through vfe's drivers:
 *  - a stalled VF fetches nothing; after the stall its queued frames go out, none lost;
 *  - a surprise-removed VF fails its client's calls while the others keep working;
 *  - a PF reset drops the admin queue; the PF can be brought up again;
 *  - two sims joined by a UDP uplink on loopback pass frames byte-exact.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/lib/test_pf.h"
#include "tests/lib/test_vf.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define VF3 "0000:3b:00.3"
#define TMO 3000

static void send_n(struct test_vf *a, const uint8_t dst[6], unsigned n, uint32_t seed)
{
    uint8_t f[600];
    for (unsigned i = 0; i < n; i++) {
        vfe_fe_frame(f, 100 + i, dst, a->mac, seed + i);
        CHECK(guest_net_send(a->g, 0, f, 100 + i) == 0, "send %u", i);
        guest_net_reclaim_tx(a->g, 0);
    }
}

static unsigned recv_n(struct test_vf *b, const uint8_t src[6], unsigned n, uint32_t seed, int tmo)
{
    uint8_t f[600], in[600];
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++) {
        vfe_fe_frame(f, 100 + i, b->mac, src, seed + i);
        int got = guest_net_recv(b->g, 0, in, sizeof(in), tmo);
        if (got == (int)(100 + i) && memcmp(in, f, got) == 0)
            ok++;
    }
    return ok;
}

static bool ctl_ok(const struct sim_proc *sp, const char *req)
{
    char reply[512];
    return sim_proc_ctl(sp, req, reply, sizeof(reply)) == 0 && strstr(reply, "\"ok\":true");
}

static void test_faults(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "3", NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true};
    struct test_vf a = {0}, b = {0}, c = {0};
    struct test_pf pf = {0};
    REQUIRE(test_vf_open(&a, &sp, VF1, &o) == 0, out, "open VF1");
    REQUIRE(test_vf_open(&b, &sp, VF2, &o) == 0, out, "open VF2");
    REQUIRE(test_vf_open(&c, &sp, VF3, &o) == 0, out, "open VF3");

    /* stall VF1: its frames wait in its ring */
    CHECK(ctl_ok(&sp, "{\"cmd\":\"fault\",\"type\":\"dma_stall\",\"bdf\":\"" VF1 "\",\"on\":true}"), "stall");
    send_n(&a, b.mac, 10, 10);
    CHECK(recv_n(&b, a.mac, 1, 10, 200) == 0, "a stalled VF sent a frame");
    CHECK(test_sim_counter(&sp, VF1, "tx_packets") == 0, "stalled VF counted tx");
    CHECK(ctl_ok(&sp, "{\"cmd\":\"fault\",\"type\":\"dma_stall\",\"bdf\":\"" VF1 "\",\"on\":false}"), "unstall");
    CHECK(recv_n(&b, a.mac, 10, 10, TMO) == 10, "frames queued during the stall were lost");

    /* vfu_stall (its effect: tests/integration/vhostd test_vhostd_stalled_session): shown, bad input refused */
    char rep[4096];
    CHECK(ctl_ok(&sp, "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"" VF3 "\",\"on\":true}"), "vfu_stall");
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"counters\",\"bdf\":\"" VF3 "\"}", rep, sizeof(rep)) == 0 &&
              strstr(rep, "\"vfu_stalled\":true"), "vfu_stalled not shown: %s", rep);
    CHECK(!ctl_ok(&sp, "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"" VF3 "\",\"on\":\"no\"}"),
          "vfu_stall with a string for on accepted");
    CHECK(!ctl_ok(&sp, "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"0000:3b:07.0\"}"),
          "vfu_stall of an unknown function accepted");
    CHECK(ctl_ok(&sp, "{\"cmd\":\"fault\",\"type\":\"clear\"}"), "clear");
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"counters\",\"bdf\":\"" VF3 "\"}", rep, sizeof(rep)) == 0 &&
              strstr(rep, "\"vfu_stalled\":false"), "clear left vfu_stall on: %s", rep);
    CHECK(guest_net_status(c.g) >= 0, "VF3 does not answer after the clear");

    /* surprise removal of VF3 with its client connected */
    CHECK(ctl_ok(&sp, "{\"cmd\":\"fault\",\"type\":\"remove\",\"bdf\":\"" VF3 "\"}"), "remove VF3");
    CHECK(guest_net_status(c.g) < 0, "removed VF still answers");
    send_n(&a, b.mac, 5, 40);
    CHECK(recv_n(&b, a.mac, 5, 40, TMO) == 5, "VF1 -> VF2 after VF3's removal");
    send_n(&a, c.mac, 3, 60);
    CHECK(test_sim_counter(&sp, VF1, "tx_drops") == 0, "frames to a removed VF counted as tx drops");

    /* PF reset: the admin queue is gone until the PF is brought up again */
    REQUIRE(test_pf_open(&pf, &sp, PF) == 0, out, "PF up");
    enum vfe_mig_state st;
    CHECK(test_mig_get_state(&pf, 2, &st) == 0, "admin command before the reset");
    CHECK(ctl_ok(&sp, "{\"cmd\":\"fault\",\"type\":\"pf_reset\",\"bdf\":\"" PF "\"}"), "pf_reset");
    uint8_t status = 0xff;
    CHECK(vfe_vpci_get_status(&pf.vp, &status) == 0 && status == 0, "PF status %#x after reset", status);
    vfe_admin_set_timeout(pf.aq, 300);
    CHECK(test_mig_get_state(&pf, 2, &st) == -ETIMEDOUT, "admin command answered after a PF reset");
    test_pf_close(&pf);
    CHECK(test_pf_open(&pf, &sp, PF) == 0, "PF up again after its reset");
    CHECK(test_mig_get_state(&pf, 2, &st) == 0, "admin command after re-init");
    send_n(&b, a.mac, 5, 80);
    CHECK(recv_n(&a, b.mac, 5, 80, TMO) == 5, "VF traffic across a PF reset");
out:
    test_pf_close(&pf);
    test_vf_close(&a);
    test_vf_close(&b);
    test_vf_close(&c);
    CHECK(sim_proc_alive(&sp), "sim died");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
}

static void test_uplink(void)
{
    unsigned pa = 20000 + (unsigned)getpid() % 20000, pb = pa + 1;
    char ua[64], ub[64];
    snprintf(ua, sizeof(ua), "udp:%u,127.0.0.1:%u", pa, pb);
    snprintf(ub, sizeof(ub), "udp:%u,127.0.0.1:%u", pb, pa);
    const char *args_a[] = {"--pf", PF, "--vfs", "1", "--uplink", ua, "--mac-prefix", "02:aa:00:00", NULL};
    const char *args_b[] = {"--pf", PF, "--vfs", "1", "--uplink", ub, "--mac-prefix", "02:bb:00:00", NULL};
    struct sim_proc sa, sb;
    struct test_vf a = {0}, b = {0};
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true};
    if (sim_proc_start(&sa, args_a) < 0) {
        CHECK(0, "sim A did not start");
        return;
    }
    if (sim_proc_start(&sb, args_b) < 0) {
        CHECK(0, "sim B did not start");
        sim_proc_stop(&sa);
        return;
    }
    REQUIRE(test_vf_open(&a, &sa, VF1, &o) == 0, out, "open VF1 on sim A");
    REQUIRE(test_vf_open(&b, &sb, VF1, &o) == 0, out, "open VF1 on sim B");
    CHECK(memcmp(a.mac, b.mac, 6) != 0, "both sims gave the same MAC");
    send_n(&a, b.mac, 20, 100);
    CHECK(recv_n(&b, a.mac, 20, 100, TMO) == 20, "A -> B over the uplink");
    send_n(&b, a.mac, 20, 200);
    CHECK(recv_n(&a, b.mac, 20, 200, TMO) == 20, "B -> A over the uplink");
out:
    test_vf_close(&a);
    test_vf_close(&b);
    CHECK(sim_proc_stop(&sa) == 0, "sim A exit status");
    CHECK(sim_proc_stop(&sb) == 0, "sim B exit status");
}

int main(void)
{
    test_faults();
    test_uplink();
    return check_result("sim_faults");
}
