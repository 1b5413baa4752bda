/*
 * A device that does not answer delays only its own VF (docs/device-calls.md):
 * two sims, one PF each, behind one PCI tree (a directory of symlinks); sim B
 * stopped with SIGSTOP while two of its VFs are being added:
 *   - B's adds stay pending (vf -i says "adding"; a second add or a removal
 *     of one is refused busy, "being added") while 32 adds on A complete in
 *     about their usual time and `version` answers at once;
 *   - B's adds then fail after about the transport's 2 s bound, with a
 *     message naming the device and what did not answer;
 *   - a vf_batch of three adds on the stopped B answers after one bound (its
 *     adds run in parallel), a PF add on a stopped device leaves the loop
 *     free, SIGTERM with an add pending exits cleanly within the bound;
 *   - after SIGCONT, adds on B work again;
 *   - restart with the state file while B is stopped: RPC answers at once,
 *     health says "restoring", A's persisted VF is back while B's waits,
 *     and B's comes back after SIGCONT.
 * Before bring-up moved off the loop, every round trip to B held the loop
 * for 2 s: A's adds and `version` waited behind it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "lib/rpc/rpc.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_rpc.h"

#define PFA "0000:10:00.0"
#define PFB "0000:20:00.0"
#define NA 32

static char rpc[400];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VF n of a PF at bus b (routing id + n). */
static void vf_bdf(unsigned bus, unsigned n, char out[16])
{
    unsigned rid = (bus << 8) + n;
    snprintf(out, 16, "0000:%02x:%02x.%x", rid >> 8, (rid >> 3) & 0x1f, rid & 7);
}

static int call(const char *method, json_t *params, json_t **res, char *msg, size_t len)
{
    return test_rpc_ask(rpc, method, params, 10000, res, msg, len);
}

static int vf_op(const char *op, const char *bdf, char *msg, size_t len)
{
    return call("vf", json_pack("{s:b, s:s}", op, 1, "vfdev", bdf), NULL, msg, len);
}

/* A's VFs 1..NA added one call after the other: seconds taken, -1 on a failure. */
static double add_a(void)
{
    char bdf[16], msg[512];
    double t0 = now_s();
    for (unsigned i = 1; i <= NA; i++) {
        vf_bdf(0x10, i, bdf);
        if (vf_op("add", bdf, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "add %s: %s\n", bdf, msg);
            return -1;
        }
    }
    return now_s() - t0;
}

static void remove_a(void)
{
    char bdf[16], msg[512];
    for (unsigned i = 1; i <= NA; i++) {
        vf_bdf(0x10, i, bdf);
        vf_op("remove", bdf, msg, sizeof(msg));
    }
}

/* One raw connection: requests sent without waiting for their answers. */
static int raw_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(rpc) >= sizeof(a.sun_path)) {
        close(fd);
        return -1;
    }
    memcpy(a.sun_path, rpc, strlen(rpc) + 1);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read answer lines into buf until n lines came or timeout_ms passed: lines read. */
static int read_lines(int fd, char *buf, size_t len, int n, int timeout_ms)
{
    size_t used = 0;
    int lines = 0;
    double end = now_s() + timeout_ms / 1000.0;
    while (lines < n && now_s() < end && used + 1 < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t r = read(fd, buf + used, len - used - 1);
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            lines += buf[used + (size_t)i] == '\n';
        used += (size_t)r;
    }
    buf[used] = '\0';
    return lines;
}

static double version_latency_ms(void)
{
    char msg[256];
    double t = now_s();
    if (call("version", NULL, NULL, msg, sizeof(msg)) != 0)
        return -1;
    return (now_s() - t) * 1000;
}

static const char *health_status(char *buf, size_t len)
{
    json_t *h = NULL;
    char msg[256];
    buf[0] = '\0';
    if (call("health", NULL, &h, msg, sizeof(msg)) == 0)
        snprintf(buf, len, "%s", json_string_value(json_object_get(h, "status")) ?: "");
    json_decref(h);
    return buf;
}

/* One request on a raw connection, its answer not read. */
static int send_raw(int fd, int id, const char *method, const char *params)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}\n", id,
                     method, params);
    return write(fd, req, (size_t)n) == n ? 0 : -1;
}

