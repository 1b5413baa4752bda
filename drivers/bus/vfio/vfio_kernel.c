/*
 * Kernel VFIO transport: the vfe_transport ops over a vfio-pci device fd.
 *
 * Ownership: a struct vk_dev owns its device fd and the REQ eventfd; it holds
 * one reference on its group, which holds one reference on its container.
 * Groups and containers are process-wide and refcounted (a group can be opened
 * once per process, and the VFs of one DMA domain share one container).  The
 * container owns the process mappings of guest memory that MAP_DMA pins: one
 * mmap of the caller's fd per map, made by dma_map and removed after the
 * matching UNMAP_DMA (or when the last group leaves the container).
 *
 * All calls are plain ioctl/pread/pwrite on the calling thread.
 */
#include "drivers/bus/vfio/vfe_transport.h"
#include "drivers/bus/vfio/vfio_kernel_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfio_bind.h"
#include "lib/log/vfe_log.h"

#define VK_MAX_IRQS 2048   /* MSI-X allows 2048 vectors */

struct vk_map {
    uint64_t iova, len;
    void *va;
};

struct vk_container {
    char key[64];          /* DMA domain name; "" for a private container (never shared) */
    int fd;
    unsigned refs;         /* groups in it */
    uint32_t iommu_type;
    struct vk_map *maps;
    unsigned nmaps;
    struct vk_container *next;
};

struct vk_group {
    unsigned num;
    int fd;
    unsigned refs;         /* devices opened through it */
    struct vk_container *c;
    struct vk_group *next;
};

static struct vk_container *containers;
static struct vk_group *groups;

struct vk_region {
    bool known;
    uint32_t flags;
    uint64_t size, offset;   /* offset: of the region in the device fd */
    struct vk_area areas[VK_MAX_AREAS];
    unsigned nareas;
};

struct vk_dev {
    struct vfe_transport t;
    int fd;
    struct vk_group *g;
    uint32_t dev_flags, num_regions, num_irqs;
    struct vk_region regions[VFIO_PCI_NUM_REGIONS];
    int32_t *msix_fds;       /* shadow of the MSI-X triggers while MSI-X is on */
    uint32_t msix_count;     /* vectors the device offers */
    bool msix_on;
    bool no_ioeventfd;       /* the kernel refused it once: do not ask again */
    int req_fd;              /* REQ irq eventfd (-1: not offered) */
};

#define VK(t) ((struct vk_dev *)(t))

static const char *vfio_dir = "/dev/vfio";

static int real_open(const char *path, int flags) { return open(path, flags); }
static int real_ioctl(int fd, unsigned long req, void *arg) { return ioctl(fd, req, arg); }
static const struct vk_sys real_sys = {real_open, real_ioctl};
static const struct vk_sys *sys = &real_sys;

void vk_set_sys(const struct vk_sys *s)
{
    sys = s ? s : &real_sys;
}

static int sys_ioctl(int fd, unsigned long req, void *arg)
{
    return sys->ioctl(fd, req, arg);
}

void vfe_vfio_kernel_set_dir(const char *dir)
{
    vfio_dir = dir && *dir ? dir : "/dev/vfio";
}

/* ---- containers and groups ---- */

static void container_put(struct vk_container *c)
{
    if (--c->refs)
        return;
    /* the last group left: the kernel dropped the IOMMU table with it */
    for (unsigned i = 0; i < c->nmaps; i++)
        munmap(c->maps[i].va, c->maps[i].len);
    for (struct vk_container **p = &containers; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    close(c->fd);
    free(c->maps);
    free(c);
}

static int container_new(const char *key, struct vk_container **out)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/vfio", vfio_dir);
    int fd = sys->open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        LOG_E("kernel VFIO: open %s: %s (vfio module loaded? permissions?)", path, strerror(e));
        return -e;
    }
    int v = sys_ioctl(fd, VFIO_GET_API_VERSION, NULL);
    if (v != VFIO_API_VERSION) {
        LOG_E("kernel VFIO: API version %d, this build speaks %d", v, VFIO_API_VERSION);
        close(fd);
        return -EPROTO;
    }
    uint32_t type = 0;
    if (sys_ioctl(fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) > 0)
        type = VFIO_TYPE1v2_IOMMU;
    else if (sys_ioctl(fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)VFIO_TYPE1_IOMMU) > 0)
        type = VFIO_TYPE1_IOMMU;
    if (!type) {
        LOG_E("kernel VFIO: no type1 IOMMU backend (vfio_iommu_type1 module missing?)");
        close(fd);
        return -ENODEV;
    }
    struct vk_container *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    snprintf(c->key, sizeof(c->key), "%s", key ? key : "");
    c->fd = fd;
    c->iommu_type = type;
    *out = c;
    return 0;
}

