/*
 * vfe-vhostd --ha with a real vfe-vhostd-ha, the sim and two test front-ends
 * (docs/ha.md):
 *  - kill -9 of the daemon: frames keep flowing between the front-ends while
 *    no daemon runs (the device forwards, kicks and interrupts bypass it);
 *    the restarted daemon takes every PF, VF and session over: the sim saw
 *    no reset and no vfio-user client leave, the front-ends no disconnect,
 *    GET_VRING_BASE on the adopted session gives the indices in guest
 *    memory, and stats count the resume; `vf -i` of an adopted VF answers
 *    while its device does not read (its facts are asked without waiting);
 *  - kill -9 while the front-end's messages are in flight (stop/start
 *    storms), many times: every session continues or is reset and reported;
 *  - the HA process killed: the daemon runs on, re-deposits into a new one,
 *    and a later kill -9 of the daemon still resumes;
 *  - SIGTERM hands over (no reset); vhostmgmt upgrade re-executes the daemon;
 *  - bad records (a corrupt VF record put by another client) are refused and
 *    that VF alone is provisioned afresh.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/common/virtio_ha/vfe_ha_client.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_vf.h"

#define PF "0000:3b:00.0"
#define VF_A "0000:3b:00.1"
#define VF_B "0000:3b:00.2"
#define VF_C "0000:3b:00.3"   /* provisioned, no front-end until after a restart */

static struct sim_proc sp;
static char rpc[300], iface[300], ha_sock[300], ha_log[300], log_path[320];
static pid_t vhostd = -1, ha = -1;
static unsigned starts;
static struct vfe_fe *fa, *fb;
static const uint8_t mac_a[6] = {0x02, 0xaa, 0, 0, 0, 1}, mac_b[6] = {0x02, 0xbb, 0, 0, 0, 2};

static int mgmt(char *out, size_t len, ...)
{
    va_list ap;
    va_start(ap, len);
    int rc = vhostmgmt_vrun(rpc, out, len, NULL, ap);
    va_end(ap);
    return rc;
}

