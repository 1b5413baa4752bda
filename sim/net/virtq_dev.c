/* Device side of a split virtqueue (virtio 1.x, 2.7). */
#include "sim/net/virtq_dev.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "lib/log/vfe_log.h"

#define VQ_DESC_SIZE 16u

struct vq_desc_wire {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} __attribute__((packed));

static bool has_feature(const struct sim_fn *fn, unsigned bit)
{
    return (fn->driver_features >> bit) & 1;
}

void sim_vq_set_broken(struct sim_queue *q, const char *why)
{
    if (q->broken)
        return;
    q->broken = true;
    char msg[160];
    snprintf(msg, sizeof(msg), "queue %u: %s", q->index, why);
    LOG_E("%s: %s; queue stopped, NEEDS_RESET", q->fn->bdf, msg);
    sim_fn_needs_reset(q->fn, msg);
}

/* The map holding iova with all bits of prot, or NULL. */
static const struct sim_dma_map *map_at(const struct sim_fn *fn, uint64_t iova, uint32_t prot)
{
    for (unsigned i = 0; i < fn->ndma && i < SIM_MAX_DMA_MAPS; i++) {
        const struct sim_dma_map *m = &fn->dma[i];
        if (m->size && iova >= m->iova && iova - m->iova < m->size)
            return (m->prot & prot) == prot ? m : NULL;
    }
    return NULL;
}

bool sim_vq_dma_range_ok(const struct sim_fn *fn, uint64_t iova, uint64_t len, uint32_t prot)
{
    if (len == 0)
        return true;
    if (iova + len < iova)
        return false;
    /* Walk adjacent maps; each step advances at least one byte, and at most
     * SIM_MAX_DMA_MAPS distinct maps exist. */
    for (unsigned steps = 0; len && steps <= SIM_MAX_DMA_MAPS; steps++) {
        const struct sim_dma_map *m = map_at(fn, iova, prot);
        if (!m)
            return false;
        uint64_t room = m->size - (iova - m->iova);
        uint64_t n = len < room ? len : room;
        iova += n;
        len -= n;
    }
    return len == 0;
}

/* Chunked copy across adjacent maps through core's read/write. */
static int dma_copy(struct sim_fn *fn, uint64_t iova, void *buf, size_t len, bool write)
{
    uint8_t *p = buf;
    while (len) {
        const struct sim_dma_map *m = map_at(fn, iova, write ? VQ_DMA_WRITE : VQ_DMA_READ);
        if (!m)
            return -EFAULT;
        uint64_t room = m->size - (iova - m->iova);
        size_t n = len < room ? len : (size_t)room;
        int rc = write ? sim_dma_write(fn, iova, p, n) : sim_dma_read(fn, iova, p, n);
        if (rc < 0)
            return rc;
        iova += n;
        p += n;
        len -= n;
    }
    return 0;
}

bool sim_vq_ready(const struct sim_queue *q)
{
    return q->fn && q->enabled && !q->broken && q->size && q->size <= SIM_QUEUE_MAX_SIZE;
}

/* Ring areas must be aligned and inside memory with the right access. */
static int rings_check(struct sim_queue *q)
{
    struct sim_fn *fn = q->fn;
    uint64_t n = q->size;
    bool eidx = has_feature(fn, VIRTIO_RING_F_EVENT_IDX);
    if ((q->desc & 15) || (q->avail & 1) || (q->used & 3)) {
        sim_vq_set_broken(q, "misaligned ring address");
        return -EIO;
    }
    if (!sim_vq_dma_range_ok(fn, q->desc, n * VQ_DESC_SIZE, VQ_DMA_READ) ||
        !sim_vq_dma_range_ok(fn, q->avail, 4 + 2 * n + (eidx ? 2 : 0), VQ_DMA_READ) ||
        !sim_vq_dma_range_ok(fn, q->used, 4 + 8 * n + (eidx ? 2 : 0), VQ_DMA_WRITE)) {
        sim_vq_set_broken(q, "ring outside guest memory");
        return -EIO;
    }
    return 0;
}

static int load_u16_acquire(struct sim_fn *fn, uint64_t iova, uint16_t *out)
{
    uint16_t *p = sim_dma_ptr(fn, iova, 2, VQ_DMA_READ);
    if (!p)
        return -EFAULT;
    *out = le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
    return 0;
}

