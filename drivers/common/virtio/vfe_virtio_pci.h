/*
 * Modern virtio-pci driver over a vfe_transport: capability walk, status,
 * features, queue setup, MSI-X vectors, device config.  No blocking waits:
 * reset is started with vfe_vpci_reset() and polled with vfe_vpci_reset_done()
 * (the caller uses a timer); vfe_vpci_reset_wait() is a bounded blocking helper
 * for tools and tests only.  The transport is borrowed: its owner keeps it
 * open while vp is used.
 */
#ifndef VFE_VIRTIO_PCI_H
#define VFE_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/bus/vfio/vfe_transport.h"

/* Offsets in the common configuration structure (virtio 1.3 4.1.4.3). */
#define VFE_CC_DFSELECT       0
#define VFE_CC_DF             4
#define VFE_CC_GFSELECT       8
#define VFE_CC_GF             12
#define VFE_CC_MSIX           16
#define VFE_CC_NUMQ           18
#define VFE_CC_STATUS         20
#define VFE_CC_CFGGENERATION  21
#define VFE_CC_Q_SELECT       22
#define VFE_CC_Q_SIZE         24
#define VFE_CC_Q_MSIX         26
#define VFE_CC_Q_ENABLE       28
#define VFE_CC_Q_NOFF         30
#define VFE_CC_Q_DESCLO       32
#define VFE_CC_Q_DESCHI       36
#define VFE_CC_Q_AVAILLO      40
#define VFE_CC_Q_AVAILHI      44
#define VFE_CC_Q_USEDLO       48
#define VFE_CC_Q_USEDHI       52
#define VFE_CC_Q_NDATA        56
#define VFE_CC_Q_RESET        58
#define VFE_CC_ADMIN_Q_IDX    60
#define VFE_CC_ADMIN_Q_NUM    62
#define VFE_CC_SIZE           64

#define VFE_VIRTIO_F_VERSION_1       32
#define VFE_VIRTIO_F_ACCESS_PLATFORM 33
#define VFE_VIRTIO_F_RING_RESET      40
#define VFE_VIRTIO_F_ADMIN_VQ        41

#define VFE_VIRTIO_MSI_NO_VECTOR 0xffff

/* vfe's vendor capability (a reserved cfg_type, which other drivers ignore):
 * a window of le64 device counters, see docs/sim.md. */
#define VFE_VPCI_CAP_COUNTERS 0x80
enum { VFE_CTR_RX_PACKETS, VFE_CTR_RX_BYTES, VFE_CTR_RX_DROPS, VFE_CTR_TX_PACKETS, VFE_CTR_TX_BYTES,
       VFE_CTR_TX_DROPS, VFE_CTR_COUNT };

struct vfe_vpci_window {
    bool present;
    uint8_t bar;
    uint32_t offset;
    uint32_t length;
};

#define VFE_VPCI_NOTIFY_CACHE 64

struct vfe_virtio_pci {
    struct vfe_transport *t;
    uint16_t vendor_id, device_id;
    struct vfe_vpci_window common, notify, isr, device, counters;
    uint32_t notify_off_multiplier;
    uint16_t msix_vectors;        /* table size from the MSI-X capability, 0 if none */
    uint8_t msix_cap;             /* config offset of the MSI-X capability */
    uint16_t sriov_cap;           /* extended config offset of SR-IOV, 0 if none */
    uint16_t num_queues;
    /* queue_notify_off of queues 0..notify_cached-1, read by vfe_vpci_init:
     * the doorbell address is then known without a device read (the loop
     * never waits for one when a kick fd is set) */
    uint16_t notify_cached;
    uint16_t notify_offs[VFE_VPCI_NOTIFY_CACHE];
};

/* Read IDs and walk the capability list; fails with -ENODEV if the common,
 * notify or device window is missing or lies outside its BAR.  Caches the
 * notify offsets of the first VFE_VPCI_NOTIFY_CACHE queues (queue_select is
 * written: a selector, no device state).  Thread-safe: vps of different
 * threads may be initialised at the same time. */
int vfe_vpci_init(struct vfe_virtio_pci *vp, struct vfe_transport *t);

/* Set memory space and bus master enable in the PCI command register. */
int vfe_vpci_enable_bus_master(struct vfe_virtio_pci *vp);

int vfe_vpci_get_status(struct vfe_virtio_pci *vp, uint8_t *status);
int vfe_vpci_set_status(struct vfe_virtio_pci *vp, uint8_t status);
int vfe_vpci_add_status(struct vfe_virtio_pci *vp, uint8_t bits);
int vfe_vpci_reset(struct vfe_virtio_pci *vp);                    /* writes 0 */
int vfe_vpci_reset_done(struct vfe_virtio_pci *vp, bool *done);   /* status reads back 0 */
int vfe_vpci_reset_wait(struct vfe_virtio_pci *vp, int timeout_ms);

