/*
 * The kernel VFIO transport against a fake kernel (vk_set_sys: open and
 * ioctl of /dev/vfio; pread/pwrite, mmap and eventfds are real): the VFs of
 * one DMA domain share one container (opened and typed once) and their maps
 * go to it once, from the container's own mapping of guest memory; a
 * private domain gets its own; a group that is not viable is refused;
 * regions are read at their offsets in the device fd and only sparse-mmap
 * areas are mappable; MSI-X is enabled once with every vector, then changed
 * inside that block; an ioeventfd the kernel refuses is asked once; the
 * request IRQ is armed; an unmap of nothing is -ENOENT; closing releases
 * the groups and the container.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <linux/vfio.h>

#include "drivers/bus/vfio/vfe_dma_domain.h"
#include "drivers/bus/vfio/vfe_transport.h"
#include "drivers/bus/vfio/vfio_kernel_priv.h"

#define DEV_SIZE   0x100000
#define CFG_OFF    0x70000
#define BAR4_OFF   0x40000
#define BAR1_OFF   0x10000
#define MAX_FDS    64

enum kind { K_NONE, K_CONTAINER, K_GROUP, K_DEVICE };

/* What the fake kernel knows of an fd it handed out. */
struct kfd {
    enum kind kind;
    unsigned group;          /* K_GROUP */
    int container;           /* K_GROUP: the container fd it is set to, -1 */
};

static struct {
    struct kfd fds[1024];
    unsigned container_opens, set_iommu, map_calls, unmap_calls, ioeventfd_calls, unset_calls;
    bool not_viable;
    struct { uint64_t iova, size, vaddr; } maps[16];
    unsigned nmaps;
    struct { uint32_t flags, index, start, count; int32_t data[8]; } irqs[16];
    unsigned nirqs;
    char seen_byte;          /* guest memory's first byte as MAP_DMA's vaddr shows it */
} K;

static int fake_open(const char *path, int flags)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int fd;
    if (!strcmp(base, "vfio")) {
        fd = eventfd(0, EFD_CLOEXEC);
        K.fds[fd] = (struct kfd){.kind = K_CONTAINER, .container = -1};
        K.container_opens++;
        return fd;
    }
    char *end;
    unsigned long n = strtoul(base, &end, 10);
    if (*end || n > 100) {
        errno = ENOENT;
        return -1;
    }
    fd = eventfd(0, EFD_CLOEXEC);
    K.fds[fd] = (struct kfd){.kind = K_GROUP, .group = (unsigned)n, .container = -1};
    return fd;
}

static int kfail(int e)
{
    errno = e;
    return -1;
}

