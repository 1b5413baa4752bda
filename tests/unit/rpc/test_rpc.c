/*
 * lib/rpc in one process: the server on the main thread's loop, a client on
 * another thread sending raw requests: results, errors of each class, batches,
 * notifications, answers given later, and the size limit; clients that hang up
 * before reading (built with ASan: a use after free fails the test); replies
 * larger than the old 64 KiB client buffer; the socket file rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/unit/rpc/rpc_test_util.h"

static char path[108];
static struct rpc_call *pending;

static int m_echo(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_result(c, json_incref(params));
    return 0;
}

static int m_later(void *ctx, json_t *params, struct rpc_call *c)
{
    pending = c;
    return RPC_PENDING;
}

static int m_fail(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_error(c, RPC_NOT_FOUND, "no such %s", "thing");
    return 0;
}

struct exchange {
    const char *req;
    size_t len;
    char reply[8192];
    bool done;
};

static void *client(void *arg)
{
    struct exchange *x = arg;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        size_t off = 0;
        while (off < x->len) {
            ssize_t n = write(fd, x->req + off, x->len - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        shutdown(fd, SHUT_WR);
        size_t got = 0;
        ssize_t n;
        while (got + 1 < sizeof(x->reply) && (n = read(fd, x->reply + got, sizeof(x->reply) - 1 - got)) > 0)
            got += (size_t)n;
        x->reply[got] = '\0';
    }
    close(fd);
    __atomic_store_n(&x->done, true, __ATOMIC_RELEASE);
    return NULL;
}

/* Send req, run the server until the client has its answer (and the
 * connection closed), return the reply text. */
static const char *call(struct ev_loop *loop, struct exchange *x, const char *req, size_t len, bool answer_later)
{
    memset(x, 0, sizeof(*x));
    x->req = req;
    x->len = len ? len : strlen(req);
    pthread_t t;
    pthread_create(&t, NULL, client, x);
    for (int i = 0; i < 2000 && !__atomic_load_n(&x->done, __ATOMIC_ACQUIRE); i++) {
        ev_run(loop, EVRUN_NOWAIT);
        if (answer_later && pending) {
            rpc_call_result(pending, json_string("later"));
            pending = NULL;
        }
        usleep(1000);
    }
    pthread_join(t, NULL);
    return x->reply;
}