static int start_ha(void)
{
    static unsigned ha_starts;
    snprintf(ha_log, sizeof(ha_log), "%.200s/ha-%u.log", sp.dir, ++ha_starts);
    const char *bin = getenv("VFE_VHOSTD_HA") ?: "vfe-vhostd-ha";
    const char *argv[] = {bin, "--socket", ha_sock, "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    ha = proc_spawn(argv, ha_log);
    const char *ready[] = {"ready: ", NULL};
    return ha > 0 && file_wait(ha_log, ready, 1, 5000) ? 0 : -1;
}

static const char *daemon_bin;
static char compat_tcp[32];   /* this start's --compat-tcp (a fresh port each start: a handover overlaps) */

static int start_daemon(void)
{
    snprintf(log_path, sizeof(log_path), "%.200s/vhostd-%u.log", sp.dir, ++starts);
    char state[300];
    snprintf(state, sizeof(state), "%.200s/state", sp.dir);
    snprintf(compat_tcp, sizeof(compat_tcp), "127.0.0.1:%d", proc_free_tcp_port());
    const char *argv[] = {daemon_bin ? daemon_bin : vhostd_bin(), "--pci-root", sp.root, "--rpc", rpc, "--iface", iface,
                          "--state-dir", state, "--ha", ha_sock, "--compat-tcp", compat_tcp,
                          "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    return vhostd > 0 && file_wait(log_path, ready, 1, 5000) ? 0 : -1;
}

static void kill9(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        proc_wait(*pid, 5000);
    }
    *pid = -1;
}

static bool wait_output(int ms, const char *needle, const char *cmd, const char *arg)
{
    char out[16384];
    long end = check_now_ms() + ms;
    do {
        if (mgmt(out, sizeof(out), "--json", cmd, arg, NULL) == 0 && strstr(out, needle))
            return true;
        usleep(20000);
    } while (check_now_ms() < end);
    fprintf(stderr, "last output of %s: %s\n", cmd, out);
    return false;
}

static long long counter(const char *bdf, const char *what)
{
    return test_sim_counter(&sp, bdf, what);
}

static int vfu_stall(const char *bdf, bool on)
{
    char req[200], rep[200];
    snprintf(req, sizeof(req), "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"%s\",\"on\":%s}", bdf,
             on ? "true" : "false");
    return sim_proc_ctl(&sp, req, rep, sizeof(rep)) == 0 && strstr(rep, "\"ok\"") && !strstr(rep, "error") ? 0 : -1;
}

/* The peer's `vf -i` (vhostmgmt --tcp on the compat listener): it shows the device's facts. */
static int compat_vf_info(char *out, size_t len, const char *bdf)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s --tcp %s vf -i %s 2>&1", vhostmgmt_bin(), compat_tcp, bdf);
    FILE *p = popen(cmd, "r");
    size_t got = p ? fread(out, 1, len - 1, p) : 0;
    out[got] = '\0';
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* "queue_size" shown and not 0. */
static bool has_queue_size(const char *out)
{
    const char *q = strstr(out, "\"queue_size\": \"");
    return q && q[15] >= '1' && q[15] <= '9';
}

/* An adopted VF's facts (no probe read them) are asked without waiting:
 * `vf -i` answers while its device does not read, the next ones show them. */
static void check_adopted_facts(const char *bdf)
{
    char out[16384];
    REQUIRE(vfu_stall(bdf, true) == 0, out, "vfu_stall on %s", bdf);
    long t0 = check_now_ms();
    int rc = compat_vf_info(out, sizeof(out), bdf);
    long took = check_now_ms() - t0;
    CHECK(vfu_stall(bdf, false) == 0, "vfu_stall off");
    printf("measure: vf -i of adopted %s, its device stalled: %ld ms\n", bdf, took);
    CHECK(rc == 0 && took < 500, "vf -i of adopted %s with its device stalled took %ld ms (%d): %s", bdf, took, rc,
          out);
    bool shown = false;
    for (long end = check_now_ms() + 3000; !shown && check_now_ms() < end; usleep(20000))
        shown = compat_vf_info(out, sizeof(out), bdf) == 0 && has_queue_size(out);
    CHECK(shown, "vf -i of adopted %s never showed the device's facts: %s", bdf, out);
out:;
}

static bool never_reset(const char *when)
{
    bool ok = true;
    const char *fns[] = {PF, VF_A, VF_B};   /* VF C's front-end came and went: its device was stopped, not reset */
    for (unsigned i = 0; i < 3; i++) {
        long long r = counter(fns[i], "resets"), d = counter(fns[i], "client_disconnects");
        if (r || d) {
            fprintf(stderr, "%s: %s was reset %lld times, its vfio-user client left %lld times\n", when, fns[i], r, d);
            ok = false;
        }
    }
    return ok;
}

static int setup(void)
{
    char out[8192];
    if (start_ha() < 0 || start_daemon() < 0)
        return -1;
    if (mgmt(out, sizeof(out), "mgmtpf", "-a", PF, NULL) || mgmt(out, sizeof(out), "vf", "-a", VF_A, NULL) ||
        mgmt(out, sizeof(out), "vf", "-a", VF_B, NULL) || mgmt(out, sizeof(out), "vf", "-a", VF_C, NULL)) {
        fprintf(stderr, "provisioning: %s\n", out);
        return -1;
    }
    static char sa[340], sb[340];   /* the front-ends keep pointing at them (reconnects) */
    snprintf(sa, sizeof(sa), "%s%s", iface, VF_A);
    snprintf(sb, sizeof(sb), "%s%s", iface, VF_B);
    struct vfe_fe_opts oa = {.path = sa, .pairs = 1}, ob = {.path = sb, .pairs = 1};
    fa = vfe_fe_open(&oa);
    fb = vfe_fe_open(&ob);
    if (!fa || !fb || vfe_fe_start(fa, NULL) || vfe_fe_start(fb, NULL))
        return -1;
    if (!wait_output(5000, "\"rings_running\": 2", "stats", VF_A) ||
        !wait_output(5000, "\"rings_running\": 2", "stats", VF_B))
        return -1;
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[60], in[100];
    vfe_fe_frame(f, 60, bcast, mac_a, 1);   /* the switch learns both addresses */
    vfe_fe_send(fa, 0, f, 60);
    vfe_fe_recv(fb, 0, in, sizeof(in), 1000);
    vfe_fe_frame(f, 60, bcast, mac_b, 2);
    vfe_fe_send(fb, 0, f, 60);
    vfe_fe_recv(fa, 0, in, sizeof(in), 1000);
    return 0;
}

/* kill -9; traffic while no daemon runs; restart; everything continues. */
static void test_kill9_resume(void)
{
    char out[16384];
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 50, 100, 100) == 50, "frames a -> b before");
    kill9(&vhostd);
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 100, 200, 200) == 100, "frames a -> b with no daemon running");
    CHECK(vfe_fe_flow(fb, fa, mac_b, mac_a, 100, 300, 300) == 100, "frames b -> a with no daemon running");
    REQUIRE(start_daemon() == 0, out, "restart");
    const char *took[] = {"took over 1 PFs and 3 VFs without a reset", NULL};
    CHECK(file_wait(log_path, took, 1, 5000), "the restarted daemon did not take everything over (%s)", log_path);
    CHECK(wait_output(3000, "\"resumed\": 1", "stats", VF_A), "stats: VF A not counted as resumed");
    CHECK(mgmt(out, sizeof(out), "--json", "health", NULL) == 0 && strstr(out, "\"last_resume\"") &&
              strstr(out, "\"vfs\": 3"),
          "health after resume: %s", out);
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 100, 400, 400) == 100, "frames a -> b after the restart");
    CHECK(vfe_fe_flow(fb, fa, mac_b, mac_a, 100, 500, 500) == 100, "frames b -> a after the restart");
    CHECK(never_reset("after kill -9 and restart"), "a function was reset");
    check_adopted_facts(VF_C);
    /* the adopted session answers the front-end on the same connection */
    uint16_t bases[2], used[2];
    CHECK(vfe_fe_stop(fa, bases) == 0, "stop on the adopted session");
    vfe_fe_used_indices(fa, used);
    CHECK(bases[0] == used[0] && bases[1] == used[1], "GET_VRING_BASE %u/%u, guest memory %u/%u", bases[0], bases[1],
          used[0], used[1]);
    CHECK(vfe_fe_start(fa, bases) == 0, "start again on the adopted session");
    CHECK(wait_output(5000, "\"rings_running\": 2", "stats", VF_A), "rings of A not running again");
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 50, 600, 600) == 50, "frames a -> b after stop/start on the adopted session");
    /* listeners taken over accept: a front-end that comes (or comes back) after the restart is served */
    char sc[340];
    snprintf(sc, sizeof(sc), "%s%s", iface, VF_C);
    struct vfe_fe_opts oc = {.path = sc, .pairs = 1};
    struct vfe_fe *fc = vfe_fe_open(&oc);
    CHECK(fc && vfe_fe_start(fc, NULL) == 0, "a new front-end on VF C after the restart");
    vfe_fe_close(fc);
    CHECK(vfe_fe_reconnect(fa) == 0 && vfe_fe_start(fa, NULL) == 0, "front-end A reconnects after the restart");
    CHECK(wait_output(5000, "\"rings_running\": 2", "stats", VF_A), "rings of A after its reconnect");
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 20, 700, 700) == 20, "frames a -> b after A reconnected");
out:;
}

