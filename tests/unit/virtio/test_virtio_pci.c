/* Unit tests of the modern virtio-pci driver against a fake device. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <cmocka.h>

#include "drivers/common/virtio/vfe_virtio_pci.h"
#include "tests/unit/virtio/fake_vdev.h"

static struct fake_vdev D;
static struct vfe_virtio_pci VP;

static int setup(void **state)
{
    fv_init(&D, 4, 256);
    return 0;
}

static int teardown(void **state)
{
    fv_fini(&D);
    return 0;
}

static int init(void)
{
    return vfe_vpci_init(&VP, &D.t);
}

/* ---- capability walk ---- */

static void test_walk_finds_windows(void **state)
{
    assert_int_equal(init(), 0);
    assert_int_equal(VP.vendor_id, 0x1af4);
    assert_int_equal(VP.device_id, 0x1041);
    assert_true(VP.common.present);
    assert_int_equal(VP.common.bar, 0);
    assert_int_equal(VP.common.offset, FV_COMMON);
    assert_int_equal(VP.common.length, 64);
    assert_true(VP.notify.present);
    assert_int_equal(VP.notify.offset, FV_NOTIFY);
    assert_int_equal(VP.notify.length, FV_NQ * FV_NOTIFY_MULT);
    assert_int_equal(VP.notify_off_multiplier, FV_NOTIFY_MULT);
    assert_true(VP.isr.present);
    assert_int_equal(VP.isr.offset, FV_ISR);
    assert_true(VP.device.present);
    assert_int_equal(VP.device.offset, FV_DEVICE);
    assert_int_equal(VP.msix_cap, FV_CAP_MSIX);
    assert_int_equal(VP.msix_vectors, FV_MSIX_VECTORS);
    assert_int_equal(VP.sriov_cap, FV_EXT_SRIOV);   /* found behind AER */
    assert_int_equal(VP.num_queues, 4);
}

static void test_walk_without_ext_space(void **state)
{
    D.cfg_size = 256;
    assert_int_equal(init(), 0);
    assert_int_equal(VP.sriov_cap, 0);
    fv_put32(D.cfg + FV_EXT_AER, 0);   /* 4 KiB space, empty extended list */
    D.cfg_size = 4096;
    assert_int_equal(init(), 0);
    assert_int_equal(VP.sriov_cap, 0);
}

static void test_no_cap_list(void **state)
{
    fv_put16(D.cfg + PCI_STATUS, 0);
    assert_int_equal(init(), -ENODEV);
}

static void test_no_device(void **state)
{
    fv_put16(D.cfg + PCI_VENDOR_ID, 0xffff);
    assert_int_equal(init(), -ENODEV);
}

static void test_pointer_loop(void **state)
{
    D.cfg[FV_CAP_DEVICE + 1] = FV_CAP_NOTIFY;     /* device -> notify -> isr -> device ... */
    assert_int_equal(init(), -ENODEV);
    fv_init(&D, 4, 256);
    D.cfg[FV_CAP_COMMON + 1] = FV_CAP_COMMON;     /* points at itself */
    assert_int_equal(init(), -ENODEV);
}

static void test_pointer_out_of_range(void **state)
{
    D.cfg[FV_CAP_ISR + 1] = 0x10;                 /* into the header */
    assert_int_equal(init(), -ENODEV);
    fv_init(&D, 4, 256);
    D.cfg[PCI_CAPABILITY_LIST] = 0x3c;
    assert_int_equal(init(), -ENODEV);
}

static void test_cap_running_off_config_space(void **state)
{
    /* the last capability claims 16 bytes at 0xf8: skipped, so no device window */
    D.cfg[FV_CAP_ISR + 1] = 0xf8;
    fv_vendor_cap(&D, 0xf8, 0, VIRTIO_PCI_CAP_DEVICE_CFG, 16, 0, FV_DEVICE, 64);
    assert_int_equal(init(), -ENODEV);
}

static void test_window_outside_bar(void **state)
{
    fv_vendor_cap(&D, FV_CAP_COMMON, FV_CAP_NOTIFY, VIRTIO_PCI_CAP_COMMON_CFG, 16, 0, FV_BAR0_SIZE - 32, 64);
    assert_int_equal(init(), -ENODEV);
    fv_init(&D, 4, 256);
    fv_vendor_cap(&D, FV_CAP_DEVICE, FV_CAP_PCICFG, VIRTIO_PCI_CAP_DEVICE_CFG, 16, 0, 0xffffffe0u, 0x40);
    assert_int_equal(init(), -ENODEV);           /* offset + length wraps 32 bits */
    fv_init(&D, 4, 256);
    fv_vendor_cap(&D, FV_CAP_DEVICE, FV_CAP_PCICFG, VIRTIO_PCI_CAP_DEVICE_CFG, 16, 3, 0, 64);
    assert_int_equal(init(), -ENODEV);           /* BAR3 does not exist */
    fv_init(&D, 4, 256);
    fv_vendor_cap(&D, FV_CAP_NOTIFY, FV_CAP_ISR, VIRTIO_PCI_CAP_NOTIFY_CFG, 20, 0, FV_NOTIFY, 0);
    fv_put32(D.cfg + FV_CAP_NOTIFY + 16, FV_NOTIFY_MULT);
    assert_int_equal(init(), -ENODEV);           /* empty window */
}

