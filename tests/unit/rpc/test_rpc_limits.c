/*
 * lib/rpc against careless and hostile clients, in one process: a client that
 * pipelines requests and never reads, one that holds many calls open, idle
 * connections, and a process out of file descriptors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/unit/rpc/rpc_test_util.h"

#define BIG_REPLY (64 * 1024)

static unsigned big_calls;
static struct rpc_call *held[512];
static unsigned nheld;

static int m_big(void *ctx, json_t *params, struct rpc_call *c)
{
    static char txt[BIG_REPLY + 1];
    memset(txt, 'x', BIG_REPLY);
    big_calls++;
    rpc_call_result(c, json_string(txt));
    return 0;
}

static int m_version(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_result(c, json_pack("{s:s}", "version", "test"));
    return 0;
}

static int m_hold(void *ctx, json_t *params, struct rpc_call *c)
{
    held[nheld++] = c;
    return RPC_PENDING;
}

static struct rpc_server *server(struct ev_loop *loop, char *p, const char *tag, const struct rpc_server_opts *o)
{
    rt_dir(p, 108, tag);
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, o, &err);
    assert_non_null(s);
    rpc_register(s, "big", m_big, NULL);
    rpc_register(s, "version", m_version, NULL);
    rpc_register(s, "hold", m_hold, NULL);
    return s;
}

/* Read what is there (non-blocking), count reply lines; -1 on EOF. */
static long drain(int fd, long *lines)
{
    char buf[65536];
    long total = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0)
            return -1;
        if (n < 0)
            return total;
        for (ssize_t i = 0; i < n; i++)
            *lines += buf[i] == '\n';
        total += n;
    }
}

static char *requests(const char *method, unsigned n)
{
    size_t one = 64;
    char *txt = malloc(one * n + 1), *p = txt;
    for (unsigned i = 0; i < n; i++)
        p += sprintf(p, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":%u}\n", method, i);
    return txt;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* 400 pipelined requests with 64 KiB replies from a client that does not read:
 * the server stops reading it after about RPC_MAX_UNSENT bytes of replies, and
 * answers another client at once; nothing is lost once the client reads. */
static void test_client_that_never_reads(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "noread", NULL);
    long rss0 = rss_kib();
    int hostile = rt_connect(p);
    assert_true(hostile >= 0);
    char *reqs = requests("big", 400);
    assert_true(rt_write(hostile, reqs, strlen(reqs)));
    free(reqs);
    struct rt_call v = {.path = p, .method = "version"};
    rt_call_start(&v);
    rt_call_finish(loop, &v, 5000);
    assert_int_equal(v.rc, 0);
    json_decref(v.result);
    rt_spin(loop, 200, NULL, NULL);
    /* replies held for the hostile client: at most the bound, one reply over
     * it, and what the socket buffers took */
    unsigned bound = (RPC_MAX_UNSENT + 1024 * 1024) / BIG_REPLY + 2;
    print_message("version answered in %.1f ms; %u of 400 requests run while the client does not read (bound %u); "
                  "RSS +%ld KiB\n", v.ms, big_calls, bound, rss_kib() - rss0);
    assert_true(v.ms < 1000);   /* before the bound: seconds */
    assert_true(big_calls <= bound);
    /* the client reads at last: every reply arrives */
    long lines = 0;
    double end = rt_now_ms() + 20000;
    while (lines < 400 && rt_now_ms() < end) {
        assert_true(drain(hostile, &lines) >= 0);
        ev_run(loop, EVRUN_NOWAIT);
    }
    assert_int_equal(lines, 400);
    assert_int_equal(big_calls, 400);
    close(hostile);
    rt_spin(loop, 20, NULL, NULL);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

/* A client may not hold more than RPC_MAX_OPEN_CALLS calls open: the rest of
 * its requests wait, unread, until answers go out. */
static void test_open_calls_bounded(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "open", NULL);
    int fd = rt_connect(p);
    char *reqs = requests("hold", 100);
    assert_true(rt_write(fd, reqs, strlen(reqs)));
    free(reqs);
    rt_spin(loop, 100, NULL, NULL);
    assert_int_equal(nheld, RPC_MAX_OPEN_CALLS);
    long lines = 0;
    unsigned answered = 0;
    double end = rt_now_ms() + 5000;
    while (lines < 100 && rt_now_ms() < end) {
        while (answered < nheld)
            rpc_call_result(held[answered++], json_integer(1));
        ev_run(loop, EVRUN_NOWAIT);
        assert_true(drain(fd, &lines) >= 0);
        usleep(1000);
    }
    assert_int_equal(nheld, 100);
    assert_int_equal(lines, 100);
    close(fd);
    rt_spin(loop, 20, NULL, NULL);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

static bool readable(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, 0) == 1;
}

