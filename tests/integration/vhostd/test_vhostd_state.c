/*
 * vfe-vhostd's persisted provisioning (--state-dir):
 *  - a PF and two VFs (one with a VM id and its own socket path) survive a
 *    kill -9: the restarted daemon serves the same sockets and VM ids and
 *    frames flow between front-ends on them;
 *  - a removed VF stays removed after a restart;
 *  - a failed state write is reported and the live state is intact; the
 *    write is retried once it can succeed;
 *  - a daemon started before the sim keeps the records pending and
 *    provisions everything once the sim appears;
 *  - a corrupt or newer-version file: exit 2, the file named in the log,
 *    the file unchanged byte for byte.
 * The PCI tree is a symlink the test points at the current sim's tree.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/frontend/vfe_frontend.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define PF "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"

static char work[256], pci[300], empty[300], state[300], rpc[300], iface[300], sock2[300], state_file[340];
static pid_t vhostd = -1;
static unsigned starts;
static char log_path[320];

static int mgmt(char *out, size_t len, ...)
{
    va_list ap;
    va_start(ap, len);
    int rc = vhostmgmt_vrun(rpc, out, len, NULL, ap);
    va_end(ap);
    return rc;
}

/* Point the PCI tree symlink at target (atomically: the daemon may be reading it). */
static int point_pci(const char *target)
{
    char tmp[320];
    snprintf(tmp, sizeof(tmp), "%s.new", pci);
    unlink(tmp);
    return symlink(target, tmp) == 0 && rename(tmp, pci) == 0 ? 0 : -1;
}

static pid_t spawn_daemon(const char *state_dir)
{
    snprintf(log_path, sizeof(log_path), "%s/vhostd-%u.log", work, ++starts);
    const char *argv[] = {vhostd_bin(), "--pci-root", pci, "--rpc", rpc, "--iface", iface, "--state-dir", state_dir,
                          "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    return proc_spawn(argv, log_path);
}

static int start_daemon(void)
{
    vhostd = spawn_daemon(state);
    const char *ready[] = {"ready: RPC", NULL};
    return vhostd > 0 && file_wait(log_path, ready, 1, 5000) ? 0 : -1;
}

static void kill9(void)
{
    if (vhostd > 0) {
        kill(vhostd, SIGKILL);
        proc_wait(vhostd, 5000);
    }
    vhostd = -1;
}

/* Wait until `vhostmgmt --json CMD` (shell words) prints every needle and,
 * if absent is given, not it. */
static bool wait_output(int ms, const char *const *needles, const char *absent, const char *cmd)
{
    char out[8192];
    long end = check_now_ms() + ms;
    do {
        bool ok = mgmt(out, sizeof(out), "--json", cmd, NULL) == 0;
        for (unsigned i = 0; ok && needles[i]; i++)
            ok = strstr(out, needles[i]) != NULL;
        if (ok && (!absent || !strstr(out, absent)))
            return true;
        usleep(50000);
    } while (check_now_ms() < end);
    fprintf(stderr, "last output of %s: %s\n", cmd, out);
    return false;
}

static const uint8_t mac_a[6] = {0x02, 0xaa, 0, 0, 0, 1}, mac_b[6] = {0x02, 0xbb, 0, 0, 0, 2};

/* Front-ends on both VF sockets, frames both ways. */
static void check_traffic(const char *what)
{
    char sa[340];
    snprintf(sa, sizeof(sa), "%s%s", iface, VF1);
    struct vfe_fe_opts oa = {.path = sa, .pairs = 1}, ob = {.path = sock2, .pairs = 1};
    struct vfe_fe *a = vfe_fe_open(&oa), *b = vfe_fe_open(&ob);
    REQUIRE(a && b, out, "%s: front-ends did not connect to %s and %s", what, sa, sock2);
    REQUIRE(vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, out, "%s: start", what);
    const char *running[] = {"\"rings_running\": 2", NULL};
    CHECK(wait_output(5000, running, NULL, "stats " VF1) && wait_output(5000, running, NULL, "stats " VF2),
          "%s: rings not running", what);
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[60], in[100];
    vfe_fe_frame(f, 60, bcast, mac_a, 1);   /* teach the sim's switch both MACs */
    vfe_fe_send(a, 0, f, 60);
    vfe_fe_recv(b, 0, in, sizeof(in), 1000);
    vfe_fe_frame(f, 60, bcast, mac_b, 2);
    vfe_fe_send(b, 0, f, 60);
    vfe_fe_recv(a, 0, in, sizeof(in), 1000);
    CHECK(vfe_fe_flow(a, b, mac_a, mac_b, 100, 10, 0) == 100, "%s: frames a -> b", what);
    CHECK(vfe_fe_flow(b, a, mac_b, mac_a, 100, 20, 0) == 100, "%s: frames b -> a", what);
out:
    vfe_fe_close(a);
    vfe_fe_close(b);
}

/* Provision, kill -9, restart: same sockets and VM ids, frames flow. */
static void test_restart(void)
{
    char out[8192];
    CHECK(mgmt(out, sizeof(out), "mgmtpf", "-a", PF, NULL) == 0, "mgmtpf -a: %s", out);
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF1, NULL) == 0, "vf -a 1: %s", out);
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF2, "-u", "vm-2", "-v", sock2, NULL) == 0, "vf -a 2: %s", out);
    char file[8192];
    file_read(state_file, file, sizeof(file));
    CHECK(strstr(file, "\"version\": 1") && strstr(file, VF1) && strstr(file, sock2) && strstr(file, "vm-2"),
          "state file after provisioning: %s", file);
    /* a failed change writes nothing */
    CHECK(mgmt(out, sizeof(out), "vf", "-a", "0000:3b:00.9", NULL) != 0, "vf -a of a missing VF succeeded");
    char again[8192];
    file_read(state_file, again, sizeof(again));
    CHECK(!strcmp(file, again), "a failed vf -a changed the state file");

    kill9();
    REQUIRE(start_daemon() == 0, out, "restart after kill -9");
    char s1[340], uuid[80];
    snprintf(s1, sizeof(s1), "\"socket_file\": \"%s%s\"", iface, VF1);
    snprintf(uuid, sizeof(uuid), "\"vm_uuid\": \"vm-2\"");
    char s2[340];
    snprintf(s2, sizeof(s2), "\"socket_file\": \"%s\"", sock2);
    const char *both[] = {s1, s2, uuid, NULL};
    CHECK(wait_output(5000, both, "pending", "vf -l " PF), "vf -l after restart");
    check_traffic("after kill -9 and restart");
