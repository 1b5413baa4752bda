/* Fake virtio-pci device for the driver-side unit tests. */
#include "tests/unit/virtio/fake_vdev.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include "drivers/common/virtio/vfe_virtio_pci.h"

#define FD(t) ((struct fake_vdev *)(t))

void fv_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
void fv_put32(uint8_t *p, uint32_t v) { fv_put16(p, (uint16_t)v); fv_put16(p + 2, (uint16_t)(v >> 16)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }

void fv_vendor_cap(struct fake_vdev *d, unsigned off, unsigned next, uint8_t type, uint8_t cap_len,
                   uint8_t bar, uint32_t offset, uint32_t length)
{
    uint8_t *c = d->cfg + off;
    c[0] = PCI_CAP_ID_VNDR;
    c[1] = (uint8_t)next;
    c[2] = cap_len;
    c[3] = type;
    c[4] = bar;
    fv_put32(c + 8, offset);
    fv_put32(c + 12, length);
}

/* ---- registers ---- */

static struct fv_queue *selq(struct fake_vdev *d)
{
    return d->qsel < d->num_queues ? &d->q[d->qsel] : NULL;
}

static void common_image(struct fake_vdev *d, uint8_t img[64])
{
    memset(img, 0, 64);
    fv_put32(img + VFE_CC_DFSELECT, d->dfsel);
    if (d->dfsel < 2)
        fv_put32(img + VFE_CC_DF, (uint32_t)(d->dev_features >> (32 * d->dfsel)));
    fv_put32(img + VFE_CC_GFSELECT, d->gfsel);
    if (d->gfsel < 2)
        fv_put32(img + VFE_CC_GF, (uint32_t)(d->drv_features >> (32 * d->gfsel)));
    fv_put16(img + VFE_CC_MSIX, d->msix_config);
    fv_put16(img + VFE_CC_NUMQ, d->num_queues);
    img[VFE_CC_STATUS] = d->status;
    if (d->gen_unstable)
        d->gen++;
    img[VFE_CC_CFGGENERATION] = d->gen;
    fv_put16(img + VFE_CC_Q_SELECT, d->qsel);
    struct fv_queue *q = selq(d);
    if (q) {
        fv_put16(img + VFE_CC_Q_SIZE, q->size);
        fv_put16(img + VFE_CC_Q_MSIX, q->msix);
        fv_put16(img + VFE_CC_Q_ENABLE, q->enable);
        fv_put16(img + VFE_CC_Q_NOFF, q->notify_off);
        fv_put32(img + VFE_CC_Q_DESCLO, (uint32_t)q->desc);
        fv_put32(img + VFE_CC_Q_DESCHI, (uint32_t)(q->desc >> 32));
        fv_put32(img + VFE_CC_Q_AVAILLO, (uint32_t)q->avail);
        fv_put32(img + VFE_CC_Q_AVAILHI, (uint32_t)(q->avail >> 32));
        fv_put32(img + VFE_CC_Q_USEDLO, (uint32_t)q->used);
        fv_put32(img + VFE_CC_Q_USEDHI, (uint32_t)(q->used >> 32));
    }
    fv_put16(img + VFE_CC_ADMIN_Q_IDX, 7);
    fv_put16(img + VFE_CC_ADMIN_Q_NUM, 1);
}

static void half(uint64_t *v, bool hi, uint32_t x)
{
    *v = hi ? (*v & 0xffffffffull) | (uint64_t)x << 32 : (*v & ~0xffffffffull) | x;
}

static void dev_reset(struct fake_vdev *d)
{
    d->status = d->reset_stuck ? VIRTIO_CONFIG_S_ACKNOWLEDGE : 0;
    d->drv_features = 0;
    d->msix_config = VFE_VIRTIO_MSI_NO_VECTOR;
    for (unsigned i = 0; i < FV_NQ; i++) {
        struct fv_queue *q = &d->q[i];
        q->size = q->max;
        q->msix = VFE_VIRTIO_MSI_NO_VECTOR;
        q->enable = 0;
        q->desc = q->avail = q->used = 0;
        q->last_avail = q->used_idx = 0;
    }
}

static void common_write(struct fake_vdev *d, uint64_t off, uint32_t v)
{
    struct fv_queue *q = selq(d);
    uint16_t vec = (uint16_t)v < FV_MSIX_VECTORS ? (uint16_t)v : VFE_VIRTIO_MSI_NO_VECTOR;
    switch (off) {
    case VFE_CC_DFSELECT: d->dfsel = v; break;
    case VFE_CC_GFSELECT: d->gfsel = v; break;
    case VFE_CC_GF: if (d->gfsel < 2) half(&d->drv_features, d->gfsel, v); break;
    case VFE_CC_MSIX: d->msix_config = vec; break;
    case VFE_CC_STATUS:
        if (v == 0) {
            dev_reset(d);
            break;
        }
        if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && d->refuse_features)
            v &= ~(uint32_t)VIRTIO_CONFIG_S_FEATURES_OK;
        d->status = (uint8_t)v;
        break;
    case VFE_CC_Q_SELECT: d->qsel = (uint16_t)v; break;
    case VFE_CC_Q_SIZE:
        if (q && !q->enable && v && !(v & (v - 1)) && v <= q->max)
            q->size = (uint16_t)v;
        break;
    case VFE_CC_Q_MSIX: if (q) q->msix = vec; break;
    case VFE_CC_Q_ENABLE: if (q && v == 1) q->enable = 1; break;
    case VFE_CC_Q_DESCLO: case VFE_CC_Q_DESCHI: if (q) half(&q->desc, off == VFE_CC_Q_DESCHI, v); break;
    case VFE_CC_Q_AVAILLO: case VFE_CC_Q_AVAILHI: if (q) half(&q->avail, off == VFE_CC_Q_AVAILHI, v); break;
    case VFE_CC_Q_USEDLO: case VFE_CC_Q_USEDHI: if (q) half(&q->used, off == VFE_CC_Q_USEDHI, v); break;
    default: break;
    }
}

