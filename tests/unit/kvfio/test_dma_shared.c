/*
 * DMA domains over kernel VFIO: members sharing one IOMMU space (container)
 * get each map once, a member joining a space that holds the maps already
 * gets no replay, and the maps leave the space only with its last member.
 * Members with their own tables (vfio-user) still get every map.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "drivers/bus/vfio/vfe_dma_domain.h"

/* An IOMMU table shared by the fake devices pointing at it. */
struct space {
    unsigned nmaps, map_calls, unmap_calls;
};

struct fake {
    struct vfe_transport t;
    struct space *s;
};

static int f_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t off, uint32_t prot)
{
    struct space *s = ((struct fake *)t)->s;
    s->map_calls++;
    s->nmaps++;
    return 0;
}

static int f_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len)
{
    struct space *s = ((struct fake *)t)->s;
    s->unmap_calls++;
    if (!s->nmaps)
        return -ENOENT;
    s->nmaps--;
    return 0;
}

static const void *f_space(struct vfe_transport *t)
{
    return ((struct fake *)t)->s;
}

static const struct vfe_transport_ops shared_ops = {.dma_map = f_map, .dma_unmap = f_unmap, .dma_space = f_space};
static const struct vfe_transport_ops own_ops = {.dma_map = f_map, .dma_unmap = f_unmap};

static void fake_init(struct fake *f, const struct vfe_transport_ops *ops, struct space *s, const char *bdf)
{
    memset(f, 0, sizeof(*f));
    f->t.ops = ops;
    f->s = s;
    snprintf(f->t.bdf, sizeof(f->t.bdf), "%s", bdf);
}

static void test_one_container(void **state)
{
    (void)state;
    struct space s = {0};
    struct fake a, b, c;
    fake_init(&a, &shared_ops, &s, "0000:00:04.0");
    fake_init(&b, &shared_ops, &s, "0000:00:05.0");
    fake_init(&c, &shared_ops, &s, "0000:00:06.0");
    int fd = memfd_create("guest", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);

    struct vfe_dma_domain *d = vfe_dma_domain_join("vm-k", &a.t);
    assert_non_null(d);
    assert_ptr_equal(vfe_dma_domain_join("vm-k", &b.t), d);
    assert_int_equal(vfe_dma_domain_map(d, &a, 0, 1 << 20, fd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_dma_domain_map(d, &b, 0, 1 << 20, fd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(s.map_calls, 1);   /* one ioctl for the container, not one per VF */
    assert_int_equal(s.nmaps, 1);

    /* a late joiner of the same container: nothing replayed (it would be EEXIST) */
    assert_ptr_equal(vfe_dma_domain_join("vm-k", &c.t), d);
    assert_int_equal(s.map_calls, 1);

    /* a newer table replacing the region: one unmap, one map */
    assert_int_equal(vfe_dma_domain_map(d, &a, 0, 1 << 19, fd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(s.unmap_calls, 1);
    assert_int_equal(s.map_calls, 2);
    assert_int_equal(s.nmaps, 1);

    /* members leave; the container keeps its maps until the last one */
    vfe_dma_domain_leave(d, &a.t);
    vfe_dma_domain_leave(d, &c.t);
    assert_int_equal(s.nmaps, 1);
    assert_int_equal(s.unmap_calls, 1);
    vfe_dma_domain_leave(d, &b.t);
    assert_int_equal(s.nmaps, 0);
    assert_int_equal(s.unmap_calls, 2);
    close(fd);
}

static void test_mixed_spaces(void **state)
{
    (void)state;
    struct space s1 = {0}, s2 = {0}, own = {0};
    struct fake a, b, u;
    fake_init(&a, &shared_ops, &s1, "0000:00:04.0");
    fake_init(&b, &shared_ops, &s2, "0000:00:05.0");
    fake_init(&u, &own_ops, &own, "0000:00:06.0");
    int fd = memfd_create("guest", MFD_CLOEXEC);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    struct vfe_dma_domain *d = vfe_dma_domain_join("vm-m", &a.t);
    assert_non_null(vfe_dma_domain_join("vm-m", &b.t));
    assert_non_null(vfe_dma_domain_join("vm-m", &u.t));
    assert_int_equal(vfe_dma_domain_map(d, &a, 0, 1 << 20, fd, 0, VFE_DMA_READ), 0);
    assert_int_equal(s1.nmaps, 1);
    assert_int_equal(s2.nmaps, 1);
    assert_int_equal(own.nmaps, 1);
    vfe_dma_domain_unmap(d, &a, 0, 1 << 20);
    assert_int_equal(s1.nmaps + s2.nmaps + own.nmaps, 0);
    vfe_dma_domain_leave(d, &a.t);
    vfe_dma_domain_leave(d, &b.t);
    vfe_dma_domain_leave(d, &u.t);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_container),
        cmocka_unit_test(test_mixed_spaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