static int region_info(struct vfio_region_info *ri)
{
    uint32_t argsz = ri->argsz;
    if (ri->index == VFIO_PCI_CONFIG_REGION_INDEX) {
        *ri = (struct vfio_region_info){.argsz = sizeof(*ri), .flags = VFIO_REGION_INFO_FLAG_READ |
                                        VFIO_REGION_INFO_FLAG_WRITE, .index = ri->index, .size = 4096,
                                        .offset = CFG_OFF};
        return 0;
    }
    if (ri->index == 4) {   /* BAR4: mappable only at [0x3000, 0x4000) */
        size_t need = sizeof(*ri) + sizeof(struct vfio_region_info_cap_sparse_mmap) +
                      sizeof(struct vfio_region_sparse_mmap_area);
        *ri = (struct vfio_region_info){.argsz = (uint32_t)need, .flags = VFIO_REGION_INFO_FLAG_READ |
                                        VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP |
                                        VFIO_REGION_INFO_FLAG_CAPS, .index = 4, .size = 0x4000,
                                        .offset = BAR4_OFF, .cap_offset = sizeof(*ri)};
        if (argsz < need)
            return 0;
        struct vfio_region_info_cap_sparse_mmap sm = {.header = {.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP,
                                                                 .version = 1}, .nr_areas = 1};
        struct vfio_region_sparse_mmap_area a = {.offset = 0x3000, .size = 0x1000};
        memcpy((uint8_t *)ri + sizeof(*ri), &sm, sizeof(sm));
        memcpy((uint8_t *)ri + sizeof(*ri) + sizeof(sm), &a, sizeof(a));
        return 0;
    }
    if (ri->index == 1) {   /* BAR1 as 6.1 vfio-pci reports an MSI-X BAR: mappable, MSIX_MAPPABLE, no sparse list */
        size_t need = sizeof(*ri) + sizeof(struct vfio_info_cap_header);
        *ri = (struct vfio_region_info){.argsz = (uint32_t)need, .flags = VFIO_REGION_INFO_FLAG_READ |
                                        VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP |
                                        VFIO_REGION_INFO_FLAG_CAPS, .index = 1, .size = 0x2000,
                                        .offset = BAR1_OFF, .cap_offset = sizeof(*ri)};
        if (argsz < need)
            return 0;
        struct vfio_info_cap_header h = {.id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, .version = 1};
        memcpy((uint8_t *)ri + sizeof(*ri), &h, sizeof(h));
        return 0;
    }
    uint32_t idx = ri->index;
    *ri = (struct vfio_region_info){.argsz = sizeof(*ri), .index = idx};
    return 0;
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
    struct kfd *k = &K.fds[fd];
    switch (k->kind) {
    case K_CONTAINER:
        if (req == VFIO_GET_API_VERSION)
            return VFIO_API_VERSION;
        if (req == VFIO_CHECK_EXTENSION)
            return (uintptr_t)arg == VFIO_TYPE1v2_IOMMU;
        if (req == VFIO_SET_IOMMU) {
            K.set_iommu++;
            return (uintptr_t)arg == VFIO_TYPE1v2_IOMMU ? 0 : kfail(EINVAL);
        }
        if (req == VFIO_IOMMU_GET_INFO) {
            struct vfio_iommu_type1_info *i = arg;
            i->flags = VFIO_IOMMU_INFO_PGSIZES;
            i->iova_pgsizes = 0x1000;
            i->argsz = sizeof(*i);
            return 0;
        }
        if (req == VFIO_IOMMU_MAP_DMA) {
            struct vfio_iommu_type1_dma_map *m = arg;
            K.map_calls++;
            for (unsigned i = 0; i < K.nmaps; i++)
                if (m->iova < K.maps[i].iova + K.maps[i].size && K.maps[i].iova < m->iova + m->size)
                    return kfail(EEXIST);
            K.seen_byte = *(const char *)(uintptr_t)m->vaddr;   /* the process mapping must be real */
            K.maps[K.nmaps].iova = m->iova;
            K.maps[K.nmaps].size = m->size;
            K.maps[K.nmaps++].vaddr = m->vaddr;
            return 0;
        }
        if (req == VFIO_IOMMU_UNMAP_DMA) {
            struct vfio_iommu_type1_dma_unmap *u = arg;
            K.unmap_calls++;
            uint64_t done = 0;
            for (unsigned i = 0; i < K.nmaps;)
                if (K.maps[i].iova >= u->iova && K.maps[i].iova + K.maps[i].size <= u->iova + u->size) {
                    done += K.maps[i].size;
                    K.maps[i] = K.maps[--K.nmaps];
                } else {
                    i++;
                }
            u->size = done;
            return 0;
        }
        return kfail(ENOTTY);
    case K_GROUP:
        if (req == VFIO_GROUP_GET_STATUS) {
            struct vfio_group_status *s = arg;
            s->flags = K.not_viable ? 0 : VFIO_GROUP_FLAGS_VIABLE;
            return 0;
        }
        if (req == VFIO_GROUP_SET_CONTAINER) {
            int c = *(int *)arg;
            if (K.fds[c].kind != K_CONTAINER || k->container >= 0)
                return kfail(EINVAL);
            k->container = c;
            return 0;
        }
        if (req == VFIO_GROUP_UNSET_CONTAINER) {
            K.unset_calls++;
            k->container = -1;
            return 0;
        }
        if (req == VFIO_GROUP_GET_DEVICE_FD) {
            if (k->container < 0)
                return kfail(EINVAL);
            int d = memfd_create("fake-vfio-device", MFD_CLOEXEC);
            if (ftruncate(d, DEV_SIZE) < 0)
                return -1;
            K.fds[d] = (struct kfd){.kind = K_DEVICE, .container = -1};
            return d;
        }
        return kfail(ENOTTY);
    case K_DEVICE:
        if (req == VFIO_DEVICE_GET_INFO) {
            struct vfio_device_info *di = arg;
            di->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
            di->num_regions = VFIO_PCI_NUM_REGIONS;
            di->num_irqs = VFIO_PCI_NUM_IRQS;
            return 0;
        }
        if (req == VFIO_DEVICE_GET_REGION_INFO)
            return region_info(arg);
        if (req == VFIO_DEVICE_GET_IRQ_INFO) {
            struct vfio_irq_info *ii = arg;
            ii->flags = VFIO_IRQ_INFO_EVENTFD;
            ii->count = ii->index == VFIO_PCI_MSIX_IRQ_INDEX ? 4 : ii->index == VFIO_PCI_REQ_IRQ_INDEX ? 1 : 0;
            return 0;
        }
        if (req == VFIO_DEVICE_SET_IRQS) {
            struct vfio_irq_set *s = arg;
            if (K.nirqs < 16) {
                K.irqs[K.nirqs].flags = s->flags;
                K.irqs[K.nirqs].index = s->index;
                K.irqs[K.nirqs].start = s->start;
                K.irqs[K.nirqs].count = s->count;
                if ((s->flags & VFIO_IRQ_SET_DATA_EVENTFD) && s->count <= 8)
                    memcpy(K.irqs[K.nirqs].data, s->data, s->count * sizeof(int32_t));
                K.nirqs++;
            }
            return 0;
        }
        if (req == VFIO_DEVICE_IOEVENTFD) {
            K.ioeventfd_calls++;
            return kfail(ENOTTY);
        }
        if (req == VFIO_DEVICE_RESET)
            return 0;
        return kfail(ENOTTY);
    default:
        return kfail(EBADF);
    }
}

