/*
 * vfe-bench-swlog: the cost of one software dirty-tracking pass
 * (vdpa_swlog_pass) over a queue pair of 256-entry split rings in 64 MiB of
 * malloc'd guest memory: rx holds 256 writable buffers of 1536 bytes (as a
 * Linux guest's mergeable rx buffers), tx 256 readable ones.
 *
 *   steady   nothing new, every record's bits already in the log (the
 *            common pass: reads and no locked write)
 *   cleared  nothing new, the front-end just cleared the log (a locked OR
 *            per record)
 *   new64    64 new rx buffers posted since the last pass (recorded, marked)
 *
 * Prints one JSON object: ns per pass (median of the rounds).  Not a test.
 *   vfe-bench-swlog [--rounds N]   (default 2000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/virtio_ring.h>

#include "drivers/vdpa/virtio/vdpa_swlog.h"

#define RING 256u
#define MEM_GPA 0x100000ull
#define MEM_SIZE (64ull << 20)
#define BUF_SIZE 1536u

static uint8_t *mem;

static void *g_host(void *ctx, uint64_t gpa, uint64_t len)
{
    if (gpa < MEM_GPA || gpa - MEM_GPA >= MEM_SIZE || len > MEM_SIZE - (gpa - MEM_GPA))
        return NULL;
    return mem + (gpa - MEM_GPA);
}

static unsigned g_regions(void *ctx, struct vdpa_swlog_span *out, unsigned max)
{
    out[0] = (struct vdpa_swlog_span){MEM_GPA, MEM_SIZE};
    return 1;
}

/* ring q at MEM_GPA + q * 64 KiB: desc, avail (+4 KiB), used (+8 KiB) */
static uint64_t ring_gpa(uint16_t q) { return MEM_GPA + (uint64_t)q * 0x10000; }

static int g_ring(void *ctx, uint16_t q, struct vdpa_swlog_ring *out)
{
    if (q > 1)
        return 0;
    *out = (struct vdpa_swlog_ring){RING, ring_gpa(q), ring_gpa(q) + 0x1000, ring_gpa(q) + 0x2000};
    return 1;
}

static void post(uint16_t q, uint16_t head)
{
    uint8_t *avail = mem + ring_gpa(q) + 0x1000 - MEM_GPA;
    uint16_t idx;
    memcpy(&idx, avail + 2, 2);
    memcpy(avail + 4 + 2 * (idx % RING), &head, 2);
    idx++;
    memcpy(avail + 2, &idx, 2);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 2 && !strcmp(argv[1], "--rounds") ? (unsigned)atoi(argv[2]) : 2000;
    if (!rounds)
        rounds = 1;
    mem = calloc(1, MEM_SIZE);
    uint64_t log_size = (MEM_GPA + MEM_SIZE) / 4096 / 8;
    uint8_t *log = calloc(1, log_size);
    double *t = calloc(rounds, sizeof(double));
    if (!mem || !log || !t)
        return 1;
    for (uint16_t q = 0; q < 2; q++) {
        struct vring_desc *d = (struct vring_desc *)(void *)(mem + ring_gpa(q) - MEM_GPA);
        for (unsigned i = 0; i < RING; i++) {
            uint64_t buf = MEM_GPA + (4ull << 20) + ((uint64_t)q * RING + i) * BUF_SIZE * 2;
            d[i] = (struct vring_desc){buf, BUF_SIZE, q == 0 ? VRING_DESC_F_WRITE : 0, 0};
            post(q, (uint16_t)i);
        }
    }
    const struct vdpa_swlog_guest g = {g_host, g_regions, g_ring, NULL};
    struct vdpa_swlog *w = vdpa_swlog_new(log, log_size, &g, "bench");
    if (!w)
        return 1;
    vdpa_swlog_pass(w);
    static const char *const names[] = {"steady", "cleared", "new64"};
    double med[3];
    uint16_t next = 0;
    for (unsigned k = 0; k < 3; k++) {
        for (unsigned r = 0; r < rounds; r++) {
            if (k == 1)
                memset(log, 0, log_size);
            if (k == 2)
                for (unsigned i = 0; i < 64; i++)
                    post(0, next++ % RING);
            double t0 = now_ns();
            vdpa_swlog_pass(w);
            t[r] = now_ns() - t0;
        }
        qsort(t, rounds, sizeof(double), cmp);
        med[k] = t[rounds / 2];
    }
    struct vdpa_swlog_stats st;
    vdpa_swlog_stats(w, &st);
    printf("{\"bench\": \"swlog\", \"ring\": %u, \"rings\": 2, \"rounds\": %u", RING, rounds);
    for (unsigned k = 0; k < 3; k++)
        printf(", \"%s_ns\": %.0f", names[k], med[k]);
    printf(", \"overruns\": %llu}\n", (unsigned long long)st.overruns);
    vdpa_swlog_free(w);
    free(t);
    free(log);
    free(mem);
    return st.overruns ? 1 : 0;
}