static void test_rpc(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    snprintf(path, sizeof(path), "/tmp/vfe-rpc-test-%d/rpc.sock", getpid());
    int err;
    struct rpc_server *s = rpc_server_create(loop, path, NULL, &err);
    assert_non_null(s);
    rpc_register(s, "echo", m_echo, NULL);
    rpc_register(s, "later", m_later, NULL);
    rpc_register(s, "fail", m_fail, NULL);
    static struct exchange x;

    assert_non_null(strstr(call(loop, &x, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"a\":1},\"id\":1}", 0,
                                false), "\"result\":{\"a\":1}"));
    /* two requests back to back without a newline, then a notification (no answer) */
    const char *two = "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"n\":1},\"id\":\"x\"}"
                      "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"n\":2},\"id\":\"y\"}"
                      "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"n\":3}}";
    const char *r = call(loop, &x, two, 0, false);
    assert_non_null(strstr(r, "\"id\":\"x\""));
    assert_non_null(strstr(r, "\"id\":\"y\""));
    assert_null(strstr(r, "\"n\":3"));
    /* batch with an error inside, answered as one array */
    r = call(loop, &x, "[{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1},{\"jsonrpc\":\"2.0\",\"method\":\"nope\","
                       "\"id\":2},{\"jsonrpc\":\"2.0\",\"method\":\"fail\",\"id\":3}]", 0, false);
    assert_int_equal(r[0], '[');
    assert_non_null(strstr(r, "-32601"));
    assert_non_null(strstr(r, "no such thing"));
    assert_non_null(strstr(r, "-32002"));
    /* an answer given later, from outside the handler */
    assert_non_null(strstr(call(loop, &x, "{\"jsonrpc\":\"2.0\",\"method\":\"later\",\"id\":5}", 0, true),
                           "\"result\":\"later\""));
    /* error classes */
    assert_non_null(strstr(call(loop, &x, "{oops", 0, false), "-32700"));
    assert_non_null(strstr(call(loop, &x, "{\"method\":\"echo\",\"id\":1}", 0, false), "-32600"));
    assert_non_null(strstr(call(loop, &x, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":3,\"id\":1}", 0,
                                false), "-32602"));
    assert_non_null(strstr(call(loop, &x, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":{}}", 0, false),
                           "-32600"));
    assert_non_null(strstr(call(loop, &x, "[]", 0, false), "-32600"));
    /* framing: brackets and escaped quotes inside strings; values that are not
     * objects or arrays (not JSON-RPC: the stream is closed) */
    r = call(loop, &x, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"s\":\"}{\\\"]\"},\"id\":9}"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":10}", 0, false);
    assert_non_null(strstr(r, "\"id\":9"));
    assert_non_null(strstr(r, "\"id\":10"));
    assert_non_null(strstr(call(loop, &x, "3 {\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":8}", 0, false), "-32700"));
    assert_non_null(strstr(call(loop, &x, "\"a}\" []", 0, false), "-32700"));
    assert_non_null(strstr(call(loop, &x, "12", 0, false), "-32700"));   /* ends at EOF */
    assert_non_null(strstr(call(loop, &x, "]", 0, false), "-32700"));
    assert_non_null(strstr(call(loop, &x, "{\"jsonrpc\":\"2.0\",", 0, false), "-32700"));   /* cut at EOF */
    /* more than the request limit without a complete value: refused, closed */
    static char big[RPC_MAX_REQUEST + 100];
    memset(big, ' ', sizeof(big));
    big[0] = '[';
    assert_non_null(strstr(call(loop, &x, big, sizeof(big), false), "too large"));
    /* still serving */
    assert_non_null(strstr(call(loop, &x, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":9}", 0, false), "\"id\":9"));
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    char dir[120];
    snprintf(dir, sizeof(dir), "/tmp/vfe-rpc-test-%d", getpid());
    rmdir(dir);
}

static int m_big(void *ctx, json_t *params, struct rpc_call *c)
{
    size_t n = (size_t)json_integer_value(json_object_get(params, "n"));
    char *txt = malloc(n + 1);
    memset(txt, 'x', n);
    txt[n] = '\0';
    rpc_call_result(c, json_string(txt));
    free(txt);
    return 0;
}

/* A client sends requests and hangs up before reading: the replies fail to
 * send inside the answer's call chain (sync answers, a batch, a late answer). */
static void test_hangup_before_reply(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "hangup");
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_non_null(s);
    rpc_register(s, "echo", m_echo, NULL);
    rpc_register(s, "later", m_later, NULL);
    rpc_register(s, "big", m_big, NULL);
    const char *reqs[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"a\":1},\"id\":1}\n",
        "[{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1},{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":2}]\n",
        ("{\"jsonrpc\":\"2.0\",\"method\":\"big\",\"params\":{\"n\":300000},\"id\":1}"
         "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":2}{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":3}"),
        "{\"jsonrpc\":\"2.0\",\"method\":\"later\",\"id\":7}\n",
    };
    for (unsigned i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        int fd = rt_connect(p);
        assert_true(fd >= 0);
        assert_true(rt_write(fd, reqs[i], strlen(reqs[i])));
        close(fd);
        rt_spin(loop, 30, NULL, NULL);
        if (pending) {   /* answered after the client went away, before the server noticed */
            rpc_call_result(pending, json_string("late"));
            pending = NULL;
        }
        rt_spin(loop, 10, NULL, NULL);
    }
    /* a late answer after the connection is freed goes nowhere */
    int fd = rt_connect(p);
    assert_true(rt_write(fd, reqs[3], strlen(reqs[3])));
    rt_spin(loop, 30, NULL, NULL);
    assert_non_null(pending);
    close(fd);
    rt_spin(loop, 30, NULL, NULL);
    rpc_call_error(pending, RPC_TIMEOUT, "too late");
    pending = NULL;
    struct rt_call c;
    assert_int_equal(rt_call(loop, &c, p, "echo", json_pack("{s:i}", "still", 1)), 0);
    assert_int_equal(json_integer_value(json_object_get(c.result, "still")), 1);
    json_decref(c.params);
    json_decref(c.result);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

/* Replies above the old 64 KiB client buffer are read; above RPC_MAX_REPLY
 * the server answers an error instead. */
static void test_big_replies(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "big");
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_non_null(s);
    rpc_register(s, "big", m_big, NULL);
    struct rt_call c;
    json_t *params = json_pack("{s:i}", "n", 300000);
    assert_int_equal(rt_call(loop, &c, p, "big", params), 0);
    assert_int_equal(json_string_length(c.result), 300000);
    json_decref(c.result);
    json_decref(params);
    params = json_pack("{s:I}", "n", (json_int_t)RPC_MAX_REPLY);
    assert_int_equal(rt_call(loop, &c, p, "big", params), RPC_INTERNAL_ERROR);
    assert_non_null(strstr(c.msg, "reply too large"));
    json_decref(params);
    /* the connection's buffers are back to normal: a small call still works */
    params = json_pack("{s:i}", "n", 10);
    assert_int_equal(rt_call(loop, &c, p, "big", params), 0);
    json_decref(c.result);
    json_decref(params);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

/* The socket file: options checked, never taken from another process or from
 * a non-socket, mode and group applied, only our own inode removed. */
