/*
 * The registry's VF index (app/vfe-vdpa/registry_index.c): every key of 16384
 * slots found, absent keys not, deletes in the middle of a chain, the lowest
 * free slot, and the time of a lookup against the scan it replaces (printed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "app/vfe-vdpa/registry_index.h"

#define N 16384

static char bdfs[N][16], socks[N][64];
static void *slots[N];

static const char *key_of(const void *ctx, unsigned slot, int which)
{
    (void)ctx;
    return which ? socks[slot] : bdfs[slot];
}

static void fill(struct vhostd_reg_index *x)
{
    for (unsigned i = 0; i < N; i++) {
        unsigned rid = 0x1000 + i + i / 1024;   /* 16 PFs x 1024 VFs, as the routing ids go */
        snprintf(bdfs[i], 16, "0000:%02x:%02x.%x", (rid >> 8) & 0xff, (rid >> 3) & 0x1f, rid & 7);
        snprintf(socks[i], 64, "/run/vfe/vf-%s", bdfs[i]);
        slots[i] = bdfs[i];
        vhostd_reg_index_put(x, i, bdfs[i], socks[i]);
    }
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void test_all_found(void **state)
{
    (void)state;
    struct vhostd_reg_index x;
    assert_int_equal(vhostd_reg_index_init(&x, N), 0);
    fill(&x);
    assert_int_equal(x.used, N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(vhostd_reg_index_find(&x, 0, bdfs[i], key_of, NULL), (int)i);
        assert_int_equal(vhostd_reg_index_find(&x, 1, socks[i], key_of, NULL), (int)i);
    }
    assert_int_equal(vhostd_reg_index_find(&x, 0, "0000:ff:1f.7", key_of, NULL), -1);
    assert_int_equal(vhostd_reg_index_find(&x, 1, bdfs[5], key_of, NULL), -1);   /* a BDF is no socket */
    assert_int_equal(vhostd_reg_index_free_slot(&x, slots), -1);
    /* delete some (chain heads, middles, tails alike), the rest stay */
    for (unsigned i = 0; i < N; i += 7) {
        vhostd_reg_index_del(&x, i);
        slots[i] = NULL;
    }
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(vhostd_reg_index_find(&x, 0, bdfs[i], key_of, NULL), i % 7 ? (int)i : -1);
    assert_int_equal(vhostd_reg_index_free_slot(&x, slots), 0);
    slots[0] = bdfs[0];
    vhostd_reg_index_put(&x, 0, bdfs[0], socks[0]);
    assert_int_equal(vhostd_reg_index_free_slot(&x, slots), 7);
    assert_int_equal(vhostd_reg_index_find(&x, 1, socks[0], key_of, NULL), 0);
    vhostd_reg_index_free(&x);
}

static void test_lookup_time(void **state)
{
    (void)state;
    struct vhostd_reg_index x;
    assert_int_equal(vhostd_reg_index_init(&x, N), 0);
    fill(&x);
    double t0 = now_ns();
    int sum = 0;
    for (unsigned i = 0; i < N; i++)
        sum += vhostd_reg_index_find(&x, 0, bdfs[(i * 7919) % N], key_of, NULL) >= 0;
    double hashed = (now_ns() - t0) / N;
    t0 = now_ns();
    for (unsigned i = 0; i < N; i += 16) {   /* the scan the index replaced, on a sample */
        const char *k = bdfs[(i * 7919) % N];
        for (unsigned j = 0; j < N; j++)
            if (!strcmp(bdfs[j], k)) {
                sum++;
                break;
            }
    }
    double scanned = (now_ns() - t0) / (N / 16);
    printf("# lookup among %d VFs: index %.0f ns, linear scan %.0f ns\n", N, hashed, scanned);
    assert_int_equal(sum, N + N / 16);
    vhostd_reg_index_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_all_found), cmocka_unit_test(test_lookup_time)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
