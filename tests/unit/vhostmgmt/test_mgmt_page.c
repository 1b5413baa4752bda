/*
 * vhostmgmt's paging (tools/vhostmgmt/mgmt_page.c) against a fake daemon on
 * a unix socket (a child process, stopped by its PID): 10 items in pages of
 * 3 arrive merged in order, with total and without next; an unpaged answer
 * is passed through; a daemon whose next repeats, goes back or is not a
 * number is an error, not an endless loop; a further page that is not a list
 * is an error.
 */
#include <errno.h>
#include <ev.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/rpc/rpc.h"
#include "tools/vhostmgmt/mgmt_page.h"

#define ITEMS 10
#define PAGE 3

static char dir[64], sock[128];
static pid_t server;

/* method "list": pages of PAGE; "bad_next": next = the mode's value; "plain": no paging. */
static int m_list(void *ctx, json_t *params, struct rpc_call *c)
{
    const char *mode = ctx;
    json_int_t off = json_integer_value(json_object_get(params, "offset"));
    json_t *a = json_array();
    for (json_int_t i = off; i < off + PAGE && i < ITEMS; i++)
        json_array_append_new(a, json_pack("{s:I}", "vf", i));
    json_t *r = json_pack("{s:o, s:i}", "vfs", a, "total", ITEMS);
    if (!strcmp(mode, "good") && off + PAGE < ITEMS)
        json_object_set_new(r, "next", json_integer(off + PAGE));
    else if (!strcmp(mode, "repeat"))
        json_object_set_new(r, "next", json_integer(off ? off : PAGE));   /* 3, then 3 again */
    else if (!strcmp(mode, "string"))
        json_object_set_new(r, "next", json_string("3"));
    else if (!strcmp(mode, "notlist") && off) {
        json_decref(r);
        r = json_pack("{s:s}", "vfs", "oops");
    } else if (!strcmp(mode, "notlist"))
        json_object_set_new(r, "next", json_integer(PAGE));
    rpc_call_result(c, r);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/vfe-mgmt-page-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/rpc.sock", dir);
    server = fork();
    if (server == 0) {
        struct ev_loop *loop = ev_default_loop(0);
        int err;
        struct rpc_server *s = rpc_server_create(loop, sock, NULL, &err);
        if (!s)
            _exit(1);
        rpc_register(s, "good", m_list, "good");
        rpc_register(s, "repeat", m_list, "repeat");
        rpc_register(s, "string", m_list, "string");
        rpc_register(s, "notlist", m_list, "notlist");
        rpc_register(s, "plain", m_list, "plain");
        ev_run(loop, 0);
        _exit(0);
    }
    for (int i = 0; i < 200 && access(sock, F_OK); i++)
        usleep(10000);
    return access(sock, F_OK);
}

static int teardown(void **state)
{
    (void)state;
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    unlink(sock);
    rmdir(dir);
    return 0;
}

static void merged(void **state)
{
    (void)state;
    json_t *res;
    char msg[256];
    assert_int_equal(mgmt_page_call(sock, "good", NULL, 5000, &res, msg, sizeof(msg)), 0);
    json_t *a = json_object_get(res, "vfs");
    assert_int_equal(json_array_size(a), ITEMS);
    for (size_t i = 0; i < ITEMS; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, i), "vf")), (json_int_t)i);
    assert_null(json_object_get(res, "next"));
    assert_int_equal(json_integer_value(json_object_get(res, "total")), ITEMS);
    json_decref(res);
    /* params are kept on every page (borrowed, not consumed) */
    json_t *p = json_pack("{s:s}", "mgmtpf", "0000:3b:00.0");
    assert_int_equal(mgmt_page_call(sock, "good", p, 5000, &res, msg, sizeof(msg)), 0);
    assert_int_equal(json_array_size(json_object_get(res, "vfs")), ITEMS);
    assert_null(json_object_get(p, "offset"));
    json_decref(p);
    json_decref(res);
    assert_int_equal(mgmt_page_call(sock, "plain", NULL, 5000, &res, msg, sizeof(msg)), 0);
    assert_int_equal(json_array_size(json_object_get(res, "vfs")), PAGE);
    json_decref(res);
}

static void bad_daemons(void **state)
{
    (void)state;
    static const char *const methods[] = {"repeat", "string", "notlist"};
    for (unsigned i = 0; i < 3; i++) {
        json_t *res = (json_t *)1;
        char msg[256] = "";
        int rc = mgmt_page_call(sock, methods[i], NULL, 5000, &res, msg, sizeof(msg));
        assert_int_not_equal(rc, 0);
        assert_null(res);
        assert_true(msg[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(merged), cmocka_unit_test(bad_daemons)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