/* Idle connections are closed after idle_timeout; one waiting for an answer is not. */
static void test_idle_timeout(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server_opts o = {.idle_timeout = 0.2};
    nheld = 0;
    struct rpc_server *s = server(loop, p, "idle", &o);
    int idle = rt_connect(p), waiting = rt_connect(p);
    const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"hold\",\"id\":1}\n";
    assert_true(rt_write(waiting, req, strlen(req)));
    rt_spin(loop, 500, NULL, NULL);
    long lines = 0;
    assert_int_equal(drain(idle, &lines), -1);      /* EOF: closed by the server */
    assert_false(readable(waiting));                /* still open, nothing to read */
    assert_int_equal(nheld, 1);
    rpc_call_result(held[0], json_string("done"));
    rt_spin(loop, 50, NULL, NULL);
    assert_true(drain(waiting, &lines) > 0);
    assert_int_equal(lines, 1);
    rt_spin(loop, 400, NULL, NULL);                 /* now idle too */
    assert_int_equal(drain(waiting, &lines), -1);
    close(idle);
    close(waiting);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

static void stop_loop(struct ev_loop *loop, ev_timer *w, int revents) { ev_break(loop, EVBREAK_ALL); }

static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* accept() failing with EMFILE: no busy loop, one log line, and the waiting
 * client is served once descriptors are free again. */
static void test_out_of_fds(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "emfile", NULL);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int log = open("/tmp", O_TMPFILE | O_RDWR, 0600), saved = dup(2);
    assert_true(log >= 0 && saved >= 0);
    dup2(log, 2);
    int cfd = rt_connect(p);
    const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"version\",\"id\":1}\n";
    assert_true(rt_write(cfd, req, strlen(req)));
    int fills[256], nf = 0;
    while (nf < 256 && (fills[nf] = open("/dev/null", O_RDONLY)) >= 0)
        nf++;
    assert_int_equal(errno, EMFILE);
    ev_timer t;
    ev_timer_init(&t, stop_loop, 1.0, 0.);
    ev_timer_start(loop, &t);
    unsigned it0 = ev_iteration(loop);
    double c0 = cpu_ms();
    ev_run(loop, 0);
    double cpu = cpu_ms() - c0;
    unsigned iterations = ev_iteration(loop) - it0;
    for (int i = 0; i < nf; i++)
        close(fills[i]);
    double end = rt_now_ms() + 2000;
    while (!readable(cfd) && rt_now_ms() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    char buf[512] = "";
    ssize_t n = recv(cfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    dup2(saved, 2);
    close(saved);
    setrlimit(RLIMIT_NOFILE, &old);
    char logtxt[4096] = "";
    ssize_t ln = pread(log, logtxt, sizeof(logtxt) - 1, 0);
    close(log);
    unsigned lines = 0;
    for (char *q = logtxt; ln > 0 && (q = strstr(q, "cannot accept")); q++)
        lines++;
    print_message("1 s out of fds: %.1f ms CPU, %u loop iterations, %u log line(s)\n", cpu, iterations, lines);
    assert_true(cpu < 200);
    assert_true(iterations < 50);
    assert_int_equal(lines, 1);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "\"result\""));
    close(cfd);
    rt_spin(loop, 20, NULL, NULL);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

/* A request trickling in a few bytes at a time is scanned once, not parsed
 * again from its start at every read (quadratic CPU for one client); a piece
 * ending inside an escape sequence is not a parse error. */
static void test_slow_drip(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "drip", NULL);
    static char req[RPC_MAX_REQUEST];
    int n = snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"method\":\"version\",\"params\":{\"pad\":\"");
    /* braces and escaped quotes inside the string must not end the request early */
    while (n < RPC_MAX_REQUEST - 200)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "}]{[\\\"\\\\ ");
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\"},\"id\":42}");
    int fd = rt_connect(p);
    double c0 = cpu_ms();
    for (int off = 0; off < n; off += 32) {
        assert_true(rt_write(fd, req + off, (size_t)(n - off < 32 ? n - off : 32)));
        ev_run(loop, EVRUN_NOWAIT);
    }
    double cpu = cpu_ms() - c0;
    rt_spin(loop, 50, NULL, NULL);
    char buf[512] = "";
    ssize_t got = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    print_message("a %d-byte request in 32-byte pieces: %.1f ms CPU\n", n, cpu);
    assert_true(got > 0);
    assert_non_null(strstr(buf, "\"id\":42"));
    assert_non_null(strstr(buf, "\"result\""));
    assert_true(cpu < 300);
    close(fd);
    rt_spin(loop, 20, NULL, NULL);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_that_never_reads),
        cmocka_unit_test(test_open_calls_bounded),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_out_of_fds),
        cmocka_unit_test(test_slow_drip),
    };
    if (getenv("RPC_TEST_ONLY"))   /* one test by name, e.g. to run it against an older library */
        cmocka_set_test_filter(getenv("RPC_TEST_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
