/*
 * Wire formats of the PF admin virtqueue, as the driver (virtio_mi) reads
 * them.  The sim has its own reading (sim/spec/sim_admin_spec.h), so a
 * misreading on either side shows in the tests.  All fields little-endian.
 *
 * One command = one descriptor chain: device-readable command bytes, then
 * device-writable result bytes.  The first byte tells the dialects apart: a
 * standard opcode is < 0x40, an nvidia class is 64 or 65.
 *
 * nvidia dialect:   readable  { u8 class; u8 cmd; u8 data[] }
 *                   writable  { u8 result[]; u8 status }   (status is the LAST
 *                   byte of the writable area the driver supplied; the used
 *                   length tells how many result bytes are valid, status included)
 * virtio dialect:   readable  struct vfe_adm_std_cmd + data[]
 *                   writable  struct vfe_adm_std_res + result[]
 */
#ifndef VFE_ADMIN_WIRE_H
#define VFE_ADMIN_WIRE_H

#include <stdint.h>

/* ---------------- nvidia dialect ---------------- */
#define VFE_NV_CLASS_MIG    64
#define VFE_NV_CLASS_DIRTY  65

enum {
    VFE_NV_MIG_IDENTITY = 0,
    VFE_NV_MIG_GET_STATUS = 1,        /* data: nv_vdev;       result: u8 state */
    VFE_NV_MIG_MODIFY_STATUS = 2,     /* data: nv_modify */
    VFE_NV_MIG_PENDING_BYTES = 3,     /* data: nv_vdev;       result: le64 bytes */
    VFE_NV_MIG_SAVE_STATE = 4,        /* data: nv_save;       result: blob bytes */
    VFE_NV_MIG_RESTORE_STATE = 5,     /* data: nv_vdev + blob */
    VFE_NV_MIG_ANNOUNCE = 6,          /* data: nv_announce (vendor extension: RARP from the VF) */
};
enum {
    VFE_NV_DIRTY_IDENTITY = 0,
    VFE_NV_DIRTY_START = 1,           /* data: nv_start_track + sges */
    VFE_NV_DIRTY_STOP = 2,            /* data: nv_vdev */
    VFE_NV_DIRTY_PENDING_BYTES = 3,   /* data: nv_vdev;       result: le64 bytes */
    VFE_NV_DIRTY_REPORT = 4,          /* data: nv_report;     result: bitmap bytes */
};
enum { VFE_NV_STATE_INIT = 0, VFE_NV_STATE_RUNNING = 1, VFE_NV_STATE_QUIESCED = 2, VFE_NV_STATE_FREEZED = 3 };
enum { VFE_NV_TRACK_PUSH_BITMAP = 1, VFE_NV_TRACK_PUSH_BYTEMAP = 2,
       VFE_NV_TRACK_PULL_BITMAP = 3, VFE_NV_TRACK_PULL_BYTEMAP = 4 };

/* status byte: low 7 bits a code, bit 7 = do not retry */
#define VFE_NV_ST_OK          0x00
#define VFE_NV_ST_EINVAL      0x01   /* malformed command / bad field */
#define VFE_NV_ST_ENODEV      0x02   /* unknown vdev_id */
#define VFE_NV_ST_EBUSY       0x03   /* wrong state for this command; retry may succeed */
#define VFE_NV_ST_ENOSPC      0x04   /* result area too small */
#define VFE_NV_ST_EUNSUPP     0x05   /* unknown class/command */
#define VFE_NV_ST_FAULT       0x06   /* injected failure / device error */
#define VFE_NV_ST_NO_RETRY    0x80

#define VFE_NV_MAX_SGES 32

struct vfe_nv_vdev { uint16_t vdev_id; uint16_t rsvd; } __attribute__((packed));  /* VF number 1..N */
struct vfe_nv_modify { uint16_t vdev_id; uint8_t state; uint8_t rsvd; } __attribute__((packed));
struct vfe_nv_save { uint16_t vdev_id; uint16_t rsvd; uint32_t offset; } __attribute__((packed));
struct vfe_nv_announce { uint16_t vdev_id; uint8_t mac[6]; } __attribute__((packed));
struct vfe_nv_sge { uint64_t addr; uint32_t len; uint32_t rsvd; } __attribute__((packed));
struct vfe_nv_start_track {
    uint16_t vdev_id;
    uint8_t track_mode;
    uint8_t num_sges;
    uint32_t vdev_host_page_size;
    uint64_t range_addr;
    uint64_t range_length;
    /* struct vfe_nv_sge sges[num_sges]: push mode bitmap, in the PF's DMA space */
} __attribute__((packed));
struct vfe_nv_report {           /* pull: bitmap of [range_addr+offset*8*page, ...) read and cleared */
    uint16_t vdev_id;
    uint16_t rsvd;
    uint32_t offset;             /* byte offset into the bitmap */
} __attribute__((packed));