static void test_bad_notify_cap(void **state)
{
    fv_put32(D.cfg + FV_CAP_NOTIFY + 16, 3);      /* multiplier not a power of two */
    assert_int_equal(init(), -ENODEV);
    fv_init(&D, 4, 256);
    D.cfg[FV_CAP_NOTIFY + 2] = 16;                /* too short for the multiplier */
    assert_int_equal(init(), -ENODEV);
    fv_init(&D, 4, 256);
    D.cfg[FV_CAP_COMMON + 2] = 8;                 /* shorter than struct virtio_pci_cap */
    assert_int_equal(init(), -ENODEV);
}

static void test_fallback_to_second_cap(void **state)
{
    /* first common cap is bad, a second good one follows (the spec's order of preference) */
    fv_vendor_cap(&D, FV_CAP_COMMON, FV_CAP_NOTIFY, VIRTIO_PCI_CAP_COMMON_CFG, 16, 0, FV_BAR0_SIZE, 64);
    D.cfg[FV_CAP_PCICFG + 1] = 0xc0;
    fv_vendor_cap(&D, 0xc0, FV_CAP_MSIX, VIRTIO_PCI_CAP_COMMON_CFG, 16, 0, FV_COMMON, 64);
    assert_int_equal(init(), 0);
    assert_int_equal(VP.common.offset, FV_COMMON);
    /* and a reserved BAR value means "ignore" */
    fv_vendor_cap(&D, FV_CAP_COMMON, FV_CAP_NOTIFY, VIRTIO_PCI_CAP_COMMON_CFG, 16, 7, 0x100, 64);
    assert_int_equal(init(), 0);
    assert_int_equal(VP.common.offset, FV_COMMON);
}

static void test_ext_cap_malformed(void **state)
{
    fv_put32(D.cfg + FV_EXT_SRIOV, PCI_EXT_CAP_ID_SRIOV | 1u << 16 | (uint32_t)FV_EXT_AER << 20);
    assert_int_equal(init(), -ENODEV);             /* AER -> SR-IOV -> AER */
    fv_init(&D, 4, 256);
    fv_put32(D.cfg + FV_EXT_AER, PCI_EXT_CAP_ID_ERR | 1u << 16 | 0x80u << 20);
    assert_int_equal(init(), -ENODEV);             /* next pointer below 0x100 */
}

/* ---- status, features ---- */

