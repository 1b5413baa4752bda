/*
 * vfio-user command handlers of the sim: validate every field, then call the
 * core (sim.h).  Fds stay owned by the message (closed by the caller after
 * the handler): the core keeps its own references (dup/mmap).
 */
#include "sim/vfu/vfu_server.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log/vfe_log.h"

#define CFG_SPACE_SIZE 4096u

#define REFUSE(fmt, ...) do { \
        LOG_W("vfio-user %s: %s: " fmt, s->fn->bdf, vfu_cmd_name(m->hdr.cmd), ##__VA_ARGS__); \
        return -EINVAL; \
    } while (0)

static void *reply_alloc(struct vfu_reply *rep, size_t len)
{
    if (len <= sizeof(rep->small)) {
        rep->len = len;
        memset(rep->small, 0, len);
        return rep->small;
    }
    rep->big = calloc(1, len);
    if (!rep->big)
        return NULL;
    rep->len = len;
    return rep->big;
}

static int no_fds(struct vfu_srv *s, struct vfu_msg *m)
{
    if (m->nfds)
        REFUSE("%u unexpected fds", m->nfds);
    return 0;
}

static int h_version(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    if (no_fds(s, m))
        return -EINVAL;
    if (s->versioned)
        REFUSE("already negotiated");
    uint16_t major, minor;
    struct vfu_caps peer;
    if (vfu_version_parse(m->payload, m->len, &major, &minor, &peer) < 0)
        REFUSE("malformed version data (%zu bytes)", m->len);
    if (major != VFU_PROTO_MAJOR)
        REFUSE("unsupported major %u", major);

    struct vfu_caps ours;
    vfu_caps_ours(&ours);
    ours.vfe_ioeventfd = peer.vfe_ioeventfd;  /* a reply lists a subset of the proposal */
    size_t len;
    void *p = vfu_version_build(&ours, &len);
    if (!p)
        return -ENOMEM;
    struct vfu_version v = { .major = VFU_PROTO_MAJOR,
                             .minor = minor < VFU_PROTO_MINOR ? minor : VFU_PROTO_MINOR };
    memcpy(p, &v, sizeof(v));
    void *out = reply_alloc(rep, len);
    if (!out) {
        free(p);
        return -ENOMEM;
    }
    memcpy(out, p, len);
    free(p);
    s->peer = peer;
    s->versioned = true;
    LOG_D("vfio-user %s: version %u.%u, client max_msg_fds %u ioeventfd %d", s->fn->bdf, v.major,
          v.minor, peer.max_msg_fds, peer.vfe_ioeventfd);
    return 0;
}

static bool aligned(uint64_t x)
{
    return (x & (SIM_PAGE_SIZE - 1)) == 0;
}

static int h_dma_map(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_dma_map d;
    if (m->len != sizeof(d))
        REFUSE("payload of %zu bytes", m->len);
    memcpy(&d, m->payload, sizeof(d));
    if (d.argsz != sizeof(d))
        REFUSE("argsz %u", d.argsz);
    if (m->nfds != 1)
        REFUSE("%u fds, exactly one is needed (no DMA_READ/WRITE support)", m->nfds);
    if (!d.flags || (d.flags & ~(VFU_DMA_F_READ | VFU_DMA_F_WRITE)))
        REFUSE("flags %#x", d.flags);
    if (d.size == 0 || !aligned(d.addr) || !aligned(d.size) || !aligned(d.offset))
        REFUSE("iova %#lx size %#lx offset %#lx not 4 KiB aligned or empty",
               (unsigned long)d.addr, (unsigned long)d.size, (unsigned long)d.offset);
    if (d.addr + d.size < d.addr || d.offset + d.size < d.offset)
        REFUSE("range overflows");
    struct stat st;
    if (fstat(m->fds[0], &st) < 0)
        REFUSE("fstat of the fd failed");
    /* the page holding the end of the file may be mapped whole (a dirty log
     * rarely ends on a page boundary) */
    uint64_t fd_pages = ((uint64_t)st.st_size + 4095) & ~4095ull;
    if (S_ISREG(st.st_mode) && d.offset + d.size > fd_pages)
        REFUSE("[%#lx, +%#lx) beyond the fd's %ld bytes", (unsigned long)d.offset,
               (unsigned long)d.size, (long)st.st_size);
    uint32_t prot = ((d.flags & VFU_DMA_F_READ) ? 1u : 0) | ((d.flags & VFU_DMA_F_WRITE) ? 2u : 0);
    int rc = sim_dma_map(s->fn, d.addr, d.size, m->fds[0], d.offset, prot);
    if (rc < 0) {
        LOG_W("vfio-user %s: DMA_MAP iova %#lx size %#lx: %s", s->fn->bdf, (unsigned long)d.addr,
              (unsigned long)d.size, strerror(-rc));
        return rc;
    }
    return 0;
}

