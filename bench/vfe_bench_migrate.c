/*
 * vfe-bench-migrate: the switchover per VF (issue 10), as vfe-vhostd's own
 * timeline (stats "migration", drivers/vdpa/virtio/vdpa_timeline.h) shows it.
 *
 *  switchover  for P queue pairs (1 and 16: the sim's and the test front-end's most), R times
 *              (20): a front-end runs VF A, then stops it as QEMU does at a
 *              switchover (GET_VRING_BASE on every ring, each reply awaited,
 *              no SET_VRING_ENABLE 0 before), and a second front-end starts
 *              VF B as QEMU's destination does (connect, negotiate, memory,
 *              rings).  Per VF, from the daemon's timeline:
 *                source       first GET_VRING_BASE -> last answer
 *                             (freeze: stop begun -> stopped)
 *                destination  memory table -> rings running
 *                             (map: memory table -> mapped; rings: mapped -> start
 *                             begun, the ring messages and the session's gathering
 *                             of them; start: begun -> running)
 *              and the same seen by the front-ends (client_*).
 *  logging     the daemon's CPU time (schedstat) during 5 s of device dirty
 *              logging into the front-end's log (push mode) while frames flow
 *              into the logging VF; the sim's too.
 *
 * Prints one JSON object on stdout.  Not a test: the numbers depend on the
 * machine.  Goals: source and destination p90 <= 1 ms with 1 pair, <= 5 ms
 * with 16.  Binaries: $VFE_SIM_BIN, $VFE_VHOSTD (bench/run sets them).
 *
 *   vfe-bench-migrate [--reps R] [--pairs P1,P2,...] [--log-seconds S]
 */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "lib/rpc/rpc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/lib/sim_proc.h"

#define PF "0000:3b:00.0"
#define VF_A "0000:3b:00.1"
#define VF_B "0000:3b:00.2"
#define MAX_REPS 200
#define MAX_SIZES 8
#define GET_VRING_BASE 11

static struct sim_proc sp;
static bool sim_up;
static pid_t vhostd = -1;
static char rpc_path[300], iface[300], log_path[320];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The daemon must hold none of our fds (front-end sockets, guest memory). */
static pid_t spawn(const char *const *argv, const char *out)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        closefrom(3);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void reap(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid)
            break;
        if (i == 300)
            kill(*pid, SIGKILL);
        usleep(10000);
    }
    *pid = -1;
}

static bool log_has(const char *needle, int ms)
{
    static char buf[1 << 16];
    for (double end = now_ms() + ms; now_ms() < end; usleep(2000)) {
        int fd = open(log_path, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            buf[n] = 0;
            if (strstr(buf, needle))
                return true;
        }
    }
    return false;
}

static json_t *rpc(const char *method, json_t *params)
{
    json_t *res = NULL;
    char msg[256];
    int rc = rpc_client_call(rpc_path, method, params, 10000, &res, msg, sizeof(msg));
    json_decref(params);
    if (rc < 0) {
        fprintf(stderr, "vfe-bench-migrate: %s: %s\n", method, msg);
        return NULL;
    }
    return res;
}

static json_t *vf_stats(const char *bdf)
{
    json_t *r = rpc("stats", json_pack("{s:s}", "vfdev", bdf));
    json_t *vf = json_incref(json_array_get(json_object_get(r, "vfs"), 0));
    json_decref(r);
    return vf;
}

/* VF bdf has `rings` rings running (0: stopped, front-end gone) within 5 s. */
static bool wait_rings(const char *bdf, long rings, bool connected)
{
    for (double end = now_ms() + 5000; now_ms() < end; usleep(1000)) {
        json_t *vf = vf_stats(bdf);
        bool ok = json_integer_value(json_object_get(vf, "rings_running")) == rings &&
                  !strcmp(json_string_value(json_object_get(vf, "vhost_user")) ?: "", connected ? "connected" : "waiting") &&
                  !strcmp(json_string_value(json_object_get(vf, "state")) ?: "", rings ? "running" : "stopped");
        json_decref(vf);
        if (ok)
            return true;
    }
    fprintf(stderr, "vfe-bench-migrate: %s: not %ld rings running\n", bdf, rings);
    return false;
}