out:;
}

/* A removed VF stays removed. */
static void test_removed_stays_removed(void)
{
    char out[8192], file[8192];
    CHECK(mgmt(out, sizeof(out), "vf", "-r", VF1, NULL) == 0, "vf -r: %s", out);
    file_read(state_file, file, sizeof(file));
    CHECK(!strstr(file, VF1) && strstr(file, VF2), "state file after vf -r: %s", file);
    kill9();
    REQUIRE(start_daemon() == 0, out, "restart after vf -r");
    const char *vf2[] = {VF2, NULL};
    CHECK(wait_output(5000, vf2, "pending", "vf -l " PF), "VF 2 back");
    usleep(300000);
    CHECK(mgmt(out, sizeof(out), "--json", "vf", "-l", PF, NULL) == 0 && !strstr(out, VF1),
          "the removed VF came back: %s", out);
out:;
}

/* The state cannot be written (its temp file is a directory): the change
 * still happens, the failure is reported, and the write is retried. */
static void test_write_failure(void)
{
    char out[8192], before[8192], after[8192], tmp[360];
    snprintf(tmp, sizeof(tmp), "%s.tmp", state_file);
    file_read(state_file, before, sizeof(before));
    REQUIRE(mkdir(tmp, 0700) == 0, out, "mkdir %s", tmp);
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF1, NULL) == 0, "vf -a with an unwritable state: %s", out);
    CHECK(mgmt(out, sizeof(out), "--json", "vf", "-l", PF, NULL) == 0 && strstr(out, VF1) && strstr(out, VF2),
          "live state after a failed write: %s", out);
    CHECK(mgmt(out, sizeof(out), "--json", "health", NULL) == 0 && strstr(out, "\"degraded\"") &&
              strstr(out, "\"saved\": false") && strstr(out, "provisioning.json.tmp"),
          "health after a failed write: %s", out);
    const char *needle[] = {"state not saved", "provisioning.json.tmp", NULL};
    CHECK(file_count(log_path, needle) == 1, "one log line for the failed write");
    file_read(state_file, after, sizeof(after));
    CHECK(!strcmp(before, after), "the state file changed although the write failed");
    rmdir(tmp);
    const char *saved[] = {"\"saved\": true", "\"ok\"", NULL};
    CHECK(wait_output(5000, saved, NULL, "health"), "state not saved after the retry");
    file_read(state_file, after, sizeof(after));
    CHECK(strstr(after, VF1) != NULL, "state file after the retry: %s", after);
out:;
}

