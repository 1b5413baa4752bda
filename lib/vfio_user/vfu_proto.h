/*
 * vfio-user wire protocol (QEMU docs/interop/vfio-user.rst), host endianness,
 * plus the vfe vendor command VFE_IOEVENTFD (docs/vfio-user-extension.md).
 *
 * Every message: a 16-byte header, then the command's payload.  Payload layouts
 * below are the ones of the spec; offsets are from the end of the header.
 */
#ifndef VFU_PROTO_H
#define VFU_PROTO_H

#include <stdint.h>

#define VFU_PROTO_MAJOR 0
#define VFU_PROTO_MINOR 1

struct vfu_hdr {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t size;     /* whole message, header included */
    uint32_t flags;
    uint32_t error;    /* errno in an error reply, reserved (0) in a command */
} __attribute__((packed));

#define VFU_F_TYPE_MASK   0xfu
#define VFU_F_TYPE_CMD    0x0u
#define VFU_F_TYPE_REPLY  0x1u
#define VFU_F_NO_REPLY    (1u << 4)
#define VFU_F_ERROR       (1u << 5)

enum vfu_cmd {
    VFU_CMD_VERSION = 1,
    VFU_CMD_DMA_MAP = 2,
    VFU_CMD_DMA_UNMAP = 3,
    VFU_CMD_DEVICE_GET_INFO = 4,
    VFU_CMD_DEVICE_GET_REGION_INFO = 5,
    VFU_CMD_DEVICE_GET_REGION_IO_FDS = 6,
    VFU_CMD_DEVICE_GET_IRQ_INFO = 7,
    VFU_CMD_DEVICE_SET_IRQS = 8,
    VFU_CMD_REGION_READ = 9,
    VFU_CMD_REGION_WRITE = 10,
    VFU_CMD_DMA_READ = 11,
    VFU_CMD_DMA_WRITE = 12,
    VFU_CMD_DEVICE_RESET = 13,
    /* vfe vendor range: 0x7f00..0x7fff, far above the spec's numbering. */
    VFU_CMD_VFE_IOEVENTFD = 0x7f01,
};

/* VERSION request and reply: then an optional NUL-terminated JSON text. */
struct vfu_version {
    uint16_t major;
    uint16_t minor;
} __attribute__((packed));

/* DMA_MAP request (no reply payload).  One fd in SCM_RIGHTS when mappable. */
#define VFU_DMA_F_READ  (1u << 0)
#define VFU_DMA_F_WRITE (1u << 1)
struct vfu_dma_map {
    uint32_t argsz;    /* sizeof(struct vfu_dma_map) */
    uint32_t flags;
    uint64_t offset;   /* in the fd */
    uint64_t addr;     /* IOVA */
    uint64_t size;
} __attribute__((packed));

/* DMA_UNMAP request; the reply echoes the entry. */
struct vfu_dma_unmap {
    uint32_t argsz;
    uint32_t flags;    /* none supported */
    uint64_t addr;
    uint64_t size;
} __attribute__((packed));

/* DEVICE_GET_INFO request and reply (layout of struct vfio_device_info's head). */
struct vfu_device_info {
    uint32_t argsz;
    uint32_t flags;    /* VFIO_DEVICE_FLAGS_* */
    uint32_t num_regions;
    uint32_t num_irqs;
} __attribute__((packed));

/* DEVICE_GET_REGION_INFO request and reply (struct vfio_region_info). */
struct vfu_region_info {
    uint32_t argsz;
    uint32_t flags;    /* VFIO_REGION_INFO_FLAG_* */
    uint32_t index;
    uint32_t cap_offset;
    uint64_t size;
    uint64_t offset;
} __attribute__((packed));

/* DEVICE_GET_IRQ_INFO request and reply (struct vfio_irq_info). */
struct vfu_irq_info {
    uint32_t argsz;
    uint32_t flags;    /* VFIO_IRQ_INFO_* */
    uint32_t index;
    uint32_t count;
} __attribute__((packed));

/* DEVICE_SET_IRQS request (struct vfio_irq_set head); eventfds in SCM_RIGHTS. */
struct vfu_irq_set {
    uint32_t argsz;
    uint32_t flags;    /* VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_* */
    uint32_t index;
    uint32_t start;
    uint32_t count;
} __attribute__((packed));

/* REGION_READ / REGION_WRITE request and reply head; data follows for a
 * write request and a read reply. */
struct vfu_region_access {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
} __attribute__((packed));

/*
 * VFE_IOEVENTFD (vendor): a write of `size` bytes at region/offset (matching
 * `data` when DATAMATCH is set) signals the eventfd passed in SCM_RIGHTS.
 * Mirror of the kernel's VFIO_DEVICE_IOEVENTFD.  Without fd and with DEASSIGN
 * the registration at region/offset is removed.  No reply payload.
 */
#define VFE_IOEVENTFD_SIZE_MASK  0xfu          /* 1, 2, 4 or 8 bytes */
#define VFE_IOEVENTFD_DATAMATCH  (1u << 16)
#define VFE_IOEVENTFD_DEASSIGN   (1u << 17)
#define VFE_IOEVENTFD_FLAGS_ALL  (VFE_IOEVENTFD_SIZE_MASK | VFE_IOEVENTFD_DATAMATCH | VFE_IOEVENTFD_DEASSIGN)
struct vfu_vfe_ioeventfd {
    uint32_t argsz;    /* sizeof(struct vfu_vfe_ioeventfd) */
    uint32_t flags;
    uint32_t region;
    uint32_t rsvd;     /* 0 */
    uint64_t offset;
    uint64_t data;
} __attribute__((packed));

_Static_assert(sizeof(struct vfu_hdr) == 16, "vfio-user header");
_Static_assert(sizeof(struct vfu_dma_map) == 32, "dma_map");
_Static_assert(sizeof(struct vfu_dma_unmap) == 24, "dma_unmap");
_Static_assert(sizeof(struct vfu_device_info) == 16, "device_info");
_Static_assert(sizeof(struct vfu_region_info) == 32, "region_info");
_Static_assert(sizeof(struct vfu_irq_info) == 16, "irq_info");
_Static_assert(sizeof(struct vfu_irq_set) == 20, "irq_set");
_Static_assert(sizeof(struct vfu_region_access) == 16, "region_access");
_Static_assert(sizeof(struct vfu_vfe_ioeventfd) == 32, "vfe_ioeventfd");

/* Our limits.  max_data_xfer_size is the spec's default (1 MiB); a message holds
 * at most that much data plus its fixed head. */
#define VFU_MAX_DATA_XFER   (1u << 20)
#define VFU_MAX_MSG_SIZE    (VFU_MAX_DATA_XFER + 4096u)
#define VFU_MAX_MSG_FDS     64u
/* Region info: the reply room a client offers for capabilities, and the
 * sparse-mmap areas it keeps per region. */
#define VFU_REGION_INFO_ROOM 256u
#define VFU_MAX_SPARSE_AREAS 8u
/* Fds the kernel may hand us in one recvmsg (SCM_MAX_FD); we take them all so
 * none leak, then refuse the message if more than VFU_MAX_MSG_FDS arrived. */
#define VFU_RECV_FDS_SPACE  253u
#define VFU_MAX_VERSION_JSON 4096u

/* "vfe" capability object in VERSION JSON. */
#define VFU_VFE_CAP_VERSION 1

#endif
