/*
 * Device side of a virtio split virtqueue, over a function's DMA maps.
 *
 * The driver lives in another process and shares the ring memory, so ring
 * indices are read with acquire and published with release ordering, and
 * every descriptor is copied before use (the driver may change it at any
 * time).  A chain that breaks any rule marks the queue broken and asks core
 * for NEEDS_RESET on that function only.
 */
#ifndef SIM_NET_VIRTQ_DEV_H
#define SIM_NET_VIRTQ_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/sim.h"

/* Access rights of a DMA map (same values as VFE_DMA_READ/WRITE). */
#define VQ_DMA_READ  1u
#define VQ_DMA_WRITE 2u

struct vq_seg {
    uint64_t iova;
    uint32_t len;
};

/* One validated descriptor chain: device-readable segments first, then
 * device-writable ones. */
struct vq_elem {
    uint16_t head;
    uint16_t nout, nin;          /* segs[0..nout) readable, segs[nout..nout+nin) writable */
    uint64_t out_len, in_len;    /* byte totals */
    struct vq_seg segs[SIM_QUEUE_MAX_SIZE];
};

/* The queue may be used now: enabled, sized, not broken, addresses set. */
bool sim_vq_ready(const struct sim_queue *q);

/* Number of chains the driver made available that the device has not popped. */
int sim_vq_avail_count(struct sim_queue *q);

/* Pop and validate the next available chain.
 * 1: *e filled, q->last_avail advanced; 0: ring empty; -EIO: bad chain
 * (queue now broken, NEEDS_RESET raised); -EFAULT: ring not readable. */
int sim_vq_pop(struct sim_queue *q, struct vq_elem *e);

/* Give back the last `n` popped chains (they stay available). */
void sim_vq_unpop(struct sim_queue *q, uint16_t n);

/* Write used element number `off` past q->used_idx (not yet visible). */
int sim_vq_fill(struct sim_queue *q, uint16_t off, uint16_t head, uint32_t len);

/* Publish `n` filled used elements (used->idx += n) and interrupt the driver
 * unless it asked not to be (EVENT_IDX used_event, or NO_INTERRUPT). */
int sim_vq_flush(struct sim_queue *q, uint16_t n);

/* sim_vq_fill + sim_vq_flush of one element. */
int sim_vq_push(struct sim_queue *q, uint16_t head, uint32_t len);

/* With EVENT_IDX: write avail_event = last_avail so the driver kicks for the
 * next chain, then re-check.  Returns true when more chains arrived meanwhile
 * (the caller must keep processing, it would get no kick for them). */
bool sim_vq_enable_kick(struct sim_queue *q);

/* Copy up to `len` bytes of the readable part of e, starting at byte `off`,
 * into buf.  Returns bytes copied or -errno. */
long sim_vq_gather(struct sim_fn *fn, const struct vq_elem *e, uint64_t off, void *buf, size_t len);

/* Copy len bytes into the writable part of e starting at byte `off`
 * (through sim_dma_write, so the pages are marked dirty).  Returns bytes
 * copied (less when the chain is short) or -errno. */
long sim_vq_scatter(struct sim_fn *fn, const struct vq_elem *e, uint64_t off, const void *buf, size_t len);

/* Mark q broken and raise NEEDS_RESET on its function (logs why). */
void sim_vq_set_broken(struct sim_queue *q, const char *why);

/* [iova, iova+len) lies in the function's DMA maps (possibly several
 * adjacent ones), each granting `prot`. */
bool sim_vq_dma_range_ok(const struct sim_fn *fn, uint64_t iova, uint64_t len, uint32_t prot);

/* vring_need_event() of the spec: interrupt when event_idx lies in (old, new]. */
static inline bool vq_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

#endif
