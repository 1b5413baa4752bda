/*
 * vhost-user wire format as the front-end sees it (QEMU docs/interop/vhost-user.rst).
 * Defined here on purpose, apart from lib/vhost, so that the test front-end and
 * our back-end are two independent readings of the specification.
 */
#ifndef VFE_FE_PROTO_H
#define VFE_FE_PROTO_H

#include <stdint.h>

enum vfe_fe_req {
    VFE_FE_GET_FEATURES = 1, VFE_FE_SET_FEATURES = 2, VFE_FE_SET_OWNER = 3, VFE_FE_RESET_OWNER = 4,
    VFE_FE_SET_MEM_TABLE = 5, VFE_FE_SET_LOG_BASE = 6, VFE_FE_SET_LOG_FD = 7, VFE_FE_SET_VRING_NUM = 8,
    VFE_FE_SET_VRING_ADDR = 9, VFE_FE_SET_VRING_BASE = 10, VFE_FE_GET_VRING_BASE = 11,
    VFE_FE_SET_VRING_KICK = 12, VFE_FE_SET_VRING_CALL = 13, VFE_FE_SET_VRING_ERR = 14,
    VFE_FE_GET_PROTOCOL_FEATURES = 15, VFE_FE_SET_PROTOCOL_FEATURES = 16, VFE_FE_GET_QUEUE_NUM = 17,
    VFE_FE_SET_VRING_ENABLE = 18, VFE_FE_SEND_RARP = 19, VFE_FE_NET_SET_MTU = 20,
    VFE_FE_SET_BACKEND_REQ_FD = 21, VFE_FE_IOTLB_MSG = 22, VFE_FE_SET_VRING_ENDIAN = 23,
    VFE_FE_GET_CONFIG = 24, VFE_FE_SET_CONFIG = 25, VFE_FE_GET_INFLIGHT_FD = 31,
    VFE_FE_SET_INFLIGHT_FD = 32, VFE_FE_RESET_DEVICE = 34, VFE_FE_GET_MAX_MEM_SLOTS = 36,
    VFE_FE_ADD_MEM_REG = 37, VFE_FE_REM_MEM_REG = 38, VFE_FE_SET_STATUS = 39, VFE_FE_GET_STATUS = 40,
};

/* Requests the back-end sends on the backend channel. */
enum vfe_fe_backend_req {
    VFE_FE_B_IOTLB_MSG = 1, VFE_FE_B_CONFIG_CHANGE = 2, VFE_FE_B_HOST_NOTIFIER = 3,
    VFE_FE_B_VRING_CALL = 4, VFE_FE_B_VRING_ERR = 5,
};
#define VFE_FE_B_MAX_REQ 16

enum vfe_fe_proto_bit {
    VFE_FE_PF_MQ = 0, VFE_FE_PF_LOG_SHMFD = 1, VFE_FE_PF_RARP = 2, VFE_FE_PF_REPLY_ACK = 3,
    VFE_FE_PF_NET_MTU = 4, VFE_FE_PF_BACKEND_REQ = 5, VFE_FE_PF_CROSS_ENDIAN = 6, VFE_FE_PF_CONFIG = 9,
    VFE_FE_PF_BACKEND_SEND_FD = 10, VFE_FE_PF_HOST_NOTIFIER = 11, VFE_FE_PF_INFLIGHT_SHMFD = 12,
    VFE_FE_PF_RESET_DEVICE = 13, VFE_FE_PF_CONFIGURE_MEM_SLOTS = 15, VFE_FE_PF_STATUS = 16,
};

#define VFE_FE_F_PROTOCOL_FEATURES 30   /* virtio feature bit reused by vhost-user */
#define VFE_FE_F_LOG_ALL 26

#define VFE_FE_VERSION 0x1u
#define VFE_FE_FLAG_REPLY (1u << 2)
#define VFE_FE_FLAG_NEED_REPLY (1u << 3)
#define VFE_FE_VERSION_MASK 0x3u

#define VFE_FE_MAX_FDS 8
#define VFE_FE_MAX_MEM_TABLE 8          /* regions in one SET_MEM_TABLE */
#define VFE_FE_VRING_NOFD (1ull << 8)   /* KICK/CALL/ERR payload: no fd attached */
#define VFE_FE_VRING_F_LOG 0x1u         /* SET_VRING_ADDR flags: log used ring writes */
#define VFE_FE_LOG_PAGE 4096u

struct vfe_fe_msg_hdr {
    uint32_t request, flags, size;
} __attribute__((packed));

struct vfe_fe_vring_state {
    uint32_t index, num;
} __attribute__((packed));

struct vfe_fe_vring_addr {
    uint32_t index, flags;
    uint64_t desc, used, avail, log;   /* front-end virtual addresses; log is a GPA */
} __attribute__((packed));

struct vfe_fe_region_desc {
    uint64_t gpa, size, uaddr, mmap_offset;
} __attribute__((packed));

struct vfe_fe_mem_table {
    uint32_t nregions, padding;
    struct vfe_fe_region_desc regions[VFE_FE_MAX_MEM_TABLE];
} __attribute__((packed));

struct vfe_fe_mem_reg {
    uint64_t padding;
    struct vfe_fe_region_desc region;
} __attribute__((packed));

struct vfe_fe_log_desc {
    uint64_t size, offset;
} __attribute__((packed));

struct vfe_fe_vring_area {
    uint64_t u64;    /* ring index in bits 0-7, bit 8: no fd */
    uint64_t size, offset;
} __attribute__((packed));

#endif
