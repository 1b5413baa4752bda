/* Checks of what the kernel answers VFIO ioctls with (see vfio_kernel_priv.h). */
#include "drivers/bus/vfio/vfio_kernel_priv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/vfio.h>

/* Find capability `id` in a chain starting at `first`; *at its offset, 0 if absent. */
static int cap_find(const uint8_t *buf, size_t len, uint32_t first, size_t min_off, uint16_t id, size_t *at)
{
    *at = 0;
    unsigned hops = 0;
    for (uint32_t off = first; off; hops++) {
        struct vfio_info_cap_header h;
        if (hops >= VK_CAP_HOPS || off < min_off || off > len || len - off < sizeof(h))
            return -EPROTO;
        memcpy(&h, buf + off, sizeof(h));
        if (h.id == id && !*at)
            *at = off;
        if (h.next && h.next <= off)
            return -EPROTO;   /* only forward: no loops */
        off = h.next;
    }
    return 0;
}

int vk_parse_sparse(const uint8_t *buf, size_t len, uint32_t first, uint64_t region_size, struct vk_area *areas,
                    unsigned max, unsigned *n)
{
    size_t at;
    *n = 0;
    int rc = cap_find(buf, len, first, sizeof(struct vfio_region_info), VFIO_REGION_INFO_CAP_SPARSE_MMAP, &at);
    if (rc < 0)
        return rc;
    if (!at) {
        if (!max)
            return -E2BIG;
        areas[0] = (struct vk_area){0, region_size};
        *n = 1;
        return 0;
    }
    struct vfio_region_info_cap_sparse_mmap sm;
    if (len - at < sizeof(sm))
        return -EPROTO;
    memcpy(&sm, buf + at, sizeof(sm));
    if (sm.nr_areas > max)
        return -E2BIG;
    if ((len - at - sizeof(sm)) / sizeof(struct vfio_region_sparse_mmap_area) < sm.nr_areas)
        return -EPROTO;
    for (uint32_t i = 0; i < sm.nr_areas; i++) {
        struct vfio_region_sparse_mmap_area a;
        memcpy(&a, buf + at + sizeof(sm) + i * sizeof(a), sizeof(a));
        if (!a.size || a.offset > region_size || a.size > region_size - a.offset)
            return -EPROTO;
        areas[i] = (struct vk_area){a.offset, a.size};
    }
    *n = sm.nr_areas;
    return 0;
}

int vk_parse_iova_ranges(const uint8_t *buf, size_t len, uint32_t first, struct vk_iova_range *r, unsigned max,
                         unsigned *n)
{
    size_t at;
    *n = 0;
    int rc = cap_find(buf, len, first, sizeof(struct vfio_iommu_type1_info), VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
                      &at);
    if (rc < 0 || !at)
        return rc;
    struct vfio_iommu_type1_info_cap_iova_range cr;
    if (len - at < sizeof(cr))
        return -EPROTO;
    memcpy(&cr, buf + at, sizeof(cr));
    if (cr.nr_iovas > max)
        return -E2BIG;
    if ((len - at - sizeof(cr)) / sizeof(struct vfio_iova_range) < cr.nr_iovas)
        return -EPROTO;
    for (uint32_t i = 0; i < cr.nr_iovas; i++) {
        struct vfio_iova_range v;
        memcpy(&v, buf + at + sizeof(cr) + i * sizeof(v), sizeof(v));
        if (v.end < v.start || (i && v.start <= r[i - 1].end))
            return -EPROTO;   /* ranges come sorted and disjoint */
        r[i] = (struct vk_iova_range){v.start, v.end};
    }
    *n = cr.nr_iovas;
    return 0;
}

int vk_group_number(const char *pci_root, const char *bdf, unsigned *group)
{
    char path[PATH_MAX], target[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s/iommu_group", pci_root, bdf);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    ssize_t l = readlink(path, target, sizeof(target) - 1);
    if (l < 0)
        return errno == ENOENT ? -ENODEV : -errno;
    target[l] = 0;
    const char *num = strrchr(target, '/');
    num = num ? num + 1 : target;
    char *end;
    errno = 0;
    unsigned long v = strtoul(num, &end, 10);
    if (!*num || *end || errno || v > 0xffffff || *num < '0' || *num > '9')
        return -EPROTO;
    *group = (unsigned)v;
    return 0;
}
