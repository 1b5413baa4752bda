/*
 * lib/rpc's TCP listener: loopback addresses only, its own method table,
 * lenient requests (no "jsonrpc", no "id") only there, a bound on TCP
 * connections that leaves the unix socket usable, and a request that must
 * arrive whole within the TCP idle bound (a trickle does not keep it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/unit/rpc/rpc_test_util.h"

static int m_unix(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_result(c, json_string(rpc_call_is_tcp(c) ? "unix method over tcp" : "unix"));
    return 0;
}

static int m_tcp(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_result(c, json_string(rpc_call_is_tcp(c) ? "tcp" : "tcp method over unix"));
    return 0;
}

static int port;

static struct rpc_server *server(struct ev_loop *loop, char *p, const char *tag, const struct rpc_tcp_opts *to)
{
    rt_dir(p, 108, tag);
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_non_null(s);
    rpc_register(s, "u", m_unix, NULL);
    rpc_register_tcp(s, "t", m_tcp, NULL);
    int rc;
    port = rt_listen_tcp(s, 13, to, &rc);
    assert_int_equal(rc, 0);
    return s;
}

static void teardown(struct ev_loop *loop, struct rpc_server *s, const char *p)
{
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

static int tcp_connect(void)
{
    int fd = rt_tcp_connect(port);
    assert_true(fd >= 0);
    return fd;
}

/* Spin the loop until fd has a line (into buf) or EOF (-1) or ms pass (0). */
static int reply_line(struct ev_loop *loop, int fd, char *buf, size_t cap, int ms)
{
    size_t n = 0;
    double end = rt_now_ms() + ms;
    while (rt_now_ms() < end) {
        rt_spin(loop, 2, NULL, NULL);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) != 1)
            continue;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (strchr(buf, '\n'))
            return 1;
    }
    return 0;
}

static void ask(struct ev_loop *loop, int fd, const char *req, char *buf, size_t cap)
{
    assert_true(rt_write(fd, req, strlen(req)));
    assert_int_equal(reply_line(loop, fd, buf, cap, 2000), 1);
}

static void test_spec(void **state)
{
    struct sockaddr_in sin;
    assert_int_equal(rpc_tcp_spec_parse("12190", &sin), 0);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(ntohs(sin.sin_port), 12190);
    assert_int_equal(rpc_tcp_spec_parse("127.1.2.3:1", &sin), 0);
    static const char *const remote[] = {"0.0.0.0:12190", "10.0.0.1:1", "192.168.1.1:80", "128.0.0.1:5", NULL};
    for (int i = 0; remote[i]; i++)
        assert_int_equal(rpc_tcp_spec_parse(remote[i], &sin), -EADDRNOTAVAIL);
    static const char *const bad[] = {"", ":5", "x:5", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "+5", "5 ",
                                      " 5", "-1", "localhost:5", "127.0.0.1:5:6", "::1:5", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(rpc_tcp_spec_parse(bad[i], &sin), -EINVAL);
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "tcpspec");
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_int_equal(rpc_server_listen_tcp(s, "0.0.0.0:12190"), -EADDRNOTAVAIL);
    struct rpc_tcp_opts nan = {.idle_timeout = -1};
    assert_int_equal(rpc_server_listen_tcp_opts(s, "127.0.0.1:12190", &nan), -EINVAL);
    teardown(loop, s, p);
}

/* Each transport sees its own methods; only TCP is lenient. */
static void test_tables_and_leniency(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108], buf[1024];
    struct rpc_tcp_opts to = {.lenient = true};
    struct rpc_server *s = server(loop, p, "tcptab", &to);
    int t = tcp_connect(), u = rt_connect(p);
    ask(loop, t, "{\"jsonrpc\":\"2.0\",\"method\":\"t\",\"id\":1}", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"result\":\"tcp\""));
    ask(loop, t, "{\"method\":\"u\",\"id\":2}", buf, sizeof(buf));
    assert_non_null(strstr(buf, "-32601"));
    ask(loop, t, "{\"method\":\"t\"}", buf, sizeof(buf));   /* no jsonrpc, no id: answered, id null */
    assert_non_null(strstr(buf, "\"result\":\"tcp\""));
    assert_non_null(strstr(buf, "\"id\":null"));
    ask(loop, u, "{\"jsonrpc\":\"2.0\",\"method\":\"u\",\"id\":1}", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"result\":\"unix\""));
    ask(loop, u, "{\"jsonrpc\":\"2.0\",\"method\":\"t\",\"id\":2}", buf, sizeof(buf));
    assert_non_null(strstr(buf, "-32601"));
    ask(loop, u, "{\"method\":\"u\",\"id\":3}", buf, sizeof(buf));   /* the unix socket stays strict */
    assert_non_null(strstr(buf, "-32600"));
    close(t);
    close(u);
    teardown(loop, s, p);
    /* not lenient: TCP is strict too */
    loop = ev_loop_new(0);
    s = server(loop, p, "tcpstrict", NULL);
    t = tcp_connect();
    ask(loop, t, "{\"method\":\"t\",\"id\":1}", buf, sizeof(buf));
    assert_non_null(strstr(buf, "-32600"));
    close(t);
    teardown(loop, s, p);
}

