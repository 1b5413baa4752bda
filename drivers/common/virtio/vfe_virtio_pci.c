/* Modern virtio-pci driver (virtio 1.3 section 4.1) over a vfe_transport. */
#include "drivers/common/virtio/vfe_virtio_pci.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "lib/log/vfe_log.h"

#define CFG_STD_SIZE     256u
#define CFG_EXT_SIZE     4096u
#define STD_CAP_MIN      0x40u
#define MAX_STD_CAPS     ((CFG_STD_SIZE - STD_CAP_MIN) / 4)
#define MAX_EXT_CAPS     ((CFG_EXT_SIZE - CFG_STD_SIZE) / 4)
/* Common cfg of a virtio 1.0 device ends after queue_used_hi. */
#define CC_MIN_LEN       VFE_CC_Q_NDATA
#define CFG_GEN_RETRIES  16
#define PCI_MAX_BAR      5

/* ---- config space ---- */

/* Config space as read once by vfe_vpci_init (the capability walk reads
 * dozens of fields: one round trip instead of one each). */
static _Thread_local const uint8_t *cfg_cache;
static _Thread_local size_t cfg_cache_len;

static int cfg_read(struct vfe_virtio_pci *vp, uint32_t off, void *v, size_t n)
{
    if (cfg_cache && off + n <= cfg_cache_len) {
        memcpy(v, cfg_cache + off, n);
        return 0;
    }
    return vfe_cfg_read(vp->t, off, v, n);
}

static int cfg_r8(struct vfe_virtio_pci *vp, uint32_t off, uint8_t *v)
{
    return cfg_read(vp, off, v, 1);
}

static int cfg_r16(struct vfe_virtio_pci *vp, uint32_t off, uint16_t *v)
{
    int rc = cfg_read(vp, off, v, 2);
    if (rc == 0)
        *v = le16toh(*v);
    return rc;
}

static int cfg_r32(struct vfe_virtio_pci *vp, uint32_t off, uint32_t *v)
{
    int rc = cfg_read(vp, off, v, 4);
    if (rc == 0)
        *v = le32toh(*v);
    return rc;
}

static int cfg_w16(struct vfe_virtio_pci *vp, uint32_t off, uint16_t v)
{
    v = htole16(v);
    return vfe_cfg_write(vp->t, off, &v, 2);
}

/* ---- BAR windows ---- */

static int win_rw(struct vfe_virtio_pci *vp, const struct vfe_vpci_window *w, uint32_t off, void *buf,
                  size_t len, bool write)
{
    if (!w->present)
        return -ENODEV;
    if (off > w->length || len > w->length - off)
        return -ERANGE;
    uint64_t at = (uint64_t)w->offset + off;
    if (write)
        return vp->t->ops->region_write(vp->t, w->bar, at, buf, len);
    return vp->t->ops->region_read(vp->t, w->bar, at, buf, len);
}

static int cc_r8(struct vfe_virtio_pci *vp, uint32_t off, uint8_t *v)
{
    return win_rw(vp, &vp->common, off, v, 1, false);
}

static int cc_r16(struct vfe_virtio_pci *vp, uint32_t off, uint16_t *v)
{
    int rc = win_rw(vp, &vp->common, off, v, 2, false);
    if (rc == 0)
        *v = le16toh(*v);
    return rc;
}

static int cc_r32(struct vfe_virtio_pci *vp, uint32_t off, uint32_t *v)
{
    int rc = win_rw(vp, &vp->common, off, v, 4, false);
    if (rc == 0)
        *v = le32toh(*v);
    return rc;
}

static int cc_w8(struct vfe_virtio_pci *vp, uint32_t off, uint8_t v)
{
    return win_rw(vp, &vp->common, off, &v, 1, true);
}

static int cc_w16(struct vfe_virtio_pci *vp, uint32_t off, uint16_t v)
{
    v = htole16(v);
    return win_rw(vp, &vp->common, off, &v, 2, true);
}

static int cc_w32(struct vfe_virtio_pci *vp, uint32_t off, uint32_t v)
{
    v = htole32(v);
    return win_rw(vp, &vp->common, off, &v, 4, true);
}

static int cc_w64(struct vfe_virtio_pci *vp, uint32_t lo, uint32_t hi, uint64_t v)
{
    int rc = cc_w32(vp, lo, (uint32_t)v);
    return rc ? rc : cc_w32(vp, hi, (uint32_t)(v >> 32));
}

/* ---- capability walk ---- */

static bool seen_once(uint64_t *bits, unsigned i)
{
    uint64_t m = 1ull << (i % 64);
    if (bits[i / 64] & m)
        return false;
    bits[i / 64] |= m;
    return true;
}

