/*
 * vfe-vhostd at scale, against the sim:
 *   - one PF with 1024 VFs (sriov_totalvfs 1024): every VF provisioned through
 *     the daemon; VFs past function 7 and past a bus (VF 8 = 3b:01.0, VF 256 =
 *     3c:00.0, VF 1024 = 3f:00.0) are served under the BDF the tree gives;
 *   - stats and vf -l in pages: default page, offset/limit edges, bad values
 *     (negative, zero, too large, wrong types) refused with -32602; vhostmgmt
 *     merges the pages into one answer;
 *   - limits: the sim refuses --total-vfs 1025 and a 17th --pf; the daemon
 *     refuses a 17th PF and a VF beyond virtfn1023 with a sentence.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_rpc.h"

#define PF "0000:3b:00.0"
#define NVFS 1024
#define NPFS 16

static struct sim_proc sp;
static char rpc[300], iface[300];
static char big[4 << 20];

/* VF n of PF 3b:00.0 (routing id + n, as the sim's SR-IOV capability says). */
static void vf_bdf(unsigned n, char out[16])
{
    unsigned rid = 0x3b00 + n;
    snprintf(out, 16, "0000:%02x:%02x.%x", rid >> 8, (rid >> 3) & 0x1f, rid & 7);
}

static int call(const char *method, json_t *params, json_t **res, char *msg, size_t len)
{
    return test_rpc_ask(rpc, method, params, 10000, res, msg, len);
}

static int vf_add(const char *bdf, char *msg, size_t len)
{
    json_t *res;
    int rc = call("vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", bdf), &res, msg, len);
    json_decref(res);
    return rc;
}

/* stats with params p: rc, and the page's size, total and next (-1 if absent). */
static int stats_page(json_t *p, int *n, int *total, int *next)
{
    json_t *res;
    char msg[256];
    int rc = call("stats", p, &res, msg, sizeof(msg));
    *n = *total = *next = -1;
    if (!rc) {
        *n = (int)json_array_size(json_object_get(res, "vfs"));
        json_t *t = json_object_get(res, "total"), *x = json_object_get(res, "next");
        *total = t ? (int)json_integer_value(t) : -1;
        *next = x ? (int)json_integer_value(x) : -1;
    }
    json_decref(res);
    return rc;
}

/* The daemon's soft RLIMIT_NOFILE is its hard one, and the log says how many VFs that serves. */
static void check_fd_limit(pid_t pid, const char *log, rlim_t hard)
{
    char path[64], text[8192] = "";
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    file_read(path, text, sizeof(text));
    const char *l = strstr(text, "Max open files");
    unsigned long long soft = 0, max = 0;
    CHECK(l && sscanf(l + strlen("Max open files"), "%llu %llu", &soft, &max) == 2 && soft == max &&
          (hard == RLIM_INFINITY || max == (unsigned long long)hard), "daemon fd limit soft %llu hard %llu", soft,
          max);
    static char logtext[1 << 20];
    file_read(log, logtext, sizeof(logtext));
    CHECK(strstr(logtext, "file descriptors: enough for"), "no fd budget line in the log");
}

static void test_sim_limits(void)
{
    const char *bin = getenv("VFE_SIM_BIN");
    char dir[300], log[400];
    snprintf(dir, sizeof(dir), "%s/limits", sp.dir);
    snprintf(log, sizeof(log), "%s/limits.log", sp.dir);
    const char *a1[] = {bin, "--root", dir, "--pf", PF, "--total-vfs", "1025", NULL};
    pid_t p = proc_spawn(a1, log);
    CHECK(proc_wait(p, 5000) == 2 || proc_wait(p, 0) != 0, "sim --total-vfs 1025 not refused");
    char text[1024] = "";
    file_read(log, text, sizeof(text));
    CHECK(strstr(text, "0..1024") != NULL, "sim --total-vfs 1025: %s", text);
    const char *a2[40] = {bin, "--root", dir};
    unsigned n = 3;
    char pfs[17][16];
    for (unsigned i = 0; i < 17; i++) {
        snprintf(pfs[i], 16, "0000:%02x:00.0", 0x10 + i);
        a2[n++] = "--pf";
        a2[n++] = pfs[i];
    }
    a2[n] = NULL;
    p = proc_spawn(a2, log);
    int st = proc_wait(p, 5000);
    file_read(log, text, sizeof(text));
    CHECK(st != 0 && strstr(text, "at most 16 --pf"), "sim with 17 PFs: status %d, %s", st, text);
    /* 1024 VFs of a PF on bus fe would pass bus ff */
    const char *a3[] = {bin, "--root", dir, "--pf", "0000:fe:00.0", "--total-vfs", "1024", NULL};
    p = proc_spawn(a3, log);
    st = proc_wait(p, 5000);
    file_read(log, text, sizeof(text));
    CHECK(st != 0 && strstr(text, "pass bus ff"), "sim PF fe:00.0 x 1024: status %d, %s", st, text);
}

