/*
 * Driver side of a split virtqueue living in memory the driver owns (a memfd
 * DMA-mapped for the device).  Used by the PF admin queue and by test guests.
 * Single-threaded; no locking.
 */
#ifndef VFE_VRING_H
#define VFE_VRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vfe_sg {
    uint64_t iova;
    uint32_t len;
};

struct vfe_vring {
    uint16_t size;
    bool event_idx;
    uint8_t *mem;            /* host address of the ring memory */
    uint64_t iova;           /* device address of the same memory */
    uint64_t desc_iova, avail_iova, used_iova;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint16_t free_head, num_free;   /* free descriptors */
    uint16_t in_flight;      /* chains added and not yet returned */
    uint16_t last_used;      /* next used entry the driver will read */
    uint16_t avail_shadow;   /* driver's avail index; vfe_vring_publish() stores it in avail->idx */
    uint16_t kicked_at;      /* avail index at the last notify decision */
    bool cb_enabled;         /* interrupts wanted (vfe_vring_enable_cb) */
    void **cookies;          /* per head descriptor, NULL when the head is not outstanding */
    /* Driver-private copies: the device shares the descriptor table, so the free
     * list and chain shape are never read back from it. */
    uint16_t *next;          /* free list link / chain link per descriptor */
    uint16_t *chain_len;     /* descriptors in the chain, per head */
    uint32_t *in_bytes;      /* device-writable bytes in the chain, per head */
};

/* Bytes of ring memory needed for `size` entries (desc, avail, used, aligned). */
size_t vfe_vring_mem_size(uint16_t size);
/* size must be a power of two <= 32768; mem must be vfe_vring_mem_size() bytes. */
int vfe_vring_init(struct vfe_vring *vr, uint16_t size, void *mem, uint64_t iova, bool event_idx);
void vfe_vring_fini(struct vfe_vring *vr);
/* Queue a chain of `out` device-readable then `in` device-writable buffers;
 * cookie must not be NULL.  Returns 0, -ENOSPC when the ring is full, -EINVAL
 * on bad arguments.  The device sees it after vfe_vring_publish(). */
int vfe_vring_add(struct vfe_vring *vr, const struct vfe_sg *sg, unsigned out, unsigned in, void *cookie);
/* Publish added chains; true if the device wants a notification. */
bool vfe_vring_publish(struct vfe_vring *vr);
/* Next completed chain: its cookie and the length the device wrote, or NULL.
 * Used entries naming a descriptor that is not an outstanding head are logged
 * and skipped; a length beyond the chain's writable bytes is clamped. */
void *vfe_vring_get_used(struct vfe_vring *vr, uint32_t *len);
/* Ask (event_idx: at the next used entry) for an interrupt, or suppress it.
 * After enabling, check vfe_vring_get_used() again before sleeping: an entry
 * may have landed before the device saw the request. */
void vfe_vring_enable_cb(struct vfe_vring *vr, bool enable);
/* Chains added and not yet returned by the device. */
unsigned vfe_vring_outstanding(const struct vfe_vring *vr);

/* ---- taking over a ring the device is using (HA restart) ---- */
#define VFE_VRING_CHAIN_MAX 4

/* One outstanding chain, as its driver knew it. */
struct vfe_vring_chain {
    void *cookie;            /* not NULL */
    uint16_t n;              /* descriptors, 1..VFE_VRING_CHAIN_MAX */
    uint16_t ids[VFE_VRING_CHAIN_MAX];   /* ids[0] is the head */
    uint32_t in_bytes;       /* device-writable bytes */
};

/* The outstanding chain whose cookie is `cookie`: 0, or -ENOENT (none, or
 * longer than VFE_VRING_CHAIN_MAX). */
int vfe_vring_find_chain(const struct vfe_vring *vr, const void *cookie, struct vfe_vring_chain *c);
/* Drive on a ring in mem that a previous driver instance left to the device:
 * nothing in mem is written.  The avail index is read from mem (everything
 * the previous driver added was published; descriptors it wrote past that
 * are free); last_used is the next used entry the new driver consumes (its
 * predecessor's, or the device's used index when entries the predecessor
 * never reaped are to be skipped as done); chains are the n chains
 * outstanding in the device.
 * The descriptors of no two chains may overlap, and n must equal
 * avail->idx - last_used (every published chain is outstanding or consumed).
 * Returns 0, -EINVAL on bad arguments or chains, -EPROTO when n does not
 * match the ring in mem (the record is older than the ring), -ENOMEM. */
int vfe_vring_adopt(struct vfe_vring *vr, uint16_t size, void *mem, uint64_t iova, bool event_idx,
                    uint16_t last_used, const struct vfe_vring_chain *chains, unsigned n);
/* The avail index published in mem. */
uint16_t vfe_vring_avail_idx(const struct vfe_vring *vr);

#endif
