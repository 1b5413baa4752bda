/* Driver side of a split virtqueue in guest memory. */
#include "tests/frontend/vfe_fe_ring.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <linux/virtio_ring.h>

#define USED_ALIGN 4096u

size_t vfe_fe_ring_used_offset(uint16_t size)
{
    size_t avail_end = 16u * size + 6u + 2u * size;
    return (avail_end + USED_ALIGN - 1) & ~(size_t)(USED_ALIGN - 1);
}

size_t vfe_fe_ring_bytes(uint16_t size)
{
    size_t end = vfe_fe_ring_used_offset(size) + 6u + 8u * size;
    return (end + USED_ALIGN - 1) & ~(size_t)(USED_ALIGN - 1);
}

static uint16_t load16(const void *p)
{
    uint16_t v;
    __atomic_load((const uint16_t *)p, &v, __ATOMIC_ACQUIRE);
    return le16toh(v);
}

int vfe_fe_ring_init(struct vfe_fe_ring *r, uint16_t size, void *mem, uint64_t gpa, uint16_t base)
{
    if (!size || size > VFE_FE_MAX_RING || (size & (size - 1)) || !mem)
        return -EINVAL;
    memset(r, 0, sizeof(*r));
    memset(mem, 0, vfe_fe_ring_bytes(size));
    r->size = size;
    r->desc = mem;
    r->avail = (struct vring_avail *)((uint8_t *)mem + 16u * size);
    r->used = (struct vring_used *)((uint8_t *)mem + vfe_fe_ring_used_offset(size));
    r->desc_gpa = gpa;
    r->avail_gpa = gpa + 16u * size;
    r->used_gpa = gpa + vfe_fe_ring_used_offset(size);
    r->avail_idx = r->last_used = base;
    /* A ring resumed at base looks as if base buffers went round already:
     * the device adds to used->idx from here. */
    r->avail->idx = htole16(base);
    r->used->idx = htole16(base);
    for (uint16_t i = 0; i < size; i++)
        r->next[i] = (uint16_t)((i + 1) & (size - 1));
    r->free_head = 0;
    r->num_free = size;
    return 0;
}

int vfe_fe_ring_next_head(const struct vfe_fe_ring *r)
{
    return r->num_free ? r->free_head : -ENOSPC;
}

int vfe_fe_ring_add(struct vfe_fe_ring *r, const struct vfe_fe_seg *segs, unsigned n)
{
    if (n == 0)
        return -EINVAL;
    if (n > r->num_free)
        return -ENOSPC;
    uint16_t head = r->free_head, d = head;
    for (unsigned i = 0; i < n; i++) {
        struct vring_desc *e = &r->desc[d];
        e->addr = htole64(segs[i].gpa);
        e->len = htole32(segs[i].len);
        uint16_t fl = segs[i].device_writes ? VRING_DESC_F_WRITE : 0;
        uint16_t next = r->next[d];
        if (i + 1 < n)
            fl |= VRING_DESC_F_NEXT;
        e->flags = htole16(fl);
        e->next = htole16(i + 1 < n ? next : 0);
        if (i + 1 < n)
            d = next;
        else
            r->free_head = next;
    }
    r->num_free -= (uint16_t)n;
    r->chain[head] = (uint16_t)n;
    r->heads_out++;
    r->avail->ring[r->avail_idx & (r->size - 1)] = htole16(head);
    r->avail_idx++;
    return head;
}

void vfe_fe_ring_publish(struct vfe_fe_ring *r)
{
    uint16_t v = htole16(r->avail_idx);
    __atomic_store(&r->avail->idx, &v, __ATOMIC_RELEASE);
}

bool vfe_fe_ring_kick_needed(const struct vfe_fe_ring *r)
{
    /* our avail->idx store must be visible before we read the device's flag */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return !(load16(&r->used->flags) & VRING_USED_F_NO_NOTIFY);
}

int vfe_fe_ring_used_pending(const struct vfe_fe_ring *r)
{
    uint16_t n = (uint16_t)(load16(&r->used->idx) - r->last_used);
    return n > vfe_fe_ring_in_flight(r) ? -EPROTO : n;
}

unsigned vfe_fe_ring_in_flight(const struct vfe_fe_ring *r)
{
    return r->heads_out;
}

int vfe_fe_ring_get_used(struct vfe_fe_ring *r, uint16_t *head, uint32_t *len)
{
    uint16_t idx = load16(&r->used->idx);
    if (idx == r->last_used)
        return 0;
    if ((uint16_t)(idx - r->last_used) > r->size)
        return -EPROTO;
    const struct vring_used_elem *e = &r->used->ring[r->last_used & (r->size - 1)];
    uint32_t id = le32toh(e->id);
    if (id >= r->size || r->chain[id] == 0)
        return -EPROTO;
    *head = (uint16_t)id;
    *len = le32toh(e->len);
    r->last_used++;
    uint16_t d = (uint16_t)id;
    for (unsigned i = 1; i < r->chain[id]; i++)
        d = r->next[d];
    r->next[d] = r->free_head;
    r->free_head = (uint16_t)id;
    r->num_free += r->chain[id];
    r->chain[id] = 0;
    r->heads_out--;
    return 1;
}
