/*
 * The sim's reading of the virtio-pci interface (sim/spec) against a third,
 * independent one: the Linux uapi headers.  The admin queue layout has no
 * uapi counterpart on Debian 12; its sizes are checked by _Static_assert in
 * sim/spec/sim_admin_spec.h and its semantics by the driver-vs-sim tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "sim/spec/sim_admin_spec.h"
#include "sim/spec/sim_virtio_spec.h"

static void test_common_cfg_offsets(void **state)
{
    (void)state;
    assert_int_equal(SIM_CC_DEVICE_FEATURE_SELECT, offsetof(struct virtio_pci_common_cfg, device_feature_select));
    assert_int_equal(SIM_CC_DEVICE_FEATURE, offsetof(struct virtio_pci_common_cfg, device_feature));
    assert_int_equal(SIM_CC_DRIVER_FEATURE_SELECT, offsetof(struct virtio_pci_common_cfg, guest_feature_select));
    assert_int_equal(SIM_CC_DRIVER_FEATURE, offsetof(struct virtio_pci_common_cfg, guest_feature));
    assert_int_equal(SIM_CC_CONFIG_MSIX_VECTOR, offsetof(struct virtio_pci_common_cfg, msix_config));
    assert_int_equal(SIM_CC_NUM_QUEUES, offsetof(struct virtio_pci_common_cfg, num_queues));
    assert_int_equal(SIM_CC_DEVICE_STATUS, offsetof(struct virtio_pci_common_cfg, device_status));
    assert_int_equal(SIM_CC_CONFIG_GENERATION, offsetof(struct virtio_pci_common_cfg, config_generation));
    assert_int_equal(SIM_CC_QUEUE_SELECT, offsetof(struct virtio_pci_common_cfg, queue_select));
    assert_int_equal(SIM_CC_QUEUE_SIZE, offsetof(struct virtio_pci_common_cfg, queue_size));
    assert_int_equal(SIM_CC_QUEUE_MSIX_VECTOR, offsetof(struct virtio_pci_common_cfg, queue_msix_vector));
    assert_int_equal(SIM_CC_QUEUE_ENABLE, offsetof(struct virtio_pci_common_cfg, queue_enable));
    assert_int_equal(SIM_CC_QUEUE_NOTIFY_OFF, offsetof(struct virtio_pci_common_cfg, queue_notify_off));
    assert_int_equal(SIM_CC_QUEUE_DESC_LO, offsetof(struct virtio_pci_common_cfg, queue_desc_lo));
    assert_int_equal(SIM_CC_QUEUE_DESC_HI, offsetof(struct virtio_pci_common_cfg, queue_desc_hi));
    assert_int_equal(SIM_CC_QUEUE_DRIVER_LO, offsetof(struct virtio_pci_common_cfg, queue_avail_lo));
    assert_int_equal(SIM_CC_QUEUE_DRIVER_HI, offsetof(struct virtio_pci_common_cfg, queue_avail_hi));
    assert_int_equal(SIM_CC_QUEUE_DEVICE_LO, offsetof(struct virtio_pci_common_cfg, queue_used_lo));
    assert_int_equal(SIM_CC_QUEUE_DEVICE_HI, offsetof(struct virtio_pci_common_cfg, queue_used_hi));
    /* the 1.2+ fields after the 1.0 structure */
    assert_int_equal(SIM_CC_QUEUE_NOTIFY_DATA, sizeof(struct virtio_pci_common_cfg));
    assert_int_equal(SIM_CC_QUEUE_NOTIFY_DATA, VIRTIO_PCI_COMMON_Q_NDATA);
    assert_int_equal(SIM_CC_QUEUE_RESET, VIRTIO_PCI_COMMON_Q_RESET);
    assert_int_equal(SIM_CC_ADMIN_QUEUE_INDEX, SIM_CC_QUEUE_RESET + 2);
    assert_int_equal(SIM_CC_ADMIN_QUEUE_NUM, SIM_CC_ADMIN_QUEUE_INDEX + 2);
}

static void test_caps_and_features(void **state)
{
    (void)state;
    assert_int_equal(SIM_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_COMMON_CFG);
    assert_int_equal(SIM_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG);
    assert_int_equal(SIM_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_ISR_CFG);
    assert_int_equal(SIM_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_DEVICE_CFG);
    assert_int_equal(SIM_PCI_CAP_PCI_CFG, VIRTIO_PCI_CAP_PCI_CFG);
    assert_int_equal(SIM_F_RING_RESET, VIRTIO_F_RING_RESET);
    assert_int_equal(SIM_MSI_NO_VECTOR, VIRTIO_MSI_NO_VECTOR);
    /* the counters capability must use a cfg_type no spec structure has */
    assert_true(SIM_PCI_CAP_VFE_COUNTERS > VIRTIO_PCI_CAP_SHARED_MEMORY_CFG);
}

static void test_admin_layout(void **state)
{
    (void)state;
    assert_int_equal(offsetof(struct sim_adm_cmd_hdr, group_type), 2);
    assert_int_equal(offsetof(struct sim_adm_cmd_hdr, group_member_id), 16);
    assert_int_equal(offsetof(struct sim_adm_cmd_status, status_qualifier), 2);
    assert_int_equal(sizeof(struct sim_adm_part_hdr), 8);
    assert_int_equal(sizeof(struct sim_nv_tlv), 8);
    /* standard opcodes stay below the nvidia classes, which tell the dialects apart */
    assert_true((int)SIM_ADM_DIRTY_REPORT < (int)SIM_NV_CLASS_MIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_cfg_offsets),
        cmocka_unit_test(test_caps_and_features),
        cmocka_unit_test(test_admin_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
