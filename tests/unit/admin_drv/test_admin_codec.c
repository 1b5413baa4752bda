/* State codecs: nvidia TLV blob and virtio device parts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_dev_state.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_state_parts.h"
#include "drivers/common/virtio_mi/vfe_state_tlv.h"

typedef int (*encode_fn)(const struct vfe_dev_state *, uint8_t *, size_t, size_t *);
typedef int (*decode_fn)(const uint8_t *, size_t, struct vfe_dev_state *);

static void sample_state(struct vfe_dev_state *s)
{
    vfe_dev_state_init(s);
    s->has_common = true;
    s->device_features = 0x0000030100010020ull;
    s->driver_features = 0x0000000100000020ull;
    s->msix_config = 0;
    s->num_queues = 5;
    s->status = 0x0f;
    s->has_rx_mode = true;
    s->rx_mode = 0x03;
    s->has_pairs = true;
    s->pairs = 2;
    s->net_cfg_len = 24;
    for (int i = 0; i < 24; i++)
        s->net_cfg[i] = (uint8_t)(0x50 + i);
    s->nvqs = 4;
    for (uint16_t q = 0; q < 3; q++) {
        struct vfe_dev_vq_state *v = &s->vq[q];
        v->has_cfg = v->has_split = true;
        v->enabled = true;
        v->size = 256;
        v->msix_vector = (uint16_t)(q + 1);
        v->desc = 0x100000ull * (q + 1);
        v->avail = v->desc + 0x1000;
        v->used = v->desc + 0x2000;
        v->last_avail = (uint16_t)(1000 + q);
        v->last_used = (uint16_t)(65530 + q);   /* wraps */
    }
    s->vq[3].has_cfg = true;                    /* configured, never started */
    s->vq[3].size = 64;
    s->vq[3].msix_vector = 0xffff;
}

static void roundtrip(encode_fn enc, decode_fn dec)
{
    struct vfe_dev_state a, b;
    uint8_t buf[4096];
    size_t len = 0;
    sample_state(&a);
    assert_int_equal(enc(&a, buf, sizeof(buf), &len), 0);
    assert_int_equal(len % 8, 0);
    memset(&b, 0xa5, sizeof(b));
    assert_int_equal(dec(buf, len, &b), 0);
    assert_true(vfe_dev_state_equal(&a, &b));
    b.vq[1].last_avail++;
    assert_false(vfe_dev_state_equal(&a, &b));
}

static void test_tlv_roundtrip(void **state) { roundtrip(vfe_state_tlv_encode, vfe_state_tlv_decode); }
static void test_parts_roundtrip(void **state) { roundtrip(vfe_state_parts_encode, vfe_state_parts_decode); }

/* Every queue the format can carry. */
static void test_tlv_full_state_fits_one_command(void **state)
{
    struct vfe_dev_state a, b;
    sample_state(&a);
    a.num_queues = a.nvqs = VFE_DEV_STATE_MAX_VQS;
    a.net_cfg_len = VFE_DEV_STATE_NET_CFG_MAX;
    for (uint16_t q = 0; q < a.nvqs; q++) {
        a.vq[q].has_cfg = a.vq[q].has_split = true;
        a.vq[q].size = 128;
        a.vq[q].last_avail = q;
    }
    uint8_t buf[4096];
    size_t len;
    /* room left for the nvidia header + vdev and the standard header */
    assert_int_equal(vfe_state_tlv_encode(&a, buf, 4096 - 6, &len), 0);
    assert_int_equal(vfe_state_tlv_decode(buf, len, &b), 0);
    assert_true(vfe_dev_state_equal(&a, &b));
    assert_int_equal(vfe_state_parts_encode(&a, buf, 4096 - 24, &len), 0);
    assert_int_equal(vfe_state_parts_decode(buf, len, &b), 0);
    assert_true(vfe_dev_state_equal(&a, &b));
}

static void test_encode_limits(void **state)
{
    struct vfe_dev_state a;
    uint8_t buf[4096];
    size_t len;
    sample_state(&a);
    assert_int_equal(vfe_state_tlv_encode(&a, buf, 40, &len), -E2BIG);
    assert_int_equal(vfe_state_parts_encode(&a, buf, 40, &len), -E2BIG);
    a.num_queues = 2;                           /* queue records beyond num_queues */
    assert_int_equal(vfe_state_tlv_encode(&a, buf, sizeof(buf), &len), -EINVAL);
    sample_state(&a);
    a.has_common = false;
    assert_int_equal(vfe_state_parts_encode(&a, buf, sizeof(buf), &len), -EINVAL);
}

/* Writes one record the way a device would. */
static size_t rec(uint8_t *p, uint16_t type, const void *val, uint32_t vlen, uint32_t claimed_len)
{
    memset(p, 0, 8 + ((vlen + 7) & ~7u));
    vfe_put_le16(p, type);
    vfe_put_le32(p + 4, claimed_len);
    memcpy(p + 8, val, vlen);
    return 8 + ((vlen + 7) & ~7u);
}

