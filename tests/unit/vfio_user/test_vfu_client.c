/*
 * vfio-user client (drivers/bus/vfio) against a scripted in-process server:
 * chunking, IRQ run splitting, vendor ioeventfd, error replies, timeouts,
 * reply validation and transport selection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "lib/vfio_user/vfu_msg.h"
#include "lib/vfio_user/vfu_sock.h"

#define SILENT_OFF  0x80   /* REGION_READ here gets no reply */
#define BADID_OFF   0x90   /* REGION_READ here gets a reply with another msg_id */
#define SHORT_OFF   0xa0   /* REGION_READ here gets a reply one byte short */

struct irq_rec { uint32_t flags, start, count, nfds; };

struct fake {
    char dir[128], path[200];
    int lsock;
    pthread_t thr;
    uint32_t xfer;                 /* advertised max_data_xfer_size */
    bool vfe;                      /* advertise the ioeventfd extension */
    uint8_t cfg[256];
    uint32_t read_counts[32];
    unsigned nreads;
    struct irq_rec irqs[32];
    unsigned nirqs;
    struct vfu_vfe_ioeventfd ioev;
    unsigned ioev_nfds, nioev;
    struct vfu_dma_map dma;
    unsigned dma_nfds;
};

static void reply(int c, const struct vfu_msg *m, const void *p, size_t len)
{
    assert_int_equal(vfu_msg_send_simple(c, m->hdr.msg_id, m->hdr.cmd, VFU_F_TYPE_REPLY, 0, p, len,
                                         NULL, 0, 1000), 0);
}

/* BARs 1..4 are mappable with a sparse capability: 1 a chain that loops,
 * 2 an area beyond the region, 3 a capability past argsz, 4 a good one
 * (0x1000..0x3000).  Each reply carries a memfd. */
static void mappable_region(int c, const struct vfu_msg *m, uint32_t index)
{
    struct {
        struct vfu_region_info r;
        struct vfio_region_info_cap_sparse_mmap sm;
        struct vfio_region_sparse_mmap_area a;
    } __attribute__((packed)) rep = {
        .r = {.argsz = sizeof(rep), .index = index, .cap_offset = 32, .size = 0x10000,
              .flags = 3 | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS},
        .sm = {.header = {.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1}, .nr_areas = 1},
        .a = {.offset = 0x1000, .size = 0x2000},
    };
    if (index == 1)
        rep.sm.header.next = 32;
    if (index == 2)
        rep.a.size = 0x10000;
    if (index == 3)
        rep.r.cap_offset = 200;
    int fd = memfd_create("bar", MFD_CLOEXEC);
    assert_int_equal(ftruncate(fd, 0x10000), 0);
    assert_int_equal(vfu_msg_send_simple(c, m->hdr.msg_id, m->hdr.cmd, VFU_F_TYPE_REPLY, 0, &rep, sizeof(rep),
                                         &fd, 1, 1000), 0);
    close(fd);
}

