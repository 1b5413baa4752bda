/* Unit tests of the HA take-over pieces: virtio-pci read-back without
 * writes, a split ring adopted from a record, the snapshot heads and the
 * migration dialect blob. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <cmocka.h>

#include "drivers/common/virtio/vfe_virtio_pci.h"
#include "drivers/common/virtio/vfe_vring.h"
#include "drivers/common/virtio_mi/vfe_ha_blob.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_mig.h"
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

/* A device brought up by a driver: running, queue 1 set up, MSI-X on. */
static void bring_up(void)
{
    assert_int_equal(vfe_vpci_init(&VP, &D.t), 0);
    assert_int_equal(vfe_vpci_reset(&VP), 0);
    assert_int_equal(vfe_vpci_add_status(&VP, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER), 0);
    uint64_t want = 1ull << VFE_VIRTIO_F_VERSION_1 | 1ull << VFE_VIRTIO_F_ACCESS_PLATFORM;
    D.dev_features |= want;
    assert_int_equal(vfe_vpci_negotiate(&VP, want), 0);
    assert_int_equal(vfe_vpci_msix_enable(&VP), 0);
    assert_int_equal(vfe_vpci_set_config_vector(&VP, 0), 0);
    assert_int_equal(vfe_vpci_queue_setup(&VP, 1, 64, 0x10000, 0x10400, 0x11000, 2), 0);
    assert_int_equal(vfe_vpci_queue_enable(&VP, 1), 0);
    assert_int_equal(vfe_vpci_add_status(&VP, VIRTIO_CONFIG_S_DRIVER_OK), 0);
}

static bool selector(uint64_t off)
{
    return off == VFE_CC_DFSELECT || off == VFE_CC_GFSELECT || off == VFE_CC_Q_SELECT;
}

/* Take-over reads back what the driver set and writes no state register. */
static void test_vpci_adopt_reads_only(void **state)
{
    bring_up();
    uint8_t cfg_before[sizeof(D.cfg)];
    memcpy(cfg_before, D.cfg, sizeof(cfg_before));
    uint8_t status = D.status;
    uint64_t drv = D.drv_features;
    D.nlog = 0;

    struct vfe_virtio_pci vp2;
    struct vfe_vpci_state st;
    assert_int_equal(vfe_vpci_adopt(&vp2, &D.t, &st), 0);
    struct vfe_vpci_queue_cfg q;
    assert_int_equal(vfe_vpci_queue_read(&vp2, 1, &q), 0);

    for (unsigned i = 0; i < D.nlog; i++)
        assert_true(selector(D.log[i].off));
    assert_memory_equal(cfg_before, D.cfg, sizeof(cfg_before));
    assert_int_equal(D.status, status);
    assert_int_equal(D.drv_features, drv);
    assert_int_equal(st.status, status);
    assert_int_equal(st.driver_features, drv);
    assert_true(st.msix_enabled);
    assert_false(st.msix_masked);
    assert_int_equal(st.config_vector, 0);
    assert_int_equal(q.size, 64);
    assert_int_equal(q.enabled, 1);
    assert_int_equal(q.desc, 0x10000);
    assert_int_equal(q.avail, 0x10400);
    assert_int_equal(q.used, 0x11000);
    assert_int_equal(q.msix_vector, 2);
}

static void test_vpci_adopt_refuses_failed(void **state)
{
    bring_up();
    struct vfe_vpci_state st;
    D.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    assert_int_equal(vfe_vpci_adopt(&VP, &D.t, &st), -EIO);
    D.status = VIRTIO_CONFIG_S_FAILED;
    assert_int_equal(vfe_vpci_adopt(&VP, &D.t, &st), -EIO);
    /* never set up: nothing to refuse, the caller sees status 0 */
    D.status = 0;
    D.drv_features = 0;
    assert_int_equal(vfe_vpci_adopt(&VP, &D.t, &st), 0);
    assert_int_equal(st.status, 0);
}