/* ---- kill -9 at random points of a message storm ---- */

struct killer {
    pthread_t th;
    unsigned delay_us;
    int restarted;
};

static void *kill_and_restart(void *arg)
{
    struct killer *k = arg;
    usleep(k->delay_us);
    kill9(&vhostd);
    k->restarted = start_daemon();
    return NULL;
}

/* One round of what a front-end does: stop and start the rings, change the
 * memory table, turn dirty logging on and off.  0 or the step that failed. */
static int storm_round(struct vfe_fe *fe, unsigned round)
{
    uint16_t bases[2];
    if (vfe_fe_stop(fe, bases) < 0)
        return 1;
    if (vfe_fe_start(fe, bases) < 0)
        return 2;
    int slot = vfe_fe_mem_add(fe, (4ull + round % 4) << 30, 2u << 20);
    if (slot < 0 || vfe_fe_mem_remove(fe, slot) < 0)
        return 3;
    if (round % 3 == 0 && (vfe_fe_log_start(fe) < 0 || vfe_fe_log_stop(fe) < 0))
        return 4;
    return 0;
}

static unsigned count_in_logs(const char *needle)
{
    unsigned n = 0;
    for (unsigned i = 1; i <= starts; i++) {
        char path[340];
        snprintf(path, sizeof(path), "%.200s/vhostd-%u.log", sp.dir, i);
        const char *nn[] = {needle, NULL};
        n += (unsigned)file_count(path, nn);
    }
    return n;
}