static void test_provision_all(void)
{
    char msg[512], bdf[16];
    long t0 = check_now_ms();
    unsigned ok = 0;
    for (unsigned n = 1; n <= NVFS; n++) {
        vf_bdf(n, bdf);
        int rc = vf_add(bdf, msg, sizeof(msg));
        if (rc == 0)
            ok++;
        else
            CHECK(0, "vf -a %s (VF %u): %s (%d)", bdf, n, msg, rc);
        if (rc && n > 3)
            break;
    }
    long ms = check_now_ms() - t0;
    CHECK(ok == NVFS, "%u of %u VFs added", ok, NVFS);
    printf("# %u VFs added in %ld ms\n", ok, ms);
    /* past function 7, past a bus, the last one */
    const char *edge[] = {"0000:3b:01.0", "0000:3b:1f.7", "0000:3c:00.0", "0000:3f:00.0"};
    for (unsigned i = 0; i < 4; i++) {
        json_t *res;
        int rc = call("vf", json_pack("{s:b, s:s}", "info", 1, "vfdev", edge[i]), &res, msg, sizeof(msg));
        CHECK(rc == 0 && !strcmp(json_string_value(json_object_get(res, "vf")) ?: "", edge[i]), "vf -i %s: %s",
              edge[i], rc ? msg : "wrong vf");
        json_decref(res);
        char sock[400];
        struct stat st;
        snprintf(sock, sizeof(sock), "%s%s", iface, edge[i]);
        CHECK(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode), "no vhost-user socket %s", sock);
    }
    /* already added: refused by the index, not added twice */
    vf_bdf(NVFS, bdf);
    CHECK(vf_add(bdf, msg, sizeof(msg)) != 0 && strstr(msg, "already added"), "second add of %s: %s", bdf, msg);
}

