/*
 * Device transport: the only layer that knows whether a PCI function sits
 * behind kernel VFIO or behind a vfio-user server (vfe-dpu-sim).
 *
 * Calls are synchronous and bounded by a timeout: they stand for MMIO and
 * ioctl accesses, which are synchronous on kernel VFIO too.  Long waits
 * (device reset, admin command completion) are asynchronous one layer up.
 * Every call returns 0 or a negative errno.
 */
#ifndef VFE_TRANSPORT_H
#define VFE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/vfio.h>

/* Region indices are VFIO's: BAR0..5 = 0..5, config space = VFIO_PCI_CONFIG_REGION_INDEX. */
#define VFE_REGION_CONFIG VFIO_PCI_CONFIG_REGION_INDEX

#define VFE_DMA_READ  (1u << 0)
#define VFE_DMA_WRITE (1u << 1)

struct vfe_region_info {
    uint32_t index;
    uint32_t flags; /* VFIO_REGION_INFO_FLAG_* */
    uint64_t size;
};

struct vfe_transport;

struct vfe_transport_ops {
    int (*region_info)(struct vfe_transport *t, uint32_t index, struct vfe_region_info *info);
    int (*region_read)(struct vfe_transport *t, uint32_t index, uint64_t off, void *buf, size_t len);
    int (*region_write)(struct vfe_transport *t, uint32_t index, uint64_t off, const void *buf, size_t len);
    /* [off, off+len) of the region may be mmapped by the caller (or handed to QEMU):
     * the fd (owned by the transport) and the file offset of off.  -ENOENT: not mappable. */
    int (*region_mmap_fd)(struct vfe_transport *t, uint32_t index, uint64_t off, uint64_t len, int *fd,
                          uint64_t *file_off);
    /* Map [offset, offset+len) of fd at IOVA iova for the device.  prot: VFE_DMA_*. */
    int (*dma_map)(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot);
    int (*dma_unmap)(struct vfe_transport *t, uint64_t iova, uint64_t len);
    /* Attach eventfds to MSI-X vectors start..start+count-1; an fd of -1 detaches that vector. */
    int (*set_irqs)(struct vfe_transport *t, uint32_t irq_index, uint32_t start, uint32_t count, const int *fds);
    /* A write of `size` bytes equal to `data` at region/off signals eventfd `fd` in the device
     * (kernel VFIO_DEVICE_IOEVENTFD).  fd = -1 removes the registration. */
    int (*ioeventfd)(struct vfe_transport *t, uint32_t region, uint64_t off, uint32_t size, uint64_t data, int fd);
    int (*reset)(struct vfe_transport *t);
    /* Fds that keep the device open (for the HA process).  Returns the count or -errno. */
    int (*export_fds)(struct vfe_transport *t, int *fds, int max);
    void (*close)(struct vfe_transport *t);
};

struct vfe_transport {
    const struct vfe_transport_ops *ops;
    char bdf[32];
    int timeout_ms; /* bound of one round trip; default VFE_TRANSPORT_TIMEOUT_MS */
};

#define VFE_TRANSPORT_TIMEOUT_MS 2000

/* Open the function `bdf` found under pci_root (a sysfs-shaped tree).  A function
 * whose directory has a `vfio-user.sock` uses vfio-user, any other kernel VFIO
 * (not built yet: -ENOTSUP). */
int vfe_transport_open(const char *pci_root, const char *bdf, struct vfe_transport **out);

/* vfio-user client on a socket path; usable directly by tests. */
int vfe_vfio_user_open(const char *sock_path, const char *bdf, struct vfe_transport **out);

/* Convenience wrappers. */
static inline int vfe_cfg_read(struct vfe_transport *t, uint32_t off, void *buf, size_t len)
{ return t->ops->region_read(t, VFE_REGION_CONFIG, off, buf, len); }
static inline int vfe_cfg_write(struct vfe_transport *t, uint32_t off, const void *buf, size_t len)
{ return t->ops->region_write(t, VFE_REGION_CONFIG, off, buf, len); }
static inline void vfe_transport_close(struct vfe_transport *t) { if (t) t->ops->close(t); }

#endif