static const char *cfg_type_name(uint8_t type)
{
    switch (type) {
    case VIRTIO_PCI_CAP_COMMON_CFG: return "common";
    case VIRTIO_PCI_CAP_NOTIFY_CFG: return "notify";
    case VIRTIO_PCI_CAP_ISR_CFG: return "isr";
    case VIRTIO_PCI_CAP_DEVICE_CFG: return "device";
    default: return "other";
    }
}

static struct vfe_vpci_window *window_of(struct vfe_virtio_pci *vp, uint8_t type)
{
    switch (type) {
    case VIRTIO_PCI_CAP_COMMON_CFG: return &vp->common;
    case VIRTIO_PCI_CAP_NOTIFY_CFG: return &vp->notify;
    case VIRTIO_PCI_CAP_ISR_CFG: return &vp->isr;
    case VIRTIO_PCI_CAP_DEVICE_CFG: return &vp->device;
    case VFE_VPCI_CAP_COUNTERS: return &vp->counters;
    default: return NULL;
    }
}

/* A window must sit inside its BAR, meet the spec's alignment and be long
 * enough for what the driver will touch.  Bad ones are skipped: the spec lets
 * a device list several capabilities of one type, in order of preference. */
static bool window_ok(struct vfe_virtio_pci *vp, uint8_t type, const struct virtio_pci_cap *c,
                      uint32_t off, uint32_t len)
{
    struct vfe_region_info info;
    if (vp->t->ops->region_info(vp->t, c->bar, &info) < 0 || info.size == 0) {
        LOG_W("%s: virtio %s window in BAR%u, which does not exist", vp->t->bdf, cfg_type_name(type), c->bar);
        return false;
    }
    if (len == 0 || off > info.size || len > info.size - off) {
        LOG_W("%s: virtio %s window %#x+%#x is empty or outside BAR%u (%#llx bytes)", vp->t->bdf,
              cfg_type_name(type), off, len, c->bar, (unsigned long long)info.size);
        return false;
    }
    uint32_t align = type == VIRTIO_PCI_CAP_NOTIFY_CFG ? 2 : type == VIRTIO_PCI_CAP_ISR_CFG ? 1 : 4;
    if (off % align) {
        LOG_W("%s: virtio %s window offset %#x misaligned", vp->t->bdf, cfg_type_name(type), off);
        return false;
    }
    if (type == VIRTIO_PCI_CAP_COMMON_CFG && len < CC_MIN_LEN) {
        LOG_W("%s: virtio common window of %u bytes is too short", vp->t->bdf, len);
        return false;
    }
    return true;
}

static int parse_vendor_cap(struct vfe_virtio_pci *vp, uint8_t pos)
{
    struct virtio_pci_cap c;
    uint8_t cap_len;
    int rc = cfg_r8(vp, pos + 2, &cap_len);
    if (rc < 0)
        return rc;
    if (cap_len < sizeof(c) || pos + (unsigned)cap_len > CFG_STD_SIZE) {
        LOG_W("%s: virtio capability at %#x has bad length %u; skipped", vp->t->bdf, pos, cap_len);
        return 0;
    }
    if ((rc = vfe_cfg_read(vp->t, pos, &c, sizeof(c))) < 0)
        return rc;
    struct vfe_vpci_window *w = window_of(vp, c.cfg_type);
    if (!w || w->present)
        return 0;
    if (c.bar > PCI_MAX_BAR)
        return 0;   /* reserved BAR values mean "ignore this capability" */
    uint32_t off = le32toh(c.offset), len = le32toh(c.length);
    uint32_t mult = 0;
    if (c.cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
        if (cap_len < sizeof(struct virtio_pci_notify_cap)) {
            LOG_W("%s: virtio notify capability at %#x too short; skipped", vp->t->bdf, pos);
            return 0;
        }
        if ((rc = cfg_r32(vp, pos + offsetof(struct virtio_pci_notify_cap, notify_off_multiplier), &mult)) < 0)
            return rc;
        if (mult & (mult - 1) || mult == 1) {
            LOG_W("%s: notify_off_multiplier %u is not 0 or an even power of two; skipped", vp->t->bdf, mult);
            return 0;
        }
    }
    if (!window_ok(vp, c.cfg_type, &c, off, len))
        return 0;
    w->present = true;
    w->bar = c.bar;
    w->offset = off;
    w->length = len;
    if (c.cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG)
        vp->notify_off_multiplier = mult;
    return 0;
}

