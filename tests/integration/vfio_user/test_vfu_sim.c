/*
 * vfio-user against the real vfe-dpu-sim (--pf 0000:3b:00.0 --vfs 2):
 *  1. the vfe client: config space ids, region info, DMA map of a memfd,
 *     MSI-X eventfds, ioeventfd on the queue-0 doorbell found through the
 *     virtio PCI capabilities, reset;
 *  2. bad input on VF 1 (tests/unit/vfio_user/vfu_battery.c), then a fresh
 *     client on VF 2 and on VF 1, and the sim is still alive.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "sim/sim.h"
#include "tests/lib/check.h"
#include "tests/lib/sim_proc.h"
#include "tests/unit/vfio_user/vfu_battery.h"


struct vcap { bool found; uint8_t bar; uint32_t off, len, mult; };

/* Walk the PCI capability list for a virtio vendor capability of cfg_type. */
static struct vcap find_vcap(struct vfe_transport *t, uint8_t type)
{
    struct vcap c = { 0 };
    uint8_t ptr = 0;
    if (vfe_cfg_read(t, PCI_CAPABILITY_LIST, &ptr, 1) < 0)
        return c;
    for (int guard = 0; ptr >= 0x40 && guard < 48; guard++) {
        uint8_t h[20];
        if (vfe_cfg_read(t, ptr, h, sizeof(h)) < 0)
            break;
        if (h[0] == 0x09 && h[3] == type) {   /* vendor-specific, virtio cfg_type */
            c.found = true;
            c.bar = h[4];
            memcpy(&c.off, h + 8, 4);
            memcpy(&c.len, h + 12, 4);
            if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
                memcpy(&c.mult, h + 16, 4);
            return c;
        }
        ptr = h[1];
    }
    return c;
}

static void test_client(const struct sim_proc *sp)
{
    struct vfe_transport *t = NULL;
    int rc = vfe_transport_open(sp->root, "0000:3b:00.1", &t);
    CHECK(rc == 0, "open VF 1: %d", rc);
    if (rc)
        return;
    uint16_t id[2] = { 0, 0 };
    CHECK(vfe_cfg_read(t, 0, id, 4) == 0 && id[0] == 0x1af4 && id[1] == 0x1041, "ids %04x:%04x", id[0], id[1]);

    struct vfe_region_info ri;
    CHECK(t->ops->region_info(t, VFE_REGION_CONFIG, &ri) == 0 && ri.size == 4096, "config size %lu",
          (unsigned long)ri.size);
    CHECK(t->ops->region_info(t, 0, &ri) == 0 && ri.size > 0 &&
          (ri.flags & VFIO_REGION_INFO_FLAG_READ), "BAR0 size %lu", (unsigned long)ri.size);
    CHECK(t->ops->region_info(t, 2, &ri) == 0 && ri.size == 0, "BAR2 size %lu", (unsigned long)ri.size);
    CHECK(t->ops->region_info(t, 99, &ri) == -EINVAL, "region 99");
    uint8_t b[8];
    CHECK(vfe_cfg_read(t, 4092, b, 8) == -EINVAL, "read past config end");

    struct guest_mem gm;
    CHECK(guest_mem_create(&gm, 1 << 20) == 0, "guest mem");
    rc = t->ops->dma_map(t, 0x10000000, 1 << 20, gm.fd, 0, VFE_DMA_READ | VFE_DMA_WRITE);
    CHECK(rc == 0, "dma_map: %d", rc);
    rc = t->ops->dma_map(t, 0x10000000 + 0x1000, 0x1000, gm.fd, 0, VFE_DMA_READ);
    CHECK(rc < 0, "overlapping dma_map: %d", rc);

    int ev[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
    rc = t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, ev);
    CHECK(rc == 0, "set_irqs: %d", rc);

    /* queue 0's doorbell: notify cap offset + queue_notify_off * multiplier */
    struct vcap common = find_vcap(t, VIRTIO_PCI_CAP_COMMON_CFG);
    struct vcap notify = find_vcap(t, VIRTIO_PCI_CAP_NOTIFY_CFG);
    CHECK(common.found && notify.found, "virtio caps common %d notify %d", common.found, notify.found);
    if (common.found && notify.found) {
        uint16_t q = 0, qnoff = 0xffff;
        CHECK(t->ops->region_write(t, common.bar, common.off + VIRTIO_PCI_COMMON_Q_SELECT, &q, 2) == 0, "queue_select");
        CHECK(t->ops->region_read(t, common.bar, common.off + VIRTIO_PCI_COMMON_Q_NOFF, &qnoff, 2) == 0, "notify_off");
        uint64_t addr = notify.off + (uint64_t)qnoff * notify.mult;
        int kick = eventfd(0, EFD_CLOEXEC);
        rc = t->ops->ioeventfd(t, notify.bar, addr, 2, 0, kick);
        CHECK(rc == 0, "ioeventfd at bar %u %#lx: %d", notify.bar, (unsigned long)addr, rc);
        rc = t->ops->ioeventfd(t, notify.bar, addr, 2, 0, -1);
        CHECK(rc == 0, "ioeventfd deassign: %d", rc);
        close(kick);
    }

    CHECK(t->ops->reset(t) == 0, "reset");
    CHECK(t->ops->dma_unmap(t, 0x10000000, 1 << 20) == 0, "dma_unmap");
    vfe_transport_close(t);
    close(ev[0]);
    close(ev[1]);
    guest_mem_destroy(&gm);

    /* a directory without a socket is not a vfio-user function */
    CHECK(vfe_transport_open(sp->root, "0000:3b:07.7", &t) == -ENOENT, "absent function");
}

int main(void)
{
    struct sim_proc sp;
    const char *args[] = { "--pf", "0000:3b:00.0", "--vfs", "2", NULL };
    if (sim_proc_start(&sp, args) < 0)
        return 1;

    test_client(&sp);

    char p1[512], p2[512];
    sim_proc_sock(&sp, "0000:3b:00.1", p1, sizeof(p1));
    sim_proc_sock(&sp, "0000:3b:00.2", p2, sizeof(p2));
    vfu_bad_input_battery(p1, SIM_MSIX_VECTORS);
    CHECK(sim_proc_alive(&sp), "sim died during the bad-input battery");
    CHECK(vfu_check_fresh_client(p2, 0x1af4, 0x1041) == 0, "VF 2 after bad input on VF 1");
    CHECK(vfu_check_fresh_client(p1, 0x1af4, 0x1041) == 0, "VF 1 after bad input");
    CHECK(sim_proc_alive(&sp), "sim not alive at the end");

    int st = sim_proc_stop(&sp);
    CHECK(st == 0, "sim exit status %d", st);
    return check_result("vfu_sim");
}
