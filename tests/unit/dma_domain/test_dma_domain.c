/*
 * DMA domains: VFs of one VM share maps (mapped once per member, replayed to
 * late joiners, dropped with their last holder), a newer memory table
 * replaces an overlapping region (but a replacement that fails leaves the
 * old region mapped), a failing member rolls a map back everywhere, a domain
 * leaves nothing allocated behind, and private domains stay apart.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "drivers/bus/vfio/vfe_dma_domain.h"

#define MAX_MAPS 16

/* A device whose DMA table is what the domain gave it. */
struct fake_dev {
    struct vfe_transport t;
    struct { uint64_t iova, len, offset; int fd; } maps[MAX_MAPS];
    unsigned nmaps, map_calls, unmap_calls;
    int fail_map;   /* errno to fail the next map with */
};

static int fake_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot)
{
    struct fake_dev *f = (struct fake_dev *)t;
    f->map_calls++;
    if (f->fail_map) {
        int e = f->fail_map;
        f->fail_map = 0;
        return -e;
    }
    for (unsigned i = 0; i < f->nmaps; i++)
        if (iova < f->maps[i].iova + f->maps[i].len && f->maps[i].iova < iova + len)
            return -EEXIST;   /* a device refuses overlapping maps */
    if (f->nmaps == MAX_MAPS || fcntl(fd, F_GETFD) < 0)
        return -EINVAL;
    f->maps[f->nmaps].iova = iova;
    f->maps[f->nmaps].len = len;
    f->maps[f->nmaps].offset = offset;
    f->maps[f->nmaps++].fd = fd;
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

static int mem_fd(size_t size)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    assert_true(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
    return fd;
}

#define MB (1ull << 20)

/* Two sessions of one VM send the same table: one map per device, kept until both let go. */
static void shared_maps(void **state)
{
    struct fake_dev a, b;
    fake_init(&a, "a");
    fake_init(&b, "b");
    int mem = mem_fd(4 * MB);
    int holder_a, holder_b;
    struct vfe_dma_domain *da = vfe_dma_domain_join("vm-1", &a.t), *db = vfe_dma_domain_join("vm-1", &b.t);
    assert_non_null(da);
    assert_ptr_equal(da, db);
    assert_int_equal(vfe_dma_domain_members(da), 2);

    assert_int_equal(vfe_dma_domain_map(da, &holder_a, 0, 2 * MB, mem, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_true(has_map(&a, 0, 2 * MB) && has_map(&b, 0, 2 * MB));
    /* the other session's identical table: nothing more reaches the devices */
    int other = dup(mem);
    assert_int_equal(vfe_dma_domain_map(db, &holder_b, 0, 2 * MB, other, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    close(other);
    assert_int_equal(a.map_calls + b.map_calls, 2);
    assert_int_equal(vfe_dma_domain_maps(da), 1);

    vfe_dma_domain_unmap(da, &holder_a, 0, 2 * MB);
    assert_true(has_map(&a, 0, 2 * MB) && has_map(&b, 0, 2 * MB));
    vfe_dma_domain_unmap(da, &holder_a, 0, 2 * MB);   /* twice: the holder is gone already */
    assert_true(has_map(&b, 0, 2 * MB));
    vfe_dma_domain_unmap(db, &holder_b, 0, 2 * MB);
    assert_int_equal(a.nmaps + b.nmaps, 0);
    assert_int_equal(vfe_dma_domain_maps(da), 0);

    vfe_dma_domain_leave(da, &a.t);
    vfe_dma_domain_leave(db, &b.t);
    close(mem);
}

/* A VF added while the VM runs gets the maps the domain holds; one leaving loses them alone. */
static void late_join_and_leave(void **state)
{
    struct fake_dev a, b;
    fake_init(&a, "a");
    fake_init(&b, "b");
    int mem = mem_fd(8 * MB), holder;
    struct vfe_dma_domain *d = vfe_dma_domain_join("vm-2", &a.t);
    assert_int_equal(vfe_dma_domain_map(d, &holder, 0, 1 * MB, mem, 0, VFE_DMA_READ), 0);
    assert_int_equal(vfe_dma_domain_map(d, &holder, 4 * MB, 4 * MB, mem, 1 * MB, VFE_DMA_READ), 0);
    close(mem);   /* the domain keeps its own reference for replays */
    assert_ptr_equal(vfe_dma_domain_join("vm-2", &b.t), d);
    assert_true(has_map(&b, 0, 1 * MB) && has_map(&b, 4 * MB, 4 * MB));
    assert_int_equal(b.maps[1].offset + b.maps[0].offset, 1 * MB);

    vfe_dma_domain_leave(d, &b.t);
    assert_int_equal(b.nmaps, 0);
    assert_int_equal(a.nmaps, 2);
    vfe_dma_domain_unmap(d, &holder, 0, 1 * MB);
    vfe_dma_domain_unmap(d, &holder, 4 * MB, 4 * MB);
    vfe_dma_domain_leave(d, &a.t);
    assert_int_equal(a.nmaps, 0);
}

/* Memory tables change one session at a time: the newer region wins, the
 * older holder's later unmap of the region it had does not touch the new one. */
static void newer_table_replaces(void **state)
{
    struct fake_dev a, b;
    fake_init(&a, "a");
    fake_init(&b, "b");
    int old_mem = mem_fd(2 * MB), new_mem = mem_fd(4 * MB);
    int holder_a, holder_b;
    struct vfe_dma_domain *d = vfe_dma_domain_join("vm-3", &a.t);
    vfe_dma_domain_join("vm-3", &b.t);
    assert_int_equal(vfe_dma_domain_map(d, &holder_a, 0, 2 * MB, old_mem, 0, VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_dma_domain_map(d, &holder_b, 0, 2 * MB, old_mem, 0, VFE_DMA_WRITE), 0);
    /* session a moves to the grown region first */
    vfe_dma_domain_unmap(d, &holder_a, 0, 2 * MB);
    assert_int_equal(vfe_dma_domain_map(d, &holder_a, 0, 4 * MB, new_mem, 0, VFE_DMA_WRITE), 0);
    assert_true(has_map(&a, 0, 4 * MB) && has_map(&b, 0, 4 * MB));
    assert_false(has_map(&b, 0, 2 * MB));
    /* then session b */
    vfe_dma_domain_unmap(d, &holder_b, 0, 2 * MB);
    assert_int_equal(vfe_dma_domain_map(d, &holder_b, 0, 4 * MB, new_mem, 0, VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_dma_domain_maps(d), 1);
    assert_true(has_map(&a, 0, 4 * MB) && has_map(&b, 0, 4 * MB));
    vfe_dma_domain_unmap(d, &holder_a, 0, 4 * MB);
    assert_true(has_map(&b, 0, 4 * MB));
    vfe_dma_domain_unmap(d, &holder_b, 0, 4 * MB);
    assert_int_equal(a.nmaps + b.nmaps, 0);
    vfe_dma_domain_leave(d, &a.t);
    vfe_dma_domain_leave(d, &b.t);
    close(old_mem);
    close(new_mem);
}

/* One member refusing a map: no member keeps it, the caller gets the error. */
static void failure_rolls_back(void **state)
{
    struct fake_dev a, b, c;
    fake_init(&a, "a");
    fake_init(&b, "b");
    fake_init(&c, "c");
    int mem = mem_fd(2 * MB), holder;
    struct vfe_dma_domain *d = vfe_dma_domain_join("vm-4", &a.t);
    vfe_dma_domain_join("vm-4", &b.t);
    vfe_dma_domain_join("vm-4", &c.t);
    c.fail_map = ENOSPC;
    assert_int_equal(vfe_dma_domain_map(d, &holder, 0, 2 * MB, mem, 0, VFE_DMA_READ), -ENOSPC);
    assert_int_equal(a.nmaps + b.nmaps + c.nmaps, 0);
    assert_int_equal(vfe_dma_domain_maps(d), 0);
    /* bad input: empty, wrapping, not a file */
    assert_int_equal(vfe_dma_domain_map(d, &holder, 0, 0, mem, 0, VFE_DMA_READ), -EINVAL);
    assert_int_equal(vfe_dma_domain_map(d, &holder, UINT64_MAX - 4095, 8192, mem, 0, VFE_DMA_READ), -EINVAL);
    assert_int_equal(vfe_dma_domain_map(d, &holder, 0, 4096, -1, 0, VFE_DMA_READ), -EBADF);
    /* a joiner that cannot take the existing maps is not a member */
    assert_int_equal(vfe_dma_domain_map(d, &holder, 0, 2 * MB, mem, 0, VFE_DMA_READ), 0);
    struct fake_dev e;
    fake_init(&e, "e");
    e.fail_map = EIO;
    assert_null(vfe_dma_domain_join("vm-4", &e.t));
    assert_int_equal(errno, EIO);
    assert_int_equal(vfe_dma_domain_members(d), 3);
    vfe_dma_domain_unmap(d, &holder, 0, 2 * MB);
    vfe_dma_domain_leave(d, &a.t);
    vfe_dma_domain_leave(d, &b.t);
    vfe_dma_domain_leave(d, &c.t);
    close(mem);
}

/* VFs without a VM id, or of different VMs, never see each other's maps. */
static void domains_apart(void **state)
{
    struct fake_dev a, b, c;
    fake_init(&a, "a");
    fake_init(&b, "b");
    fake_init(&c, "c");
    int mem = mem_fd(2 * MB), holder;
    struct vfe_dma_domain *pa = vfe_dma_domain_join(NULL, &a.t), *pb = vfe_dma_domain_join("", &b.t);
    struct vfe_dma_domain *vc = vfe_dma_domain_join("vm-5", &c.t);
    assert_true(pa && pb && vc && pa != pb && pb != vc);
    assert_int_equal(vfe_dma_domain_map(pa, &holder, 0, 2 * MB, mem, 0, VFE_DMA_READ), 0);
    assert_int_equal(b.nmaps + c.nmaps, 0);
    vfe_dma_domain_unmap(pa, &holder, 0, 2 * MB);
    vfe_dma_domain_leave(pa, &a.t);
    vfe_dma_domain_leave(pb, &b.t);
    vfe_dma_domain_leave(vc, &c.t);
    /* the name went with its last member: a new VM of that name starts empty */
    struct vfe_dma_domain *again = vfe_dma_domain_join("vm-5", &c.t);
    assert_int_equal(vfe_dma_domain_members(again), 1);
    vfe_dma_domain_leave(again, &c.t);
    char longname[100];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_null(vfe_dma_domain_join(longname, &a.t));
    assert_int_equal(errno, ENAMETOOLONG);
    close(mem);
}

/* A replacement a member refuses: the region it was to replace stays mapped
 * on every member and in the domain, and its holders still hold it. */
static void failed_replacement_keeps_old(void **state)
{
    struct fake_dev a, b;
    fake_init(&a, "a");
    fake_init(&b, "b");
    int old_mem = mem_fd(2 * MB), new_mem = mem_fd(4 * MB);
    int holder_a, holder_b;
    struct vfe_dma_domain *d = vfe_dma_domain_join("vm-6", &a.t);
    vfe_dma_domain_join("vm-6", &b.t);
    assert_int_equal(vfe_dma_domain_map(d, &holder_a, 0, 2 * MB, old_mem, 0, VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_dma_domain_map(d, &holder_a, 8 * MB, 2 * MB, old_mem, 0, VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_dma_domain_map(d, &holder_b, 0, 2 * MB, old_mem, 0, VFE_DMA_WRITE), 0);

    b.fail_map = ENOMEM;   /* the second member refuses the grown region */
    assert_int_equal(vfe_dma_domain_map(d, &holder_b, 0, 4 * MB, new_mem, 0, VFE_DMA_WRITE), -ENOMEM);
    assert_true(has_map(&a, 0, 2 * MB) && has_map(&b, 0, 2 * MB));
    assert_true(has_map(&a, 8 * MB, 2 * MB) && has_map(&b, 8 * MB, 2 * MB));
    assert_false(has_map(&a, 0, 4 * MB) || has_map(&b, 0, 4 * MB));
    assert_int_equal(a.nmaps, 2);
    assert_int_equal(b.nmaps, 2);
    assert_int_equal(vfe_dma_domain_maps(d), 2);

    /* both holders still hold the old region: it goes with the second */
    vfe_dma_domain_unmap(d, &holder_a, 0, 2 * MB);
    assert_true(has_map(&a, 0, 2 * MB) && has_map(&b, 0, 2 * MB));
    vfe_dma_domain_unmap(d, &holder_b, 0, 2 * MB);
    assert_false(has_map(&a, 0, 2 * MB) || has_map(&b, 0, 2 * MB));

    /* a replacement that covers two regions and fails on the first member keeps both */
    assert_int_equal(vfe_dma_domain_map(d, &holder_a, 0, 2 * MB, old_mem, 0, VFE_DMA_WRITE), 0);
    a.fail_map = EIO;
    assert_int_equal(vfe_dma_domain_map(d, &holder_b, 0, 16 * MB, new_mem, 0, VFE_DMA_WRITE), -EIO);
    assert_true(has_map(&a, 0, 2 * MB) && has_map(&b, 0, 2 * MB));
    assert_true(has_map(&a, 8 * MB, 2 * MB) && has_map(&b, 8 * MB, 2 * MB));
    assert_int_equal(vfe_dma_domain_maps(d), 2);
    /* and when it works, both are replaced by the one new region */
    assert_int_equal(vfe_dma_domain_map(d, &holder_b, 0, 16 * MB, new_mem, 0, VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_dma_domain_maps(d), 1);
    assert_true(a.nmaps == 1 && has_map(&a, 0, 16 * MB) && b.nmaps == 1 && has_map(&b, 0, 16 * MB));

    vfe_dma_domain_unmap(d, &holder_b, 0, 16 * MB);
    vfe_dma_domain_leave(d, &a.t);
    vfe_dma_domain_leave(d, &b.t);
    close(old_mem);
    close(new_mem);
}

/* VFs come and go for the daemon's whole life: a domain's last member leaving
 * frees everything it allocated (LSan reports it in the sanitizer build; here
 * the heap in use must not grow with the cycles). */
static void leave_frees_everything(void **state)
{
    struct fake_dev a;
    fake_init(&a, "a");
    int mem = mem_fd(2 * MB), holder;
    size_t before = 0;
    for (int cycle = 0; cycle < 4000; cycle++) {
        if (cycle == 100)
            before = mallinfo2().uordblks;
        struct vfe_dma_domain *d = vfe_dma_domain_join(cycle & 1 ? "vm-7" : NULL, &a.t);
        assert_non_null(d);
        assert_int_equal(vfe_dma_domain_map(d, &holder, 0, 2 * MB, mem, 0, VFE_DMA_READ), 0);
        if (cycle & 2)
            vfe_dma_domain_unmap(d, &holder, 0, 2 * MB);   /* else the leave drops it */
        vfe_dma_domain_leave(d, &a.t);
        assert_int_equal(a.nmaps, 0);
    }
    size_t after = mallinfo2().uordblks;
    assert_true(after <= before + 16 * 1024);
    close(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared_maps),        cmocka_unit_test(late_join_and_leave),
        cmocka_unit_test(newer_table_replaces), cmocka_unit_test(failure_rolls_back),
        cmocka_unit_test(domains_apart),      cmocka_unit_test(failed_replacement_keeps_old),
        cmocka_unit_test(leave_frees_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
