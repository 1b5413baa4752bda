/* BAR registers: virtio common cfg, ISR, device cfg and doorbells in BAR0,
 * the MSI-X table and PBA in BAR1. */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "sim/spec/sim_virtio_spec.h"
#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }

/* Queue selected by queue_select, or NULL when it names no queue. */
static struct sim_queue *selected(struct sim_fn *fn)
{
    uint16_t i = fn->queue_select;
    if (i < fn->num_queues || (fn->is_pf && i == fn->admin_queue_index))
        return &fn->queues[i];
    return NULL;
}

void sim_bar_common_read(struct sim_fn *fn, uint8_t img[64])
{
    memset(img, 0, 64);
    put32(img + SIM_CC_DEVICE_FEATURE_SELECT, fn->dfselect);
    if (fn->dfselect < 2)
        put32(img + SIM_CC_DEVICE_FEATURE, (uint32_t)(fn->device_features >> (32 * fn->dfselect)));
    put32(img + SIM_CC_DRIVER_FEATURE_SELECT, fn->gfselect);
    if (fn->gfselect < 2)
        put32(img + SIM_CC_DRIVER_FEATURE, (uint32_t)(fn->driver_features >> (32 * fn->gfselect)));
    put16(img + SIM_CC_CONFIG_MSIX_VECTOR, fn->msix_config);
    put16(img + SIM_CC_NUM_QUEUES, fn->num_queues);
    img[SIM_CC_DEVICE_STATUS] = fn->status;
    img[SIM_CC_CONFIG_GENERATION] = fn->config_generation;
    put16(img + SIM_CC_QUEUE_SELECT, fn->queue_select);
    struct sim_queue *q = selected(fn);
    if (q) {
        put16(img + SIM_CC_QUEUE_SIZE, q->size);
        put16(img + SIM_CC_QUEUE_MSIX_VECTOR, q->msix_vector);
        put16(img + SIM_CC_QUEUE_ENABLE, q->enabled);
        put16(img + SIM_CC_QUEUE_NOTIFY_OFF, q->index);
        put32(img + SIM_CC_QUEUE_DESC_LO, (uint32_t)q->desc);
        put32(img + SIM_CC_QUEUE_DESC_HI, (uint32_t)(q->desc >> 32));
        put32(img + SIM_CC_QUEUE_DRIVER_LO, (uint32_t)q->avail);
        put32(img + SIM_CC_QUEUE_DRIVER_HI, (uint32_t)(q->avail >> 32));
        put32(img + SIM_CC_QUEUE_DEVICE_LO, (uint32_t)q->used);
        put32(img + SIM_CC_QUEUE_DEVICE_HI, (uint32_t)(q->used >> 32));
        put16(img + SIM_CC_QUEUE_NOTIFY_DATA, q->index);
        put16(img + SIM_CC_QUEUE_RESET, q->reset_pending);
    }
    if (fn->is_pf) {
        put16(img + SIM_CC_ADMIN_QUEUE_INDEX, fn->admin_queue_index);
        put16(img + SIM_CC_ADMIN_QUEUE_NUM, 1);
    }
}

static void set_half(uint64_t *v, unsigned hi, uint32_t val)
{
    *v = hi ? (*v & 0xffffffffull) | (uint64_t)val << 32 : (*v & ~0xffffffffull) | val;
}

/* A ring address: one 8-byte write, or either 4-byte half. */
static void set_addr(uint64_t *a, size_t len, uint64_t v64, bool hi, uint32_t v)
{
    if (len == 8)
        *a = v64;
    else
        set_half(a, hi, v);
}

