#include "tests/unit/vfio_user/vfu_battery.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/unit/vfio_user/vfu_raw.h"


#define EXPECT_ERR(what, got, want) \
    CHECK((got) == (want), "%s: got %d, want %d", what, (int)(got), (int)(want))

static int dma_map(int s, uint64_t iova, uint64_t size, uint64_t off, uint32_t flags, const int *fds,
                   unsigned nfds, uint32_t argsz)
{
    struct vfu_dma_map d = { .argsz = argsz, .flags = flags, .offset = off, .addr = iova, .size = size };
    return raw_status(s, VFU_CMD_DMA_MAP, &d, sizeof(d), fds, nfds);
}

static int set_irqs(int s, uint32_t flags, uint32_t index, uint32_t start, uint32_t count,
                    const int *fds, unsigned nfds)
{
    struct vfu_irq_set q = { sizeof(q), flags, index, start, count };
    return raw_status(s, VFU_CMD_DEVICE_SET_IRQS, &q, sizeof(q), fds, nfds);
}

static int ioev(int s, uint32_t flags, uint32_t region, uint32_t rsvd, uint64_t off, const int *fds,
                unsigned nfds)
{
    struct vfu_vfe_ioeventfd e = { sizeof(e), flags, region, rsvd, off, 0 };
    return raw_status(s, VFU_CMD_VFE_IOEVENTFD, &e, sizeof(e), fds, nfds);
}

int vfu_check_fresh_client(const char *sock_path, uint16_t vendor, uint16_t device)
{
    int s = raw_connect_version(sock_path);
    if (s < 0)
        return -1;
    uint16_t id[2] = { 0, 0 };
    int rc = raw_region_read(s, VFIO_PCI_CONFIG_REGION_INDEX, 0, id, 4);
    close(s);
    if (rc != 0 || id[0] != vendor || id[1] != device) {
        fprintf(stderr, "fresh client on %s: rc %d id %04x:%04x\n", sock_path, rc, id[0], id[1]);
        return -1;
    }
    return 0;
}

/* A desyncing message on a fresh connection must make the server close it. */
static void expect_close_after(const char *path, const char *what, const void *bytes, size_t len,
                               bool shut_wr)
{
    int s = raw_connect_version(path);
    CHECK(s >= 0, "%s: connect", what);
    if (s < 0)
        return;
    CHECK(raw_send_bytes(s, bytes, len, NULL, 0) == 0, "%s: send", what);
    if (shut_wr)
        shutdown(s, SHUT_WR);
    CHECK(raw_wait_closed(s, 2000) == 0, "%s: server did not close", what);
    close(s);
}

