/*
 * The test front-end against a vhost-user back-end nobody here wrote: DPDK's
 * testpmd (net_vhost PMD, io forwarding, one port, so every frame we send on
 * a pair's tx ring comes back on the same pair's rx ring).  1 and 2 queue
 * pairs: negotiation, frames byte for byte, stop with GET_VRING_BASE and
 * restart at those indices, reconnect (same testpmd and a restarted one),
 * the dirty log while frames flow, the RARP announcement, and testpmd
 * connecting to our socket (and again after we dropped it).
 * Skipped (77) only when dpdk-testpmd is not installed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "tests/frontend/vfe_frontend.h"
#include "tests/integration/frontend/testpmd_proc.h"
#include "tests/lib/check.h"

static char dir[64], sock[128], tplog[128];

static const uint8_t mac_dst[6] = {0x02, 0xfa, 0, 0, 0, 2}, mac_src[6] = {0x02, 0xfa, 0, 0, 0, 1};
static const size_t sizes[] = {60, 64, 128, 1000, 1514};

static size_t frame_size(uint32_t seed)
{
    return sizes[seed % (sizeof(sizes) / sizeof(sizes[0]))];
}

/* per_pair frames on every pair, then each must come back on its pair, in
 * order, byte for byte.  Frames intact. */
static unsigned loop_frames(struct vfe_fe *fe, unsigned per_pair, uint32_t seed0)
{
    static uint8_t out[1514], in[2048];
    unsigned pairs = vfe_fe_pairs(fe), ok = 0;
    for (unsigned p = 0; p < pairs; p++)
        for (unsigned i = 0; i < per_pair; i++) {
            uint32_t seed = seed0 + p * 10000 + i;
            vfe_fe_frame(out, frame_size(seed), mac_dst, mac_src, seed);
            int rc = vfe_fe_send(fe, p, out, frame_size(seed));
            CHECK(rc == 0, "send pair %u frame %u: %s", p, i, strerror(-rc));
        }
    for (unsigned p = 0; p < pairs; p++)
        for (unsigned i = 0; i < per_pair; i++) {
            uint32_t seed = seed0 + p * 10000 + i;
            int n = vfe_fe_recv(fe, p, in, sizeof(in), 3000);
            if (n < 0) {
                CHECK(n >= 0, "pair %u frame %u did not come back: %s", p, i, strerror(-n));
                return ok;
            }
            vfe_fe_frame(out, frame_size(seed), mac_dst, mac_src, seed);
            long d = vfe_fe_frame_diff(in, (size_t)n, out, frame_size(seed));
            CHECK(d < 0, "pair %u frame %u: %d bytes back for %zu, first difference at %ld", p, i, n,
                  frame_size(seed), d);
            ok += d < 0;
        }
    return ok;
}

/* testpmd forwards only some time after the device is ready (its link-up
 * and forwarding start are not tied to vhost-user messages) and drops what
 * it reads before: a frame on each pair until one comes back, then any late
 * ones are drained so the frames checked after this are the ones sent. */
static bool wait_forwarding(struct vfe_fe *fe)
{
    uint8_t f[60], in[2048];
    bool all = true;
    for (unsigned p = 0; p < vfe_fe_pairs(fe); p++) {
        bool back = false;
        long end = check_now_ms() + 10000;
        while (!back && check_now_ms() < end) {
            vfe_fe_frame(f, sizeof(f), mac_dst, mac_src, 0xfff00000u + p);
            back = vfe_fe_send(fe, p, f, sizeof(f)) == 0 && vfe_fe_recv(fe, p, in, sizeof(in), 200) >= 0;
        }
        while (back && vfe_fe_recv(fe, p, in, sizeof(in), 300) >= 0)
            ;
        CHECK(back, "testpmd does not forward on pair %u", p);
        all &= back;
    }
    return all;
}

/* The indices GET_VRING_BASE gave are what went round each ring. */
static void check_bases(struct vfe_fe *fe, const uint16_t *bases, const char *when)
{
    for (unsigned p = 0; p < vfe_fe_pairs(fe); p++) {
        struct vfe_fe_stats st;
        vfe_fe_stats(fe, p, &st);
        CHECK(bases[2 * p + 1] == (uint16_t)st.tx_frames, "%s: tx ring %u at %u, %llu frames sent", when,
              2 * p + 1, bases[2 * p + 1], (unsigned long long)st.tx_frames);
        CHECK(bases[2 * p] == (uint16_t)st.rx_buffers, "%s: rx ring %u at %u, %llu buffers used", when, 2 * p,
              bases[2 * p], (unsigned long long)st.rx_buffers);
        CHECK(st.rx_errors == 0, "%s: %llu bad rx frames on pair %u", when, (unsigned long long)st.rx_errors, p);
    }
}

