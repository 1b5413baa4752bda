/*
 * Kernel VFIO answers are external input: sparse-mmap and IOVA-range
 * capability chains are walked bounded, forward only, inside the buffer;
 * the IOMMU group comes from the iommu_group link; a function without a
 * vfio-user socket goes to kernel VFIO and says why it cannot be opened.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <linux/vfio.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "drivers/bus/vfio/vfio_kernel_priv.h"

#define INFO sizeof(struct vfio_region_info)

/* A region info buffer with a sparse capability at `at` holding n areas. */
static size_t sparse_buf(uint8_t *b, size_t cap, uint32_t at, uint32_t n, const struct vk_area *a, uint32_t next)
{
    memset(b, 0, cap);
    struct vfio_region_info_cap_sparse_mmap sm = {.header = {.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1,
                                                             .next = next}, .nr_areas = n};
    memcpy(b + at, &sm, sizeof(sm));
    for (uint32_t i = 0; i < n; i++) {
        struct vfio_region_sparse_mmap_area x = {.offset = a[i].off, .size = a[i].size};
        memcpy(b + at + sizeof(sm) + i * sizeof(x), &x, sizeof(x));
    }
    return at + sizeof(sm) + n * sizeof(struct vfio_region_sparse_mmap_area);
}

static void test_sparse_good(void **state)
{
    (void)state;
    uint8_t b[512];
    struct vk_area in[2] = {{0x0, 0x1000}, {0x3000, 0x1000}}, out[8];
    unsigned n = 99;
    size_t len = sparse_buf(b, sizeof(b), INFO, 2, in, 0);
    assert_int_equal(vk_parse_sparse(b, len, INFO, 0x4000, out, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[1].off, 0x3000);
    assert_int_equal(out[1].size, 0x1000);
    /* no chain at all: the whole region */
    assert_int_equal(vk_parse_sparse(b, len, 0, 0x4000, out, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].off, 0);
    assert_int_equal(out[0].size, 0x4000);
    /* a chain without a sparse capability (6.1 vfio-pci's MSI-X BAR: MSIX_MAPPABLE only): the whole region */
    memset(b, 0, sizeof(b));
    struct vfio_info_cap_header h = {.id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, .version = 1};
    memcpy(b + INFO, &h, sizeof(h));
    n = 99;
    assert_int_equal(vk_parse_sparse(b, INFO + sizeof(h), INFO, 0x2000, out, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].size, 0x2000);
    /* a sparse capability listing no area: nothing is mappable */
    len = sparse_buf(b, sizeof(b), INFO, 0, in, 0);
    assert_int_equal(vk_parse_sparse(b, len, INFO, 0x4000, out, 8, &n), 0);
    assert_int_equal(n, 0);
}

static void test_sparse_hostile(void **state)
{
    (void)state;
    uint8_t b[512];
    struct vk_area in[2] = {{0x0, 0x1000}, {0x3000, 0x2000}}, out[8];
    unsigned n;
    size_t len = sparse_buf(b, sizeof(b), INFO, 2, in, 0);
    /* an area past the end of the region */
    assert_int_equal(vk_parse_sparse(b, len, INFO, 0x4000, out, 8, &n), -EPROTO);
    /* the buffer cut inside the area list */
    in[1].size = 0x1000;
    len = sparse_buf(b, sizeof(b), INFO, 2, in, 0);
    assert_int_equal(vk_parse_sparse(b, len - 1, INFO, 0x4000, out, 8, &n), -EPROTO);
    /* more areas than kept */
    assert_int_equal(vk_parse_sparse(b, len, INFO, 0x4000, out, 1, &n), -E2BIG);
    /* a chain that points back at itself */
    len = sparse_buf(b, sizeof(b), INFO, 2, in, INFO);
    assert_int_equal(vk_parse_sparse(b, len, INFO, 0x4000, out, 8, &n), -EPROTO);
    /* a first capability inside the fixed header or past the buffer */
    assert_int_equal(vk_parse_sparse(b, len, 8, 0x4000, out, 8, &n), -EPROTO);
    assert_int_equal(vk_parse_sparse(b, len, 400, 0x4000, out, 8, &n), -EPROTO);
    /* an empty area */
    in[0].size = 0;
    len = sparse_buf(b, sizeof(b), INFO, 2, in, 0);
    assert_int_equal(vk_parse_sparse(b, len, INFO, 0x4000, out, 8, &n), -EPROTO);
    /* a chain of many tiny forward hops is cut off */
    memset(b, 0, sizeof(b));
    for (unsigned i = 0; i < 30; i++) {
        struct vfio_info_cap_header h = {.id = 77, .next = (uint32_t)(INFO + (i + 1) * 8)};
        memcpy(b + INFO + i * 8, &h, sizeof(h));
    }
    assert_int_equal(vk_parse_sparse(b, sizeof(b), INFO, 0x4000, out, 8, &n), -EPROTO);
}

static void test_iova_ranges(void **state)
{
    (void)state;
    uint8_t b[512] = {0};
    size_t at = sizeof(struct vfio_iommu_type1_info);
    struct vfio_iommu_type1_info_cap_iova_range cr = {.header = {.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE},
                                                      .nr_iovas = 2};
    struct vfio_iova_range r[2] = {{0, 0xfedfffff}, {0xfef00000, 0x7fffffffffull}};
    memcpy(b + at, &cr, sizeof(cr));
    memcpy(b + at + sizeof(cr), r, sizeof(r));
    size_t len = at + sizeof(cr) + sizeof(r);
    struct vk_iova_range out[4];
    unsigned n;
    assert_int_equal(vk_parse_iova_ranges(b, len, (uint32_t)at, out, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[1].start, 0xfef00000);
    /* unsorted (overlapping) ranges are refused */
    r[1].start = 0x1000;
    memcpy(b + at + sizeof(cr), r, sizeof(r));
    assert_int_equal(vk_parse_iova_ranges(b, len, (uint32_t)at, out, 4, &n), -EPROTO);
    assert_int_equal(vk_parse_iova_ranges(b, len, (uint32_t)at, out, 1, &n), -E2BIG);
}

static char root[256];

static void mk(const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void test_group_number(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/vfe-kvfio-XXXXXX");
    assert_non_null(mkdtemp(root));
    mk("0000:00:04.0");
    mk("0000:00:05.0");
    char p[512];
    snprintf(p, sizeof(p), "%s/0000:00:04.0/iommu_group", root);
    assert_int_equal(symlink("../../../kernel/iommu_groups/12", p), 0);
    snprintf(p, sizeof(p), "%s/0000:00:05.0/iommu_group", root);
    assert_int_equal(symlink("../../../kernel/iommu_groups/x12", p), 0);
    unsigned g = 0;
    assert_int_equal(vk_group_number(root, "0000:00:04.0", &g), 0);
    assert_int_equal(g, 12);
    assert_int_equal(vk_group_number(root, "0000:00:05.0", &g), -EPROTO);
    mk("0000:00:06.0");
    assert_int_equal(vk_group_number(root, "0000:00:06.0", &g), -ENODEV);

    /* no vfio-user.sock: kernel VFIO, which needs an IOMMU group */
    struct vfe_transport *t = NULL;
    assert_int_equal(vfe_transport_open(root, "0000:00:06.0", &t), -ENODEV);
    assert_null(t);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_good),
        cmocka_unit_test(test_sparse_hostile),
        cmocka_unit_test(test_iova_ranges),
        cmocka_unit_test(test_group_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
