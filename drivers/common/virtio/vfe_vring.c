/* Driver side of a split virtqueue (virtio 1.3 section 2.7). */
#include "drivers/common/virtio/vfe_vring.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "lib/log/vfe_log.h"

#define VRING_MAX_SIZE 32768u

static size_t avail_bytes(uint16_t size)
{
    return 6 + 2 * (size_t)size;    /* flags, idx, ring[], used_event */
}

static size_t used_offset(uint16_t size)
{
    size_t end_avail = 16 * (size_t)size + avail_bytes(size);
    return (end_avail + 3) & ~(size_t)3;
}

size_t vfe_vring_mem_size(uint16_t size)
{
    return used_offset(size) + 6 + 8 * (size_t)size;   /* flags, idx, ring[], avail_event */
}

static uint16_t *used_event_ptr(struct vfe_vring *vr)
{
    return &vr->avail->ring[vr->size];
}

static uint16_t *avail_event_ptr(struct vfe_vring *vr)
{
    return (uint16_t *)((uint8_t *)vr->used + offsetof(struct vring_used, ring) +
                        sizeof(struct vring_used_elem) * vr->size);
}

static int vring_setup(struct vfe_vring *vr, uint16_t size, void *mem, uint64_t iova, bool event_idx)
{
    if (!vr || !mem || size == 0 || size > VRING_MAX_SIZE || (size & (size - 1)))
        return -EINVAL;
    if (((uintptr_t)mem & 15) || (iova & 15))
        return -EINVAL;
    memset(vr, 0, sizeof(*vr));
    vr->cookies = calloc(size, sizeof(*vr->cookies));
    vr->next = calloc(size, sizeof(*vr->next));
    vr->chain_len = calloc(size, sizeof(*vr->chain_len));
    vr->in_bytes = calloc(size, sizeof(*vr->in_bytes));
    if (!vr->cookies || !vr->next || !vr->chain_len || !vr->in_bytes) {
        vfe_vring_fini(vr);
        return -ENOMEM;
    }
    vr->size = size;
    vr->event_idx = event_idx;
    vr->mem = mem;
    vr->iova = iova;
    vr->desc = mem;
    vr->avail = (struct vring_avail *)(vr->mem + 16 * (size_t)size);
    vr->used = (struct vring_used *)(vr->mem + used_offset(size));
    vr->desc_iova = iova;
    vr->avail_iova = iova + 16 * (uint64_t)size;
    vr->used_iova = iova + used_offset(size);
    vr->cb_enabled = true;
    return 0;
}

int vfe_vring_init(struct vfe_vring *vr, uint16_t size, void *mem, uint64_t iova, bool event_idx)
{
    int rc = vring_setup(vr, size, mem, iova, event_idx);
    if (rc < 0)
        return rc;
    memset(mem, 0, vfe_vring_mem_size(size));
    for (uint16_t i = 0; i < size; i++)
        vr->next[i] = (uint16_t)(i + 1);
    vr->free_head = 0;
    vr->num_free = size;
    return 0;
}

uint16_t vfe_vring_avail_idx(const struct vfe_vring *vr)
{
    return le16toh(__atomic_load_n(&vr->avail->idx, __ATOMIC_ACQUIRE));
}

int vfe_vring_find_chain(const struct vfe_vring *vr, const void *cookie, struct vfe_vring_chain *c)
{
    if (!vr || !vr->cookies || !cookie || !c)
        return -EINVAL;
    for (uint16_t h = 0; h < vr->size; h++) {
        if (vr->cookies[h] != cookie)
            continue;
        if (vr->chain_len[h] > VFE_VRING_CHAIN_MAX)
            return -ENOENT;
        memset(c, 0, sizeof(*c));
        c->cookie = vr->cookies[h];
        c->n = vr->chain_len[h];
        c->in_bytes = vr->in_bytes[h];
        uint16_t d = h;
        for (uint16_t i = 0; i < c->n; i++) {
            c->ids[i] = d;
            d = vr->next[d];
        }
        return 0;
    }
    return -ENOENT;
}