static int env_start(unsigned max_pairs)
{
    char qp[16];
    snprintf(qp, sizeof(qp), "%u", max_pairs);
    const char *args[] = {"--pf", PF, "--vfs", "2", "--qpairs", qp, "--log-level", "warning", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return -1;
    sim_up = true;
    snprintf(rpc_path, sizeof(rpc_path), "%.200s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%.200s/vf-", sp.dir);
    snprintf(log_path, sizeof(log_path), "%.200s/vhostd.log", sp.dir);
    const char *vb = getenv("VFE_VHOSTD");
    /* warnings only: info lines on every stop and start would be part of what is timed */
    const char *argv[] = {vb && *vb ? vb : "vfe-vhostd", "--pci-root", sp.root, "--rpc", rpc_path, "--iface", iface,
                          "--no-state", "--log-level", "warning", NULL};
    vhostd = spawn(argv, log_path);
    for (double end = now_ms() + 5000; now_ms() < end; usleep(5000)) {
        json_t *r = NULL;
        char msg[64];
        if (rpc_client_call(rpc_path, "version", json_object(), 1000, &r, msg, sizeof(msg)) == 0) {
            json_decref(r);
            json_t *a = rpc("mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", PF));
            json_t *b = a ? rpc("vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_A)) : NULL;
            json_t *c = b ? rpc("vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_B)) : NULL;
            int rc = c ? 0 : -1;
            json_decref(a);
            json_decref(b);
            json_decref(c);
            return rc;
        }
    }
    fprintf(stderr, "vfe-bench-migrate: vfe-vhostd did not start (%s)\n", log_path);
    return -1;
}

static void env_stop(void)
{
    reap(&vhostd);
    if (sim_up)
        sim_proc_stop(&sp);
    sim_up = false;
}

/* µs precision is all the timeline has */
static double r3(double ms)
{
    return (double)(long long)(ms * 1000.0 + (ms < 0 ? -0.5 : 0.5)) / 1000.0;
}

static json_t *dist(const double *v, unsigned n)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "p50", r3(bench_pct(v, n, 50)), "p90", r3(bench_pct(v, n, 90)), "min",
                     r3(bench_pct(v, n, 0)), "max", r3(bench_pct(v, n, 100)));
}

static double jms(json_t *h, const char *key)
{
    json_t *v = json_object_get(h, key);
    return json_is_number(v) ? json_number_value(v) : -1;
}

enum { S_SRC, S_FREEZE, S_DST, S_MAP, S_GATHER, S_START, S_CLIENT_SRC, S_CLIENT_DST, S_N };
static const char *const series_name[S_N] = {"source_ms", "source_freeze_ms", "destination_ms", "destination_map_ms",
                                             "destination_rings_ms", "destination_start_ms", "client_source_ms",
                                             "client_destination_ms"};