static void serve(struct fake *f, int c, struct vfu_msg *m)
{
    switch (m->hdr.cmd) {
    case VFU_CMD_VERSION: {
        char json[256];
        int n = snprintf(json, sizeof(json),
                         "{\"capabilities\":{\"max_msg_fds\":4,\"max_data_xfer_size\":%u%s}}", f->xfer,
                         f->vfe ? ",\"vfe\":{\"version\":1,\"ioeventfd\":32513}" : "");
        uint8_t buf[300] = { 0, 0, 1, 0 };
        memcpy(buf + 4, json, (size_t)n + 1);
        reply(c, m, buf, 4 + (size_t)n + 1);
        break;
    }
    case VFU_CMD_DEVICE_GET_INFO: {
        struct vfu_device_info d = { 16, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, 9, 5 };
        reply(c, m, &d, sizeof(d));
        break;
    }
    case VFU_CMD_DEVICE_GET_REGION_INFO: {
        struct vfu_region_info r;
        memcpy(&r, m->payload, sizeof(r));
        if (r.index >= 1 && r.index <= 4) {
            mappable_region(c, m, r.index);
            break;
        }
        r.argsz = 32;
        r.size = r.index == VFE_REGION_CONFIG ? sizeof(f->cfg) : r.index == 0 ? 0x10000 : 0;
        r.flags = r.size ? 3 : 0;
        reply(c, m, &r, sizeof(r));
        break;
    }
    case VFU_CMD_REGION_READ: {
        struct vfu_region_access a;
        memcpy(&a, m->payload, sizeof(a));
        if (f->nreads < 32)
            f->read_counts[f->nreads] = a.count;
        f->nreads++;
        if (a.offset == SILENT_OFF)
            break;
        uint8_t buf[16 + 256] = { 0 };
        memcpy(buf, &a, sizeof(a));
        if (a.region == VFE_REGION_CONFIG && a.offset + a.count <= sizeof(f->cfg))
            memcpy(buf + 16, f->cfg + a.offset, a.count);
        if (a.offset == BADID_OFF) {
            vfu_msg_send_simple(c, m->hdr.msg_id + 1, m->hdr.cmd, VFU_F_TYPE_REPLY, 0, buf, 16 + a.count,
                                NULL, 0, 1000);
            break;
        }
        reply(c, m, buf, 16 + a.count - (a.offset == SHORT_OFF ? 1 : 0));
        break;
    }
    case VFU_CMD_REGION_WRITE: {
        struct vfu_region_access a;
        memcpy(&a, m->payload, sizeof(a));
        memcpy(f->cfg + a.offset, m->payload + 16, a.count);
        reply(c, m, &a, sizeof(a));
        break;
    }
    case VFU_CMD_DMA_MAP:
        memcpy(&f->dma, m->payload, sizeof(f->dma));
        f->dma_nfds = m->nfds;
        reply(c, m, NULL, 0);
        break;
    case VFU_CMD_DMA_UNMAP:
        reply(c, m, m->payload, m->len);
        break;
    case VFU_CMD_DEVICE_SET_IRQS: {
        struct vfu_irq_set q;
        memcpy(&q, m->payload, sizeof(q));
        if (f->nirqs < 32)
            f->irqs[f->nirqs++] = (struct irq_rec){ q.flags, q.start, q.count, m->nfds };
        reply(c, m, NULL, 0);
        break;
    }
    case VFU_CMD_VFE_IOEVENTFD:
        memcpy(&f->ioev, m->payload, sizeof(f->ioev));
        f->ioev_nfds = m->nfds;
        f->nioev++;
        reply(c, m, NULL, 0);
        break;
    case VFU_CMD_DEVICE_RESET:
        vfu_msg_send_simple(c, m->hdr.msg_id, m->hdr.cmd, VFU_F_TYPE_REPLY | VFU_F_ERROR, EBUSY,
                            NULL, 0, NULL, 0, 1000);
        break;
    default:
        vfu_msg_send_simple(c, m->hdr.msg_id, m->hdr.cmd, VFU_F_TYPE_REPLY | VFU_F_ERROR, ENOSYS,
                            NULL, 0, NULL, 0, 1000);
    }
}

static void *server_main(void *arg)
{
    struct fake *f = arg;
    int c = accept(f->lsock, NULL, NULL);
    if (c < 0)
        return NULL;
    struct vfu_reader r;
    vfu_reader_init(&r);
    for (;;) {
        struct vfu_msg m;
        if (vfu_msg_recv(&r, c, &m, 10000) != VFU_RD_MSG)
            break;
        serve(f, c, &m);
        vfu_msg_free(&m);
    }
    vfu_reader_reset(&r);
    close(c);
    return NULL;
}