static pid_t start_daemon(const char *tree, const char *iface, const char *log, const char *state)
{
    const char *argv[12] = {vhostd_bin(), "--pci-root", tree, "--rpc", rpc, "--iface", iface, "--log-level", "notice"};
    unsigned n = 9;
    if (state) {
        argv[n++] = "--state-dir";
        argv[n++] = state;
    } else {
        argv[n++] = "--no-state";
    }
    argv[n] = NULL;
    unlink(rpc);
    pid_t pid = proc_spawn(argv, log);
    for (int i = 0; i < 100 && access(rpc, F_OK); i++)
        usleep(50000);
    return pid;
}

/* The tree: every function of both sims, as symlinks in one directory. */
static int link_tree(const char *tree, const struct sim_proc *s)
{
    DIR *d = opendir(s->root);
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "0000:", 5))
            continue;
        char from[700], to[700];
        snprintf(from, sizeof(from), "%s/%s", s->root, e->d_name);
        snprintf(to, sizeof(to), "%s/%s", tree, e->d_name);
        if (symlink(from, to) < 0) {
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    return 0;
}

static int pf_add(const char *pf)
{
    char msg[512];
    int rc = -1;
    for (int i = 0; i < 100 && rc; i++) {   /* answered once its admin queue is up */
        rc = call("mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", pf), NULL, msg, sizeof(msg));
        if (rc)
            usleep(50000);
    }
    if (rc)
        fprintf(stderr, "mgmtpf -a %s: %s\n", pf, msg);
    return rc;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static struct sim_proc sa, sb;
    const char *aa[] = {"--pf", PFA, "--vfs", "40", "--total-vfs", "64", "--log-level", "warning", NULL};
    const char *ab[] = {"--pf", PFB, "--vfs", "4", "--total-vfs", "4", "--log-level", "warning", NULL};
    if (sim_proc_start(&sa, aa) < 0)
        return 1;
    if (sim_proc_start(&sb, ab) < 0) {
        sim_proc_stop(&sa);
        return 1;
    }
    char tree[400], log[400], iface[400], msg[512], b1[16], b2[16], b3[16];
    snprintf(tree, sizeof(tree), "%s/tree", sa.dir);
    snprintf(rpc, sizeof(rpc), "%s/vhostd.sock", sa.dir);
    snprintf(iface, sizeof(iface), "%s/vf-", sa.dir);
    snprintf(log, sizeof(log), "%s/vhostd.log", sa.dir);
    vf_bdf(0x20, 1, b1);
    vf_bdf(0x20, 2, b2);
    vf_bdf(0x20, 3, b3);
    pid_t pid = -1;
    int fd = -1;
    bool stopped = false;
    REQUIRE(mkdir(tree, 0755) == 0 && link_tree(tree, &sa) == 0 && link_tree(tree, &sb) == 0, out,
            "the two-sim tree");
    pid = start_daemon(tree, iface, log, NULL);
    REQUIRE(pf_add(PFA) == 0 && pf_add(PFB) == 0, out, "both PFs added");

    double alone = add_a();
    REQUIRE(alone > 0, out, "A's adds alone");
    remove_a();

    /* sim B stops answering (by its PID) while two of its VFs are being added */
    REQUIRE(kill(sb.pid, SIGSTOP) == 0, out, "SIGSTOP sim B");
    stopped = true;
    fd = raw_connect();
    REQUIRE(fd >= 0, out, "connect %s", rpc);
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vf\",\"params\":{\"add\":true,\"vfdev\":\"%s\"}}\n"
                     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"vf\",\"params\":{\"add\":true,\"vfdev\":\"%s\"}}\n",
                     b1, b2);
    double sent = now_s();
    REQUIRE(write(fd, req, (size_t)n) == n, out, "send B's adds");
    usleep(100000);

    /* the loop is free: version at once, B's VF shown as adding, busy for a second add or a removal */
    double t = now_s();
    CHECK(call("version", NULL, NULL, msg, sizeof(msg)) == 0, "version: %s", msg);
    double version_ms = (now_s() - t) * 1000;
    CHECK(version_ms < 200, "version took %.1f ms while B's adds wait on a stopped device", version_ms);
    json_t *info = NULL;
    CHECK(call("vf", json_pack("{s:b, s:s}", "info", 1, "vfdev", b1), &info, msg, sizeof(msg)) == 0 &&
              !strcmp(json_string_value(json_object_get(info, "state")) ?: "", "adding"),
          "vf -i of a VF being added: %s", msg);
    json_decref(info);
    json_t *list = NULL;
    CHECK(call("vf", json_pack("{s:b, s:s}", "list", 1, "mgmtpf", PFB), &list, msg, sizeof(msg)) == 0 &&
              json_array_size(json_object_get(list, "devices")) == 2, "vf -l of B: two VFs being added");
    json_decref(list);
    CHECK(vf_op("add", b1, msg, sizeof(msg)) == RPC_BUSY && strstr(msg, "being added"),
          "a second add of a VF being added: %s", msg);
    CHECK(vf_op("remove", b2, msg, sizeof(msg)) == RPC_BUSY && strstr(msg, "being added"),
          "removal of a VF being added: %s", msg);

    double beside = add_a();
    CHECK(beside > 0, "A's adds beside the stopped B");
    fprintf(stderr, "A's %d adds: %.3f s alone, %.3f s while B is stopped; version %.1f ms\n", NA, alone, beside,
            version_ms);
    CHECK(beside < alone * 1.5 + 0.25, "A's adds slowed by the stopped B: %.3f s against %.3f s alone", beside,
          alone);

    /* B's adds fail after about the 2 s bound, naming the device and what did not answer */
    char answers[4096];
    int got = read_lines(fd, answers, sizeof(answers), 2, 15000);
    double waited = now_s() - sent;
    CHECK(got == 2, "B's adds answered: %d of 2 (%s)", got, answers);
    CHECK(waited > 1.5 && waited < 10, "B's adds failed after %.2f s", waited);
    CHECK(strstr(answers, b1) && strstr(answers, b2) && strstr(answers, "within 2000 ms") &&
              strstr(answers, "\"error\""), "B's failures: %s", answers);
    CHECK(!strstr(answers, "\"result\""), "an add on a stopped device succeeded: %s", answers);

    /* a batch's adds run in parallel: three adds on the stopped B answer after one bound, not three */
    char ops[600];
    snprintf(ops, sizeof(ops), "{\"ops\":[{\"add\":true,\"vfdev\":\"%s\"},{\"add\":true,\"vfdev\":\"%s\"},"
             "{\"add\":true,\"vfdev\":\"%s\"}]}", b1, b2, b3);
    sent = now_s();
    CHECK(send_raw(fd, 5, "vf_batch", ops) == 0, "send the batch");
    got = read_lines(fd, answers, sizeof(answers), 1, 15000);
    waited = now_s() - sent;
    CHECK(got == 1 && strstr(answers, "\"failed\":3") && waited > 1.5 && waited < 4.5,
          "a batch of 3 adds on a stopped device: answered after %.2f s: %s", waited, answers);

    REQUIRE(kill(sb.pid, SIGCONT) == 0, out, "SIGCONT sim B");
    stopped = false;
    CHECK(vf_op("add", b3, msg, sizeof(msg)) == 0, "an add on B after SIGCONT: %s", msg);
    CHECK(vf_op("add", b1, msg, sizeof(msg)) == 0, "B's VF that failed, added again: %s", msg);
    CHECK(vf_op("remove", b1, msg, sizeof(msg)) == 0, "remove it: %s", msg);

    /* a PF add on a stopped device is a job too: the loop answers meanwhile */
    CHECK(vf_op("remove", b3, msg, sizeof(msg)) == 0, "remove %s: %s", b3, msg);
    CHECK(call("mgmtpf", json_pack("{s:b, s:s}", "remove", 1, "dev", PFB), NULL, msg, sizeof(msg)) == 0,
          "remove PF B: %s", msg);
    REQUIRE(kill(sb.pid, SIGSTOP) == 0, out, "SIGSTOP sim B");
    stopped = true;
    char pfb[64];
    snprintf(pfb, sizeof(pfb), "{\"add\":true,\"dev\":\"%s\"}", PFB);
    sent = now_s();
    CHECK(send_raw(fd, 3, "mgmtpf", pfb) == 0, "send mgmtpf -a B");
    usleep(100000);
    double v = version_latency_ms();
    CHECK(v >= 0 && v < 200, "version took %.1f ms while PF B's bring-up waits on a stopped device", v);
    got = read_lines(fd, answers, sizeof(answers), 1, 15000);
    waited = now_s() - sent;
    CHECK(got == 1 && strstr(answers, "\"error\"") && waited > 1.5 && waited < 10,
          "mgmtpf -a of a stopped PF: %d answer after %.2f s: %s", got, waited, answers);
    REQUIRE(kill(sb.pid, SIGCONT) == 0, out, "SIGCONT sim B");
    stopped = false;
    CHECK(pf_add(PFB) == 0, "PF B added after SIGCONT");

    /* shutdown while an add waits on a stopped device: a clean exit within the bound */
    REQUIRE(kill(sb.pid, SIGSTOP) == 0, out, "SIGSTOP sim B");
    stopped = true;
    CHECK(send_raw(fd, 4, "vf", "{\"add\":true,\"vfdev\":\"0000:20:00.4\"}") == 0, "send an add on B");
    usleep(100000);
    t = now_s();
    kill(pid, SIGTERM);
    int st = proc_wait(pid, 10000);
    CHECK(st == 0 && now_s() - t < 7, "exit status %d, %.2f s after SIGTERM with an add pending", st, now_s() - t);
    if (st < 0)
        proc_stop(pid, 1000);
    pid = -1;
    close(fd);
    fd = -1;
    REQUIRE(kill(sb.pid, SIGCONT) == 0, out, "SIGCONT sim B");
    stopped = false;

    /* restore at start with B stopped: RPC answers at once, health says restoring, A's VF comes back first */
    char state[400], a1[16];
    snprintf(state, sizeof(state), "%s/state", sa.dir);
    vf_bdf(0x10, 1, a1);
    pid = start_daemon(tree, iface, log, state);
    REQUIRE(pf_add(PFA) == 0 && pf_add(PFB) == 0, out, "both PFs added (state on)");
    CHECK(vf_op("add", a1, msg, sizeof(msg)) == 0 && vf_op("add", b1, msg, sizeof(msg)) == 0, "persisted adds: %s",
          msg);
    kill(pid, SIGTERM);
    CHECK(proc_wait(pid, 10000) == 0, "daemon with state stopped");
    REQUIRE(kill(sb.pid, SIGSTOP) == 0, out, "SIGSTOP sim B");
    stopped = true;
    pid = start_daemon(tree, iface, log, state);
    usleep(100000);
    char hs[32];
    v = version_latency_ms();
    CHECK(v >= 0 && v < 200, "version took %.1f ms while the restore waits on a stopped device", v);
    CHECK(!strcmp(health_status(hs, sizeof(hs)), "restoring"), "health while restoring: %s", hs);
    bool a_back = false;
    for (int i = 0; i < 40 && !a_back; i++) {
        json_t *r = NULL;
        a_back = call("vf", json_pack("{s:b, s:s}", "info", 1, "vfdev", a1), &r, msg, sizeof(msg)) == 0 &&
                 strcmp(json_string_value(json_object_get(r, "state")) ?: "adding", "adding");
        json_decref(r);
        if (!a_back)
            usleep(50000);
    }
    CHECK(a_back, "A's persisted VF restored while B is stopped: %s", msg);
    REQUIRE(kill(sb.pid, SIGCONT) == 0, out, "SIGCONT sim B");
    stopped = false;
    bool b_back = false;
    for (int i = 0; i < 300 && !b_back; i++) {   /* B's PF failed while stopped: retried every 2 s */
        b_back = vf_op("info", b1, msg, sizeof(msg)) == 0;
        if (!b_back)
            usleep(50000);
    }
    CHECK(b_back, "B's persisted VF restored after SIGCONT: %s", msg);
out:
    if (fd >= 0)
        close(fd);
    if (stopped)
        kill(sb.pid, SIGCONT);
    if (pid > 0)
        CHECK(proc_stop(pid, 10000) == 0, "the daemon's exit status");
    sim_proc_stop(&sb);
    sim_proc_stop(&sa);
    proc_remove_workdir(sb.dir);
    proc_remove_workdir(sa.dir);
    return check_failures ? 1 : 0;
}
