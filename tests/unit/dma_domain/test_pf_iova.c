/*
 * The PF's IOVA space: windows are page aligned, inside the space, apart by a
 * guard page, one per user; exhaustion, release and reuse; bad sizes and
 * users refused with their errnos; the device's DMA table is exactly what the
 * space mapped, and a range the device would not unmap is never handed out again.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "drivers/bus/vfio/vfe_pf_iova.h"

#define MAX_MAPS 64
#define PAGE VFE_PF_IOVA_PAGE
#define KB 1024ull
#define MB (1024ull * KB)
#define GB (1024ull * MB)

/* The PF as the device sees it: its DMA table. */
struct fake_pf {
    struct vfe_transport t;
    struct { uint64_t iova, len, offset; } maps[MAX_MAPS];
    unsigned nmaps;
    int fail_map, fail_unmap;   /* errno for the next call */
};

static int fake_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot)
{
    struct fake_pf *f = (struct fake_pf *)t;
    if (f->fail_map) {
        int e = f->fail_map;
        f->fail_map = 0;
        return -e;
    }
    for (unsigned i = 0; i < f->nmaps; i++)
        if (iova < f->maps[i].iova + f->maps[i].len && f->maps[i].iova < iova + len)
            return -EEXIST;
    if (f->nmaps == MAX_MAPS || fd < 0)
        return -EINVAL;
    f->maps[f->nmaps].iova = iova;
    f->maps[f->nmaps].len = len;
    f->maps[f->nmaps++].offset = offset;
    return 0;
}

static int fake_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len)
{
    struct fake_pf *f = (struct fake_pf *)t;
    if (f->fail_unmap) {
        int e = f->fail_unmap;
        f->fail_unmap = 0;
        return -e;
    }
    for (unsigned i = 0; i < f->nmaps; i++)
        if (f->maps[i].iova == iova && f->maps[i].len == len) {
            f->maps[i] = f->maps[--f->nmaps];
            return 0;
        }
    return -ENOENT;
}

static const struct vfe_transport_ops fake_ops = {.dma_map = fake_map, .dma_unmap = fake_unmap};

static void fake_init(struct fake_pf *f)
{
    memset(f, 0, sizeof(*f));
    f->t.ops = &fake_ops;
    snprintf(f->t.bdf, sizeof(f->t.bdf), "0000:00:04.0");
}

/* A PF in posted mode: map/unmap requests wait in `sent` until the test
 * answers them (in order, as the device does), with the errno the test set. */
struct posted_pf {
    struct fake_pf f;
    struct {
        bool map, cancelled;
        uint64_t iova, len, offset;
        int fd;
        vfe_write_cb cb;
        void *ctx;
    } sent[16];
    unsigned nsent, calls;
    bool not_posted;   /* the async ops answer -EOPNOTSUPP */
};

static int posted_map_async(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset,
                            uint32_t prot, vfe_write_cb cb, void *ctx)
{
    struct posted_pf *p = (struct posted_pf *)t;
    if (p->not_posted)
        return -EOPNOTSUPP;
    assert_true(p->nsent < 16);
    p->sent[p->nsent++] = (typeof(p->sent[0])){.map = true, .iova = iova, .len = len, .offset = offset, .fd = fd,
                                               .cb = cb, .ctx = ctx};
    return 0;
}

static int posted_unmap_async(struct vfe_transport *t, uint64_t iova, uint64_t len, vfe_write_cb cb, void *ctx)
{
    struct posted_pf *p = (struct posted_pf *)t;
    if (p->not_posted)
        return -EOPNOTSUPP;
    assert_true(p->nsent < 16);
    p->sent[p->nsent++] = (typeof(p->sent[0])){.iova = iova, .len = len, .cb = cb, .ctx = ctx};
    return 0;
}

static void posted_cancel(struct vfe_transport *t, void *ctx)
{
    struct posted_pf *p = (struct posted_pf *)t;
    for (unsigned i = 0; i < p->nsent; i++)
        if (p->sent[i].ctx == ctx)
            p->sent[i].cancelled = true;
}

static const struct vfe_transport_ops posted_ops = {.dma_map = fake_map, .dma_unmap = fake_unmap,
                                                    .dma_map_async = posted_map_async,
                                                    .dma_unmap_async = posted_unmap_async,
                                                    .cancel_reads = posted_cancel};

static void posted_init(struct posted_pf *p)
{
    memset(p, 0, sizeof(*p));
    fake_init(&p->f);
    p->f.t.ops = &posted_ops;
}

