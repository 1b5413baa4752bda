/*
 * The virtio-pci device interface as the sim (the device side) reads it:
 * virtio 1.3, 4.1.4 "Virtio Structure PCI Capabilities" and 6 "Reserved
 * Feature Bits".  Kept apart from the driver's drivers/common/virtio on
 * purpose: device and driver are two independent readings of the
 * specification, so a misreading on one side fails the tests that join them.
 * tests/unit/sim/test_sim_spec.c checks this reading against the Linux uapi.
 */
#ifndef SIM_SPEC_SIM_VIRTIO_SPEC_H
#define SIM_SPEC_SIM_VIRTIO_SPEC_H

/* struct virtio_pci_common_cfg, byte offsets of its fields (4.1.4.3).  The
 * last three exist with VIRTIO_F_RING_RESET / VIRTIO_F_ADMIN_VQ. */
enum sim_common_cfg_off {
    SIM_CC_DEVICE_FEATURE_SELECT = 0,   /* le32 */
    SIM_CC_DEVICE_FEATURE = 4,          /* le32, read-only */
    SIM_CC_DRIVER_FEATURE_SELECT = 8,   /* le32 */
    SIM_CC_DRIVER_FEATURE = 12,         /* le32 */
    SIM_CC_CONFIG_MSIX_VECTOR = 16,     /* le16 */
    SIM_CC_NUM_QUEUES = 18,             /* le16, read-only */
    SIM_CC_DEVICE_STATUS = 20,          /* u8 */
    SIM_CC_CONFIG_GENERATION = 21,      /* u8, read-only */
    SIM_CC_QUEUE_SELECT = 22,           /* le16; the fields below are of that queue */
    SIM_CC_QUEUE_SIZE = 24,             /* le16 */
    SIM_CC_QUEUE_MSIX_VECTOR = 26,      /* le16 */
    SIM_CC_QUEUE_ENABLE = 28,           /* le16 */
    SIM_CC_QUEUE_NOTIFY_OFF = 30,       /* le16, read-only */
    SIM_CC_QUEUE_DESC_LO = 32,          /* le64 as two le32 */
    SIM_CC_QUEUE_DESC_HI = 36,
    SIM_CC_QUEUE_DRIVER_LO = 40,        /* the available ring */
    SIM_CC_QUEUE_DRIVER_HI = 44,
    SIM_CC_QUEUE_DEVICE_LO = 48,        /* the used ring */
    SIM_CC_QUEUE_DEVICE_HI = 52,
    SIM_CC_QUEUE_NOTIFY_DATA = 56,      /* le16, read-only */
    SIM_CC_QUEUE_RESET = 58,            /* le16 */
    SIM_CC_ADMIN_QUEUE_INDEX = 60,      /* le16, read-only */
    SIM_CC_ADMIN_QUEUE_NUM = 62,        /* le16, read-only */
    SIM_CC_SIZE = 64,
};

/* cfg_type of a virtio vendor capability (4.1.4). */
enum sim_pci_cap_type {
    SIM_PCI_CAP_COMMON_CFG = 1,
    SIM_PCI_CAP_NOTIFY_CFG = 2,
    SIM_PCI_CAP_ISR_CFG = 3,
    SIM_PCI_CAP_DEVICE_CFG = 4,
    SIM_PCI_CAP_PCI_CFG = 5,
};

/* Device-independent feature bits the sim offers (6). */
#define SIM_F_RING_RESET 40
#define SIM_F_ADMIN_VQ   41

/* No MSI-X vector for the config change or a queue (4.1.5.1.2). */
#define SIM_MSI_NO_VECTOR 0xffff

/*
 * vfe's counters capability (docs/sim.md "PCI model"): a virtio_pci_cap with
 * a cfg_type the spec leaves reserved, so drivers that do not know it skip
 * it.  It points at SIM_CTR_COUNT le64 counters, in this order.
 */
#define SIM_PCI_CAP_VFE_COUNTERS 0x80
enum sim_counter {
    SIM_CTR_RX_PACKETS,
    SIM_CTR_RX_BYTES,
    SIM_CTR_RX_DROPS,
    SIM_CTR_TX_PACKETS,
    SIM_CTR_TX_BYTES,
    SIM_CTR_TX_DROPS,
    SIM_CTR_COUNT,
};

#endif
