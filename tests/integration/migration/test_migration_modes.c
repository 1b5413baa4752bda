/*
 * Dirty tracking modes end to end: the sim offers push, pull or no tracking
 * (--dirty-tracking), vfe-vhostd (--dirty-mode, default auto) picks what the
 * device accepts.  Arguments: the sim's modes ("pull", "push", "push,pull",
 * "none"), the daemon's --dirty-mode (default auto), the mode expected in
 * use ("push", "pull", "software", or "none": the log request fails;
 * default argument 1).
 *   - pull / push / software: LOG_ALL turns tracking on in that mode (stats
 *     say which; software: the device tracks nothing, vfe walks the rings);
 *     frames the device writes into the rx buffers, with logging then turned
 *     off, have every page they touched (buffers and used ring) in the log;
 *     bits the front-end set itself stay set; at the switchover
 *     (GET_VRING_BASE) the frames the device wrote just before its stop are
 *     in the log by the time the reply comes.
 *   - none: the front-end's log request fails, the VF keeps moving frames.
 *   - fifth argument "ha" (pull, software): vfe-vhostd runs with
 *     vfe-vhostd-ha and is killed (-9) while it tracks; its successor marks
 *     the whole log (pull: a report in flight may have been cleared on the
 *     device) or all guest memory (software: the walker's records died)
 *     dirty once, tracks on, and the frames written after the take-over are
 *     in the log.
 * The sim's admin commands are slowed (100 ms) so that a pull timer alone
 * cannot have read the last writes before a stop completes.
 */
#include <endian.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/frontend/vfe_frontend_priv.h"   /* the front-end's log, to set bits of its own */
#include "tests/lib/check.h"
#include "tests/lib/test_rpc.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_vf.h"

#define PF "0000:3b:00.0"
#define VF_A "0000:3b:00.1"
#define VF_B "0000:3b:00.2"
#define RING 256u
#define RX_BUF 2048u

static struct sim_proc sp;
static pid_t vhostd = -1, ha = -1;
static char rpc[300], log_path[300], iface[300], ha_sock[300], state_dir[300];
static const char *dmode;
static bool with_ha;
static unsigned starts;
static const uint8_t mac_a[6] = {0x02, 0xaa, 0, 0, 0, 1}, mac_b[6] = {0x02, 0xbb, 0, 0, 0, 2};
static uint8_t logbuf[1 << 20];

/* stats of bdf: "state/rings_running" and dirty_tracking ("push", "pull", "false"). */
static void vf_stats(const char *bdf, char *state, size_t slen, char *mode, size_t mlen)
{
    state[0] = mode[0] = '\0';
    json_t *vf = test_rpc_vf_stats(rpc, bdf);
    if (vf) {
        json_t *dt = json_object_get(vf, "dirty_tracking");
        snprintf(state, slen, "%s/%lld", json_string_value(json_object_get(vf, "state")) ?: "?",
                 json_integer_value(json_object_get(vf, "rings_running")));
        snprintf(mode, mlen, "%s", json_is_string(dt) ? json_string_value(dt) : json_is_false(dt) ? "false" : "?");
    }
    json_decref(vf);
}

/* stats of bdf: software_log.<key>, or -1 when there is none. */
static long long sw_stat(const char *bdf, const char *key)
{
    json_t *vf = test_rpc_vf_stats(rpc, bdf);
    json_t *x = json_object_get(json_object_get(vf, "software_log"), key);
    long long v = json_is_integer(x) ? json_integer_value(x) : -1;
    json_decref(vf);
    return v;
}

static bool wait_state(const char *bdf, const char *want)
{
    char st[64], mode[16];
    for (long end = check_now_ms() + 8000; check_now_ms() < end; usleep(5000)) {
        vf_stats(bdf, st, sizeof(st), mode, sizeof(mode));
        if (!strcmp(st, want))
            return true;
    }
    fprintf(stderr, "%s: state %s, want %s\n", bdf, st, want);
    return false;
}

