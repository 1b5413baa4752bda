/*
 * lib/rpc when allocations fail: every calloc/malloc/realloc made by the
 * library (linked with --wrap) fails in turn while a client connects and sends
 * a batch and a request.  The server must neither crash nor leak (ASan), and
 * serve normally once memory is back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/unit/rpc/rpc_test_util.h"

static bool armed;
static int nth, seen;

void *__real_calloc(size_t n, size_t size);
void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);

static bool fail_now(void) { return armed && ++seen == nth; }
void *__wrap_calloc(size_t n, size_t size) { return fail_now() ? NULL : __real_calloc(n, size); }
void *__wrap_malloc(size_t size) { return fail_now() ? NULL : __real_malloc(size); }
void *__wrap_realloc(void *p, size_t size) { return fail_now() ? NULL : __real_realloc(p, size); }

static int m_echo(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_result(c, json_incref(params));
    return 0;
}

static void test_allocation_failures(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char p[108];
    rt_dir(p, sizeof(p), "oom");
    int err;
    struct rpc_server *s = rpc_server_create(loop, p, NULL, &err);
    assert_non_null(s);
    rpc_register(s, "echo", m_echo, NULL);
    const char *req = "[{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"b\":1},\"id\":1},"
                      "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":2}]\n"
                      "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"a\":1},\"id\":3}\n";
    int failed = 0;
    for (nth = 1; nth <= 40; nth++) {
        int fd = rt_connect(p);
        assert_true(fd >= 0);
        assert_true(rt_write(fd, req, strlen(req)));
        seen = 0;
        armed = true;
        rt_spin(loop, 15, NULL, NULL);
        armed = false;
        failed += seen >= nth;
        close(fd);
        rt_spin(loop, 5, NULL, NULL);
    }
    print_message("%d allocation failures injected\n", failed);
    assert_true(failed >= 4);   /* accept, batch, call, reply buffer at least */
    struct rt_call c;
    assert_int_equal(rt_call(loop, &c, p, "echo", NULL), 0);
    json_decref(c.result);
    rpc_server_destroy(s);
    ev_loop_destroy(loop);
    rt_dir_remove(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_allocation_failures)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
