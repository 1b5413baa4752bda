/*
 * lib/rpc in one process: the server on the main thread's loop, a client on
 * another thread sending raw requests: results, errors of each class, batches,
 * notifications, answers given later, and the size limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rpc)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
