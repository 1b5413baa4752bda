/*
 * The migration source side of vfe-vhostd, as QEMU drives it, with the
 * sim's admin commands slowed down (each takes effect 300 ms late) so that every ordering bug
 * between the front-end's messages and the device shows:
 *   - the reply to SET_FEATURES(LOG_ALL) comes only once the device logs:
 *     frames the device writes right after the reply are all in the log;
 *   - QEMU stops rings one GET_VRING_BASE at a time: the device is stopped
 *     once and never runs again in between, and every index returned matches
 *     the ring in guest memory, while frames keep arriving.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/lib/check.h"
#include "tests/lib/test_rpc.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_vf.h"

#define PF "0000:3b:00.0"
#define VF_A "0000:3b:00.1"
#define VF_B "0000:3b:00.2"

static struct sim_proc sp;
static pid_t vhostd = -1;
static char rpc[300], log_path[300];
static const uint8_t mac_a[6] = {0x02, 0xaa, 0, 0, 0, 1}, mac_b[6] = {0x02, 0xbb, 0, 0, 0, 2};

static const char *vf_state(const char *bdf, char *buf, size_t len)
{
    buf[0] = '\0';
    json_t *vf = test_rpc_vf_stats(rpc, bdf);
    if (vf)
        snprintf(buf, len, "%s/%lld", json_string_value(json_object_get(vf, "state")) ?: "?",
                 json_integer_value(json_object_get(vf, "rings_running")));
    json_decref(vf);
    return buf;
}

static bool wait_state(const char *bdf, const char *want)
{
    char st[64];
    for (long end = check_now_ms() + 8000; check_now_ms() < end; usleep(5000))
        if (!strcmp(vf_state(bdf, st, sizeof(st)), want))
            return true;
    fprintf(stderr, "%s: state %s, want %s\n", bdf, st, want);
    return false;
}

static int admin_slow(unsigned ms)
{
    char req[128], rep[256];
    snprintf(req, sizeof(req), "{\"cmd\":\"fault\",\"type\":\"admin_slow\",\"ms\":%u}", ms);
    return sim_proc_ctl(&sp, req, rep, sizeof(rep)) == 0 && (strstr(rep, "\"ok\":true") || strstr(rep, "\"ok\": true")) ? 0 : -1;
}

/* n frames from -> to, each received intact; the count that arrived. */
static unsigned flow(struct vfe_fe *from, const uint8_t *fm, struct vfe_fe *to, const uint8_t *tm, unsigned n,
                     uint32_t seed)
{
    uint8_t out[1100], in[1200];
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++) {
        vfe_fe_frame(out, 1000, tm, fm, seed + i);
        if (vfe_fe_send(from, 0, out, 1000) < 0 || vfe_fe_recv(to, 0, in, sizeof(in), 3000) != 1000 ||
            memcmp(in, out, 1000))
            break;
        ok++;
    }
    return ok;
}

static unsigned count_lines(const char *needle)
{
    const char *n[] = {needle, NULL};
    int c = file_count(log_path, n);
    return c < 0 ? 0 : (unsigned)c;
}

/* Pages of a's rx buffers and rx used ring marked in a's log now (taken). */
static unsigned rx_pages_logged(struct vfe_fe *a, bool *used_marked)
{
    static uint8_t log[1 << 20];
    long got = vfe_fe_log_take(a, log, sizeof(log));
    uint64_t gpa, len;
    vfe_fe_rx_area(a, 0, &gpa, &len);
    unsigned in_rx = 0;
    for (long i = 0; i < got * 8; i++)
        in_rx += (log[i / 8] >> (i % 8) & 1) && (uint64_t)i * 4096 >= gpa && (uint64_t)i * 4096 < gpa + len;
    *used_marked = got > 0 && vfe_fe_log_test(log, (size_t)got, vfe_fe_used_gpa(a, 0));
    return in_rx;
}

/* LOG_ALL is answered once the device logs: the frames written right after
 * the reply are in the log, the rx buffers' pages and the used ring's.  The
 * same for a new log while logging (QEMU resizes it when memory grows). */
static void test_log_reply_after_tracking(struct vfe_fe *a, struct vfe_fe *b)
{
    REQUIRE(admin_slow(300) == 0, out, "admin delay fault");
    for (int round = 0; round < 2; round++) {
        long t0 = check_now_ms();
        CHECK(vfe_fe_log_start(a) == 0, "%s log: SET_LOG_BASE + LOG_ALL", round ? "a second" : "the first");
        long waited = check_now_ms() - t0;
        if (round == 1) {   /* the device wrote unlogged while tracking moved: the new log starts all dirty */
            static uint8_t all[1 << 20];
            long got = vfe_fe_log_take(a, all, sizeof(all));
            CHECK(got > 0 && vfe_fe_log_count(all, (size_t)got) == (uint64_t)got * 8,
                  "new log while logging: %llu of %ld pages marked dirty",
                  (unsigned long long)vfe_fe_log_count(all, (size_t)got), got * 8);
        }
        unsigned n = 16;
        CHECK(flow(b, mac_b, a, mac_a, n, 100 + 20 * (unsigned)round) == n, "frames right after the reply");
        bool used;
        unsigned in_rx = rx_pages_logged(a, &used);
        CHECK(used && in_rx >= n * 1000 / 4096,
              "%s log answered after %ld ms: %u rx buffer pages logged for %u frames written after the reply, "
              "used ring page %s", round ? "a second" : "the first", waited, in_rx, n, used ? "logged" : "lost");
    }
out:;
}