static int parse_msix_cap(struct vfe_virtio_pci *vp, uint8_t pos)
{
    uint16_t ctrl;
    int rc = cfg_r16(vp, pos + PCI_MSIX_FLAGS, &ctrl);
    if (rc < 0)
        return rc;
    if (!vp->msix_cap) {
        vp->msix_cap = pos;
        vp->msix_vectors = (uint16_t)((ctrl & PCI_MSIX_FLAGS_QSIZE) + 1);
    }
    return 0;
}

static int walk_std_caps(struct vfe_virtio_pci *vp)
{
    uint16_t status;
    uint8_t pos;
    int rc = cfg_r16(vp, PCI_STATUS, &status);
    if (rc < 0)
        return rc;
    if (!(status & PCI_STATUS_CAP_LIST)) {
        LOG_W("%s: no PCI capability list", vp->t->bdf);
        return -ENODEV;
    }
    if ((rc = cfg_r8(vp, PCI_CAPABILITY_LIST, &pos)) < 0)
        return rc;
    uint64_t seen[CFG_STD_SIZE / 64] = { 0 };
    unsigned count = 0;
    pos &= (uint8_t)~3u;
    while (pos) {
        if (pos < STD_CAP_MIN) {
            LOG_W("%s: capability pointer %#x inside the config header", vp->t->bdf, pos);
            return -ENODEV;
        }
        if (!seen_once(seen, pos) || ++count > MAX_STD_CAPS) {
            LOG_W("%s: capability list loops at %#x", vp->t->bdf, pos);
            return -ENODEV;
        }
        uint8_t hdr[2];
        if ((rc = vfe_cfg_read(vp->t, pos, hdr, 2)) < 0)
            return rc;
        if (hdr[0] == PCI_CAP_ID_VNDR)
            rc = parse_vendor_cap(vp, pos);
        else if (hdr[0] == PCI_CAP_ID_MSIX)
            rc = parse_msix_cap(vp, pos);
        if (rc < 0)
            return rc;
        pos = hdr[1] & (uint8_t)~3u;
    }
    return 0;
}

static int walk_ext_caps(struct vfe_virtio_pci *vp)
{
    struct vfe_region_info info;
    int rc = vp->t->ops->region_info(vp->t, VFE_REGION_CONFIG, &info);
    if (rc < 0)
        return rc;
    if (info.size < CFG_EXT_SIZE)
        return 0;   /* conventional config space: no extended capabilities */
    uint64_t seen[CFG_EXT_SIZE / 4 / 64] = { 0 };
    unsigned count = 0;
    uint32_t pos = CFG_STD_SIZE;
    for (;;) {
        uint32_t hdr;
        if ((rc = cfg_r32(vp, pos, &hdr)) < 0)
            return rc;
        if (pos == CFG_STD_SIZE && (hdr == 0 || hdr == 0xffffffffu))
            return 0;
        if (PCI_EXT_CAP_ID(hdr) == PCI_EXT_CAP_ID_SRIOV && !vp->sriov_cap)
            vp->sriov_cap = (uint16_t)pos;
        uint32_t next = PCI_EXT_CAP_NEXT(hdr) & ~3u;
        if (next == 0)
            return 0;
        if (next < CFG_STD_SIZE || next > CFG_EXT_SIZE - 4) {
            LOG_W("%s: extended capability pointer %#x out of range", vp->t->bdf, next);
            return -ENODEV;
        }
        if (!seen_once(seen, next / 4) || ++count > MAX_EXT_CAPS) {
            LOG_W("%s: extended capability list loops at %#x", vp->t->bdf, next);
            return -ENODEV;
        }
        pos = next;
    }
}

static int vpci_init(struct vfe_virtio_pci *vp, struct vfe_transport *t);

static int queue_select(struct vfe_virtio_pci *vp, uint16_t qidx);

struct noff_read {
    uint16_t *slot;
    int err;
};

static void noff_read_cb(void *ctx, int err, const void *data, size_t len)
{
    struct noff_read *r = ctx;
    uint16_t v;
    r->err = err ? err : len == sizeof(v) ? 0 : -EPROTO;
    if (!r->err) {
        memcpy(&v, data, sizeof(v));
        *r->slot = le16toh(v);
    }
}

/* Queues [first, first+n): every select and read sent at once, the answers
 * taken in one pass (a synchronous read of the last one absorbs the others'
 * replies, which arrive in order).  A round trip per queue made bring-up
 * half as slow again at the sim's 9 queues.  -EOPNOTSUPP: no posted mode
 * (kernel VFIO), or the transport is already posted (its owner's). */