static const struct vk_sys fake_sys = {fake_open, fake_ioctl};
static char root[256];

/* A function in IOMMU group n under root. */
static void add_fn(const char *bdf, unsigned n)
{
    char p[512], t[64];
    snprintf(p, sizeof(p), "%s/%s", root, bdf);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/%s/iommu_group", root, bdf);
    snprintf(t, sizeof(t), "../../kernel/iommu_groups/%u", n);
    assert_int_equal(symlink(t, p), 0);
}

static int setup(void **state)
{
    (void)state;
    memset(&K, 0, sizeof(K));
    snprintf(root, sizeof(root), "/tmp/vfe-vk-XXXXXX");
    assert_non_null(mkdtemp(root));
    add_fn("0000:01:00.0", 5);
    add_fn("0000:01:00.1", 6);
    add_fn("0000:02:00.0", 7);
    vk_set_sys(&fake_sys);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vk_set_sys(NULL);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd);
}

static void test_shared_container(void **state)
{
    (void)state;
    struct vfe_transport *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(vfe_transport_open_in(root, "0000:01:00.0", "vm1", &a), 0);
    assert_int_equal(vfe_transport_open_in(root, "0000:01:00.1", "vm1", &b), 0);
    assert_int_equal(K.container_opens, 1);   /* the second group joined the first one's container */
    assert_int_equal(K.set_iommu, 1);
    assert_ptr_equal(a->ops->dma_space(a), b->ops->dma_space(b));
    assert_int_equal(vfe_transport_open_in(root, "0000:02:00.0", NULL, &c), 0);
    assert_int_equal(K.container_opens, 2);   /* a private domain: its own */
    assert_ptr_not_equal(a->ops->dma_space(a), c->ops->dma_space(c));

    /* guest memory mapped once for the domain, through a real mapping of its fd */
    int mem = memfd_create("guest", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mem, 2 << 20), 0);
    assert_int_equal(pwrite(mem, "G", 1, 0x1000), 1);
    struct vfe_dma_domain *d = vfe_dma_domain_join("vm1", a);
    assert_non_null(d);
    assert_non_null(vfe_dma_domain_join("vm1", b));
    assert_int_equal(vfe_dma_domain_map(d, a, 0x100000, 1 << 20, mem, 0x1000, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(vfe_dma_domain_map(d, b, 0x100000, 1 << 20, mem, 0x1000, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(K.map_calls, 1);
    assert_int_equal(K.seen_byte, 'G');
    assert_int_equal(a->ops->dma_unmap(a, 0x900000, 0x1000), -ENOENT);   /* the kernel held nothing there */
    vfe_dma_domain_leave(d, a);
    assert_int_equal(K.nmaps, 1);   /* b still needs it */
    vfe_dma_domain_leave(d, b);
    assert_int_equal(K.nmaps, 0);
    assert_int_equal(K.unmap_calls, 2);
    close(mem);

    vfe_transport_close(a);
    assert_int_equal(K.unset_calls, 1);
    vfe_transport_close(b);
    vfe_transport_close(c);
    assert_int_equal(K.unset_calls, 3);
    /* a new open after everything closed needs a new container */
    assert_int_equal(vfe_transport_open_in(root, "0000:01:00.0", "vm1", &a), 0);
    assert_int_equal(K.container_opens, 3);
    vfe_transport_close(a);
}

static void test_device_ops(void **state)
{
    (void)state;
    struct vfe_transport *t = NULL;
    assert_int_equal(vfe_transport_open_in(root, "0000:01:00.0", NULL, &t), 0);
    /* config space at its offset in the device fd */
    int devfd = -1;
    uint64_t off = 0;
    assert_int_equal(t->ops->region_mmap_fd(t, 4, 0x3000, 0x1000, &devfd, &off), 0);
    assert_int_equal(off, BAR4_OFF + 0x3000);
    assert_int_equal(pwrite(devfd, "\x34\x12", 2, CFG_OFF + 0x10), 2);
    uint16_t v = 0;
    assert_int_equal(vfe_cfg_read(t, 0x10, &v, 2), 0);
    assert_int_equal(v, 0x1234);
    assert_int_equal(vfe_cfg_read(t, 4095, &v, 2), -EINVAL);   /* past the region */
    assert_int_equal(t->ops->region_mmap_fd(t, 4, 0x1000, 0x1000, &devfd, &off), -ENOENT);   /* not sparse */
    assert_int_equal(t->ops->region_mmap_fd(t, VFE_REGION_CONFIG, 0, 0x100, &devfd, &off), -ENOENT);
    /* a mappable region whose capabilities hold no sparse list (the MSI-X BAR): all of it maps */
    assert_int_equal(t->ops->region_mmap_fd(t, 1, 0x1000, 0x1000, &devfd, &off), 0);
    assert_int_equal(off, BAR1_OFF + 0x1000);

    /* the request IRQ is armed at open */
    assert_true(vfe_transport_req_fd(t) >= 0);
    assert_int_equal(K.nirqs, 1);
    assert_int_equal(K.irqs[0].index, VFIO_PCI_REQ_IRQ_INDEX);

    /* MSI-X: enabled once with all 4 vectors, then changed inside the block */
    int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 2, 1, &e1), 0);
    assert_int_equal(K.irqs[1].start, 0);
    assert_int_equal(K.irqs[1].count, 4);
    assert_int_equal(K.irqs[1].data[0], -1);
    assert_int_equal(K.irqs[1].data[2], e1);
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, &e2), 0);
    assert_int_equal(K.irqs[2].start, 1);
    assert_int_equal(K.irqs[2].count, 1);
    assert_int_equal(K.irqs[2].data[0], e2);
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 3, 2, &e2), -EINVAL);   /* vector 4 of 4 */
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL), 0);
    assert_int_equal(K.irqs[3].flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER);
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, &e2), 0);
    assert_int_equal(K.irqs[4].count, 4);   /* off again: enabled again with the whole block */
    assert_int_equal(K.irqs[4].data[1], e2);
    assert_int_equal(K.irqs[4].data[2], -1);

    /* ioeventfd refused by the kernel: -EOPNOTSUPP, asked only once */
    assert_int_equal(t->ops->ioeventfd(t, 4, 0x3000, 2, 0, e1), -EOPNOTSUPP);
    assert_int_equal(t->ops->ioeventfd(t, 4, 0x3000, 2, 1, e1), -EOPNOTSUPP);
    assert_int_equal(K.ioeventfd_calls, 1);
    assert_int_equal(t->ops->reset(t), 0);

    /* HA over kernel VFIO: the fds that keep it open, but no adoption */
    int fds[4];
    assert_int_equal(t->ops->export_fds(t, fds, 4), 3);
    uint8_t blob[VFE_TRANSPORT_BLOB_MAX];
    size_t len;
    unsigned n;
    assert_int_equal(vfe_transport_export(t, blob, sizeof(blob), &len, fds, 4, &n), -EOPNOTSUPP);
    close(e1);
    close(e2);
    vfe_transport_close(t);
}