/* A request that is one fixed struct starting with argsz, and no fds: copied
 * to out once its size, argsz and fd count are right. */
static int fixed_request(struct vfu_srv *s, struct vfu_msg *m, void *out, size_t len)
{
    uint32_t argsz;
    if (no_fds(s, m))
        return -EINVAL;
    if (m->len != len)
        REFUSE("payload of %zu bytes", m->len);
    memcpy(out, m->payload, len);
    memcpy(&argsz, out, sizeof(argsz));
    if (argsz < len)
        REFUSE("argsz %u", argsz);
    return 0;
}

static int h_dma_unmap(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_dma_unmap d;
    if (fixed_request(s, m, &d, sizeof(d)) < 0)
        return -EINVAL;
    if (d.flags)
        REFUSE("flags %#x not supported", d.flags);
    int rc = sim_dma_unmap(s->fn, d.addr, d.size);
    if (rc < 0) {
        LOG_W("vfio-user %s: DMA_UNMAP iova %#lx size %#lx: %s", s->fn->bdf,
              (unsigned long)d.addr, (unsigned long)d.size, strerror(-rc));
        return rc;
    }
    d.argsz = sizeof(d);
    memcpy(reply_alloc(rep, sizeof(d)), &d, sizeof(d));
    return 0;
}

static int h_device_info(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_device_info d;
    if (fixed_request(s, m, &d, sizeof(d)) < 0)
        return -EINVAL;
    d = (struct vfu_device_info){
        .argsz = sizeof(d),
        .flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
        .num_regions = VFIO_PCI_NUM_REGIONS,
        .num_irqs = VFIO_PCI_NUM_IRQS,
    };
    memcpy(reply_alloc(rep, sizeof(d)), &d, sizeof(d));
    return 0;
}

/* Size of region idx (0: absent). */
static uint64_t region_size(struct sim_fn *fn, uint32_t idx)
{
    if (idx <= VFIO_PCI_BAR5_REGION_INDEX)
        return sim_bar_size(fn, idx);
    if (idx == VFIO_PCI_CONFIG_REGION_INDEX)
        return CFG_SPACE_SIZE;
    return 0;
}

static int h_region_info(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_region_info r;
    if (fixed_request(s, m, &r, sizeof(r)) < 0)
        return -EINVAL;
    if (r.index >= VFIO_PCI_NUM_REGIONS)
        REFUSE("region index %u", r.index);
    uint64_t size = region_size(s->fn, r.index);
    uint32_t room = r.argsz;
    r = (struct vfu_region_info){
        .argsz = sizeof(r),
        .flags = size ? VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE : 0,
        .index = r.index,
        .size = size,
    };
    /* a VF's doorbells can be mapped (one page each): a sparse-mmap capability
     * names them and the reply carries the fd behind BAR0 */
    const struct vfio_region_info_cap_sparse_mmap hdr = {
        .header = {.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1}, .nr_areas = 1};
    const struct vfio_region_sparse_mmap_area area = {
        .offset = SIM_BAR0_NOTIFY, .size = (uint64_t)SIM_MAX_QUEUES * SIM_NOTIFY_MULT};
    uint8_t cap[sizeof(hdr) + sizeof(area)];   /* hdr's flexible areas[] holds one */
    memcpy(cap, &hdr, sizeof(hdr));
    memcpy(cap + sizeof(hdr), &area, sizeof(area));
    if (r.index == VFIO_PCI_BAR0_REGION_INDEX && !s->fn->is_pf) {
        r.flags |= VFIO_REGION_INFO_FLAG_CAPS;
        r.argsz = sizeof(r) + sizeof(cap);
        if (room >= r.argsz) {   /* else the client asks again with room for it */
            int fd = sim_doorbell_map_fd(s->fn);
            if (fd < 0)
                return fd;
            r.flags |= VFIO_REGION_INFO_FLAG_MMAP;
            r.cap_offset = sizeof(r);
            r.offset = 0;
            uint8_t *out = reply_alloc(rep, r.argsz);
            if (!out)
                return -ENOMEM;
            memcpy(out, &r, sizeof(r));
            memcpy(out + sizeof(r), cap, sizeof(cap));
            rep->fd = fd;
            return 0;
        }
    }
    memcpy(reply_alloc(rep, sizeof(r)), &r, sizeof(r));
    return 0;
}