/* The admin dialect the daemon probed on PF ("nvidia", "virtio"), "" if unknown. */
static const char *pf_dialect(void)
{
    static char d[16];
    json_t *res = NULL;
    d[0] = '\0';
    if (test_rpc_call(rpc, "mgmtpf", json_pack("{s:b}", "list", 1), &res) == 0) {
        size_t i;
        json_t *pf;
        json_array_foreach(json_object_get(res, "devices"), i, pf)
            if (!strcmp(json_string_value(json_object_get(pf, "pf")) ?: "", PF))
                snprintf(d, sizeof(d), "%s", json_string_value(json_object_get(pf, "dialect")) ?: "");
    }
    json_decref(res);
    return d;
}

static const char *tracking(const char *bdf)
{
    static char mode[16];
    char st[64];
    vf_stats(bdf, st, sizeof(st), mode, sizeof(mode));
    return mode;
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

/* Pages the device wrote into a's rx side for used entries [from, to) that
 * the log (n bytes) lacks: each buffer's pages, and the used ring's. */
static uint64_t rx_missing(struct vfe_fe *a, const uint8_t *log, size_t n, uint16_t from, uint16_t to)
{
    uint64_t used_gpa = vfe_fe_used_gpa(a, 0);
    const uint8_t *used = vfe_fe_host(a, used_gpa, 4 + 8 * RING);
    if (!used)
        return UINT64_MAX;
    uint64_t missing = vfe_fe_log_missing(log, n, used_gpa, 4 + 8 * RING);
    for (uint16_t i = from; i != to; i++) {
        uint32_t id, len;
        memcpy(&id, used + 4 + 8 * (i % RING), 4);
        memcpy(&len, used + 8 + 8 * (i % RING), 4);
        id = le32toh(id);
        len = le32toh(len);
        if (id >= RING || len == 0 || len > RX_BUF)
            return UINT64_MAX;
        missing += vfe_fe_log_missing(log, n, vfe_fe_rx_buf_gpa(a, 0, id), len);
    }
    return missing;
}

static void test_logged(struct vfe_fe *a, struct vfe_fe *b, const char *mode)
{
    CHECK(admin_slow(100) == 0, "admin delay fault");
    REQUIRE(vfe_fe_log_start(a) == 0, out, "SET_LOG_BASE + LOG_ALL with the device tracking in %s mode", mode);
    CHECK(!strcmp(tracking(VF_A), mode), "stats dirty_tracking '%s', want '%s'", tracking(VF_A), mode);
    long got = vfe_fe_log_take(a, logbuf, sizeof(logbuf));   /* start from a clean log */
    REQUIRE(got > 0, out, "log take");
    uint16_t before[2], after[2];
    vfe_fe_used_indices(a, before);
    unsigned n = 24;
    CHECK(flow(b, mac_b, a, mac_a, n, 300) == n, "frames while logging");
    vfe_fe_used_indices(a, after);
    if (!strcmp(mode, "software"))   /* one frame at a time: no pass can have missed a buffer */
        CHECK(sw_stat(VF_A, "passes") > 0 && sw_stat(VF_A, "sw_overruns") == 0 &&
              sw_stat(VF_A, "bad_descriptors") == 0, "software_log passes %lld, sw_overruns %lld, bad %lld",
              sw_stat(VF_A, "passes"), sw_stat(VF_A, "sw_overruns"), sw_stat(VF_A, "bad_descriptors"));
    else
        CHECK(sw_stat(VF_A, "passes") == -1, "software_log in stats in %s mode", mode);
    CHECK(vfe_fe_log_stop(a) == 0, "logging off");
    /* the front-end does not wait for the reply: the device's tracking ends (final read merged) first */
    for (long end = check_now_ms() + 3000; check_now_ms() < end && strcmp(tracking(VF_A), "false");)
        usleep(5000);
    CHECK(!strcmp(tracking(VF_A), "false"), "tracking after logging off: %s", tracking(VF_A));
    got = vfe_fe_log_take(a, logbuf, sizeof(logbuf));
    uint64_t miss = rx_missing(a, logbuf, (size_t)got, before[0], after[0]);
    CHECK(got > 0 && (uint16_t)(after[0] - before[0]) == n && miss == 0,
          "%s: %llu written pages missing from the log after %u frames (used %u -> %u)", mode,
          (unsigned long long)miss, n, before[0], after[0]);

    /* the switchover: logging on, frames land in a's ring (a does not take
     * them), QEMU stops ring by ring; the log holds them once the reply comes */
    REQUIRE(vfe_fe_log_start(a) == 0, out, "logging on again");
    got = vfe_fe_log_take(a, logbuf, sizeof(logbuf));
    if (!strcmp(mode, "pull")) {   /* a report that fails (no retry: 0x86) may have lost bits: its pages count as dirty */
        char rep[256];
        CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"admin_fail\",\"status\":134,\"count\":1}", rep,
                           sizeof(rep)) == 0 && strstr(rep, "true"), "admin_fail fault: %s", rep);
        usleep(400000);   /* the next pass's report fails */
        got = vfe_fe_log_take(a, logbuf, sizeof(logbuf));
        /* one report covers 16 KiB of the log (VDPA_PULL_CHUNK) */
        uint64_t chunk = got < 16384 ? (uint64_t)got : 16384;
        CHECK(got > 0 && vfe_fe_log_count(logbuf, (size_t)got) >= chunk * 8,
              "after a failed report %llu of %ld pages marked dirty, want the report's %llu",
              (unsigned long long)vfe_fe_log_count(logbuf, (size_t)got), got * 8, (unsigned long long)chunk * 8);
    }
    /* bits QEMU sets itself (its own dirty pages) while the device logs are never cleared */
    REQUIRE(got >= 16 && a->log, out, "log of %ld bytes", got);
    uint64_t mark = 0xa5a5a5a5a5a5a5a5ull, seen;
    __atomic_store_n((uint64_t *)(void *)(a->log + got - 8), mark, __ATOMIC_RELAXED);
    vfe_fe_used_indices(a, before);
    uint8_t f[1000];
    for (unsigned i = 0; i < 16; i++) {
        vfe_fe_frame(f, sizeof(f), mac_a, mac_b, 700 + i);
        vfe_fe_send(b, 0, f, sizeof(f));
    }
    usleep(20000);
    uint16_t bases[2] = {0, 0};
    for (uint32_t r = 0; r < 2; r++) {
        struct { uint32_t index, num; } st = {r, 0};
        CHECK(vfe_fe_raw(a, 11 /* GET_VRING_BASE */, 1, &st, sizeof(st), NULL, 0, &st, sizeof(st), 8000) == 8 &&
                  st.index == r, "GET_VRING_BASE %u", r);
        bases[r] = (uint16_t)st.num;
    }
    seen = __atomic_load_n((uint64_t *)(void *)(a->log + got - 8), __ATOMIC_RELAXED);
    CHECK((seen & mark) == mark, "the front-end's own log bits %#llx became %#llx", (unsigned long long)mark,
          (unsigned long long)seen);
    got = vfe_fe_log_take(a, logbuf, sizeof(logbuf));
    miss = rx_missing(a, logbuf, (size_t)got, before[0], bases[0]);
    CHECK(got > 0 && bases[0] != before[0] && miss == 0,
          "%s switchover: %llu pages the device wrote before its stop (used %u -> %u) missing when "
          "GET_VRING_BASE was answered", mode, (unsigned long long)miss, before[0], bases[0]);