/* ---- transport ops ---- */

static int fv_region_info(struct vfe_transport *t, uint32_t index, struct vfe_region_info *info)
{
    struct fake_vdev *d = FD(t);
    memset(info, 0, sizeof(*info));
    info->index = index;
    if (index <= 5)
        info->size = d->bar_size[index];
    else if (index == VFE_REGION_CONFIG)
        info->size = d->cfg_size;
    else
        return -EINVAL;
    info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    return 0;
}

static int range_ok(struct fake_vdev *d, uint32_t index, uint64_t off, size_t len)
{
    struct vfe_region_info info;
    if (fv_region_info(&d->t, index, &info) < 0)
        return -EINVAL;
    return len && off < info.size && len <= info.size - off ? 0 : -EINVAL;
}

static int fv_region_read(struct vfe_transport *t, uint32_t index, uint64_t off, void *buf, size_t len)
{
    struct fake_vdev *d = FD(t);
    if (range_ok(d, index, off, len) < 0)
        return -EINVAL;
    memset(buf, 0, len);
    if (index == VFE_REGION_CONFIG) {
        memcpy(buf, d->cfg + off, len);
    } else if (index == 0 && off < 64) {
        uint8_t img[64];
        if (off + len > 64)
            return -EINVAL;
        common_image(d, img);
        memcpy(buf, img + off, len);
    } else if (index == 0 && off >= FV_DEVICE && off + len <= FV_DEVICE + sizeof(d->devcfg)) {
        memcpy(buf, d->devcfg + (off - FV_DEVICE), len);
    }
    return 0;
}

