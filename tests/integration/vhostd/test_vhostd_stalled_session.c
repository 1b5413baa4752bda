/*
 * One device that does not answer delays only its own VF (docs/device-calls.md,
 * "Posted writes and the start barrier").  Three VFs with vhost-user
 * sessions; X's vfio-user server stops reading (sim fault vfu_stall):
 *   - X's front-end sets memory, rings, kicks and calls and is answered at
 *     once (the writes are posted); X's start waits for the device;
 *   - meanwhile Y and Z set up, start and pass frames byte-exact, and
 *     `version` answers promptly;
 *   - the fault cleared within the bound: X starts, frames flow X <-> Y;
 *   - X stalled again: `stats` answers within the bound with an error for
 *     X's entry and numbers for the others, `version` answers while that
 *     stats call waits; a restart of X's rings fails after the bound with a
 *     logged error, and works once the fault is cleared;
 *   - a region X's front-end removes while X is stalled is answered only
 *     once the device acknowledged its unmap (the fault cleared 300 ms
 *     later), `version` answered meanwhile;
 *   - X's PF stalled: X's stop (admin commands, doorbells posted on the PF)
 *     is answered once the PF answers again, `version` meanwhile;
 *   - X's PF stalled at a log start (migration): the log's window map is
 *     posted on the PF, SET_LOG_BASE answered once the PF answered,
 *     `version` meanwhile; the PF then marks the pages it writes;
 *   - a VF without a session removed while stalled: answered at once;
 *   - first of all, the PF's server holds the admin queue's DMA_MAP of its
 *     bring-up (after the reset) for 300 ms: `version` answers meanwhile
 *     (the admin queue's setup is the PF's devq job), `mgmtpf -a` succeeds
 *     once the map is answered; bad "at" values of the fault are refused.
 * Measured (printed): Y's session setup while X is stalled.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/frontend/vfe_frontend.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_rpc.h"

#define PF "0000:3b:00.0"
#define X "0000:3b:00.1"
#define Y "0000:3b:00.2"
#define Z "0000:3b:00.3"
#define W "0000:3b:00.4"
#define V "0000:3b:00.5"   /* added, never used, removed while stalled */

static struct sim_proc sp;
static pid_t vhostd = -1;
static char rpc[100], iface[400], log_path[400];