int vfe_vring_adopt(struct vfe_vring *vr, uint16_t size, void *mem, uint64_t iova, bool event_idx,
                    uint16_t last_used, const struct vfe_vring_chain *chains, unsigned n)
{
    if (n > size || (n && !chains))
        return -EINVAL;
    int rc = vring_setup(vr, size, mem, iova, event_idx);
    if (rc < 0)
        return rc;
    bool *taken = calloc(size, sizeof(*taken));
    if (!taken) {
        vfe_vring_fini(vr);
        return -ENOMEM;
    }
    rc = 0;
    for (unsigned k = 0; k < n && rc == 0; k++) {
        const struct vfe_vring_chain *c = &chains[k];
        if (!c->cookie || c->n == 0 || c->n > VFE_VRING_CHAIN_MAX) {
            rc = -EINVAL;
            break;
        }
        for (uint16_t i = 0; i < c->n; i++) {
            uint16_t d = c->ids[i];
            if (d >= size || taken[d]) {
                LOG_W("vring: adopted chain %u names descriptor %u %s", k, d,
                      d >= size ? "beyond the ring" : "twice");
                rc = -EINVAL;
                break;
            }
            taken[d] = true;
            vr->next[d] = i + 1 < c->n ? c->ids[i + 1] : 0;
        }
        if (rc == 0) {
            vr->cookies[c->ids[0]] = c->cookie;
            vr->chain_len[c->ids[0]] = c->n;
            vr->in_bytes[c->ids[0]] = c->in_bytes;
        }
    }
    vr->avail_shadow = vr->kicked_at = vfe_vring_avail_idx(vr);
    if (rc == 0 && (uint16_t)(vr->avail_shadow - last_used) != n) {
        LOG_W("vring: %u chains outstanding in the record, but the ring has %u published past used entry %u",
              n, (uint16_t)(vr->avail_shadow - last_used), last_used);
        rc = -EPROTO;
    }
    if (rc < 0) {
        free(taken);
        vfe_vring_fini(vr);
        return rc;
    }
    /* free list: every descriptor no chain holds, in order */
    uint16_t *link = &vr->free_head;
    for (uint16_t d = 0; d < size; d++) {
        if (taken[d])
            continue;
        *link = d;
        link = &vr->next[d];
        vr->num_free++;
    }
    *link = 0;
    free(taken);
    vr->in_flight = (uint16_t)n;
    vr->last_used = last_used;
    return 0;
}

void vfe_vring_fini(struct vfe_vring *vr)
{
    if (!vr)
        return;
    free(vr->cookies);
    free(vr->next);
    free(vr->chain_len);
    free(vr->in_bytes);
    vr->cookies = NULL;
    vr->next = vr->chain_len = NULL;
    vr->in_bytes = NULL;
    vr->num_free = 0;
}

int vfe_vring_add(struct vfe_vring *vr, const struct vfe_sg *sg, unsigned out, unsigned in, void *cookie)
{
    unsigned n = out + in;
    if (!vr || !vr->cookies || !sg || !cookie || n == 0 || n > vr->size || out > vr->size)
        return -EINVAL;
    uint64_t total = 0, writable = 0;
    for (unsigned i = 0; i < n; i++) {
        total += sg[i].len;
        if (i >= out)
            writable += sg[i].len;
    }
    if (total > UINT32_MAX)
        return -EINVAL;   /* the spec caps a chain at 4 GiB */
    if (n > vr->num_free)
        return -ENOSPC;

    uint16_t head = vr->free_head, d = head, last = head;
    for (unsigned i = 0; i < n; i++) {
        struct vring_desc *desc = &vr->desc[d];
        uint16_t flags = i >= out ? VRING_DESC_F_WRITE : 0;
        bool more = i + 1 < n;
        if (more)
            flags |= VRING_DESC_F_NEXT;
        desc->addr = htole64(sg[i].iova);
        desc->len = htole32(sg[i].len);
        desc->flags = htole16(flags);
        desc->next = htole16(more ? vr->next[d] : 0);
        last = d;
        d = vr->next[d];
    }
    vr->free_head = vr->next[last];
    vr->num_free = (uint16_t)(vr->num_free - n);
    vr->cookies[head] = cookie;
    vr->in_flight++;
    vr->chain_len[head] = (uint16_t)n;
    vr->in_bytes[head] = (uint32_t)writable;

    uint16_t slot = vr->avail_shadow & (uint16_t)(vr->size - 1);
    vr->avail->ring[slot] = htole16(head);
    vr->avail_shadow++;
    return 0;
}

