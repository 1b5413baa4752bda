/*
 * Access control on the TCP listener: the owner of the client's socket (asked
 * of the kernel) under the unix socket's rule.  Clients are forked children
 * that take another uid and groups before they connect; the server runs on
 * this process's loop.  Needs root (exit 77 otherwise).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/rpc/rpc_internal.h"
#include "tests/unit/rpc/rpc_test_util.h"

#define NOBODY 65534
#define NOGROUP 65534
#define SOCK_GID 4242   /* in nobody's groups nowhere in the user database */

static const char request[] = "{\"method\":\"t\",\"id\":1}";   /* as the peer's CLI sends it */
static const char denial[] = "{\"jsonrpc\":\"2.0\",\"result\":{\"errno\":-13,\"errstr\":\"Permission denied\"},\"id\":null}\n";

static int served;   /* calls of the TCP method */
static int port;

static int m_tcp(void *ctx, json_t *params, struct rpc_call *c)
{
    served++;
    rpc_call_result(c, json_string("tcp"));
    return 0;
}

static struct rpc_server *server(struct ev_loop *loop, char *p, const char *tag, gid_t gid, bool lenient)
{
    rt_dir(p, 108, tag);
    int err;
    struct rpc_server_opts o = {.gid = gid};
    struct rpc_server *s = rpc_server_create(loop, p, &o, &err);
    assert_non_null(s);
    rpc_register_tcp(s, "t", m_tcp, NULL);
    struct rpc_tcp_opts to = {.lenient = lenient};
    int rc;
    port = rt_listen_tcp(s, 23, &to, &rc);
    assert_int_equal(rc, 0);
    served = 0;
    return s;
}

static void teardown(struct ev_loop *loop, struct rpc_server *s, const char *p)
{
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

static int tcp_connect(void) { return rt_tcp_connect(port); }

/* Everything the server sends until it closes (or 3 s pass: then -1).  A
 * reset after data ends it too: a request that reached the server after it
 * closed is answered so, and what came before still counts. */
static ssize_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    double end = rt_now_ms() + 3000;
    while (rt_now_ms() < end && n < cap - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) != 1)
            continue;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0)
            return errno == ECONNRESET && n ? (ssize_t)n : -1;
        buf[n + (size_t)r] = '\0';
        if (r == 0)
            return (ssize_t)n;
        n += (size_t)r;
    }
    return -1;
}

enum { SERVED = 10, REFUSED = 11, OTHER = 12, SETUP = 13 };

/* A child client as uid/gid/groups: SERVED (the method answered), REFUSED (the
 * peer-format denial, then the connection closed), or OTHER. */
static pid_t client(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid)
        return pid;
    if (setgroups(ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        _exit(SETUP);
    int fd = tcp_connect();
    if (fd < 0 || !rt_write(fd, request, strlen(request)))
        _exit(SETUP);
    char buf[1024];
    if (shutdown(fd, SHUT_WR) < 0)   /* (the request is whole: the server answers, then closes) */
        _exit(SETUP);
    ssize_t n = read_all(fd, buf, sizeof(buf));
    if (n > 0 && !strcmp(buf, denial))
        _exit(REFUSED);
    if (n > 0 && strstr(buf, "\"result\":\"tcp\""))
        _exit(SERVED);
    fprintf(stderr, "client uid %u: unexpected reply (%zd): %s\n", (unsigned)uid, n, n > 0 ? buf : "");
    _exit(OTHER);
}

/* Run the loop until the child exits (5 s at most: then killed); its code. */
static int outcome(struct ev_loop *loop, pid_t pid)
{
    int st = 0;
    double end = rt_now_ms() + 5000;
    while (rt_now_ms() < end) {
        rt_spin(loop, 5, NULL, NULL);
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    fail_msg("client %d did not finish", (int)pid);
    return -1;
}

static int as(struct ev_loop *loop, uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups)
{
    return outcome(loop, client(uid, gid, groups, ngroups));
}

/* nobody is refused with the peer's denial and the connection closes; root is
 * served (a child and this process). */
static void test_nobody_refused_root_served(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "aclbasic", SOCK_GID, true);
    const gid_t none[] = {NOGROUP};
    assert_int_equal(as(loop, NOBODY, NOGROUP, none, 1), REFUSED);
    assert_int_equal(served, 0);
    assert_int_equal(rpc_server_tcp_refused(s), 1);
    const gid_t root_groups[] = {0};
    assert_int_equal(as(loop, 0, 0, root_groups, 1), SERVED);
    assert_int_equal(served, 1);
    /* root again after a refusal: nothing of the refusal sticks */
    assert_int_equal(as(loop, NOBODY, NOGROUP, none, 1), REFUSED);
    assert_int_equal(as(loop, 0, 0, root_groups, 1), SERVED);
    assert_int_equal(served, 2);
    assert_int_equal(rpc_server_tcp_refused(s), 2);
    teardown(loop, s, p);
}

/* A non-lenient listener refuses with vfe's own JSON-RPC error. */
static void test_strict_denial(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "aclstrict", SOCK_GID, false);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (!pid) {
        close(fds[0]);
        if (setgroups(0, NULL) < 0 || setgid(NOGROUP) < 0 || setuid(NOBODY) < 0)
            _exit(SETUP);
        int fd = tcp_connect();
        char buf[512];
        ssize_t n = fd < 0 ? -1 : read_all(fd, buf, sizeof(buf));
        _exit(n > 0 && write(fds[1], buf, (size_t)n) == n ? 0 : OTHER);
    }
    close(fds[1]);
    assert_int_equal(outcome(loop, pid), 0);
    char buf[512] = "";
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32001,\"message\":\"access denied\"},\"id\":null}\n");
    teardown(loop, s, p);
}

