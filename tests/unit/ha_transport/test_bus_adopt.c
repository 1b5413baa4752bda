/*
 * Adopt without device calls: the PF IOVA space from its blob (every bad
 * window refused), DMA domain members that join adopted (no replay) and
 * regions recorded with adopt_map; and the crash-repeatable map/unmap: a
 * leftover identical range is mapped again, an unmap the device lacks is done.
 * The devices are fake transports that count calls and refuse overlaps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_dma_apply.h"
#include "drivers/bus/vfio/vfe_dma_domain.h"
#include "drivers/bus/vfio/vfe_pf_iova.h"

#define MAX_MAPS 16
#define PAGE VFE_PF_IOVA_PAGE
#define MB (1ull << 20)

struct fake_dev {
    struct vfe_transport t;
    struct { uint64_t iova, len; } maps[MAX_MAPS];
    unsigned nmaps, map_calls, unmap_calls;
};

static int fake_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot)
{
    struct fake_dev *f = (struct fake_dev *)t;
    f->map_calls++;
    for (unsigned i = 0; i < f->nmaps; i++)
        if (iova < f->maps[i].iova + f->maps[i].len && f->maps[i].iova < iova + len)
            return -EEXIST;
    if (f->nmaps == MAX_MAPS || fcntl(fd, F_GETFD) < 0)
        return -EINVAL;
    f->maps[f->nmaps].iova = iova;
    f->maps[f->nmaps++].len = len;
    return 0;
}

static int fake_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len)
{
    struct fake_dev *f = (struct fake_dev *)t;
    f->unmap_calls++;
    for (unsigned i = 0; i < f->nmaps; i++)
        if (f->maps[i].iova == iova && f->maps[i].len == len) {
            f->maps[i] = f->maps[--f->nmaps];
            return 0;
        }
    return -ENOENT;
}

static const struct vfe_transport_ops fake_ops = {.dma_map = fake_map, .dma_unmap = fake_unmap};

static void fake_init(struct fake_dev *f, const char *bdf)
{
    memset(f, 0, sizeof(*f));
    f->t.ops = &fake_ops;
    snprintf(f->t.bdf, sizeof(f->t.bdf), "%s", bdf);
}

static bool has_map(const struct fake_dev *f, uint64_t iova, uint64_t len)
{
    for (unsigned i = 0; i < f->nmaps; i++)
        if (f->maps[i].iova == iova && f->maps[i].len == len)
            return true;
    return false;
}

static int mem(void)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4 * MB), 0);
    return fd;
}

/* PF IOVA blob, version 1, as the vfe_pf_iova.h HA contract stores it. */
struct head { uint32_t magic; uint16_t version, reserved; uint32_t nwin, pad; uint64_t base, end; };
struct win { uint64_t iova, len; uint32_t user, flags; };
struct blob { struct head h; struct win w[3]; };

static size_t blob_len(const struct blob *b) { return sizeof(b->h) + b->h.nwin * sizeof(struct win); }