int vfu_bad_input_battery(const char *path, unsigned nvec)
{
    int failures_before = check_failures;
    int mfd = memfd_create("vfu-battery", MFD_CLOEXEC);
    CHECK(mfd >= 0 && ftruncate(mfd, 0x10000) == 0, "memfd");
    int ev = eventfd(0, EFD_CLOEXEC);
    int two[2] = { mfd, mfd };

    int s = raw_connect(path);
    CHECK(s >= 0, "connect %s", path);
    if (s < 0)
        return check_failures - failures_before;

    /* before VERSION nothing else is served */
    struct vfu_device_info di = { .argsz = sizeof(di) };
    EXPECT_ERR("GET_INFO before VERSION", raw_status(s, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0), EINVAL);
    EXPECT_ERR("VERSION", raw_version(s), 0);
    EXPECT_ERR("second VERSION", raw_version(s), EINVAL);
    EXPECT_ERR("VERSION payload 3 bytes", raw_status(s, VFU_CMD_VERSION, "\0\0\1", 3, NULL, 0), EINVAL);

    /* a second client is refused while this one is connected */
    int s2 = raw_connect(path);
    CHECK(s2 >= 0, "second connect");
    if (s2 >= 0) {
        CHECK(raw_wait_closed(s2, 2000) == 0, "second client not closed");
        close(s2);
    }

    /* DMA_MAP */
    const uint32_t rw = VFU_DMA_F_READ | VFU_DMA_F_WRITE;
    EXPECT_ERR("DMA_MAP good", dma_map(s, 0x100000, 0x8000, 0, rw, &mfd, 1, 32), 0);
    int rc = dma_map(s, 0x104000, 0x8000, 0x8000, rw, &mfd, 1, 32);
    CHECK(rc > 0, "DMA_MAP overlapping: got %d, want an error", rc);
    rc = dma_map(s, 0x100000, 0x8000, 0, rw, &mfd, 1, 32);
    CHECK(rc > 0, "DMA_MAP identical again: got %d, want an error", rc);
    EXPECT_ERR("DMA_MAP beyond fd", dma_map(s, 0x200000, 0x20000, 0, rw, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP offset beyond fd", dma_map(s, 0x200000, 0x1000, 0x10000, rw, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP unaligned iova", dma_map(s, 0x300100, 0x1000, 0, rw, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP unaligned size", dma_map(s, 0x300000, 0x1001, 0, rw, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP unaligned offset", dma_map(s, 0x300000, 0x1000, 0x10, rw, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP size 0", dma_map(s, 0x300000, 0, 0, rw, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP iova overflow", dma_map(s, 0xfffffffffffff000ull, 0x2000, 0, rw, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP offset overflow", dma_map(s, 0x300000, 0x2000, 0xfffffffffffff000ull, rw, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP no fd", dma_map(s, 0x300000, 0x1000, 0, rw, NULL, 0, 32), EINVAL);
    EXPECT_ERR("DMA_MAP two fds", dma_map(s, 0x300000, 0x1000, 0, rw, two, 2, 32), EINVAL);
    EXPECT_ERR("DMA_MAP argsz", dma_map(s, 0x300000, 0x1000, 0, rw, &mfd, 1, 16), EINVAL);
    EXPECT_ERR("DMA_MAP flags 0", dma_map(s, 0x300000, 0x1000, 0, 0, &mfd, 1, 32), EINVAL);
    EXPECT_ERR("DMA_MAP flags 4", dma_map(s, 0x300000, 0x1000, 0, 4, &mfd, 1, 32), EINVAL);
    struct vfu_dma_map half = { 32, rw, 0, 0x300000, 0x1000 };
    EXPECT_ERR("DMA_MAP short payload", raw_status(s, VFU_CMD_DMA_MAP, &half, 20, &mfd, 1), EINVAL);
    struct vfu_dma_unmap um = { 24, 0, 0x500000, 0x1000 };
    rc = raw_status(s, VFU_CMD_DMA_UNMAP, &um, sizeof(um), NULL, 0);
    CHECK(rc > 0, "DMA_UNMAP of nothing: got %d, want an error", rc);
    um.flags = 2;
    EXPECT_ERR("DMA_UNMAP flags", raw_status(s, VFU_CMD_DMA_UNMAP, &um, sizeof(um), NULL, 0), EINVAL);

    /* SET_IRQS */
    const uint32_t evt = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    int evs[3] = { ev, ev, ev };
    EXPECT_ERR("SET_IRQS good", set_irqs(s, evt, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, evs, 2), 0);
    EXPECT_ERR("SET_IRQS 2 fds for 3", set_irqs(s, evt, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, evs, 2), EINVAL);
    EXPECT_ERR("SET_IRQS 3 fds for 2", set_irqs(s, evt, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, evs, 3), EINVAL);
    EXPECT_ERR("SET_IRQS start overflow", set_irqs(s, evt, VFIO_PCI_MSIX_IRQ_INDEX, 0xffffffffu, 2, evs, 2), EINVAL);
    EXPECT_ERR("SET_IRQS beyond vectors", set_irqs(s, evt, VFIO_PCI_MSIX_IRQ_INDEX, nvec - 1, 2, evs, 2), EINVAL);
    EXPECT_ERR("SET_IRQS INTx", set_irqs(s, evt, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, evs, 1), EINVAL);
    EXPECT_ERR("SET_IRQS index 99", set_irqs(s, evt, 99, 0, 1, evs, 1), EINVAL);
    EXPECT_ERR("SET_IRQS mask action", set_irqs(s, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK,
                                                VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, evs, 1), EINVAL);
    EXPECT_ERR("SET_IRQS DATA_NONE with fd", set_irqs(s, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                                      VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, evs, 1), EINVAL);
    EXPECT_ERR("SET_IRQS detach", set_irqs(s, evt, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, NULL, 0), 0);
    EXPECT_ERR("SET_IRQS disable all", set_irqs(s, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                                VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL, 0), 0);

    /* regions */
    struct vfu_region_info ri = { .argsz = 32, .index = 99 };
    EXPECT_ERR("REGION_INFO index 99", raw_status(s, VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0), EINVAL);
    EXPECT_ERR("REGION_INFO short", raw_status(s, VFU_CMD_DEVICE_GET_REGION_INFO, &ri, 8, NULL, 0), EINVAL);
    ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
    EXPECT_ERR("REGION_INFO with fd", raw_status(s, VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), &ev, 1), EINVAL);
    uint8_t buf[16] = { 0 };
    EXPECT_ERR("READ region 99", raw_region_read(s, 99, 0, buf, 4), EINVAL);
    EXPECT_ERR("READ absent BAR2", raw_region_read(s, 2, 0, buf, 4), EINVAL);
    EXPECT_ERR("READ beyond config", raw_region_read(s, VFIO_PCI_CONFIG_REGION_INDEX, 4090, buf, 8), EINVAL);
    EXPECT_ERR("READ at config end", raw_region_read(s, VFIO_PCI_CONFIG_REGION_INDEX, 4096, buf, 1), EINVAL);
    EXPECT_ERR("READ offset overflow", raw_region_read(s, VFIO_PCI_CONFIG_REGION_INDEX, 0xfffffffffffffffcull, buf, 8), EINVAL);
    EXPECT_ERR("READ count 0", raw_region_read(s, VFIO_PCI_CONFIG_REGION_INDEX, 0, buf, 0), EINVAL);
    struct vfu_region_access big = { 0, 0, VFU_MAX_DATA_XFER + 1 };
    EXPECT_ERR("READ count > max", raw_status(s, VFU_CMD_REGION_READ, &big, sizeof(big), NULL, 0), EINVAL);
    struct { struct vfu_region_access a; uint8_t d[4]; } __attribute__((packed)) wr = {
        { 0x40, VFIO_PCI_CONFIG_REGION_INDEX, 8 }, { 0 } };
    EXPECT_ERR("WRITE count > data", raw_status(s, VFU_CMD_REGION_WRITE, &wr, sizeof(wr), NULL, 0), EINVAL);
    wr.a.count = 4;
    wr.a.offset = 4094;
    EXPECT_ERR("WRITE beyond config", raw_status(s, VFU_CMD_REGION_WRITE, &wr, sizeof(wr), NULL, 0), EINVAL);

    /* vendor ioeventfd */
    EXPECT_ERR("IOEVENTFD rsvd", ioev(s, 2, 0, 1, 0x3000, &ev, 1), EINVAL);
    EXPECT_ERR("IOEVENTFD size 3", ioev(s, 3, 0, 0, 0x3000, &ev, 1), EINVAL);
    EXPECT_ERR("IOEVENTFD no fd", ioev(s, 2, 0, 0, 0x3000, NULL, 0), EINVAL);
    EXPECT_ERR("IOEVENTFD deassign with fd", ioev(s, 2 | VFE_IOEVENTFD_DEASSIGN, 0, 0, 0x3000, &ev, 1), EINVAL);
    EXPECT_ERR("IOEVENTFD bad flag", ioev(s, 2 | (1u << 20), 0, 0, 0x3000, &ev, 1), EINVAL);
    EXPECT_ERR("IOEVENTFD config region", ioev(s, 2, VFIO_PCI_CONFIG_REGION_INDEX, 0, 0x10, &ev, 1), EINVAL);
    EXPECT_ERR("IOEVENTFD beyond BAR", ioev(s, 2, 0, 0, 0xfffffffffffffffeull, &ev, 1), EINVAL);

    /* misc */
    EXPECT_ERR("unknown command", raw_status(s, 0x1234, NULL, 0, NULL, 0), ENOSYS);
    EXPECT_ERR("REGION_IO_FDS", raw_status(s, VFU_CMD_DEVICE_GET_REGION_IO_FDS, NULL, 0, NULL, 0), ENOSYS);
    EXPECT_ERR("RESET with payload", raw_status(s, VFU_CMD_DEVICE_RESET, buf, 4, NULL, 0), EINVAL);
    EXPECT_ERR("GET_INFO with fd", raw_status(s, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), &ev, 1), EINVAL);
    di.argsz = 8;
    EXPECT_ERR("GET_INFO small argsz", raw_status(s, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0), EINVAL);
    int many[VFU_MAX_MSG_FDS + 1];
    for (unsigned i = 0; i < VFU_MAX_MSG_FDS + 1; i++)
        many[i] = ev;
    struct vfu_hdr h = { .msg_id = 1, .cmd = VFU_CMD_DEVICE_SET_IRQS, .size = 16 + 20 };
    struct { struct vfu_hdr h; struct vfu_irq_set q; } __attribute__((packed)) toomany = {
        h, { 20, evt, VFIO_PCI_MSIX_IRQ_INDEX, 0, VFU_MAX_MSG_FDS + 1 } };
    CHECK(raw_send_bytes(s, &toomany, sizeof(toomany), many, VFU_MAX_MSG_FDS + 1) == 0, "send too many fds");
    struct vfu_reader r;
    vfu_reader_init(&r);
    struct vfu_msg m;
    rc = vfu_msg_recv(&r, s, &m, 2000);
    CHECK(rc == VFU_RD_MSG && (m.hdr.flags & VFU_F_ERROR) && m.hdr.error == EINVAL,
          "too many fds: rc %d flags %#x error %u", rc, rc == VFU_RD_MSG ? m.hdr.flags : 0,
          rc == VFU_RD_MSG ? m.hdr.error : 0);
    if (rc == VFU_RD_MSG)
        vfu_msg_free(&m);

    /* the connection still works after all that */
    uint16_t id[2] = { 0, 0 };
    EXPECT_ERR("read after errors", raw_region_read(s, VFIO_PCI_CONFIG_REGION_INDEX, 0, id, 4), 0);

    /* size field larger than what is sent: the server waits, then sees EOF mid-message */
    struct vfu_hdr lie = { .msg_id = 2, .cmd = VFU_CMD_REGION_READ, .size = 16 + 64 };
    uint8_t lie_buf[16 + 16] = { 0 };
    memcpy(lie_buf, &lie, 16);
    CHECK(raw_send_bytes(s, lie_buf, sizeof(lie_buf), NULL, 0) == 0, "send lie");
    shutdown(s, SHUT_WR);
    CHECK(raw_wait_closed(s, 2000) == 0, "size-lie: server did not close");
    close(s);

    /* the same function takes a new client, and the old DMA map is gone */
    s = raw_connect_version(path);
    CHECK(s >= 0, "reconnect");
    EXPECT_ERR("DMA_MAP after reconnect", dma_map(s, 0x100000, 0x8000, 0, rw, &mfd, 1, 32), 0);
    close(s);

    struct vfu_hdr over = { .msg_id = 3, .cmd = VFU_CMD_REGION_WRITE, .size = VFU_MAX_MSG_SIZE + 1 };
    expect_close_after(path, "oversized size field", &over, sizeof(over), false);
    struct vfu_hdr under = { .msg_id = 4, .cmd = VFU_CMD_DEVICE_RESET, .size = 8 };
    expect_close_after(path, "size below header", &under, sizeof(under), false);
    expect_close_after(path, "short header", &under, 6, true);

    close(ev);
    close(mfd);
    return check_failures - failures_before;
}