/* The socket's group decides, as the user database has it: nobody's primary
 * group there (nogroup) lets it in; a group the process merely set for itself
 * does not (the kernel does not tell a TCP client's groups). */
static void test_primary_group(void **state)
{
    struct passwd *pw = getpwuid(NOBODY);
    if (!pw || pw->pw_gid != NOGROUP) {
        print_message("no nobody:nogroup in the user database: skipped\n");
        skip();
    }
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "aclprimary", NOGROUP, true);
    const gid_t g[] = {NOGROUP};
    assert_int_equal(as(loop, NOBODY, NOGROUP, g, 1), SERVED);
    assert_int_equal(served, 1);
    teardown(loop, s, p);

    loop = ev_loop_new(0);
    s = server(loop, p, "aclself", SOCK_GID, true);
    const gid_t mine[] = {SOCK_GID};
    assert_int_equal(as(loop, NOBODY, SOCK_GID, mine, 1), REFUSED);
    assert_int_equal(served, 0);
    teardown(loop, s, p);
}

/* A supplementary group of the user database (a group listing a user whose
 * primary group is another one) lets that user in. */
static void test_supplementary_group(void **state)
{
    uid_t uid = 0;
    gid_t primary = 0, sup = 0;
    bool found = false;
    setgrent();
    for (struct group *g; !found && (g = getgrent());)
        for (char **m = g->gr_mem; m && *m && !found; m++) {
            struct passwd *pw = getpwnam(*m);
            if (pw && pw->pw_uid != 0 && pw->pw_gid != g->gr_gid && g->gr_gid != 0) {
                uid = pw->pw_uid;
                primary = pw->pw_gid;
                sup = g->gr_gid;
                found = true;
            }
        }
    endgrent();
    if (!found) {
        print_message("no user with a supplementary group in the user database: skipped\n");
        skip();
    }
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "aclsup", sup, true);
    const gid_t only_primary[] = {primary};   /* the process drops the group: the database still counts */
    assert_int_equal(as(loop, uid, primary, only_primary, 1), SERVED);
    assert_int_equal(served, 1);
    const gid_t none[] = {NOGROUP};
    assert_int_equal(as(loop, NOBODY, NOGROUP, none, 1), REFUSED);   /* and not everyone */
    teardown(loop, s, p);
}

/* A uid the user database does not know: no groups, refused. */
static void test_unknown_user(void **state)
{
    uid_t uid = 54321;
    while (getpwuid(uid))
        uid++;
    gid_t gid, *groups;
    size_t n;
    assert_int_equal(rpc_user_groups(uid, &gid, &groups, &n), -ENOENT);
    assert_null(groups);
    assert_int_equal(rpc_user_groups(0, &gid, &groups, &n), 0);
    assert_int_equal(gid, 0);
    assert_true(n >= 1);
    free(groups);

    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "aclunknown", SOCK_GID, true);
    const gid_t g[] = {SOCK_GID};
    assert_int_equal(as(loop, uid, SOCK_GID, g, 1), REFUSED);
    assert_int_equal(served, 0);
    teardown(loop, s, p);
}

/* The client's socket is closed (FIN: orphaned; RST: gone) before the server
 * looks it up: its owner is unknown, so the request is not served, not even
 * for root (some kernels report an orphaned socket's owner as root). */
static void test_closed_before_lookup(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    struct rpc_server *s = server(loop, p, "aclclosed", SOCK_GID, true);
    for (int rst = 0; rst < 2; rst++) {
        int fd = tcp_connect();
        assert_true(fd >= 0);
        assert_true(rt_write(fd, request, strlen(request)));
        if (rst) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);   /* before the loop ran: not accepted yet */
        rt_spin(loop, 100, NULL, NULL);
        assert_int_equal(served, 0);
        assert_int_equal(rpc_server_tcp_refused(s), (unsigned long)rst + 1);
    }
    /* still served while open */
    int fd = tcp_connect();
    assert_true(rt_write(fd, request, strlen(request)));
    for (int i = 0; i < 200 && !served; i++)
        rt_spin(loop, 5, NULL, NULL);
    assert_int_equal(served, 1);
    close(fd);
    teardown(loop, s, p);
}

/* The lookup's bad inputs: not a TCP socket, not a socket. */
static void test_lookup_bad_fd(void **state)
{
    uid_t uid;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(rpc_tcp_peer_uid(sv[0], 100, &uid), -EAFNOSUPPORT);
    close(sv[0]);
    close(sv[1]);
    int fd = open("/dev/null", O_RDONLY);
    assert_int_equal(rpc_tcp_peer_uid(fd, 100, &uid), -ENOTSOCK);
    char name[64];
    assert_int_equal(rpc_tcp_peer_name(fd, name, sizeof(name)), -ENOTSOCK);
    close(fd);
    int u = socket(AF_INET, SOCK_STREAM, 0);   /* not connected */
    assert_int_equal(rpc_tcp_peer_uid(u, 100, &uid), -ENOTCONN);
    close(u);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_rpc_tcp_acl: needs root\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nobody_refused_root_served),
        cmocka_unit_test(test_strict_denial),
        cmocka_unit_test(test_primary_group),
        cmocka_unit_test(test_supplementary_group),
        cmocka_unit_test(test_unknown_user),
        cmocka_unit_test(test_closed_before_lookup),
        cmocka_unit_test(test_lookup_bad_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