static void test_vpci_queue_read_missing(void **state)
{
    assert_int_equal(vfe_vpci_init(&VP, &D.t), 0);
    struct vfe_vpci_queue_cfg q;
    assert_int_equal(vfe_vpci_queue_read(&VP, 7, &q), -ENOENT);   /* beyond num_queues: size 0 */
}

/* ---- vring adoption ---- */
#define QS 8
static uint8_t ring_mem[8192] __attribute__((aligned(4096)));

static void *ck(unsigned i) { return (void *)(uintptr_t)(0x100 + i); }

/* A driver adds three 2-descriptor chains, the device consumes the first. */
static void old_driver(struct vfe_vring *vr, struct vfe_vring_chain out[2], uint16_t *last_used)
{
    assert_int_equal(vfe_vring_init(vr, QS, ring_mem, 0x1000, false), 0);
    for (unsigned i = 0; i < 3; i++) {
        struct vfe_sg sg[2] = {{0x9000 + i * 0x100, 16}, {0xa000 + i * 0x100, 32}};
        assert_int_equal(vfe_vring_add(vr, sg, 1, 1, ck(i)), 0);
    }
    vfe_vring_publish(vr);
    struct vring_used *u = vr->used;
    u->ring[0].id = htole32(0);
    u->ring[0].len = htole32(4);
    u->idx = htole16(1);
    uint32_t len;
    assert_ptr_equal(vfe_vring_get_used(vr, &len), ck(0));
    assert_int_equal(vfe_vring_find_chain(vr, ck(1), &out[0]), 0);
    assert_int_equal(vfe_vring_find_chain(vr, ck(2), &out[1]), 0);
    assert_int_equal(vfe_vring_find_chain(vr, ck(0), &out[0]) , -ENOENT);   /* returned */
    assert_int_equal(vfe_vring_find_chain(vr, ck(1), &out[0]), 0);
    *last_used = vr->last_used;
    vfe_vring_fini(vr);
}

static void test_vring_adopt_keeps_chains(void **state)
{
    struct vfe_vring vr;
    struct vfe_vring_chain c[2];
    uint16_t last_used;
    old_driver(&vr, c, &last_used);
    assert_int_equal(c[0].n, 2);
    assert_int_equal(c[0].in_bytes, 32);
    uint8_t before[sizeof(ring_mem)];
    memcpy(before, ring_mem, sizeof(before));

    struct vfe_vring nv;
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, last_used, c, 2), 0);
    assert_memory_equal(before, ring_mem, sizeof(before));       /* nothing written */
    assert_int_equal(vfe_vring_outstanding(&nv), 2);
    assert_int_equal(nv.num_free, QS - 4);
    /* new chains never take the adopted chains' descriptors */
    for (unsigned i = 0; i < 2; i++) {
        struct vfe_sg sg[2] = {{0xb000, 16}, {0xc000, 32}};
        assert_int_equal(vfe_vring_add(&nv, sg, 1, 1, ck(10 + i)), 0);
    }
    struct vfe_sg sg[2] = {{0xb000, 16}, {0xc000, 32}};
    assert_int_equal(vfe_vring_add(&nv, sg, 1, 1, ck(20)), -ENOSPC);
    vfe_vring_publish(&nv);
    assert_int_equal(vfe_vring_avail_idx(&nv), 5);   /* the old driver's 3, then 2 more */
    /* the device returns an inherited chain: its cookie comes back, once */
    struct vring_used *u = nv.used;
    u->ring[1].id = htole32(c[1].ids[0]);
    u->ring[1].len = htole32(8);
    u->idx = htole16(2);
    uint32_t len;
    assert_ptr_equal(vfe_vring_get_used(&nv, &len), ck(2));
    assert_int_equal(len, 8);
    assert_int_equal(vfe_vring_outstanding(&nv), 3);
    vfe_vring_fini(&nv);
}