static int fv_region_write(struct vfe_transport *t, uint32_t index, uint64_t off, const void *buf, size_t len)
{
    struct fake_vdev *d = FD(t);
    if (range_ok(d, index, off, len) < 0)
        return -EINVAL;
    if (index == VFE_REGION_CONFIG) {
        memcpy(d->cfg + off, buf, len);
        return 0;
    }
    if (index != 0)
        return 0;
    uint64_t v = 0;
    memcpy(&v, buf, len < 8 ? len : 8);
    v = le64toh(v);
    if (d->nlog < FV_MAX_LOG)
        d->log[d->nlog++] = (struct fv_access){ index, off, (uint32_t)len, v };
    if (off < 64) {
        if (len != 1 && len != 2 && len != 4)
            return -EINVAL;
        common_write(d, off, (uint32_t)v);
    } else if (off >= FV_NOTIFY && off < FV_NOTIFY + FV_NQ * FV_NOTIFY_MULT) {
        uint16_t qi = (uint16_t)((off - FV_NOTIFY) / FV_NOTIFY_MULT);
        if (qi < FV_NQ)
            d->q[qi].notifies++;
        if (d->on_notify)
            d->on_notify(d, (uint16_t)v);
    }
    return 0;
}

static int fv_dma_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot)
{
    struct fake_vdev *d = FD(t);
    if (d->nmaps >= 4)
        return -ENOSPC;
    void *va = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
    if (va == MAP_FAILED)
        return -errno;
    d->map[d->nmaps].iova = iova;
    d->map[d->nmaps].len = len;
    d->map[d->nmaps].va = va;
    d->nmaps++;
    return 0;
}

static int fv_dma_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len)
{
    struct fake_vdev *d = FD(t);
    for (unsigned i = 0; i < d->nmaps; i++) {
        if (d->map[i].iova == iova && d->map[i].len == len) {
            munmap(d->map[i].va, len);
            d->map[i] = d->map[--d->nmaps];
            return 0;
        }
    }
    return -ENOENT;
}

static int fv_set_irqs(struct vfe_transport *t, uint32_t irq_index, uint32_t start, uint32_t count, const int *fds)
{
    struct fake_vdev *d = FD(t);
    if (irq_index != VFIO_PCI_MSIX_IRQ_INDEX || start > FV_MSIX_VECTORS || count > FV_MSIX_VECTORS - start)
        return -EINVAL;
    for (uint32_t i = 0; i < count; i++) {
        int *slot = &d->irq_fds[start + i];
        if (*slot >= 0)
            close(*slot);
        *slot = fds[i] >= 0 ? dup(fds[i]) : -1;
    }
    return 0;
}

static int fv_ioeventfd(struct vfe_transport *t, uint32_t region, uint64_t off, uint32_t size, uint64_t data, int fd)
{
    return -ENOTSUP;
}

static int fv_reset(struct vfe_transport *t)
{
    dev_reset(FD(t));
    return 0;
}

static int fv_export_fds(struct vfe_transport *t, int *fds, int max)
{
    return 0;
}

static void fv_close(struct vfe_transport *t)
{
}

static const struct vfe_transport_ops fv_ops = {
    .region_info = fv_region_info,
    .region_read = fv_region_read,
    .region_write = fv_region_write,
    .dma_map = fv_dma_map,
    .dma_unmap = fv_dma_unmap,
    .set_irqs = fv_set_irqs,
    .ioeventfd = fv_ioeventfd,
    .reset = fv_reset,
    .export_fds = fv_export_fds,
    .close = fv_close,
};