static struct fake *fake_start(uint32_t xfer, bool vfe)
{
    struct fake *f = calloc(1, sizeof(*f));
    f->xfer = xfer;
    f->vfe = vfe;
    for (unsigned i = 0; i < sizeof(f->cfg); i++)
        f->cfg[i] = (uint8_t)(i ^ 0x5a);
    snprintf(f->dir, sizeof(f->dir), "/tmp/vfu-client-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/vfio-user.sock", f->dir);
    f->lsock = vfu_sock_listen(f->path);
    assert_true(f->lsock >= 0);
    /* blocking accept in the thread */
    int fl = fcntl(f->lsock, F_GETFL);
    assert_int_equal(fcntl(f->lsock, F_SETFL, fl & ~O_NONBLOCK), 0);
    pthread_create(&f->thr, NULL, server_main, f);
    return f;
}

static void fake_stop(struct fake *f)
{
    shutdown(f->lsock, SHUT_RDWR);   /* wakes an accept that never got a client */
    pthread_join(f->thr, NULL);
    close(f->lsock);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
}

static void test_read_write_chunks(void **state)
{
    (void)state;
    struct fake *f = fake_start(8, true);
    struct vfe_transport *t;
    assert_int_equal(vfe_vfio_user_open(f->path, "0000:3b:00.1", &t), 0);
    assert_string_equal(t->bdf, "0000:3b:00.1");

    struct vfe_region_info ri;
    assert_int_equal(t->ops->region_info(t, VFE_REGION_CONFIG, &ri), 0);
    assert_int_equal(ri.size, 256);
    assert_int_equal(ri.index, VFE_REGION_CONFIG);
    assert_int_equal(t->ops->region_info(t, 9, &ri), -EINVAL);   /* beyond num_regions */

    uint8_t buf[20];
    assert_int_equal(vfe_cfg_read(t, 3, buf, sizeof(buf)), 0);
    for (unsigned i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], (uint8_t)((3 + i) ^ 0x5a));
    assert_int_equal(f->nreads, 3);
    assert_int_equal(f->read_counts[0], 8);
    assert_int_equal(f->read_counts[1], 8);
    assert_int_equal(f->read_counts[2], 4);

    const uint8_t w[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    assert_int_equal(vfe_cfg_write(t, 100, w, sizeof(w)), 0);
    assert_memory_equal(f->cfg + 100, w, sizeof(w));

    /* out of the region: refused locally, nothing sent */
    unsigned before = f->nreads;
    assert_int_equal(vfe_cfg_read(t, 250, buf, 8), -EINVAL);
    assert_int_equal(vfe_cfg_read(t, UINT32_MAX, buf, 2), -EINVAL);
    assert_int_equal(f->nreads, before);

    /* an error reply is -errno and keeps the connection */
    assert_int_equal(t->ops->reset(t), -EBUSY);
    assert_int_equal(vfe_cfg_read(t, 0, buf, 4), 0);

    int fds[2];
    assert_int_equal(t->ops->export_fds(t, fds, 2), 1);
    assert_true(fds[0] >= 0);
    vfe_transport_close(t);
    fake_stop(f);
}