#define NOFF_BATCH 32   /* 2 requests a queue, within VFE_POSTED_MAX */
static int notify_offs_pipelined(struct vfe_virtio_pci *vp, unsigned first, unsigned n)
{
    struct vfe_transport *t = vp->t;
    if (!t->ops->set_posted || !t->ops->region_read_async || t->posted || !vp->common.present ||
        vp->common.length < VFE_CC_Q_NOFF + 2)
        return -EOPNOTSUPP;
    if (vfe_transport_set_posted(t, true) < 0)
        return -EOPNOTSUPP;
    struct noff_read rd[NOFF_BATCH];
    int rc = 0;
    unsigned posted = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        rc = queue_select(vp, (uint16_t)(first + i));
        if (rc == 0 && i + 1 < n) {
            rd[i] = (struct noff_read){&vp->notify_offs[first + i], -EINPROGRESS};
            rc = vfe_transport_read_async(t, vp->common.bar, vp->common.offset + VFE_CC_Q_NOFF, 2, noff_read_cb,
                                          &rd[i]);
            posted += rc == 0;
        }
    }
    vfe_transport_set_posted(t, false);   /* the last read waits, and takes the replies before its own */
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_Q_NOFF, &vp->notify_offs[first + n - 1]);
    vfe_transport_drain(t);   /* the absorbed reads' callbacks */
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, true);
    if (rc == 0 && st.error)
        rc = st.error;
    for (unsigned i = 0; i < posted && rc == 0; i++)
        rc = rd[i].err == -EINPROGRESS ? -EIO : rd[i].err;
    for (unsigned i = 0; st.reads && i < posted; i++)   /* an answer missing (a broken stream): none may run later */
        vfe_transport_cancel_reads(t, &rd[i]);
    vfe_transport_set_posted(t, false);   /* frees the tables once nothing is outstanding */
    return rc;
}

static int notify_cache_fill(struct vfe_virtio_pci *vp)
{
    unsigned n = vp->num_queues < VFE_VPCI_NOTIFY_CACHE ? vp->num_queues : VFE_VPCI_NOTIFY_CACHE;
    vp->notify_cached = 0;
    int prc = 0;
    for (unsigned q = 0; q < n && prc == 0; q += NOFF_BATCH)
        prc = notify_offs_pipelined(vp, q, n - q < NOFF_BATCH ? n - q : NOFF_BATCH);
    if (prc == 0) {
        vp->notify_cached = (uint16_t)n;
        return 0;
    }
    if (prc != -EOPNOTSUPP)
        return prc;
    for (unsigned q = 0; q < n; q++) {
        uint16_t noff;
        int rc = queue_select(vp, (uint16_t)q);
        if (rc == 0)
            rc = cc_r16(vp, VFE_CC_Q_NOFF, &noff);
        if (rc < 0)
            return rc;
        vp->notify_offs[q] = noff;
    }
    vp->notify_cached = (uint16_t)n;
    return 0;
}

int vfe_vpci_init(struct vfe_virtio_pci *vp, struct vfe_transport *t)
{
    if (!vp || !t)
        return -EINVAL;
    static _Thread_local uint8_t space[4096];
    struct vfe_region_info ri;
    size_t len = 0;
    if (t->ops->region_info(t, VFE_REGION_CONFIG, &ri) == 0)
        len = ri.size < sizeof(space) ? (size_t)ri.size : sizeof(space);
    if (len && vfe_cfg_read(t, 0, space, len) == 0) {
        cfg_cache = space;
        cfg_cache_len = len;
    }
    int rc = vpci_init(vp, t);
    cfg_cache = NULL;
    cfg_cache_len = 0;
    if (rc == 0)
        rc = notify_cache_fill(vp);
    return rc;
}

static int vpci_init(struct vfe_virtio_pci *vp, struct vfe_transport *t)
{
    memset(vp, 0, sizeof(*vp));
    vp->t = t;
    int rc = cfg_r16(vp, PCI_VENDOR_ID, &vp->vendor_id);
    if (rc == 0)
        rc = cfg_r16(vp, PCI_DEVICE_ID, &vp->device_id);
    if (rc < 0)
        return rc;
    if (vp->vendor_id == 0xffff || vp->vendor_id == 0) {
        LOG_W("%s: no device answers (vendor id %#x)", t->bdf, vp->vendor_id);
        return -ENODEV;
    }
    if ((rc = walk_std_caps(vp)) < 0 || (rc = walk_ext_caps(vp)) < 0)
        return rc;
    if (!vp->common.present || !vp->notify.present || !vp->device.present) {
        LOG_W("%s: not a modern virtio device (windows:%s%s%s missing)", t->bdf,
              vp->common.present ? "" : " common", vp->notify.present ? "" : " notify",
              vp->device.present ? "" : " device");
        return -ENODEV;
    }
    if ((rc = cc_r16(vp, VFE_CC_NUMQ, &vp->num_queues)) < 0)
        return rc;
    LOG_D("%s: virtio %04x:%04x, %u queues, %u MSI-X vectors, notify multiplier %u", t->bdf,
          vp->vendor_id, vp->device_id, vp->num_queues, vp->msix_vectors, vp->notify_off_multiplier);
    return 0;
}

