/*
 * vfe-vhostd-ha's store (ha/ha_store.c): a put takes the fds and the blob,
 * a replacing put and a del close the old record's fds, every limit (records,
 * fds in all, fds per record, blob size, bytes) refuses a put without
 * changing anything (the refused fds stay open: still the caller's).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "ha/ha_store.h"

static const struct vfe_ha_limits lim = {.max_records = 3, .max_fds = 5, .max_record_fds = 4, .max_blob = 100,
                                         .max_bytes = 150};

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static uint8_t *blob_of(uint32_t len, uint8_t fill)
{
    uint8_t *b = malloc(len ? len : 1);
    memset(b, fill, len);
    return b;
}

static void put_replace_del(void **state)
{
    struct ha_store s;
    ha_store_init(&s, &lim);
    int a = eventfd(0, 0), b = eventfd(0, 0), c = eventfd(0, 0);
    int fds1[2] = {a, b};
    assert_int_equal(ha_store_put(&s, "vf/1", blob_of(10, 1), 10, fds1, 2), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.fds, 2);
    assert_int_equal(s.bytes, 10 + 4);
    const struct ha_record *r = ha_store_find(&s, "vf/1");
    assert_non_null(r);
    assert_int_equal(r->blob_len, 10);
    assert_int_equal(r->blob[9], 1);
    /* replace: the old fds are closed, the new one held */
    assert_int_equal(ha_store_put(&s, "vf/1", blob_of(20, 2), 20, &c, 1), 0);
    assert_false(fd_open(a));
    assert_false(fd_open(b));
    assert_true(fd_open(c));
    assert_int_equal(s.n, 1);
    assert_int_equal(s.fds, 1);
    assert_int_equal(s.bytes, 20 + 4);
    assert_int_equal(ha_store_find(&s, "vf/1")->blob[0], 2);
    /* an empty record */
    assert_int_equal(ha_store_put(&s, "vf/2", NULL, 0, NULL, 0), 0);
    assert_int_equal(s.n, 2);
    /* del closes */
    assert_int_equal(ha_store_del(&s, "vf/1"), 0);
    assert_false(fd_open(c));
    assert_int_equal(s.fds, 0);
    assert_int_equal(s.bytes, 4);
    assert_null(ha_store_find(&s, "vf/1"));
    assert_non_null(ha_store_find(&s, "vf/2"));
    assert_int_equal(ha_store_del(&s, "vf/1"), -ENOENT);
    ha_store_clear(&s);
    assert_int_equal(s.n, 0);
}

static void limits_change_nothing(void **state)
{
    struct ha_store s;
    ha_store_init(&s, &lim);
    int e[6];
    for (int i = 0; i < 6; i++)
        e[i] = eventfd(0, 0);
    /* per record fds */
    assert_int_equal(ha_store_put(&s, "a", NULL, 0, e, 5), -E2BIG);
    /* blob */
    uint8_t *big = blob_of(101, 0);
    assert_int_equal(ha_store_put(&s, "a", big, 101, NULL, 0), -E2BIG);
    free(big);
    /* bad key */
    assert_int_equal(ha_store_put(&s, "/a", NULL, 0, NULL, 0), -EINVAL);
    assert_int_equal(s.n, 0);
    /* fds in all: 4 + 2 > 5 */
    assert_int_equal(ha_store_put(&s, "a", NULL, 0, e, 4), 0);
    assert_int_equal(ha_store_put(&s, "b", NULL, 0, e + 4, 2), -EMFILE);
    assert_true(fd_open(e[4]) && fd_open(e[5]));
    /* replacing a: its 4 are counted out, so 2 fit */
    assert_int_equal(ha_store_put(&s, "a", NULL, 0, e + 4, 2), 0);
    for (int i = 0; i < 4; i++)
        assert_false(fd_open(e[i]));
    assert_int_equal(s.fds, 2);
    /* bytes: 2 + 100 + 2 + 60 > 150 */
    assert_int_equal(ha_store_put(&s, "b1", blob_of(100, 0), 100, NULL, 0), 0);
    uint8_t *b60 = blob_of(60, 0);
    assert_int_equal(ha_store_put(&s, "c1", b60, 60, NULL, 0), -ENOSPC);
    free(b60);
    assert_int_equal(s.bytes, 1 + 2 + 100);
    /* records: 3 */
    assert_int_equal(ha_store_put(&s, "c", NULL, 0, NULL, 0), 0);
    assert_int_equal(ha_store_put(&s, "d", NULL, 0, NULL, 0), -ENOSPC);
    assert_int_equal(s.n, 3);
    /* replacing at the record limit is fine */
    assert_int_equal(ha_store_put(&s, "c", blob_of(5, 0), 5, NULL, 0), 0);
    ha_store_clear(&s);
    assert_false(fd_open(e[4]));
    assert_false(fd_open(e[5]));
}

/* 16400 records (16 PFs x 1024 VFs): each found by its key through growth,
 * deletes that move the last record into the hole, and puts that replace. */
static void many_records_by_key(void **state)
{
    (void)state;
    enum { N = 16400 };
    static const struct vfe_ha_limits big = {.max_records = N, .max_fds = 8, .max_record_fds = 4, .max_blob = 100,
                                             .max_bytes = 1 << 24};
    struct ha_store s;
    ha_store_init(&s, &big);
    char key[32];
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "vf:0000:%02x:%02x.%x/%u", (i >> 8) & 0xff, (i >> 3) & 0x1f, i & 7, i);
        assert_int_equal(ha_store_put(&s, key, blob_of(4, (uint8_t)i), 4, NULL, 0), 0);
    }
    snprintf(key, sizeof(key), "pf:one-too-many");
    uint8_t *extra = blob_of(4, 0);
    assert_int_equal(ha_store_put(&s, key, extra, 4, NULL, 0), -ENOSPC);
    free(extra);
    for (unsigned i = 0; i < N; i += 3) {
        snprintf(key, sizeof(key), "vf:0000:%02x:%02x.%x/%u", (i >> 8) & 0xff, (i >> 3) & 0x1f, i & 7, i);
        assert_int_equal(ha_store_del(&s, key), 0);
        assert_int_equal(ha_store_del(&s, key), -ENOENT);
    }
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "vf:0000:%02x:%02x.%x/%u", (i >> 8) & 0xff, (i >> 3) & 0x1f, i & 7, i);
        const struct ha_record *r = ha_store_find(&s, key);
        if (i % 3 == 0) {
            assert_null(r);
            continue;
        }
        assert_non_null(r);
        assert_string_equal(r->key, key);
        assert_int_equal(r->blob[0], (uint8_t)i);
        if (i % 5 == 0)   /* replaced in place: still one record */
            assert_int_equal(ha_store_put(&s, key, blob_of(4, 0xee), 4, NULL, 0), 0);
    }
    assert_int_equal(s.n, N - (N + 2) / 3);
    snprintf(key, sizeof(key), "vf:0000:00:00.5/5");
    assert_int_equal(ha_store_find(&s, key)->blob[0], 0xee);
    ha_store_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_replace_del),
        cmocka_unit_test(limits_change_nothing),
        cmocka_unit_test(many_records_by_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