/* After the first group joined: the IOMMU model, and what it tells of itself. */
static int container_set_iommu(struct vk_container *c)
{
    if (sys_ioctl(c->fd, VFIO_SET_IOMMU, (void *)(uintptr_t)c->iommu_type) < 0) {
        int e = errno;
        LOG_E("kernel VFIO: VFIO_SET_IOMMU type %u: %s%s", c->iommu_type, strerror(e),
              e == EPERM ? " (interrupt remapping off? allow_unsafe_interrupts)" : "");
        return -e;
    }
    uint8_t *buf = calloc(1, VK_INFO_MAX);
    if (!buf)
        return 0;
    struct vfio_iommu_type1_info *info = (void *)buf;
    info->argsz = VK_INFO_MAX;
    if (sys_ioctl(c->fd, VFIO_IOMMU_GET_INFO, info) == 0 && info->argsz <= VK_INFO_MAX) {
        struct vk_iova_range r[VK_MAX_IOVA_RANGES];
        unsigned n = 0;
        uint32_t first = (info->flags & VFIO_IOMMU_INFO_CAPS) ? info->cap_offset : 0;
        int rc = vk_parse_iova_ranges(buf, info->argsz, first, r, VK_MAX_IOVA_RANGES, &n);
        if (rc < 0)
            LOG_W("kernel VFIO: IOMMU info: malformed IOVA range capability (%s), ignored", strerror(-rc));
        LOG_I("kernel VFIO: container %s: type%s, page sizes %#llx, %u IOVA ranges", *c->key ? c->key : "(private)",
              c->iommu_type == VFIO_TYPE1v2_IOMMU ? "1v2" : "1", (unsigned long long)info->iova_pgsizes, n);
        for (unsigned i = 0; i < n; i++)
            LOG_I("kernel VFIO:   IOVA %#llx-%#llx", (unsigned long long)r[i].start, (unsigned long long)r[i].end);
    }
    free(buf);
    return 0;
}

