/*
 * vfe-dpu-sim under file-descriptor exhaustion and connection floods:
 *   - with RLIMIT_NOFILE nearly used up (prlimit on the running sim) and many
 *     clients on the control and a vfio-user socket, accept() fails with
 *     EMFILE: the sim must not spin (CPU time stays small), must not flood
 *     its log, and answers again once the clients are gone;
 *   - the control socket serves at most 32 connections: the 33rd and later
 *     are told "busy" and closed at once, the first 32 keep working.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define FLOOD 200

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Non-blocking connect; the fd even when the connection is only queued, -1 if refused. */
static int connect_nb(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Wait up to ms for fd to become readable or hang up: 1, or 0 on timeout. */
static int wait_in(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static bool ctl_answers(const struct sim_proc *sp, int within_ms)
{
    char reply[8192];
    long end = check_now_ms() + within_ms;
    do {
        if (sim_proc_ctl(sp, "{\"cmd\":\"list\"}", reply, sizeof(reply)) == 0 && strstr(reply, "\"ok\":true"))
            return true;
        usleep(50000);
    } while (check_now_ms() < end);
    return false;
}

static void test_emfile(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", "0000:3b:00.0", "--vfs", "1", NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    char log[300], vfsock[400];
    snprintf(log, sizeof(log), "%s/sim.log", sp.dir);
    sim_proc_sock(&sp, "0000:3b:00.1", vfsock, sizeof(vfsock));
    int fds[FLOOD + 1];
    int nfd = 0;

    int used = proc_fd_count(sp.pid);
    REQUIRE(used > 0, out, "cannot count the sim's fds");
    struct rlimit rl;
    REQUIRE(prlimit(sp.pid, RLIMIT_NOFILE, NULL, &rl) == 0, out, "prlimit get: %s", strerror(errno));
    rl.rlim_cur = (rlim_t)used + 3;   /* room for three connections */
    REQUIRE(prlimit(sp.pid, RLIMIT_NOFILE, &rl, NULL) == 0, out, "prlimit set: %s", strerror(errno));

    long cpu0 = proc_cpu_ms(sp.pid), log0 = file_size(log);
    for (int i = 0; i < FLOOD; i++) {
        int fd = connect_nb(sp.ctl);
        if (fd >= 0)
            fds[nfd++] = fd;
    }
    int vf = connect_nb(vfsock);
    if (vf >= 0)
        fds[nfd++] = vf;
    CHECK(nfd > 16, "only %d clients could connect", nfd);
    sleep(3);
    long cpu = proc_cpu_ms(sp.pid) - cpu0, grown = file_size(log) - log0;
    printf("EMFILE for 3 s with %d clients: sim cpu %ld ms, log +%ld bytes\n", nfd, cpu, grown);
    CHECK(cpu < 500, "sim used %ld ms of CPU in 3 s of EMFILE: busy loop", cpu);
    CHECK(grown < 16384, "log grew by %ld bytes in 3 s", grown);
    const char *paused[] = {"control socket: accept:", "paused", NULL};
    CHECK(file_count(log, paused) >= 1, "EMFILE not logged as a pause (log %s)", log);
    CHECK(sim_proc_alive(&sp), "sim died under EMFILE");

    while (nfd > 0)
        close(fds[--nfd]);
    CHECK(ctl_answers(&sp, 5000), "control socket does not answer after the clients left");

    /* the vfio-user socket takes a client again, and keeps it */
    vf = connect_nb(vfsock);
    CHECK(vf >= 0, "vfio-user connect");
    if (vf >= 0) {
        usleep(500000);
        CHECK(!wait_in(vf, 0), "vfio-user client refused or closed after EMFILE");
        close(vf);
    }
out:
    while (nfd > 0)
        close(fds[--nfd]);
    sim_proc_stop(&sp);
}

static void test_connection_limit(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", "0000:3b:00.0", NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    char log[300];
    snprintf(log, sizeof(log), "%s/sim.log", sp.dir);
    enum { N = 40, LIMIT = 32 };
    int fds[N];
    int busy = 0, quiet = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = connect_nb(sp.ctl);
        CHECK(fds[i] >= 0, "connect %d", i);
        usleep(2000);   /* in order: the first LIMIT are the ones kept */
    }
    for (int i = 0; i < N; i++) {
        char buf[256] = "";
        if (fds[i] >= 0 && wait_in(fds[i], i < LIMIT ? 100 : 2000)) {
            ssize_t n = read(fds[i], buf, sizeof(buf) - 1);
            busy += n > 0 && strstr(buf, "busy") != NULL;
        } else {
            quiet += i < LIMIT;
        }
    }
    CHECK(busy == N - LIMIT, "%d connections told busy, want %d", busy, N - LIMIT);
    CHECK(quiet == LIMIT, "%d of the first %d connections kept, want all", quiet, LIMIT);

    /* one of the kept connections still works */
    const char req[] = "{\"cmd\":\"list\"}\n";
    CHECK(write(fds[0], req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1, "write");
    char reply[4096] = "";
    if (wait_in(fds[0], 2000) && read(fds[0], reply, sizeof(reply) - 1) > 0)
        CHECK(strstr(reply, "\"ok\":true") != NULL, "reply %s", reply);
    else
        CHECK(0, "no reply on a kept connection");

    const char *refused[] = {"control socket: connection refused", NULL};
    int lines = file_count(log, refused);
    CHECK(lines >= 1 && lines <= 3, "%d refusal log lines for %d refusals, want 1..3", lines, N - LIMIT);

    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    CHECK(ctl_answers(&sp, 5000), "control socket does not answer after the clients left");
    sim_proc_stop(&sp);
}

int main(void)
{
    test_emfile();
    test_connection_limit();
    return check_result("sim_emfile");
}