void fv_init(struct fake_vdev *d, uint16_t nq, uint16_t qmax)
{
    memset(d, 0, sizeof(*d));
    d->t.ops = &fv_ops;
    strcpy(d->t.bdf, "0000:00:00.0");
    d->t.timeout_ms = 200;
    d->cfg_size = 4096;
    d->bar_size[0] = FV_BAR0_SIZE;
    d->bar_size[1] = FV_BAR1_SIZE;
    d->num_queues = nq < FV_NQ ? nq : FV_NQ;
    for (unsigned i = 0; i < FV_NQ; i++) {
        d->q[i].max = i < d->num_queues ? qmax : 0;
        d->q[i].notify_off = (uint16_t)i;
    }
    for (unsigned i = 0; i < FV_MSIX_VECTORS; i++)
        d->irq_fds[i] = -1;
    dev_reset(d);
    d->dev_features = 1ull << VIRTIO_F_VERSION_1;

    uint8_t *c = d->cfg;
    fv_put16(c + PCI_VENDOR_ID, 0x1af4);
    fv_put16(c + PCI_DEVICE_ID, 0x1041);
    fv_put16(c + PCI_STATUS, PCI_STATUS_CAP_LIST);
    c[PCI_CAPABILITY_LIST] = FV_CAP_COMMON;
    fv_vendor_cap(d, FV_CAP_COMMON, FV_CAP_NOTIFY, VIRTIO_PCI_CAP_COMMON_CFG, 16, 0, FV_COMMON, 64);
    fv_vendor_cap(d, FV_CAP_NOTIFY, FV_CAP_ISR, VIRTIO_PCI_CAP_NOTIFY_CFG, 20, 0, FV_NOTIFY,
                  FV_NQ * FV_NOTIFY_MULT);
    fv_put32(c + FV_CAP_NOTIFY + 16, FV_NOTIFY_MULT);
    fv_vendor_cap(d, FV_CAP_ISR, FV_CAP_DEVICE, VIRTIO_PCI_CAP_ISR_CFG, 16, 0, FV_ISR, 1);
    fv_vendor_cap(d, FV_CAP_DEVICE, FV_CAP_PCICFG, VIRTIO_PCI_CAP_DEVICE_CFG, 16, 0, FV_DEVICE, 64);
    fv_vendor_cap(d, FV_CAP_PCICFG, FV_CAP_MSIX, VIRTIO_PCI_CAP_PCI_CFG, 20, 0, 0, 0);
    c[FV_CAP_MSIX] = PCI_CAP_ID_MSIX;
    c[FV_CAP_MSIX + 1] = 0;
    fv_put16(c + FV_CAP_MSIX + PCI_MSIX_FLAGS, FV_MSIX_VECTORS - 1);
    fv_put32(c + FV_CAP_MSIX + PCI_MSIX_TABLE, 1);
    fv_put32(c + FV_CAP_MSIX + PCI_MSIX_PBA, 0x800 | 1);
    fv_put32(c + FV_EXT_AER, PCI_EXT_CAP_ID_ERR | 1u << 16 | (uint32_t)FV_EXT_SRIOV << 20);
    fv_put32(c + FV_EXT_SRIOV, PCI_EXT_CAP_ID_SRIOV | 1u << 16);
}

void fv_fini(struct fake_vdev *d)
{
    for (unsigned i = 0; i < FV_MSIX_VECTORS; i++)
        if (d->irq_fds[i] >= 0)
            close(d->irq_fds[i]);
    while (d->nmaps)
        fv_dma_unmap(&d->t, d->map[0].iova, d->map[0].len);
}

int fv_find_write(const struct fake_vdev *d, uint64_t off, unsigned from)
{
    for (unsigned i = d->nlog; i-- > from;)
        if (d->log[i].off == off)
            return (int)i;
    return -1;
}

/* ---- device side of split rings ---- */

void *fv_ptr(struct fake_vdev *d, uint64_t iova, size_t len)
{
    for (unsigned i = 0; i < d->nmaps; i++) {
        uint64_t b = d->map[i].iova, n = d->map[i].len;
        if (iova >= b && iova - b <= n && len <= n - (iova - b))
            return d->map[i].va + (iova - b);
    }
    return NULL;
}