/* The warnings and errors of the daemon logs of this run: the temp dir goes
 * with the test, the reason of a reset must reach the test log. */
static void print_log_problems(void)
{
    static char text[1 << 20];
    for (unsigned i = 1; i <= starts; i++) {
        char path[340];
        snprintf(path, sizeof(path), "%.200s/vhostd-%u.log", sp.dir, i);
        if (file_read(path, text, sizeof(text)) < 0)
            continue;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
            if (!strncmp(line, "<3>", 3) || !strncmp(line, "<4>", 3))
                printf("vhostd-%u.log: %s\n", i, line);
    }
}

static void test_storm(unsigned rounds)
{
    unsigned resets = 0, lost = 0;
    srand(getenv("VFE_HA_STORM_SEED") ? (unsigned)atoi(getenv("VFE_HA_STORM_SEED")) : 7);   /* other kill points */
    for (unsigned r = 0; r < rounds; r++) {
        struct killer k = {.delay_us = (unsigned)(rand() % 20000)};
        pthread_create(&k.th, NULL, kill_and_restart, &k);
        int step = 0;
        for (unsigned i = 0; i < 4 && !step; i++)
            step = storm_round(fa, r * 4 + i);
        pthread_join(k.th, NULL);
        REQUIRE(k.restarted == 0, out, "round %u: the daemon did not restart", r);
        if (step) {
            /* the session could not be continued: it must have been reset and said so */
            resets++;
            printf("storm round %u: step %d failed (daemon log %s)\n", r, step, log_path);
            print_log_problems();
            CHECK(count_in_logs("reset and provisioned afresh") + count_in_logs("cannot be continued") > 0,
                  "round %u: step %d failed with no reset reported", r, step);
            REQUIRE(vfe_fe_reconnect(fa) == 0 && vfe_fe_start(fa, NULL) == 0, out, "round %u: reconnect", r);
            REQUIRE(wait_output(5000, "\"rings_running\": 2", "stats", VF_A), out, "round %u: rings", r);
        }
        /* the session continues exactly: indices as in guest memory, frames flow */
        uint16_t bases[2], used[2];
        REQUIRE(vfe_fe_stop(fa, bases) == 0, out, "round %u: stop", r);
        vfe_fe_used_indices(fa, used);
        CHECK(bases[0] == used[0] && bases[1] == used[1], "round %u: GET_VRING_BASE %u/%u, guest memory %u/%u", r,
              bases[0], bases[1], used[0], used[1]);
        REQUIRE(vfe_fe_start(fa, bases) == 0, out, "round %u: start", r);
        REQUIRE(wait_output(5000, "\"rings_running\": 2", "stats", VF_A), out, "round %u: rings not running", r);
        unsigned got = vfe_fe_flow(fa, fb, mac_a, mac_b, 20, 1000 + r * 20, 1000 + r * 20);
        lost += 20 - got;
        CHECK(got == 20, "round %u: %u of 20 frames a -> b", r, got);
    }
    printf("storm: %u rounds with a kill -9 each, %u sessions reset, %u frames lost\n", rounds, resets, lost);
    CHECK(resets == 0, "%u of %u kills reset the session", resets, rounds);
    CHECK(never_reset("after the storm"), "a function was reset");
out:;
}

