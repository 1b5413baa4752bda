/*
 * Device dirty-page tracking against the sim: while frames flow into a VF
 * under tracking, exactly the pages the device wrote are marked (push: bits
 * ORed into a bitmap in the PF's DMA space; pull: read and cleared through
 * REPORT), in the nvidia dialect and in the virtio dialect's extension.
 * Stopping tracking stops the marking.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/lib/test_pf.h"
#include "tests/lib/test_vf.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define TMO 3000
#define PAGE 4096u

static bool bit(const uint8_t *bm, size_t i) { return bm[i / 8] >> (i % 8) & 1; }

/* Pages of the VF's memory that differ from the snapshot. */
static void diff_pages(const uint8_t *snap, const uint8_t *now, size_t size, uint8_t *bm)
{
    memset(bm, 0, (size / PAGE + 7) / 8);
    for (size_t p = 0; p < size / PAGE; p++)
        if (memcmp(snap + p * PAGE, now + p * PAGE, PAGE))
            bm[p / 8] |= (uint8_t)(1u << (p % 8));
}

/* Every written page marked, no other page marked. */
static void compare(const char *what, const uint8_t *want, const uint8_t *got, size_t pages)
{
    unsigned missed = 0, extra = 0, written = 0;
    for (size_t p = 0; p < pages; p++) {
        written += bit(want, p);
        if (bit(want, p) && !bit(got, p) && missed++ < 3)
            fprintf(stderr, "%s: page %zu written but not marked\n", what, p);
        if (!bit(want, p) && bit(got, p) && extra++ < 3)
            fprintf(stderr, "%s: page %zu marked but not written\n", what, p);
    }
    CHECK(written > 2, "%s: only %u pages written", what, written);
    CHECK(missed == 0, "%s: %u written pages not marked", what, missed);
    CHECK(extra == 0, "%s: %u pages marked that were not written", what, extra);
}

/* Send n frames VF1 -> VF2 and wait until the device has written them all. */
static void flow(const struct sim_proc *sp, struct test_vf *a, struct test_vf *b, unsigned n, uint32_t seed)
{
    long long before = test_sim_counter(sp, VF2, "rx_packets");
    uint8_t f[2048];
    for (unsigned i = 0; i < n; i++) {
        size_t len = 64 + (i * 397) % 1400;
        vfe_fe_frame(f, len, b->mac, a->mac, seed + i);
        CHECK(guest_net_send(a->g, 0, f, len) == 0, "send %u", i);
        guest_net_reclaim_tx(a->g, 0);
    }
    long end = check_now_ms() + TMO;
    while (test_sim_counter(sp, VF2, "rx_packets") < before + n && check_now_ms() < end)
        usleep(2000);
    CHECK(test_sim_counter(sp, VF2, "rx_packets") == before + n, "VF2 did not receive %u frames", n);
}

/* Receive the n frames on VF2 and check them (after the page comparison). */
static void drain(struct test_vf *a, struct test_vf *b, unsigned n, uint32_t seed)
{
    uint8_t f[2048], in[2048];
    for (unsigned i = 0; i < n; i++) {
        size_t len = 64 + (i * 397) % 1400;
        vfe_fe_frame(f, len, b->mac, a->mac, seed + i);
        int got = guest_net_recv(b->g, 0, in, sizeof(in), TMO);
        CHECK(got == (int)len && memcmp(in, f, len) == 0, "frame %u: got %d", i, got);
    }
}