int fv_pop(struct fake_vdev *d, uint16_t qidx, struct fv_elem *e)
{
    struct fv_queue *q = &d->q[qidx];
    uint16_t n = q->size;
    uint8_t *avail = fv_ptr(d, q->avail, 6 + 2u * n);
    uint8_t *desc = fv_ptr(d, q->desc, 16u * n);
    if (!avail || !desc)
        return -1;
    uint16_t idx = le16toh(__atomic_load_n((uint16_t *)(avail + 2), __ATOMIC_ACQUIRE));
    if (idx == q->last_avail)
        return 0;
    uint16_t head = get16(avail + 4 + 2 * (q->last_avail % n));
    q->last_avail++;
    if (head >= n)
        return -1;
    memset(e, 0, sizeof(*e));
    e->head = head;
    for (uint16_t i = head;;) {
        const uint8_t *dd = desc + 16 * (size_t)i;
        if (e->n >= 16)
            return -1;
        uint16_t flags = get16(dd + 12);
        e->seg[e->n].iova = get32(dd) | (uint64_t)get32(dd + 4) << 32;
        e->seg[e->n].len = get32(dd + 8);
        e->seg[e->n].write = flags & VRING_DESC_F_WRITE;
        e->n++;
        if (!(flags & VRING_DESC_F_NEXT))
            return 1;
        i = get16(dd + 14);
        if (i >= n)
            return -1;
    }
}

size_t fv_write_in(struct fake_vdev *d, const struct fv_elem *e, size_t at, const void *src, size_t len)
{
    size_t done = 0, pos = 0;
    for (unsigned i = 0; i < e->n && done < len; i++) {
        if (!e->seg[i].write)
            continue;
        size_t sl = e->seg[i].len;
        if (at >= pos + sl) {
            pos += sl;
            continue;
        }
        size_t skip = at > pos ? at - pos : 0, k = sl - skip < len - done ? sl - skip : len - done;
        uint8_t *p = fv_ptr(d, e->seg[i].iova + skip, k);
        if (!p)
            break;
        memcpy(p, (const uint8_t *)src + done, k);
        done += k;
        at += k;
        pos += sl;
    }
    return done;
}

size_t fv_read_out(struct fake_vdev *d, const struct fv_elem *e, void *dst, size_t cap)
{
    size_t done = 0;
    for (unsigned i = 0; i < e->n && done < cap; i++) {
        if (e->seg[i].write)
            continue;
        size_t k = e->seg[i].len < cap - done ? e->seg[i].len : cap - done;
        uint8_t *p = fv_ptr(d, e->seg[i].iova, k);
        if (!p)
            break;
        memcpy((uint8_t *)dst + done, p, k);
        done += k;
    }
    return done;
}

void fv_fill(struct fake_vdev *d, uint16_t qidx, unsigned ahead, uint16_t id, uint32_t len)
{
    struct fv_queue *q = &d->q[qidx];
    uint8_t *used = fv_ptr(d, q->used, 6 + 8u * q->size);
    if (!used)
        return;
    uint8_t *el = used + 4 + 8 * ((uint16_t)(q->used_idx + ahead) % q->size);
    fv_put32(el, id);
    fv_put32(el + 4, len);
}

void fv_flush(struct fake_vdev *d, uint16_t qidx, unsigned count)
{
    struct fv_queue *q = &d->q[qidx];
    uint8_t *used = fv_ptr(d, q->used, 6 + 8u * q->size);
    uint8_t *avail = fv_ptr(d, q->avail, 6 + 2u * q->size);
    if (!used || !avail)
        return;
    uint16_t old = q->used_idx, now = (uint16_t)(old + count);
    q->used_idx = now;
    __atomic_store_n((uint16_t *)(used + 2), htole16(now), __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    bool irq;
    if (d->drv_features & (1ull << VIRTIO_RING_F_EVENT_IDX))
        irq = vring_need_event(get16(avail + 4 + 2 * q->size), now, old);
    else
        irq = !(get16(avail) & VRING_AVAIL_F_NO_INTERRUPT);
    if (irq && q->msix < FV_MSIX_VECTORS && d->irq_fds[q->msix] >= 0) {
        uint64_t one = 1;
        if (write(d->irq_fds[q->msix], &one, sizeof(one)) < 0)
            return;
    }
}