int sim_vq_avail_count(struct sim_queue *q)
{
    uint16_t idx;
    if (!sim_vq_ready(q))
        return 0;
    if (load_u16_acquire(q->fn, q->avail + 2, &idx) < 0)
        return -EFAULT;
    return (uint16_t)(idx - q->last_avail);
}

static int add_seg(struct sim_queue *q, struct vq_elem *e, const struct vq_desc_wire *d)
{
    struct sim_fn *fn = q->fn;
    bool writable = d->flags & VRING_DESC_F_WRITE;
    if (!writable && e->nin) {
        sim_vq_set_broken(q, "readable descriptor after a writable one");
        return -EIO;
    }
    if (!sim_vq_dma_range_ok(fn, d->addr, d->len, writable ? VQ_DMA_WRITE : VQ_DMA_READ)) {
        sim_vq_set_broken(q, writable ? "writable buffer outside writable guest memory"
                                  : "readable buffer outside guest memory");
        return -EIO;
    }
    if (d->len == 0)
        return 0;
    unsigned n = e->nout + e->nin;
    if (n >= SIM_QUEUE_MAX_SIZE) {
        sim_vq_set_broken(q, "too many buffers in chain");
        return -EIO;
    }
    e->segs[n].iova = d->addr;
    e->segs[n].len = d->len;
    if (writable) {
        e->nin++;
        e->in_len += d->len;
    } else {
        e->nout++;
        e->out_len += d->len;
    }
    return 0;
}

static int walk_chain(struct sim_queue *q, uint16_t head, struct vq_elem *e)
{
    struct sim_fn *fn = q->fn;
    uint64_t table = q->desc;
    uint32_t tsize = q->size, max = q->size, count = 0;
    bool indirect = false;
    uint32_t idx = head;

    e->head = head;
    e->nout = e->nin = 0;
    e->out_len = e->in_len = 0;
    for (;;) {
        if (idx >= tsize) {
            sim_vq_set_broken(q, indirect ? "indirect descriptor index out of range"
                                      : "descriptor index out of range");
            return -EIO;
        }
        if (++count > max) {
            sim_vq_set_broken(q, "descriptor chain longer than the queue (loop?)");
            return -EIO;
        }
        struct vq_desc_wire d;
        if (dma_copy(fn, table + (uint64_t)idx * VQ_DESC_SIZE, &d, sizeof(d), false) < 0) {
            sim_vq_set_broken(q, "descriptor not readable");
            return -EIO;
        }
        d.addr = le64toh(d.addr);
        d.len = le32toh(d.len);
        d.flags = le16toh(d.flags);
        d.next = le16toh(d.next);

        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (!has_feature(fn, VIRTIO_RING_F_INDIRECT_DESC)) {
                sim_vq_set_broken(q, "INDIRECT descriptor without INDIRECT_DESC");
                return -EIO;
            }
            if (indirect) {
                sim_vq_set_broken(q, "nested indirect table");
                return -EIO;
            }
            if (d.flags & VRING_DESC_F_NEXT) {
                sim_vq_set_broken(q, "INDIRECT together with NEXT");
                return -EIO;
            }
            if (d.len == 0 || d.len % VQ_DESC_SIZE || d.len / VQ_DESC_SIZE > q->size) {
                sim_vq_set_broken(q, "bad indirect table length");
                return -EIO;
            }
            if (!sim_vq_dma_range_ok(fn, d.addr, d.len, VQ_DMA_READ)) {
                sim_vq_set_broken(q, "indirect table outside guest memory");
                return -EIO;
            }
            indirect = true;
            table = d.addr;
            tsize = max = d.len / VQ_DESC_SIZE;
            count = 0;
            idx = 0;
            continue;
        }
        if (add_seg(q, e, &d) < 0)
            return -EIO;
        if (!(d.flags & VRING_DESC_F_NEXT))
            return 0;
        idx = d.next;
    }
}