static int start_daemon(void)
{
    snprintf(rpc, sizeof(rpc), "%.80s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%s/vf-", sp.dir);
    snprintf(log_path, sizeof(log_path), "%s/vhostd.log", sp.dir);
    const char *argv[] = {vhostd_bin(), "--pci-root", sp.root, "--rpc", rpc, "--iface", iface, "--log-level",
                          getenv("VFE_TEST_DEBUG") ? "debug" : "info", "--no-state", NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    return file_wait(log_path, ready, 1, 5000) ? 0 : -1;
}

static int mgmt(char *out, size_t len, const char *a, const char *b, const char *c)
{
    return vhostmgmt_run(rpc, out, len, NULL, a, b, c, NULL);
}

static int stall(const char *bdf, bool on)
{
    char req[200], rep[200];
    snprintf(req, sizeof(req), "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"%s\",\"on\":%s}", bdf,
             on ? "true" : "false");
    return sim_proc_ctl(&sp, req, rep, sizeof(rep)) == 0 && strstr(rep, "\"ok\"") && !strstr(rep, "error") ? 0 : -1;
}

/* The PF's server holds its next DMA_MAP (the admin queue's memory, mapped
 * after the PF's reset) and reads nothing more until the fault is cleared. */
static int stall_at_map(const char *bdf)
{
    char req[200], rep[200];
    snprintf(req, sizeof(req), "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"%s\",\"at\":\"dma_map\"}", bdf);
    return sim_proc_ctl(&sp, req, rep, sizeof(rep)) == 0 && strstr(rep, "\"ok\"") && !strstr(rep, "error") ? 0 : -1;
}

/* Bad input to the fault: refused, nothing armed. */
static bool stall_at_refused(const char *body)
{
    char req[300], rep[300];
    snprintf(req, sizeof(req), "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"%s\",%s}", PF, body);
    return sim_proc_ctl(&sp, req, rep, sizeof(rep)) == 0 && strstr(rep, "error") != NULL;
}

/* The sim's view: does bdf's device run (mig_state "running")?  Asks the
 * sim, not the daemon, so nothing waits for a stalled device. */
static bool dev_running(const char *bdf)
{
    char req[160], rep[4096];
    snprintf(req, sizeof(req), "{\"cmd\":\"counters\",\"bdf\":\"%s\"}", bdf);
    if (sim_proc_ctl(&sp, req, rep, sizeof(rep)) < 0)
        return false;
    json_t *j = json_loads(rep, 0, NULL);
    bool run = j && !strcmp(json_string_value(json_object_get(j, "mig_state")) ?: "", "running");
    json_decref(j);
    return run;
}

static struct vfe_fe *fe_open(const char *bdf)
{
    char path[450];
    snprintf(path, sizeof(path), "%s%s", iface, bdf);
    struct vfe_fe_opts o = {.path = path, .pairs = 1};
    return vfe_fe_open(&o);
}

static bool running(const char *bdf)
{
    json_t *vf = test_rpc_vf_stats(rpc, bdf);
    bool ok = vf && json_integer_value(json_object_get(vf, "rings_running")) == 2 &&
              !strcmp(json_string_value(json_object_get(vf, "state")) ?: "", "running");
    json_decref(vf);
    return ok;
}

static bool wait_running(const char *bdf, int ms)
{
    long end = check_now_ms() + ms;
    while (check_now_ms() < end) {
        if (running(bdf))
            return true;
        usleep(5000);
    }
    return false;
}

/* Drop what the switch flooded to fe (another pair's broadcasts). */
static void drain_rx(struct vfe_fe *fe)
{
    uint8_t in[1700];
    while (vfe_fe_recv(fe, 0, in, sizeof(in), 50) > 0)
        ;
}

/* Teach the sim's switch both MACs. */
static void learn(struct vfe_fe *a, struct vfe_fe *b, const uint8_t am[6], const uint8_t bm[6])
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[60], in[100];
    vfe_fe_frame(f, 60, bcast, am, 1);
    vfe_fe_send(a, 0, f, 60);
    vfe_fe_recv(b, 0, in, sizeof(in), 1000);
    vfe_fe_frame(f, 60, bcast, bm, 2);
    vfe_fe_send(b, 0, f, 60);
    vfe_fe_recv(a, 0, in, sizeof(in), 1000);
}

/* `version` round trip in ms, -1 on failure. */
static long version_ms(void)
{
    long t0 = check_now_ms();
    json_t *res = NULL;
    int rc = test_rpc_call(rpc, "version", json_object(), &res);
    json_decref(res);
    return rc == 0 ? check_now_ms() - t0 : -1;
}

/* A raw connection with one request sent, its reply not read yet. */
static int rpc_send(const char *line)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", rpc);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 || write(s, line, strlen(line)) != (ssize_t)strlen(line)) {
        if (s >= 0)
            close(s);
        return -1;
    }
    return s;
}

static json_t *rpc_read(int s, int ms)
{
    static char buf[1 << 20];
    size_t have = 0;
    long end = check_now_ms() + ms;
    while (check_now_ms() < end && have < sizeof(buf) - 1) {
        struct timeval tv = {0, 20000};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t n = read(s, buf + have, sizeof(buf) - 1 - have);
        if (n > 0)
            have += (size_t)n;
        if (have && buf[have - 1] == '\n')
            break;
        if (n == 0)
            break;
    }
    buf[have] = 0;
    return json_loads(buf, 0, NULL);
}

static json_t *entry_of(json_t *res, const char *bdf)
{
    json_t *vfs = json_object_get(json_object_get(res, "result"), "vfs"), *e;
    size_t i;
    json_array_foreach(vfs, i, e)
        if (!strcmp(json_string_value(json_object_get(e, "vf")) ?: "", bdf))
            return e;
    return NULL;
}

/* After 300 ms: version's latency, then the fault off (a thread: the test
 * itself waits in a front-end call meanwhile). */
static long late_version_ms = -1;
static void *clear_later(void *arg)
{
    usleep(300 * 1000);
    late_version_ms = version_ms();
    stall(arg, false);
    return NULL;
}

/* What X's front-end asks while X's PF does not read for 300 ms: answered
 * only after the PF answered again, `version` answered meanwhile.  *rc: its result. */