static void run(const char *dialect, enum vfe_mig_track_mode mode)
{
    const char *what = mode == VFE_MIG_TRACK_PUSH_BITMAP ? "push" : "pull";
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "2", "--admin-dialect", dialect, NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    struct test_pf pf = {0};
    struct test_vf a = {0}, b = {0};
    struct guest_mem bmem = {0};
    uint64_t bitmap_iova = 0;
    uint8_t *snap = NULL, *want = NULL, *got = NULL;
    /* no EVENT_IDX: the device would rewrite avail_event with equal values */
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true};
    REQUIRE(test_pf_open(&pf, &sp, PF) == 0, out, "%s: PF", dialect);
    REQUIRE(test_vf_open(&a, &sp, VF1, &o) == 0, out, "open VF1");
    REQUIRE(test_vf_open(&b, &sp, VF2, &o) == 0, out, "open VF2");

    size_t pages = b.gm.size / PAGE, bm_bytes = (pages + 7) / 8;
    struct vfe_mig_dirty_cfg cfg = {.mode = mode, .page_size = PAGE, .range_addr = TEST_VF_IOVA,
                                    .range_len = b.gm.size};
    if (mode == VFE_MIG_TRACK_PUSH_BITMAP) {
        size_t len = (bm_bytes + PAGE - 1) / PAGE * PAGE;
        REQUIRE(guest_mem_create(&bmem, len) == 0, out, "bitmap memory");
        /* the bitmap goes in VF 2's window of the PF's IOVA space */
        REQUIRE(vfe_pf_iova_alloc(pf.iova, 2, len, &bitmap_iova) == 0 &&
                vfe_pf_iova_map(pf.iova, 2, bmem.fd, 0, VFE_DMA_READ | VFE_DMA_WRITE) == 0, out,
                "map bitmap for the PF");
        /* two sges, to check the bitmap may be split */
        cfg.nsges = 2;
        cfg.sges[0] = (struct vfe_mig_sge){bitmap_iova, (uint32_t)(bm_bytes / 2)};
        cfg.sges[1] = (struct vfe_mig_sge){bitmap_iova + bm_bytes / 2, (uint32_t)(bm_bytes - bm_bytes / 2)};
    }
    snap = malloc(b.gm.size);
    want = calloc(1, bm_bytes);
    got = calloc(1, bm_bytes);

    /* traffic before tracking starts is not reported */
    flow(&sp, &a, &b, 10, 1);
    drain(&a, &b, 10, 1);

    memcpy(snap, b.gm.va, b.gm.size);
    REQUIRE(test_mig_dirty_start(&pf, 2, &cfg) == 0, out, "%s %s: start tracking", dialect, what);
    flow(&sp, &a, &b, 60, 100);
    diff_pages(snap, b.gm.va, b.gm.size, want);
    if (mode == VFE_MIG_TRACK_PUSH_BITMAP) {
        memcpy(got, bmem.va, bm_bytes);
    } else {
        int n = test_mig_dirty_report(&pf, 2, 0, got, (uint32_t)bm_bytes);
        CHECK(n == (int)bm_bytes, "report returned %d of %zu bytes", n, bm_bytes);
        uint8_t *again = calloc(1, bm_bytes);
        CHECK(test_mig_dirty_report(&pf, 2, 0, again, (uint32_t)bm_bytes) == (int)bm_bytes, "second report");
        unsigned left = 0;
        for (size_t i = 0; i < bm_bytes; i++)
            left += again[i] != 0;
        CHECK(left == 0, "report did not clear the bitmap (%u bytes still set)", left);
        free(again);
    }
    char label[64];
    snprintf(label, sizeof(label), "%s %s", dialect, what);
    compare(label, want, got, pages);
    drain(&a, &b, 60, 100);

    /* after STOP nothing more is marked */
    CHECK(test_mig_dirty_stop(&pf, 2) == 0, "stop tracking");
    if (mode == VFE_MIG_TRACK_PUSH_BITMAP)
        memset(bmem.va, 0, bm_bytes);
    flow(&sp, &a, &b, 10, 500);
    if (mode == VFE_MIG_TRACK_PUSH_BITMAP) {
        unsigned set = 0;
        for (size_t i = 0; i < bm_bytes; i++)
            set += ((uint8_t *)bmem.va)[i] != 0;
        CHECK(set == 0, "bits set after STOP_TRACK");
    } else {
        CHECK(test_mig_dirty_report(&pf, 2, 0, got, (uint32_t)bm_bytes) < 0, "report after STOP accepted");
    }
    drain(&a, &b, 10, 500);
    CHECK(test_sim_counter(&sp, VF2, "rx_drops") == 0, "drops under tracking");
out:
    free(snap);
    free(want);
    free(got);
    test_vf_close(&a);
    test_vf_close(&b);
    if (pf.iova)
        vfe_pf_iova_release(pf.iova, 2);
    test_pf_close(&pf);
    if (bmem.va)
        guest_mem_destroy(&bmem);
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
}

int main(void)
{
    run("nvidia", VFE_MIG_TRACK_PUSH_BITMAP);
    run("nvidia", VFE_MIG_TRACK_PULL_BITMAP);
    run("virtio", VFE_MIG_TRACK_PULL_BITMAP);
    run("virtio", VFE_MIG_TRACK_PUSH_BITMAP);
    return check_result("admin_dirty");
}