static void check_negotiated(struct vfe_fe *fe, unsigned pairs)
{
    uint64_t f = vfe_fe_features(fe), p = vfe_fe_protocol_features(fe);
    CHECK(f & (1ull << VIRTIO_F_VERSION_1), "VERSION_1 not negotiated (%#llx)", (unsigned long long)f);
    CHECK(f & (1ull << VIRTIO_NET_F_MRG_RXBUF), "MRG_RXBUF not negotiated");
    CHECK(f & (1ull << VFE_FE_F_PROTOCOL_FEATURES), "PROTOCOL_FEATURES not negotiated");
    CHECK(!(f & (1ull << VFE_FE_F_LOG_ALL)), "LOG_ALL on before migration");
    CHECK(vfe_fe_offered_features(fe) & (1ull << VFE_FE_F_LOG_ALL), "testpmd does not offer LOG_ALL");
    CHECK(p & (1ull << VFE_FE_PF_REPLY_ACK), "no REPLY_ACK (%#llx)", (unsigned long long)p);
    CHECK(p & (1ull << VFE_FE_PF_MQ), "no MQ");
    CHECK(p & (1ull << VFE_FE_PF_LOG_SHMFD), "no LOG_SHMFD");
    CHECK(vfe_fe_queue_num(fe) >= pairs, "GET_QUEUE_NUM %u < %u pairs", vfe_fe_queue_num(fe), pairs);
}

static void start_stop_restart(struct vfe_fe *fe, uint32_t *seed)
{
    unsigned pairs = vfe_fe_pairs(fe);
    uint16_t bases[2 * VFE_FE_MAX_PAIRS], again[2 * VFE_FE_MAX_PAIRS];
    struct vfe_fe_stats st0, st;
    REQUIRE(vfe_fe_start(fe, NULL) == 0, out, "start");
    REQUIRE(wait_forwarding(fe), out, "no forwarding");
    vfe_fe_stats(fe, 0, &st0);
    CHECK(loop_frames(fe, 64, *seed) == 64 * pairs, "first frames");
    *seed += 100000;
    /* io forwarding turned each frame round through one rx buffer */
    vfe_fe_stats(fe, 0, &st);
    CHECK(st.rx_frames - st0.rx_frames == 64 && st.rx_buffers - st0.rx_buffers == 64 &&
          st.tx_frames - st0.tx_frames == 64, "pair 0: rx %llu in %llu buffers, tx %llu",
          (unsigned long long)(st.rx_frames - st0.rx_frames), (unsigned long long)(st.rx_buffers - st0.rx_buffers),
          (unsigned long long)(st.tx_frames - st0.tx_frames));
    CHECK(st.rx_calls > 0, "testpmd never signalled the rx call eventfd");
    REQUIRE(vfe_fe_stop(fe, bases) == 0, out, "stop");
    check_bases(fe, bases, "first stop");

    REQUIRE(vfe_fe_start(fe, bases) == 0, out, "restart at the indices");
    REQUIRE(wait_forwarding(fe), out, "no forwarding after the restart");
    vfe_fe_stats(fe, 0, &st0);
    CHECK(loop_frames(fe, 100, *seed) == 100 * pairs, "frames after the restart");
    *seed += 100000;
    REQUIRE(vfe_fe_stop(fe, again) == 0, out, "second stop");
    check_bases(fe, again, "after restart");
    vfe_fe_stats(fe, 0, &st);
    CHECK((uint16_t)(again[1] - bases[1]) >= 100, "tx ring 1 went from %u to %u for 100 frames", bases[1], again[1]);
    CHECK(st.tx_frames - st0.tx_frames == 100, "%llu frames sent", (unsigned long long)(st.tx_frames - st0.tx_frames));

    /* the front-end goes away and comes back: testpmd keeps nothing of the
     * session, the rings carry on from the indices */
    REQUIRE(vfe_fe_reconnect(fe) == 0, out, "reconnect");
    check_negotiated(fe, pairs);
    REQUIRE(vfe_fe_start(fe, again) == 0, out, "start after reconnect");
    REQUIRE(wait_forwarding(fe), out, "no forwarding after reconnect");
    CHECK(loop_frames(fe, 50, *seed) == 50 * pairs, "frames after reconnect");
    *seed += 100000;
    REQUIRE(vfe_fe_stop(fe, bases) == 0, out, "stop after reconnect");
    check_bases(fe, bases, "after reconnect");
    REQUIRE(vfe_fe_start(fe, bases) == 0, out, "start again");
    REQUIRE(wait_forwarding(fe), out, "no forwarding after the last start");
out:;
}