/* The daemon starts before the DPU: pending records, applied once it appears. */
static void test_daemon_before_sim(struct sim_proc *sp, const char *const *sim_args)
{
    kill9();
    sim_proc_stop(sp);
    REQUIRE(point_pci(empty) == 0, out, "symlink");
    REQUIRE(start_daemon() == 0, out, "daemon without a sim");
    const char *pending_pf[] = {"\"pending\"", PF, "pending_reason", NULL};
    CHECK(wait_output(3000, pending_pf, NULL, "mgmtpf -l"), "PF not listed as pending");
    const char *pending[] = {"\"pending_pfs\": 1", "\"pending_vfs\": 2", "\"degraded\"", NULL};
    CHECK(wait_output(3000, pending, NULL, "health"), "health without a sim");
    usleep(2500000);   /* a retry or two without the sim: still one log line per record */
    const char *vf_lines[] = {"state: VF " VF2 " pending", NULL};
    CHECK(file_count(log_path, vf_lines) == 1, "%d log lines for one pending VF", file_count(log_path, vf_lines));

    REQUIRE(sim_proc_start(sp, sim_args) == 0, out, "sim start");
    REQUIRE(point_pci(sp->root) == 0, out, "symlink");
    long t0 = check_now_ms();
    const char *ready[] = {"\"pending_pfs\": 0", "\"pending_vfs\": 0", "\"vfs\": 2", "\"ok\"", NULL};
    CHECK(wait_output(8000, ready, NULL, "health"), "not provisioned after the sim appeared");
    fprintf(stderr, "provisioned %ld ms after the sim appeared\n", check_now_ms() - t0);
    check_traffic("daemon started before the sim");
out:;
}

/* A pending record can be removed. */
static void test_remove_pending(void)
{
    char out[8192], file[8192];
    CHECK(mgmt(out, sizeof(out), "vf", "-r", VF1, NULL) == 0, "vf -r: %s", out);
    CHECK(mgmt(out, sizeof(out), "vf", "-r", VF2, NULL) == 0, "vf -r: %s", out);
    CHECK(mgmt(out, sizeof(out), "mgmtpf", "-r", PF, NULL) == 0, "mgmtpf -r: %s", out);
    file_read(state_file, file, sizeof(file));
    CHECK(!strstr(file, PF) && !strstr(file, VF2), "state file after removing everything: %s", file);
    /* a persisted PF that is absent is pending and can be dropped */
    kill9();
    FILE *f = fopen(state_file, "w");
    fputs("{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[{\"bdf\":\"0000:5e:00.0\"}],\"vfs\":[]}",
          f);
    fclose(f);
    REQUIRE(start_daemon() == 0, out, "daemon with an absent PF");
    const char *pending[] = {"0000:5e:00.0", "\"pending\"", NULL};
    CHECK(wait_output(3000, pending, NULL, "mgmtpf -l"), "absent PF not pending");
    CHECK(mgmt(out, sizeof(out), "mgmtpf", "-r", "0000:5e:00.0", NULL) == 0, "mgmtpf -r of a pending PF: %s", out);
    file_read(state_file, file, sizeof(file));
    CHECK(!strstr(file, "0000:5e:00.0"), "pending PF still persisted: %s", file);
out:;
}

