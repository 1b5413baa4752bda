/* Helpers of the lib/rpc tests (see rpc_test_util.h). */
#include "tests/unit/rpc/rpc_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

void rt_dir(char *path, size_t len, const char *tag)
{
    char dir[96];
    snprintf(dir, sizeof(dir), "/tmp/vfe-rpc-%s-%d", tag, (int)getpid());
    mkdir(dir, 0755);
    chmod(dir, 0755);
    snprintf(path, len, "%s/rpc.sock", dir);
}

void rt_dir_remove(const char *path)
{
    char dir[108];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        rmdir(dir);
    }
}

int rt_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

bool rt_write(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

double rt_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

void rt_spin(struct ev_loop *loop, int ms, bool (*done)(void *arg), void *arg)
{
    double end = rt_now_ms() + ms;
    while (rt_now_ms() < end && !(done && done(arg))) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(1000);
    }
}

static void *call_thread(void *arg)
{
    struct rt_call *c = arg;
    double t0 = rt_now_ms();
    c->rc = rpc_client_call(c->path, c->method, c->params, c->timeout_ms, &c->result, c->msg, sizeof(c->msg));
    c->ms = rt_now_ms() - t0;
    __atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static pthread_t threads[8];
static struct rt_call *running[8];

void rt_call_start(struct rt_call *c)
{
    c->done = false;
    c->result = NULL;
    if (!c->timeout_ms)
        c->timeout_ms = 5000;
    for (int i = 0; i < 8; i++)
        if (!running[i]) {
            running[i] = c;
            pthread_create(&threads[i], NULL, call_thread, c);
            return;
        }
}

static bool call_done(void *arg) { return __atomic_load_n(&((struct rt_call *)arg)->done, __ATOMIC_ACQUIRE); }

void rt_call_finish(struct ev_loop *loop, struct rt_call *c, int max_ms)
{
    rt_spin(loop, max_ms, call_done, c);
    for (int i = 0; i < 8; i++)
        if (running[i] == c) {
            pthread_join(threads[i], NULL);
            running[i] = NULL;
        }
}

int rt_call(struct ev_loop *loop, struct rt_call *c, const char *path, const char *method, json_t *params)
{
    memset(c, 0, sizeof(*c));
    c->path = path;
    c->method = method;
    c->params = params;
    rt_call_start(c);
    rt_call_finish(loop, c, 10000);
    return c->rc;
}

int rt_listen_tcp(struct rpc_server *s, unsigned seed, const struct rpc_tcp_opts *opts, int *err)
{
    *err = -1;
    for (unsigned i = 0; i < 50; i++) {
        char spec[32];
        int port = 20000 + (int)(((unsigned)getpid() * seed + i * 977) % 12000);   /* below the ephemeral range */
        snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
        if ((*err = rpc_server_listen_tcp_opts(s, spec, opts)) == 0)
            return port;
    }
    return -1;
}

int rt_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}