/* One switchover of `pairs` pairs: A runs, then QEMU's stop on A, QEMU's start on B. */
static int one(unsigned pairs, double *out)
{
    char sa[320], sb[320];
    unsigned rings = 2 * pairs;
    snprintf(sa, sizeof(sa), "%s%s", iface, VF_A);
    snprintf(sb, sizeof(sb), "%s%s", iface, VF_B);
    struct vfe_fe_opts oa = {.path = sa, .pairs = pairs}, ob = {.path = sb, .pairs = pairs};
    struct vfe_fe *a = vfe_fe_open(&oa), *b = NULL;
    int rc = -1;
    if (!a || vfe_fe_start(a, NULL) < 0 || !wait_rings(VF_A, rings, true))
        goto out;
    double t0 = now_ms();
    for (uint32_t r = 0; r < rings; r++) {
        struct { uint32_t index, num; } st = {r, 0};
        if (vfe_fe_raw(a, GET_VRING_BASE, 1, &st, sizeof(st), NULL, 0, &st, sizeof(st), 8000) != 8 || st.index != r)
            goto out;
    }
    out[S_CLIENT_SRC] = now_ms() - t0;
    t0 = now_ms();
    b = vfe_fe_open(&ob);
    if (!b || vfe_fe_start(b, NULL) < 0)
        goto out;
    /* the front-end cannot see the device start: poll the daemon (1 ms steps, so +-1 ms) */
    if (!wait_rings(VF_B, rings, true))
        goto out;
    out[S_CLIENT_DST] = now_ms() - t0;
    json_t *sv = vf_stats(VF_A), *dv = vf_stats(VF_B);
    json_t *s = json_object_get(json_object_get(sv, "migration"), "source");
    json_t *d = json_object_get(json_object_get(dv, "migration"), "destination");
    out[S_SRC] = jms(s, "switchover_ms");
    out[S_FREEZE] = jms(s, "stopped_ms") - jms(s, "stop_begun_ms");
    out[S_DST] = jms(d, "switchover_ms");
    out[S_MAP] = jms(d, "mem_mapped_ms");
    out[S_GATHER] = jms(d, "start_begun_ms") - jms(d, "mem_mapped_ms");
    out[S_START] = jms(d, "rings_started_ms") - jms(d, "start_begun_ms");
    rc = out[S_SRC] >= 0 && out[S_DST] >= 0 && json_integer_value(json_object_get(s, "rings_answered")) == rings &&
                 json_integer_value(json_object_get(d, "rings")) == rings
             ? 0
             : -1;
    if (rc)
        fprintf(stderr, "vfe-bench-migrate: incomplete timeline\n");
    json_decref(sv);
    json_decref(dv);
out:
    vfe_fe_close(a);
    vfe_fe_close(b);
    /* both front-ends gone: the daemon stops and unmaps both VFs before the next round */
    if (!wait_rings(VF_A, 0, false) || !wait_rings(VF_B, 0, false))
        rc = -1;
    return rc;
}

static json_t *bench_switchover(unsigned pairs, unsigned reps)
{
    static double v[S_N][MAX_REPS];
    double one_run[S_N];
    unsigned n = 0;
    for (unsigned i = 0; i < reps; i++) {
        if (one(pairs, one_run) < 0) {
            fprintf(stderr, "vfe-bench-migrate: %u pairs, round %u failed\n", pairs, i);
            break;
        }
        for (unsigned k = 0; k < S_N; k++)
            v[k][n] = one_run[k];
        n++;
    }
    json_t *o = json_pack("{s:i, s:i}", "pairs", pairs, "reps", n);
    for (unsigned k = 0; k < S_N; k++)
        json_object_set_new(o, series_name[k], dist(v[k], n));
    return o;
}