/* Migration: frames written by testpmd dirty their rx buffer pages and the
 * used rings; the buffers it only reads (tx) and the descriptor tables stay clean. */
static void dirty_log(struct vfe_fe *fe, uint32_t *seed)
{
    REQUIRE(vfe_fe_log_start(fe) == 0, out, "log start");
    CHECK(vfe_fe_features(fe) & (1ull << VFE_FE_F_LOG_ALL), "LOG_ALL not set");
    size_t n = vfe_fe_log_size(fe);
    uint8_t *log = calloc(1, n);
    REQUIRE(log && n >= vfe_fe_log_bytes(VFE_FE_GPA_HIGH + 1), out, "log of %zu bytes", n);
    vfe_fe_log_take(fe, log, n);   /* start from a clean log */
    CHECK(loop_frames(fe, 32, *seed) == 32, "frames while logging");
    *seed += 100000;
    CHECK(vfe_fe_log_take(fe, log, n) == (long)n, "log take");
    uint64_t rx, rx_len, tx, tx_len, ring0, ring_len;
    vfe_fe_rx_area(fe, 0, &rx, &rx_len);
    vfe_fe_tx_area(fe, 0, &tx, &tx_len);
    vfe_fe_ring_area(fe, 0, &ring0, &ring_len);
    uint64_t rx_pages = rx_len / 4096, dirty_rx = rx_pages - vfe_fe_log_missing(log, n, rx, rx_len);
    /* 32 frames in 32 distinct 2 KiB buffers touch at least 16 pages */
    CHECK(dirty_rx >= 16, "%llu rx buffer pages dirty", (unsigned long long)dirty_rx);
    CHECK(vfe_fe_log_test(log, n, vfe_fe_used_gpa(fe, 0)), "rx used ring page not dirty");
    CHECK(vfe_fe_log_test(log, n, vfe_fe_used_gpa(fe, 1)), "tx used ring page not dirty");
    CHECK(vfe_fe_log_missing(log, n, tx, tx_len) == tx_len / 4096, "tx buffers (read only) marked dirty");
    CHECK(!vfe_fe_log_test(log, n, ring0), "descriptor table of ring 0 marked dirty");
    CHECK(vfe_fe_log_count(log, n) <= dirty_rx + 2 * 2, "%llu pages dirty, more than the frames touched",
          (unsigned long long)vfe_fe_log_count(log, n));
    REQUIRE(vfe_fe_log_stop(fe) == 0, out, "log stop");
    CHECK(!(vfe_fe_features(fe) & (1ull << VFE_FE_F_LOG_ALL)), "LOG_ALL still set");
    vfe_fe_log_take(fe, log, n);
    CHECK(loop_frames(fe, 16, *seed) == 16, "frames after logging");
    *seed += 100000;
    CHECK(vfe_fe_log_take(fe, log, n) == (long)n && vfe_fe_log_count(log, n) == 0,
          "pages logged after logging stopped");
    free(log);
out:;
}

/* After a migration QEMU asks the back-end to announce the guest's MAC:
 * DPDK makes a RARP from it, which io forwarding hands back to us. */
static void announce(struct vfe_fe *fe)
{
    static const uint8_t mac[6] = {0x02, 0xfa, 0x12, 0x34, 0x56, 0x78};
    uint8_t f[2048];
    CHECK(vfe_fe_send_rarp(fe, mac) == 0, "SEND_RARP");
    int n = vfe_fe_recv(fe, 0, f, sizeof(f), 3000);
    REQUIRE(n >= 14, out, "no RARP came back: %d", n);
    CHECK(f[12] == 0x80 && f[13] == 0x35, "ethertype %02x%02x, not RARP", f[12], f[13]);
    CHECK(!memcmp(f + 6, mac, 6), "RARP not from the announced MAC");
    CHECK(f[0] == 0xff && f[5] == 0xff, "RARP not broadcast");
out:;
}