static void group_put(struct vk_group *g)
{
    if (--g->refs)
        return;
    for (struct vk_group **p = &groups; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            break;
        }
    sys_ioctl(g->fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
    close(g->fd);
    container_put(g->c);
    free(g);
}

static int group_get(const char *pci_root, const char *bdf, const char *domain, struct vk_group **out)
{
    unsigned num;
    int rc = vk_group_number(pci_root, bdf, &num);
    if (rc < 0) {
        if (rc == -ENODEV)
            LOG_E("%s: no iommu_group: the IOMMU is off (intel_iommu=on / amd_iommu=on) or the function is not "
                  "behind one", bdf);
        else
            LOG_E("%s: iommu_group link unreadable: %s", bdf, strerror(-rc));
        return rc;
    }
    const char *key = domain ? domain : "";
    for (struct vk_group *g = groups; g; g = g->next)
        if (g->num == num) {
            if (!*key || strcmp(g->c->key, key)) {
                LOG_E("%s: IOMMU group %u is already in the container of DMA domain '%s': one group, one "
                      "address space", bdf, num, g->c->key);
                return -EBUSY;
            }
            g->refs++;
            *out = g;
            return 0;
        }
    char path[256];
    snprintf(path, sizeof(path), "%s/%u", vfio_dir, num);
    int fd = sys->open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        LOG_E("%s: open %s: %s%s", bdf, path, strerror(e),
              e == ENOENT ? " (not bound to vfio-pci? try vhostmgmt bind)" : "");
        return -e;
    }
    struct vfio_group_status st = {.argsz = sizeof(st)};
    if (sys_ioctl(fd, VFIO_GROUP_GET_STATUS, &st) < 0) {
        rc = -errno;
        LOG_E("%s: VFIO_GROUP_GET_STATUS: %s", bdf, strerror(-rc));
        close(fd);
        return rc;
    }
    if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        char why[512];
        vfe_vfio_group_peers(pci_root, bdf, why, sizeof(why));
        LOG_E("%s: IOMMU group %u is not viable: every device in it must be bound to vfio-pci or no driver (%s)",
              bdf, num, *why ? why : "see its iommu_group/devices");
        close(fd);
        return -EBUSY;
    }
    struct vk_container *c = NULL;
    bool fresh = false;
    if (*key)
        for (c = containers; c && strcmp(c->key, key); c = c->next)
            ;
    if (!c) {
        if (strlen(key) >= sizeof(c->key)) {
            close(fd);
            return -ENAMETOOLONG;
        }
        rc = container_new(key, &c);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        fresh = true;
    }
    if (sys_ioctl(fd, VFIO_GROUP_SET_CONTAINER, &c->fd) < 0) {
        rc = -errno;
        LOG_E("%s: VFIO_GROUP_SET_CONTAINER: %s", bdf, strerror(-rc));
        goto fail;
    }
    if (fresh && (rc = container_set_iommu(c)) < 0) {
        sys_ioctl(fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
        goto fail;
    }
    struct vk_group *g = calloc(1, sizeof(*g));
    if (!g) {
        rc = -ENOMEM;
        sys_ioctl(fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
        goto fail;
    }
    *g = (struct vk_group){.num = num, .fd = fd, .refs = 1, .c = c, .next = groups};
    groups = g;
    c->refs++;
    if (fresh) {
        c->next = containers;
        containers = c;
    }
    LOG_I("%s: IOMMU group %u (%s) in %s container %s", bdf, num, path, fresh ? "new" : "shared",
          *key ? key : "(private)");
    *out = g;
    return 0;
fail:
    close(fd);
    if (fresh) {
        close(c->fd);
        free(c);
    }
    return rc;
}

/* ---- regions ---- */

static int region_load(struct vk_dev *d, uint32_t index)
{
    if (index >= d->num_regions || index >= VFIO_PCI_NUM_REGIONS)
        return -EINVAL;
    struct vk_region *r = &d->regions[index];
    if (r->known)
        return 0;
    uint8_t *buf = calloc(1, VK_INFO_MAX);
    if (!buf)
        return -ENOMEM;
    struct vfio_region_info *ri = (void *)buf;
    ri->argsz = VK_INFO_MAX;
    ri->index = index;
    int rc = 0;
    if (sys_ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, ri) < 0) {
        rc = -errno;
        goto out;
    }
    if (ri->index != index || ri->argsz < sizeof(*ri) || ri->argsz > VK_INFO_MAX ||
        ri->offset + ri->size < ri->offset) {
        LOG_E("%s: region %u: kernel answered index %u argsz %u size %#llx offset %#llx", d->t.bdf, index,
              ri->index, ri->argsz, (unsigned long long)ri->size, (unsigned long long)ri->offset);
        rc = -EPROTO;
        goto out;
    }
    *r = (struct vk_region){.flags = ri->flags, .size = ri->size, .offset = ri->offset};
    if (ri->flags & VFIO_REGION_INFO_FLAG_MMAP) {
        uint32_t first = (ri->flags & VFIO_REGION_INFO_FLAG_CAPS) ? ri->cap_offset : 0;
        rc = vk_parse_sparse(buf, ri->argsz, first, ri->size, r->areas, VK_MAX_AREAS, &r->nareas);
        if (rc < 0) {
            LOG_W("%s: region %u: sparse-mmap capability refused (%s): not mappable", d->t.bdf, index,
                  strerror(-rc));
            r->flags &= ~(uint32_t)VFIO_REGION_INFO_FLAG_MMAP;
            r->nareas = 0;
            rc = 0;
        }
    }
    r->known = true;
    if (ri->size)
        LOG_I("%s: region %u: size %#llx flags %#x, %u mmap areas", d->t.bdf, index, (unsigned long long)r->size,
              r->flags, r->nareas);
out:
    free(buf);
    return rc;
}

