/* Unit tests of the driver-side split ring, with the test playing the device
 * on the same (malloc'd) ring memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ring.h>
#include <cmocka.h>

#include "drivers/common/virtio/vfe_vring.h"

#define IOVA 0x100000ull

struct ring {
    struct vfe_vring vr;
    void *mem;
};

/* aligned_alloc() requires the size to be a multiple of the alignment. */
static void *ring_mem_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

static void ring_new(struct ring *r, uint16_t size, bool event_idx)
{
    r->mem = ring_mem_alloc(vfe_vring_mem_size(size));
    assert_non_null(r->mem);
    memset(r->mem, 0xa5, vfe_vring_mem_size(size));   /* init must clear it */
    assert_int_equal(vfe_vring_init(&r->vr, size, r->mem, IOVA, event_idx), 0);
}

static void ring_free(struct ring *r)
{
    vfe_vring_fini(&r->vr);
    free(r->mem);
}

/* ---- the device side ---- */

static uint16_t dev_avail_idx(struct ring *r)
{
    return r->vr.avail->idx;
}

static uint16_t dev_avail_head(struct ring *r, uint16_t i)
{
    return r->vr.avail->ring[i % r->vr.size];
}

static void dev_push(struct ring *r, uint32_t id, uint32_t len)
{
    struct vring_used *u = r->vr.used;
    u->ring[u->idx % r->vr.size].id = id;
    u->ring[u->idx % r->vr.size].len = len;
    __atomic_store_n(&u->idx, (uint16_t)(u->idx + 1), __ATOMIC_RELEASE);
}

static void set_avail_event(struct ring *r, uint16_t v)
{
    memcpy((uint8_t *)r->vr.used + 4 + 8 * r->vr.size, &v, 2);
}

static uint16_t used_event(struct ring *r)
{
    return r->vr.avail->ring[r->vr.size];
}

static int C[4];   /* cookies */

/* ---- tests ---- */

static void test_layout(void **state)
{
    assert_int_equal(vfe_vring_mem_size(256), 4616 + 6 + 8 * 256);
    struct ring r;
    ring_new(&r, 256, false);
    assert_int_equal(r.vr.desc_iova, IOVA);
    assert_int_equal(r.vr.avail_iova, IOVA + 4096);
    assert_int_equal(r.vr.used_iova, IOVA + 4616);
    assert_ptr_equal((uint8_t *)r.vr.used, (uint8_t *)r.mem + 4616);
    assert_int_equal(r.vr.avail->idx, 0);
    assert_int_equal(r.vr.used->idx, 0);
    assert_int_equal(r.vr.num_free, 256);
    ring_free(&r);

    struct vfe_vring vr;
    uint8_t *m = ring_mem_alloc(vfe_vring_mem_size(1024) + 64);
    assert_non_null(m);
    assert_int_equal(vfe_vring_init(&vr, 0, m, IOVA, false), -EINVAL);
    assert_int_equal(vfe_vring_init(&vr, 100, m, IOVA, false), -EINVAL);
    assert_int_equal(vfe_vring_init(&vr, 64, m + 8, IOVA, false), -EINVAL);
    assert_int_equal(vfe_vring_init(&vr, 64, m, IOVA + 4, false), -EINVAL);
    free(m);
}

static void test_add_chain(void **state)
{
    struct ring r;
    ring_new(&r, 16, false);
    struct vfe_sg sg[3] = { { 0x1000, 12 }, { 0x2000, 100 }, { 0x3000, 1500 } };
    assert_int_equal(vfe_vring_add(&r.vr, sg, 2, 1, &C[0]), 0);
    assert_int_equal(r.vr.num_free, 13);
    assert_int_equal(dev_avail_idx(&r), 0);           /* not yet published */
    assert_true(vfe_vring_publish(&r.vr));
    assert_int_equal(dev_avail_idx(&r), 1);

    uint16_t d = dev_avail_head(&r, 0);
    const struct vring_desc *desc = r.vr.desc;
    assert_int_equal(desc[d].addr, 0x1000);
    assert_int_equal(desc[d].len, 12);
    assert_int_equal(desc[d].flags, VRING_DESC_F_NEXT);
    d = desc[d].next;
    assert_int_equal(desc[d].addr, 0x2000);
    assert_int_equal(desc[d].len, 100);
    assert_int_equal(desc[d].flags, VRING_DESC_F_NEXT);
    d = desc[d].next;
    assert_int_equal(desc[d].addr, 0x3000);
    assert_int_equal(desc[d].len, 1500);
    assert_int_equal(desc[d].flags, VRING_DESC_F_WRITE);

    /* a second chain takes other descriptors */
    struct vfe_sg one = { 0x4000, 64 };
    assert_int_equal(vfe_vring_add(&r.vr, &one, 0, 1, &C[1]), 0);
    vfe_vring_publish(&r.vr);
    uint16_t h2 = dev_avail_head(&r, 1);
    assert_int_not_equal(h2, dev_avail_head(&r, 0));
    assert_int_equal(desc[h2].addr, 0x4000);
    assert_int_equal(desc[h2].flags, VRING_DESC_F_WRITE);
    assert_int_equal(vfe_vring_outstanding(&r.vr), 2);
    ring_free(&r);
}

