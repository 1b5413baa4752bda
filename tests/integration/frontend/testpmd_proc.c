#include "tests/integration/frontend/testpmd_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/lib/proc.h"

const char *testpmd_binary(void)
{
    static char found[512];
    const char *env = getenv("VFE_TESTPMD");
    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    const char *path = getenv("PATH");
    char dirs[2048];
    snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
    for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof(found), "%s/dpdk-testpmd", d);
        if (access(found, X_OK) == 0)
            return found;
    }
    return NULL;
}

static bool socket_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

int testpmd_start(struct testpmd *t, const char *sock, unsigned queues, bool client, const char *log,
                  int timeout_ms)
{
    static unsigned seq;
    const char *bin = testpmd_binary();
    char vdev[320], q[32], nq[16], prefix[96];
    memset(t, 0, sizeof(*t));
    t->pid = -1;
    t->stdin_fd = -1;
    if (!bin)
        return -ENOENT;
    snprintf(t->prefix, sizeof(t->prefix), "vfe-fe-%d-%u", (int)getpid(), seq++);
    snprintf(prefix, sizeof(prefix), "--file-prefix=%s", t->prefix);
    snprintf(vdev, sizeof(vdev), "net_vhost0,iface=%s,queues=%u%s", sock, queues, client ? ",client=1" : "");
    snprintf(q, sizeof(q), "%u", queues);
    snprintf(nq, sizeof(nq), "%u", queues);
    /* one forwarding lcore busy-polls: the machine has two cores */
    const char *argv[] = {bin, "--no-pci", "--no-huge", "-m", "512", "--no-shconf", "-l", "0-1", prefix,
                          "--vdev", vdev, "--", "-i", "--forward-mode=io", "--auto-start", "--nb-cores=1",
                          "--rxq", q, "--txq", nq, "--total-num-mbufs=16384", NULL};
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -errno;
    }
    if (pid == 0) {
        /* a test killed by its timeout must not leave a busy-polling testpmd */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        dup2(p[0], 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(p[0]);
    t->pid = pid;
    t->stdin_fd = p[1];
    if (client)
        return 0;
    long end = check_now_ms() + timeout_ms;
    while (!socket_exists(sock)) {
        if (!proc_alive(pid) || check_now_ms() > end) {
            testpmd_stop(t);
            return -ETIMEDOUT;
        }
        usleep(20000);
    }
    return 0;
}

int testpmd_stop(struct testpmd *t)
{
    if (t->pid <= 0)
        return -1;
    if (t->stdin_fd >= 0) {
        static const char quit[] = "stop\nquit\n";
        if (write(t->stdin_fd, quit, sizeof(quit) - 1) < 0)
            perror("testpmd stdin");
        close(t->stdin_fd);
        t->stdin_fd = -1;
    }
    int st = proc_wait(t->pid, 5000);
    if (st < 0)
        st = proc_stop(t->pid, 3000);   /* SIGTERM, then SIGKILL */
    t->pid = -1;
    testpmd_remove_runtime_dir(t->prefix);
    return st;
}

const char *testpmd_runtime_dir(const char *prefix, char *buf, size_t len)
{
    const char *base = "/var/run";
    if (getuid() != 0)
        base = getenv("XDG_RUNTIME_DIR") ? getenv("XDG_RUNTIME_DIR") : "/tmp";
    snprintf(buf, len, "%s/dpdk/%s", base, prefix);
    return buf;
}

int testpmd_remove_runtime_dir(const char *prefix)
{
    char dir[512];
    /* rmdir, not a recursive delete: only an empty dir of our own prefix goes */
    return rmdir(testpmd_runtime_dir(prefix, dir, sizeof(dir))) == 0 ? 0 : -errno;
}