/* At most max_conns TCP clients; the unix socket is still served. */
static void test_tcp_conn_bound(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108], buf[1024];
    struct rpc_tcp_opts to = {.max_conns = 2};
    struct rpc_server *s = server(loop, p, "tcpmax", &to);
    int a = tcp_connect(), b = tcp_connect();
    rt_spin(loop, 20, NULL, NULL);
    int c = tcp_connect();
    assert_int_equal(reply_line(loop, c, buf, sizeof(buf), 1000), 1);
    assert_non_null(strstr(buf, "too many clients"));
    int u = rt_connect(p);
    ask(loop, u, "{\"jsonrpc\":\"2.0\",\"method\":\"u\",\"id\":1}", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"result\":\"unix\""));
    close(a);
    rt_spin(loop, 20, NULL, NULL);
    int d = tcp_connect();   /* a slot is free again */
    ask(loop, d, "{\"jsonrpc\":\"2.0\",\"method\":\"t\",\"id\":1}", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"result\":\"tcp\""));
    close(b);
    close(c);
    close(d);
    close(u);
    teardown(loop, s, p);
}

/* Over TCP a request trickling in is closed after the idle bound; over the
 * unix socket the same trickle keeps the connection (traffic). */
static void test_trickle(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108], buf[1024];
    struct rpc_tcp_opts to = {.idle_timeout = 0.3};
    rt_dir(p, sizeof(p), "tcptrickle");
    int err;
    struct rpc_server_opts uo = {.idle_timeout = 0.3};
    struct rpc_server *s = rpc_server_create(loop, p, &uo, &err);
    rpc_register_tcp(s, "t", m_tcp, NULL);
    rpc_register(s, "u", m_unix, NULL);
    int rc;
    port = rt_listen_tcp(s, 17, &to, &rc);
    assert_int_equal(rc, 0);
    int t = tcp_connect(), u = rt_connect(p);
    const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"u\",\"id\":1}";   /* sent a byte every 100 ms */
    bool t_closed = false;
    for (size_t i = 0; i < strlen(req) - 1; i++) {
        if (!t_closed && !rt_write(t, req + i, 1))
            t_closed = true;
        assert_true(rt_write(u, req + i, 1));
        rt_spin(loop, 100, NULL, NULL);
        struct pollfd pf = {.fd = t, .events = POLLIN};
        char ch;
        if (!t_closed && poll(&pf, 1, 0) == 1 && read(t, &ch, 1) <= 0)
            t_closed = true;
    }
    assert_true(t_closed);   /* 3.7 s of trickle, bound 0.3 s */
    assert_true(rt_write(u, "}", 1));
    assert_int_equal(reply_line(loop, u, buf, sizeof(buf), 1000), 1);
    assert_non_null(strstr(buf, "\"result\":\"unix\""));
    close(t);
    close(u);
    teardown(loop, s, p);
}

/* A client that sends a request and is gone before its answer: the connection
 * closes while its bytes are parsed, and its idle timer must stay off (the
 * connection is freed; a timer restarted there would fire into freed memory,
 * which AddressSanitizer reports). */
static void test_gone_before_answer(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108], buf[1024];
    struct rpc_tcp_opts to = {.idle_timeout = 0.1};
    rt_dir(p, sizeof(p), "tcpgone");
    int err;
    struct rpc_server_opts uo = {.idle_timeout = 0.1};
    struct rpc_server *s = rpc_server_create(loop, p, &uo, &err);
    rpc_register(s, "u", m_unix, NULL);
    rpc_register_tcp(s, "t", m_tcp, NULL);
    int rc;
    port = rt_listen_tcp(s, 19, &to, &rc);
    assert_int_equal(rc, 0);
    for (int round = 0; round < 20; round++) {
        int u = rt_connect(p), t = tcp_connect();
        rt_spin(loop, 5, NULL, NULL);   /* accepted */
        const char *ru = "{\"jsonrpc\":\"2.0\",\"method\":\"u\",\"id\":1}";
        const char *rtq = "{\"jsonrpc\":\"2.0\",\"method\":\"t\",\"id\":1}";
        assert_true(rt_write(u, ru, strlen(ru)));
        assert_true(rt_write(t, rtq, strlen(rtq)));
        struct linger lg = {.l_onoff = 1, .l_linger = 0};   /* TCP: reset, the answer cannot be sent */
        setsockopt(t, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(u);
        close(t);
        rt_spin(loop, 20, NULL, NULL);
    }
    rt_spin(loop, 300, NULL, NULL);   /* past the idle bound of every connection */
    int u = rt_connect(p);
    ask(loop, u, "{\"jsonrpc\":\"2.0\",\"method\":\"u\",\"id\":1}", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"result\":\"unix\""));
    close(u);
    teardown(loop, s, p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_tables_and_leniency),
        cmocka_unit_test(test_tcp_conn_bound),
        cmocka_unit_test(test_trickle),
        cmocka_unit_test(test_gone_before_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
