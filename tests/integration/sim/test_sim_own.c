/*
 * vfe-dpu-sim never takes over what is not its own:
 *   - a second sim on the same --root refuses to start and the first keeps
 *     running, untouched (ROOT.lock);
 *   - --ctl naming a regular file, or a socket another process serves, is
 *     refused and left as it was; so is a non-socket where a vfio-user socket
 *     goes;
 *   - a provably stale socket (nobody listens) is replaced;
 *   - on exit the sim removes what it created and nothing else.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static bool is_socket(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* A unix socket at path: listening (a server in this process) or bound and
 * closed again (stale).  fd of the listener, or 0 for a stale one; -1 on error. */
static int make_socket(const char *path, bool listening)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (listening)
        return fd;
    close(fd);
    return 0;
}

static bool connects(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Run a sim that is expected to refuse to start: its exit status (-1 if it
 * was still running after 5 s: then it is killed), its output in log. */
static int run_refused(const char *const *args, const char *log)
{
    const char *argv[32] = {sim_bin()};
    for (int i = 0; args[i] && i < 30; i++)
        argv[i + 1] = args[i];
    pid_t pid = proc_spawn(argv, log);
    int st = proc_wait(pid, 5000);
    if (st < 0)
        proc_stop(pid, 2000);
    return st;
}

static bool log_has(const char *log, const char *needle)
{
    const char *n[] = {needle, NULL};
    return file_count(log, n) > 0;
}

static void test_second_sim_same_root(void)
{
    struct sim_proc a;
    const char *args[] = {"--pf", "0000:3b:00.0", "--vfs", "1", NULL};
    if (sim_proc_start(&a, args) < 0) {
        CHECK(0, "first sim did not start");
        return;
    }
    char ready[400], sock[400], ready_before[64] = "", ready_after[64] = "", log[300];
    snprintf(ready, sizeof(ready), "%s/ready", a.root);
    snprintf(log, sizeof(log), "%s/second.log", a.dir);
    sim_proc_sock(&a, "0000:3b:00.1", sock, sizeof(sock));
    file_read(ready, ready_before, sizeof(ready_before));
    struct stat ctl_before, ctl_after, sock_before, sock_after;
    CHECK(lstat(a.ctl, &ctl_before) == 0 && lstat(sock, &sock_before) == 0, "first sim's sockets");

    /* the same root, spelled differently: one lock all the same */
    char other[400];
    snprintf(other, sizeof(other), "%s/../root/", a.root);
    const char *same[][8] = {
        {"--root", a.root, "--pf", "0000:3b:00.0", "--vfs", "1", NULL},
        {"--root", other, "--pf", "0000:5e:00.0", NULL},
    };
    for (size_t i = 0; i < 2; i++) {
        int st = run_refused(same[i], log);
        CHECK(st > 0, "second sim on %s: exit status %d, want a refusal", same[i][1], st);
        CHECK(log_has(log, "served by another vfe-dpu-sim"), "no clear message in %s", log);
        char pid[32];
        snprintf(pid, sizeof(pid), "pid %d", (int)a.pid);
        CHECK(log_has(log, pid), "the message does not name the first sim (%s)", pid);
    }

    CHECK(sim_proc_alive(&a), "first sim died");
    file_read(ready, ready_after, sizeof(ready_after));
    CHECK(!strcmp(ready_before, ready_after) && ready_after[0], "ROOT/ready changed: '%s' -> '%s'", ready_before,
          ready_after);
    CHECK(lstat(a.ctl, &ctl_after) == 0 && ctl_after.st_ino == ctl_before.st_ino, "control socket replaced");
    CHECK(lstat(sock, &sock_after) == 0 && sock_after.st_ino == sock_before.st_ino, "vfio-user socket replaced");
    char reply[4096];
    CHECK(sim_proc_ctl(&a, "{\"cmd\":\"list\"}", reply, sizeof(reply)) == 0 && strstr(reply, "0000:3b:00.1") &&
              !strstr(reply, "0000:5e:00.0"),
          "first sim's control socket: %s", reply);
    CHECK(connects(sock), "first sim's vfio-user socket does not accept");

    /* once the first is gone, the root can be served again */
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", a.dir);
    kill(a.pid, SIGTERM);
    CHECK(proc_wait(a.pid, 5000) == 0, "first sim exit");
    a.pid = 0;
    struct sim_proc b;
    memset(&b, 0, sizeof(b));
    snprintf(b.dir, sizeof(b.dir), "%s", dir);
    snprintf(b.root, sizeof(b.root), "%s", a.root);
    snprintf(b.ctl, sizeof(b.ctl), "%s", a.ctl);
    const char *again[] = {sim_bin(), "--root", b.root, "--pf", "0000:3b:00.0", NULL};
    b.pid = proc_spawn(again, log);
    bool up = false;
    for (int i = 0; i < 500 && !up; i++) {
        up = exists(ready);
        usleep(10000);
    }
    CHECK(up && sim_proc_alive(&b), "a sim on the released root did not start (log %s)", log);
    sim_proc_stop(&b);
}

static void test_ctl_not_ours(void)
{
    char dir[] = "/tmp/vfe-own-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char root[300], file[300], busy[300], stale[300], log[300];
    snprintf(root, sizeof(root), "%s/root", dir);
    snprintf(file, sizeof(file), "%s/precious.txt", dir);
    snprintf(busy, sizeof(busy), "%s/busy.sock", dir);
    snprintf(stale, sizeof(stale), "%s/stale.sock", dir);
    snprintf(log, sizeof(log), "%s/sim.log", dir);

    /* a regular file: refused, left with its content */
    CHECK(file_write(file, "keep me\n") == 0, "write %s", file);
    const char *a1[] = {"--root", root, "--pf", "0000:3b:00.0", "--ctl", file, NULL};
    int st = run_refused(a1, log);
    char buf[64] = "";
    CHECK(st > 0, "--ctl regular file: exit %d, want a refusal", st);
    CHECK(file_read(file, buf, sizeof(buf)) == 0 && !strcmp(buf, "keep me\n"), "--ctl file clobbered: '%s'", buf);
    CHECK(log_has(log, "not a socket"), "no clear message (log %s)", log);
    CHECK(!exists(root), "refused sim left its root behind");

    /* a socket somebody serves: refused, still served */
    int lfd = make_socket(busy, true);
    CHECK(lfd > 0, "listener %s", busy);
    const char *a2[] = {"--root", root, "--pf", "0000:3b:00.0", "--ctl", busy, NULL};
    st = run_refused(a2, log);
    CHECK(st > 0, "--ctl socket in use: exit %d, want a refusal", st);
    CHECK(is_socket(busy) && connects(busy), "the other process's socket was taken over");
    CHECK(log_has(log, "another process serves it"), "no clear message (log %s)", log);
    if (lfd > 0)
        close(lfd);
    unlink(busy);

    /* a stale socket is replaced, and removed on exit as the sim's own */
    CHECK(make_socket(stale, false) == 0, "stale socket %s", stale);
    struct sim_proc sp;
    memset(&sp, 0, sizeof(sp));
    snprintf(sp.root, sizeof(sp.root), "%s", root);
    snprintf(sp.ctl, sizeof(sp.ctl), "%s", stale);
    const char *a3[] = {sim_bin(), "--root", root, "--pf", "0000:3b:00.0", "--ctl", stale, NULL};
    sp.pid = proc_spawn(a3, log);
    char ready[340];
    snprintf(ready, sizeof(ready), "%s/ready", root);
    for (int i = 0; i < 500 && !exists(ready); i++)
        usleep(10000);
    char reply[4096];
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"list\"}", reply, sizeof(reply)) == 0 && strstr(reply, "\"ok\":true"),
          "stale --ctl socket not replaced: %s (log %s)", reply, log);
    kill(sp.pid, SIGTERM);
    CHECK(proc_wait(sp.pid, 5000) == 0, "exit status");
    CHECK(!exists(stale), "the sim's own control socket left behind");
    CHECK(!exists(root), "the root the sim created left behind");

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

