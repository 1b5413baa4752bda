/*
 * Kernel VFIO transport, private parts: the pure parsers the ioctl code uses,
 * apart so unit tests can feed them hostile kernel answers.
 *
 * Every value the kernel returns is checked as external input: a capability
 * chain is walked at most VK_CAP_HOPS steps, only forward, inside the buffer
 * the kernel filled (argsz).
 */
#ifndef VFE_VFIO_KERNEL_PRIV_H
#define VFE_VFIO_KERNEL_PRIV_H

#include <stddef.h>
#include <stdint.h>

#define VK_CAP_HOPS        16
#define VK_MAX_AREAS       8     /* sparse-mmap areas kept per region */
#define VK_INFO_MAX        4096  /* largest region/iommu info buffer accepted */
#define VK_MAX_IOVA_RANGES 16

struct vk_area { uint64_t off, size; };

/* The sparse-mmap areas of a region info buffer (`len` bytes the kernel filled,
 * header first).  first: cap_offset (0: no chain).  On success *n areas are in
 * areas.  Without a sparse capability (no chain, or a chain of other capabilities
 * such as 6.1 vfio-pci's MSIX_MAPPABLE on the MSI-X BAR) the whole region is the
 * one area; a sparse capability listing none leaves *n 0: nothing is mappable.
 *   -EPROTO  a chain that loops, leaves the buffer, a truncated capability,
 *            an area outside the region or an empty one;  -E2BIG more than max areas */
int vk_parse_sparse(const uint8_t *buf, size_t len, uint32_t first, uint64_t region_size, struct vk_area *areas,
                    unsigned max, unsigned *n);

/* The IOVA ranges of a VFIO_IOMMU_GET_INFO buffer; *n = 0 if the kernel names none. */
struct vk_iova_range { uint64_t start, end; };   /* inclusive end, as VFIO reports it */
int vk_parse_iova_ranges(const uint8_t *buf, size_t len, uint32_t first, struct vk_iova_range *r, unsigned max,
                         unsigned *n);

/* The IOMMU group number of <pci_root>/<bdf>/iommu_group (a symlink whose last
 * component is the decimal number).  -ENODEV: no link (no IOMMU, or the
 * function has none); -EPROTO: a link that does not end in a number. */
int vk_group_number(const char *pci_root, const char *bdf, unsigned *group);

/* The two system calls that reach /dev/vfio; tests put a fake kernel here
 * (NULL: the real ones).  Everything else (pread/pwrite on the device fd,
 * mmap, eventfds, close) is real. */
struct vk_sys {
    int (*open)(const char *path, int flags);
    int (*ioctl)(int fd, unsigned long req, void *arg);
};
void vk_set_sys(const struct vk_sys *s);

#endif
