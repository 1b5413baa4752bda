/*
 * The sim's vfio-user listening sockets (lib/vfio_user/vfu_sock.c): never a
 * path that is not a socket, never a socket somebody serves, a stale one is
 * replaced, paths longer than sun_path work, and close removes the socket
 * only while it is still the one the listener created.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/vfio_user/vfu_sock.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/vfu-lis-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static bool is_socket(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void test_regular_file_kept(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof(p), "%s/file.sock", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("data", f);
    fclose(f);
    struct vfu_listener v;
    assert_int_equal(vfu_listener_open(&v, p, 4), -EEXIST);
    assert_int_equal(vfu_sock_listen(p), -EEXIST);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 4);
}

static void test_in_use_refused_stale_replaced(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof(p), "%s/x.sock", dir);
    struct vfu_listener a, b;
    assert_int_equal(vfu_listener_open(&a, p, 4), 0);
    assert_int_equal(vfu_listener_open(&b, p, 4), -EADDRINUSE);
    int c = vfu_sock_connect(p, false);
    assert_true(c >= 0);   /* still a's */
    close(c);
    /* a dies without cleaning up: its socket is stale and may be replaced */
    close(a.l.fd);
    a.l.fd = -1;
    assert_true(is_socket(p));
    assert_int_equal(vfu_listener_open(&b, p, 4), 0);
    vfu_listener_close(&b);
    assert_false(is_socket(p));
}

static void test_close_spares_a_newer_socket(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof(p), "%s/y.sock", dir);
    struct vfu_listener a;
    assert_int_equal(vfu_listener_open(&a, p, 4), 0);
    /* somebody else removes it and puts their own socket there */
    unlink(p);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(p) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, p, strlen(p) + 1);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    vfu_listener_close(&a);
    assert_true(is_socket(p));
    close(s);
}

static void test_long_path(void **state)
{
    (void)state;
    char sub[300], p[400];
    snprintf(sub, sizeof(sub), "%s/%0100d", dir, 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(p, sizeof(p), "%s/vfio-user.sock", sub);
    assert_true(strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path));
    struct vfu_listener a, b;
    assert_int_equal(vfu_listener_open(&a, p, 4), 0);
    assert_true(a.dirfd >= 0);
    assert_true(is_socket(p));
    assert_int_equal(vfu_listener_open(&b, p, 4), -EADDRINUSE);
    int c = vfu_sock_connect(p, false);
    assert_true(c >= 0);
    close(c);
    vfu_listener_close(&a);
    assert_false(is_socket(p));
    assert_int_equal(a.dirfd, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_regular_file_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_use_refused_stale_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_spares_a_newer_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