static void while_pf_stalled(const char *what, int (*ask)(struct vfe_fe *, uint16_t *), struct vfe_fe *fe,
                             uint16_t *bases, int *rc)
{
    pthread_t th;
    *rc = -1;
    late_version_ms = -1;
    REQUIRE(stall(PF, true) == 0, out, "vfu_stall on %s", PF);
    REQUIRE(pthread_create(&th, NULL, clear_later, (void *)PF) == 0, out, "thread");
    long t0 = check_now_ms();
    *rc = ask(fe, bases);
    long ms = check_now_ms() - t0;
    pthread_join(th, NULL);
    printf("measure: X's %s answered after %ld ms (its PF's server stalled for 300 ms)\n", what, ms);
    CHECK(*rc == 0 && ms >= 250, "X's %s answered after %ld ms (%d): before its PF answered", what, ms, *rc);
    CHECK(late_version_ms >= 0 && late_version_ms < 100, "version took %ld ms while X's PF did not read (%s)",
          late_version_ms, what);
out:;
}

static int ask_stop(struct vfe_fe *fe, uint16_t *bases) { return vfe_fe_stop(fe, bases); }
static int ask_log_start(struct vfe_fe *fe, uint16_t *bases) { return vfe_fe_log_start(fe); }

static const uint8_t mx[6] = {0x02, 0x11, 0, 0, 0, 1}, my[6] = {0x02, 0x22, 0, 0, 0, 2},
                     mz[6] = {0x02, 0x33, 0, 0, 0, 3};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *args[] = {"--pf", PF, "--vfs", "5", "--total-vfs", "5", "--qpairs", "1", "--log-level",
                          getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    char out[4096];
    struct vfe_fe *x = NULL, *y = NULL, *z = NULL;
    REQUIRE(start_daemon() == 0, done, "vfe-vhostd did not start");

    /* ---- the PF stops answering after its reset, in its admin queue's setup ---- */
    CHECK(stall_at_refused("\"at\":\"dma_unmap\"") && stall_at_refused("\"at\":7") &&
          stall_at_refused("\"at\":\"dma_map\",\"on\":true"), "vfu_stall with a bad \"at\" accepted");
    REQUIRE(stall_at_map(PF) == 0, done, "vfu_stall at dma_map on %s", PF);
    pthread_t th;
    late_version_ms = -1;
    REQUIRE(pthread_create(&th, NULL, clear_later, (void *)PF) == 0, done, "thread");
    long t0 = check_now_ms();
    int add_rc = mgmt(out, sizeof(out), "mgmtpf", "-a", PF);
    long add_ms = check_now_ms() - t0;
    pthread_join(th, NULL);
    printf("measure: mgmtpf -a answered after %ld ms (its admin queue's map held 300 ms), version meanwhile "
           "%ld ms\n", add_ms, late_version_ms);
    CHECK(add_rc == 0, "mgmtpf -a after the PF answered again: %s", out);
    CHECK(late_version_ms >= 0 && late_version_ms < 100,
          "version took %ld ms while the PF's admin queue setup waited for the device", late_version_ms);
    CHECK(mgmt(out, sizeof(out), "vf", "-a", X) == 0, "vf -a X: %s", out);
    CHECK(mgmt(out, sizeof(out), "vf", "-a", Y) == 0, "vf -a Y: %s", out);
    CHECK(mgmt(out, sizeof(out), "vf", "-a", Z) == 0, "vf -a Z: %s", out);
    CHECK(mgmt(out, sizeof(out), "vf", "-a", W) == 0, "vf -a W: %s", out);

    /* ---- the reference: one session set up with no fault ---- */
    t0 = check_now_ms();
    struct vfe_fe *w = fe_open(W);
    CHECK(w && vfe_fe_start(w, NULL) == 0 && wait_running(W, 3000), "W did not run");
    printf("measure: W session setup (connect..running), no fault: %ld ms\n", check_now_ms() - t0);
    vfe_fe_close(w);

    /* ---- X's device stops reading; X's front-end sets up ---- */
    REQUIRE(stall(X, true) == 0, done, "vfu_stall on %s", X);
    t0 = check_now_ms();
    x = fe_open(X);   /* features, memory table */
    REQUIRE(x, done, "X's front-end did not connect while X's device is stalled");
    CHECK(vfe_fe_start(x, NULL) == 0, "X's rings, kicks and calls were not answered");
    long x_setup = check_now_ms() - t0;
    CHECK(x_setup < 1000, "X's front-end waited %ld ms for its device: the writes were not posted", x_setup);
    CHECK(!dev_running(X), "X runs although its device acknowledged nothing");

    /* ---- Y and Z meanwhile ---- */
    t0 = check_now_ms();
    y = fe_open(Y);
    z = fe_open(Z);
    REQUIRE(y && z, done, "Y/Z front-ends did not connect");
    CHECK(vfe_fe_start(y, NULL) == 0 && vfe_fe_start(z, NULL) == 0, "Y/Z start");
    CHECK(wait_running(Y, 1500) && wait_running(Z, 1500), "Y/Z not running while X is stalled");
    long y_setup = check_now_ms() - t0;
    printf("measure: Y+Z session setup (connect..running) while X's device is stalled: %ld ms\n", y_setup);
    CHECK(y_setup < 1500, "Y and Z took %ld ms to run: X's stalled device held the loop", y_setup);
    learn(y, z, my, mz);
    CHECK(vfe_fe_flow(y, z, my, mz, 50, 100, 0) == 50, "Y -> Z frames while X is stalled");
    CHECK(vfe_fe_flow(z, y, mz, my, 50, 200, 0) == 50, "Z -> Y frames while X is stalled");
    long v = version_ms();
    CHECK(v >= 0 && v < 100, "version took %ld ms while X is stalled", v);
    CHECK(!dev_running(X), "X runs although its device is stalled");

    /* ---- the fault cleared within the bound: X starts ---- */
    CHECK(stall(X, false) == 0, "vfu_stall off");
    CHECK(wait_running(X, 3000), "X did not start once its device answered");
    learn(x, y, mx, my);
    CHECK(vfe_fe_flow(x, y, mx, my, 50, 300, 0) == 50, "X -> Y frames after the fault");
    CHECK(vfe_fe_flow(y, x, my, mx, 50, 400, 0) == 50, "Y -> X frames after the fault");

    /* ---- X stalled again: stats, version ---- */
    REQUIRE(stall(X, true) == 0, done, "vfu_stall on %s again", X);
    t0 = check_now_ms();
    int s = rpc_send("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"stats\",\"params\":{}}\n");
    CHECK(s >= 0, "stats request");
    usleep(100 * 1000);
    v = version_ms();
    CHECK(v >= 0 && v < 100, "version took %ld ms while a stats call waits for X's device", v);
    json_t *res = s >= 0 ? rpc_read(s, 4000) : NULL;
    long st_ms = check_now_ms() - t0;
    printf("measure: stats with X's device stalled answered in %ld ms (bound 2000 ms)\n", st_ms);
    CHECK(res && st_ms < 3000, "stats with X stalled: %ld ms", st_ms);
    json_t *ex = entry_of(res, X), *ey = entry_of(res, Y);
    CHECK(ex && json_is_string(json_object_get(ex, "error")) && !json_object_get(ex, "counters"),
          "X's stats entry has no error");
    CHECK(ey && json_is_object(json_object_get(ey, "counters")) && !json_object_get(ey, "error"),
          "Y's stats entry has no counters");
    CHECK(ey && json_integer_value(json_object_get(json_object_get(ey, "counters"), "tx_packets")) >= 50,
          "Y's counters do not count its frames");
    json_decref(res);
    if (s >= 0)
        close(s);

    /* ---- a restart of X's rings while stalled: refused after the bound, logged ---- */
    uint16_t bases[2];
    CHECK(vfe_fe_stop(x, bases) == 0, "X stop while stalled");
    CHECK(vfe_fe_start(x, bases) == 0, "X restart messages answered while stalled");
    const char *refused[] = {"did not acknowledge", NULL};
    CHECK(file_wait(log_path, refused, 1, 4000), "no log line for X's start refused after the bound");
    CHECK(!dev_running(X), "X runs without its device's acknowledgement");
    drain_rx(z);   /* X's broadcast when the switch learnt mx was flooded to Z too */
    CHECK(vfe_fe_flow(y, z, my, mz, 20, 500, 0) == 20, "Y -> Z frames while X's start waits");
    CHECK(stall(X, false) == 0, "vfu_stall off");
    CHECK(vfe_fe_stop(x, bases) == 0 && vfe_fe_start(x, bases) == 0, "X restart after the fault");
    CHECK(wait_running(X, 3000), "X did not run after the fault was cleared");
    CHECK(vfe_fe_flow(x, y, mx, my, 20, 600, 0) == 20, "X -> Y frames after the restart");

    /* ---- memory removed while X's device is stalled: the reply waits for its unmap ---- */
    int slot = vfe_fe_mem_add(x, 0x80000000ull, 1u << 20);
    CHECK(slot >= 0, "X adds a region: %d", slot);
    REQUIRE(stall(X, true) == 0, done, "vfu_stall on %s for the unmap", X);
    REQUIRE(pthread_create(&th, NULL, clear_later, (void *)X) == 0, done, "thread");
    t0 = check_now_ms();
    int rm = slot >= 0 ? vfe_fe_mem_remove(x, slot) : -1;
    long rm_ms = check_now_ms() - t0;
    pthread_join(th, NULL);
    printf("measure: region removal answered after %ld ms (the device's unmap acknowledged when the fault "
           "cleared at 300 ms)\n", rm_ms);
    CHECK(rm == 0 && rm_ms >= 250, "the removal was answered after %ld ms (%d): before the device let go", rm_ms,
          rm);
    CHECK(late_version_ms >= 0 && late_version_ms < 100, "version took %ld ms while X's memory reply waited",
          late_version_ms);
    CHECK(vfe_fe_flow(x, y, mx, my, 10, 700, 0) == 10, "X -> Y frames after the removal");

    /* ---- the PF's server stalled: X's stop is admin commands, their doorbells are posted ---- */
    int prc;
    while_pf_stalled("stop", ask_stop, x, bases, &prc);
    CHECK(vfe_fe_start(x, bases) == 0 && wait_running(X, 3000), "X did not run again after its PF answered");
    drain_rx(y);
    CHECK(vfe_fe_flow(x, y, mx, my, 10, 800, 0) == 10, "X -> Y frames after the PF's stall");

    /* ---- X's PF stalled at a migration's log start: the log's window in the PF is mapped without the loop
     * waiting; SET_LOG_BASE is answered once the PF acknowledged it and tracking started ---- */
    while_pf_stalled("log start", ask_log_start, x, bases, &prc);
    REQUIRE(prc == 0, done, "no log to look at");
    drain_rx(x);
    CHECK(vfe_fe_flow(y, x, my, mx, 10, 900, 0) == 10, "Y -> X frames while X logs");
    size_t lsz = vfe_fe_log_size(x);
    uint8_t *lb = lsz ? calloc(1, lsz) : NULL;
    long taken = lb ? vfe_fe_log_take(x, lb, lsz) : -ENOMEM;
    CHECK(taken > 0 && vfe_fe_log_count(lb, (size_t)taken) > 0,
          "the PF wrote no dirty page into X's log (%ld bytes taken)", taken);
    free(lb);
    CHECK(vfe_fe_log_stop(x) == 0, "X's log stop");
    CHECK(vfe_fe_flow(x, y, mx, my, 5, 950, 0) == 5, "X -> Y frames after the log stop");

    /* ---- a VF that never had a session removed while its device is stalled: its teardown is posted ---- */
    CHECK(mgmt(out, sizeof(out), "vf", "-a", V) == 0, "vf -a V: %s", out);
    REQUIRE(stall(V, true) == 0, done, "vfu_stall on %s", V);
    t0 = check_now_ms();
    int vr = mgmt(out, sizeof(out), "vf", "-r", V);
    long vv = version_ms();   /* the teardown runs from the loop after the answer */
    long vr_ms = check_now_ms() - t0;
    printf("measure: removal of a stalled VF without a session and a version call after it: %ld ms\n", vr_ms);
    CHECK(vr == 0 && vv >= 0 && vv < 100 && vr_ms < 1000,
          "vf -r of a stalled VF then version took %ld ms, version %ld ms (%s): its reset waited for the device",
          vr_ms, vv, out);
    CHECK(stall(V, false) == 0, "vfu_stall off on V");
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
done:
    if (getenv("VFE_TEST_KEEP_LOG")) {   /* debugging: the daemon's log where the caller says */
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", log_path, getenv("VFE_TEST_KEEP_LOG"));
        if (system(cmd) != 0)
            fprintf(stderr, "could not keep %s\n", log_path);
    }
    vfe_fe_close(x);
    vfe_fe_close(y);
    vfe_fe_close(z);
    CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("vhostd_stalled_session");
}