out:
    admin_slow(0);
}

static void test_refused(struct vfe_fe *a, struct vfe_fe *b)
{
    CHECK(vfe_fe_log_start(a) != 0, "LOG_ALL accepted though the device cannot track");
    CHECK(!strcmp(tracking(VF_A), "false"), "stats dirty_tracking '%s'", tracking(VF_A));
    CHECK(wait_state(VF_A, "running/2"), "the VF stopped running");
    CHECK(flow(b, mac_b, a, mac_a, 8, 900) == 8 && flow(a, mac_a, b, mac_b, 8, 950) == 8,
          "frames after the refused log");
}

/* Bad --dirty-tracking (sim) and --dirty-mode (daemon) values: exit 2, nothing started. */
static void test_bad_options(const char *dir)
{
    char out[400], root[400];
    snprintf(out, sizeof(out), "%s/badopt.log", dir);
    snprintf(root, sizeof(root), "%s/badroot", dir);
    const char *sim = getenv("VFE_SIM_BIN") ?: "vfe-dpu-sim";
    static const char *const bad_sim[] = {"", "push,push", "pull,", "bytemap", "none,push", "push pull"};
    for (unsigned i = 0; i < sizeof(bad_sim) / sizeof(bad_sim[0]); i++) {
        const char *argv[] = {sim, "--root", root, "--pf", PF, "--dirty-tracking", bad_sim[i], NULL};
        pid_t pid = proc_spawn(argv, out);
        CHECK(proc_wait(pid, 5000) == 2, "vfe-dpu-sim --dirty-tracking '%s' not refused", bad_sim[i]);
    }
    static const char *const bad_d[] = {"", "fast", "push,pull", "PULL", "soft", "software,pull"};
    for (unsigned i = 0; i < sizeof(bad_d) / sizeof(bad_d[0]); i++) {
        const char *argv[] = {getenv("VFE_VHOSTD") ?: "vfe-vhostd", "--no-state", "--rpc", out, "--dirty-mode",
                              bad_d[i], NULL};
        pid_t pid = proc_spawn(argv, out);
        CHECK(proc_wait(pid, 5000) == 2, "vfe-vhostd --dirty-mode '%s' not refused", bad_d[i]);
    }
}