static void test_ring_full_and_bad_args(void **state)
{
    struct ring r;
    ring_new(&r, 8, false);
    struct vfe_sg sg[9];
    for (unsigned i = 0; i < 9; i++)
        sg[i] = (struct vfe_sg){ 0x1000 * (i + 1), 64 };
    assert_int_equal(vfe_vring_add(&r.vr, sg, 1, 0, NULL), -EINVAL);
    assert_int_equal(vfe_vring_add(&r.vr, sg, 0, 0, &C[0]), -EINVAL);
    assert_int_equal(vfe_vring_add(&r.vr, sg, 5, 4, &C[0]), -EINVAL);    /* longer than the ring */
    struct vfe_sg huge[2] = { { 0x1000, 0xffffffffu }, { 0x2000, 2 } };
    assert_int_equal(vfe_vring_add(&r.vr, huge, 2, 0, &C[0]), -EINVAL);  /* over 4 GiB */
    assert_int_equal(r.vr.num_free, 8);

    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(vfe_vring_add(&r.vr, &sg[i], 1, 0, &C[0]), 0);
    assert_int_equal(vfe_vring_add(&r.vr, sg, 2, 1, &C[1]), -ENOSPC);  /* 3 needed, 2 free */
    assert_int_equal(vfe_vring_add(&r.vr, sg, 1, 1, &C[1]), 0);
    assert_int_equal(vfe_vring_add(&r.vr, sg, 1, 0, &C[1]), -ENOSPC);
    vfe_vring_publish(&r.vr);
    assert_int_equal(dev_avail_idx(&r), 7);
    ring_free(&r);
}

static void test_used_roundtrip_and_wrap(void **state)
{
    struct ring r;
    ring_new(&r, 4, false);
    uint32_t len = 0;
    assert_null(vfe_vring_get_used(&r.vr, &len));
    /* 70000 chains: both 16-bit indexes wrap */
    for (unsigned i = 0; i < 70000; i++) {
        struct vfe_sg sg[2] = { { 0x1000, 10 }, { 0x2000, 2000 } };
        int *ck = &C[i % 4];
        assert_int_equal(vfe_vring_add(&r.vr, sg, 1, 1, ck), 0);
        vfe_vring_publish(&r.vr);
        assert_int_equal(dev_avail_idx(&r), (uint16_t)(i + 1));
        uint16_t head = dev_avail_head(&r, (uint16_t)i);
        dev_push(&r, head, 1000 + i % 7);
        assert_ptr_equal(vfe_vring_get_used(&r.vr, &len), ck);
        assert_int_equal(len, 1000 + i % 7);
        assert_null(vfe_vring_get_used(&r.vr, &len));
        assert_int_equal(r.vr.num_free, 4);
    }
    /* out of order completion */
    struct vfe_sg s = { 0x1000, 64 };
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(vfe_vring_add(&r.vr, &s, 0, 1, &C[i]), 0);
    vfe_vring_publish(&r.vr);
    uint16_t base = (uint16_t)70000;
    dev_push(&r, dev_avail_head(&r, base + 2), 1);
    dev_push(&r, dev_avail_head(&r, base + 0), 2);
    assert_ptr_equal(vfe_vring_get_used(&r.vr, &len), &C[2]);
    assert_ptr_equal(vfe_vring_get_used(&r.vr, &len), &C[0]);
    assert_int_equal(r.vr.num_free, 2);
    assert_int_equal(vfe_vring_add(&r.vr, &s, 0, 1, &C[0]), 0);
    assert_int_equal(vfe_vring_add(&r.vr, &s, 0, 1, &C[2]), 0);
    assert_int_equal(vfe_vring_add(&r.vr, &s, 0, 1, &C[2]), -ENOSPC);
    ring_free(&r);
}

static void test_bad_used_rejected(void **state)
{
    struct ring r;
    ring_new(&r, 8, false);
    struct vfe_sg s = { 0x1000, 100 };
    assert_int_equal(vfe_vring_add(&r.vr, &s, 0, 1, &C[0]), 0);
    vfe_vring_publish(&r.vr);
    uint16_t head = dev_avail_head(&r, 0);
    uint32_t len = 0;

    dev_push(&r, 8, 10);            /* id beyond the ring */
    assert_null(vfe_vring_get_used(&r.vr, &len));
    dev_push(&r, (head + 1) % 8, 10);   /* a descriptor that is not an outstanding head */
    assert_null(vfe_vring_get_used(&r.vr, &len));
    assert_int_equal(r.vr.num_free, 7);

    dev_push(&r, 0xffffffffu, 10);  /* garbage, then the real completion with an oversize length */
    dev_push(&r, head, 5000);
    assert_ptr_equal(vfe_vring_get_used(&r.vr, &len), &C[0]);
    assert_int_equal(len, 100);     /* clamped to what the chain can hold */
    assert_int_equal(r.vr.num_free, 8);

    dev_push(&r, head, 10);         /* the same head again: no longer outstanding */
    assert_null(vfe_vring_get_used(&r.vr, &len));
    assert_int_equal(r.vr.num_free, 8);

    /* a used index running more than a ring ahead is ignored */
    assert_int_equal(vfe_vring_add(&r.vr, &s, 0, 1, &C[1]), 0);
    vfe_vring_publish(&r.vr);
    r.vr.used->idx = (uint16_t)(r.vr.last_used + 100);
    assert_null(vfe_vring_get_used(&r.vr, &len));
    assert_int_equal(vfe_vring_outstanding(&r.vr), 1);
    ring_free(&r);
}