static void test_vring_adopt_refuses(void **state)
{
    struct vfe_vring vr, nv;
    struct vfe_vring_chain c[2];
    uint16_t last_used;
    old_driver(&vr, c, &last_used);
    struct vfe_vring_chain bad[2];
    /* overlapping chains */
    memcpy(bad, c, sizeof(bad));
    bad[1].ids[1] = bad[0].ids[0];
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, last_used, bad, 2), -EINVAL);
    /* descriptor beyond the ring */
    memcpy(bad, c, sizeof(bad));
    bad[0].ids[1] = QS;
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, last_used, bad, 2), -EINVAL);
    /* chain too long / empty / no cookie */
    memcpy(bad, c, sizeof(bad));
    bad[0].n = VFE_VRING_CHAIN_MAX + 1;
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, last_used, bad, 2), -EINVAL);
    memcpy(bad, c, sizeof(bad));
    bad[0].cookie = NULL;
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, last_used, bad, 2), -EINVAL);
    /* a record older than the ring: one chain too few, or used index behind */
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, last_used, c, 1), -EPROTO);
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, (uint16_t)(last_used - 1), c, 2), -EPROTO);
    /* more chains than the ring holds */
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, last_used, c, QS + 1), -EINVAL);
}

/* A take-over from the ring alone (no record of the driver's used index):
 * the device returned two of three chains, the dead driver reaped neither.
 * Adopting from the device's used index makes both done: they are never
 * handed out, their descriptors are free, the third still comes back. */
static void test_vring_adopt_skips_unreaped(void **state)
{
    struct vfe_vring vr, nv;
    assert_int_equal(vfe_vring_init(&vr, QS, ring_mem, 0x1000, false), 0);
    for (unsigned i = 0; i < 3; i++) {
        struct vfe_sg sg[2] = {{0x9000 + i * 0x100, 16}, {0xa000 + i * 0x100, 32}};
        assert_int_equal(vfe_vring_add(&vr, sg, 1, 1, ck(i)), 0);
    }
    vfe_vring_publish(&vr);
    struct vfe_vring_chain c;
    assert_int_equal(vfe_vring_find_chain(&vr, ck(2), &c), 0);
    struct vring_used *u = vr.used;
    for (unsigned i = 0; i < 2; i++) {
        struct vfe_vring_chain done;
        assert_int_equal(vfe_vring_find_chain(&vr, ck(i), &done), 0);
        u->ring[i].id = htole32(done.ids[0]);
        u->ring[i].len = htole32(4);
    }
    u->idx = htole16(2);
    vfe_vring_fini(&vr);     /* dies without reaping */

    uint16_t used_idx = le16toh(u->idx);
    assert_int_equal(vfe_vring_adopt(&nv, QS, ring_mem, 0x1000, false, used_idx, &c, 1), 0);
    assert_int_equal(vfe_vring_outstanding(&nv), 1);
    assert_int_equal(nv.num_free, QS - 2);
    uint32_t len;
    assert_null(vfe_vring_get_used(&nv, &len));       /* the two returned chains are not replayed */
    /* the freed descriptors are reused; the inherited ones are not */
    for (unsigned i = 0; i < (QS - 2) / 2; i++) {
        struct vfe_sg sg[2] = {{0xb000, 16}, {0xc000, 32}};
        assert_int_equal(vfe_vring_add(&nv, sg, 1, 1, ck(10 + i)), 0);
        struct vfe_vring_chain n;
        assert_int_equal(vfe_vring_find_chain(&nv, ck(10 + i), &n), 0);
        for (unsigned j = 0; j < 2; j++)
            assert_true(n.ids[j] != c.ids[0] && n.ids[j] != c.ids[1]);
    }
    u->ring[2].id = htole32(c.ids[0]);
    u->ring[2].len = htole32(8);
    u->idx = htole16(3);
    assert_ptr_equal(vfe_vring_get_used(&nv, &len), ck(2));
    assert_int_equal(len, 8);
    vfe_vring_fini(&nv);
}

