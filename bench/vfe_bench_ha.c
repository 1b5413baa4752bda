/*
 * vfe-bench-ha: what vfe-vhostd --ha costs and what it buys (issue 9).
 *
 *  resume   N VFs (64), each with a vhost-user front-end attached and its
 *           rings running; R times (20): kill -9 of vfe-vhostd, start it
 *           again, and time from the start until
 *             log      "HA: took over ..." is in its log (and the X ms it reports),
 *             rpc      its RPC answers,
 *             running  stats shows every VF with all rings running,
 *             frames   a frame went both ways between the VFs of S sample pairs.
 *           Every restart must take over 1 PF and N VFs with no reset.
 *  memory   VmRSS and open fds of vfe-vhostd-ha with 0, 64 and 256 VFs
 *           provisioned (no front-end), and with the resume run's VFs attached;
 *           health ha.fds / records / bytes.
 *  storm    N rounds (5) of C cycles (1000) of one front-end, vring stop/start
 *           and dirty log on/off, each with and without --ha: vhost-user
 *           messages per second (median round), deposits per message and
 *           health ha.deposit_us_avg.
 *
 * Prints one JSON object on stdout (bench/ha_table.py makes a table of it).
 * Not a test: the numbers depend on the machine; the goal is in bench/ha_table.py.
 * Binaries: $VFE_SIM_BIN, $VFE_VHOSTD, $VFE_VHOSTD_HA (bench/run sets them).
 *
 *   vfe-bench-ha [--vfs N] [--restarts R] [--samples S] [--cycles C] [--rounds N]
 *                [--only resume|memory|storm]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "lib/rpc/rpc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_vf.h"

#define PF "0000:3b:00.0"
#define MAX_VFS 256
#define MAX_RESTARTS 200
#define MAX_ROUNDS 50

struct env {
    struct sim_proc sp;
    bool with_ha, sim_up;
    char rpc[300], iface[300], ha_sock[300], ha_log[300], log_path[320];
    pid_t vhostd, ha;
    unsigned starts, nvfs;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *bin(const char *env, const char *dflt)
{
    const char *b = getenv(env);
    return b && *b ? b : dflt;
}

static void vf_bdf(unsigned n, char *out, size_t len)
{
    unsigned rid = (0x3b00 + n) & 0xffff;
    snprintf(out, len, "0000:%02x:%02x.%x", (rid >> 8) & 0xff, (rid >> 3) & 0x1f, rid & 7);
}

/* Like tests/lib/proc.c's spawn, but the child keeps none of our fds: the
 * daemon must not hold the front-ends' sockets or guest memory. */
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

static void reap(pid_t *pid, int sig)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    for (int i = 0; i < 500; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid)
            break;
        if (i == 300)
            kill(*pid, SIGKILL);
        usleep(10000);
    }
    *pid = -1;
}

static bool file_has(const char *path, const char *needle, char *line, size_t len)
{
    static char buf[1 << 20];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    const char *p = strstr(buf, needle);
    if (p && line) {
        size_t l = strcspn(p, "\n");
        if (l >= len)
            l = len - 1;
        memcpy(line, p, l);
        line[l] = 0;
    }
    return p != NULL;
}

static bool wait_file(const char *path, const char *needle, int ms, char *line, size_t len)
{
    double end = now_ms() + ms;
    do {
        if (file_has(path, needle, line, len))
            return true;
        usleep(1000);
    } while (now_ms() < end);
    return false;
}

static json_t *rpc(struct env *e, const char *method, json_t *params)
{
    json_t *res = NULL;
    char msg[256];
    int rc = rpc_client_call(e->rpc, method, params, 10000, &res, msg, sizeof(msg));
    json_decref(params);
    if (rc < 0) {
        fprintf(stderr, "vfe-bench-ha: %s: %s\n", method, msg);
        return NULL;
    }
    return res;
}