/* The device answers the oldest request (err: its refusal, 0: it does it). */
static void posted_answer(struct posted_pf *p, int err)
{
    assert_true(p->nsent > 0);
    typeof(p->sent[0]) r = p->sent[0];
    memmove(&p->sent[0], &p->sent[1], --p->nsent * sizeof(r));
    if (!err)
        err = r.map ? fake_map(&p->f.t, r.iova, r.len, r.fd, r.offset, VFE_DMA_WRITE) : fake_unmap(&p->f.t, r.iova, r.len);
    if (err == -ENOENT && !r.map)
        err = 0;   /* "not mapped" is done, as the vfio-user client has it */
    if (!r.cancelled)
        r.cb(r.ctx, err);
}

static void posted_answer_all(struct posted_pf *p)
{
    while (p->nsent)
        posted_answer(p, 0);
}

struct map_done { int calls, err; };

static void on_mapped(void *ctx, int err)
{
    struct map_done *d = ctx;
    d->calls++;
    d->err = err;
}

static bool device_has(const struct fake_pf *f, uint64_t iova, uint64_t len)
{
    for (unsigned i = 0; i < f->nmaps; i++)
        if (f->maps[i].iova == iova && f->maps[i].len == len)
            return true;
    return false;
}

static int mem_fd(void)
{
    int fd = memfd_create("pf-iova", MFD_CLOEXEC);
    assert_true(fd >= 0 && ftruncate(fd, (off_t)(64 * MB)) == 0);
    return fd;
}

/* Every window held: in [base, end), page aligned, and a guard page away from every other. */
static void check_layout(const struct vfe_pf_iova *s, uint64_t base, uint64_t end)
{
    uint64_t iova[65], len[65];
    unsigned n = 0;
    for (unsigned u = 0; u <= 64; u++)
        if (vfe_pf_iova_window(s, u, &iova[n], &len[n], NULL) == 0)
            n++;
    for (unsigned i = 0; i < n; i++) {
        assert_true(iova[i] >= base && iova[i] % PAGE == 0 && len[i] % PAGE == 0 && len[i] > 0);
        assert_true(iova[i] + len[i] + PAGE <= end);
        for (unsigned j = 0; j < n; j++)
            if (i != j)
                assert_true(iova[i] + len[i] + PAGE <= iova[j] || iova[j] + len[j] + PAGE <= iova[i]);
    }
}

