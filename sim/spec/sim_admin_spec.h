/*
 * The PF admin virtqueue as the sim (the device side) reads it.  Written apart
 * from the driver's drivers/common/virtio_mi on purpose: device and driver are
 * two independent readings, so a misreading on one side fails the tests that
 * join them.  All fields little-endian.
 *
 * Sources:
 *   - virtio dialect: virtio 1.3, 2.12 "Administration Virtqueues" (command
 *     layout, status, status qualifiers, group type, LIST_QUERY/LIST_USE and
 *     the device parts opcodes).  The payloads of the device parts commands are
 *     vfe's simplified encoding described in docs/admin-queue.md (no resource
 *     objects, an 8-byte part header), as are the dirty-page opcodes 0x30..0x32.
 *   - nvidia dialect and the state records: docs/admin-queue.md.
 *
 * One command is one descriptor chain: device-readable bytes, then a
 * device-writable area.  The first readable byte tells the dialects apart:
 * 64 or 65 is an nvidia class, a standard opcode is below 0x40.
 */
#ifndef SIM_SPEC_SIM_ADMIN_SPEC_H
#define SIM_SPEC_SIM_ADMIN_SPEC_H

#include <stdint.h>

/* Device limits of the sim (not wire facts). */
#define SIM_ADM_MAX_CMD    4096u          /* readable bytes accepted */
#define SIM_ADM_MAX_RESULT (1u << 20)     /* writable bytes used at most */

/* ---------------- virtio (standard) dialect ---------------- */

/* readable: header, then command-specific data */
struct sim_adm_cmd_hdr {
    uint16_t opcode;
    uint16_t group_type;
    uint8_t reserved1[12];
    uint64_t group_member_id;       /* SR-IOV group: the VF number, 1..NumVFs */
} __attribute__((packed));

/* writable: status, then command-specific result */
struct sim_adm_cmd_status {
    uint16_t status;
    uint16_t status_qualifier;
    uint8_t reserved2[4];
} __attribute__((packed));

#define SIM_ADM_GROUP_SRIOV 1

enum sim_adm_opcode {
    SIM_ADM_LIST_QUERY = 0x00,      /* result: le64 bitmap words of supported opcodes */
    SIM_ADM_LIST_USE = 0x01,        /* data: le64 bitmap words the driver will use */
    SIM_ADM_DEV_PARTS_METADATA_GET = 0x0e,
    SIM_ADM_DEV_PARTS_GET = 0x0f,
    SIM_ADM_DEV_PARTS_SET = 0x10,
    SIM_ADM_DEV_MODE_SET = 0x11,
    /* vfe's dirty-page extension: nvidia class 65 payloads after the header */
    SIM_ADM_DIRTY_START = 0x30,
    SIM_ADM_DIRTY_STOP = 0x31,
    SIM_ADM_DIRTY_REPORT = 0x32,
};

/* status: errno-like values */
enum sim_adm_status {
    SIM_ADM_STATUS_OK = 0,
    SIM_ADM_STATUS_EAGAIN = 11,
    SIM_ADM_STATUS_ENOMEM = 12,
    SIM_ADM_STATUS_EINVAL = 22,
};

enum sim_adm_qualifier {
    SIM_ADM_Q_OK = 0,
    SIM_ADM_Q_INVALID_COMMAND = 1,
    SIM_ADM_Q_INVALID_OPCODE = 2,
    SIM_ADM_Q_INVALID_FIELD = 3,
    SIM_ADM_Q_INVALID_GROUP = 4,
    SIM_ADM_Q_INVALID_MEMBER = 5,
    SIM_ADM_Q_NORESOURCE = 6,
};

/* DEV_MODE_SET data: u8 flags, 7 reserved bytes */
#define SIM_ADM_MODE_STOPPED (1u << 0)  /* no new buffers used; state still settable */
#define SIM_ADM_MODE_FROZEN  (1u << 1)  /* no DMA, no interrupts */

