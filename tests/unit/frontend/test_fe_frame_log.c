/* Test frames (seeded, self-checking) and dirty log bitmaps of the test front-end. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tests/frontend/vfe_frontend.h"

static const uint8_t dst[6] = {1, 2, 3, 4, 5, 6}, src[6] = {0x02, 0xfa, 0, 0, 0, 9};

static void test_frame_layout(void **state)
{
    uint8_t f[100], g[100];
    vfe_fe_frame(f, sizeof(f), dst, src, 0x01020304);
    assert_memory_equal(f, dst, 6);
    assert_memory_equal(f + 6, src, 6);
    assert_int_equal(f[12], 0x88);
    assert_int_equal(f[13], 0xb5);
    assert_int_equal(f[14], 1);
    assert_int_equal(f[17], 4);
    assert_int_equal(vfe_fe_frame_seed(f, sizeof(f)), 0x01020304);
    /* same seed, same bytes; another seed, other bytes */
    vfe_fe_frame(g, sizeof(g), dst, src, 0x01020304);
    assert_memory_equal(f, g, sizeof(f));
    vfe_fe_frame(g, sizeof(g), dst, src, 0x01020305);
    assert_true(memcmp(f + 18, g + 18, sizeof(f) - 18) != 0);
    assert_int_equal(vfe_fe_frame_seed(g, sizeof(g)), 0x01020305);
    /* seed 0 still gives a pattern, not zeros */
    vfe_fe_frame(g, sizeof(g), dst, src, 0);
    int nonzero = 0;
    for (size_t i = 18; i < sizeof(g); i++)
        nonzero += g[i] != 0;
    assert_true(nonzero > 50);
}

static void test_frame_damage(void **state)
{
    uint8_t f[1514];
    vfe_fe_frame(f, sizeof(f), dst, src, 77);
    f[1000] ^= 0x10;
    assert_int_equal(vfe_fe_frame_seed(f, sizeof(f)), -1);
    f[1000] ^= 0x10;
    f[12] = 0x08;
    assert_int_equal(vfe_fe_frame_seed(f, sizeof(f)), -1);
    assert_int_equal(vfe_fe_frame_seed(f, 10), -1);
    /* a shorter frame of the same seed is a prefix */
    uint8_t s[60];
    vfe_fe_frame(f, sizeof(f), dst, src, 77);
    vfe_fe_frame(s, sizeof(s), dst, src, 77);
    assert_memory_equal(s, f, sizeof(s));
}

static void test_frame_diff_and_mac(void **state)
{
    uint8_t a[64], b[64];
    vfe_fe_frame(a, sizeof(a), dst, src, 5);
    memcpy(b, a, sizeof(a));
    assert_int_equal(vfe_fe_frame_diff(a, 64, b, 64), -1);
    b[40]++;
    assert_int_equal(vfe_fe_frame_diff(a, 64, b, 64), 40);
    assert_int_equal(vfe_fe_frame_diff(a, 64, a, 60), 60);
    uint8_t mac[6];
    assert_int_equal(vfe_fe_parse_mac("02:fa:00:00:00:0b", mac), 0);
    assert_int_equal(mac[0], 2);
    assert_int_equal(mac[1], 0xfa);
    assert_int_equal(mac[5], 0x0b);
    assert_int_equal(vfe_fe_parse_mac("02:fa:00:00:00", mac), -EINVAL);
    assert_int_equal(vfe_fe_parse_mac("02:fa:00:00:00:0b:", mac), -EINVAL);
    assert_int_equal(vfe_fe_parse_mac("zz:fa:00:00:00:0b", mac), -EINVAL);
    assert_int_equal(vfe_fe_parse_mac(NULL, mac), -EINVAL);
}

static void test_log_sizes(void **state)
{
    assert_int_equal(vfe_fe_log_bytes(0), 0);
    assert_int_equal(vfe_fe_log_bytes(1), 8);
    assert_int_equal(vfe_fe_log_bytes(64 * 4096), 8);
    assert_int_equal(vfe_fe_log_bytes(64 * 4096 + 1), 16);
    /* 1 GiB + 1 MiB of guest-physical space: 262400 pages */
    assert_int_equal(vfe_fe_log_bytes((1ull << 30) + (1u << 20)), 262400 / 8);
}

static void test_log_bits(void **state)
{
    uint8_t log[16] __attribute__((aligned(8))) = {0};
    vfe_fe_log_mark(log, sizeof(log), 9 * 4096 + 5, 1);
    assert_int_equal(log[1], 1u << 1);            /* page 9: byte 1, bit 1 */
    assert_true(vfe_fe_log_test(log, sizeof(log), 9 * 4096));
    assert_false(vfe_fe_log_test(log, sizeof(log), 8 * 4096));
    /* a range over a page boundary marks both pages */
    vfe_fe_log_mark(log, sizeof(log), 20 * 4096 - 1, 2);
    assert_true(vfe_fe_log_test(log, sizeof(log), 19 * 4096));
    assert_true(vfe_fe_log_test(log, sizeof(log), 20 * 4096));
    assert_int_equal(vfe_fe_log_count(log, sizeof(log)), 3);
    assert_int_equal(vfe_fe_log_missing(log, sizeof(log), 18 * 4096, 4 * 4096), 2);
    assert_int_equal(vfe_fe_log_missing(log, sizeof(log), 19 * 4096, 2 * 4096), 0);
    assert_int_equal(vfe_fe_log_missing(log, sizeof(log), 0, 0), 0);
    /* past the end of the log: ignored, reported as not marked */
    vfe_fe_log_mark(log, sizeof(log), 1000 * 4096, 4096);
    assert_int_equal(vfe_fe_log_count(log, sizeof(log)), 3);
    assert_false(vfe_fe_log_test(log, sizeof(log), 1000 * 4096));
}

static void test_log_exchange(void **state)
{
    uint8_t log[24] __attribute__((aligned(8))), out[24];
    memset(log, 0, sizeof(log));
    memset(out, 0xee, sizeof(out));
    vfe_fe_log_mark(log, sizeof(log), 0, 4096);
    vfe_fe_log_mark(log, sizeof(log), 100 * 4096, 4096);
    vfe_fe_log_mark(log, sizeof(log), 130 * 4096, 4096);  /* byte 16: past the last whole word */
    assert_int_equal(vfe_fe_log_exchange(log, out, 20), 16);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[12], 1u << 4);
    assert_int_equal(vfe_fe_log_count(log, 16), 0);        /* cleared */
    assert_int_equal(log[16], 1u << 2);                    /* untouched */
    assert_int_equal(out[16], 0xee);
    assert_int_equal(vfe_fe_log_count(out, 16), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_layout), cmocka_unit_test(test_frame_damage),
        cmocka_unit_test(test_frame_diff_and_mac), cmocka_unit_test(test_log_sizes),
        cmocka_unit_test(test_log_bits),     cmocka_unit_test(test_log_exchange),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