/* Where a function's socket goes sits a regular file: refused, kept. */
static void test_vfio_user_path_not_ours(void)
{
    char dir[] = "/tmp/vfe-own-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char root[300], fndir[340], sockp[400], log[300], buf[64] = "";
    snprintf(root, sizeof(root), "%s/root", dir);
    snprintf(fndir, sizeof(fndir), "%s/0000:3b:00.0", root);
    snprintf(sockp, sizeof(sockp), "%s/vfio-user.sock", fndir);
    snprintf(log, sizeof(log), "%s/sim.log", dir);
    CHECK(mkdir(root, 0755) == 0 && mkdir(fndir, 0755) == 0, "mkdir");
    CHECK(file_write(sockp, "not a socket\n") == 0, "write");
    const char *a[] = {"--root", root, "--pf", "0000:3b:00.0", NULL};
    int st = run_refused(a, log);
    CHECK(st > 0, "exit %d, want a refusal", st);
    CHECK(file_read(sockp, buf, sizeof(buf)) == 0 && !strcmp(buf, "not a socket\n"), "file clobbered: '%s'", buf);
    CHECK(exists(root), "a root the sim did not create was removed");
    char ready[340];
    snprintf(ready, sizeof(ready), "%s/ready", root);
    CHECK(!exists(ready), "ready written by a sim that did not start");

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

/* A root that held somebody's file before: the sim removes its tree only. */
static void test_exit_keeps_foreign_files(void)
{
    char dir[] = "/tmp/vfe-own-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char root[300], notes[340], log[300];
    snprintf(root, sizeof(root), "%s/root", dir);
    snprintf(notes, sizeof(notes), "%s/notes.txt", root);
    snprintf(log, sizeof(log), "%s/sim.log", dir);
    CHECK(mkdir(root, 0755) == 0 && file_write(notes, "mine\n") == 0, "setup");
    const char *argv[] = {sim_bin(), "--root", root, "--pf", "0000:3b:00.0", "--vfs", "2", NULL};
    pid_t pid = proc_spawn(argv, log);
    char ready[340], fn[340];
    snprintf(ready, sizeof(ready), "%s/ready", root);
    snprintf(fn, sizeof(fn), "%s/0000:3b:00.2/vfio-user.sock", root);
    for (int i = 0; i < 500 && !exists(ready); i++)
        usleep(10000);
    CHECK(is_socket(fn), "sim did not start (log %s)", log);
    CHECK(proc_stop(pid, 5000) == 0, "exit status");
    CHECK(exists(notes), "a file the sim did not create was removed");
    CHECK(!exists(ready) && !exists(fn), "the sim's tree left behind");

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void)
{
    test_second_sim_same_root();
    test_ctl_not_ours();
    test_vfio_user_path_not_ours();
    test_exit_keeps_foreign_files();
    return check_result("sim_own");
}