static size_t common_rec(uint8_t *p, uint16_t type, uint16_t num_queues)
{
    uint8_t c[24] = { 0 };
    vfe_put_le16(c + offsetof(struct vfe_state_common, num_queues), num_queues);
    return rec(p, type, c, 24, 24);
}

static size_t vq_cfg_rec(uint8_t *p, uint16_t type, uint16_t qi, uint16_t size, uint16_t enabled)
{
    uint8_t v[32] = { 0 };
    vfe_put_le16(v + offsetof(struct vfe_state_vq_cfg, index), qi);
    vfe_put_le16(v + offsetof(struct vfe_state_vq_cfg, size), size);
    vfe_put_le16(v + offsetof(struct vfe_state_vq_cfg, enabled), enabled);
    return rec(p, type, v, 32, 32);
}

static size_t vq_split_rec(uint8_t *p, uint16_t type, uint16_t qi)
{
    uint8_t v[8] = { 0 };
    vfe_put_le16(v, qi);
    return rec(p, type, v, 8, 8);
}

static void test_tlv_truncated(void **state)
{
    struct vfe_dev_state a, b;
    uint8_t buf[4096];
    size_t len;
    sample_state(&a);
    assert_int_equal(vfe_state_tlv_encode(&a, buf, sizeof(buf), &len), 0);
    /* the last record is a vq split state: 8 header + 8 value */
    assert_int_equal(vfe_state_tlv_decode(buf, len - 1, &b), -EINVAL);     /* value cut */
    assert_int_equal(vfe_state_tlv_decode(buf, len - 12, &b), -EINVAL);    /* header cut */
    assert_int_equal(vfe_state_tlv_decode(buf, 4, &b), -EINVAL);
    assert_int_equal(vfe_state_tlv_decode(buf, 20, &b), -EINVAL);          /* common cut */
    /* every cut point either fails or falls on a record boundary */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = vfe_state_tlv_decode(buf, cut, &b);
        assert_true(rc == 0 || rc == -EINVAL);
    }
    assert_int_equal(vfe_state_tlv_decode(buf, 0, &b), -EINVAL);           /* nothing: no common */
}

static void test_tlv_oversized(void **state)
{
    struct vfe_dev_state b;
    uint8_t buf[256];
    size_t n = common_rec(buf, VFE_NV_TLV_COMMON_CFG, 4);
    uint8_t rx = 1;
    size_t m = rec(buf + n, VFE_NV_TLV_RX_MODE, &rx, 1, 1);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), 0);
    vfe_put_le32(buf + n + 4, 0xffffffffu);                                 /* length past the end */
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    vfe_put_le32(buf + n + 4, (uint32_t)(m - 8 + 1));
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    vfe_put_le32(buf + n + 4, 2);                                           /* rx_mode is one byte */
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    /* device config larger than any virtio_net_config */
    uint8_t big[VFE_DEV_STATE_NET_CFG_MAX + 8] = { 0 };
    m = rec(buf + n, VFE_NV_TLV_DEVICE_CFG, big, sizeof(big), sizeof(big));
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    /* common record with a wrong size */
    m = rec(buf, VFE_NV_TLV_COMMON_CFG, big, 23, 23);
    assert_int_equal(vfe_state_tlv_decode(buf, m, &b), -EINVAL);
}

static void test_tlv_unknown_skipped(void **state)
{
    struct vfe_dev_state a, b;
    uint8_t buf[4096], junk[13];
    memset(junk, 0xee, sizeof(junk));
    size_t len;
    sample_state(&a);
    size_t n = rec(buf, 0x77, junk, sizeof(junk), sizeof(junk));
    assert_int_equal(vfe_state_tlv_encode(&a, buf + n, sizeof(buf) - n, &len), 0);
    len += n;
    len += rec(buf + len, 0x7fff, junk, 0, 0);
    assert_int_equal(vfe_state_tlv_decode(buf, len, &b), 0);
    assert_true(vfe_dev_state_equal(&a, &b));
}

static void test_queue_index_bounds(void **state)
{
    struct vfe_dev_state b;
    uint8_t buf[256];
    size_t n = common_rec(buf, VFE_NV_TLV_COMMON_CFG, VFE_DEV_STATE_MAX_VQS);
    size_t m = vq_cfg_rec(buf + n, VFE_NV_TLV_VQ_CFG, VFE_DEV_STATE_MAX_VQS - 1, 64, 1);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), 0);
    assert_int_equal(b.nvqs, VFE_DEV_STATE_MAX_VQS);
    m = vq_cfg_rec(buf + n, VFE_NV_TLV_VQ_CFG, VFE_DEV_STATE_MAX_VQS, 64, 1);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    m = vq_split_rec(buf + n, VFE_NV_TLV_VQ_SPLIT, 0xffff);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    /* within the array but beyond the device's own queue count */
    n = common_rec(buf, VFE_NV_TLV_COMMON_CFG, 4);
    m = vq_split_rec(buf + n, VFE_NV_TLV_VQ_SPLIT, 4);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    /* the common record may come last: still checked */
    m = vq_split_rec(buf, VFE_NV_TLV_VQ_SPLIT, 6);
    n = common_rec(buf + m, VFE_NV_TLV_COMMON_CFG, 4);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    /* num_queues the state cannot hold */
    n = common_rec(buf, VFE_NV_TLV_COMMON_CFG, VFE_DEV_STATE_MAX_VQS + 1);
    assert_int_equal(vfe_state_tlv_decode(buf, n, &b), -EINVAL);
}

