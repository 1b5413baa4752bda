/*
 * vfe-bench-pull: the pull-mode merge (vdpa_pull_merge: OR a device report
 * into QEMU's log, 64-bit atomic) against memcpy of the same bytes.
 *
 * For a report size (16 KiB, one report; 4 MiB, the log of a 128 GiB guest)
 * and a bitmap shape: dense (every word has bits, log clean: one locked OR
 * per word), sparse (1 word in 64 has bits: a realistic pass), logged (the
 * report's bits are already in the log: QEMU has not synced yet).  Prints
 * one JSON object; ratio = merge GB/s / memcpy GB/s.  Not a test.
 *
 *   vfe-bench-pull [--ms N]   (time per measurement, default 200)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum shape { DENSE, SPARSE, LOGGED };
static const char *const shape_name[] = {"dense", "sparse", "logged"};

static void fill(uint8_t *src, uint8_t *dst, size_t n, enum shape s)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t w = s == SPARSE && (i / 8) % 64 ? 0 : (x | 1);
        memcpy(src + i, &w, 8);
    }
    if (s == LOGGED)
        memcpy(dst, src, n);
    else
        memset(dst, 0, n);
}

/* GB/s of fn over n bytes for about ms milliseconds; reset restores dst between rounds for merges */
static double rate(void (*fn)(uint8_t *, const uint8_t *, size_t), uint8_t *dst, const uint8_t *src, size_t n,
                   unsigned ms, const uint8_t *reset)
{
    double bytes = 0, t0 = now(), spent = 0;
    while (spent * 1e3 < ms) {
        if (reset)
            memcpy(dst, reset, n);   /* not timed */
        double a = now();
        fn(dst, src, n);
        spent += now() - a;
        bytes += (double)n;
    }
    (void)t0;
    return bytes / spent / 1e9;
}

/* The merge is an OR at every alignment and length: nothing cleared, nothing missed. */
static int check_merge(void)
{
    uint8_t src[300], dst[300 + 8], want[300 + 8];
    for (unsigned i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 37 % 5 ? 0 : i * 11 + 1);
    for (unsigned off = 0; off < 8; off++)
        for (unsigned n = 0; n <= sizeof(src); n += 7) {
            for (unsigned i = 0; i < sizeof(dst); i++)
                dst[i] = want[i] = (uint8_t)(i % 3 ? 0x10 : 0);
            for (unsigned i = 0; i < n; i++)
                want[off + i] |= src[i];
            vdpa_pull_merge(dst + off, src, n);
            if (memcmp(dst, want, sizeof(dst))) {
                fprintf(stderr, "vfe-bench-pull: merge wrong at offset %u, %u bytes\n", off, n);
                return -1;
            }
        }
    return 0;
}

static void copy(uint8_t *dst, const uint8_t *src, size_t n) { memcpy(dst, src, n); }

int main(int argc, char **argv)
{
    unsigned ms = 200;
    if (argc == 3 && !strcmp(argv[1], "--ms"))
        ms = (unsigned)atoi(argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: vfe-bench-pull [--ms N]\n");
        return 2;
    }
    if (check_merge() < 0)
        return 1;
    static const size_t sizes[] = {16384, 4u << 20};
    printf("{\"bench\": \"pull_merge\", \"results\": [");
    const char *sep = "";
    for (unsigned si = 0; si < 2; si++) {
        size_t n = sizes[si];
        uint8_t *src = aligned_alloc(64, n), *dst = aligned_alloc(64, n), *init = aligned_alloc(64, n);
        if (!src || !dst || !init)
            return 1;
        for (enum shape s = DENSE; s <= LOGGED; s++) {
            fill(src, init, n, s);
            double m = rate(vdpa_pull_merge, dst, src, n, ms, init);
            double c = rate(copy, dst, src, n, ms, init);
            printf("%s\n  {\"bytes\": %zu, \"shape\": \"%s\", \"merge_gbs\": %.2f, \"memcpy_gbs\": %.2f, "
                   "\"ratio\": %.2f}", sep, n, shape_name[s], m, c, m / c);
            sep = ",";
        }
        free(src);
        free(dst);
        free(init);
    }
    printf("\n]}\n");
    return 0;
}
