/* PCI configuration space of a sim function: type-0 header, the virtio
 * vendor capabilities, MSI-X, and SR-IOV on the PF. */
#include <errno.h>
#include <string.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>

#include "sim/spec/sim_virtio_spec.h"
#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static void wmask(struct sim_fn *fn, unsigned off, unsigned len, uint8_t bits)
{
    memset(fn->cfg_wmask + off, bits, len);
}

static void vendor_cap(struct sim_fn *fn, unsigned off, unsigned next, uint8_t type, uint8_t len,
                       uint8_t bar, uint32_t offset, uint32_t length)
{
    uint8_t *c = fn->cfg + off;
    c[0] = PCI_CAP_ID_VNDR;
    c[1] = (uint8_t)next;
    c[2] = len;
    c[3] = type;
    c[4] = bar;
    put32(c + 8, offset);
    put32(c + 12, length);
}

static uint32_t pow2_up(uint32_t v)
{
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

uint64_t sim_bar_size(struct sim_fn *fn, unsigned bar)
{
    if (bar == 0)
        return pow2_up(SIM_BAR0_SIZE);
    if (bar == 1)
        return SIM_BAR1_SIZE;
    return 0;
}

void sim_pci_cfg_build(struct sim_fn *fn)
{
    uint8_t *c = fn->cfg;
    memset(fn->cfg, 0, sizeof(fn->cfg));
    memset(fn->cfg_wmask, 0, sizeof(fn->cfg_wmask));
    put16(c + PCI_VENDOR_ID, SIM_VENDOR_ID);
    put16(c + PCI_DEVICE_ID, SIM_DEVICE_ID_NET);
    put16(c + PCI_COMMAND, 0);
    wmask(fn, PCI_COMMAND, 1, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    c[PCI_COMMAND + 1] = 0;
    wmask(fn, PCI_COMMAND + 1, 1, PCI_COMMAND_INTX_DISABLE >> 8);
    put16(c + PCI_STATUS, PCI_STATUS_CAP_LIST);
    c[PCI_REVISION_ID] = 1;
    c[PCI_CLASS_PROG] = 0;
    put16(c + PCI_CLASS_DEVICE, 0x0200);   /* network, ethernet */
    c[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
    for (unsigned bar = 0; bar < 2; bar++) {
        unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
        uint32_t size = (uint32_t)sim_bar_size(fn, bar);
        put32(c + off, PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_32);
        put32(fn->cfg_wmask + off, ~(size - 1) & ~0xfu);
    }
    put16(c + PCI_SUBSYSTEM_VENDOR_ID, SIM_VENDOR_ID);
    put16(c + PCI_SUBSYSTEM_ID, 1);         /* virtio device id: net */
    c[PCI_CAPABILITY_LIST] = 0x40;

    vendor_cap(fn, 0x40, 0x50, SIM_PCI_CAP_COMMON_CFG, 16, 0, SIM_BAR0_COMMON, 64);
    vendor_cap(fn, 0x50, 0x64, SIM_PCI_CAP_NOTIFY_CFG, 20, 0, SIM_BAR0_NOTIFY,
               SIM_MAX_QUEUES * SIM_NOTIFY_MULT);
    put32(c + 0x50 + 16, SIM_NOTIFY_MULT);
    vendor_cap(fn, 0x64, 0x74, SIM_PCI_CAP_ISR_CFG, 16, 0, SIM_BAR0_ISR, 1);
    vendor_cap(fn, 0x74, SIM_PCI_CFG_CAP_OFF, SIM_PCI_CAP_DEVICE_CFG, 16, 0, SIM_BAR0_DEVICE,
               sizeof(struct virtio_net_config));
    vendor_cap(fn, SIM_PCI_CFG_CAP_OFF, SIM_MSIX_CAP_OFF, SIM_PCI_CAP_PCI_CFG, 20, 0, 0, 0);
    wmask(fn, SIM_PCI_CFG_CAP_OFF + 4, 1, 0xff);    /* bar */
    wmask(fn, SIM_PCI_CFG_CAP_OFF + 8, 12, 0xff);   /* offset, length, data */

    uint8_t *m = c + SIM_MSIX_CAP_OFF;
    m[0] = PCI_CAP_ID_MSIX;
    m[1] = SIM_COUNTERS_CAP_OFF;
    put16(m + PCI_MSIX_FLAGS, SIM_MSIX_VECTORS - 1);
    fn->cfg_wmask[SIM_MSIX_CAP_OFF + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
    put32(m + PCI_MSIX_TABLE, SIM_BAR1_MSIX_TABLE | 1);
    put32(m + PCI_MSIX_PBA, SIM_BAR1_MSIX_PBA | 1);

    /* vfe's counters: a reserved cfg_type, which other virtio drivers ignore */
    vendor_cap(fn, SIM_COUNTERS_CAP_OFF, 0, SIM_PCI_CAP_VFE_COUNTERS, 16, 0, SIM_BAR0_COUNTERS, SIM_CTR_COUNT * 8);

    if (fn->is_pf) {
        struct sim_pf *pf = (struct sim_pf *)fn;
        uint8_t *s = c + SIM_SRIOV_CAP_OFF;
        put32(s, PCI_EXT_CAP_ID_SRIOV | 1u << 16);   /* version 1, last cap */
        put16(s + PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
        put16(s + PCI_SRIOV_INITIAL_VF, (uint16_t)pf->total_vfs);
        put16(s + PCI_SRIOV_TOTAL_VF, (uint16_t)pf->total_vfs);
        put16(s + PCI_SRIOV_NUM_VF, (uint16_t)pf->num_vfs);
        put16(s + PCI_SRIOV_VF_OFFSET, SIM_VF_OFFSET);
        put16(s + PCI_SRIOV_VF_STRIDE, SIM_VF_STRIDE);
        put16(s + PCI_SRIOV_VF_DID, SIM_DEVICE_ID_NET);
        put32(s + PCI_SRIOV_SUP_PGSIZE, 1);           /* 4 KiB */
        put32(s + PCI_SRIOV_SYS_PGSIZE, 1);
    }
}

void sim_pci_cfg_set_num_vfs(struct sim_fn *pf, unsigned n)
{
    put16(pf->cfg + SIM_SRIOV_CAP_OFF + PCI_SRIOV_NUM_VF, (uint16_t)n);
}

/* The virtio PCI cfg capability: a window into the BARs through config space. */
static int pci_cfg_window(struct sim_fn *fn, void *buf, size_t len, bool write)
{
    const uint8_t *cap = fn->cfg + SIM_PCI_CFG_CAP_OFF;
    uint32_t off = get32(cap + 8), wlen = get32(cap + 12);
    if (wlen != 1 && wlen != 2 && wlen != 4)
        return -EINVAL;
    if (len < wlen)
        return -EINVAL;
    return sim_bar_access(fn, cap[4], off, buf, wlen, write);
}

int sim_cfg_access(struct sim_fn *fn, uint64_t off, void *buf, size_t len, bool write)
{
    if (len == 0 || off >= sizeof(fn->cfg) || len > sizeof(fn->cfg) - off)
        return -EINVAL;
    const uint64_t data = SIM_PCI_CFG_CAP_OFF + 16;
    if (off == data && (len == 1 || len == 2 || len == 4)) {
        if (!write)
            memset(buf, 0, len);
        return pci_cfg_window(fn, buf, len, write);
    }
    if (!write) {
        memcpy(buf, fn->cfg + off, len);
        return 0;
    }
    const uint8_t *v = buf;
    for (size_t i = 0; i < len; i++) {
        uint8_t m = fn->cfg_wmask[off + i];
        fn->cfg[off + i] = (uint8_t)((fn->cfg[off + i] & ~m) | (v[i] & m));
    }
    uint16_t flags = (uint16_t)(fn->cfg[SIM_MSIX_CAP_OFF + PCI_MSIX_FLAGS] |
                                fn->cfg[SIM_MSIX_CAP_OFF + PCI_MSIX_FLAGS + 1] << 8);
    fn->msix_enabled = flags & PCI_MSIX_FLAGS_ENABLE;
    return 0;
}