static void test_irqs_dma_ioeventfd(void **state)
{
    (void)state;
    struct fake *f = fake_start(1 << 20, true);
    struct vfe_transport *t;
    assert_int_equal(vfe_vfio_user_open(f->path, "0000:3b:00.1", &t), 0);
    int e = eventfd(0, EFD_CLOEXEC);
    const uint32_t ev = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;

    int fds[9] = { e, e, -1, -1, e, e };
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 1, 6, fds), 0);
    assert_int_equal(f->nirqs, 3);
    assert_memory_equal(&f->irqs[0], (&(struct irq_rec){ ev, 1, 2, 2 }), sizeof(struct irq_rec));
    assert_memory_equal(&f->irqs[1], (&(struct irq_rec){ ev, 3, 2, 0 }), sizeof(struct irq_rec));
    assert_memory_equal(&f->irqs[2], (&(struct irq_rec){ ev, 5, 2, 2 }), sizeof(struct irq_rec));

    /* 9 fds with max_msg_fds 4: 4 + 4 + 1 */
    for (int i = 0; i < 9; i++)
        fds[i] = e;
    f->nirqs = 0;
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 0, 9, fds), 0);
    assert_int_equal(f->nirqs, 3);
    assert_memory_equal(&f->irqs[0], (&(struct irq_rec){ ev, 0, 4, 4 }), sizeof(struct irq_rec));
    assert_memory_equal(&f->irqs[1], (&(struct irq_rec){ ev, 4, 4, 4 }), sizeof(struct irq_rec));
    assert_memory_equal(&f->irqs[2], (&(struct irq_rec){ ev, 8, 1, 1 }), sizeof(struct irq_rec));

    f->nirqs = 0;
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL), 0);
    assert_int_equal(f->nirqs, 1);
    assert_memory_equal(&f->irqs[0],
                        (&(struct irq_rec){ VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 0 }),
                        sizeof(struct irq_rec));
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 3, 0, NULL), -EINVAL);

    assert_int_equal(t->ops->dma_map(t, 0x100000, 0x4000, e, 0x2000, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(f->dma_nfds, 1);
    assert_int_equal(f->dma.argsz, 32);
    assert_int_equal(f->dma.flags, VFU_DMA_F_READ | VFU_DMA_F_WRITE);
    assert_int_equal(f->dma.addr, 0x100000);
    assert_int_equal(f->dma.size, 0x4000);
    assert_int_equal(f->dma.offset, 0x2000);
    assert_int_equal(t->ops->dma_map(t, 0x100000, 0x4000, -1, 0, VFE_DMA_READ), -EINVAL);
    assert_int_equal(t->ops->dma_map(t, 0x100000, 0x4000, e, 0, 4), -EINVAL);
    assert_int_equal(t->ops->dma_unmap(t, 0x100000, 0x4000), 0);

    assert_int_equal(t->ops->ioeventfd(t, 0, 0x3000, 2, 5, e), 0);
    assert_int_equal(f->ioev_nfds, 1);
    assert_int_equal(f->ioev.argsz, 32);
    assert_int_equal(f->ioev.flags, 2 | VFE_IOEVENTFD_DATAMATCH);
    assert_int_equal(f->ioev.region, 0);
    assert_int_equal(f->ioev.offset, 0x3000);
    assert_int_equal(f->ioev.data, 5);
    assert_int_equal(t->ops->ioeventfd(t, 0, 0x3000, 2, 5, -1), 0);
    assert_int_equal(f->ioev_nfds, 0);
    assert_int_equal(f->ioev.flags, 2 | VFE_IOEVENTFD_DATAMATCH | VFE_IOEVENTFD_DEASSIGN);
    assert_int_equal(t->ops->ioeventfd(t, 0, 0x3000, 3, 5, e), -EINVAL);
    assert_int_equal(f->nioev, 2);

    vfe_transport_close(t);
    close(e);
    fake_stop(f);
}

static void test_no_vendor_ext(void **state)
{
    (void)state;
    struct fake *f = fake_start(1 << 20, false);
    struct vfe_transport *t;
    assert_int_equal(vfe_vfio_user_open(f->path, "0000:3b:00.2", &t), 0);
    int e = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(t->ops->ioeventfd(t, 0, 0x3000, 2, 0, e), -EOPNOTSUPP);
    assert_int_equal(f->nioev, 0);
    vfe_transport_close(t);
    close(e);
    fake_stop(f);
}

static void test_timeout_breaks(void **state)
{
    (void)state;
    struct fake *f = fake_start(1 << 20, true);
    struct vfe_transport *t;
    assert_int_equal(vfe_vfio_user_open(f->path, "0000:3b:00.1", &t), 0);
    t->timeout_ms = 100;
    uint8_t b[4];
    assert_int_equal(vfe_cfg_read(t, SILENT_OFF, b, 4), -ETIMEDOUT);
    unsigned n = f->nreads;
    assert_int_equal(vfe_cfg_read(t, 0, b, 4), -ENOTCONN);
    assert_int_equal(t->ops->reset(t), -ENOTCONN);
    assert_int_equal(f->nreads, n);
    int fds[1];
    assert_int_equal(t->ops->export_fds(t, fds, 1), -ENOTCONN);
    vfe_transport_close(t);
    fake_stop(f);
}

static void test_bad_replies(void **state)
{
    (void)state;
    struct fake *f = fake_start(1 << 20, true);
    struct vfe_transport *t;
    uint8_t b[4];
    /* a short reply is refused; the stream stays usable */
    assert_int_equal(vfe_vfio_user_open(f->path, "0000:3b:00.1", &t), 0);
    assert_int_equal(vfe_cfg_read(t, SHORT_OFF, b, 4), -EPROTO);
    assert_int_equal(vfe_cfg_read(t, 0, b, 4), 0);
    /* a reply with another msg_id breaks the connection */
    assert_int_equal(vfe_cfg_read(t, BADID_OFF, b, 4), -EPROTO);
    assert_int_equal(vfe_cfg_read(t, 0, b, 4), -ENOTCONN);
    vfe_transport_close(t);
    fake_stop(f);
}

/* Sparse-mmap capabilities: malformed ones leave the region unmappable. */
static void test_sparse_mmap(void **state)
{
    (void)state;
    struct fake *f = fake_start(1 << 20, true);
    struct vfe_transport *t;
    assert_int_equal(vfe_vfio_user_open(f->path, "0000:3b:00.1", &t), 0);
    int fd;
    uint64_t off;
    for (uint32_t bar = 1; bar <= 3; bar++)
        assert_int_equal(t->ops->region_mmap_fd(t, bar, 0x1000, 0x1000, &fd, &off), -ENOENT);
    assert_int_equal(t->ops->region_mmap_fd(t, 4, 0x2000, 0x1000, &fd, &off), 0);
    assert_true(fd >= 0 && off == 0x2000);
    assert_int_equal(t->ops->region_mmap_fd(t, 4, 0x2000, 0x2000, &fd, &off), -ENOENT);
    assert_int_equal(t->ops->region_mmap_fd(t, 4, 0, 0x1000, &fd, &off), -ENOENT);
    assert_int_equal(t->ops->region_mmap_fd(t, 0, 0, 0x1000, &fd, &off), -ENOENT);   /* no fd at all */
    vfe_transport_close(t);
    fake_stop(f);
}

static void test_transport_open(void **state)
{
    (void)state;
    char root[64];
    snprintf(root, sizeof(root), "/tmp/vfu-root-XXXXXX");
    assert_non_null(mkdtemp(root));
    char d[128];
    snprintf(d, sizeof(d), "%s/0000:3b:00.0", root);
    assert_int_equal(mkdir(d, 0755), 0);
    struct vfe_transport *t = NULL;
    assert_int_equal(vfe_transport_open(root, "0000:3b:00.0", &t), -ENODEV);   /* kernel VFIO: no iommu_group */
    assert_int_equal(vfe_transport_open(root, "0000:3b:00.5", &t), -ENOENT);
    assert_int_equal(vfe_transport_open(root, "../../etc", &t), -EINVAL);
    assert_int_equal(vfe_transport_open(root, "0000:3b:00.0/..", &t), -EINVAL);
    rmdir(d);

    struct fake *f = fake_start(1 << 20, true);
    char link[160];
    snprintf(link, sizeof(link), "%s/0000:3b:00.1", root);
    assert_int_equal(symlink(f->dir, link), 0);   /* the fake's dir holds vfio-user.sock */
    assert_int_equal(vfe_transport_open(root, "0000:3b:00.1", &t), 0);
    uint8_t b[2];
    assert_int_equal(vfe_cfg_read(t, 0, b, 2), 0);
    assert_int_equal(b[0], 0x5a);
    vfe_transport_close(t);
    unlink(link);
    rmdir(root);
    fake_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_write_chunks),
        cmocka_unit_test(test_irqs_dma_ioeventfd),
        cmocka_unit_test(test_no_vendor_ext),
        cmocka_unit_test(test_timeout_breaks),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_sparse_mmap),
        cmocka_unit_test(test_transport_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