int vfe_vpci_enable_bus_master(struct vfe_virtio_pci *vp)
{
    uint16_t cmd;
    int rc = cfg_r16(vp, PCI_COMMAND, &cmd);
    if (rc < 0)
        return rc;
    return cfg_w16(vp, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

/* ---- status ---- */

int vfe_vpci_get_status(struct vfe_virtio_pci *vp, uint8_t *status)
{
    return cc_r8(vp, VFE_CC_STATUS, status);
}

int vfe_vpci_set_status(struct vfe_virtio_pci *vp, uint8_t status)
{
    return cc_w8(vp, VFE_CC_STATUS, status);
}

int vfe_vpci_add_status(struct vfe_virtio_pci *vp, uint8_t bits)
{
    uint8_t st;
    int rc = vfe_vpci_get_status(vp, &st);
    return rc ? rc : vfe_vpci_set_status(vp, st | bits);
}

int vfe_vpci_reset(struct vfe_virtio_pci *vp)
{
    return vfe_vpci_set_status(vp, 0);
}

int vfe_vpci_reset_done(struct vfe_virtio_pci *vp, bool *done)
{
    uint8_t st;
    int rc = vfe_vpci_get_status(vp, &st);
    if (rc == 0)
        *done = st == 0;
    return rc;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int vfe_vpci_reset_wait(struct vfe_virtio_pci *vp, int timeout_ms)
{
    int64_t deadline = now_ns() + (timeout_ms > 0 ? timeout_ms : 0) * 1000000LL;
    for (;;) {
        bool done = false;
        int rc = vfe_vpci_reset_done(vp, &done);
        if (rc < 0)
            return rc;
        if (done)
            return 0;
        if (now_ns() >= deadline) {
            LOG_W("%s: device reset not done after %d ms", vp->t->bdf, timeout_ms);
            return -ETIMEDOUT;
        }
        struct timespec pause = { 0, 1000000 };
        nanosleep(&pause, NULL);
    }
}

/* ---- features ---- */

int vfe_vpci_get_features(struct vfe_virtio_pci *vp, uint64_t *features)
{
    uint32_t lo, hi;
    int rc = cc_w32(vp, VFE_CC_DFSELECT, 0);
    if (rc == 0)
        rc = cc_r32(vp, VFE_CC_DF, &lo);
    if (rc == 0)
        rc = cc_w32(vp, VFE_CC_DFSELECT, 1);
    if (rc == 0)
        rc = cc_r32(vp, VFE_CC_DF, &hi);
    if (rc == 0)
        *features = (uint64_t)hi << 32 | lo;
    return rc;
}

int vfe_vpci_negotiate(struct vfe_virtio_pci *vp, uint64_t features)
{
    uint64_t offered;
    int rc = vfe_vpci_get_features(vp, &offered);
    if (rc < 0)
        return rc;
    if (features & ~offered) {
        LOG_W("%s: features %#llx not offered by the device", vp->t->bdf,
              (unsigned long long)(features & ~offered));
        return -EINVAL;
    }
    if ((rc = cc_w32(vp, VFE_CC_GFSELECT, 0)) < 0 || (rc = cc_w32(vp, VFE_CC_GF, (uint32_t)features)) < 0 ||
        (rc = cc_w32(vp, VFE_CC_GFSELECT, 1)) < 0 ||
        (rc = cc_w32(vp, VFE_CC_GF, (uint32_t)(features >> 32))) < 0)
        return rc;
    if ((rc = vfe_vpci_add_status(vp, VIRTIO_CONFIG_S_FEATURES_OK)) < 0)
        return rc;
    uint8_t st;
    if ((rc = vfe_vpci_get_status(vp, &st)) < 0)
        return rc;
    if (!(st & VIRTIO_CONFIG_S_FEATURES_OK)) {
        LOG_W("%s: device refused features %#llx", vp->t->bdf, (unsigned long long)features);
        return -EIO;
    }
    return 0;
}

/* ---- queues ---- */

static int queue_select(struct vfe_virtio_pci *vp, uint16_t qidx)
{
    return cc_w16(vp, VFE_CC_Q_SELECT, qidx);
}

int vfe_vpci_queue_max(struct vfe_virtio_pci *vp, uint16_t qidx, uint16_t *max)
{
    int rc = queue_select(vp, qidx);
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_Q_SIZE, max);
    if (rc == 0 && *max == 0)
        rc = -ENOENT;
    return rc;
}

int vfe_vpci_queue_setup(struct vfe_virtio_pci *vp, uint16_t qidx, uint16_t size,
                         uint64_t desc, uint64_t avail, uint64_t used, uint16_t msix_vector)
{
    uint16_t max, enabled, got;
    int rc = vfe_vpci_queue_max(vp, qidx, &max);
    if (rc < 0)
        return rc;
    if (size == 0 || (size & (size - 1)) || size > max) {
        LOG_W("%s: queue %u: size %u invalid (max %u)", vp->t->bdf, qidx, size, max);
        return -EINVAL;
    }
    if ((desc & 15) || (avail & 1) || (used & 3))
        return -EINVAL;
    if ((rc = cc_r16(vp, VFE_CC_Q_ENABLE, &enabled)) < 0)
        return rc;
    if (enabled)
        return -EBUSY;
    if ((rc = cc_w16(vp, VFE_CC_Q_SIZE, size)) < 0 || (rc = cc_r16(vp, VFE_CC_Q_SIZE, &got)) < 0)
        return rc;
    if (got != size) {
        LOG_W("%s: queue %u: device kept size %u instead of %u", vp->t->bdf, qidx, got, size);
        return -EIO;
    }
    if ((rc = cc_w64(vp, VFE_CC_Q_DESCLO, VFE_CC_Q_DESCHI, desc)) < 0 ||
        (rc = cc_w64(vp, VFE_CC_Q_AVAILLO, VFE_CC_Q_AVAILHI, avail)) < 0 ||
        (rc = cc_w64(vp, VFE_CC_Q_USEDLO, VFE_CC_Q_USEDHI, used)) < 0)
        return rc;
    if ((rc = cc_w16(vp, VFE_CC_Q_MSIX, msix_vector)) < 0 || (rc = cc_r16(vp, VFE_CC_Q_MSIX, &got)) < 0)
        return rc;
    if (msix_vector != VFE_VIRTIO_MSI_NO_VECTOR && got == VFE_VIRTIO_MSI_NO_VECTOR) {
        LOG_W("%s: queue %u: MSI-X vector %u refused", vp->t->bdf, qidx, msix_vector);
        return -ENOSPC;
    }
    return 0;
}

int vfe_vpci_set_driver_features(struct vfe_virtio_pci *vp, uint64_t features)
{
    int rc;
    if ((rc = cc_w32(vp, VFE_CC_GFSELECT, 0)) < 0 || (rc = cc_w32(vp, VFE_CC_GF, (uint32_t)features)) < 0 ||
        (rc = cc_w32(vp, VFE_CC_GFSELECT, 1)) < 0)
        return rc;
    return cc_w32(vp, VFE_CC_GF, (uint32_t)(features >> 32));
}

int vfe_vpci_queue_select(struct vfe_virtio_pci *vp, uint16_t qidx)
{
    return queue_select(vp, qidx);
}

int vfe_vpci_queue_write(struct vfe_virtio_pci *vp, uint16_t qidx, uint16_t size, uint64_t desc, uint64_t avail,
                         uint64_t used, uint16_t msix_vector)
{
    if (size == 0 || (size & (size - 1)) || (desc & 15) || (avail & 1) || (used & 3))
        return -EINVAL;
    int rc;
    if ((rc = queue_select(vp, qidx)) < 0 || (rc = cc_w16(vp, VFE_CC_Q_SIZE, size)) < 0 ||
        (rc = cc_w64(vp, VFE_CC_Q_DESCLO, VFE_CC_Q_DESCHI, desc)) < 0 ||
        (rc = cc_w64(vp, VFE_CC_Q_AVAILLO, VFE_CC_Q_AVAILHI, avail)) < 0 ||
        (rc = cc_w64(vp, VFE_CC_Q_USEDLO, VFE_CC_Q_USEDHI, used)) < 0)
        return rc;
    return cc_w16(vp, VFE_CC_Q_MSIX, msix_vector);
}

int vfe_vpci_config_vector_write(struct vfe_virtio_pci *vp, uint16_t vector)
{
    return cc_w16(vp, VFE_CC_MSIX, vector);
}

int vfe_vpci_queue_enable(struct vfe_virtio_pci *vp, uint16_t qidx)
{
    int rc = queue_select(vp, qidx);
    return rc ? rc : cc_w16(vp, VFE_CC_Q_ENABLE, 1);
}

int vfe_vpci_queue_notify_addr(struct vfe_virtio_pci *vp, uint16_t qidx, uint32_t *region, uint64_t *offset)
{
    uint16_t noff;
    int rc = 0;
    if (qidx < vp->notify_cached)
        noff = vp->notify_offs[qidx];
    else if ((rc = queue_select(vp, qidx)) == 0)
        rc = cc_r16(vp, VFE_CC_Q_NOFF, &noff);
    if (rc < 0)
        return rc;
    uint64_t rel = (uint64_t)noff * vp->notify_off_multiplier;
    /* The doorbell takes a 16-bit queue index. */
    if (rel + 2 > vp->notify.length) {
        LOG_W("%s: queue %u: notify offset %#llx outside the %#x-byte notify window", vp->t->bdf, qidx,
              (unsigned long long)rel, vp->notify.length);
        return -ERANGE;
    }
    *region = vp->notify.bar;
    *offset = vp->notify.offset + rel;
    return 0;
}

int vfe_vpci_queue_notify(struct vfe_virtio_pci *vp, uint16_t qidx)
{
    uint32_t region;
    uint64_t off;
    int rc = vfe_vpci_queue_notify_addr(vp, qidx, &region, &off);
    if (rc < 0)
        return rc;
    uint16_t v = htole16(qidx);
    return vp->t->ops->region_write(vp->t, region, off, &v, sizeof(v));
}

int vfe_vpci_set_config_vector(struct vfe_virtio_pci *vp, uint16_t vector)
{
    uint16_t got;
    int rc = cc_w16(vp, VFE_CC_MSIX, vector);
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_MSIX, &got);
    if (rc == 0 && vector != VFE_VIRTIO_MSI_NO_VECTOR && got == VFE_VIRTIO_MSI_NO_VECTOR) {
        LOG_W("%s: config MSI-X vector %u refused", vp->t->bdf, vector);
        rc = -ENOSPC;
    }
    return rc;
}

int vfe_vpci_admin_queue(struct vfe_virtio_pci *vp, uint16_t *index, uint16_t *num)
{
    if (vp->common.length < VFE_CC_SIZE)
        return -ENOTSUP;   /* common cfg predates the admin queue fields */
    int rc = cc_r16(vp, VFE_CC_ADMIN_Q_IDX, index);
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_ADMIN_Q_NUM, num);
    if (rc == 0 && *num == 0)
        rc = -ENOENT;
    return rc;
}