static void test_paging(void)
{
    int n, total, next;
    CHECK(stats_page(json_object(), &n, &total, &next) == 0 && n == 64 && total == NVFS && next == 64,
          "unpaged stats: %d items, total %d, next %d", n, total, next);
    CHECK(stats_page(json_pack("{s:i}", "offset", 256), &n, &total, &next) == 0 && n == 64 && next == 320,
          "offset 256: %d, next %d", n, next);
    CHECK(stats_page(json_pack("{s:i, s:i}", "offset", 256, "limit", 256), &n, &total, &next) == 0 && n == 256 &&
          next == 512, "offset 256 limit 256: %d, next %d", n, next);
    CHECK(stats_page(json_pack("{s:i, s:i}", "offset", 1000, "limit", 100), &n, &total, &next) == 0 && n == 24 &&
          next == -1, "offset 1000 limit 100: %d, next %d", n, next);
    CHECK(stats_page(json_pack("{s:i, s:i}", "offset", 0, "limit", 1024), &n, &total, &next) == 0 && n == 1024 &&
          next == -1, "limit 1024: %d, next %d", n, next);
    CHECK(stats_page(json_pack("{s:i, s:i}", "offset", 1023, "limit", 1), &n, &total, &next) == 0 && n == 1 &&
          next == -1, "last one: %d, next %d", n, next);
    CHECK(stats_page(json_pack("{s:i}", "offset", 1024), &n, &total, &next) == 0 && n == 0 && next == -1 &&
          total == NVFS, "offset at the end: %d, next %d", n, next);
    CHECK(stats_page(json_pack("{s:I}", "offset", (json_int_t)2147483647), &n, &total, &next) == 0 && n == 0,
          "offset INT_MAX: %d", n);
    json_t *bad[] = {json_pack("{s:i}", "offset", -1), json_pack("{s:I}", "offset", (json_int_t)1 << 40),
                     json_pack("{s:i}", "limit", 0), json_pack("{s:i}", "limit", -5), json_pack("{s:i}", "limit", 1025),
                     json_pack("{s:s}", "limit", "10"), json_pack("{s:f}", "offset", 1.5),
                     json_pack("{s:b}", "offset", 1), json_pack("{s:n}", "limit"), json_pack("{s:[]}", "offset")};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = json_dumps(bad[i], JSON_COMPACT);
        json_t *res;
        char msg[256];
        int rc = call("stats", bad[i], &res, msg, sizeof(msg));
        CHECK(rc == RPC_INVALID_PARAMS && strstr(msg, "must be an integer"), "stats %s: %d %s", t, rc, msg);
        json_decref(res);
        /* the same for vf -l */
        json_t *p = json_loads(t, 0, NULL);
        json_object_set_new(p, "list", json_true());
        json_object_set_new(p, "mgmtpf", json_string(PF));
        rc = call("vf", p, &res, msg, sizeof(msg));
        CHECK(rc == RPC_INVALID_PARAMS, "vf -l %s: %d %s", t, rc, msg);
        json_decref(res);
        free(t);
    }
    /* vf -l pages too */
    json_t *res;
    char msg[256];
    int rc = call("vf", json_pack("{s:b, s:s, s:i, s:i}", "list", 1, "mgmtpf", PF, "offset", 1020, "limit", 10), &res,
                  msg, sizeof(msg));
    CHECK(rc == 0 && json_array_size(json_object_get(res, "devices")) == 4 &&
          json_integer_value(json_object_get(res, "total")) == NVFS && !json_object_get(res, "next"),
          "vf -l offset 1020: %s", rc ? msg : "wrong page");
    json_decref(res);
    rc = call("vf", json_pack("{s:b, s:s}", "list", 1, "mgmtpf", PF), &res, msg, sizeof(msg));
    CHECK(rc == 0 && json_array_size(json_object_get(res, "devices")) == 256 &&
          json_integer_value(json_object_get(res, "next")) == 256, "vf -l unpaged: %s", rc ? msg : "wrong page");
    json_decref(res);
    /* vhostmgmt asks every page and prints one merged object */
    rc = vhostmgmt_run(rpc, big, sizeof(big), NULL, "--json", "vf", "-l", PF, NULL);
    json_t *all = json_loads(big, 0, NULL);
    CHECK(rc == 0 && all && json_array_size(json_object_get(all, "devices")) == NVFS && !json_object_get(all, "next"),
          "vhostmgmt --json vf -l: %zu devices", json_array_size(json_object_get(all, "devices")));
    json_decref(all);
    rc = vhostmgmt_run(rpc, big, sizeof(big), NULL, "--json", "stats", NULL);
    all = json_loads(big, 0, NULL);
    CHECK(rc == 0 && all && json_array_size(json_object_get(all, "vfs")) == NVFS && !json_object_get(all, "next"),
          "vhostmgmt --json stats: %zu VFs (16 pages merged)", json_array_size(json_object_get(all, "vfs")));
    json_decref(all);
    rc = vhostmgmt_run(rpc, big, sizeof(big), NULL, "vf", "-l", PF, NULL);
    unsigned lines = 0;
    for (const char *s = big; (s = strstr(s, "socket_file")); s++)
        lines++;
    CHECK(rc == 0 && lines == NVFS, "vhostmgmt vf -l printed %u VFs", lines);
}