static void test_socket_file(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "sockfile");
    int err;
    const struct rpc_server_opts bad[] = {
        {.mode = 01777}, {.idle_timeout = -1}, {.idle_timeout = 1.0 / 0.0}, {.max_conns = RPC_MAX_MAX_CONNS + 1},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(rpc_server_create(loop, p, &bad[i], &err));
        assert_int_equal(err, -EINVAL);
    }
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    longp[0] = '/';
    assert_null(rpc_server_create(loop, longp, NULL, &err));
    assert_int_equal(err, -ENAMETOOLONG);

    /* a regular file is left alone */
    int f = open(p, O_CREAT | O_WRONLY, 0600);
    assert_true(f >= 0 && write(f, "keep", 4) == 4);
    close(f);
    assert_null(rpc_server_create(loop, p, NULL, &err));
    assert_int_equal(err, -EEXIST);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode) && st.st_size == 4);
    unlink(p);

    /* default mode 0660; a second server on the same path is refused */
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_non_null(s);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_null(rpc_server_create(loop, p, NULL, &err));
    assert_int_equal(err, -EADDRINUSE);
    rpc_register(s, "echo", m_echo, NULL);
    struct rt_call c;
    assert_int_equal(rt_call(loop, &c, p, "echo", NULL), 0);
    json_decref(c.result);
    /* somebody replaced our socket: destroy leaves theirs */
    assert_int_equal(unlink(p), 0);
    f = open(p, O_CREAT | O_WRONLY, 0600);
    close(f);
    rpc_server_destroy(s);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(p);

    /* explicit mode and group (chown needs root) */
    if (geteuid() == 0) {
        struct rpc_server_opts o = {.mode = 0600, .gid = 4242};
        s = rpc_server_create(loop, p, &o, &err);
        assert_non_null(s);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(st.st_gid, 4242);
        rpc_server_destroy(s);
        assert_int_equal(lstat(p, &st), -1);   /* our own socket is removed */
        /* a missing parent directory is created 0750 with the socket's group */
        char sub[120], subsock[140];
        snprintf(sub, sizeof(sub), "%.*s/sub", (int)(strrchr(p, '/') - p), p);
        snprintf(subsock, sizeof(subsock), "%s/rpc.sock", sub);
        s = rpc_server_create(loop, subsock, &o, &err);
        assert_non_null(s);
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0750);
        assert_int_equal(st.st_gid, 4242);
        rpc_server_destroy(s);
        assert_int_equal(rmdir(sub), 0);
        /* a zero-initialised gid keeps our group: a child with group 4300 */
        pid_t pid = fork();
        if (pid == 0) {
            struct ev_loop *l = ev_loop_new(0);
            struct rpc_server_opts z = {.idle_timeout = 5};
            if (setgid(4300) < 0 || !(s = rpc_server_create(l, p, &z, &err)))
                _exit(2);
            int bad_gid = stat(p, &st) < 0 || st.st_gid != 4300;
            rpc_server_destroy(s);
            _exit(bad_gid);
        }
        int wst;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    }
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

/* Destroy with clients connected and a call open: nothing is left to run
 * later, and the open call may still be answered. */
static void test_destroy_with_clients(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "destroy");
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_non_null(s);
    rpc_register(s, "later", m_later, NULL);
    int a = rt_connect(p), b = rt_connect(p);
    const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"later\",\"id\":1}\n";
    assert_true(rt_write(b, req, strlen(req)));
    rt_spin(loop, 30, NULL, NULL);
    assert_non_null(pending);
    rpc_server_destroy(s);
    rt_spin(loop, 30, NULL, NULL);
    rpc_call_result(pending, json_string("after destroy"));
    pending = NULL;
    rt_spin(loop, 10, NULL, NULL);
    char c;
    assert_int_equal(read(a, &c, 1), 0);   /* closed by destroy */
    assert_int_equal(read(b, &c, 1), 0);
    close(a);
    close(b);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

/* A request filling the whole 64 KiB buffer is refused at once, not when more bytes come. */
static void test_request_exactly_at_limit(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "limit");
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_non_null(s);
    static char big[RPC_MAX_REQUEST];
    memset(big, ' ', sizeof(big));
    big[0] = '[';
    int fd = rt_connect(p);
    assert_true(rt_write(fd, big, sizeof(big)));
    char reply[512] = "";
    double end = rt_now_ms() + 2000;
    ssize_t n = -1;
    while (n <= 0 && rt_now_ms() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        n = recv(fd, reply, sizeof(reply) - 1, MSG_DONTWAIT);
        usleep(1000);
    }
    assert_true(n > 0);
    assert_non_null(strstr(reply, "request too large"));
    close(fd);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