static int start_daemon(void)
{
    snprintf(log_path, sizeof(log_path), "%.200s/vhostd-%u.log", sp.dir, ++starts);
    const char *argv[] = {getenv("VFE_VHOSTD") ?: "vfe-vhostd", "--pci-root", sp.root, "--rpc", rpc, "--iface", iface,
                          "--log-level", "info", "--dirty-mode", dmode, with_ha ? "--state-dir" : "--no-state",
                          with_ha ? state_dir : NULL, "--ha", ha_sock, NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    return vhostd > 0 && file_wait(log_path, ready, 1, 5000) ? 0 : -1;
}

static int start_ha(void)
{
    char hl[320];
    snprintf(ha_sock, sizeof(ha_sock), "%.200s/ha.sock", sp.dir);
    snprintf(state_dir, sizeof(state_dir), "%.200s/state", sp.dir);
    snprintf(hl, sizeof(hl), "%.200s/ha.log", sp.dir);
    const char *argv[] = {getenv("VFE_VHOSTD_HA") ?: "vfe-vhostd-ha", "--socket", ha_sock, NULL};
    ha = proc_spawn(argv, hl);
    const char *ready[] = {"ready: ", NULL};
    return ha > 0 && file_wait(hl, ready, 1, 5000) ? 0 : -1;
}

/* Pages of a's memory areas (rings, rx and tx buffers) the log lacks. */
static uint64_t memory_missing(struct vfe_fe *a, const uint8_t *log, size_t n)
{
    uint64_t miss = 0, gpa, len;
    if (vfe_fe_rx_area(a, 0, &gpa, &len) == 0)
        miss += vfe_fe_log_missing(log, n, gpa, len);
    if (vfe_fe_tx_area(a, 0, &gpa, &len) == 0)
        miss += vfe_fe_log_missing(log, n, gpa, len);
    for (unsigned r = 0; r < 2; r++)
        if (vfe_fe_ring_area(a, r, &gpa, &len) == 0)
            miss += vfe_fe_log_missing(log, n, gpa, len);
    return miss;
}

static void test_ha(struct vfe_fe *a, struct vfe_fe *b, const char *mode)
{
    bool sw = !strcmp(mode, "software");
    REQUIRE(vfe_fe_log_start(a) == 0, out, "logging on");
    CHECK(!strcmp(tracking(VF_A), mode), "stats dirty_tracking '%s'", tracking(VF_A));
    CHECK(flow(b, mac_b, a, mac_a, 4, 1100) == 4, "frames while tracking");
    kill(vhostd, SIGKILL);
    proc_wait(vhostd, 5000);
    vhostd = -1;
    long got = vfe_fe_log_take(a, logbuf, sizeof(logbuf));   /* what the predecessor merged */
    REQUIRE(start_daemon() == 0, out, "restart");
    const char *took[] = {sw ? "software tracking taken over" : "pull tracking taken over", NULL};
    CHECK(file_wait(log_path, took, 1, 5000), "the successor did not take %s tracking over (%s)", mode, log_path);
    CHECK(!strcmp(tracking(VF_A), mode), "stats dirty_tracking after the take-over '%s'", tracking(VF_A));
    got = vfe_fe_log_take(a, logbuf, sizeof(logbuf));
    if (sw)   /* all guest memory, not the hole between the regions */
        CHECK(got > 0 && memory_missing(a, logbuf, (size_t)got) == 0,
              "after the take-over %llu pages of guest memory not marked dirty",
              (unsigned long long)memory_missing(a, logbuf, (size_t)got));
    else
        CHECK(got > 0 && vfe_fe_log_count(logbuf, (size_t)got) == (uint64_t)got * 8,
              "after the take-over %llu of %ld pages marked dirty", (unsigned long long)vfe_fe_log_count(logbuf,
              (size_t)got), got * 8);
    uint16_t before[2], after[2];
    vfe_fe_used_indices(a, before);
    unsigned n = 12;
    CHECK(flow(b, mac_b, a, mac_a, n, 1200) == n, "frames after the take-over");
    vfe_fe_used_indices(a, after);
    CHECK(vfe_fe_log_stop(a) == 0, "logging off");
    for (long end = check_now_ms() + 3000; check_now_ms() < end && strcmp(tracking(VF_A), "false");)
        usleep(5000);
    got = vfe_fe_log_take(a, logbuf, sizeof(logbuf));
    uint64_t miss = rx_missing(a, logbuf, (size_t)got, before[0], after[0]);
    CHECK(got > 0 && miss == 0, "%llu pages written after the take-over missing from the log",
          (unsigned long long)miss);
out:;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *offered = argc > 1 ? argv[1] : "pull";
    dmode = argc > 2 ? argv[2] : "auto";
    const char *mode = argc > 3 ? argv[3] : offered;
    with_ha = argc > 4 && !strcmp(argv[4], "ha");
    /* VFE_SIM_DIALECT: the one admin dialect the sim speaks (default both) */
    const char *dialect = getenv("VFE_SIM_DIALECT") ?: "both";
    const char *args[] = {"--pf", PF, "--vfs", "2", "--log-level", "info", "--dirty-tracking", offered,
                          "--admin-dialect", dialect, NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    snprintf(rpc, sizeof(rpc), "%.200s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%.200s/vf-", sp.dir);
    char sa[320], sb[320];
    struct vfe_fe *a = NULL, *b = NULL;
    REQUIRE(!with_ha || start_ha() == 0, done, "vfe-vhostd-ha did not start");
    REQUIRE(start_daemon() == 0, done, "vfe-vhostd did not start");
    REQUIRE(test_rpc_call(rpc, "mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", PF), NULL) == 0 &&
                test_rpc_call(rpc, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_A), NULL) == 0 &&
                test_rpc_call(rpc, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_B), NULL) == 0, done, "provisioning");
    if (strcmp(dialect, "both"))
        CHECK(!strcmp(pf_dialect(), dialect), "the daemon speaks %s to a PF that speaks only %s", pf_dialect(),
              dialect);
    snprintf(sa, sizeof(sa), "%s%s", iface, VF_A);
    snprintf(sb, sizeof(sb), "%s%s", iface, VF_B);
    struct vfe_fe_opts oa = {.path = sa, .ring_size = RING, .rx_buf_size = RX_BUF};
    struct vfe_fe_opts ob = {.path = sb, .ring_size = RING, .rx_buf_size = RX_BUF};
    a = vfe_fe_open(&oa);
    b = vfe_fe_open(&ob);
    REQUIRE(a && b && vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, done, "front-ends");
    REQUIRE(wait_state(VF_A, "running/2") && wait_state(VF_B, "running/2"), done, "rings not running");
    CHECK(flow(a, mac_a, b, mac_b, 1, 1) == 1 && flow(b, mac_b, a, mac_a, 1, 2) == 1, "first frames");
    if (!strcmp(offered, "none"))
        test_bad_options(sp.dir);
    if (with_ha)
        test_ha(a, b, mode);
    else if (!strcmp(mode, "none"))
        test_refused(a, b);
    else
        test_logged(a, b, mode);
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
done:
    vfe_fe_close(a);
    vfe_fe_close(b);
    CHECK(vhostd > 0 && proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    if (ha > 0)
        proc_stop(ha, 3000);
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    char name[96];
    snprintf(name, sizeof(name), "migration_modes offered %s, --dirty-mode %s, dialect %s", offered, dmode, dialect);
    return check_result(name);
}