static void status_write(struct sim_fn *fn, uint8_t st)
{
    if (st == 0) {
        sim_fn_reset(fn);
        return;
    }
    if ((st & VIRTIO_CONFIG_S_FEATURES_OK) && !(fn->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
        uint64_t bad = fn->driver_features & ~fn->device_features;
        if (bad || !(fn->driver_features & (1ull << VIRTIO_F_VERSION_1))) {
            LOG_W("%s: features %#llx refused (not offered: %#llx)", fn->bdf,
                  (unsigned long long)fn->driver_features, (unsigned long long)bad);
            st &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
        }
    }
    bool was_ok = fn->status & VIRTIO_CONFIG_S_DRIVER_OK;
    /* NEEDS_RESET stays until reset: the driver cannot clear it. */
    fn->status = st | (fn->status & VIRTIO_CONFIG_S_NEEDS_RESET);
    if (!was_ok && (st & VIRTIO_CONFIG_S_DRIVER_OK)) {
        LOG_I("%s: DRIVER_OK, features %#llx", fn->bdf, (unsigned long long)fn->driver_features);
        sim_net_resume(fn);
    }
}

static void queue_reset(struct sim_queue *q)
{
    q->enabled = false;
    q->last_avail = q->used_idx = 0;
    q->broken = false;
    q->desc = q->avail = q->used = 0;
    q->size = SIM_QUEUE_MAX_SIZE;
    q->msix_vector = 0xffff;
    q->reset_pending = true;
}

/* A vector past the function's MSI-X table reads back as NO_VECTOR (the
 * spec's refusal): a VF's table is its share of the pool (core/msix_pool.c). */
static uint16_t vector_in_table(const struct sim_fn *fn, uint16_t vec)
{
    unsigned n = fn->msix_count ? fn->msix_count : SIM_MSIX_VECTORS;
    if (vec == 0xffff || vec < n)
        return vec;
    LOG_W("%s: MSI-X vector %u refused: the function has %u", fn->bdf, vec, n);
    return 0xffff;
}

int sim_bar_common_write(struct sim_fn *fn, uint64_t off, const void *buf, size_t len)
{
    uint32_t v = 0;
    memcpy(&v, buf, len > 4 ? 4 : len);
    uint64_t v64 = v;
    if (len == 8)
        memcpy(&v64, buf, 8);
    struct sim_queue *q = selected(fn);
    bool q_writable = q && !q->enabled;
    uint16_t vec = (uint16_t)v < SIM_MSIX_VECTORS ? (uint16_t)v : 0xffff;

    switch (off) {
    case SIM_CC_DEVICE_FEATURE_SELECT: fn->dfselect = v; break;
    case SIM_CC_DRIVER_FEATURE_SELECT: fn->gfselect = v; break;
    case SIM_CC_DRIVER_FEATURE:
        if (fn->gfselect < 2 && !(fn->status & VIRTIO_CONFIG_S_FEATURES_OK))
            set_half(&fn->driver_features, fn->gfselect, v);
        break;
    case SIM_CC_CONFIG_MSIX_VECTOR: fn->msix_config = vector_in_table(fn, vec); break;
    case SIM_CC_DEVICE_STATUS: status_write(fn, (uint8_t)v); break;
    case SIM_CC_QUEUE_SELECT: fn->queue_select = (uint16_t)v; break;
    case SIM_CC_QUEUE_SIZE:
        if (q_writable) {
            uint16_t n = (uint16_t)v;
            if (n && !(n & (n - 1)) && n <= SIM_QUEUE_MAX_SIZE)
                q->size = n;
            else
                LOG_W("%s: queue %u: size %u refused", fn->bdf, q->index, n);
        }
        break;
    case SIM_CC_QUEUE_MSIX_VECTOR: if (q) q->msix_vector = vector_in_table(fn, vec); break;
    case SIM_CC_QUEUE_ENABLE:
        if (q && v == 1 && !q->enabled) {
            q->enabled = true;
            q->reset_pending = false;
            q->fn = fn;
            LOG_D("%s: queue %u enabled size %u", fn->bdf, q->index, q->size);
        }
        break;
    case SIM_CC_QUEUE_DESC_LO: case SIM_CC_QUEUE_DESC_HI:
        if (q_writable)
            set_addr(&q->desc, len, v64, off == SIM_CC_QUEUE_DESC_HI, v);
        break;
    case SIM_CC_QUEUE_DRIVER_LO: case SIM_CC_QUEUE_DRIVER_HI:
        if (q_writable)
            set_addr(&q->avail, len, v64, off == SIM_CC_QUEUE_DRIVER_HI, v);
        break;
    case SIM_CC_QUEUE_DEVICE_LO: case SIM_CC_QUEUE_DEVICE_HI:
        if (q_writable)
            set_addr(&q->used, len, v64, off == SIM_CC_QUEUE_DEVICE_HI, v);
        break;
    case SIM_CC_QUEUE_RESET:
        if (q && v == 1 && (fn->driver_features & (1ull << SIM_F_RING_RESET)))
            queue_reset(q);
        break;
    default:
        LOG_D("%s: write to read-only common cfg offset %llu ignored", fn->bdf, (unsigned long long)off);
        break;
    }
    return 0;
}

static int msix_access(struct sim_fn *fn, uint64_t off, void *buf, size_t len, bool write)
{
    if (off >= SIM_BAR1_MSIX_PBA) {
        if (!write)
            memset(buf, 0, len);   /* nothing is ever pending: vectors fire through eventfds */
        return 0;
    }
    if (off + len > sizeof(fn->msix_table))
        return write ? 0 : (memset(buf, 0, len), 0);
    if (write)
        memcpy(fn->msix_table + off, buf, len);
    else
        memcpy(buf, fn->msix_table + off, len);
    return 0;
}

int sim_bar_access(struct sim_fn *fn, unsigned bar, uint64_t off, void *buf, size_t len, bool write)
{
    uint64_t size = sim_bar_size(fn, bar);
    if (!size || len == 0 || off >= size || len > size - off)
        return -EINVAL;
    if (fn->removed)
        return -ENODEV;
    if (bar == 1)
        return msix_access(fn, off, buf, len, write);

    if (off < SIM_BAR0_COMMON + SIM_CC_SIZE) {
        if (off + len > SIM_CC_SIZE)
            return -EINVAL;
        if (!write) {
            uint8_t img[64];
            sim_bar_common_read(fn, img);
            memcpy(buf, img + off, len);
            return 0;
        }
        if (len != 1 && len != 2 && len != 4 && len != 8)
            return -EINVAL;
        return sim_bar_common_write(fn, off, buf, len);
    }
    if (off >= SIM_BAR0_ISR && off < SIM_BAR0_ISR + 4) {
        if (!write) {
            memset(buf, 0, len);
            if (off == SIM_BAR0_ISR) {
                *(uint8_t *)buf = fn->isr;
                fn->isr = 0;   /* reading ISR acknowledges it */
            }
        }
        return 0;
    }
    if (off >= SIM_BAR0_DEVICE && off < SIM_BAR0_DEVICE + sizeof(fn->net_cfg)) {
        uint64_t o = off - SIM_BAR0_DEVICE;
        if (o + len > sizeof(fn->net_cfg))
            return -EINVAL;
        if (!write)
            memcpy(buf, (uint8_t *)&fn->net_cfg + o, len);
        return 0;   /* the net config is read-only for the driver */
    }
    if (off >= SIM_BAR0_COUNTERS && off < SIM_BAR0_COUNTERS + SIM_CTR_COUNT * 8) {
        if (!write) {
            const struct sim_counters *c = &fn->ctr;
            uint64_t v[SIM_CTR_COUNT] = {
                [SIM_CTR_RX_PACKETS] = c->rx_packets, [SIM_CTR_RX_BYTES] = c->rx_bytes,
                [SIM_CTR_RX_DROPS] = c->rx_drops, [SIM_CTR_TX_PACKETS] = c->tx_packets,
                [SIM_CTR_TX_BYTES] = c->tx_bytes, [SIM_CTR_TX_DROPS] = c->tx_drops,
            };
            uint64_t o = off - SIM_BAR0_COUNTERS;
            if (o + len > sizeof(v))
                return -EINVAL;
            for (unsigned i = 0; i < SIM_CTR_COUNT; i++)
                v[i] = htole64(v[i]);
            memcpy(buf, (uint8_t *)v + o, len);
        }
        return 0;   /* read-only */
    }
    if (off >= SIM_BAR0_NOTIFY && off < SIM_BAR0_NOTIFY + (uint64_t)SIM_MAX_QUEUES * SIM_NOTIFY_MULT) {
        if (!write) {
            memset(buf, 0, len);
            return 0;
        }
        sim_queue_notify(fn, (uint16_t)((off - SIM_BAR0_NOTIFY) / SIM_NOTIFY_MULT));
        return 0;
    }
    if (!write)
        memset(buf, 0, len);
    return 0;
}
