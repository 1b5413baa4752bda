/*
 * A fake modern virtio-pci device behind a struct vfe_transport, for unit tests
 * of the driver side: config space and BAR images in memory, the common cfg
 * registers emulated, DMA maps mmapped from the fds they carry, and a tiny
 * device side of split rings.  Tests reach into the struct to corrupt things.
 */
#ifndef TESTS_FAKE_VDEV_H
#define TESTS_FAKE_VDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/bus/vfio/vfe_transport.h"

#define FV_NQ            8
#define FV_MSIX_VECTORS  10
#define FV_BAR0_SIZE     0x10000u
#define FV_BAR1_SIZE     0x1000u
#define FV_COMMON        0x0000u
#define FV_ISR           0x1000u
#define FV_DEVICE        0x2000u
#define FV_NOTIFY        0x3000u
#define FV_NOTIFY_MULT   4096u
/* Capability offsets in config space. */
#define FV_CAP_COMMON    0x40
#define FV_CAP_NOTIFY    0x50
#define FV_CAP_ISR       0x64
#define FV_CAP_DEVICE    0x74
#define FV_CAP_PCICFG    0x84
#define FV_CAP_MSIX      0x98
#define FV_EXT_AER       0x100
#define FV_EXT_SRIOV     0x140
#define FV_MAX_LOG       1024

struct fv_queue {
    uint16_t max, size, msix, enable, notify_off;
    uint64_t desc, avail, used;
    uint16_t last_avail, used_idx;     /* device side */
    unsigned notifies;
};

struct fv_access {
    uint32_t region;
    uint64_t off;
    uint32_t len;
    uint64_t val;
};

struct fv_seg {
    uint64_t iova;
    uint32_t len;
    bool write;
};

struct fv_elem {
    uint16_t head;
    unsigned n;
    struct fv_seg seg[16];
};

struct fake_vdev {
    struct vfe_transport t;
    uint8_t cfg[4096];
    uint32_t cfg_size;
    uint64_t bar_size[6];

    uint64_t dev_features, drv_features;
    uint32_t dfsel, gfsel;
    uint8_t status, gen;
    uint16_t msix_config, qsel, num_queues;
    struct fv_queue q[FV_NQ];
    uint8_t devcfg[64];

    /* behaviour switches */
    bool refuse_features;      /* clear FEATURES_OK when it is set */
    bool reset_stuck;          /* status never reads back 0 */
    bool gen_unstable;         /* config_generation changes on every read */

    /* DMA */
    struct { uint64_t iova, len; uint8_t *va; } map[4];
    unsigned nmaps;
    int irq_fds[FV_MSIX_VECTORS];

    /* BAR0 writes, in order */
    struct fv_access log[FV_MAX_LOG];
    unsigned nlog;

    void (*on_notify)(struct fake_vdev *d, uint16_t qidx);
    void *priv;
};

/* A valid device: caps as the sim lays them out, 4 KiB config space with an
 * AER then SR-IOV extended capability, `nq` queues of max size `qmax`. */
void fv_init(struct fake_vdev *d, uint16_t nq, uint16_t qmax);
void fv_fini(struct fake_vdev *d);
void fv_vendor_cap(struct fake_vdev *d, unsigned off, unsigned next, uint8_t type, uint8_t cap_len,
                   uint8_t bar, uint32_t offset, uint32_t length);
void fv_put16(uint8_t *p, uint16_t v);
void fv_put32(uint8_t *p, uint32_t v);
/* Index of the last BAR0 write at off, or -1. */
int fv_find_write(const struct fake_vdev *d, uint64_t off, unsigned from);

/* Device side of split rings through the DMA maps. */
void *fv_ptr(struct fake_vdev *d, uint64_t iova, size_t len);
/* 1 and the next chain, 0 if none, -1 on a malformed chain. */
int fv_pop(struct fake_vdev *d, uint16_t qidx, struct fv_elem *e);
/* Copy into / out of a chain's writable / readable segments from byte `at`. */
size_t fv_write_in(struct fake_vdev *d, const struct fv_elem *e, size_t at, const void *src, size_t len);
size_t fv_read_out(struct fake_vdev *d, const struct fv_elem *e, void *dst, size_t cap);
/* Add a used entry without publishing; fv_flush publishes and signals. */
void fv_fill(struct fake_vdev *d, uint16_t qidx, unsigned ahead, uint16_t id, uint32_t len);
void fv_flush(struct fake_vdev *d, uint16_t qidx, unsigned count);
static inline void fv_push(struct fake_vdev *d, uint16_t qidx, uint16_t id, uint32_t len)
{
    fv_fill(d, qidx, 0, id, len);
    fv_flush(d, qidx, 1);
}

#endif