static void test_negotiate(void **state)
{
    D.dev_features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_ACCESS_PLATFORM | 1ull << 5;
    assert_int_equal(init(), 0);
    uint64_t f = 0;
    assert_int_equal(vfe_vpci_get_features(&VP, &f), 0);
    assert_int_equal(f, D.dev_features);
    assert_int_equal(vfe_vpci_add_status(&VP, VIRTIO_CONFIG_S_ACKNOWLEDGE), 0);
    assert_int_equal(vfe_vpci_add_status(&VP, VIRTIO_CONFIG_S_DRIVER), 0);
    uint64_t want = 1ull << VIRTIO_F_VERSION_1 | 1ull << 5;
    assert_int_equal(vfe_vpci_negotiate(&VP, want), 0);
    assert_int_equal(D.drv_features, want);
    assert_int_equal(D.status, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    uint8_t st;
    assert_int_equal(vfe_vpci_get_status(&VP, &st), 0);
    assert_int_equal(st, D.status);
}

static void test_negotiate_refused(void **state)
{
    assert_int_equal(init(), 0);
    D.refuse_features = true;
    assert_int_equal(vfe_vpci_negotiate(&VP, 1ull << VIRTIO_F_VERSION_1), -EIO);
    assert_false(D.status & VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_negotiate_unoffered(void **state)
{
    assert_int_equal(init(), 0);
    unsigned before = D.nlog;
    assert_int_equal(vfe_vpci_negotiate(&VP, 1ull << VIRTIO_F_VERSION_1 | 1ull << 7), -EINVAL);
    assert_int_equal(fv_find_write(&D, VFE_CC_STATUS, before), -1);   /* FEATURES_OK never written */
}

static void test_reset_wait(void **state)
{
    assert_int_equal(init(), 0);
    vfe_vpci_set_status(&VP, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    assert_int_equal(vfe_vpci_reset(&VP), 0);
    bool done = false;
    assert_int_equal(vfe_vpci_reset_done(&VP, &done), 0);
    assert_true(done);
    assert_int_equal(vfe_vpci_reset_wait(&VP, 100), 0);

    D.reset_stuck = true;
    assert_int_equal(vfe_vpci_reset(&VP), 0);
    assert_int_equal(vfe_vpci_reset_done(&VP, &done), 0);
    assert_false(done);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(vfe_vpci_reset_wait(&VP, 50), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 50 && ms < 1000);
}

/* ---- queues ---- */

static void test_queue_setup_registers(void **state)
{
    assert_int_equal(init(), 0);
    uint16_t max = 0;
    assert_int_equal(vfe_vpci_queue_max(&VP, 2, &max), 0);
    assert_int_equal(max, 256);
    unsigned from = D.nlog;
    uint64_t desc = 0x1234500000ull, avail = 0x1234501000ull, used = 0x1234502000ull;
    assert_int_equal(vfe_vpci_queue_setup(&VP, 2, 128, desc, avail, used, 3), 0);
    struct fv_queue *q = &D.q[2];
    assert_int_equal(q->size, 128);
    assert_int_equal(q->desc, desc);
    assert_int_equal(q->avail, avail);
    assert_int_equal(q->used, used);
    assert_int_equal(q->msix, 3);
    assert_int_equal(q->enable, 0);
    /* queue_select came first and the addresses went in 32-bit halves */
    assert_int_equal(D.log[from].off, VFE_CC_Q_SELECT);
    assert_int_equal(D.log[from].val, 2);
    int hi = fv_find_write(&D, VFE_CC_Q_DESCHI, from);
    assert_true(hi > 0);
    assert_int_equal(D.log[hi].len, 4);
    assert_int_equal(D.log[hi].val, 0x12);
    assert_int_equal(vfe_vpci_queue_enable(&VP, 2), 0);
    assert_int_equal(q->enable, 1);
    assert_int_equal(D.q[1].enable, 0);
    /* an enabled queue cannot be reprogrammed */
    assert_int_equal(vfe_vpci_queue_setup(&VP, 2, 128, desc, avail, used, 3), -EBUSY);
}

static void test_queue_setup_errors(void **state)
{
    assert_int_equal(init(), 0);
    assert_int_equal(vfe_vpci_queue_setup(&VP, 0, 512, 0x1000, 0x2000, 0x3000, 1), -EINVAL);
    assert_int_equal(vfe_vpci_queue_setup(&VP, 0, 100, 0x1000, 0x2000, 0x3000, 1), -EINVAL);
    assert_int_equal(vfe_vpci_queue_setup(&VP, 0, 0, 0x1000, 0x2000, 0x3000, 1), -EINVAL);
    assert_int_equal(vfe_vpci_queue_setup(&VP, 0, 64, 0x1008, 0x2000, 0x3000, 1), -EINVAL);
    assert_int_equal(vfe_vpci_queue_setup(&VP, 5, 64, 0x1000, 0x2000, 0x3000, 1), -ENOENT);
    /* a vector beyond the device's table reads back as NO_VECTOR */
    assert_int_equal(vfe_vpci_queue_setup(&VP, 0, 64, 0x1000, 0x2000, 0x3000, FV_MSIX_VECTORS), -ENOSPC);
    assert_int_equal(vfe_vpci_queue_setup(&VP, 0, 64, 0x1000, 0x2000, 0x3000, VFE_VIRTIO_MSI_NO_VECTOR), 0);
    assert_int_equal(vfe_vpci_set_config_vector(&VP, 0), 0);
    assert_int_equal(D.msix_config, 0);
    assert_int_equal(vfe_vpci_set_config_vector(&VP, 200), -ENOSPC);
}

static uint16_t notified = 0xffff;
static void on_notify(struct fake_vdev *d, uint16_t q)
{
    notified = q;
}

static void test_queue_notify(void **state)
{
    assert_int_equal(init(), 0);
    uint32_t region = 99;
    uint64_t off = 0;
    /* cached at init: no queue_select write (nor any device access) on the way */
    unsigned writes = D.nlog;
    D.q[3].notify_off = 7;   /* changed behind the cache: not seen */
    assert_int_equal(vfe_vpci_queue_notify_addr(&VP, 3, &region, &off), 0);
    assert_int_equal(D.nlog, writes);
    assert_int_equal(region, 0);
    assert_int_equal(off, FV_NOTIFY + 3 * FV_NOTIFY_MULT);
    D.q[3].notify_off = 3;
    D.on_notify = on_notify;
    assert_int_equal(vfe_vpci_queue_notify(&VP, 3), 0);
    assert_int_equal(notified, 3);
    assert_int_equal(D.q[3].notifies, 1);
    /* a queue_notify_off beyond the notify window (as read at init) */
    D.q[1].notify_off = FV_NQ;
    assert_int_equal(init(), 0);
    assert_int_equal(vfe_vpci_queue_notify_addr(&VP, 1, &region, &off), -ERANGE);
    /* multiplier 0: every queue shares one doorbell */
    fv_put32(D.cfg + FV_CAP_NOTIFY + 16, 0);
    assert_int_equal(init(), 0);
    assert_int_equal(vfe_vpci_queue_notify_addr(&VP, 1, &region, &off), 0);
    assert_int_equal(off, FV_NOTIFY);
}

/* ---- device config, MSI-X, admin queue ---- */

static void test_device_cfg(void **state)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };
    memcpy(D.devcfg, mac, 6);
    assert_int_equal(init(), 0);
    uint8_t got[6] = { 0 };
    assert_int_equal(vfe_vpci_read_device_cfg(&VP, 0, got, 6), 0);
    assert_memory_equal(got, mac, 6);
    assert_int_equal(vfe_vpci_read_device_cfg(&VP, 60, got, 6), -ERANGE);
    assert_int_equal(vfe_vpci_read_device_cfg(&VP, 0xfffffffeu, got, 6), -ERANGE);
    assert_int_equal(vfe_vpci_write_device_cfg(&VP, 62, got, 4), -ERANGE);
    D.gen_unstable = true;
    assert_int_equal(vfe_vpci_read_device_cfg(&VP, 0, got, 6), -EAGAIN);
}

static void test_msix_enable(void **state)
{
    assert_int_equal(init(), 0);
    fv_put16(D.cfg + FV_CAP_MSIX + PCI_MSIX_FLAGS, (FV_MSIX_VECTORS - 1) | PCI_MSIX_FLAGS_MASKALL);
    assert_int_equal(vfe_vpci_msix_enable(&VP), 0);
    uint16_t ctrl = (uint16_t)(D.cfg[FV_CAP_MSIX + 2] | D.cfg[FV_CAP_MSIX + 3] << 8);
    assert_int_equal(ctrl, (FV_MSIX_VECTORS - 1) | PCI_MSIX_FLAGS_ENABLE);

    D.cfg[FV_CAP_PCICFG + 1] = 0;   /* list ends before MSI-X */
    assert_int_equal(init(), 0);
    assert_int_equal(VP.msix_vectors, 0);
    assert_int_equal(vfe_vpci_msix_enable(&VP), -ENOTSUP);
}

static void test_admin_queue(void **state)
{
    assert_int_equal(init(), 0);
    uint16_t idx = 0, num = 0;
    assert_int_equal(vfe_vpci_admin_queue(&VP, &idx, &num), 0);
    assert_int_equal(idx, 7);
    assert_int_equal(num, 1);
    fv_vendor_cap(&D, FV_CAP_COMMON, FV_CAP_NOTIFY, VIRTIO_PCI_CAP_COMMON_CFG, 16, 0, FV_COMMON, 56);
    assert_int_equal(init(), 0);
    assert_int_equal(vfe_vpci_admin_queue(&VP, &idx, &num), -ENOTSUP);
}

static void test_enable_bus_master(void **state)
{
    assert_int_equal(init(), 0);
    assert_int_equal(vfe_vpci_enable_bus_master(&VP), 0);
    uint16_t cmd = (uint16_t)(D.cfg[PCI_COMMAND] | D.cfg[PCI_COMMAND + 1] << 8);
    assert_int_equal(cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_walk_finds_windows),
        T(test_walk_without_ext_space),
        T(test_no_cap_list),
        T(test_no_device),
        T(test_pointer_loop),
        T(test_pointer_out_of_range),
        T(test_cap_running_off_config_space),
        T(test_window_outside_bar),
        T(test_bad_notify_cap),
        T(test_fallback_to_second_cap),
        T(test_ext_cap_malformed),
        T(test_negotiate),
        T(test_negotiate_refused),
        T(test_negotiate_unoffered),
        T(test_reset_wait),
        T(test_queue_setup_registers),
        T(test_queue_setup_errors),
        T(test_queue_notify),
        T(test_device_cfg),
        T(test_msix_enable),
        T(test_admin_queue),
        T(test_enable_bus_master),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
