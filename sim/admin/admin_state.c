/* Device state of a VF as a record list: nvidia TLVs (SAVE/RESTORE) or
 * virtio device parts (DEV_PARTS_GET/SET).  Both record headers put a le16
 * type at byte 0 and a le32 length at byte 4, values padded to 8 bytes. */
#include <endian.h>
#include <stdio.h>
#include <string.h>

#include "lib/log/vfe_log.h"
#include "sim/admin/admin_priv.h"

_Static_assert(sizeof(struct sim_nv_tlv) == 8 && sizeof(struct sim_adm_part_hdr) == 8,
               "both record headers are 8 bytes");

enum kind {
    K_NONE, K_COMMON, K_DEV_FEATURES, K_DRV_FEATURES, K_STATUS, K_NET_CFG, K_RX_MODE,
    K_PAIRS, K_VQ_CFG, K_VQ_SPLIT,
};

static uint16_t type_of(enum adm_fmt fmt, enum kind k)
{
    static const uint16_t tlv[] = {
        [K_COMMON] = SIM_NV_TLV_COMMON_CFG, [K_NET_CFG] = SIM_NV_TLV_DEVICE_CFG,
        [K_RX_MODE] = SIM_NV_TLV_RX_MODE, [K_PAIRS] = SIM_NV_TLV_NET_PAIRS,
        [K_VQ_CFG] = SIM_NV_TLV_VQ_CFG, [K_VQ_SPLIT] = SIM_NV_TLV_VQ_SPLIT,
    };
    static const uint16_t part[] = {
        [K_COMMON] = SIM_ADM_PART_PCI_COMMON_CFG, [K_DEV_FEATURES] = SIM_ADM_PART_DEV_FEATURES,
        [K_DRV_FEATURES] = SIM_ADM_PART_DRV_FEATURES, [K_STATUS] = SIM_ADM_PART_DEVICE_STATUS,
        [K_NET_CFG] = SIM_ADM_PART_NET_CFG, [K_RX_MODE] = SIM_ADM_PART_NET_RX_MODE,
        [K_PAIRS] = SIM_ADM_PART_NET_MQ_PAIRS, [K_VQ_CFG] = SIM_ADM_PART_VQ_CFG,
        [K_VQ_SPLIT] = SIM_ADM_PART_VQ_SPLIT_STATE,
    };
    return fmt == ADM_FMT_TLV ? tlv[k] : part[k];
}

static enum kind kind_of(enum adm_fmt fmt, uint16_t type)
{
    for (enum kind k = K_COMMON; k <= K_VQ_SPLIT; k++)
        if (type_of(fmt, k) && type_of(fmt, k) == type)
            return k;
    return K_NONE;
}

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ---- encode ---- */

struct writer {
    enum adm_fmt fmt;
    uint32_t filter;
    uint8_t *buf;
    size_t cap, len;
    unsigned count;
    bool overflow;
};