static void test_vq_record_fields_checked(void **state)
{
    struct vfe_dev_state b;
    uint8_t buf[256];
    size_t n = common_rec(buf, VFE_NV_TLV_COMMON_CFG, 4);
    size_t m = vq_cfg_rec(buf + n, VFE_NV_TLV_VQ_CFG, 1, 64, 2);          /* enabled must be 0/1 */
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    m = vq_cfg_rec(buf + n, VFE_NV_TLV_VQ_CFG, 1, 0, 1);                   /* enabled, size 0 */
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    m = vq_cfg_rec(buf + n, VFE_NV_TLV_VQ_CFG, 1, 64, 1);
    m += vq_cfg_rec(buf + n + m, VFE_NV_TLV_VQ_CFG, 1, 64, 1);             /* duplicate */
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
}

static void test_pairs_record(void **state)
{
    struct vfe_dev_state b;
    uint8_t buf[256], v[2];
    size_t n = common_rec(buf, VFE_NV_TLV_COMMON_CFG, 4);
    vfe_put_le16(v, 3);
    size_t m = rec(buf + n, VFE_NV_TLV_NET_PAIRS, v, 2, 2);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), 0);
    assert_true(b.has_pairs);
    assert_int_equal(b.pairs, 3);
    vfe_put_le16(v, 0);                                                     /* no pair active */
    m = rec(buf + n, VFE_NV_TLV_NET_PAIRS, v, 2, 2);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    m = rec(buf + n, VFE_NV_TLV_NET_PAIRS, v, 1, 1);
    assert_int_equal(vfe_state_tlv_decode(buf, n + m, &b), -EINVAL);
    n = common_rec(buf, VFE_ADM_PART_PCI_COMMON_CFG, 4);
    vfe_put_le16(v, 1);
    m = rec(buf + n, VFE_ADM_PART_NET_MQ_PAIRS, v, 2, 2);
    assert_int_equal(vfe_state_parts_decode(buf, n + m, &b), 0);
    assert_int_equal(b.pairs, 1);
}

static void test_parts_checks(void **state)
{
    struct vfe_dev_state a, b;
    uint8_t buf[4096];
    size_t len;
    sample_state(&a);
    assert_int_equal(vfe_state_parts_encode(&a, buf, sizeof(buf), &len), 0);
    /* a notify part (not kept) and an unknown part are skipped */
    uint8_t notify[2] = { 3, 0 };
    size_t n = len;
    n += rec(buf + n, VFE_ADM_PART_VQ_NOTIFY_CFG, notify, 2, 2);
    n += rec(buf + n, 0x3ff, notify, 1, 1);
    assert_int_equal(vfe_state_parts_decode(buf, n, &b), 0);
    assert_true(vfe_dev_state_equal(&a, &b));
    assert_int_equal(vfe_state_parts_decode(buf, len - 3, &b), -EINVAL);
    /* device status part of the wrong size */
    n = len + rec(buf + len, VFE_ADM_PART_DEVICE_STATUS, notify, 2, 2);
    assert_int_equal(vfe_state_parts_decode(buf, n, &b), -EINVAL);
    n = len + rec(buf + len, VFE_ADM_PART_DEV_FEATURES, notify, 2, 2);
    assert_int_equal(vfe_state_parts_decode(buf, n, &b), -EINVAL);
    n = len + vq_cfg_rec(buf + len, VFE_ADM_PART_VQ_CFG, 200, 64, 1);
    assert_int_equal(vfe_state_parts_decode(buf, n, &b), -EINVAL);
    /* the nvidia record types mean nothing here: skipped, so no common */
    n = common_rec(buf, VFE_NV_TLV_COMMON_CFG, 4);
    assert_int_equal(vfe_state_parts_decode(buf, n, &b), -EINVAL);
    n = common_rec(buf, VFE_ADM_PART_PCI_COMMON_CFG, 4);
    assert_int_equal(vfe_state_parts_decode(buf, n, &b), 0);
    assert_int_equal(b.num_queues, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tlv_roundtrip),
        cmocka_unit_test(test_parts_roundtrip),
        cmocka_unit_test(test_tlv_full_state_fits_one_command),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_tlv_truncated),
        cmocka_unit_test(test_tlv_oversized),
        cmocka_unit_test(test_tlv_unknown_skipped),
        cmocka_unit_test(test_queue_index_bounds),
        cmocka_unit_test(test_vq_record_fields_checked),
        cmocka_unit_test(test_pairs_record),
        cmocka_unit_test(test_parts_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
