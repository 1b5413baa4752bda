/*
 * Who may call and who always gets a connection: the decision functions as
 * tables, then (as root) real peers in forked children with another uid and a
 * supplementary group, and a non-root user filling the connection limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/rpc/rpc_internal.h"
#include "tests/unit/rpc/rpc_test_util.h"

#define OWNER 1000
#define SOCK_GID 4242
#define NOBODY 65534

static void test_access_decision(void **state)
{
    const gid_t with[] = {10, SOCK_GID, 20}, without[] = {10, 20};
    const struct {
        struct rpc_peer p;
        bool allowed, privileged;
    } cases[] = {
        {{.uid = 0, .gid = 0}, true, true},
        {{.uid = OWNER, .gid = 100}, true, true},
        {{.uid = 2000, .gid = SOCK_GID}, true, false},
        {{.uid = 2000, .gid = 100, .groups = with, .ngroups = 3}, true, false},
        {{.uid = 2000, .gid = 100, .groups = without, .ngroups = 2}, false, false},
        {{.uid = 2000, .gid = 100}, false, false},
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(rpc_access_allowed(&cases[i].p, OWNER, SOCK_GID), cases[i].allowed);
        assert_int_equal(rpc_access_privileged(&cases[i].p, OWNER), cases[i].privileged);
    }
}

static void test_admission(void **state)
{
    const struct {
        bool privileged;
        unsigned nconns, max;
        bool admitted;
    } cases[] = {
        {false, 0, 64, true},  {false, 47, 64, true}, {false, 48, 64, false}, {true, 48, 64, true},
        {true, 63, 64, true},  {true, 64, 64, false}, {false, 2, 4, true},    {false, 3, 4, false},
        {true, 3, 4, true},    {false, 0, 1, true},   {true, 0, 1, true},     {false, 0, 2, true},
        {false, 1, 2, false},  {true, 1, 2, true},
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(rpc_admit(cases[i].privileged, cases[i].nconns, cases[i].max), cases[i].admitted);
}

static int m_version(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_result(c, json_pack("{s:s}", "version", "test"));
    return 0;
}

static void become(gid_t gid, const gid_t *groups, size_t n)
{
    if (setgroups(n, groups) < 0 || setgid(gid) < 0 || setuid(NOBODY) < 0)
        _exit(99);
}

/* Run the loop until child pid exits; its exit status. */
static int wait_child(struct ev_loop *loop, pid_t pid, int max_ms)
{
    int st = -1;
    double end = rt_now_ms() + max_ms;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (rt_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        ev_run(loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A child as uid nobody: calls version, exits 0 if the answer is the expected code. */
static int call_as(struct ev_loop *loop, const char *path, gid_t gid, const gid_t *groups, size_t n, int want)
{
    pid_t pid = fork();
    if (pid == 0) {
        become(gid, groups, n);
        json_t *res = NULL;
        char msg[256];
        int rc = rpc_client_call(path, "version", NULL, 3000, &res, msg, sizeof(msg));
        json_decref(res);
        _exit(rc == want ? 0 : 1);
    }
    return wait_child(loop, pid, 5000);
}

static void test_groups_of_real_peers(void **state)
{
    if (geteuid() != 0)
        skip();
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "groups");
    /* 0666: the file mode lets everybody connect, so the server's own check decides */
    struct rpc_server_opts o = {.mode = 0666, .gid = SOCK_GID};
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, &o, &err);
    assert_non_null(s);
    rpc_register(s, "version", m_version, NULL);
    const gid_t supp[] = {SOCK_GID + 1, SOCK_GID}, other[] = {SOCK_GID + 1};
    assert_int_equal(call_as(loop, p, NOBODY, supp, 2, 0), 0);                      /* supplementary member */
    assert_int_equal(call_as(loop, p, SOCK_GID, NULL, 0, 0), 0);                    /* primary group */
    assert_int_equal(call_as(loop, p, NOBODY, other, 1, RPC_ACCESS_DENIED), 0);     /* not a member */
    assert_int_equal(call_as(loop, p, NOBODY, NULL, 0, RPC_ACCESS_DENIED), 0);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

/* Open a connection, send version, read one line: 'A' answered, 'B' busy, '?' else. */
static char try_conn(const char *path, int *fd)
{
    *fd = rt_connect(path);
    const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"version\",\"id\":1}\n";
    if (*fd < 0 || !rt_write(*fd, req, strlen(req)))
        return '?';
    char buf[512];
    size_t got = 0;
    struct pollfd pf = {.fd = *fd, .events = POLLIN};
    while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got) && poll(&pf, 1, 3000) == 1) {
        ssize_t n = read(*fd, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return strstr(buf, "\"result\"") ? 'A' : strstr(buf, "-32004") ? 'B' : '?';
}

/* A group member fills the connection limit: root still gets in; once the
 * member's connections idle out, the member gets in again. */
static void test_no_lockout(void **state)
{
    if (geteuid() != 0)
        skip();
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "lockout");
    struct rpc_server_opts o = {.gid = SOCK_GID, .max_conns = 4, .idle_timeout = 1.5};
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, &o, &err);
    assert_non_null(s);
    rpc_register(s, "version", m_version, NULL);
    int res[2], go[2];
    assert_int_equal(pipe(res), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(res[0]);
        close(go[1]);   /* the parent gone: read() below ends */
        const gid_t g[] = {SOCK_GID};
        become(NOBODY, g, 1);
        char out[6];
        int fds[5];
        for (int i = 0; i < 4; i++)
            out[i] = try_conn(p, &fds[i]);
        if (write(res[1], out, 4) != 4)
            _exit(1);
        char c;
        if (read(go[0], &c, 1) != 1)   /* the parent saw root served and our connections idle out */
            _exit(1);
        out[4] = try_conn(p, &fds[4]);
        _exit(out[4] == 'A' ? 0 : 2);
    }
    close(res[1]);
    close(go[0]);
    char got[5] = "";
    size_t n = 0;
    double end = rt_now_ms() + 5000;
    while (n < 4 && rt_now_ms() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        struct pollfd pf = {.fd = res[0], .events = POLLIN};
        if (poll(&pf, 1, 1) == 1) {
            ssize_t r = read(res[0], got + n, 4 - n);
            if (r > 0)
                n += (size_t)r;
        }
    }
    print_message("unprivileged member's 4 connections with max_conns 4: %s\n", got);
    assert_string_equal(got, "AAAB");   /* one connection kept for root and the owner */
    struct rt_call c;
    assert_int_equal(rt_call(loop, &c, p, "version", NULL), 0);
    json_decref(c.result);
    rt_spin(loop, 2000, NULL, NULL);    /* the member's connections idle out */
    assert_int_equal(write(go[1], "g", 1), 1);
    assert_int_equal(wait_child(loop, pid, 5000), 0);
    close(res[0]);
    close(go[1]);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_decision),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_groups_of_real_peers),
        cmocka_unit_test(test_no_lockout),
    };
    if (getenv("RPC_TEST_ONLY"))   /* one test by name, e.g. to run it against an older library */
        cmocka_set_test_filter(getenv("RPC_TEST_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