static void test_daemon_limits(void)
{
    char msg[512], dir[400];
    json_t *res;
    /* the 16 PFs the sim has, then a 17th function that is no VF */
    for (unsigned i = 1; i < NPFS; i++) {
        char pf[16];
        snprintf(pf, sizeof(pf), "0000:%02x:00.0", 0x40 + 5 * i);
        int rc = call("mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", pf), &res, msg, sizeof(msg));
        CHECK(rc == 0, "mgmtpf -a %s: %s", pf, msg);
        json_decref(res);
    }
    snprintf(dir, sizeof(dir), "%s/0000:f0:00.0", sp.root);
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    int rc = call("mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", "0000:f0:00.0"), &res, msg, sizeof(msg));
    CHECK(rc != 0 && strstr(msg, "at most 16 PFs"), "17th PF: %d %s", rc, msg);
    json_decref(res);
    rmdir(dir);
    /* a VF beyond virtfn1023: a function whose physfn is the PF but not among its first 1024 */
    snprintf(dir, sizeof(dir), "%s/0000:3f:00.1", sp.root);
    char link[500];
    snprintf(link, sizeof(link), "%s/physfn", dir);
    CHECK(mkdir(dir, 0755) == 0 && symlink("../" PF, link) == 0, "fake VF 1025");
    rc = vf_add("0000:3f:00.1", msg, sizeof(msg));
    CHECK(rc != 0 && strstr(msg, "first 1024 VFs"), "VF 1025: %d %s", rc, msg);
    unlink(link);
    rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* PF 3b:00.0 with all its VFs; 15 more PFs without VFs enabled, 1025 routing ids apart (the PF and its 1024 VFs) */
    const char *args[48] = {"--pf", PF, "--vfs", "0", "--total-vfs", "1024", "--log-level", "warning"};
    unsigned na = 8;
    static char pfs[NPFS][16];
    for (unsigned i = 1; i < NPFS; i++) {
        snprintf(pfs[i], 16, "0000:%02x:00.0", 0x40 + 5 * i);
        args[na++] = "--pf";
        args[na++] = pfs[i];
    }
    args[na] = NULL;
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    snprintf(rpc, sizeof(rpc), "%.150s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%.150s/vf-", sp.dir);
    char log[600], msg[512];
    snprintf(log, sizeof(log), "%s/vhostd.log", sp.dir);
    test_sim_limits();
    /* the VFs are enabled after start, as an operator would (sriov_numvfs): creating 1024 functions'
     * files and sockets takes longer than the sim helper's start bound on a slow file system */
    char path[600];
    snprintf(path, sizeof(path), "%s/" PF "/sriov_numvfs", sp.root);
    REQUIRE(file_write(path, "1024\n") == 0, out, "write %s", path);
    snprintf(path, sizeof(path), "%s/" PF "/virtfn1023", sp.root);
    for (int i = 0; i < 1200 && access(path, F_OK); i++)
        usleep(50000);
    REQUIRE(access(path, F_OK) == 0, out, "the sim did not create 1024 VFs within 60 s");
    const char *argv[] = {vhostd_bin(), "--pci-root", sp.root, "--rpc", rpc, "--iface", iface, "--no-state",
                          "--log-level", "notice", NULL};
    /* started with a low soft fd limit: the daemon raises it to the hard one and says what it allows */
    struct rlimit saved, low;
    getrlimit(RLIMIT_NOFILE, &saved);
    low = saved;
    if (low.rlim_max > 256)
        low.rlim_cur = 256;
    setrlimit(RLIMIT_NOFILE, &low);
    pid_t pid = proc_spawn(argv, log);
    setrlimit(RLIMIT_NOFILE, &saved);
    for (int i = 0; i < 100 && access(rpc, F_OK); i++)
        usleep(50000);
    json_t *res;
    int rc = -1;
    for (int i = 0; i < 100 && rc; i++) {   /* mgmtpf -a answers once the admin queue is up */
        rc = call("mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", PF), &res, msg, sizeof(msg));
        json_decref(res);
        if (rc)
            usleep(50000);
    }
    REQUIRE(rc == 0, done, "mgmtpf -a %s: %s", PF, msg);
    check_fd_limit(pid, log, saved.rlim_max);
    test_provision_all();
    test_paging();
    test_daemon_limits();
    CHECK(proc_alive(pid), "vfe-vhostd died");
done:
    CHECK(proc_stop(pid, 20000) == 0, "vfe-vhostd did not stop cleanly");
out:
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("vhostd_scale");
}