static int vk_region_info(struct vfe_transport *t, uint32_t index, struct vfe_region_info *info)
{
    struct vk_dev *d = VK(t);
    int rc = region_load(d, index);
    if (rc < 0)
        return rc;
    *info = (struct vfe_region_info){.index = index, .flags = d->regions[index].flags,
                                     .size = d->regions[index].size};
    return 0;
}

static int range_of(struct vk_dev *d, uint32_t index, uint64_t off, size_t len, uint32_t need, off_t *at)
{
    int rc = region_load(d, index);
    if (rc < 0)
        return rc;
    struct vk_region *r = &d->regions[index];
    if (!(r->flags & need) || off > r->size || len > r->size - off)
        return -EINVAL;
    if (r->offset + off > (uint64_t)INT64_MAX)
        return -EINVAL;
    *at = (off_t)(r->offset + off);
    return 0;
}

static int vk_region_read(struct vfe_transport *t, uint32_t index, uint64_t off, void *buf, size_t len)
{
    off_t at;
    int rc = range_of(VK(t), index, off, len, VFIO_REGION_INFO_FLAG_READ, &at);
    if (rc < 0)
        return rc;
    ssize_t n = pread(VK(t)->fd, buf, len, at);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

static int vk_region_write(struct vfe_transport *t, uint32_t index, uint64_t off, const void *buf, size_t len)
{
    off_t at;
    int rc = range_of(VK(t), index, off, len, VFIO_REGION_INFO_FLAG_WRITE, &at);
    if (rc < 0)
        return rc;
    ssize_t n = pwrite(VK(t)->fd, buf, len, at);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

static int vk_region_mmap_fd(struct vfe_transport *t, uint32_t index, uint64_t off, uint64_t len, int *fd,
                             uint64_t *file_off)
{
    struct vk_dev *d = VK(t);
    int rc = region_load(d, index);
    if (rc < 0)
        return rc;
    struct vk_region *r = &d->regions[index];
    if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP))
        return -ENOENT;
    for (unsigned i = 0; i < r->nareas; i++) {
        uint64_t a = r->areas[i].off, n = r->areas[i].size;
        if (off >= a && len <= n && off - a <= n - len) {
            *fd = d->fd;
            *file_off = r->offset + off;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- DMA ---- */

static int vk_dma_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot)
{
    struct vk_container *c = VK(t)->g->c;
    if (!len || iova + len < iova || !prot || (prot & ~(VFE_DMA_READ | VFE_DMA_WRITE)) ||
        offset > (uint64_t)INT64_MAX)
        return -EINVAL;
    struct vk_map *m = realloc(c->maps, (c->nmaps + 1) * sizeof(*m));
    if (!m)
        return -ENOMEM;
    c->maps = m;
    int mprot = PROT_READ | ((prot & VFE_DMA_WRITE) ? PROT_WRITE : 0);
    void *va = mmap(NULL, len, mprot, MAP_SHARED, fd, (off_t)offset);
    if (va == MAP_FAILED)
        return -errno;
    struct vfio_iommu_type1_dma_map dm = {
        .argsz = sizeof(dm), .vaddr = (uintptr_t)va, .iova = iova, .size = len,
        .flags = ((prot & VFE_DMA_READ) ? VFIO_DMA_MAP_FLAG_READ : 0) |
                 ((prot & VFE_DMA_WRITE) ? VFIO_DMA_MAP_FLAG_WRITE : 0),
    };
    if (sys_ioctl(c->fd, VFIO_IOMMU_MAP_DMA, &dm) < 0) {
        int e = errno;
        munmap(va, len);
        if (e == ENOMEM)
            LOG_E("%s: MAP_DMA iova %#llx size %#llx: ENOMEM (RLIMIT_MEMLOCK too low? see docs/real-host.md)",
                  t->bdf, (unsigned long long)iova, (unsigned long long)len);
        return -e;
    }
    c->maps[c->nmaps++] = (struct vk_map){iova, len, va};
    LOG_D("%s: MAP_DMA iova %#llx size %#llx", t->bdf, (unsigned long long)iova, (unsigned long long)len);
    return 0;
}

static int vk_dma_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len)
{
    struct vk_container *c = VK(t)->g->c;
    if (!len || iova + len < iova)
        return -EINVAL;
    struct vfio_iommu_type1_dma_unmap du = {.argsz = sizeof(du), .iova = iova, .size = len};
    if (sys_ioctl(c->fd, VFIO_IOMMU_UNMAP_DMA, &du) < 0)
        return -errno;
    if (du.size == 0)
        return -ENOENT;   /* the kernel held nothing there */
    for (unsigned i = 0; i < c->nmaps;) {
        struct vk_map *m = &c->maps[i];
        if (m->iova >= iova && m->iova + m->len <= iova + len) {
            munmap(m->va, m->len);
            *m = c->maps[--c->nmaps];
        } else {
            i++;
        }
    }
    return 0;
}

static const void *vk_dma_space(struct vfe_transport *t)
{
    return VK(t)->g->c;
}

/* ---- interrupts ---- */

static int irq_set(struct vk_dev *d, uint32_t flags, uint32_t index, uint32_t start, uint32_t count,
                   const int32_t *fds)
{
    size_t sz = sizeof(struct vfio_irq_set) + (fds ? count * sizeof(int32_t) : 0);
    struct vfio_irq_set *s = calloc(1, sz);
    if (!s)
        return -ENOMEM;
    *s = (struct vfio_irq_set){.argsz = (uint32_t)sz, .flags = flags, .index = index, .start = start,
                               .count = count};
    if (fds)
        memcpy(s->data, fds, count * sizeof(int32_t));
    int rc = sys_ioctl(d->fd, VFIO_DEVICE_SET_IRQS, s) < 0 ? -errno : 0;
    free(s);
    return rc;
}

/*
 * MSI-X on kernels before dynamic allocation (6.1): the vector count is fixed
 * when MSI-X is enabled, so it is enabled once with every vector the device
 * offers (unused ones -1) and later changes are sets inside that block.
 */
static int vk_set_irqs(struct vfe_transport *t, uint32_t irq_index, uint32_t start, uint32_t count, const int *fds)
{
    struct vk_dev *d = VK(t);
    const uint32_t ev = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    if (irq_index != VFIO_PCI_MSIX_IRQ_INDEX) {
        if (irq_index >= d->num_irqs || irq_index == VFIO_PCI_REQ_IRQ_INDEX)
            return -EINVAL;   /* REQ is the transport's own */
        if (!count)
            return irq_set(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, irq_index, 0, 0, NULL);
        int32_t v[64];
        if (count > 64 || !fds)
            return -EINVAL;
        for (uint32_t i = 0; i < count; i++)
            v[i] = fds[i];
        return irq_set(d, ev, irq_index, start, count, v);
    }
    if (!count) {
        if (start)
            return -EINVAL;
        if (!d->msix_on)
            return 0;
        int rc = irq_set(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, irq_index, 0, 0, NULL);
        if (rc == 0) {
            d->msix_on = false;
            for (uint32_t i = 0; i < d->msix_count; i++)
                d->msix_fds[i] = -1;
        }
        return rc;
    }
    if (!d->msix_count || start >= d->msix_count || count > d->msix_count - start)
        return -EINVAL;
    int32_t *shadow = malloc(d->msix_count * sizeof(int32_t));
    if (!shadow)
        return -ENOMEM;
    memcpy(shadow, d->msix_fds, d->msix_count * sizeof(int32_t));
    for (uint32_t i = 0; i < count; i++)
        shadow[start + i] = fds ? fds[i] : -1;
    int rc = d->msix_on ? irq_set(d, ev, irq_index, start, count, shadow + start)
                        : irq_set(d, ev, irq_index, 0, d->msix_count, shadow);
    if (rc == 0) {
        if (!d->msix_on)
            LOG_I("%s: MSI-X on with %u vectors", t->bdf, d->msix_count);
        d->msix_on = true;
        memcpy(d->msix_fds, shadow, d->msix_count * sizeof(int32_t));
    }
    free(shadow);
    return rc;
}

static int vk_ioeventfd(struct vfe_transport *t, uint32_t region, uint64_t off, uint32_t size, uint64_t data, int fd)
{
    struct vk_dev *d = VK(t);
    if (d->no_ioeventfd)
        return -EOPNOTSUPP;
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return -EINVAL;
    off_t at;
    int rc = range_of(d, region, off, size, VFIO_REGION_INFO_FLAG_WRITE, &at);
    if (rc < 0)
        return rc;
    struct vfio_device_ioeventfd io = {.argsz = sizeof(io), .flags = size, .offset = (uint64_t)at, .data = data,
                                       .fd = fd};
    if (sys_ioctl(d->fd, VFIO_DEVICE_IOEVENTFD, &io) == 0)
        return 0;
    rc = -errno;
    if (rc == -ENOTTY || (rc == -EINVAL && fd >= 0)) {
        LOG_I("%s: the kernel offers no ioeventfd here (%s): doorbells go through the notify area", t->bdf,
              strerror(-rc));
        d->no_ioeventfd = true;
        return -EOPNOTSUPP;
    }
    return rc;
}

static int vk_reset(struct vfe_transport *t)
{
    struct vk_dev *d = VK(t);
    if (!(d->dev_flags & VFIO_DEVICE_FLAGS_RESET))
        return -EOPNOTSUPP;
    return sys_ioctl(d->fd, VFIO_DEVICE_RESET, NULL) < 0 ? -errno : 0;
}

static int vk_req_fd(struct vfe_transport *t)
{
    return VK(t)->req_fd;
}

/* ---- HA ---- */

static int vk_export_fds(struct vfe_transport *t, int *fds, int max)
{
    struct vk_dev *d = VK(t);
    if (max < 3)
        return -ENOSPC;
    fds[0] = d->fd;
    fds[1] = d->g->fd;
    fds[2] = d->g->c->fd;
    return 3;
}

static int vk_export_state(struct vfe_transport *t, void *buf, size_t cap, size_t *len, int *fds, unsigned max_fds,
                           unsigned *nfds)
{
    (void)buf, (void)cap, (void)len, (void)fds, (void)max_fds, (void)nfds;
    LOG_W("%s: HA hand-over of a kernel VFIO function is not supported (docs/real-host.md): it will be reset by "
          "the next daemon", t->bdf);
    return -EOPNOTSUPP;
}

static void vk_close(struct vfe_transport *t)
{
    struct vk_dev *d = VK(t);
    if (d->req_fd >= 0) {
        irq_set(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 0, NULL);
        close(d->req_fd);
    }
    if (d->fd >= 0) {
        close(d->fd);   /* vfio-pci disables the interrupts and resets the function on release */
        LOG_I("%s: kernel VFIO device closed", t->bdf);
    }
    if (d->g)
        group_put(d->g);
    free(d->msix_fds);
    free(d);
}

static const struct vfe_transport_ops vk_ops = {
    .region_info = vk_region_info,
    .region_read = vk_region_read,
    .region_write = vk_region_write,
    .region_mmap_fd = vk_region_mmap_fd,
    .dma_map = vk_dma_map,
    .dma_unmap = vk_dma_unmap,
    .set_irqs = vk_set_irqs,
    .ioeventfd = vk_ioeventfd,
    .reset = vk_reset,
    .export_fds = vk_export_fds,
    .export_state = vk_export_state,
    .close = vk_close,
    .dma_space = vk_dma_space,
    .req_fd = vk_req_fd,
};

static int irq_count(struct vk_dev *d, uint32_t index, uint32_t *count, uint32_t *flags)
{
    *count = 0;
    if (index >= d->num_irqs)
        return 0;
    struct vfio_irq_info ii = {.argsz = sizeof(ii), .index = index};
    if (sys_ioctl(d->fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
        return -errno;
    if (ii.index != index || ii.count > VK_MAX_IRQS)
        return -EPROTO;
    *count = ii.count;
    *flags = ii.flags;
    return 0;
}

static void req_arm(struct vk_dev *d)
{
    uint32_t n, fl = 0;
    if (irq_count(d, VFIO_PCI_REQ_IRQ_INDEX, &n, &fl) < 0 || n != 1 || !(fl & VFIO_IRQ_INFO_EVENTFD))
        return;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return;
    int32_t v = fd;
    if (irq_set(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &v) < 0) {
        LOG_W("%s: request IRQ not armed: %m", d->t.bdf);
        close(fd);
        return;
    }
    d->req_fd = fd;
    LOG_I("%s: request IRQ armed (hot-unplug requests reach the daemon)", d->t.bdf);
}

int vfe_vfio_kernel_open(const char *pci_root, const char *bdf, const char *dma_domain, struct vfe_transport **out)
{
    struct vk_dev *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->t.ops = &vk_ops;
    d->t.timeout_ms = VFE_TRANSPORT_TIMEOUT_MS;
    snprintf(d->t.bdf, sizeof(d->t.bdf), "%s", bdf);
    d->fd = d->req_fd = -1;
    int rc = group_get(pci_root, bdf, dma_domain, &d->g);
    if (rc < 0)
        goto fail;
    d->fd = sys_ioctl(d->g->fd, VFIO_GROUP_GET_DEVICE_FD, (void *)bdf);
    if (d->fd < 0) {
        rc = -errno;
        LOG_E("%s: VFIO_GROUP_GET_DEVICE_FD: %s", bdf, strerror(-rc));
        goto fail;
    }
    fcntl(d->fd, F_SETFD, FD_CLOEXEC);
    struct vfio_device_info di = {.argsz = sizeof(di)};
    if (sys_ioctl(d->fd, VFIO_DEVICE_GET_INFO, &di) < 0) {
        rc = -errno;
        LOG_E("%s: VFIO_DEVICE_GET_INFO: %s", bdf, strerror(-rc));
        goto fail;
    }
    if (!(di.flags & VFIO_DEVICE_FLAGS_PCI) || di.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX ||
        di.num_regions > 64 || di.num_irqs > 64) {
        LOG_E("%s: not a usable vfio-pci device (flags %#x, %u regions, %u irqs)", bdf, di.flags, di.num_regions,
              di.num_irqs);
        rc = -ENODEV;
        goto fail;
    }
    d->dev_flags = di.flags;
    d->num_regions = di.num_regions;
    d->num_irqs = di.num_irqs;
    uint32_t fl;
    if ((rc = irq_count(d, VFIO_PCI_MSIX_IRQ_INDEX, &d->msix_count, &fl)) < 0)
        goto fail;
    if (d->msix_count && !(d->msix_fds = malloc(d->msix_count * sizeof(int32_t)))) {
        rc = -ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < d->msix_count; i++)
        d->msix_fds[i] = -1;
    LOG_I("%s: kernel VFIO device fd %d: %u regions, %u irq indexes, %u MSI-X vectors, reset %s", bdf, d->fd,
          di.num_regions, di.num_irqs, d->msix_count, (di.flags & VFIO_DEVICE_FLAGS_RESET) ? "yes" : "no");
    if ((rc = region_load(d, VFIO_PCI_CONFIG_REGION_INDEX)) < 0)
        goto fail;
    req_arm(d);
    *out = &d->t;
    return 0;
fail:
    vk_close(&d->t);
    return rc;
}