static int h_irq_info(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_irq_info q;
    if (fixed_request(s, m, &q, sizeof(q)) < 0)
        return -EINVAL;
    if (q.index >= VFIO_PCI_NUM_IRQS)
        REFUSE("irq index %u", q.index);
    bool msix = q.index == VFIO_PCI_MSIX_IRQ_INDEX;
    q = (struct vfu_irq_info){
        .argsz = sizeof(q),
        .flags = msix ? VFIO_IRQ_INFO_EVENTFD : 0,
        .index = q.index,
        .count = msix ? (s->fn->msix_count ? s->fn->msix_count : SIM_MSIX_VECTORS) : 0,
    };
    memcpy(reply_alloc(rep, sizeof(q)), &q, sizeof(q));
    return 0;
}

/*
 * MSI-X only.  DATA_EVENTFD|TRIGGER with `count` fds assigns; with no fds it
 * de-assigns those vectors (spec).  DATA_NONE|TRIGGER with start = count = 0
 * disables every vector; with count > 0 it triggers them (VFIO loopback).
 */
static int h_set_irqs(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_irq_set q;
    if (m->len != sizeof(q))
        REFUSE("payload of %zu bytes (DATA_BOOL is not supported)", m->len);
    memcpy(&q, m->payload, sizeof(q));
    if (q.argsz != sizeof(q))
        REFUSE("argsz %u", q.argsz);
    uint32_t data = q.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    uint32_t action = q.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    if (q.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK))
        REFUSE("flags %#x", q.flags);
    if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
        REFUSE("action %#x (only TRIGGER)", action);
    if (q.index >= VFIO_PCI_NUM_IRQS)
        REFUSE("irq index %u", q.index);
    uint32_t nvec = q.index == VFIO_PCI_MSIX_IRQ_INDEX ? SIM_MSIX_VECTORS : 0;
    if (q.start > nvec || q.count > nvec - q.start)
        REFUSE("vectors %u+%u beyond %u", q.start, q.count, nvec);

    int fds[SIM_MSIX_VECTORS];
    if (data == VFIO_IRQ_SET_DATA_NONE) {
        if (no_fds(s, m))
            return -EINVAL;
        if (q.count == 0) {
            if (q.start != 0)
                REFUSE("start %u with count 0", q.start);
            if (!nvec)
                return 0;
            for (unsigned i = 0; i < nvec; i++)
                fds[i] = -1;
            return sim_irq_set(s->fn, 0, nvec, fds);
        }
        for (uint32_t i = 0; i < q.count; i++)
            sim_irq_raise(s->fn, (uint16_t)(q.start + i));
        return 0;
    }
    if (data != VFIO_IRQ_SET_DATA_EVENTFD)
        REFUSE("data type %#x", data);
    if (q.count == 0)
        REFUSE("count 0 with DATA_EVENTFD");
    if (m->nfds != 0 && m->nfds != q.count)
        REFUSE("%u fds for %u vectors", m->nfds, q.count);
    for (uint32_t i = 0; i < q.count; i++)
        fds[i] = m->nfds ? m->fds[i] : -1;
    int rc = sim_irq_set(s->fn, q.start, q.count, fds);
    if (rc < 0)
        LOG_W("vfio-user %s: SET_IRQS %u+%u: %s", s->fn->bdf, q.start, q.count, strerror(-rc));
    return rc;
}

/* Route an access to config space or a BAR after the bounds check. */
static int region_access(struct vfu_srv *s, struct vfu_msg *m, const struct vfu_region_access *a,
                         void *buf, bool write)
{
    if (a->count == 0 || a->count > VFU_MAX_DATA_XFER)
        REFUSE("count %u", a->count);
    uint64_t size = a->region < VFIO_PCI_NUM_REGIONS ? region_size(s->fn, a->region) : 0;
    if (!size)
        REFUSE("region %u absent", a->region);
    if (a->offset > size || a->count > size - a->offset)
        REFUSE("[%#lx, +%u) beyond region %u of %#lx bytes", (unsigned long)a->offset, a->count,
               a->region, (unsigned long)size);
    int rc;
    if (a->region == VFIO_PCI_CONFIG_REGION_INDEX)
        rc = sim_cfg_access(s->fn, a->offset, buf, a->count, write);
    else
        rc = sim_bar_access(s->fn, a->region, a->offset, buf, a->count, write);
    return rc;
}

static int h_region_read(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_region_access a;
    if (no_fds(s, m))
        return -EINVAL;
    if (m->len != sizeof(a))
        REFUSE("payload of %zu bytes", m->len);
    memcpy(&a, m->payload, sizeof(a));
    if (a.count == 0 || a.count > VFU_MAX_DATA_XFER)
        REFUSE("count %u", a.count);
    uint8_t *out = reply_alloc(rep, sizeof(a) + a.count);
    if (!out)
        return -ENOMEM;
    int rc = region_access(s, m, &a, out + sizeof(a), false);
    if (rc < 0)
        return rc;
    memcpy(out, &a, sizeof(a));
    return 0;
}