/* QEMU's stop under traffic: ring by ring, one device stop, no restart, and
 * the indices match guest memory. */
static void test_stop_ring_by_ring(struct vfe_fe *a, struct vfe_fe *b)
{
    unsigned runs = count_lines(VF_A ": running"), stops = count_lines(VF_A ": stopped");
    uint8_t f[1000];
    for (unsigned i = 0; i < 32; i++) {   /* in a's rx ring, not yet taken by a: the device wrote them */
        vfe_fe_frame(f, sizeof(f), mac_a, mac_b, 500 + i);
        vfe_fe_send(b, 0, f, sizeof(f));
    }
    /* as QEMU at the end of a migration: GET_VRING_BASE per ring, each reply
     * awaited, no SET_VRING_ENABLE 0 before */
    uint16_t bases[2] = {0, 0}, used[2];
    for (uint32_t r = 0; r < 2; r++) {
        struct { uint32_t index, num; } st = {r, 0};
        CHECK(vfe_fe_raw(a, 11 /* GET_VRING_BASE */, 1, &st, sizeof(st), NULL, 0, &st, sizeof(st), 8000) == 8 &&
                  st.index == r, "GET_VRING_BASE %u", r);
        bases[r] = (uint16_t)st.num;
        usleep(50000);   /* QEMU does more work between rings; a restart would show here */
    }
    vfe_fe_used_indices(a, used);
    CHECK(bases[0] == used[0] && bases[1] == used[1], "GET_VRING_BASE said %u/%u, guest memory has %u/%u",
          bases[0], bases[1], used[0], used[1]);
    CHECK(bases[0] > 16, "rx index %u: the frames sent during the stop went nowhere", bases[0]);
    usleep(300000);
    CHECK(count_lines(VF_A ": running") == runs && count_lines(VF_A ": stopped") == stops + 1,
          "the VF ran %u more times and stopped %u times while the front-end stopped it ring by ring",
          count_lines(VF_A ": running") - runs, count_lines(VF_A ": stopped") - stops);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *args[] = {"--pf", PF, "--vfs", "2", "--log-level", "info", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    snprintf(rpc, sizeof(rpc), "%.200s/vhostd.sock", sp.dir);
    snprintf(log_path, sizeof(log_path), "%.200s/vhostd.log", sp.dir);
    char iface[300], sa[320], sb[320];
    snprintf(iface, sizeof(iface), "%.200s/vf-", sp.dir);
    const char *argv[] = {getenv("VFE_VHOSTD") ?: "vfe-vhostd", "--pci-root", sp.root, "--rpc", rpc, "--iface", iface,
                          "--log-level", "info", "--no-state", NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    struct vfe_fe *a = NULL, *b = NULL;
    REQUIRE(file_wait(log_path, ready, 1, 5000), done, "vfe-vhostd did not start");
    REQUIRE(test_rpc_call(rpc, "mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", PF), NULL) == 0 &&
                test_rpc_call(rpc, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_A), NULL) == 0 &&
                test_rpc_call(rpc, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_B), NULL) == 0, done, "provisioning");
    snprintf(sa, sizeof(sa), "%s%s", iface, VF_A);
    snprintf(sb, sizeof(sb), "%s%s", iface, VF_B);
    struct vfe_fe_opts oa = {.path = sa}, ob = {.path = sb};
    a = vfe_fe_open(&oa);
    b = vfe_fe_open(&ob);
    REQUIRE(a && b && vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, done, "front-ends");
    REQUIRE(wait_state(VF_A, "running/2") && wait_state(VF_B, "running/2"), done, "rings not running");
    /* the switch learns both addresses from their first frames */
    CHECK(flow(a, mac_a, b, mac_b, 1, 1) == 1 && flow(b, mac_b, a, mac_a, 1, 2) == 1, "first frames");
    test_log_reply_after_tracking(a, b);
    CHECK(admin_slow(0) == 0, "fault cleared");
    test_stop_ring_by_ring(a, b);
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
    /* migration work stops and starts the VF through the PF: it is never reset */
    CHECK(test_sim_counter(&sp, VF_A, "resets") == 0 && test_sim_counter(&sp, VF_A, "client_disconnects") == 0,
          "the VF was reset %lld times, its client left %lld times", test_sim_counter(&sp, VF_A, "resets"),
          test_sim_counter(&sp, VF_A, "client_disconnects"));
done:
    vfe_fe_close(a);
    vfe_fe_close(b);
    CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    /* the daemon's transport closed: the sim resets what it used, once */
    CHECK(test_sim_counter(&sp, VF_A, "resets") == 1 && test_sim_counter(&sp, VF_A, "client_disconnects") == 1,
          "after the daemon left: %lld resets, %lld client disconnects", test_sim_counter(&sp, VF_A, "resets"),
          test_sim_counter(&sp, VF_A, "client_disconnects"));
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("migration_log");
}