static long long jint(json_t *o, const char *path)
{
    char key[64];
    snprintf(key, sizeof(key), "%s", path);
    json_t *cur = o;
    char *save = NULL;
    for (char *tok = strtok_r(key, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, tok);
    return json_is_integer(cur) ? json_integer_value(cur) : json_is_real(cur) ? (long long)json_real_value(cur) : -1;
}

static int start_daemon(struct env *e)
{
    snprintf(e->log_path, sizeof(e->log_path), "%.200s/vhostd-%u.log", e->sp.dir, ++e->starts);
    const char *argv[16] = {bin("VFE_VHOSTD", "vfe-vhostd"), "--pci-root", e->sp.root, "--rpc", e->rpc, "--iface",
                            e->iface, "--no-state", "--log-level", "info"};
    unsigned n = 10;
    if (e->with_ha) {
        argv[n++] = "--ha";
        argv[n++] = e->ha_sock;
    }
    argv[n] = NULL;
    e->vhostd = spawn(argv, e->log_path);
    return e->vhostd > 0 ? 0 : -1;
}

static void env_stop(struct env *e)
{
    reap(&e->vhostd, SIGTERM);
    reap(&e->ha, SIGTERM);
    if (e->sim_up)
        sim_proc_stop(&e->sp);
    e->sim_up = false;
}

/* sim with nvfs VFs, the HA process (with_ha), the daemon, PF and VFs provisioned. */
static int env_start(struct env *e, unsigned nvfs, bool with_ha)
{
    memset(e, 0, sizeof(*e));
    e->vhostd = e->ha = -1;
    e->with_ha = with_ha;
    e->nvfs = nvfs;
    char nv[16];
    snprintf(nv, sizeof(nv), "%u", nvfs);
    const char *args[] = {"--pf", PF, "--vfs", nv, "--total-vfs", "256", "--log-level", "warning", NULL};
    if (sim_proc_start(&e->sp, args) < 0)
        return -1;
    e->sim_up = true;
    snprintf(e->rpc, sizeof(e->rpc), "%.200s/vhostd.sock", e->sp.dir);
    snprintf(e->iface, sizeof(e->iface), "%.200s/vf-", e->sp.dir);
    snprintf(e->ha_sock, sizeof(e->ha_sock), "%.200s/ha.sock", e->sp.dir);
    snprintf(e->ha_log, sizeof(e->ha_log), "%.200s/ha.log", e->sp.dir);
    if (with_ha) {
        const char *argv[] = {bin("VFE_VHOSTD_HA", "vfe-vhostd-ha"), "--socket", e->ha_sock, "--log-level", "info",
                              NULL};
        e->ha = spawn(argv, e->ha_log);
        if (e->ha < 0 || !wait_file(e->ha_log, "ready: ", 5000, NULL, 0)) {
            fprintf(stderr, "vfe-bench-ha: vfe-vhostd-ha did not start (%s)\n", e->ha_log);
            return -1;
        }
    }
    if (start_daemon(e) < 0 || !wait_file(e->log_path, "ready: RPC", 5000, NULL, 0)) {
        fprintf(stderr, "vfe-bench-ha: vfe-vhostd did not start (%s)\n", e->log_path);
        return -1;
    }
    json_t *r = rpc(e, "mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", PF));
    if (!r)
        return -1;
    json_decref(r);
    for (unsigned i = 1; i <= nvfs; i++) {
        char bdf[16];
        vf_bdf(i, bdf, sizeof(bdf));
        if (!(r = rpc(e, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", bdf))))
            return -1;
        json_decref(r);
    }
    return 0;
}

static long status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, field, fl) && line[fl] == ':')
            v = strtol(line + fl + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Health after the HA process's next STATUS (asked every 5 s): held counts are current. */
static json_t *settled_health(struct env *e)
{
    json_t *h = rpc(e, "health", NULL);
    long long at0 = -2;
    double end = now_ms() + 6000;
    while (h && now_ms() < end) {
        long long recs = jint(h, "ha.records"), fds = jint(h, "ha.fds");
        if (at0 == -2)
            at0 = recs * 1000003 + fds;
        else if (recs * 1000003 + fds != at0)
            break;
        usleep(200000);
        json_decref(h);
        h = rpc(e, "health", NULL);
    }
    return h;
}

/* ---- front-ends ---- */

static struct vfe_fe *fes[MAX_VFS];

static void mac_of(unsigned i, uint8_t mac[6])
{
    const uint8_t m[6] = {0x02, 0xbe, 0x1c, 0, (uint8_t)(i >> 8), (uint8_t)i};
    memcpy(mac, m, 6);
}

static int attach_all(struct env *e)
{
    for (unsigned i = 0; i < e->nvfs; i++) {
        char bdf[16], path[340];
        vf_bdf(i + 1, bdf, sizeof(bdf));
        snprintf(path, sizeof(path), "%s%s", e->iface, bdf);
        struct vfe_fe_opts o = {.path = path, .pairs = 1};
        for (int t = 0; t < 300 && !(fes[i] = vfe_fe_open(&o)); t++)
            usleep(10000);
        if (!fes[i] || vfe_fe_start(fes[i], NULL) < 0) {
            fprintf(stderr, "vfe-bench-ha: front-end on %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void detach_all(void)
{
    for (unsigned i = 0; i < MAX_VFS; i++) {
        vfe_fe_close(fes[i]);
        fes[i] = NULL;
    }
}

/* Every VF's stats: all rings running (2 per VF). */
static bool all_running(struct env *e)
{
    json_t *r = rpc(e, "stats", json_object());
    if (!r)
        return false;
    json_t *a = json_object_get(r, "vfs");
    unsigned ok = 0;
    for (size_t i = 0; i < json_array_size(a); i++)
        ok += jint(json_array_get(a, i), "rings_running") == 2;
    json_decref(r);
    return ok == e->nvfs;
}

static void drain(struct vfe_fe *fe)
{
    uint8_t buf[2100];
    while (vfe_fe_recv(fe, 0, buf, sizeof(buf), 5) >= 0)
        ;
}

/* A frame from -> to, received intact (stray frames skipped). */
static bool one_way(unsigned from, unsigned to, uint32_t seed)
{
    uint8_t fm[6], tm[6], out[128], in[2100];
    mac_of(from, fm);
    mac_of(to, tm);
    size_t len = 60 + seed % 60;
    vfe_fe_frame(out, len, tm, fm, seed);
    if (vfe_fe_send(fes[from], 0, out, len) < 0)
        return false;
    for (int k = 0; k < 4; k++) {
        int n = vfe_fe_recv(fes[to], 0, in, sizeof(in), 2000);
        if (n < 0)
            return false;
        if ((size_t)n == len && !memcmp(in, out, len))
            return true;
    }
    return false;
}

static bool round_trips(unsigned samples, uint32_t seed)
{
    for (unsigned s = 0; s < samples; s++)
        if (!one_way(2 * s, 2 * s + 1, seed + 2 * s) || !one_way(2 * s + 1, 2 * s, seed + 2 * s + 1))
            return false;
    return true;
}

/* The switch learns the sample front-ends' addresses; the floods are drained. */
static void learn(struct env *e, unsigned samples)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[60], m[6];
    for (unsigned i = 0; i < 2 * samples; i++) {
        mac_of(i, m);
        vfe_fe_frame(f, sizeof(f), bcast, m, i);
        vfe_fe_send(fes[i], 0, f, sizeof(f));
    }
    usleep(100000);
    for (unsigned i = 0; i < e->nvfs; i++)
        drain(fes[i]);
}

static json_t *dist(double *v, unsigned n)
{
    double sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += v[i];
    json_t *each = json_array();
    for (unsigned i = 0; i < n; i++)
        json_array_append_new(each, json_real(v[i]));
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:o}", "min", bench_pct(v, n, 0), "p50", bench_pct(v, n, 50),
                     "p99", bench_pct(v, n, 99), "max", bench_pct(v, n, 100), "mean", n ? sum / n : -1, "each", each);
}

static json_t *ha_mem(struct env *e, unsigned vfs, bool attached)
{
    json_t *h = settled_health(e);
    json_t *o = json_pack("{s:i, s:b, s:I, s:i, s:I, s:I, s:I, s:I}", "vfs", vfs, "front_ends", attached,
                          "ha_rss_kib", (json_int_t)status_kib(e->ha, "VmRSS"), "ha_open_fds", fd_count(e->ha),
                          "health_ha_fds",
                          (json_int_t)jint(h, "ha.fds"), "health_ha_records", (json_int_t)jint(h, "ha.records"),
                          "health_ha_bytes", (json_int_t)jint(h, "ha.bytes"), "daemon_rss_kib",
                          (json_int_t)status_kib(e->vhostd, "VmRSS"));
    json_decref(h);
    return o;
}

/* ---- resume ---- */

static json_t *bench_resume(unsigned nvfs, unsigned restarts, unsigned samples, json_t *mem)
{
    struct env e;
    json_t *out = NULL;
    double t_log[MAX_RESTARTS], t_self[MAX_RESTARTS], t_rpc[MAX_RESTARTS], t_run[MAX_RESTARTS],
        t_rt[MAX_RESTARTS], cpu_d[MAX_RESTARTS], cpu_sim[MAX_RESTARTS];
    unsigned done = 0;
    char err[512] = "";
    if (2 * samples > nvfs)
        samples = nvfs / 2;
    if (env_start(&e, nvfs, true) < 0 || attach_all(&e) < 0) {
        snprintf(err, sizeof(err), "setup failed (logs in %.200s)", e.sp.dir);
        goto end;
    }
    double end = now_ms() + 20000;
    while (!all_running(&e) && now_ms() < end)
        usleep(20000);
    learn(&e, samples);
    if (!round_trips(samples, 1000)) {
        snprintf(err, sizeof(err), "no round trip before any restart");
        goto end;
    }
    json_array_append_new(mem, ha_mem(&e, nvfs, true));
    char expect[96], line[512];
    snprintf(expect, sizeof(expect), "took over 1 PFs and %u VFs without a reset", nvfs);
    for (unsigned r = 0; r < restarts; r++) {
        reap(&e.vhostd, SIGKILL);
        double sim0 = bench_cpu_ms(e.sp.pid);
        double t0 = now_ms();
        if (start_daemon(&e) < 0 || !wait_file(e.log_path, "HA: took over", 10000, line, sizeof(line))) {
            snprintf(err, sizeof(err), "restart %u: no take-over line in %s", r, e.log_path);
            break;
        }
        t_log[done] = now_ms() - t0;
        cpu_d[done] = bench_cpu_ms(e.vhostd);   /* CPU the daemon used up to the take-over */
        cpu_sim[done] = bench_cpu_ms(e.sp.pid) - sim0;
        if (!strstr(line, expect) || !strstr(line, "; 0 PFs and 0 VFs reset")) {
            snprintf(err, sizeof(err), "restart %u: %.400s", r, line);
            break;
        }
        const char *in = strstr(line, " in ");
        t_self[done] = in ? strtod(in + 4, NULL) : -1;
        json_t *v = NULL;
        while (rpc_client_call(e.rpc, "version", NULL, 1000, &v, line, sizeof(line)) < 0 && now_ms() - t0 < 10000)
            usleep(500);
        json_decref(v);
        t_rpc[done] = now_ms() - t0;
        while (!all_running(&e) && now_ms() - t0 < 10000)
            usleep(500);
        t_run[done] = now_ms() - t0;
        if (!round_trips(samples, 10000 + 100 * r)) {
            snprintf(err, sizeof(err), "restart %u: a sample pair lost a frame", r);
            break;
        }
        t_rt[done] = now_ms() - t0;
        done++;
    }
    out = json_pack("{s:i, s:i, s:i, s:i}", "vfs", nvfs, "front_ends", nvfs, "sample_pairs", samples, "restarts",
                    done);
    json_object_set_new(out, "log_line_ms", dist(t_log, done));
    json_object_set_new(out, "daemon_reported_ms", dist(t_self, done));
    json_object_set_new(out, "rpc_up_ms", dist(t_rpc, done));
    json_object_set_new(out, "daemon_cpu_ms", dist(cpu_d, done));
    json_object_set_new(out, "sim_cpu_ms", dist(cpu_sim, done));
    json_object_set_new(out, "all_rings_running_ms", dist(t_run, done));
    json_object_set_new(out, "frames_round_trip_ms", dist(t_rt, done));
    if (done) {
        json_t *h = rpc(&e, "health", NULL);
        json_object_set_new(out, "resumed_vfs", json_integer(jint(h, "ha.last_resume.vfs")));
        json_object_set_new(out, "reset_vfs", json_integer(jint(h, "ha.last_resume.reset_vfs")));
        json_decref(h);
        long long resets = 0, left = 0;
        for (unsigned i = 0; i <= nvfs; i++) {   /* 0: the PF */
            char bdf[16];
            vf_bdf(i, bdf, sizeof(bdf));
            resets += test_sim_counter(&e.sp, bdf, "resets");
            left += test_sim_counter(&e.sp, bdf, "client_disconnects");
        }
        json_object_set_new(out, "sim_resets", json_integer(resets));
        json_object_set_new(out, "sim_client_disconnects", json_integer(left));
    }
end:
    if (!out)
        out = json_object();
    if (*err)
        json_object_set_new(out, "error", json_string(err));
    detach_all();
    env_stop(&e);
    return out;
}

/* ---- memory ---- */

static json_t *bench_memory(unsigned nvfs)
{
    struct env e;
    json_t *o;
    if (env_start(&e, nvfs, true) == 0)
        o = ha_mem(&e, nvfs, false);
    else
        o = json_pack("{s:i, s:s}", "vfs", nvfs, "error", "setup failed");
    env_stop(&e);
    return o;
}

/* ---- storm ---- */

/* Messages one cycle sends, as tests/frontend does them (1 pair, PROTOCOL_FEATURES):
 * vring: vfe_fe_stop (ENABLE 0 per ring, SET_STATUS 0, GET_VRING_BASE per ring),
 *        vfe_fe_start (NUM, BASE, ADDR, KICK, CALL, ENABLE 1 per ring, GET_STATUS, SET_STATUS);
 * log:   vfe_fe_log_start (SET_LOG_BASE, SET_FEATURES + LOG_ALL, GET_STATUS, ADDR per ring),
 *        vfe_fe_log_stop (SET_FEATURES, GET_STATUS, ADDR per ring). */
static unsigned storm_msgs(bool log, unsigned rings, bool status)
{
    return log ? 1 + 2 * (1 + status + rings) : 2 * rings + status + 6 * rings + 2 * status;
}

static int storm_cycle(struct vfe_fe *fe, bool log)
{
    if (log) {
        int rc = vfe_fe_log_start(fe);
        return rc ?: vfe_fe_log_stop(fe);
    }
    uint16_t bases[2 * VFE_FE_MAX_PAIRS];
    int rc = vfe_fe_stop(fe, bases);
    return rc ?: vfe_fe_start(fe, bases);
}

static json_t *bench_storm(bool with_ha, bool log, unsigned cycles, unsigned rounds)
{
    struct env e;
    json_t *out = NULL;
    char err[256] = "";
    if (env_start(&e, 1, with_ha) < 0 || attach_all(&e) < 0) {
        snprintf(err, sizeof(err), "setup failed (logs in %.200s)", e.sp.dir);
        goto end;
    }
    double end = now_ms() + 10000;
    while (!all_running(&e) && now_ms() < end)
        usleep(20000);
    struct vfe_fe *fe = fes[0];
    unsigned per_cycle = storm_msgs(log, 2 * vfe_fe_pairs(fe),
                                    vfe_fe_protocol_features(fe) & (1ull << VFE_FE_PF_STATUS));
    json_t *h0 = rpc(&e, "health", NULL);
    double us[MAX_ROUNDS], total = 0;
    unsigned done = 0, msgs = 0;
    for (unsigned r = 0; r < rounds && !*err; r++) {
        unsigned c = 0;
        double t0 = now_ms();
        for (; c < cycles; c++) {
            int rc = storm_cycle(fe, log);
            if (rc < 0) {
                snprintf(err, sizeof(err), "round %u cycle %u: %s", r, c, strerror(-rc));
                break;
            }
        }
        /* a reply to the last message: everything before it is handled */
        uint64_t feat;
        vfe_fe_raw(fe, VFE_FE_GET_FEATURES, VFE_FE_VERSION, NULL, 0, NULL, 0, &feat, sizeof(feat), 5000);
        double dt = now_ms() - t0;
        unsigned m = c * per_cycle + 1;
        us[r] = dt * 1e3 / m;
        total += dt;
        msgs += m;
        done += c;
    }
    json_t *h1 = rpc(&e, "health", NULL);
    json_t *each = json_array();
    for (unsigned r = 0; r < rounds && !*err; r++)
        json_array_append_new(each, json_real(us[r]));
    double med = *err ? total * 1e3 / msgs : bench_pct(us, rounds, 50);
    out = json_pack("{s:s, s:b, s:i, s:i, s:f, s:f, s:f, s:o}", "storm", log ? "log on/off" : "vring stop/start",
                    "ha", with_ha, "cycles", done, "messages", msgs, "seconds", total / 1e3, "messages_per_s",
                    1e6 / med, "us_per_message", med, "rounds_us_per_message", each);
    if (with_ha) {
        long long d0 = jint(h0, "ha.deposits"), d1 = jint(h1, "ha.deposits");
        json_object_set_new(out, "deposits", json_integer(d1 - d0));
        json_object_set_new(out, "deposits_per_message", json_real((double)(d1 - d0) / msgs));
        json_object_set_new(out, "deposit_us_avg", json_integer(jint(h1, "ha.deposit_us_avg")));
        json_object_set_new(out, "deposit_us_avg_before", json_integer(jint(h0, "ha.deposit_us_avg")));
        json_object_set_new(out, "last_record_bytes", json_integer(jint(h1, "ha.last_record_bytes")));
        json_object_set_new(out, "deposit_failures", json_integer(jint(h1, "ha.deposit_failures")));
    }
    json_decref(h0);
    json_decref(h1);
end:
    if (!out)
        out = json_object();
    if (*err)
        json_object_set_new(out, "error", json_string(err));
    detach_all();
    env_stop(&e);
    return out;
}

static unsigned arg_u(const char *s, unsigned lo, unsigned hi, const char *name)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || v < lo || v > hi) {
        fprintf(stderr, "vfe-bench-ha: %s must be %u..%u\n", name, lo, hi);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    unsigned nvfs = 64, restarts = 20, samples = 8, cycles = 1000, rounds = 5;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: vfe-bench-ha [--vfs N] [--restarts R] [--samples S] [--cycles C] [--rounds N] "
                            "[--only resume|memory|storm]\n");
            return 2;
        }
        if (!strcmp(argv[i], "--vfs"))
            nvfs = arg_u(v, 2, MAX_VFS, "--vfs");
        else if (!strcmp(argv[i], "--restarts"))
            restarts = arg_u(v, 1, MAX_RESTARTS, "--restarts");
        else if (!strcmp(argv[i], "--samples"))
            samples = arg_u(v, 1, MAX_VFS / 2, "--samples");
        else if (!strcmp(argv[i], "--rounds"))
            rounds = arg_u(v, 1, MAX_ROUNDS, "--rounds");
        else if (!strcmp(argv[i], "--cycles"))
            cycles = arg_u(v, 1, 1000000, "--cycles");
        else if (!strcmp(argv[i], "--only") &&
                 (!strcmp(v, "resume") || !strcmp(v, "memory") || !strcmp(v, "storm")))
            only = v;
        else {
            fprintf(stderr, "vfe-bench-ha: unknown option %s %s\n", argv[i], v);
            return 2;
        }
        i++;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    json_t *res = json_pack("{s:s}", "bench", "ha");
    json_t *mem = json_array();
    if (!only || !strcmp(only, "resume"))
        json_object_set_new(res, "resume", bench_resume(nvfs, restarts, samples, mem));
    if (!only || !strcmp(only, "memory")) {
        static const unsigned ns[] = {0, 64, 256};
        for (unsigned i = 0; i < 3; i++)
            json_array_append_new(mem, bench_memory(ns[i]));
    }
    json_object_set_new(res, "memory", mem);
    if (!only || !strcmp(only, "storm")) {
        json_t *s = json_array();
        for (int log = 0; log < 2; log++) {
            json_array_append_new(s, bench_storm(false, log, cycles, rounds));
            json_array_append_new(s, bench_storm(true, log, cycles, rounds));
        }
        json_object_set_new(res, "storm", s);
    }
    char *txt = json_dumps(res, JSON_COMPACT);
    puts(txt);
    free(txt);
    json_decref(res);
    return 0;
}
