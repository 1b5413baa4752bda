/* vhost-user wire format (QEMU docs/interop/vhost-user.rst): numbers and payloads. */
#ifndef VHOST_PROTO_H
#define VHOST_PROTO_H

#include <stdint.h>

#define VHOST_USER_VERSION      1u
#define VHOST_USER_FLAG_VERSION 0x3u
#define VHOST_USER_FLAG_REPLY   (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)
#define VHOST_USER_HDR_SIZE     12u
#define VHOST_USER_MAX_FDS      8u
#define VHOST_USER_MAX_PAYLOAD  4096u

enum vhost_user_request {
    VHOST_USER_GET_FEATURES = 1, VHOST_USER_SET_FEATURES = 2, VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4, VHOST_USER_SET_MEM_TABLE = 5, VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7, VHOST_USER_SET_VRING_NUM = 8, VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10, VHOST_USER_GET_VRING_BASE = 11, VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13, VHOST_USER_SET_VRING_ERR = 14, VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16, VHOST_USER_GET_QUEUE_NUM = 17, VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_SEND_RARP = 19, VHOST_USER_NET_SET_MTU = 20, VHOST_USER_SET_BACKEND_REQ_FD = 21,
    VHOST_USER_IOTLB_MSG = 22, VHOST_USER_SET_VRING_ENDIAN = 23, VHOST_USER_GET_CONFIG = 24,
    VHOST_USER_SET_CONFIG = 25, VHOST_USER_GET_INFLIGHT_FD = 31, VHOST_USER_SET_INFLIGHT_FD = 32,
    VHOST_USER_RESET_DEVICE = 34, VHOST_USER_GET_MAX_MEM_SLOTS = 36, VHOST_USER_ADD_MEM_REG = 37,
    VHOST_USER_REM_MEM_REG = 38, VHOST_USER_SET_STATUS = 39, VHOST_USER_GET_STATUS = 40,
    VHOST_USER_REQUEST_MAX = 41,
};

enum vhost_user_backend_request {
    VHOST_USER_BACKEND_IOTLB_MSG = 1, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
    VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3, VHOST_USER_BACKEND_VRING_CALL = 4,
    VHOST_USER_BACKEND_VRING_ERR = 5,
};

enum vhost_user_protocol_feature {
    VHOST_USER_PROTOCOL_F_MQ = 0, VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1, VHOST_USER_PROTOCOL_F_RARP = 2,
    VHOST_USER_PROTOCOL_F_REPLY_ACK = 3, VHOST_USER_PROTOCOL_F_NET_MTU = 4,
    VHOST_USER_PROTOCOL_F_BACKEND_REQ = 5, VHOST_USER_PROTOCOL_F_CONFIG = 9,
    VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD = 10, VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11,
    VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12, VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,
    VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15, VHOST_USER_PROTOCOL_F_STATUS = 16,
};

#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VHOST_F_LOG_ALL 26

#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD     (1u << 8)

struct vhost_user_hdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
} __attribute__((packed));

struct vhost_user_vring_state {
    uint32_t index;
    uint32_t num;
} __attribute__((packed));

struct vhost_user_vring_addr {
    uint32_t index;
    uint32_t flags;          /* bit 0: log used ring */
    uint64_t desc;           /* front-end (QEMU) virtual addresses */
    uint64_t used;
    uint64_t avail;
    uint64_t log;            /* guest physical */
} __attribute__((packed));

struct vhost_user_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t qva;
    uint64_t mmap_offset;
} __attribute__((packed));

struct vhost_user_mem_table {
    uint32_t nregions;
    uint32_t padding;
    struct vhost_user_region regions[8];
} __attribute__((packed));

struct vhost_user_mem_reg {
    uint64_t padding;
    struct vhost_user_region region;
} __attribute__((packed));

struct vhost_user_log {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} __attribute__((packed));

struct vhost_user_notifier_area {
    uint64_t u64;            /* ring index, VHOST_USER_VRING_NOFD */
    uint64_t size;
    uint64_t offset;
} __attribute__((packed));

#endif