/* DEV_PARTS_GET data: which part type, 0 = every part */
struct sim_adm_parts_get {
    uint32_t type;
    uint32_t reserved;
} __attribute__((packed));

/* DEV_PARTS_METADATA_GET result */
struct sim_adm_parts_metadata {
    uint32_t total_size;
    uint32_t count;
} __attribute__((packed));

/* A parts list: { header; value[length]; pad to 8 } repeated. */
struct sim_adm_part_hdr {
    uint16_t type;
    uint8_t flags;
    uint8_t reserved;
    uint32_t length;
} __attribute__((packed));

enum sim_adm_part_type {
    SIM_ADM_PART_DEV_FEATURES = 0x100,    /* le64 */
    SIM_ADM_PART_DRV_FEATURES = 0x101,    /* le64 */
    SIM_ADM_PART_PCI_COMMON_CFG = 0x102,  /* struct sim_state_common */
    SIM_ADM_PART_DEVICE_STATUS = 0x103,   /* u8 */
    SIM_ADM_PART_VQ_CFG = 0x104,          /* struct sim_state_vq_cfg */
    SIM_ADM_PART_VQ_NOTIFY_CFG = 0x105,   /* le16 notify_off */
    SIM_ADM_PART_VQ_SPLIT_STATE = 0x106,  /* struct sim_state_vq_split */
    SIM_ADM_PART_NET_CFG = 0x200,         /* raw virtio_net_config */
    SIM_ADM_PART_NET_RX_MODE = 0x201,     /* u8 */
    SIM_ADM_PART_NET_MQ_PAIRS = 0x202,    /* le16 active queue pairs; optional */
};

/* ---------------- nvidia dialect ----------------
 * readable: { u8 class; u8 cmd; data[] }
 * writable: { result[]; u8 status } -- status is the LAST byte of the area the
 * driver supplied; the used length counts the result bytes plus the status. */

enum sim_nv_class { SIM_NV_CLASS_MIG = 64, SIM_NV_CLASS_DIRTY = 65 };

enum sim_nv_mig_cmd {
    SIM_NV_MIG_IDENTITY = 0,
    SIM_NV_MIG_GET_STATUS = 1,        /* data: sim_nv_vdev;   result: u8 state */
    SIM_NV_MIG_MODIFY_STATUS = 2,     /* data: sim_nv_modify */
    SIM_NV_MIG_PENDING_BYTES = 3,     /* data: sim_nv_vdev;   result: le64 */
    SIM_NV_MIG_SAVE_STATE = 4,        /* data: sim_nv_save;   result: TLV blob bytes */
    SIM_NV_MIG_RESTORE_STATE = 5,     /* data: sim_nv_vdev + TLV blob */
    /* vendor extension (docs/admin-queue.md): the device sends a broadcast
     * RARP from the VF's port with source mac, so the network learns where a
     * migrated guest is.  The VF must run (else EBUSY); mac unicast, not zero
     * (else EINVAL). */
    SIM_NV_MIG_ANNOUNCE = 6,          /* data: sim_nv_announce */
};

enum sim_nv_dirty_cmd {
    SIM_NV_DIRTY_IDENTITY = 0,
    SIM_NV_DIRTY_START = 1,           /* data: sim_nv_start_track + sges */
    SIM_NV_DIRTY_STOP = 2,            /* data: sim_nv_vdev */
    SIM_NV_DIRTY_PENDING_BYTES = 3,   /* data: sim_nv_vdev;   result: le64 */
    SIM_NV_DIRTY_REPORT = 4,          /* data: sim_nv_report; result: bitmap bytes */
};

/* migration states: the numbers are enum sim_mig_state's (sim/sim.h) */

enum sim_nv_track_mode {
    SIM_NV_TRACK_PUSH_BITMAP = 1,
    SIM_NV_TRACK_PUSH_BYTEMAP = 2,
    SIM_NV_TRACK_PULL_BITMAP = 3,
    SIM_NV_TRACK_PULL_BYTEMAP = 4,
};