static void test_pf_iova_round_trip(void **state)
{
    struct fake_dev pf;
    fake_init(&pf, "pf");
    int fd = mem();
    struct vfe_pf_iova *s = vfe_pf_iova_create_in(&pf.t, 1 * MB, 2 * MB);
    uint64_t a, v1, v2;
    assert_int_equal(vfe_pf_iova_alloc(s, VFE_PF_IOVA_ADMIN, 2 * PAGE, &a), 0);
    assert_int_equal(vfe_pf_iova_alloc(s, 1, PAGE, &v1), 0);
    assert_int_equal(vfe_pf_iova_alloc(s, 2, PAGE, &v2), 0);
    assert_int_equal(vfe_pf_iova_map(s, VFE_PF_IOVA_ADMIN, fd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_pf_iova_map(s, 2, fd, 0, VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_pf_iova_release(s, 1), 0);   /* a hole stays a hole */
    size_t len;
    assert_int_equal(vfe_pf_iova_export(s, NULL, 0, &len), -ENOSPC);
    assert_int_equal(len, sizeof(struct head) + 2 * sizeof(struct win));
    struct blob b;
    assert_int_equal(vfe_pf_iova_export(s, &b, sizeof(b), &len), 0);
    unsigned calls = pf.map_calls + pf.unmap_calls;

    struct vfe_pf_iova *n = vfe_pf_iova_import(&pf.t, &b, len);
    assert_non_null(n);
    assert_int_equal(pf.map_calls + pf.unmap_calls, calls);   /* no device call */
    uint64_t iova, l;
    bool mapped;
    assert_int_equal(vfe_pf_iova_windows(n), 2);
    assert_int_equal(vfe_pf_iova_window(n, VFE_PF_IOVA_ADMIN, &iova, &l, &mapped), 0);
    assert_true(iova == a && l == 2 * PAGE && mapped);
    assert_int_equal(vfe_pf_iova_window(n, 2, &iova, &l, &mapped), 0);
    assert_true(iova == v2 && l == PAGE && mapped);
    assert_int_equal(vfe_pf_iova_window(n, 1, NULL, NULL, NULL), -ENOENT);
    /* the imported space goes on: first fit reuses the hole, release unmaps on the device */
    assert_int_equal(vfe_pf_iova_alloc(n, 3, PAGE, &iova), 0);
    assert_int_equal(iova, v1);
    assert_int_equal(vfe_pf_iova_alloc(n, 2, PAGE, &iova), -EEXIST);
    assert_int_equal(vfe_pf_iova_release(n, 2), 0);
    assert_false(has_map(&pf, v2, PAGE));
    assert_int_equal(vfe_pf_iova_release(n, 3), 0);
    assert_int_equal(vfe_pf_iova_release(n, VFE_PF_IOVA_ADMIN), 0);
    assert_int_equal(pf.nmaps, 0);
    vfe_pf_iova_destroy(n);
    /* the old space's records are stale now: its release must not fail on what the device lacks */
    assert_int_equal(vfe_pf_iova_release(s, 2), 0);
    assert_int_equal(vfe_pf_iova_release(s, VFE_PF_IOVA_ADMIN), 0);
    assert_int_equal(vfe_pf_iova_windows(s), 0);
    vfe_pf_iova_destroy(s);
    close(fd);
}

static struct blob base_blob(void)
{
    struct blob b = {.h = {.magic = VFE_PF_IOVA_BLOB_MAGIC, .version = VFE_PF_IOVA_BLOB_VERSION, .nwin = 2,
                           .base = 1 * MB, .end = 2 * MB},
                     .w = {{1 * MB, 2 * PAGE, VFE_PF_IOVA_ADMIN, 1}, {1 * MB + 3 * PAGE, PAGE, 5, 0}}};
    return b;
}

static void refused(struct fake_dev *pf, const struct blob *b, size_t len, int err)
{
    errno = 0;
    assert_null(vfe_pf_iova_import(&pf->t, b, len));
    assert_int_equal(errno, err);
}

static void test_pf_iova_bad_blobs(void **state)
{
    struct fake_dev pf;
    fake_init(&pf, "pf");
    struct blob b = base_blob();
    struct vfe_pf_iova *s = vfe_pf_iova_import(&pf.t, &b, blob_len(&b));
    assert_non_null(s);   /* the base is good */
    vfe_pf_iova_destroy(s);
    assert_int_equal(pf.map_calls + pf.unmap_calls, 1);   /* destroy unmaps the mapped admin window */

#define BAD(stmt, err) do { b = base_blob(); stmt; refused(&pf, &b, blob_len(&b), err); } while (0)
    BAD(b.h.magic ^= 1, EPROTO);
    BAD(b.h.version++, EPROTO);   /* newer: never half applied */
    BAD(b.h.reserved = 1, EINVAL);
    BAD(b.h.base = 0, EINVAL);
    BAD(b.h.base = 1 * MB + 1, EINVAL);
    BAD(b.h.end = b.h.base, EINVAL);
    BAD(b.w[0].iova = 1 * MB - PAGE, EINVAL);            /* below the space */
    BAD(b.w[0].iova += 8, EINVAL);                       /* not page aligned */
    BAD(b.w[0].len = PAGE + 1, EINVAL);
    BAD(b.w[0].len = 0, EINVAL);
    BAD(b.w[1].iova = 1 * MB + PAGE, EINVAL);            /* overlaps window 0 */
    BAD(b.w[1].iova = 1 * MB + 2 * PAGE, EINVAL);        /* touches: no guard page */
    BAD((b.w[0] = b.w[1], b.w[1] = base_blob().w[0]), EINVAL);   /* not sorted */
    BAD(b.w[1].iova = 2 * MB - PAGE, EINVAL);            /* its guard page past the end */
    BAD(b.w[1].iova = 2 * MB, EINVAL);                   /* outside */
    BAD(b.w[1].len = ~0ull - PAGE + 1, EINVAL);          /* wraps */
    BAD(b.w[1].user = VFE_PF_IOVA_ADMIN, EINVAL);        /* one user, two windows */
    BAD(b.w[1].user = VFE_PF_IOVA_MAX_VF + 1, EINVAL);
    BAD(b.w[1].flags = 2, EINVAL);
    BAD(b.w[1].user = 0xffffffffu, EINVAL);              /* reserved must be mapped */
    b = base_blob();
    refused(&pf, &b, blob_len(&b) - 1, EPROTO);
    refused(&pf, &b, blob_len(&b) + sizeof(struct win), EPROTO);
    refused(&pf, &b, 3, EPROTO);
    b.h.nwin = 0x7fffffff;
    refused(&pf, &b, sizeof(b), EPROTO);
    assert_int_equal(pf.map_calls + pf.unmap_calls, 1);

    b = base_blob();   /* a reserved (unmap failed) window survives */
    b.w[1].user = 0xffffffffu;
    b.w[1].flags = 1;
    s = vfe_pf_iova_import(&pf.t, &b, blob_len(&b));
    assert_non_null(s);
    assert_int_equal(vfe_pf_iova_windows(s), 2);
    uint64_t iova;
    assert_int_equal(vfe_pf_iova_alloc(s, 5, PAGE, &iova), 0);
    assert_true(iova != b.w[1].iova);
    assert_int_equal(vfe_pf_iova_release(s, 5), 0);
    assert_int_equal(vfe_pf_iova_release(s, VFE_PF_IOVA_ADMIN), 0);
    vfe_pf_iova_destroy(s);
}

static void test_domain_adopt_no_replay(void **state)
{
    struct fake_dev a, b, c;
    fake_init(&a, "a");
    fake_init(&b, "b");
    fake_init(&c, "c");
    int fd = mem(), h1, h2;
    /* the devices kept their tables across the crash */
    assert_int_equal(fake_map(&a.t, 0, 2 * MB, fd, 0, 3), 0);
    assert_int_equal(fake_map(&b.t, 0, 2 * MB, fd, 0, 3), 0);
    a.map_calls = b.map_calls = 0;
    struct vfe_dma_domain *d = vfe_dma_domain_join_adopted("vm-adopt", &a.t);
    assert_non_null(d);
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h1, 0, 2 * MB, fd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_dma_domain_join_adopted("vm-adopt", &b.t), d);
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h2, 0, 2 * MB, fd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(a.map_calls + b.map_calls + a.unmap_calls + b.unmap_calls, 0);
    assert_int_equal(vfe_dma_domain_maps(d), 1);
    /* the caller's fd is not the domain's: a late plain joiner is replayed from the domain's dup */
    close(fd);
    assert_int_equal(vfe_dma_domain_join("vm-adopt", &c.t), d);
    assert_int_equal(c.map_calls, 1);
    assert_true(has_map(&c, 0, 2 * MB));
    /* refusals: nothing changes */
    int fd2 = mem();
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h1, MB, 2 * MB, fd2, 0, VFE_DMA_READ), -EEXIST);
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h1, 4 * MB, 0, fd2, 0, VFE_DMA_READ), -EINVAL);
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h1, ~0ull - PAGE, 2 * PAGE, fd2, 0, VFE_DMA_READ), -EINVAL);
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h1, 4 * MB, MB, fd2, 0, 0), -EINVAL);
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h1, 4 * MB, MB, fd2, 0, 8), -EINVAL);
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h1, 4 * MB, MB, -1, 0, VFE_DMA_READ), -EBADF);
    assert_int_equal(vfe_dma_domain_maps(d), 1);
    /* adopt_map with a plain member present: the plain member gets it, the adopted ones do not */
    assert_int_equal(vfe_dma_domain_adopt_map(d, &h1, 4 * MB, MB, fd2, 0, VFE_DMA_READ), 0);
    assert_int_equal(a.map_calls + b.map_calls, 0);
    assert_true(has_map(&c, 4 * MB, MB));
    /* normal life goes on: a new map reaches all three */
    assert_int_equal(vfe_dma_domain_map(d, &h1, 8 * MB, MB, fd2, 0, VFE_DMA_READ), 0);
    assert_true(has_map(&a, 8 * MB, MB) && has_map(&b, 8 * MB, MB) && has_map(&c, 8 * MB, MB));
    vfe_dma_domain_unmap(d, &h1, 0, 2 * MB);
    assert_true(has_map(&a, 0, 2 * MB));   /* h2 still holds it */
    vfe_dma_domain_unmap(d, &h2, 0, 2 * MB);
    assert_false(has_map(&a, 0, 2 * MB) || has_map(&b, 0, 2 * MB) || has_map(&c, 0, 2 * MB));
    vfe_dma_domain_unmap(d, &h1, 4 * MB, MB);
    vfe_dma_domain_unmap(d, &h1, 8 * MB, MB);
    assert_int_equal(a.nmaps + b.nmaps + c.nmaps, 0);
    vfe_dma_domain_leave(d, &c.t);
    vfe_dma_domain_leave(d, &b.t);
    vfe_dma_domain_leave(d, &a.t);
    close(fd2);
    assert_null(vfe_dma_domain_join_adopted("x", NULL));
}

