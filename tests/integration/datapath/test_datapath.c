/*
 * Frames between sim VFs, each driven purely through vfe's drivers
 * (vfio-user transport, virtio-pci, split rings) with guest memory in a memfd:
 * byte-exact delivery at several sizes up to 9000 with and without
 * MRG_RXBUF, multiqueue, interrupts, device counters, and NEEDS_RESET on a
 * bad descriptor that leaves the other VFs running.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>

#include "tests/lib/check.h"
#include "tests/lib/test_vf.h"

#define TIMEOUT_MS 3000

static const char *const sim_args[] = {"--pf", "0000:3b:00.0", "--vfs", "3", "--qpairs", "4",
                                       "--mtu", "9000", NULL};
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define VF3 "0000:3b:00.3"

/* Send each size from a to b on pair `pair` and check what b receives. */
static void exchange(struct test_vf *a, struct test_vf *b, unsigned pair, const size_t *sizes, size_t n,
                     uint32_t seed, long long *bytes)
{
    uint8_t *out = malloc(GUEST_NET_MAX_FRAME), *in = malloc(GUEST_NET_MAX_FRAME);
    for (size_t i = 0; i < n; i++) {
        vfe_fe_frame(out, sizes[i], b->mac, a->mac, seed + (uint32_t)i);
        int rc = guest_net_send(a->g, pair, out, sizes[i]);
        CHECK(rc == 0, "%s pair %u: send %zu bytes: %s", a->bdf, pair, sizes[i], strerror(-rc));
        memset(in, 0, GUEST_NET_MAX_FRAME);
        int got = guest_net_recv(b->g, pair, in, GUEST_NET_MAX_FRAME, TIMEOUT_MS);
        CHECK(got == (int)sizes[i], "%s pair %u: received %d bytes, sent %zu", b->bdf, pair, got, sizes[i]);
        if (got == (int)sizes[i])
            CHECK(memcmp(in, out, sizes[i]) == 0, "%s pair %u: frame of %zu bytes differs", b->bdf, pair,
                  sizes[i]);
        *bytes += (long long)sizes[i];
        guest_net_reclaim_tx(a->g, pair);
    }
    free(out);
    free(in);
}

static void test_sizes(const struct sim_proc *sp, bool mrg)
{
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = mrg, .event_idx = true, .use_irq = true,
                               .use_ioeventfd = true};
    struct test_vf a = {0}, b = {0};
    long long tx_before = test_sim_counter(sp, VF1, "tx_packets");
    long long rx_before = test_sim_counter(sp, VF2, "rx_packets");
    long long rxb_before = test_sim_counter(sp, VF2, "rx_bytes");
    REQUIRE(test_vf_open(&a, sp, VF1, &o) == 0, out, "open VF1");
    REQUIRE(test_vf_open(&b, sp, VF2, &o) == 0, out, "open VF2");
    CHECK(guest_net_mtu(b.g) == 9000, "MTU %u", guest_net_mtu(b.g));

    static const size_t sizes[] = {60, 64, 128, 1514, 2048, 4000, 8192, 9014};
    const size_t n = sizeof(sizes) / sizeof(sizes[0]);
    long long bytes = 0;
    exchange(&a, &b, 0, sizes, n, mrg ? 100 : 200, &bytes);
    CHECK(guest_net_irq_count(b.g, 0) > 0, "no interrupt on VF2's rx queue");
    CHECK(guest_net_kick_count(a.g, 1) > 0, "no kick on VF1's tx queue");
    CHECK(test_sim_counter(sp, VF1, "tx_packets") - tx_before == (long long)n, "VF1 tx_packets");
    CHECK(test_sim_counter(sp, VF2, "rx_packets") - rx_before == (long long)n, "VF2 rx_packets");
    CHECK(test_sim_counter(sp, VF2, "rx_bytes") - rxb_before == bytes, "VF2 rx_bytes");
    CHECK(test_sim_counter(sp, VF2, "rx_drops") == 0, "VF2 rx_drops");

    /* and back: VF2 to VF1 */
    bytes = 0;
    exchange(&b, &a, 0, sizes, 3, 300, &bytes);
    /* 100 frames in a row, received after all were sent */
    uint8_t f[256], in[256];
    for (uint32_t i = 0; i < 100; i++) {
        vfe_fe_frame(f, 100 + i, b.mac, a.mac, 1000 + i);
        CHECK(guest_net_send(a.g, 0, f, 100 + i) == 0, "burst send %u", i);
        guest_net_reclaim_tx(a.g, 0);
    }
    for (uint32_t i = 0; i < 100; i++) {
        vfe_fe_frame(f, 100 + i, b.mac, a.mac, 1000 + i);
        int got = guest_net_recv(b.g, 0, in, sizeof(in), TIMEOUT_MS);
        CHECK(got == (int)(100 + i) && memcmp(in, f, got) == 0, "burst frame %u: got %d", i, got);
    }
