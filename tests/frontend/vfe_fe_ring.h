/*
 * Driver side of a split virtqueue (virtio 1.x, 2.7), as a guest's virtio-net
 * driver keeps it: descriptor free list, available ring we publish, used ring
 * the device writes.  Pure memory operations, no I/O, so it is unit-testable.
 * Everything the device wrote is checked before use.
 */
#ifndef VFE_FE_RING_H
#define VFE_FE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFE_FE_MAX_RING 1024

struct vring_desc;
struct vring_avail;
struct vring_used;

struct vfe_fe_ring {
    uint16_t size;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t avail_idx;       /* next index we publish */
    uint16_t last_used;       /* next used entry to consume */
    uint16_t free_head, num_free, heads_out;
    uint16_t chain[VFE_FE_MAX_RING];   /* descriptors per in-flight head, 0 = free */
    uint16_t next[VFE_FE_MAX_RING];    /* our copy of the links: the device can write desc[] */
};

struct vfe_fe_seg {
    uint64_t gpa;
    uint32_t len;
    bool device_writes;
};

/* Bytes of guest memory for a ring of this size (desc, avail, then used at 4 KiB). */
size_t vfe_fe_ring_bytes(uint16_t size);
size_t vfe_fe_ring_used_offset(uint16_t size);

/* Lay a ring out in mem (zeroed), GPA gpa, both indices at base.  -EINVAL if
 * size is not a power of two in 1..VFE_FE_MAX_RING. */
int vfe_fe_ring_init(struct vfe_fe_ring *r, uint16_t size, void *mem, uint64_t gpa, uint16_t base);

/* Head the next add will use, or -ENOSPC. */
int vfe_fe_ring_next_head(const struct vfe_fe_ring *r);
/* Chain n segments, put the head in the available ring (not yet visible).
 * Head id, -ENOSPC when out of descriptors, -EINVAL for n == 0. */
int vfe_fe_ring_add(struct vfe_fe_ring *r, const struct vfe_fe_seg *segs, unsigned n);
/* Make what was added visible to the device (release order). */
void vfe_fe_ring_publish(struct vfe_fe_ring *r);
/* Whether the device wants a kick now (VRING_USED_F_NO_NOTIFY clear). */
bool vfe_fe_ring_kick_needed(const struct vfe_fe_ring *r);

/* Next used element: 1 with head and written length, 0 when none, -EPROTO
 * when the device wrote an impossible id or index (the ring is then unusable). */
int vfe_fe_ring_get_used(struct vfe_fe_ring *r, uint16_t *head, uint32_t *len);
/* Entries the device has made used that we have not consumed; -EPROTO if
 * its index ran ahead of what we gave it. */
int vfe_fe_ring_used_pending(const struct vfe_fe_ring *r);
/* Buffers given to the device and not returned yet. */
unsigned vfe_fe_ring_in_flight(const struct vfe_fe_ring *r);

#endif
