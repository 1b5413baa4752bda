/* Helpers of the vhostmgmt tests (see mgmt_test.h). */
#include "tests/integration/vhostmgmt/mgmt_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/lib/proc.h"

const char *mt_vhostmgmt(void)
{
    const char *b = getenv("VFE_VHOSTMGMT");
    return b ? b : "vhostmgmt";
}

/* Append what fd has to buf (up to len - 1 bytes kept); false at EOF. */
static bool drain(int fd, char *buf, size_t len, size_t *got)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    size_t keep = *got + (size_t)n < len ? (size_t)n : len - 1 - *got;
    memcpy(buf + *got, tmp, keep);
    *got += keep;
    buf[*got] = '\0';
    return true;
}

int mt_run(const char *const *argv, const char *stdin_text, char *out, size_t out_len, char *err, size_t err_len,
           int timeout_ms)
{
    int in[2], o[2], e[2];
    out[0] = err[0] = '\0';
    if (pipe2(in, O_CLOEXEC) || pipe2(o, O_CLOEXEC) || pipe2(e, O_CLOEXEC))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(o[1], 1);
        dup2(e[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    close(e[1]);
    if (stdin_text) {
        signal(SIGPIPE, SIG_IGN);
        ssize_t w = write(in[1], stdin_text, strlen(stdin_text));
        (void)w;   /* a program that does not read its stdin is not an error here */
    }
    close(in[1]);
    size_t go = 0, ge = 0;
    bool open_o = true, open_e = true;
    long end = check_now_ms() + timeout_ms;
    while ((open_o || open_e) && check_now_ms() < end) {
        struct pollfd p[2] = {{.fd = open_o ? o[0] : -1, .events = POLLIN}, {.fd = open_e ? e[0] : -1, .events = POLLIN}};
        if (poll(p, 2, 100) <= 0)
            continue;
        if (p[0].revents)
            open_o = drain(o[0], out, out_len, &go);
        if (p[1].revents)
            open_e = drain(e[0], err, err_len, &ge);
    }
    close(o[0]);
    close(e[0]);
    long left = end - check_now_ms();
    int st = proc_wait(pid, left > 0 ? (int)left : 1);
    if (st == -1)
        st = proc_stop(pid, 100);
    return st;
}

unsigned mt_lines(const char *text)
{
    unsigned n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n + (*text && text[strlen(text) - 1] != '\n');
}

int mt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

int mt_daemon_start(struct mt_daemon *d)
{
    memset(d, 0, sizeof(*d));
    d->pid = -1;
    const char *sim_args[] = {"--pf", MT_PF, "--vfs", "4", "--total-vfs", "4", "--log-level", "info", NULL};
    if (sim_proc_start(&d->sp, sim_args) < 0)
        return -1;
    snprintf(d->rpc, sizeof(d->rpc), "%.200s/vhostd.sock", d->sp.dir);
    snprintf(d->iface, sizeof(d->iface), "%.200s/vf-", d->sp.dir);
    snprintf(d->log, sizeof(d->log), "%.200s/vhostd.log", d->sp.dir);
    snprintf(d->tcp, sizeof(d->tcp), "127.0.0.1:%d", mt_free_port());
    const char *vhostd = getenv("VFE_VHOSTD") ? getenv("VFE_VHOSTD") : "vfe-vhostd";
    const char *argv[] = {vhostd, "--pci-root", d->sp.root, "--rpc", d->rpc, "--iface", d->iface, "--no-state",
                          "--compat-tcp", d->tcp, "--log-level", "info", NULL};
    d->pid = proc_spawn(argv, d->log);
    const char *ready[] = {"ready: RPC", NULL};
    if (d->pid > 0 && file_wait(d->log, ready, 1, 5000))
        return 0;
    fprintf(stderr, "vfe-vhostd did not start (%s)\n", d->log);
    mt_daemon_stop(d);
    return -1;
}

int mt_daemon_stop(struct mt_daemon *d)
{
    int st = 0;
    if (d->pid > 0)
        st = proc_stop(d->pid, 8000);
    d->pid = -1;
    sim_proc_stop(&d->sp);
    return st;
}