static void test_refusals(void **state)
{
    (void)state;
    struct vfe_transport *t = NULL, *u = NULL;
    K.not_viable = true;
    assert_int_equal(vfe_transport_open_in(root, "0000:01:00.0", "vm1", &t), -EBUSY);
    assert_int_equal(K.container_opens, 0);   /* refused before any container */
    K.not_viable = false;
    /* one group, one address space: the same group in another domain is refused */
    assert_int_equal(vfe_transport_open_in(root, "0000:01:00.0", "vm1", &t), 0);
    char p[512];
    snprintf(p, sizeof(p), "%s/0000:03:00.0", root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/0000:03:00.0/iommu_group", root);
    assert_int_equal(symlink("../../kernel/iommu_groups/5", p), 0);
    assert_int_equal(vfe_transport_open_in(root, "0000:03:00.0", "vm2", &u), -EBUSY);
    assert_int_equal(vfe_transport_open_in(root, "0000:03:00.0", "vm1", &u), 0);   /* same domain: shared */
    vfe_transport_close(u);
    vfe_transport_close(t);
    /* no group node: not bound to vfio-pci */
    snprintf(p, sizeof(p), "%s/0000:03:00.1", root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/0000:03:00.1/iommu_group", root);
    assert_int_equal(symlink("../../kernel/iommu_groups/500", p), 0);
    assert_int_equal(vfe_transport_open_in(root, "0000:03:00.1", NULL, &u), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shared_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