/* status byte: a code in the low 7 bits, bit 7 = the driver must not retry */
enum sim_nv_status {
    SIM_NV_ST_OK = 0x00,
    SIM_NV_ST_EINVAL = 0x01,          /* malformed command or bad field */
    SIM_NV_ST_ENODEV = 0x02,          /* unknown vdev_id */
    SIM_NV_ST_EBUSY = 0x03,           /* wrong state now; a retry may succeed */
    SIM_NV_ST_ENOSPC = 0x04,          /* result area too small */
    SIM_NV_ST_EUNSUPP = 0x05,         /* unknown class or command */
    SIM_NV_ST_FAULT = 0x06,           /* device error (or an injected one) */
};
#define SIM_NV_ST_NO_RETRY 0x80

#define SIM_NV_MAX_SGES 32

struct sim_nv_vdev { uint16_t vdev_id; uint16_t reserved; } __attribute__((packed));   /* VF number */
struct sim_nv_modify { uint16_t vdev_id; uint8_t state; uint8_t reserved; } __attribute__((packed));
struct sim_nv_save { uint16_t vdev_id; uint16_t reserved; uint32_t offset; } __attribute__((packed));
struct sim_nv_announce { uint16_t vdev_id; uint8_t mac[6]; } __attribute__((packed));
struct sim_nv_sge { uint64_t addr; uint32_t len; uint32_t reserved; } __attribute__((packed));
struct sim_nv_start_track {
    uint16_t vdev_id;
    uint8_t track_mode;               /* enum sim_nv_track_mode */
    uint8_t num_sges;
    uint32_t vdev_host_page_size;
    uint64_t range_addr;
    uint64_t range_length;
    /* then num_sges struct sim_nv_sge: the push bitmap, in the PF's DMA space */
} __attribute__((packed));
struct sim_nv_report {                /* pull: bitmap bytes from `offset`, read and cleared */
    uint16_t vdev_id;
    uint16_t reserved;
    uint32_t offset;
} __attribute__((packed));

/* SAVE/RESTORE blob: TLVs, each value padded to 8 bytes */
struct sim_nv_tlv { uint16_t type; uint16_t reserved; uint32_t len; } __attribute__((packed));
enum sim_nv_tlv_type {
    SIM_NV_TLV_COMMON_CFG = 1,        /* struct sim_state_common */
    SIM_NV_TLV_DEVICE_CFG = 2,        /* raw virtio_net_config */
    SIM_NV_TLV_RX_MODE = 3,           /* u8 */
    SIM_NV_TLV_VQ_CFG = 4,            /* struct sim_state_vq_cfg */
    SIM_NV_TLV_VQ_SPLIT = 5,          /* struct sim_state_vq_split */
    SIM_NV_TLV_NET_PAIRS = 6,         /* le16 active queue pairs; optional */
};

/* ---------------- state records of both dialects ---------------- */
struct sim_state_common {
    uint64_t device_features;
    uint64_t driver_features;
    uint16_t msix_config;
    uint16_t num_queues;
    uint8_t status;
    uint8_t reserved[3];
} __attribute__((packed));
struct sim_state_vq_cfg {
    uint16_t index, size, msix_vector, enabled;
    uint64_t desc, avail, used;
} __attribute__((packed));
struct sim_state_vq_split {
    uint16_t index, last_avail, last_used, reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct sim_adm_cmd_hdr) == 24, "virtio admin command header is 24 bytes");
_Static_assert(sizeof(struct sim_adm_cmd_status) == 8, "virtio admin status is 8 bytes");
_Static_assert(sizeof(struct sim_nv_announce) == 8, "ANNOUNCE data is 8 bytes");
_Static_assert(sizeof(struct sim_nv_start_track) == 24, "START_TRACK header is 24 bytes");
_Static_assert(sizeof(struct sim_state_common) == 24, "common state record is 24 bytes");
_Static_assert(sizeof(struct sim_state_vq_cfg) == 32, "vq cfg record is 32 bytes");

#endif
