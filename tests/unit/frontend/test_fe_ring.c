/* The driver-side split ring of the test front-end, against a device played
 * here by reading and writing the ring memory the way the spec lays it out. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <linux/virtio_ring.h>

#include "tests/frontend/vfe_fe_ring.h"

#define GPA 0x10000ull

static uint8_t mem[64 * 1024] __attribute__((aligned(4096)));

static struct vring_desc *desc(void) { return (struct vring_desc *)mem; }
static struct vring_avail *avail(uint16_t n) { return (struct vring_avail *)(mem + 16u * n); }
static struct vring_used *used(uint16_t n) { return (struct vring_used *)(mem + vfe_fe_ring_used_offset(n)); }

/* The device takes the next available head and returns it with len. */
static uint16_t device_take(uint16_t n, uint16_t *dev_avail)
{
    uint16_t head = le16toh(avail(n)->ring[*dev_avail % n]);
    (*dev_avail)++;
    return head;
}

static void device_use(uint16_t n, uint16_t head, uint32_t len)
{
    struct vring_used *u = used(n);
    uint16_t idx = le16toh(u->idx);
    u->ring[idx % n].id = htole32(head);
    u->ring[idx % n].len = htole32(len);
    u->idx = htole16(idx + 1);
}

static void test_layout(void **state)
{
    struct vfe_fe_ring r;
    assert_int_equal(vfe_fe_ring_used_offset(256), 8192);   /* 4096 + 518 rounded to 4 KiB */
    assert_int_equal(vfe_fe_ring_bytes(256), 12288);
    assert_int_equal(vfe_fe_ring_used_offset(8), 4096);
    memset(mem, 0xaa, sizeof(mem));
    assert_int_equal(vfe_fe_ring_init(&r, 256, mem, GPA, 0), 0);
    assert_int_equal(r.desc_gpa, GPA);
    assert_int_equal(r.avail_gpa, GPA + 4096);
    assert_int_equal(r.used_gpa, GPA + 8192);
    assert_int_equal(mem[100], 0);   /* zeroed */
    assert_int_equal(vfe_fe_ring_init(&r, 100, mem, GPA, 0), -EINVAL);
    assert_int_equal(vfe_fe_ring_init(&r, 2048, mem, GPA, 0), -EINVAL);
    assert_int_equal(vfe_fe_ring_init(&r, 0, mem, GPA, 0), -EINVAL);
}

static void test_add_publish_use(void **state)
{
    struct vfe_fe_ring r;
    uint16_t n = 8, dev = 0, head;
    uint32_t len;
    assert_int_equal(vfe_fe_ring_init(&r, n, mem, GPA, 0), 0);
    struct vfe_fe_seg two[2] = {{0x1000, 12, false}, {0x2000, 100, false}};
    int h = vfe_fe_ring_add(&r, two, 2);
    assert_true(h >= 0);
    /* not visible before publish */
    assert_int_equal(le16toh(avail(n)->idx), 0);
    vfe_fe_ring_publish(&r);
    assert_int_equal(le16toh(avail(n)->idx), 1);
    const struct vring_desc *d = &desc()[h];
    assert_int_equal(le64toh(d->addr), 0x1000);
    assert_int_equal(le32toh(d->len), 12);
    assert_int_equal(le16toh(d->flags), VRING_DESC_F_NEXT);
    const struct vring_desc *d2 = &desc()[le16toh(d->next)];
    assert_int_equal(le64toh(d2->addr), 0x2000);
    assert_int_equal(le16toh(d2->flags), 0);
    struct vfe_fe_seg w = {0x3000, 2048, true};
    int h2 = vfe_fe_ring_add(&r, &w, 1);
    vfe_fe_ring_publish(&r);
    assert_int_equal(le16toh(desc()[h2].flags), VRING_DESC_F_WRITE);
    assert_int_equal(vfe_fe_ring_in_flight(&r), 2);
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), 0);
    /* the device completes out of order */
    uint16_t first = device_take(n, &dev), second = device_take(n, &dev);
    device_use(n, second, 1500);
    device_use(n, first, 0);
    assert_int_equal(vfe_fe_ring_used_pending(&r), 2);
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), 1);
    assert_int_equal(head, h2);
    assert_int_equal(len, 1500);
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), 1);
    assert_int_equal(head, h);
    assert_int_equal(vfe_fe_ring_in_flight(&r), 0);
    assert_int_equal(r.num_free, n);
}