/* ---- blob heads ---- */
static void test_blob_head(void **state)
{
    uint8_t b[16] = {0};
    uint16_t v = 0;
    vfe_ha_blob_put_head(b, 0x11223344, 3, sizeof(b));
    assert_int_equal(vfe_ha_blob_check_head(b, sizeof(b), 0x11223344, 3, "t", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(vfe_ha_blob_check_head(b, sizeof(b), 0x11223344, 2, "t", &v), -EPROTO);
    assert_int_equal(vfe_ha_blob_check_head(b, sizeof(b), 0x11223345, 3, "t", &v), -EINVAL);
    assert_int_equal(vfe_ha_blob_check_head(b, sizeof(b) - 1, 0x11223344, 3, "t", &v), -EINVAL);
    assert_int_equal(vfe_ha_blob_check_head(b, 7, 0x11223344, 3, "t", &v), -EINVAL);
    assert_int_equal(vfe_ha_blob_check_head(NULL, 16, 0x11223344, 3, "t", &v), -EINVAL);
    vfe_ha_blob_put_head(b, 0x11223344, 0, sizeof(b));
    assert_int_equal(vfe_ha_blob_check_head(b, sizeof(b), 0x11223344, 3, "t", &v), -EINVAL);
}

/* ---- migration dialect ---- */
static void test_mig_blob_round_trip(void **state)
{
    struct vfe_admin_vq *aq = (struct vfe_admin_vq *)(uintptr_t)0x1000;   /* stored, not used */
    struct vfe_mig m, n;
    assert_int_equal(vfe_mig_init(&m, aq, VFE_MIG_DIALECT_VIRTIO), 0);
    m.virtio_dirty = true;
    uint8_t b[VFE_MIG_BLOB_LEN];
    size_t len = 0;
    assert_int_equal(vfe_mig_export(&m, b, sizeof(b) - 1, &len), -ENOSPC);
    assert_int_equal(len, VFE_MIG_BLOB_LEN);
    assert_int_equal(vfe_mig_export(&m, b, sizeof(b), &len), 0);
    memset(&n, 0, sizeof(n));
    assert_int_equal(vfe_mig_adopt(&n, aq, b, len), 0);
    assert_int_equal(n.dialect, VFE_MIG_DIALECT_VIRTIO);
    assert_true(n.virtio_dirty);
    assert_ptr_equal(n.ops, m.ops);
    assert_ptr_equal(n.aq, aq);

    struct vfe_mig none = {0};
    assert_int_equal(vfe_mig_export(&none, b, sizeof(b), &len), -EINVAL);

    uint8_t x[VFE_MIG_BLOB_LEN];
    struct vfe_mig z = {0};
    memcpy(x, b, sizeof(x)); x[9] = 0x02;                       /* unknown flag */
    assert_int_equal(vfe_mig_adopt(&z, aq, x, sizeof(x)), -EINVAL);
    memcpy(x, b, sizeof(x)); x[10] = 1;                         /* reserved */
    assert_int_equal(vfe_mig_adopt(&z, aq, x, sizeof(x)), -EINVAL);
    memcpy(x, b, sizeof(x)); x[8] = VFE_MIG_DIALECT_NVIDIA;     /* dirty flag is virtio's */
    assert_int_equal(vfe_mig_adopt(&z, aq, x, sizeof(x)), -EINVAL);
    memcpy(x, b, sizeof(x)); x[8] = 0;
    assert_int_equal(vfe_mig_adopt(&z, aq, x, sizeof(x)), -EINVAL);
    memcpy(x, b, sizeof(x)); vfe_put_le16(x + 4, VFE_MIG_BLOB_VERSION + 1);
    assert_int_equal(vfe_mig_adopt(&z, aq, x, sizeof(x)), -EPROTO);
    assert_int_equal(vfe_mig_adopt(&z, aq, b, sizeof(b) - 1), -EINVAL);
    assert_null(z.ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vpci_adopt_reads_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vpci_adopt_refuses_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vpci_queue_read_missing, setup, teardown),
        cmocka_unit_test(test_vring_adopt_keeps_chains),
        cmocka_unit_test(test_vring_adopt_refuses),
        cmocka_unit_test(test_vring_adopt_skips_unreaped),
        cmocka_unit_test(test_blob_head),
        cmocka_unit_test(test_mig_blob_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