static void put(struct writer *w, enum kind k, const void *val, uint32_t vlen)
{
    uint16_t type = type_of(w->fmt, k);
    if (!type || (w->filter && w->filter != type))
        return;
    size_t need = sizeof(struct sim_nv_tlv) + pad8(vlen);
    if (need > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    uint8_t *p = w->buf + w->len;
    struct sim_nv_tlv h = { .type = htole16(type), .reserved = 0, .len = htole32(vlen) };
    memcpy(p, &h, sizeof(h));
    memcpy(p + sizeof(h), val, vlen);
    memset(p + sizeof(h) + vlen, 0, pad8(vlen) - vlen);
    w->len += need;
    w->count++;
}

size_t sim_adm_state_encode(const struct sim_fn *vf, enum adm_fmt fmt, uint32_t filter,
                            uint8_t *buf, size_t cap, unsigned *count)
{
    struct writer w = { .fmt = fmt, .filter = filter, .buf = buf, .cap = cap };
    uint64_t f;

    f = htole64(vf->device_features);
    put(&w, K_DEV_FEATURES, &f, 8);
    f = htole64(vf->driver_features);
    put(&w, K_DRV_FEATURES, &f, 8);
    struct sim_state_common c = {
        .device_features = htole64(vf->device_features),
        .driver_features = htole64(vf->driver_features),
        .msix_config = htole16(vf->msix_config),
        .num_queues = htole16(vf->num_queues),
        .status = vf->status,
    };
    put(&w, K_COMMON, &c, sizeof(c));
    put(&w, K_STATUS, &vf->status, 1);
    if (fmt == ADM_FMT_TLV) {   /* blob order: config before queues */
        put(&w, K_NET_CFG, &vf->net_cfg, sizeof(vf->net_cfg));
        put(&w, K_RX_MODE, &vf->rx_mode, 1);
    }
    for (unsigned i = 0; i < vf->num_queues && i < SIM_MAX_QUEUES; i++) {
        const struct sim_queue *q = &vf->queues[i];
        struct sim_state_vq_cfg qc = {
            .index = htole16(i), .size = htole16(q->size), .msix_vector = htole16(q->msix_vector),
            .enabled = htole16(q->enabled ? 1 : 0),
            .desc = htole64(q->desc), .avail = htole64(q->avail), .used = htole64(q->used),
        };
        put(&w, K_VQ_CFG, &qc, sizeof(qc));
        struct sim_state_vq_split qs = {
            .index = htole16(i), .last_avail = htole16(q->last_avail), .last_used = htole16(q->used_idx),
        };
        put(&w, K_VQ_SPLIT, &qs, sizeof(qs));
    }
    if (fmt == ADM_FMT_PARTS) {
        put(&w, K_NET_CFG, &vf->net_cfg, sizeof(vf->net_cfg));
        put(&w, K_RX_MODE, &vf->rx_mode, 1);
    }
    uint16_t pairs = htole16(vf->active_pairs);
    put(&w, K_PAIRS, &pairs, 2);
    if (count)
        *count = w.count;
    return w.overflow ? ADM_ENCODE_OVERFLOW : w.len;
}

/* ---- parse and validate ---- */

/* Within the VF's MSI-X table (its share of the PF's pool, core/msix_pool.c). */
static bool vector_ok(const struct sim_fn *vf, uint16_t v)
{
    return v == 0xffff || v < (vf->msix_count ? vf->msix_count : SIM_MSIX_VECTORS);
}

static bool pow2_size_ok(uint16_t n)
{
    return n && !(n & (n - 1)) && n <= SIM_QUEUE_MAX_SIZE;
}

#define BAD(...) do { snprintf(why, why_len, __VA_ARGS__); return ADM_EINVAL; } while (0)

static enum adm_err parse_queue_index(const struct sim_fn *vf, uint16_t idx, uint64_t seen,
                                      char *why, size_t why_len)
{
    if (idx >= SIM_MAX_QUEUES || idx >= vf->num_queues)
        BAD("queue index %u out of range (%u queues)", idx, vf->num_queues);
    if (seen & (1ull << idx))
        BAD("queue %u described twice", idx);
    return ADM_OK;
}

static enum adm_err parse_one(const struct sim_fn *vf, enum kind k, uint16_t type, const uint8_t *v,
                              uint32_t len, struct adm_state *st, char *why, size_t why_len)
{
    switch (k) {
    case K_COMMON: {
        if (len != sizeof(struct sim_state_common))
            BAD("common cfg length %u", len);
        struct sim_state_common c;
        memcpy(&c, v, sizeof(c));
        c.device_features = le64toh(c.device_features);
        c.driver_features = le64toh(c.driver_features);
        c.msix_config = le16toh(c.msix_config);
        c.num_queues = le16toh(c.num_queues);
        if (c.driver_features & ~vf->device_features)
            BAD("driver features 0x%llx not offered (device 0x%llx)",
                (unsigned long long)c.driver_features, (unsigned long long)vf->device_features);
        if (!vector_ok(vf, c.msix_config))
            BAD("config vector %u out of range", c.msix_config);
        st->has_common = true;
        st->common = c;
        return ADM_OK;
    }
    case K_DEV_FEATURES:   /* informational: the destination's own features rule */
        if (len != 8)
            BAD("device features length %u", len);
        return ADM_OK;
    case K_DRV_FEATURES: {
        uint64_t f;
        if (len != 8)
            BAD("driver features length %u", len);
        memcpy(&f, v, 8);
        f = le64toh(f);
        if (f & ~vf->device_features)
            BAD("driver features 0x%llx not offered", (unsigned long long)f);
        st->has_drv_features = true;
        st->drv_features = f;
        return ADM_OK;
    }
    case K_STATUS:
        if (len != 1)
            BAD("device status length %u", len);
        st->has_status = true;
        st->status = v[0];
        return ADM_OK;
    case K_NET_CFG:
        if (len < 8 || len > 256)
            BAD("device config length %u", len);
        st->has_net_cfg = true;
        st->net_cfg_len = len < sizeof(st->net_cfg) ? len : sizeof(st->net_cfg);
        memcpy(&st->net_cfg, v, st->net_cfg_len);
        return ADM_OK;
    case K_RX_MODE:
        if (len != 1)
            BAD("rx mode length %u", len);
        if (v[0] & ~3u)
            BAD("rx mode 0x%x has unknown bits", v[0]);
        st->has_rx_mode = true;
        st->rx_mode = v[0];
        return ADM_OK;
    case K_PAIRS: {
        uint16_t n, max = le16toh(vf->net_cfg.max_virtqueue_pairs);
        if (len != 2)
            BAD("queue pairs length %u", len);
        memcpy(&n, v, 2);
        n = le16toh(n);
        if (max == 0)
            max = 1;
        if (n == 0 || n > max || n > SIM_MAX_QPAIRS)
            BAD("active queue pairs %u out of range 1..%u", n, max);
        st->has_pairs = true;
        st->pairs = n;
        return ADM_OK;
    }
    case K_VQ_CFG: {
        struct sim_state_vq_cfg q;
        if (len != sizeof(q))
            BAD("queue cfg length %u", len);
        memcpy(&q, v, sizeof(q));
        q.index = le16toh(q.index);
        q.size = le16toh(q.size);
        q.msix_vector = le16toh(q.msix_vector);
        q.enabled = le16toh(q.enabled);
        q.desc = le64toh(q.desc);
        q.avail = le64toh(q.avail);
        q.used = le64toh(q.used);
        enum adm_err e = parse_queue_index(vf, q.index, st->vq_cfg_mask, why, why_len);
        if (e)
            return e;
        if (q.enabled > 1)
            BAD("queue %u enabled %u", q.index, q.enabled);
        /* A driver may describe an unused queue with size 0. */
        if (!pow2_size_ok(q.size) && (q.size || q.enabled))
            BAD("queue %u size %u not a power of 2 up to %u", q.index, q.size, SIM_QUEUE_MAX_SIZE);
        if (!vector_ok(vf, q.msix_vector))
            BAD("queue %u vector %u out of range", q.index, q.msix_vector);
        if ((q.desc & 15) || (q.avail & 1) || (q.used & 3))
            BAD("queue %u ring address misaligned", q.index);
        st->vq_cfg_mask |= 1ull << q.index;
        st->vq_cfg[q.index] = q;
        return ADM_OK;
    }
    case K_VQ_SPLIT: {
        struct sim_state_vq_split q;
        if (len != sizeof(q))
            BAD("queue state length %u", len);
        memcpy(&q, v, sizeof(q));
        q.index = le16toh(q.index);
        q.last_avail = le16toh(q.last_avail);
        q.last_used = le16toh(q.last_used);
        enum adm_err e = parse_queue_index(vf, q.index, st->vq_split_mask, why, why_len);
        if (e)
            return e;
        st->vq_split_mask |= 1ull << q.index;
        st->vq_split[q.index] = q;
        return ADM_OK;
    }
    case K_NONE:
        break;
    }
    BAD("unknown record type 0x%x", type);
}

enum adm_err sim_adm_state_parse(const struct sim_fn *vf, enum adm_fmt fmt, const uint8_t *buf, size_t len,
                                 struct adm_state *st, char *why, size_t why_len)
{
    _Static_assert(SIM_MAX_QUEUES <= 64, "queue masks are 64 bits");
    uint32_t seen = 0;   /* singleton kinds already present */
    size_t off = 0;

    memset(st, 0, sizeof(*st));
    while (off < len) {
        struct sim_nv_tlv h;
        if (len - off < sizeof(h))
            BAD("truncated record header at byte %zu", off);
        memcpy(&h, buf + off, sizeof(h));
        uint16_t type = le16toh(h.type);
        uint32_t vlen = le32toh(h.len);
        if (vlen > len - off - sizeof(h))
            BAD("record 0x%x at byte %zu: length %u beyond the end", type, off, vlen);
        enum kind k = kind_of(fmt, type);
        if (k != K_VQ_CFG && k != K_VQ_SPLIT && k != K_NONE) {
            if (seen & (1u << k))
                BAD("record 0x%x present twice", type);
            seen |= 1u << k;
        }
        enum adm_err e = parse_one(vf, k, type, buf + off + sizeof(h), vlen, st, why, why_len);
        if (e)
            return e;
        size_t next = sizeof(h) + pad8(vlen);
        off = next > len - off ? len : off + next;   /* the last record may omit its padding */
    }
    return ADM_OK;
}

/* ---- apply (validated state only) ---- */

void sim_adm_state_apply(struct sim_fn *vf, const struct adm_state *st)
{
    if (st->has_common) {
        vf->driver_features = st->common.driver_features;
        vf->msix_config = st->common.msix_config;
        vf->status = st->common.status;
    }
    if (st->has_drv_features)
        vf->driver_features = st->drv_features;
    if (st->has_status)
        vf->status = st->status;
    for (unsigned i = 0; i < SIM_MAX_QUEUES; i++) {
        struct sim_queue *q = &vf->queues[i];
        if (st->vq_cfg_mask & (1ull << i)) {
            const struct sim_state_vq_cfg *c = &st->vq_cfg[i];
            if (c->size)
                q->size = c->size;
            q->msix_vector = c->msix_vector;
            q->enabled = c->enabled;
            q->desc = c->desc;
            q->avail = c->avail;
            q->used = c->used;
            q->broken = false;
            q->reset_pending = false;
        }
        if (st->vq_split_mask & (1ull << i)) {
            q->last_avail = st->vq_split[i].last_avail;
            q->used_idx = st->vq_split[i].last_used;
        }
        if (!q->fn)
            q->fn = vf;
    }
    if (st->has_net_cfg) {
        /* Only provisioned and runtime fields; the rest describes the device. */
        memcpy(vf->net_cfg.mac, st->net_cfg.mac, sizeof(vf->net_cfg.mac));
        vf->net_cfg.status = st->net_cfg.status;
        if (st->net_cfg_len >= offsetof(struct virtio_net_config, mtu) + sizeof(st->net_cfg.mtu))
            vf->net_cfg.mtu = st->net_cfg.mtu;
    }
    if (st->has_rx_mode)
        vf->rx_mode = st->rx_mode;
    if (st->has_pairs)
        vf->active_pairs = st->pairs;
    LOG_I("vf %s: state restored (features 0x%llx, status 0x%x, %u queue cfgs, %u queue states)",
          vf->bdf, (unsigned long long)vf->driver_features, vf->status,
          (unsigned)__builtin_popcountll(st->vq_cfg_mask), (unsigned)__builtin_popcountll(st->vq_split_mask));
}