/* The HA process dies: the daemon runs on and deposits everything into a new one. */
static void test_ha_process_lost(void)
{
    kill9(&ha);
    CHECK(wait_output(3000, "\"connected\": false", "health", NULL), "health does not show the lost HA link");
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 20, 2000, 2000) == 20, "frames with the HA process gone");
    REQUIRE(start_ha() == 0, out, "HA process restart");
    CHECK(wait_output(5000, "\"connected\": true", "health", NULL), "the daemon did not reconnect to the HA process");
    CHECK(wait_output(8000, "\"records\": 4", "health", NULL), "the new HA process did not get 4 records");
    kill9(&vhostd);
    REQUIRE(start_daemon() == 0, out, "restart after the HA process was replaced");
    const char *took[] = {"took over 1 PFs and 3 VFs without a reset", NULL};
    CHECK(file_wait(log_path, took, 1, 5000), "no take-over after the HA process was replaced");
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 20, 2100, 2100) == 20, "frames after that restart");
    CHECK(never_reset("after the HA process was replaced"), "a function was reset");
out:;
}

/* Install path: a copy of the binary replaced like a package upgrade does
 * (a new file renamed over the old one). */
static int install_binary(const char *dst)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s.new' && mv -f '%s.new' '%s'", vhostd_bin(), dst, dst, dst);
    return system(cmd) == 0 ? 0 : -1;
}

/* SIGTERM with --ha hands over; vhostmgmt upgrade re-executes the binary now on disk. */
static void test_handover_and_upgrade(void)
{
    char out[16384], bin[320];
    snprintf(bin, sizeof(bin), "%.200s/vfe-vhostd", sp.dir);
    REQUIRE(install_binary(bin) == 0, out, "install %s", bin);
    daemon_bin = bin;
    kill(vhostd, SIGTERM);
    CHECK(proc_wait(vhostd, 5000) == 0, "SIGTERM: the daemon did not exit 0");
    vhostd = -1;
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 20, 3000, 3000) == 20, "frames after the hand-over, no daemon running");
    REQUIRE(start_daemon() == 0, out, "start after the hand-over");
    const char *took[] = {"took over 1 PFs and 3 VFs without a reset", NULL};
    CHECK(file_wait(log_path, took, 1, 5000), "no take-over after SIGTERM");
    struct stat before, after;
    char exe[64], target[400];
    snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)vhostd);
    stat(exe, &before);
    REQUIRE(install_binary(bin) == 0, out, "reinstall %s", bin);   /* the "new version" on disk */
    ssize_t n = readlink(exe, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    CHECK(strstr(target, "(deleted)"), "the running binary should be the replaced one: %s", target);
    CHECK(mgmt(out, sizeof(out), "upgrade", NULL) == 0, "vhostmgmt upgrade: %s", out);
    CHECK(file_wait(log_path, took, 2, 8000), "no take-over after vhostmgmt upgrade (%s)", log_path);
    CHECK(proc_alive(vhostd), "the upgraded daemon is not the same process");
    n = readlink(exe, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    stat(exe, &after);
    CHECK(!strstr(target, "(deleted)") && after.st_ino != before.st_ino, "after upgrade the daemon runs %s", target);
    CHECK(wait_output(5000, "\"resumed\": ", "stats", VF_B), "stats after upgrade");
    CHECK(vfe_fe_flow(fb, fa, mac_b, mac_a, 20, 3100, 3100) == 20, "frames after the upgrade");
    CHECK(never_reset("after hand-over and upgrade"), "a function was reset");
out:;
}

/* A record that cannot be read: that VF alone is reset and provisioned
 * afresh; a record from a newer daemon is refused the same way. */
static void spoil_record(const char *key, unsigned offset, uint8_t value)
{
    int err;
    const char *why;
    kill9(&vhostd);
    struct vfe_ha_client *c = NULL;
    for (int i = 0; i < 50 && !c; i++, usleep(20000))
        c = vfe_ha_client_connect(ha_sock, "test", 2000, &err, &why);
    REQUIRE(c, out, "test client: %s", why);
    struct vfe_ha_record *r = NULL;
    unsigned n = 0;
    REQUIRE(vfe_ha_get(c, key, &r, &n) == 0 && n == 1, out2, "GET %s", key);
    r->blob[offset] = value;
    CHECK(vfe_ha_put(c, key, r->blob, r->blob_len, r->fds, r->nfds) == 0, "PUT spoiled %s", key);
out2:
    vfe_ha_records_free(r, n);
    vfe_ha_client_close(c);
out:;
}

static void test_bad_records(void)
{
    spoil_record("vf/" VF_B, 0, 0x00);   /* magic */
    REQUIRE(start_daemon() == 0, out, "start with a spoiled record");
    const char *refused[] = {"record vf/" VF_B " refused", NULL};
    CHECK(file_wait(log_path, refused, 1, 5000), "spoiled record not refused (%s)", log_path);
    const char *one[] = {"took over 1 PFs and 2 VFs", NULL};
    CHECK(file_wait(log_path, one, 1, 5000), "VF A not taken over beside the spoiled VF B");
    /* B's front-end sees its session end and reconnects to a fresh one */
    CHECK(wait_output(5000, "\"vhost_user\": \"waiting\"", "stats", VF_B), "VF B not provisioned afresh");
    int rc = vfe_fe_reconnect(fb);
    REQUIRE(rc == 0 && (rc = vfe_fe_start(fb, NULL)) == 0, out, "front-end B reconnects: %s", strerror(-rc));
    CHECK(wait_output(5000, "\"rings_running\": 2", "stats", VF_B), "VF B not running after its reset");
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 20, 4000, 4000) == 20, "frames a -> b after B's reset");
    CHECK(counter(VF_A, "resets") == 0 && counter(VF_A, "client_disconnects") == 0, "VF A was reset too");
    CHECK(counter(VF_B, "client_disconnects") == 1, "VF B: %lld client disconnects, want 1",
          counter(VF_B, "client_disconnects"));
    spoil_record("vf/" VF_A, 4, 99);     /* record version: a newer daemon's */
    REQUIRE(start_daemon() == 0, out, "start with a newer record");
    const char *newer[] = {"written by a newer vfe-vhostd", NULL};
    CHECK(file_wait(log_path, newer, 1, 5000), "newer record not refused with its reason");