/* ---- device config ---- */

int vfe_vpci_read_device_cfg(struct vfe_virtio_pci *vp, uint32_t off, void *buf, size_t len)
{
    if (!vp->device.present)
        return -ENODEV;
    if (off > vp->device.length || len > vp->device.length - off)
        return -ERANGE;
    /* config_generation guards against a torn read of a multi-byte field. */
    for (int i = 0; i < CFG_GEN_RETRIES; i++) {
        uint8_t g0, g1;
        int rc = cc_r8(vp, VFE_CC_CFGGENERATION, &g0);
        if (rc == 0)
            rc = win_rw(vp, &vp->device, off, buf, len, false);
        if (rc == 0)
            rc = cc_r8(vp, VFE_CC_CFGGENERATION, &g1);
        if (rc < 0)
            return rc;
        if (g0 == g1)
            return 0;
    }
    LOG_W("%s: device config keeps changing while read", vp->t->bdf);
    return -EAGAIN;
}

int vfe_vpci_write_device_cfg(struct vfe_virtio_pci *vp, uint32_t off, const void *buf, size_t len)
{
    if (!vp->device.present)
        return -ENODEV;
    if (off > vp->device.length || len > vp->device.length - off)
        return -ERANGE;
    return win_rw(vp, &vp->device, off, (void *)buf, len, true);
}