int vfe_vpci_get_features(struct vfe_virtio_pci *vp, uint64_t *features);
/* Writes driver features, sets FEATURES_OK and checks the device kept it. */
int vfe_vpci_negotiate(struct vfe_virtio_pci *vp, uint64_t features);

int vfe_vpci_queue_max(struct vfe_virtio_pci *vp, uint16_t qidx, uint16_t *max);
int vfe_vpci_queue_setup(struct vfe_virtio_pci *vp, uint16_t qidx, uint16_t size,
                         uint64_t desc, uint64_t avail, uint64_t used, uint16_t msix_vector);
int vfe_vpci_queue_enable(struct vfe_virtio_pci *vp, uint16_t qidx);
/* Write-only halves, for a caller that checks the device's answers itself
 * with asynchronous reads (direct mode's start): no register is read back.
 * set_driver_features writes both feature words; queue_select selects qidx
 * (the queue registers read next are its); queue_write selects qidx and
 * writes size, ring addresses and vector (-EINVAL: size not a power of two,
 * misaligned ring); set_config_vector_write writes the config vector. */
int vfe_vpci_set_driver_features(struct vfe_virtio_pci *vp, uint64_t features);
int vfe_vpci_queue_select(struct vfe_virtio_pci *vp, uint16_t qidx);
int vfe_vpci_queue_write(struct vfe_virtio_pci *vp, uint16_t qidx, uint16_t size, uint64_t desc, uint64_t avail,
                         uint64_t used, uint16_t msix_vector);
int vfe_vpci_config_vector_write(struct vfe_virtio_pci *vp, uint16_t vector);
/* Region index and offset of the queue's doorbell (for ioeventfd or host
 * notifier): from the cache filled at init, a device read only past it. */
int vfe_vpci_queue_notify_addr(struct vfe_virtio_pci *vp, uint16_t qidx, uint32_t *region, uint64_t *offset);
/* Ring the doorbell with a region write (slow path; prefer an ioeventfd). */
int vfe_vpci_queue_notify(struct vfe_virtio_pci *vp, uint16_t qidx);
int vfe_vpci_set_config_vector(struct vfe_virtio_pci *vp, uint16_t vector);
int vfe_vpci_admin_queue(struct vfe_virtio_pci *vp, uint16_t *index, uint16_t *num);

int vfe_vpci_read_device_cfg(struct vfe_virtio_pci *vp, uint32_t off, void *buf, size_t len);
int vfe_vpci_write_device_cfg(struct vfe_virtio_pci *vp, uint32_t off, const void *buf, size_t len);

/* The device's counters (VFE_CTR_*), when it has the counters window: 0,
 * -ENOTSUP without one, or a transport error. */
int vfe_vpci_read_counters(struct vfe_virtio_pci *vp, uint64_t ctr[VFE_CTR_COUNT]);

/* Enable MSI-X in the capability's message control word. */
int vfe_vpci_msix_enable(struct vfe_virtio_pci *vp);

/* ---- taking over a device another driver instance set up (HA restart) ----
 * vfe_vpci_init() only reads (config space and the common window).  The
 * functions below only read device state too; the one kind of write they do
 * is to the selector registers (device/driver feature select, queue_select),
 * which hold no device state: they choose what the next read returns.  No
 * status, feature, queue, vector or MSI-X register is ever written, so a
 * running device (DRIVER_OK, queues enabled, MSI-X on) keeps running. */

/* A queue's configuration as the device holds it. */
struct vfe_vpci_queue_cfg {
    uint16_t size, msix_vector, enabled, notify_off;
    uint64_t desc, avail, used;
};

/* What the device holds after a driver set it up. */
struct vfe_vpci_state {
    uint8_t status;
    uint64_t device_features, driver_features;
    uint16_t config_vector;
    bool msix_enabled, msix_masked;
};

int vfe_vpci_get_driver_features(struct vfe_virtio_pci *vp, uint64_t *features);
/* Selects qidx and reads its registers back.  -ENOENT: no such queue (size 0). */
int vfe_vpci_queue_read(struct vfe_virtio_pci *vp, uint16_t qidx, struct vfe_vpci_queue_cfg *q);
/* MSI-X message control: enabled and function mask bits.  -ENOTSUP without MSI-X. */
int vfe_vpci_msix_state(struct vfe_virtio_pci *vp, bool *enabled, bool *masked);
/* vfe_vpci_init() then read the state back into *st, for a PF or VF that is
 * to be driven on without a reset.  Errors: those of vfe_vpci_init, a
 * transport -errno, or -EIO when the device reports FAILED or NEEDS_RESET
 * (it cannot be taken over as it is; the caller decides to reset it).  A
 * status of 0 is not an error: the device was never set up or was reset. */
int vfe_vpci_adopt(struct vfe_virtio_pci *vp, struct vfe_transport *t, struct vfe_vpci_state *st);

#endif