/* The default space: the admin queue and two VF logs get windows apart, mapped as asked. */
static void default_layout(void **state)
{
    struct fake_pf pf;
    fake_init(&pf);
    int fd = mem_fd();
    struct vfe_pf_iova *s = vfe_pf_iova_create(&pf.t);
    assert_non_null(s);
    uint64_t admin, log1, log2, len;
    assert_int_equal(vfe_pf_iova_alloc(s, VFE_PF_IOVA_ADMIN, 1200 * KB, &admin), 0);
    assert_int_equal(vfe_pf_iova_alloc(s, 1, 5000, &log1), 0);
    assert_int_equal(vfe_pf_iova_alloc(s, 2, 4 * GB, &log2), 0);
    assert_int_equal(admin, VFE_PF_IOVA_BASE);
    assert_int_equal(vfe_pf_iova_window(s, 1, NULL, &len, NULL), 0);
    assert_int_equal(len, 2 * PAGE);   /* rounded up to pages */
    check_layout(s, VFE_PF_IOVA_BASE, VFE_PF_IOVA_END);
    assert_int_equal(pf.nmaps, 0);     /* reserving maps nothing */

    assert_int_equal(vfe_pf_iova_map(s, VFE_PF_IOVA_ADMIN, fd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_pf_iova_map(s, 1, fd, 8 * MB, VFE_DMA_WRITE), 0);
    assert_true(device_has(&pf, admin, 1200 * KB) && device_has(&pf, log1, 2 * PAGE));
    assert_int_equal(pf.maps[1].offset, 8 * MB);
    bool mapped;
    assert_int_equal(vfe_pf_iova_window(s, 2, NULL, NULL, &mapped), 0);
    assert_false(mapped);

    /* release unmaps from the device */
    assert_int_equal(vfe_pf_iova_release(s, 1), 0);
    assert_false(device_has(&pf, log1, 2 * PAGE));
    assert_int_equal(vfe_pf_iova_window(s, 1, NULL, NULL, NULL), -ENOENT);
    assert_int_equal(vfe_pf_iova_release(s, 2), 0);   /* never mapped: nothing to unmap */
    assert_int_equal(vfe_pf_iova_release(s, VFE_PF_IOVA_ADMIN), 0);
    assert_int_equal(pf.nmaps, 0);
    assert_int_equal(vfe_pf_iova_windows(s), 0);
    vfe_pf_iova_destroy(s);
    close(fd);
}

/* A small space fills up; a released window's range is handed out again. */
static void exhaustion_and_reuse(void **state)
{
    struct fake_pf pf;
    fake_init(&pf);
    const uint64_t base = 1 * MB, end = base + 16 * PAGE;   /* room for 8 one-page windows with guards */
    struct vfe_pf_iova *s = vfe_pf_iova_create_in(&pf.t, base, end);
    assert_non_null(s);
    uint64_t iova[9];
    for (unsigned u = 0; u < 8; u++) {
        assert_int_equal(vfe_pf_iova_alloc(s, u, PAGE, &iova[u]), 0);
        assert_int_equal(iova[u], base + 2 * PAGE * u);
    }
    check_layout(s, base, end);
    assert_int_equal(vfe_pf_iova_alloc(s, 8, 1, &iova[8]), -ENOSPC);
    assert_int_equal(vfe_pf_iova_windows(s), 8);

    /* two neighbours go: a window of three pages fits their gap, first fit */
    assert_int_equal(vfe_pf_iova_release(s, 3), 0);
    assert_int_equal(vfe_pf_iova_release(s, 4), 0);
    assert_int_equal(vfe_pf_iova_alloc(s, 8, 4 * PAGE, &iova[8]), -ENOSPC);
    assert_int_equal(vfe_pf_iova_alloc(s, 8, 3 * PAGE, &iova[8]), 0);
    assert_int_equal(iova[8], iova[3]);
    check_layout(s, base, end);
    assert_int_equal(vfe_pf_iova_alloc(s, 3, 1, &iova[3]), -ENOSPC);

    /* a lone page freed: the next one-page window takes exactly that range */
    assert_int_equal(vfe_pf_iova_release(s, 0), 0);
    assert_int_equal(vfe_pf_iova_alloc(s, 3, PAGE, &iova[3]), 0);
    assert_int_equal(iova[3], base);
    check_layout(s, base, end);
    for (unsigned u = 1; u <= 8; u++)
        if (u != 4)
            assert_int_equal(vfe_pf_iova_release(s, u), 0);
    assert_int_equal(vfe_pf_iova_windows(s), 0);
    /* all of it back: the largest window the space can hold fits, one page more does not */
    assert_int_equal(vfe_pf_iova_alloc(s, 1, 15 * PAGE, &iova[1]), 0);
    assert_int_equal(vfe_pf_iova_release(s, 1), 0);
    assert_int_equal(vfe_pf_iova_alloc(s, 1, 15 * PAGE + 1, &iova[1]), -E2BIG);
    vfe_pf_iova_destroy(s);
}

/* Bad sizes, users and spaces. */
static void bad_input(void **state)
{
    struct fake_pf pf;
    fake_init(&pf);
    int fd = mem_fd();
    uint64_t iova = 0x1234;
    struct vfe_pf_iova *s = vfe_pf_iova_create_in(&pf.t, 1 * MB, 2 * MB);
    assert_non_null(s);
    assert_int_equal(vfe_pf_iova_alloc(s, 1, 0, &iova), -EINVAL);
    assert_int_equal(vfe_pf_iova_alloc(s, 1, 1 * MB, &iova), -E2BIG);   /* no room for its guard page */
    assert_int_equal(vfe_pf_iova_alloc(s, 1, UINT64_MAX, &iova), -E2BIG);
    assert_int_equal(vfe_pf_iova_alloc(s, 1, UINT64_MAX - PAGE + 2, &iova), -E2BIG);   /* would wrap when rounded */
    assert_int_equal(vfe_pf_iova_alloc(s, VFE_PF_IOVA_MAX_VF + 1, PAGE, &iova), -EINVAL);
    assert_int_equal(vfe_pf_iova_alloc(s, UINT32_MAX, PAGE, &iova), -EINVAL);
    assert_int_equal(vfe_pf_iova_alloc(s, 1, PAGE, NULL), -EINVAL);
    assert_int_equal(vfe_pf_iova_alloc(NULL, 1, PAGE, &iova), -EINVAL);
    assert_int_equal(iova, 0x1234);   /* untouched by refusals */
    assert_int_equal(vfe_pf_iova_windows(s), 0);

    /* one window per user: a second is refused, the first stays as it was */
    uint64_t first, again = 0;
    assert_int_equal(vfe_pf_iova_alloc(s, VFE_PF_IOVA_MAX_VF, PAGE, &first), 0);
    assert_int_equal(vfe_pf_iova_alloc(s, VFE_PF_IOVA_MAX_VF, PAGE, &again), -EEXIST);
    assert_int_equal(again, 0);
    assert_int_equal(vfe_pf_iova_windows(s), 1);

    /* mapping and releasing what is not held */
    assert_int_equal(vfe_pf_iova_map(s, 7, fd, 0, VFE_DMA_READ), -ENOENT);
    assert_int_equal(vfe_pf_iova_map(s, VFE_PF_IOVA_MAX_VF + 1, fd, 0, VFE_DMA_READ), -ENOENT);
    assert_int_equal(vfe_pf_iova_release(s, 7), -ENOENT);
    assert_int_equal(vfe_pf_iova_release(s, UINT32_MAX), -ENOENT);
    assert_int_equal(vfe_pf_iova_map(s, VFE_PF_IOVA_MAX_VF, fd, 0, VFE_DMA_READ), 0);
    assert_int_equal(vfe_pf_iova_map(s, VFE_PF_IOVA_MAX_VF, fd, 0, VFE_DMA_READ), -EBUSY);
    assert_int_equal(pf.nmaps, 1);
    assert_int_equal(vfe_pf_iova_release(s, VFE_PF_IOVA_MAX_VF), 0);
    assert_int_equal(vfe_pf_iova_release(s, VFE_PF_IOVA_MAX_VF), -ENOENT);
    assert_int_equal(pf.nmaps, 0);
    vfe_pf_iova_destroy(s);

    /* spaces that cannot be */
    assert_null(vfe_pf_iova_create_in(&pf.t, 0, 1 * MB));
    assert_int_equal(errno, EINVAL);
    assert_null(vfe_pf_iova_create_in(&pf.t, 2 * MB, 1 * MB));
    assert_null(vfe_pf_iova_create_in(&pf.t, 1 * MB, 1 * MB));
    assert_null(vfe_pf_iova_create_in(&pf.t, 1 * MB + 1, 2 * MB));
    assert_null(vfe_pf_iova_create_in(NULL, 1 * MB, 2 * MB));
    assert_null(vfe_pf_iova_create(NULL));
    vfe_pf_iova_destroy(NULL);
    close(fd);
}

/* The device failing: a refused map leaves the window reserved and unmapped; a
 * refused unmap keeps the range out of use until destroy, which unmaps it. */
static void device_failures(void **state)
{
    struct fake_pf pf;
    fake_init(&pf);
    int fd = mem_fd();
    const uint64_t base = 1 * MB;
    struct vfe_pf_iova *s = vfe_pf_iova_create_in(&pf.t, base, base + 8 * PAGE);
    uint64_t a, b;
    bool mapped = true;
    assert_int_equal(vfe_pf_iova_alloc(s, 1, PAGE, &a), 0);
    pf.fail_map = EIO;
    assert_int_equal(vfe_pf_iova_map(s, 1, fd, 0, VFE_DMA_WRITE), -EIO);
    assert_int_equal(vfe_pf_iova_window(s, 1, NULL, NULL, &mapped), 0);
    assert_false(mapped);
    assert_int_equal(pf.nmaps, 0);
    assert_int_equal(vfe_pf_iova_map(s, 1, fd, 0, VFE_DMA_WRITE), 0);   /* and it can be tried again */

    pf.fail_unmap = EIO;
    assert_int_equal(vfe_pf_iova_release(s, 1), -EIO);
    assert_int_equal(vfe_pf_iova_window(s, 1, NULL, NULL, NULL), -ENOENT);   /* the user holds nothing */
    assert_int_equal(vfe_pf_iova_windows(s), 1);                             /* the range stays reserved */
    assert_true(device_has(&pf, a, PAGE));
    /* the user may start again; it gets another range, the device takes the map */
    assert_int_equal(vfe_pf_iova_alloc(s, 1, PAGE, &b), 0);
    assert_int_not_equal(a, b);
    assert_int_equal(vfe_pf_iova_map(s, 1, fd, 0, VFE_DMA_WRITE), 0);
    check_layout(s, base, base + 8 * PAGE);
    /* a user that never let go: destroy unmaps it and the reserved range */
    vfe_pf_iova_destroy(s);
    assert_int_equal(pf.nmaps, 0);
    close(fd);
}

/* Random allocations and releases: the device never sees two maps that overlap
 * (it would refuse them), and what is mapped is what the users hold. */
static void random_churn(void **state)
{
    struct fake_pf pf;
    fake_init(&pf);
    int fd = mem_fd();
    const uint64_t base = 16 * MB, end = base + 256 * PAGE;
    struct vfe_pf_iova *s = vfe_pf_iova_create_in(&pf.t, base, end);
    bool held[17] = {false};
    unsigned nheld = 0, full = 0;
    srand(42);
    for (int step = 0; step < 20000; step++) {
        unsigned u = (unsigned)rand() % 17;
        if (held[u]) {
            assert_int_equal(vfe_pf_iova_release(s, u), 0);
            held[u] = false;
            nheld--;
            continue;
        }
        uint64_t iova, len = 1 + (uint64_t)rand() % (40 * PAGE);
        int rc = vfe_pf_iova_alloc(s, u, len, &iova);
        if (rc == -ENOSPC) {
            full++;
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(vfe_pf_iova_map(s, u, fd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
        held[u] = true;
        nheld++;
        assert_int_equal(pf.nmaps, nheld);
    }
    check_layout(s, base, end);
    assert_true(full > 0);   /* the space did fill up along the way */
    for (unsigned u = 0; u < 17; u++)
        if (held[u])
            assert_int_equal(vfe_pf_iova_release(s, u), 0);
    assert_int_equal(pf.nmaps, 0);
    vfe_pf_iova_destroy(s);
    close(fd);
}

/* Posted PF: a map is sent and answered later, its callback runs once from the
 * answer, never inside the call; a refusal leaves the window the user's, unmapped. */
static void async_map(void **state)
{
    struct posted_pf p;
    posted_init(&p);
    int fd = mem_fd();
    const uint64_t base = 1 * MB;
    struct vfe_pf_iova *s = vfe_pf_iova_create_in(&p.f.t, base, base + 16 * PAGE);
    struct map_done d = {0};
    uint64_t a, b;
    bool mapped = false;
    assert_int_equal(vfe_pf_iova_alloc(s, 1, PAGE, &a), 0);
    assert_int_equal(vfe_pf_iova_map_async(s, 1, fd, 0, VFE_DMA_WRITE, on_mapped, &d), 1);
    assert_int_equal(d.calls, 0);
    assert_int_equal(p.nsent, 1);
    assert_int_equal(vfe_pf_iova_window(s, 1, NULL, NULL, &mapped), 0);
    assert_true(mapped);   /* sent: an export must count it in the device */
    assert_int_equal(vfe_pf_iova_map_async(s, 1, fd, 0, VFE_DMA_WRITE, on_mapped, &d), -EBUSY);
    posted_answer(&p, 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.err, 0);
    assert_true(device_has(&p.f, a, PAGE));

    /* refused: the window stays user 2's, unmapped, and can be released at once */
    assert_int_equal(vfe_pf_iova_alloc(s, 2, PAGE, &b), 0);
    assert_int_equal(vfe_pf_iova_map_async(s, 2, fd, 0, VFE_DMA_WRITE, on_mapped, &d), 1);
    posted_answer(&p, -EIO);
    assert_int_equal(d.calls, 2);
    assert_int_equal(d.err, -EIO);
    assert_int_equal(vfe_pf_iova_window(s, 2, NULL, NULL, &mapped), 0);
    assert_false(mapped);
    assert_int_equal(vfe_pf_iova_release(s, 2), 0);
    assert_int_equal(p.nsent, 0);   /* nothing to unmap */
    assert_int_equal(vfe_pf_iova_windows(s), 1);

    /* bad input */
    assert_int_equal(vfe_pf_iova_map_async(s, 7, fd, 0, VFE_DMA_WRITE, on_mapped, &d), -ENOENT);
    assert_int_equal(vfe_pf_iova_alloc(s, 3, PAGE, &b), 0);
    assert_int_equal(vfe_pf_iova_map_async(s, 3, fd, 0, VFE_DMA_WRITE, NULL, NULL), -EINVAL);
    assert_int_equal(vfe_pf_iova_map_async(NULL, 3, fd, 0, VFE_DMA_WRITE, on_mapped, &d), -ENOENT);
    assert_int_equal(p.nsent, 0);

    /* not posted (kernel VFIO): answered inside, the callback never runs */
    p.not_posted = true;
    assert_int_equal(vfe_pf_iova_map_async(s, 3, fd, 0, VFE_DMA_WRITE, on_mapped, &d), 0);
    assert_int_equal(d.calls, 2);
    assert_int_equal(vfe_pf_iova_release(s, 3), 0);
    assert_int_equal(vfe_pf_iova_release(s, 1), 0);
    assert_int_equal(p.f.nmaps, 0);
    vfe_pf_iova_destroy(s);
    close(fd);
}

/* Posted release: the range is never handed out before the device let go of
 * it; a release or cancel during the map silences its callback; destroy
 * forgets every answer outstanding. */
static void async_release(void **state)
{
    struct posted_pf p;
    posted_init(&p);
    int fd = mem_fd();
    const uint64_t base = 1 * MB, end = base + 4 * PAGE;   /* room for two windows of a page */
    struct vfe_pf_iova *s = vfe_pf_iova_create_in(&p.f.t, base, end);
    struct map_done d = {0};
    uint64_t a, b;
    assert_int_equal(vfe_pf_iova_alloc(s, 1, PAGE, &a), 0);
    assert_int_equal(vfe_pf_iova_map_async(s, 1, fd, 0, VFE_DMA_WRITE, on_mapped, &d), 1);
    assert_int_equal(vfe_pf_iova_release(s, 1), 0);   /* while its map is in flight */
    assert_int_equal(vfe_pf_iova_window(s, 1, NULL, NULL, NULL), -ENOENT);
    assert_int_equal(vfe_pf_iova_windows(s), 1);       /* reserved: the unmap is not answered */
    assert_int_equal(vfe_pf_iova_alloc(s, 1, PAGE, &b), 0);
    assert_int_not_equal(a, b);
    assert_int_equal(vfe_pf_iova_release(s, 1), 0);   /* never mapped: gone at once */
    posted_answer_all(&p);
    assert_int_equal(d.calls, 0);                      /* the released map's callback never ran */
    assert_int_equal(vfe_pf_iova_windows(s), 0);
    assert_int_equal(p.f.nmaps, 0);
    assert_int_equal(vfe_pf_iova_alloc(s, 1, PAGE, &b), 0);
    assert_int_equal(a, b);                            /* free again once acknowledged */

    /* a refused unmap: reserved until destroy, which unmaps it */
    assert_int_equal(vfe_pf_iova_map_async(s, 1, fd, 0, VFE_DMA_WRITE, on_mapped, &d), 1);
    posted_answer(&p, 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(vfe_pf_iova_release(s, 1), 0);
    posted_answer(&p, -EIO);
    assert_int_equal(vfe_pf_iova_windows(s), 1);
    assert_int_equal(vfe_pf_iova_alloc(s, 2, PAGE, &b), 0);
    assert_int_not_equal(a, b);   /* the refused range is the device's still */

    /* cancel (a VF abandoned to a successor): no callback, the window and its map stay */
    struct posted_pf q;
    posted_init(&q);
    struct vfe_pf_iova *s2 = vfe_pf_iova_create_in(&q.f.t, base, end);
    struct map_done d2 = {0};
    bool mapped = false;
    assert_int_equal(vfe_pf_iova_alloc(s2, 5, PAGE, &b), 0);
    assert_int_equal(vfe_pf_iova_map_async(s2, 5, fd, 0, VFE_DMA_WRITE, on_mapped, &d2), 1);
    vfe_pf_iova_cancel(s2, 5);
    posted_answer(&q, 0);
    assert_int_equal(d2.calls, 0);
    assert_int_equal(vfe_pf_iova_window(s2, 5, NULL, NULL, &mapped), 0);
    assert_true(mapped);
    /* destroy with an unmap in flight: its answer is forgotten */
    uint64_t c;
    assert_int_equal(vfe_pf_iova_release(s2, 5), 0);
    assert_int_equal(vfe_pf_iova_alloc(s2, 6, PAGE, &c), 0);
    assert_int_not_equal(b, c);
    vfe_pf_iova_destroy_quiet(s2);
    assert_int_equal(q.nsent, 1);
    assert_true(q.sent[0].cancelled);

    p.not_posted = true;   /* destroy's own unmaps answered inside */
    vfe_pf_iova_destroy(s);
    assert_int_equal(p.f.nmaps, 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_layout), cmocka_unit_test(exhaustion_and_reuse), cmocka_unit_test(bad_input),
        cmocka_unit_test(device_failures), cmocka_unit_test(random_churn), cmocka_unit_test(async_map),
        cmocka_unit_test(async_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