/* State blob (SAVE / RESTORE): a sequence of TLVs. */
struct vfe_nv_tlv { uint16_t type; uint16_t rsvd; uint32_t len; /* value[len], then pad to 8 */ } __attribute__((packed));
enum {
    VFE_NV_TLV_COMMON_CFG = 1,   /* struct vfe_state_common */
    VFE_NV_TLV_DEVICE_CFG = 2,   /* raw virtio_net_config bytes */
    VFE_NV_TLV_RX_MODE = 3,      /* u8 rx_mode */
    VFE_NV_TLV_VQ_CFG = 4,       /* struct vfe_state_vq_cfg */
    VFE_NV_TLV_VQ_SPLIT = 5,     /* struct vfe_state_vq_split */
    VFE_NV_TLV_NET_PAIRS = 6,    /* le16 active queue pairs (ctrl VQ_PAIRS_SET); optional */
};

/* ---------------- shared state records ---------------- */
struct vfe_state_common {
    uint64_t device_features;
    uint64_t driver_features;
    uint16_t msix_config;
    uint16_t num_queues;
    uint8_t status;
    uint8_t rsvd[3];
} __attribute__((packed));
struct vfe_state_vq_cfg {
    uint16_t index, size, msix_vector, enabled;
    uint64_t desc, avail, used;
} __attribute__((packed));
struct vfe_state_vq_split {
    uint16_t index, last_avail, last_used, rsvd;
} __attribute__((packed));

/* ---------------- virtio (standard) dialect ---------------- */
enum {
    VFE_ADM_LIST_QUERY = 0x0,
    VFE_ADM_LIST_USE = 0x1,
    VFE_ADM_DEV_PARTS_METADATA_GET = 0xe,
    VFE_ADM_DEV_PARTS_GET = 0xf,
    VFE_ADM_DEV_PARTS_SET = 0x10,
    VFE_ADM_DEV_MODE_SET = 0x11,
};
#define VFE_ADM_GROUP_SRIOV 1
#define VFE_ADM_MODE_F_STOPPED (1u << 0)  /* no new buffers used, state still writable */
#define VFE_ADM_MODE_F_FROZEN  (1u << 1)  /* no DMA, no interrupts, parts readable/settable */

enum { VFE_ADM_ST_OK = 0, VFE_ADM_ST_EAGAIN = 11, VFE_ADM_ST_ENOMEM = 12, VFE_ADM_ST_EINVAL = 22 };
enum {
    VFE_ADM_SQ_OK = 0, VFE_ADM_SQ_INVALID_COMMAND = 1, VFE_ADM_SQ_INVALID_OPCODE = 2,
    VFE_ADM_SQ_INVALID_FIELD = 3, VFE_ADM_SQ_INVALID_GROUP = 4, VFE_ADM_SQ_INVALID_MEMBER = 5,
    VFE_ADM_SQ_NORESOURCE = 6,
};

struct vfe_adm_std_cmd {
    uint16_t opcode;
    uint16_t group_type;
    uint8_t rsvd[12];
    uint64_t group_member_id;
} __attribute__((packed));
struct vfe_adm_std_res {
    uint16_t status;
    uint16_t status_qualifier;
    uint8_t rsvd[4];
} __attribute__((packed));

/* Device parts (DEV_PARTS_GET result, DEV_PARTS_SET data): a sequence of
 * { struct vfe_adm_part_hdr; value[length] } padded to 8 bytes. */
enum {
    VFE_ADM_PART_DEV_FEATURES = 0x100,   /* le64 */
    VFE_ADM_PART_DRV_FEATURES = 0x101,   /* le64 */
    VFE_ADM_PART_PCI_COMMON_CFG = 0x102, /* struct vfe_state_common */
    VFE_ADM_PART_DEVICE_STATUS = 0x103,  /* u8 */
    VFE_ADM_PART_VQ_CFG = 0x104,         /* struct vfe_state_vq_cfg */
    VFE_ADM_PART_VQ_NOTIFY_CFG = 0x105,  /* le16 notify_off */
    VFE_ADM_PART_VQ_SPLIT_STATE = 0x106, /* struct vfe_state_vq_split (vfe's choice, see docs) */
    VFE_ADM_PART_NET_CFG = 0x200,        /* raw virtio_net_config */
    VFE_ADM_PART_NET_RX_MODE = 0x201,    /* u8 */
    VFE_ADM_PART_NET_MQ_PAIRS = 0x202,   /* le16 active queue pairs; optional */
};
struct vfe_adm_part_hdr {
    uint16_t type;
    uint8_t flags;
    uint8_t rsvd;
    uint32_t length;
} __attribute__((packed));
struct vfe_adm_parts_get { uint32_t type; uint32_t rsvd; } __attribute__((packed));  /* 0 = all parts */
struct vfe_adm_metadata_res { uint32_t total_size; uint32_t count; } __attribute__((packed));
struct vfe_adm_mode_set { uint8_t flags; uint8_t rsvd[7]; } __attribute__((packed));

/* Pull dirty report as a vfe extension of the virtio dialect (the spec has no
 * dirty tracking): same data as nvidia START/STOP/REPORT, opcodes in the
 * vendor range. */
enum { VFE_ADM_DIRTY_START = 0x30, VFE_ADM_DIRTY_STOP = 0x31, VFE_ADM_DIRTY_REPORT = 0x32 };

#define VFE_ADM_MAX_CMD 4096        /* readable bytes accepted by the device */
#define VFE_ADM_MAX_RESULT (1u << 20)

#endif