static int h_region_write(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_region_access a;
    if (no_fds(s, m))
        return -EINVAL;
    if (m->len < sizeof(a))
        REFUSE("payload of %zu bytes", m->len);
    memcpy(&a, m->payload, sizeof(a));
    if (a.count != m->len - sizeof(a))
        REFUSE("count %u but %zu data bytes", a.count, m->len - sizeof(a));
    int rc = region_access(s, m, &a, m->payload + sizeof(a), true);
    if (rc < 0)
        return rc;
    memcpy(reply_alloc(rep, sizeof(a)), &a, sizeof(a));
    return 0;
}

static int h_reset(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    if (no_fds(s, m))
        return -EINVAL;
    if (m->len != 0)
        REFUSE("payload of %zu bytes", m->len);
    sim_fn_reset(s->fn);
    return 0;
}

static int h_vfe_ioeventfd(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    struct vfu_vfe_ioeventfd e;
    if (m->len != sizeof(e))
        REFUSE("payload of %zu bytes", m->len);
    memcpy(&e, m->payload, sizeof(e));
    if (e.argsz != sizeof(e) || e.rsvd)
        REFUSE("argsz %u rsvd %u", e.argsz, e.rsvd);
    if (e.flags & ~VFE_IOEVENTFD_FLAGS_ALL)
        REFUSE("flags %#x", e.flags);
    uint32_t size = e.flags & VFE_IOEVENTFD_SIZE_MASK;
    if (size != 1 && size != 2 && size != 4 && size != 8)
        REFUSE("access size %u", size);
    bool deassign = e.flags & VFE_IOEVENTFD_DEASSIGN;
    if (m->nfds != (deassign ? 0u : 1u))
        REFUSE("%u fds for %s", m->nfds, deassign ? "deassign" : "assign");
    uint64_t rsize = e.region < VFIO_PCI_NUM_REGIONS ? region_size(s->fn, e.region) : 0;
    if (e.region > VFIO_PCI_BAR5_REGION_INDEX || e.offset > rsize || size > rsize - e.offset)
        REFUSE("region %u offset %#lx outside a BAR", e.region, (unsigned long)e.offset);
    unsigned slot = 0;
    while (slot < s->nioev && (s->ioev[slot].region != e.region || s->ioev[slot].off != e.offset))
        slot++;
    if (!deassign && slot == s->nioev && s->nioev == VFU_SRV_MAX_IOEVENTFDS)
        REFUSE("more than %u registrations", VFU_SRV_MAX_IOEVENTFDS);
    int rc = sim_ioeventfd(s->fn, e.region, e.offset, size, e.data, deassign ? -1 : m->fds[0]);
    if (rc < 0) {
        LOG_W("vfio-user %s: VFE_IOEVENTFD region %u offset %#lx: %s", s->fn->bdf, e.region,
              (unsigned long)e.offset, strerror(-rc));
        return rc;
    }
    if (deassign) {
        if (slot < s->nioev)
            s->ioev[slot] = s->ioev[--s->nioev];
    } else {
        if (slot == s->nioev)
            s->nioev++;
        s->ioev[slot] = (struct vfu_ioev){ e.region, size, e.offset, e.data };
    }
    return 0;
}

int vfu_srv_handle(struct vfu_srv *s, struct vfu_msg *m, struct vfu_reply *rep)
{
    switch (m->hdr.cmd) {
    case VFU_CMD_VERSION: return h_version(s, m, rep);
    case VFU_CMD_DMA_MAP: return h_dma_map(s, m, rep);
    case VFU_CMD_DMA_UNMAP: return h_dma_unmap(s, m, rep);
    case VFU_CMD_DEVICE_GET_INFO: return h_device_info(s, m, rep);
    case VFU_CMD_DEVICE_GET_REGION_INFO: return h_region_info(s, m, rep);
    case VFU_CMD_DEVICE_GET_IRQ_INFO: return h_irq_info(s, m, rep);
    case VFU_CMD_DEVICE_SET_IRQS: return h_set_irqs(s, m, rep);
    case VFU_CMD_REGION_READ: return h_region_read(s, m, rep);
    case VFU_CMD_REGION_WRITE: return h_region_write(s, m, rep);
    case VFU_CMD_DEVICE_RESET: return h_reset(s, m, rep);
    case VFU_CMD_VFE_IOEVENTFD: return h_vfe_ioeventfd(s, m, rep);
    default:
        LOG_W("vfio-user %s: command %u (%s) not supported", s->fn->bdf, m->hdr.cmd,
              vfu_cmd_name(m->hdr.cmd));
        return -ENOSYS;
    }
}