/* Crash between a device map and its record: the map is applied again. */
static void test_reapply_after_crash(void **state)
{
    struct fake_dev a;
    fake_init(&a, "a");
    int fd = mem(), h;
    assert_int_equal(fake_map(&a.t, 0, MB, fd, 0, 1), 0);          /* leftover identical */
    assert_int_equal(fake_map(&a.t, 2 * MB, PAGE, fd, 0, 1), 0);   /* leftover, different range */
    struct vfe_dma_domain *d = vfe_dma_domain_join(NULL, &a.t);
    assert_non_null(d);
    assert_int_equal(vfe_dma_domain_map(d, &h, 0, MB, fd, 0, VFE_DMA_READ), 0);
    assert_true(has_map(&a, 0, MB));
    assert_int_equal(vfe_dma_domain_maps(d), 1);
    /* an overlapping but different leftover is not ours to remove */
    assert_int_equal(vfe_dma_domain_map(d, &h, 2 * MB, MB, fd, 0, VFE_DMA_READ), -EEXIST);
    assert_true(has_map(&a, 2 * MB, PAGE));
    /* unmap of what the device lost is done, not an error */
    assert_int_equal(fake_unmap(&a.t, 0, MB), 0);
    assert_int_equal(vfe_dma_apply_unmap(&a.t, 0, MB), 0);
    assert_int_equal(vfe_dma_apply_unmap(&a.t, 8 * MB, MB), 0);
    vfe_dma_domain_unmap(d, &h, 0, MB);
    assert_int_equal(vfe_dma_domain_maps(d), 0);
    /* the same map twice through apply: still one map */
    assert_int_equal(vfe_dma_apply_map(&a.t, 4 * MB, MB, fd, 0, VFE_DMA_READ), 0);
    assert_int_equal(vfe_dma_apply_map(&a.t, 4 * MB, MB, fd, 0, VFE_DMA_READ), 0);
    assert_int_equal(a.nmaps, 2);
    vfe_dma_domain_leave(d, &a.t);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pf_iova_round_trip),
        cmocka_unit_test(test_pf_iova_bad_blobs),
        cmocka_unit_test(test_domain_adopt_no_replay),
        cmocka_unit_test(test_reapply_after_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