/* ---- MSI-X ---- */

int vfe_vpci_msix_enable(struct vfe_virtio_pci *vp)
{
    if (!vp->msix_cap)
        return -ENOTSUP;
    uint32_t at = vp->msix_cap + PCI_MSIX_FLAGS;
    uint16_t ctrl;
    int rc = cfg_r16(vp, at, &ctrl);
    if (rc == 0)
        rc = cfg_w16(vp, at, (uint16_t)((ctrl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL));
    if (rc == 0)
        rc = cfg_r16(vp, at, &ctrl);
    if (rc == 0 && !(ctrl & PCI_MSIX_FLAGS_ENABLE))
        rc = -EIO;
    return rc;
}

int vfe_vpci_read_counters(struct vfe_virtio_pci *vp, uint64_t ctr[VFE_CTR_COUNT])
{
    if (!vp->counters.present || vp->counters.length < VFE_CTR_COUNT * 8)
        return -ENOTSUP;
    uint8_t raw[VFE_CTR_COUNT * 8];
    int rc = win_rw(vp, &vp->counters, 0, raw, sizeof(raw), false);
    for (unsigned i = 0; rc == 0 && i < VFE_CTR_COUNT; i++) {
        uint64_t v;
        memcpy(&v, raw + 8 * i, 8);
        ctr[i] = le64toh(v);
    }
    return rc;
}

/* ---- adoption: read-back only ---- */

static int cc_r64(struct vfe_virtio_pci *vp, uint32_t lo, uint32_t hi, uint64_t *v)
{
    uint32_t l, h;
    int rc = cc_r32(vp, lo, &l);
    if (rc == 0)
        rc = cc_r32(vp, hi, &h);
    if (rc == 0)
        *v = (uint64_t)h << 32 | l;
    return rc;
}

int vfe_vpci_get_driver_features(struct vfe_virtio_pci *vp, uint64_t *features)
{
    uint32_t lo, hi;
    int rc = cc_w32(vp, VFE_CC_GFSELECT, 0);
    if (rc == 0)
        rc = cc_r32(vp, VFE_CC_GF, &lo);
    if (rc == 0)
        rc = cc_w32(vp, VFE_CC_GFSELECT, 1);
    if (rc == 0)
        rc = cc_r32(vp, VFE_CC_GF, &hi);
    if (rc == 0)
        *features = (uint64_t)hi << 32 | lo;
    return rc;
}

int vfe_vpci_queue_read(struct vfe_virtio_pci *vp, uint16_t qidx, struct vfe_vpci_queue_cfg *q)
{
    memset(q, 0, sizeof(*q));
    int rc = queue_select(vp, qidx);
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_Q_SIZE, &q->size);
    if (rc == 0 && q->size == 0)
        return -ENOENT;
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_Q_MSIX, &q->msix_vector);
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_Q_ENABLE, &q->enabled);
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_Q_NOFF, &q->notify_off);
    if (rc == 0)
        rc = cc_r64(vp, VFE_CC_Q_DESCLO, VFE_CC_Q_DESCHI, &q->desc);
    if (rc == 0)
        rc = cc_r64(vp, VFE_CC_Q_AVAILLO, VFE_CC_Q_AVAILHI, &q->avail);
    if (rc == 0)
        rc = cc_r64(vp, VFE_CC_Q_USEDLO, VFE_CC_Q_USEDHI, &q->used);
    return rc;
}