static void test_full_and_recycle(void **state)
{
    struct vfe_fe_ring r;
    uint16_t n = 4, dev = 0, head;
    uint32_t len;
    assert_int_equal(vfe_fe_ring_init(&r, n, mem, GPA, 0), 0);
    struct vfe_fe_seg s = {0x1000, 64, false}, three[3] = {s, s, s};
    for (int i = 0; i < 4; i++)
        assert_true(vfe_fe_ring_add(&r, &s, 1) >= 0);
    assert_int_equal(vfe_fe_ring_next_head(&r), -ENOSPC);
    assert_int_equal(vfe_fe_ring_add(&r, &s, 1), -ENOSPC);
    assert_int_equal(vfe_fe_ring_add(&r, &s, 0), -EINVAL);
    vfe_fe_ring_publish(&r);
    /* many rounds: every head comes back to the free list */
    for (int round = 0; round < 100; round++) {
        uint16_t h = device_take(n, &dev);
        device_use(n, h, 64);
        assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), 1);
        assert_int_equal(head, h);
        assert_int_equal(vfe_fe_ring_next_head(&r), h);
        assert_int_equal(vfe_fe_ring_add(&r, &s, 1), h);
        vfe_fe_ring_publish(&r);
    }
    /* a 3-descriptor chain needs 3 free */
    for (int i = 0; i < 3; i++) {
        device_use(n, device_take(n, &dev), 0);
        assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), 1);
    }
    assert_true(vfe_fe_ring_add(&r, three, 3) >= 0);
    assert_int_equal(r.num_free, 0);
}

static void test_bad_device(void **state)
{
    struct vfe_fe_ring r;
    uint16_t n = 8, head;
    uint32_t len;
    assert_int_equal(vfe_fe_ring_init(&r, n, mem, GPA, 0), 0);
    struct vfe_fe_seg s = {0x1000, 64, true};
    int h = vfe_fe_ring_add(&r, &s, 1);
    vfe_fe_ring_publish(&r);
    device_use(n, 7, 10);    /* never given */
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), -EPROTO);
    assert_int_equal(vfe_fe_ring_init(&r, n, mem, GPA, 0), 0);
    h = vfe_fe_ring_add(&r, &s, 1);
    vfe_fe_ring_publish(&r);
    device_use(n, 300, 10);  /* outside the ring */
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), -EPROTO);
    assert_int_equal(vfe_fe_ring_init(&r, n, mem, GPA, 0), 0);
    h = vfe_fe_ring_add(&r, &s, 1);
    vfe_fe_ring_publish(&r);
    used(n)->idx = htole16(20);   /* more used than the ring holds */
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), -EPROTO);
    assert_int_equal(vfe_fe_ring_used_pending(&r), -EPROTO);
    /* the same head twice: the second is not in flight any more */
    assert_int_equal(vfe_fe_ring_init(&r, n, mem, GPA, 0), 0);
    h = vfe_fe_ring_add(&r, &s, 1);
    vfe_fe_ring_publish(&r);
    device_use(n, (uint16_t)h, 1);
    device_use(n, (uint16_t)h, 1);
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), 1);
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), -EPROTO);
    /* a scribbled descriptor link does not corrupt our free list */
    assert_int_equal(vfe_fe_ring_init(&r, n, mem, GPA, 0), 0);
    struct vfe_fe_seg two[2] = {s, s};
    h = vfe_fe_ring_add(&r, two, 2);
    vfe_fe_ring_publish(&r);
    desc()[h].next = htole16(5);
    device_use(n, (uint16_t)h, 1);
    assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), 1);
    assert_int_equal(r.num_free, n);
    for (int i = 0; i < n; i++)
        assert_true(vfe_fe_ring_add(&r, &s, 1) >= 0);
    assert_int_equal(vfe_fe_ring_add(&r, &s, 1), -ENOSPC);
}

static void test_base_and_wrap(void **state)
{
    struct vfe_fe_ring r;
    uint16_t n = 8, dev = 65530, head;
    uint32_t len;
    assert_int_equal(vfe_fe_ring_init(&r, n, mem, GPA, 65530), 0);
    assert_int_equal(le16toh(avail(n)->idx), 65530);
    assert_int_equal(le16toh(used(n)->idx), 65530);
    struct vfe_fe_seg s = {0x1000, 64, false};
    for (int i = 0; i < 20; i++) {
        int h = vfe_fe_ring_add(&r, &s, 1);
        assert_true(h >= 0);
        vfe_fe_ring_publish(&r);
        assert_int_equal(device_take(n, &dev), h);
        device_use(n, (uint16_t)h, (uint32_t)i);
        assert_int_equal(vfe_fe_ring_get_used(&r, &head, &len), 1);
        assert_int_equal(head, h);
        assert_int_equal(len, i);
    }
    assert_int_equal(le16toh(avail(n)->idx), (uint16_t)(65530 + 20));
}

static void test_kick_suppression(void **state)
{
    struct vfe_fe_ring r;
    assert_int_equal(vfe_fe_ring_init(&r, 8, mem, GPA, 0), 0);
    assert_true(vfe_fe_ring_kick_needed(&r));
    used(8)->flags = htole16(VRING_USED_F_NO_NOTIFY);
    assert_false(vfe_fe_ring_kick_needed(&r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),          cmocka_unit_test(test_add_publish_use),
        cmocka_unit_test(test_full_and_recycle), cmocka_unit_test(test_bad_device),
        cmocka_unit_test(test_base_and_wrap),   cmocka_unit_test(test_kick_suppression),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