static void test_notify_flags(void **state)
{
    struct ring r;
    ring_new(&r, 8, false);
    struct vfe_sg s = { 0x1000, 100 };
    assert_false(vfe_vring_publish(&r.vr));      /* nothing new */
    vfe_vring_add(&r.vr, &s, 1, 0, &C[0]);
    assert_true(vfe_vring_publish(&r.vr));
    r.vr.used->flags = VRING_USED_F_NO_NOTIFY;
    vfe_vring_add(&r.vr, &s, 1, 0, &C[1]);
    assert_false(vfe_vring_publish(&r.vr));
    assert_int_equal(dev_avail_idx(&r), 2);      /* published all the same */
    r.vr.used->flags = 0;
    vfe_vring_add(&r.vr, &s, 1, 0, &C[2]);
    assert_true(vfe_vring_publish(&r.vr));
    ring_free(&r);
}

static void test_event_idx_notify(void **state)
{
    struct ring r;
    ring_new(&r, 8, true);
    struct vfe_sg s = { 0x1000, 100 };
    r.vr.used->flags = VRING_USED_F_NO_NOTIFY;   /* ignored with event_idx */
    for (int i = 0; i < 3; i++)
        vfe_vring_add(&r.vr, &s, 1, 0, &C[0]);
    set_avail_event(&r, 5);                      /* device wants a kick once idx passes 5 */
    assert_false(vfe_vring_publish(&r.vr));     /* 0 -> 3 */
    assert_int_equal(dev_avail_idx(&r), 3);
    for (int i = 0; i < 3; i++)
        vfe_vring_add(&r.vr, &s, 1, 0, &C[0]);
    assert_true(vfe_vring_publish(&r.vr));      /* 3 -> 6 crosses 5 */
    set_avail_event(&r, 4);                      /* already passed */
    vfe_vring_add(&r.vr, &s, 1, 0, &C[0]);
    assert_false(vfe_vring_publish(&r.vr));     /* 6 -> 7 */
    set_avail_event(&r, 7);
    vfe_vring_add(&r.vr, &s, 1, 0, &C[0]);
    assert_true(vfe_vring_publish(&r.vr));      /* 7 -> 8: exactly at the event */
    ring_free(&r);
}

static void test_enable_cb(void **state)
{
    struct ring r;
    ring_new(&r, 8, false);
    vfe_vring_enable_cb(&r.vr, false);
    assert_int_equal(r.vr.avail->flags, VRING_AVAIL_F_NO_INTERRUPT);
    vfe_vring_enable_cb(&r.vr, true);
    assert_int_equal(r.vr.avail->flags, 0);
    ring_free(&r);

    ring_new(&r, 8, true);
    struct vfe_sg s = { 0x1000, 100 };
    uint32_t len;
    for (int i = 0; i < 3; i++)
        vfe_vring_add(&r.vr, &s, 0, 1, &C[i]);
    vfe_vring_publish(&r.vr);
    dev_push(&r, dev_avail_head(&r, 0), 1);
    dev_push(&r, dev_avail_head(&r, 1), 1);
    assert_non_null(vfe_vring_get_used(&r.vr, &len));
    assert_int_equal(used_event(&r), 1);          /* interrupts wanted: follows the driver */
    vfe_vring_enable_cb(&r.vr, false);
    assert_int_equal(r.vr.avail->flags, 0);       /* flags stay 0 with event_idx */
    assert_int_equal(used_event(&r), 0);          /* behind the device: never crossed */
    assert_non_null(vfe_vring_get_used(&r.vr, &len));
    assert_int_equal(used_event(&r), 0);          /* not moved while disabled */
    vfe_vring_enable_cb(&r.vr, true);
    assert_int_equal(used_event(&r), 2);
    ring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_add_chain),
        cmocka_unit_test(test_ring_full_and_bad_args),
        cmocka_unit_test(test_used_roundtrip_and_wrap),
        cmocka_unit_test(test_bad_used_rejected),
        cmocka_unit_test(test_notify_flags),
        cmocka_unit_test(test_event_idx_notify),
        cmocka_unit_test(test_enable_cb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