/* Daemon (and sim) CPU over `seconds` of dirty logging on A while B sends to A. */
static json_t *bench_logging(unsigned seconds)
{
    char sa[320], sb[320];
    snprintf(sa, sizeof(sa), "%s%s", iface, VF_A);
    snprintf(sb, sizeof(sb), "%s%s", iface, VF_B);
    struct vfe_fe_opts oa = {.path = sa}, ob = {.path = sb};
    struct vfe_fe *a = vfe_fe_open(&oa), *b = vfe_fe_open(&ob);
    json_t *o = NULL;
    static const uint8_t ma[6] = {0x02, 0xaa, 0, 0, 0, 1}, mb[6] = {0x02, 0xbb, 0, 0, 0, 2};
    uint8_t f[1000], in[1200];
    if (!a || !b || vfe_fe_start(a, NULL) < 0 || vfe_fe_start(b, NULL) < 0 || !wait_rings(VF_A, 2, true) ||
        !wait_rings(VF_B, 2, true))
        goto out;
    /* the switch learns a's address from its first frame */
    vfe_fe_frame(f, sizeof(f), mb, ma, 1);
    vfe_fe_send(a, 0, f, sizeof(f));
    vfe_fe_recv(b, 0, in, sizeof(in), 2000);
    if (vfe_fe_log_start(a) < 0)
        goto out;
    double d0 = bench_cpu_ms(vhostd), s0 = bench_cpu_ms(sp.pid), t0 = now_ms();
    unsigned long frames = 0;
    while (now_ms() - t0 < seconds * 1000.0) {
        vfe_fe_frame(f, sizeof(f), ma, mb, (uint32_t)frames);
        if (vfe_fe_send(b, 0, f, sizeof(f)) == 0 && vfe_fe_recv(a, 0, in, sizeof(in), 1000) > 0)
            frames++;
        if (frames % 64 == 0)
            usleep(1000);   /* light traffic: the bench must not starve the daemon of its core */
    }
    double wall = now_ms() - t0, d1 = bench_cpu_ms(vhostd), s1 = bench_cpu_ms(sp.pid);
    static uint8_t log[1 << 20];
    long got = vfe_fe_log_take(a, log, sizeof(log));
    o = json_pack("{s:f, s:f, s:f, s:I, s:I}", "seconds", wall / 1000.0, "daemon_cpu_ms", d1 - d0, "sim_cpu_ms",
                  s1 - s0, "frames", (json_int_t)frames, "dirty_pages_logged",
                  (json_int_t)(got > 0 ? vfe_fe_log_count(log, (size_t)got) : 0));
    vfe_fe_log_stop(a);
out:
    if (!o)
        fprintf(stderr, "vfe-bench-migrate: logging run failed\n");
    vfe_fe_close(a);
    vfe_fe_close(b);
    return o ? o : json_null();
}

static unsigned arg_u(const char *s, unsigned lo, unsigned hi, const char *name)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v < lo || v > hi) {
        fprintf(stderr, "vfe-bench-migrate: %s: %lu..%lu\n", name, (unsigned long)lo, (unsigned long)hi);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    unsigned reps = 20, log_s = 5, sizes[MAX_SIZES] = {1, 16}, nsizes = 2;
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: vfe-bench-migrate [--reps R] [--pairs P1,P2] [--log-seconds S]\n");
            return 2;
        }
        if (!strcmp(argv[i], "--reps")) {
            reps = arg_u(argv[++i], 1, MAX_REPS, "--reps");
        } else if (!strcmp(argv[i], "--log-seconds")) {
            log_s = arg_u(argv[++i], 0, 600, "--log-seconds");
        } else if (!strcmp(argv[i], "--pairs")) {
            char *list = argv[++i], *save = NULL;
            nsizes = 0;
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (nsizes == MAX_SIZES)
                    return 2;
                sizes[nsizes++] = arg_u(t, 1, VFE_FE_MAX_PAIRS, "--pairs");
            }
        } else {
            fprintf(stderr, "vfe-bench-migrate: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    unsigned max_pairs = 1;
    for (unsigned i = 0; i < nsizes; i++)
        max_pairs = sizes[i] > max_pairs ? sizes[i] : max_pairs;
    if (env_start(max_pairs) < 0) {
        env_stop();
        return 1;
    }
    json_t *sw = json_array();
    for (unsigned i = 0; i < nsizes; i++)
        json_array_append_new(sw, bench_switchover(sizes[i], reps));
    json_t *lg = log_s ? bench_logging(log_s) : json_null();
    if (log_has("ERR", 0))
        fprintf(stderr, "vfe-bench-migrate: errors in the daemon's log (%s)\n", log_path);
    env_stop();
    json_t *o = json_pack("{s:s, s:o, s:o, s:{s:f, s:f}}", "bench", "migrate", "switchover", sw, "logging", lg, "goal",
                          "p90_1_pair_ms", 1.0, "p90_16_pairs_ms", 5.0);
    char *t = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    puts(t);
    free(t);
    json_decref(o);
    return 0;
}
