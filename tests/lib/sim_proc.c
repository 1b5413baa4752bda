#include "tests/lib/sim_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <poll.h>
#include <unistd.h>

#include "tests/lib/proc.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int sim_proc_start(struct sim_proc *sp, const char *const *args)
{
    memset(sp, 0, sizeof(*sp));
    snprintf(sp->dir, sizeof(sp->dir), "%s/vfe-test-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(sp->dir)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(sp->root, sizeof(sp->root), "%s/root", sp->dir);
    snprintf(sp->ctl, sizeof(sp->ctl), "%s/sim-ctl.sock", sp->root);
    const char *bin = getenv("VFE_SIM_BIN");
    if (!bin)
        bin = "vfe-dpu-sim";

    const char *argv[64];
    unsigned n = 0;
    argv[n++] = bin;
    argv[n++] = "--root";
    argv[n++] = sp->root;
    for (unsigned i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    char logpath[320];
    snprintf(logpath, sizeof(logpath), "%s/sim.log", sp->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0 && !getenv("VFE_TEST_SIM_STDERR")) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execvp(bin, (char *const *)argv);
        _exit(127);
    }
    sp->pid = pid;

    char ready[340];
    snprintf(ready, sizeof(ready), "%s/ready", sp->root);
    long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        if (access(ready, F_OK) == 0)
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "sim exited early (status %d), log %s\n", st, logpath);
            sp->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    fprintf(stderr, "sim not ready after 10 s, log %s\n", logpath);
    sim_proc_stop(sp);
    return -1;
}

const char *sim_proc_sock(const struct sim_proc *sp, const char *bdf, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/vfio-user.sock", sp->root, bdf);
    return buf;
}

int sim_proc_ctl(const struct sim_proc *sp, const char *json, char *reply, size_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t pl = strnlen(sp->ctl, sizeof(sp->ctl));
    if (pl >= sizeof(sa.sun_path)) {
        fprintf(stderr, "sim control socket path too long: %s\n", sp->ctl);
        goto fail;
    }
    memcpy(sa.sun_path, sp->ctl, pl + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto fail;
    size_t jl = strlen(json);
    if (write(fd, json, jl) != (ssize_t)jl || write(fd, "\n", 1) != 1)
        goto fail;
    size_t got = 0;
    long deadline = now_ms() + 5000;
    while (got + 1 < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            goto fail;
        ssize_t r = read(fd, reply + got, len - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (memchr(reply + got - r, '\n', (size_t)r))
            break;
    }
    reply[got] = '\0';
    close(fd);
    return got ? 0 : -1;
fail:
    close(fd);
    return -1;
}

int sim_proc_alive(const struct sim_proc *sp)
{
    return sp->pid > 0 && kill(sp->pid, 0) == 0 && waitpid(sp->pid, NULL, WNOHANG) == 0;
}

int sim_proc_stop(struct sim_proc *sp)
{
    int status = -1;
    if (sp->pid > 0) {
        kill(sp->pid, SIGTERM);
        long deadline = now_ms() + 5000;
        int st = 0;
        pid_t r;
        while ((r = waitpid(sp->pid, &st, WNOHANG)) == 0 && now_ms() < deadline)
            usleep(10000);
        if (r == 0) {
            fprintf(stderr, "sim did not exit on SIGTERM, killing\n");
            kill(sp->pid, SIGKILL);
            waitpid(sp->pid, &st, 0);
        }
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        sp->pid = 0;
    }
    proc_remove_workdir(sp->dir);
    sp->dir[0] = '\0';
    return status;
}

int guest_mem_create(struct guest_mem *gm, size_t size)
{
    gm->fd = memfd_create("guest-mem", MFD_CLOEXEC);
    if (gm->fd < 0 || ftruncate(gm->fd, (off_t)size) < 0)
        return -1;
    gm->va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, gm->fd, 0);
    if (gm->va == MAP_FAILED)
        return -1;
    gm->size = size;
    return 0;
}

void guest_mem_destroy(struct guest_mem *gm)
{
    if (gm->va && gm->va != MAP_FAILED)
        munmap(gm->va, gm->size);
    if (gm->fd >= 0)
        close(gm->fd);
    gm->va = NULL;
    gm->fd = -1;
}