out:;
}

/* Both gone (or a reboot): the daemon provisions everything again from its
 * state directory; the devices were reset, the front-ends reconnect. */
static void test_both_killed(void)
{
    kill9(&vhostd);
    kill9(&ha);
    REQUIRE(start_ha() == 0 && start_daemon() == 0, out, "start both again");
    const char *none[] = {"holds 0 records", NULL};
    CHECK(file_wait(log_path, none, 1, 5000), "a fresh HA process should hold nothing");
    CHECK(wait_output(5000, "\"vhost_user\": \"waiting\"", "stats", VF_A) &&
              wait_output(5000, "\"vhost_user\": \"waiting\"", "stats", VF_B),
          "VFs not provisioned from the state");
    REQUIRE(vfe_fe_reconnect(fa) == 0 && vfe_fe_start(fa, NULL) == 0 && vfe_fe_reconnect(fb) == 0 &&
                vfe_fe_start(fb, NULL) == 0,
            out, "front-ends reconnect");
    CHECK(wait_output(5000, "\"rings_running\": 2", "stats", VF_A) &&
              wait_output(5000, "\"rings_running\": 2", "stats", VF_B),
          "rings not running after both restarted");
    CHECK(vfe_fe_flow(fa, fb, mac_a, mac_b, 20, 5000, 5000) == 20, "frames a -> b after both restarted");
    CHECK(wait_output(8000, "\"records\": 4", "health", NULL), "the new HA process did not get the records");
out:;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *args[] = {"--pf", PF, "--vfs", "3", "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    snprintf(rpc, sizeof(rpc), "%.200s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%.200s/vf-", sp.dir);
    snprintf(ha_sock, sizeof(ha_sock), "%.200s/ha.sock", sp.dir);
    unsigned rounds = getenv("VFE_HA_STORM_ROUNDS") ? (unsigned)atoi(getenv("VFE_HA_STORM_ROUNDS")) : 30;
    if (setup() == 0) {
        test_kill9_resume();
        test_storm(rounds);
        test_ha_process_lost();
        test_handover_and_upgrade();
        test_bad_records();
        test_both_killed();
    } else
        CHECK(0, "setup failed (logs in %s)", sp.dir);
    vfe_fe_close(fa);
    vfe_fe_close(fb);
    if (vhostd > 0)
        proc_stop(vhostd, 5000);
    if (ha > 0)
        proc_stop(ha, 3000);
    sim_proc_stop(&sp);
    return check_result("vhostd_ha");
}