static void test_pairs(unsigned pairs)
{
    struct testpmd tp;
    uint32_t seed = pairs * 1000000u;
    fprintf(stderr, "-- %u queue pair(s)\n", pairs);
    REQUIRE(testpmd_start(&tp, sock, pairs, false, tplog, 20000) == 0, out, "testpmd did not start (see %s)", tplog);
    struct vfe_fe_opts o = {.path = sock, .pairs = pairs, .timeout_ms = 5000};
    struct vfe_fe *fe = vfe_fe_open(&o);
    REQUIRE(fe != NULL, stop, "open: %s", strerror(errno));
    check_negotiated(fe, pairs);
    start_stop_restart(fe, &seed);
    if (pairs == 1) {
        dirty_log(fe, &seed);
        announce(fe);
    }

    if (pairs == 1) {
        /* testpmd itself goes and a new one comes: reconnect, resume */
        uint16_t bases[2];
        CHECK(vfe_fe_stop(fe, bases) == 0, "stop before testpmd restarts");
        CHECK(testpmd_stop(&tp) == 0, "testpmd exit status");
        REQUIRE(testpmd_start(&tp, sock, pairs, false, tplog, 20000) == 0, close, "testpmd restart");
        REQUIRE(vfe_fe_reconnect(fe) == 0, close, "reconnect to the new testpmd");
        REQUIRE(vfe_fe_start(fe, bases) == 0, close, "start at the saved indices");
        REQUIRE(wait_forwarding(fe), close, "the new testpmd does not forward");
        CHECK(loop_frames(fe, 40, seed) == 40, "frames through the new testpmd");
        uint16_t after[2];
        CHECK(vfe_fe_stop(fe, after) == 0, "stop");
        check_bases(fe, after, "new testpmd");
    }
close:
    vfe_fe_close(fe);
stop:
    CHECK(testpmd_stop(&tp) == 0, "testpmd exit status");
out:;
}

/* testpmd connects to us, as with QEMU's server=on. */
static void test_server_mode(void)
{
    struct testpmd tp;
    char ssock[128];
    uint32_t seed = 7000000;
    snprintf(ssock, sizeof(ssock), "%s/server.sock", dir);
    fprintf(stderr, "-- front-end as the server\n");
    REQUIRE(testpmd_start(&tp, ssock, 1, true, tplog, 0) == 0, out, "testpmd did not start");
    struct vfe_fe_opts o = {.path = ssock, .server = true, .timeout_ms = 20000};
    struct vfe_fe *fe = vfe_fe_open(&o);
    REQUIRE(fe != NULL, stop, "testpmd never connected: %s", strerror(errno));
    check_negotiated(fe, 1);
    CHECK(vfe_fe_start(fe, NULL) == 0, "start");
    CHECK(wait_forwarding(fe), "no forwarding");
    CHECK(loop_frames(fe, 32, seed) == 32, "frames with testpmd as the client");
    uint16_t bases[2];
    CHECK(vfe_fe_stop(fe, bases) == 0, "stop");
    check_bases(fe, bases, "server mode");
    /* we drop the connection; testpmd connects again by itself */
    REQUIRE(vfe_fe_reconnect(fe) == 0, close, "testpmd did not reconnect");
    CHECK(vfe_fe_start(fe, bases) == 0, "start at the indices after testpmd reconnected");
    CHECK(wait_forwarding(fe), "no forwarding after testpmd reconnected");
    CHECK(loop_frames(fe, 16, seed + 1000) == 16, "frames after testpmd reconnected");
    CHECK(vfe_fe_stop(fe, bases) == 0, "stop");
    check_bases(fe, bases, "server mode, reconnected");
close:
    vfe_fe_close(fe);
stop:
    CHECK(testpmd_stop(&tp) == 0, "testpmd exit status");
    char rundir[512];
    CHECK(access(testpmd_runtime_dir(tp.prefix, rundir, sizeof(rundir)), F_OK) != 0,
          "DPDK runtime dir %s left behind", rundir);
out:;
}

int main(void)
{
    if (!testpmd_binary()) {
        fprintf(stderr, "frontend_testpmd: dpdk-testpmd not installed, skipped\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/vfe-fe-testpmd-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock, sizeof(sock), "%s/vhost.sock", dir);
    snprintf(tplog, sizeof(tplog), "%s/testpmd.log", dir);
    test_pairs(1);
    test_pairs(2);
    test_server_mode();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (check_failures)
        fprintf(stderr, "testpmd output kept in %s\n", dir);
    else if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_result("frontend_testpmd");
}
