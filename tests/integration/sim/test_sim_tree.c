/*
 * vfe-dpu-sim as a process: command line errors, the sysfs-shaped tree,
 * sriov_numvfs changes while running, the control socket (including bad
 * requests), surprise removal, and a clean exit that removes the tree.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

static const char *sim_bin(void)
{
    const char *b = getenv("VFE_SIM_BIN");
    return b ? b : "vfe-dpu-sim";
}

/* Run the sim with argv to completion; exit status, output into out. */
static int run_sim(const char *const *args, char *out, size_t len)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        const char *argv[32] = {sim_bin()};
        for (int i = 0; args[i] && i < 30; i++)
            argv[i + 1] = args[i];
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < len && (r = read(p[0], out + got, len - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_command_line(void)
{
    char out[8192];
    const char *help[] = {"--help", NULL};
    CHECK(run_sim(help, out, sizeof(out)) == 0, "--help exit status");
    const char *opts[] = {"--root", "--pf", "--vfs", "--total-vfs", "--qpairs", "--mtu", "--mac-prefix",
                          "--uplink", "--admin-dialect", "--ctl", "--log-level"};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        CHECK(strstr(out, opts[i]) != NULL, "--help does not explain %s", opts[i]);

    static const char *const bad[][8] = {
        {"--root", "/tmp/x", NULL},                                   /* no --pf */
        {"--root", "/tmp/x", "--pf", "3b:00.0", NULL},                 /* short BDF */
        {"--root", "/tmp/x", "--pf", "0000:3b:00.8", NULL},            /* function 8 */
        {"--root", "/tmp/x", "--vfs", "2", "--pf", "0000:3b:00.0", NULL},
        {"--root", "/tmp/x", "--pf", "0000:3b:00.0", "--vfs", "-1", NULL},
        {"--root", "/tmp/x", "--pf", "0000:3b:00.0", "--qpairs", "17", NULL},
        {"--root", "/tmp/x", "--pf", "0000:3b:00.0", "--pf", "0000:3b:00.0", NULL},
        {"--root", "/tmp/x", "--pf", "0000:3b:00.0", "--pf", "0000:3b:00.4", NULL}, /* in VF range */
        {"--root", "/tmp/x", "--pf", "0000:3b:00.0", "--bogus", NULL},
        {"--root", "/tmp/x", "--pf", "0000:3b:00.0", "--mac-prefix", "zz", NULL},
        {"--root", "/tmp/x", "--pf", "0000:3b:00.0", "--admin-dialect", "x", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = run_sim(bad[i], out, sizeof(out));
        CHECK(rc == 2, "bad command line %zu: exit %d, want 2 (%s)", i, rc, out);
        CHECK(strstr(out, "vfe-dpu-sim:") != NULL, "bad command line %zu: no message", i);
    }
}

/* Files of the sim's tree, by path relative to root. */
static int read_file(const char *root, const char *rel, char *buf, size_t len)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    return file_read(path, buf, len);
}

static int write_file(const char *root, const char *rel, const char *val)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    return file_write(path, val);
}

static bool exists(const char *root, const char *rel)
{
    char path[600];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    return lstat(path, &st) == 0;
}

static bool link_is(const char *root, const char *rel, const char *want)
{
    char path[600], target[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return !strcmp(target, want);
}

/* Wait up to 3 s for a path to (dis)appear. */
static bool wait_exists(const char *root, const char *rel, bool want)
{
    long end = check_now_ms() + 3000;
    while (check_now_ms() < end) {
        if (exists(root, rel) == want)
            return true;
        usleep(20000);
    }
    return false;
}

static void test_tree_and_numvfs(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", "0000:3b:00.0", "--vfs", "2", "--pf", "0000:5e:00.0", "--vfs", "1",
                          "--total-vfs", "8", NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    char buf[256];
    const char *R = sp.root;
    CHECK(read_file(R, "0000:3b:00.0/vendor", buf, sizeof(buf)) == 0 && !strcmp(buf, "0x1af4\n"), "vendor %s", buf);
    CHECK(read_file(R, "0000:3b:00.1/device", buf, sizeof(buf)) == 0 && !strcmp(buf, "0x1041\n"), "device %s", buf);
    CHECK(read_file(R, "0000:3b:00.0/class", buf, sizeof(buf)) == 0 && !strcmp(buf, "0x020000\n"), "class %s", buf);
    CHECK(read_file(R, "0000:3b:00.0/sriov_totalvfs", buf, sizeof(buf)) == 0 && !strcmp(buf, "8\n"), "total %s", buf);
    CHECK(read_file(R, "0000:3b:00.0/sriov_numvfs", buf, sizeof(buf)) == 0 && !strcmp(buf, "2\n"), "numvfs %s", buf);
    CHECK(link_is(R, "0000:3b:00.0/virtfn0", "../0000:3b:00.1"), "virtfn0");
    CHECK(link_is(R, "0000:3b:00.0/virtfn1", "../0000:3b:00.2"), "virtfn1");
    CHECK(!exists(R, "0000:3b:00.0/virtfn2"), "virtfn2 must not exist");
    CHECK(link_is(R, "0000:3b:00.2/physfn", "../0000:3b:00.0"), "physfn");
    CHECK(link_is(R, "0000:5e:00.0/virtfn0", "../0000:5e:00.1"), "second PF virtfn0");
    CHECK(exists(R, "0000:3b:00.2/vfio-user.sock") && exists(R, "0000:5e:00.0/vfio-user.sock"), "sockets");

    /* VFs 3..8 cross into device 01: routing id arithmetic */
    CHECK(write_file(R, "0000:3b:00.0/sriov_numvfs", "8\n") == 0, "write numvfs");
    CHECK(wait_exists(R, "0000:3b:01.0/vfio-user.sock", true), "VF 8 appears as 0000:3b:01.0");
    CHECK(wait_exists(R, "0000:3b:00.0/virtfn7", true) && link_is(R, "0000:3b:00.0/virtfn7", "../0000:3b:01.0"),
          "virtfn7");
    CHECK(write_file(R, "0000:3b:00.0/sriov_numvfs", "1\n") == 0, "write numvfs");
    /* the sim removes them one by one while we look: wait for each */
    CHECK(wait_exists(R, "0000:3b:00.2", false) && wait_exists(R, "0000:3b:01.0", false) &&
              wait_exists(R, "0000:3b:00.0/virtfn1", false) && wait_exists(R, "0000:3b:00.0/virtfn7", false),
          "VFs 2..8 removed");
    CHECK(exists(R, "0000:3b:00.1/vfio-user.sock"), "VF 1 kept");

    /* bad values are refused and the file shows the real count again */
    const char *bad[] = {"abc\n", "9\n", "-1\n", "1x\n"};
    for (size_t i = 0; i < 4; i++) {
        write_file(R, "0000:3b:00.0/sriov_numvfs", bad[i]);
        long end = check_now_ms() + 2000;
        while (check_now_ms() < end) {
            if (read_file(R, "0000:3b:00.0/sriov_numvfs", buf, sizeof(buf)) == 0 && !strcmp(buf, "1\n"))
                break;
            usleep(20000);
        }
        CHECK(!strcmp(buf, "1\n"), "after bad value '%s' numvfs reads '%s'", bad[i], buf);
    }
    CHECK(sim_proc_alive(&sp), "sim died on bad sriov_numvfs");

    char reply[8192];
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"list\"}", reply, sizeof(reply)) == 0 &&
              strstr(reply, "\"ok\":true") && strstr(reply, "0000:5e:00.1") && !strstr(reply, "0000:3b:00.2"),
          "list: %s", reply);
    const char *bad_ctl[] = {"not json", "[1,2]", "{}", "{\"cmd\":\"nope\"}", "{\"cmd\":\"counters\"}",
                             "{\"cmd\":\"counters\",\"bdf\":\"0000:00:00.0\"}", "{\"cmd\":\"fault\"}",
                             "{\"cmd\":\"fault\",\"type\":\"remove\",\"bdf\":\"0000:3b:00.0\"}",
                             "{\"cmd\":\"fault\",\"type\":\"admin_delay\",\"ms\":-5}",
                             "{\"cmd\":\"fault\",\"type\":\"admin_fail\",\"status\":\"x\"}",
                             "{\"cmd\":\"fault\",\"type\":\"melt\",\"bdf\":\"0000:3b:00.1\"}"};
    for (size_t i = 0; i < sizeof(bad_ctl) / sizeof(bad_ctl[0]); i++) {
        CHECK(sim_proc_ctl(&sp, bad_ctl[i], reply, sizeof(reply)) == 0 && strstr(reply, "\"ok\":false") &&
                  strstr(reply, "\"error\""),
              "bad control request '%s' got '%s'", bad_ctl[i], reply);
    }
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"counters\",\"bdf\":\"0000:3b:00.1\"}", reply, sizeof(reply)) == 0 &&
              strstr(reply, "\"rx_packets\":0") && strstr(reply, "\"tx_drops\":0"),
          "counters: %s", reply);

    /* surprise removal of VF 1 of the second PF */
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"remove\",\"bdf\":\"0000:5e:00.1\"}", reply,
                       sizeof(reply)) == 0 && strstr(reply, "\"ok\":true"), "remove: %s", reply);
    CHECK(!exists(R, "0000:5e:00.1"), "removed VF still in the tree");
    CHECK(!exists(R, "0000:5e:00.0/virtfn0"), "removed VF still linked");
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"pf_reset\",\"bdf\":\"0000:5e:00.0\"}", reply,
                       sizeof(reply)) == 0 && strstr(reply, "\"ok\":true"), "pf_reset: %s", reply);

    char root[300];
    snprintf(root, sizeof(root), "%s", sp.root);
    int st = sim_proc_stop(&sp);
    CHECK(st == 0, "sim exit status %d after SIGTERM", st);
}

/* The tree is removed by the sim itself on SIGTERM (not by the test's cleanup). */
static void test_exit_removes_tree(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", "0000:3b:00.0", "--vfs", "1", NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    kill(sp.pid, SIGTERM);
    int st = -1;
    waitpid(sp.pid, &st, 0);
    sp.pid = 0;
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    CHECK(!exists(sp.root, "0000:3b:00.0") && !exists(sp.root, "ready") && !exists(sp.root, "sim-ctl.sock"),
          "tree left behind in %s", sp.root);
    sim_proc_stop(&sp);
}

int main(void)
{
    test_command_line();
    test_tree_and_numvfs();
    test_exit_removes_tree();
    return check_result("sim_tree");
}