/* Bad files: refused as a whole, exit 2, one clear line, file untouched. */
static void test_bad_files(void)
{
    static const struct {
        const char *name, *text, *why;
    } bad[] = {
        {"truncated", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[{\"bdf\":\"0000:3b:00.0\"}],"
                      "\"vfs\":[{\"bdf\":\"0000:3b:00.1\",\"soc", "not valid JSON"},
        {"wrong type", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[{\"bdf\":7}],\"vfs\":[]}",
         "pfs[0].bdf must be a string"},
        {"duplicate VF", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                         "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/a\"},{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/b\"}]}",
         "VF 0000:3b:00.1 is listed twice"},
        {"bad BDF", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[{\"bdf\":\"0000:3B:00.0\"}],"
                    "\"vfs\":[]}", "is not a PCI address"},
        {"relative socket", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                            "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"vf.sock\"}]}", "not an absolute path"},
        {"wrong format", "{\"format\":\"something-else\",\"version\":1,\"pfs\":[],\"vfs\":[]}", "\"format\""},
        {"unknown key", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                        "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/a\",\"sock\":\"/tmp/b\"}]}",
         "unknown key \"sock\""},
        {"shared socket", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                          "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/a\"},{\"bdf\":\"0000:3b:00.2\",\"socket\":\"/tmp/a\"}]}",
         "have the same socket"},
        {"duplicate key", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"version\":1,\"pfs\":[],\"vfs\":[]}",
         "not valid JSON"},
        {"uuid type", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                      "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/a\",\"uuid\":[]}]}", "vfs[0].uuid must be a string"},
        {"version type", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":\"1\",\"pfs\":[],\"vfs\":[]}",
         "\"version\" is not a positive integer"},
        {"newer version", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":2,\"pfs\":[],\"vfs\":[],\"x\":1}",
         "written by a newer vfe-vhostd, version 2; this one reads 1"},
        /* the MSI-X size of a VF (vf -a --queues/--msix) */
        {"msix zero", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                      "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/a\",\"msix\":0}]}",
         "vfs[0].msix must be an integer 1..2048"},
        {"msix string", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                        "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/a\",\"msix\":\"9\"}]}",
         "vfs[0].msix must be an integer 1..2048"},
        {"msix too large", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                           "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/a\",\"msix\":4097}]}",
         "vfs[0].msix must be an integer 1..2048"},
        {"msix null", "{\"format\":\"vfe-vhostd-provisioning\",\"version\":1,\"pfs\":[],\"vfs\":["
                      "{\"bdf\":\"0000:3b:00.1\",\"socket\":\"/tmp/a\",\"msix\":null}]}",
         "vfs[0].msix must be an integer 1..2048"},
    };
    char dir[320], file[360], back[4096];
    snprintf(dir, sizeof(dir), "%s/bad-state", work);
    snprintf(file, sizeof(file), "%s/provisioning.json", dir);
    mkdir(dir, 0700);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(file, "w");
        REQUIRE(f, out, "write %s", file);
        fputs(bad[i].text, f);
        fclose(f);
        pid_t pid = spawn_daemon(dir);
        int st = proc_wait(pid, 5000);
        if (st < 0)
            proc_stop(pid, 1000);
        const char *needle[] = {file, bad[i].why, "move it away", NULL};
        CHECK(st == 2, "%s: exit status %d, want 2", bad[i].name, st);
        CHECK(file_count(log_path, needle) == 1, "%s: no line naming %s and '%s' in the log", bad[i].name, file,
              bad[i].why);
        file_read(file, back, sizeof(back));
        CHECK(!strcmp(back, bad[i].text), "%s: the file was changed", bad[i].name);
        CHECK(access(rpc, F_OK) != 0, "%s: the daemon created its RPC socket", bad[i].name);
    }
out:
    unlink(file);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct sim_proc sp = {0};
    const char *sim_args[] = {"--pf", PF, "--vfs", "4", "--log-level",
                              getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    snprintf(work, sizeof(work), "%s/vfe-state-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(work))
        return 1;
    snprintf(pci, sizeof(pci), "%s/pci", work);
    snprintf(empty, sizeof(empty), "%s/empty", work);
    snprintf(state, sizeof(state), "%s/state", work);
    snprintf(state_file, sizeof(state_file), "%s/provisioning.json", state);
    snprintf(rpc, sizeof(rpc), "%s/vhostd.sock", work);
    snprintf(iface, sizeof(iface), "%s/vf-", work);
    snprintf(sock2, sizeof(sock2), "%s/custom-vf2.sock", work);
    mkdir(empty, 0700);
    REQUIRE(point_pci(empty) == 0, done, "symlink");
    test_bad_files();
    REQUIRE(sim_proc_start(&sp, sim_args) == 0, done, "sim start");
    REQUIRE(point_pci(sp.root) == 0, done, "symlink");
    REQUIRE(start_daemon() == 0, done, "vfe-vhostd did not start");
    struct stat st;
    CHECK(stat(state, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "state dir not created 0700");
    {
        char other_rpc[320], log[400];
        snprintf(other_rpc, sizeof(other_rpc), "%s/other.sock", work);
        const char *argv[] = {vhostd_bin(), "--pci-root", pci, "--rpc", other_rpc, "--state-dir", state, NULL};
        snprintf(log, sizeof(log), "%s/second.log", work);
        pid_t pid = proc_spawn(argv, log);
        int st2 = proc_wait(pid, 5000);
        const char *needle[] = {"another vfe-vhostd uses it", NULL};
        CHECK(st2 == 1 && file_count(log, needle) == 1, "second daemon on one state dir: exit %d", st2);
        if (st2 < 0)
            proc_stop(pid, 1000);
    }
    test_restart();
    test_removed_stays_removed();
    test_write_failure();
    test_daemon_before_sim(&sp, sim_args);
    test_remove_pending();
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
done:
    if (vhostd > 0)
        CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    if (sp.pid > 0)
        sim_proc_stop(&sp);
    proc_remove_workdir(work);
    return check_result("vhostd_state");
}