/* stats of 300 VFs: a reply far above the old 64 KiB client buffer, through vhostmgmt itself. */
static int m_stats(void *ctx, json_t *params, struct rpc_call *c)
{
    json_t *vfs = json_array();
    for (int i = 0; i < 300; i++)
        json_array_append_new(vfs, json_pack("{s:s, s:s, s:s, s:[{s:i, s:i, s:i}, {s:i, s:i, s:i}], s:s}",
                                             "vf", "0000:01:00.2", "state", "running", "features", "0x130afffa7",
                                             "rings", "ring", 0, "avail_idx", 1234, "used_idx", 1230, "ring", 1,
                                             "avail_idx", 777, "used_idx", 777, "pad",
                                             "................................................................"
                                             "................................................................"));
    rpc_call_result(c, json_pack("{s:o}", "vfs", vfs));
    return 0;
}

static unsigned stats_calls;

static int m_count_stats(void *ctx, json_t *params, struct rpc_call *c)
{
    stats_calls++;
    return m_stats(ctx, params, c);
}

/* Run vhostmgmt with args (and stdin text, if any) while this thread serves;
 * its stdout in out, its exit status returned (-1: did not exit in time). */
static int run_tool(struct ev_loop *loop, const char *const *args, const char *in, char *out, size_t out_len)
{
    int o[2], i[2];
    assert_int_equal(pipe(o), 0);
    assert_int_equal(pipe(i), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(o[1], 1);
        dup2(i[0], 0);
        close(o[0]);
        close(i[1]);
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    close(o[1]);
    close(i[0]);
    if (in)   /* small: fits the pipe */
        assert_int_equal(write(i[1], in, strlen(in)), (ssize_t)strlen(in));
    close(i[1]);
    fcntl(o[0], F_SETFL, O_NONBLOCK);
    size_t got = 0;
    int st = -1;
    double end = rt_now_ms() + 10000;
    while (rt_now_ms() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        ssize_t n = read(o[0], out + got, out_len - 1 - got);
        if (n > 0)
            got += (size_t)n;
        if (n == 0 && waitpid(pid, &st, WNOHANG) == pid)
            break;
        usleep(1000);
    }
    close(o[0]);
    out[got] = '\0';
    if (st == -1) {   /* still running: stop it */
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_vhostmgmt(void **state)
{
    const char *tool = getenv("VHOSTMGMT");
    if (!tool)
        skip();
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "mgmt");
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_non_null(s);
    rpc_register(s, "stats", m_count_stats, NULL);
    rpc_register(s, "vf", m_count_stats, NULL);
    static char txt[1 << 20];
    /* stats of 300 VFs: a reply far above the old 64 KiB client buffer */
    const char *stats[] = {tool, "-s", p, "--json", "stats", NULL};
    assert_int_equal(run_tool(loop, stats, NULL, txt, sizeof(txt)), 0);
    json_error_t je;
    json_t *r = json_loads(txt, 0, &je);
    assert_non_null(r);
    assert_int_equal(json_array_size(json_object_get(r, "vfs")), 300);
    print_message("vhostmgmt read a %zu-byte stats reply\n", strlen(txt));
    assert_true(strlen(txt) > 64 * 1024);
    json_decref(r);
    /* commands on stdin: the tail of an over-long line is never run as a command */
    char in[1200];
    memset(in, 'a', sizeof(in));
    in[0] = '#';
    snprintf(in + 1023, sizeof(in) - 1023, " stats\n");   /* where the old 1024-byte fgets cut it */
    const char *from_stdin[] = {tool, "-s", p, NULL};
    stats_calls = 0;
    assert_int_equal(run_tool(loop, from_stdin, in, txt, sizeof(txt)), 2);
    assert_int_equal(stats_calls, 0);
    /* more than 16 words is an error, not a truncated command */
    const char *many = "vf -a 0000:01:00.2 -u 1 -u 2 -u 3 -u 4 -u 5 -u 6 -u 7 -v\n";   /* 17th word dangling */
    assert_int_equal(run_tool(loop, from_stdin, many, txt, sizeof(txt)), 2);
    assert_int_equal(stats_calls, 0);
    assert_int_equal(run_tool(loop, from_stdin, "# ok\n\nstats 0000:01:00.2\n", txt, sizeof(txt)), 0);
    assert_int_equal(stats_calls, 1);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpc),
        cmocka_unit_test(test_hangup_before_reply),
        cmocka_unit_test(test_big_replies),
        cmocka_unit_test(test_socket_file),
        cmocka_unit_test(test_destroy_with_clients),
        cmocka_unit_test(test_request_exactly_at_limit),
        cmocka_unit_test(test_vhostmgmt),
    };
    if (getenv("RPC_TEST_ONLY"))   /* one test by name, e.g. to run it against an older library */
        cmocka_set_test_filter(getenv("RPC_TEST_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