bool vfe_vring_publish(struct vfe_vring *vr)
{
    uint16_t old = vr->kicked_at, now = vr->avail_shadow;
    /* Descriptors and ring entries must be visible before the new index. */
    __atomic_store_n(&vr->avail->idx, htole16(now), __ATOMIC_RELEASE);
    /* The device's suppression fields are read after the index is out (a
     * store-load order, so a full fence): otherwise a device going to sleep
     * in between would miss the notification. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    vr->kicked_at = now;
    if (old == now)
        return false;
    if (vr->event_idx) {
        uint16_t event = le16toh(__atomic_load_n(avail_event_ptr(vr), __ATOMIC_RELAXED));
        return vring_need_event(event, now, old);
    }
    uint16_t flags = le16toh(__atomic_load_n(&vr->used->flags, __ATOMIC_RELAXED));
    return !(flags & VRING_USED_F_NO_NOTIFY);
}

static void free_chain(struct vfe_vring *vr, uint16_t head)
{
    uint16_t n = vr->chain_len[head], last = head;
    for (uint16_t i = 1; i < n; i++)
        last = vr->next[last];
    vr->next[last] = vr->free_head;
    vr->free_head = head;
    vr->num_free = (uint16_t)(vr->num_free + n);
    vr->cookies[head] = NULL;
    vr->in_flight--;
    vr->chain_len[head] = 0;
    vr->in_bytes[head] = 0;
}

void *vfe_vring_get_used(struct vfe_vring *vr, uint32_t *len)
{
    if (!vr || !vr->cookies)
        return NULL;
    for (;;) {
        uint16_t idx = le16toh(__atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE));
        uint16_t ready = (uint16_t)(idx - vr->last_used);
        if (ready == 0)
            return NULL;
        if (ready > vr->size) {
            LOG_W("vring: device used index %u is %u entries ahead of %u (ring of %u); ignored",
                  idx, ready, vr->last_used, vr->size);
            return NULL;
        }
        struct vring_used_elem *e = &vr->used->ring[vr->last_used & (uint16_t)(vr->size - 1)];
        uint32_t id = le32toh(e->id), n = le32toh(e->len);
        vr->last_used++;
        if (vr->event_idx && vr->cb_enabled)
            __atomic_store_n(used_event_ptr(vr), htole16(vr->last_used), __ATOMIC_RELAXED);
        if (id >= vr->size || !vr->cookies[id]) {
            LOG_W("vring: device returned descriptor %u which is not an outstanding head; ignored", id);
            continue;
        }
        if (n > vr->in_bytes[id]) {
            LOG_W("vring: device wrote %u bytes into chain %u of %u writable bytes; clamped",
                  n, id, vr->in_bytes[id]);
            n = vr->in_bytes[id];
        }
        void *cookie = vr->cookies[id];
        free_chain(vr, (uint16_t)id);
        if (len)
            *len = n;
        return cookie;
    }
}

void vfe_vring_enable_cb(struct vfe_vring *vr, bool enable)
{
    vr->cb_enabled = enable;
    if (vr->event_idx) {
        /* With EVENT_IDX the flags must stay 0; an event index just behind
         * the device's position is not crossed again until it wraps. */
        uint16_t ev = enable ? vr->last_used : (uint16_t)(vr->last_used - 1);
        __atomic_store_n(used_event_ptr(vr), htole16(ev), __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&vr->avail->flags, htole16(enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT),
                         __ATOMIC_RELAXED);
    }
    if (enable)
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

unsigned vfe_vring_outstanding(const struct vfe_vring *vr)
{
    return vr->in_flight;
}