int vfe_vpci_msix_state(struct vfe_virtio_pci *vp, bool *enabled, bool *masked)
{
    if (!vp->msix_cap)
        return -ENOTSUP;
    uint16_t ctrl;
    int rc = cfg_r16(vp, vp->msix_cap + PCI_MSIX_FLAGS, &ctrl);
    if (rc == 0) {
        *enabled = ctrl & PCI_MSIX_FLAGS_ENABLE;
        *masked = ctrl & PCI_MSIX_FLAGS_MASKALL;
    }
    return rc;
}

int vfe_vpci_adopt(struct vfe_virtio_pci *vp, struct vfe_transport *t, struct vfe_vpci_state *st)
{
    if (!st)
        return -EINVAL;
    memset(st, 0, sizeof(*st));
    int rc = vfe_vpci_init(vp, t);
    if (rc == 0)
        rc = vfe_vpci_get_status(vp, &st->status);
    if (rc == 0)
        rc = vfe_vpci_get_features(vp, &st->device_features);
    if (rc == 0)
        rc = vfe_vpci_get_driver_features(vp, &st->driver_features);
    if (rc == 0)
        rc = cc_r16(vp, VFE_CC_MSIX, &st->config_vector);
    if (rc == 0 && vp->msix_cap)
        rc = vfe_vpci_msix_state(vp, &st->msix_enabled, &st->msix_masked);
    if (rc < 0)
        return rc;
    if (st->status & (VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET)) {
        LOG_W("%s: cannot take over the device as it is: status %#x has %s", t->bdf, st->status,
              st->status & VIRTIO_CONFIG_S_FAILED ? "FAILED" : "NEEDS_RESET");
        return -EIO;
    }
    if (st->driver_features & ~st->device_features) {
        LOG_W("%s: driver features %#llx were never offered by the device", t->bdf,
              (unsigned long long)(st->driver_features & ~st->device_features));
        return -EIO;
    }
    LOG_I("%s: taken over as it is: status %#x, features %#llx, MSI-X %s", t->bdf, st->status,
          (unsigned long long)st->driver_features, st->msix_enabled ? "on" : "off");
    return 0;
}