int sim_vq_pop(struct sim_queue *q, struct vq_elem *e)
{
    struct sim_fn *fn = q->fn;
    uint16_t avail_idx, head;

    if (!sim_vq_ready(q))
        return 0;
    if (rings_check(q) < 0)
        return -EIO;
    if (load_u16_acquire(fn, q->avail + 2, &avail_idx) < 0)
        return -EFAULT;
    uint16_t pending = avail_idx - q->last_avail;
    if (pending == 0)
        return 0;
    if (pending > q->size) {
        sim_vq_set_broken(q, "avail index moved by more than the queue size");
        return -EIO;
    }
    uint64_t slot = q->avail + 4 + 2u * (q->last_avail % q->size);
    if (sim_dma_read(fn, slot, &head, 2) < 0) {
        sim_vq_set_broken(q, "avail ring not readable");
        return -EIO;
    }
    head = le16toh(head);
    if (head >= q->size) {
        sim_vq_set_broken(q, "head descriptor index out of range");
        return -EIO;
    }
    if (walk_chain(q, head, e) < 0)
        return -EIO;
    q->last_avail++;
    return 1;
}

void sim_vq_unpop(struct sim_queue *q, uint16_t n)
{
    q->last_avail -= n;
}

int sim_vq_fill(struct sim_queue *q, uint16_t off, uint16_t head, uint32_t len)
{
    struct { uint32_t id, len; } __attribute__((packed)) u = { htole32(head), htole32(len) };
    uint16_t slot = (uint16_t)(q->used_idx + off) % q->size;
    return sim_dma_write(q->fn, q->used + 4 + 8u * slot, &u, sizeof(u));
}

int sim_vq_flush(struct sim_queue *q, uint16_t n)
{
    struct sim_fn *fn = q->fn;
    uint16_t old = q->used_idx, new_idx = old + n;
    uint16_t v = htole16(new_idx);
    bool notify;

    if (n == 0)
        return 0;
    /* Used elements must be visible before the index that publishes them. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    int rc = sim_dma_write(fn, q->used + 2, &v, 2);
    if (rc < 0)
        return rc;
    q->used_idx = new_idx;
    /* The index store must be visible before we read the driver's event
     * field, or we could miss an interrupt the driver waits for. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (has_feature(fn, VIRTIO_RING_F_EVENT_IDX)) {
        uint16_t used_event;
        if (load_u16_acquire(fn, q->avail + 4 + 2u * q->size, &used_event) < 0)
            notify = true;
        else
            notify = vq_need_event(used_event, new_idx, old);
    } else {
        uint16_t flags;
        if (load_u16_acquire(fn, q->avail, &flags) < 0)
            notify = true;
        else
            notify = !(flags & VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (notify)
        sim_queue_interrupt(q);
    return 0;
}

int sim_vq_push(struct sim_queue *q, uint16_t head, uint32_t len)
{
    int rc = sim_vq_fill(q, 0, head, len);
    return rc < 0 ? rc : sim_vq_flush(q, 1);
}

bool sim_vq_enable_kick(struct sim_queue *q)
{
    struct sim_fn *fn = q->fn;
    uint16_t idx;
    if (!sim_vq_ready(q))
        return false;
    if (has_feature(fn, VIRTIO_RING_F_EVENT_IDX)) {
        uint16_t v = htole16(q->last_avail);
        if (sim_dma_write(fn, q->used + 4 + 8u * q->size, &v, 2) < 0)
            return false;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
    if (load_u16_acquire(fn, q->avail + 2, &idx) < 0)
        return false;
    return idx != q->last_avail;
}

long sim_vq_gather(struct sim_fn *fn, const struct vq_elem *e, uint64_t off, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;
    for (unsigned i = 0; i < e->nout && done < len; i++) {
        const struct vq_seg *s = &e->segs[i];
        if (off >= s->len) {
            off -= s->len;
            continue;
        }
        size_t n = s->len - off;
        if (n > len - done)
            n = len - done;
        int rc = dma_copy(fn, s->iova + off, p + done, n, false);
        if (rc < 0)
            return rc;
        done += n;
        off = 0;
    }
    return (long)done;
}

long sim_vq_scatter(struct sim_fn *fn, const struct vq_elem *e, uint64_t off, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t done = 0;
    for (unsigned i = e->nout; i < (unsigned)e->nout + e->nin && done < len; i++) {
        const struct vq_seg *s = &e->segs[i];
        if (off >= s->len) {
            off -= s->len;
            continue;
        }
        size_t n = s->len - off;
        if (n > len - done)
            n = len - done;
        int rc = dma_copy(fn, s->iova + off, (void *)(p + done), n, true);
        if (rc < 0)
            return rc;
        done += n;
        off = 0;
    }
    return (long)done;
}