out:
    test_vf_close(&a);
    test_vf_close(&b);
}

static void test_multiqueue(const struct sim_proc *sp)
{
    struct guest_net_opts o = {.pairs = 4, .mrg_rxbuf = true, .event_idx = true, .use_irq = true};
    struct test_vf a = {0}, b = {0};
    REQUIRE(test_vf_open(&a, sp, VF1, &o) == 0, out, "open VF1 with 4 pairs");
    REQUIRE(test_vf_open(&b, sp, VF2, &o) == 0, out, "open VF2 with 4 pairs");
    static const size_t sizes[] = {64, 1514, 9014};
    long long bytes = 0;
    for (unsigned p = 0; p < 4; p++) {
        uint64_t irq_before = guest_net_irq_count(b.g, (uint16_t)(2 * p));
        exchange(&a, &b, p, sizes, 3, 500 + 10 * p, &bytes);
        CHECK(guest_net_irq_count(b.g, (uint16_t)(2 * p)) > irq_before, "no interrupt on rx queue %u", 2 * p);
    }
    /* a frame sent on pair 2 lands on pair 2, not on pair 0 */
    uint8_t f[100], in[100];
    vfe_fe_frame(f, sizeof(f), b.mac, a.mac, 77);
    CHECK(guest_net_send(a.g, 2, f, sizeof(f)) == 0, "send on pair 2");
    CHECK(guest_net_recv(b.g, 0, in, sizeof(in), 200) == -ETIMEDOUT, "pair-2 frame arrived on pair 0");
    CHECK(guest_net_recv(b.g, 2, in, sizeof(in), TIMEOUT_MS) == (int)sizeof(f), "pair-2 frame missing");
out:
    test_vf_close(&a);
    test_vf_close(&b);
}

/* A TX descriptor pointing outside mapped memory breaks only that VF. */
static void test_bad_descriptor(const struct sim_proc *sp)
{
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true, .use_irq = true};
    struct test_vf a = {0}, b = {0}, c = {0};
    REQUIRE(test_vf_open(&a, sp, VF1, &o) == 0, out, "open VF1");
    REQUIRE(test_vf_open(&b, sp, VF2, &o) == 0, out, "open VF2");
    REQUIRE(test_vf_open(&c, sp, VF3, &o) == 0, out, "open VF3");
    long long sent = test_sim_counter(sp, VF1, "tx_packets");
    CHECK(guest_net_send_raw_desc(a.g, 0, 0x7000000000ull, 1500) == 0, "post bad descriptor");
    int st = 0;
    long end = check_now_ms() + TIMEOUT_MS;
    while (check_now_ms() < end && !((st = guest_net_status(a.g)) & VIRTIO_CONFIG_S_NEEDS_RESET))
        ;
    CHECK(st >= 0 && (st & VIRTIO_CONFIG_S_NEEDS_RESET), "VF1 status %#x: NEEDS_RESET not set", st);
    CHECK(test_sim_counter(sp, VF1, "tx_packets") == sent, "bad descriptor counted as a packet");
    CHECK(guest_net_irq_count(a.g, GUEST_NET_CONFIG_IRQ) > 0, "no config interrupt for NEEDS_RESET");

    /* VF2 and VF3 are unaffected */
    static const size_t sizes[] = {64, 1514};
    long long bytes = 0;
    exchange(&b, &c, 0, sizes, 2, 900, &bytes);
    st = guest_net_status(b.g);
    CHECK(st >= 0 && !(st & VIRTIO_CONFIG_S_NEEDS_RESET), "VF2 status %#x", st);

    /* a reset brings VF1 back */
    test_vf_close(&a);
    REQUIRE(test_vf_open(&a, sp, VF1, &o) == 0, out, "reopen VF1 after NEEDS_RESET");
    exchange(&a, &b, 0, sizes, 2, 950, &bytes);
out:
    test_vf_close(&a);
    test_vf_close(&b);
    test_vf_close(&c);
}

int main(void)
{
    struct sim_proc sp;
    if (sim_proc_start(&sp, sim_args) < 0)
        return 1;
    test_sizes(&sp, true);
    test_sizes(&sp, false);
    test_multiqueue(&sp);
    test_bad_descriptor(&sp);
    CHECK(sim_proc_alive(&sp), "sim died");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("datapath");
}
