/* The test front-end's messages against a scripted back-end: QEMU's order of
 * negotiation, start and stop, memory slots, the dirty log messages, the
 * backend channel, and what it does when the back-end misbehaves. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "tests/frontend/vfe_frontend.h"
#include "tests/unit/frontend/fake_backend.h"

#define BIT(n) (1ull << (n))
#define NET_FEATURES (BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_MAC) | \
                      BIT(VIRTIO_NET_F_MQ) | BIT(VIRTIO_NET_F_CSUM) | BIT(VFE_FE_F_PROTOCOL_FEATURES) | \
                      BIT(VFE_FE_F_LOG_ALL))
#define ALL_PROTO (BIT(VFE_FE_PF_MQ) | BIT(VFE_FE_PF_LOG_SHMFD) | BIT(VFE_FE_PF_REPLY_ACK) | \
                   BIT(VFE_FE_PF_BACKEND_REQ) | BIT(VFE_FE_PF_CONFIGURE_MEM_SLOTS) | BIT(VFE_FE_PF_STATUS) | \
                   BIT(VFE_FE_PF_CONFIG) | BIT(VFE_FE_PF_BACKEND_SEND_FD) | BIT(VFE_FE_PF_HOST_NOTIFIER))

struct ctx {
    char dir[64], path[128];
    struct fake_backend fake;
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/vfe-fe-unit-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    snprintf(c->path, sizeof(c->path), "%s/be.sock", c->dir);
    c->fake.features = NET_FEATURES;
    c->fake.protocol_features = ALL_PROTO;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    fake_stop(&c->fake);
    rmdir(c->dir);
    free(c);
    return 0;
}

static struct vfe_fe *open_fe(struct ctx *c, unsigned pairs, bool table_only)
{
    assert_int_equal(fake_start(&c->fake, c->path), 0);
    struct vfe_fe_opts o = {.path = c->path, .pairs = pairs, .timeout_ms = 1000, .mem_table_only = table_only};
    return vfe_fe_open(&o);
}

static struct fake_msg msg(struct ctx *c, unsigned i)
{
    struct fake_msg m;
    assert_true(fake_msg(&c->fake, i, &m));
    return m;
}

static uint64_t u64_of(const struct fake_msg *m)
{
    uint64_t v;
    memcpy(&v, m->payload, 8);
    return v;
}

static void expect_requests(struct ctx *c, unsigned from, const uint32_t *reqs, unsigned n)
{
    assert_true(fake_wait(&c->fake, from + n, 2000) >= from + n);
    for (unsigned i = 0; i < n; i++) {
        struct fake_msg m = msg(c, from + i);
        if (m.request != reqs[i])
            fail_msg("request %u is %u, want %u", from + i, m.request, reqs[i]);
        assert_int_equal(m.flags & 3, 1);
    }
}

static void test_negotiation_order(void **state)
{
    struct ctx *c = *state;
    struct vfe_fe *fe = open_fe(c, 2, false);
    assert_non_null(fe);
    static const uint32_t want[] = {
        VFE_FE_GET_FEATURES, VFE_FE_GET_PROTOCOL_FEATURES, VFE_FE_SET_PROTOCOL_FEATURES, VFE_FE_GET_QUEUE_NUM,
        VFE_FE_GET_MAX_MEM_SLOTS, VFE_FE_SET_BACKEND_REQ_FD, VFE_FE_SET_OWNER, VFE_FE_GET_FEATURES,
        VFE_FE_SET_FEATURES, VFE_FE_GET_STATUS, VFE_FE_SET_STATUS, VFE_FE_ADD_MEM_REG, VFE_FE_ADD_MEM_REG,
    };
    expect_requests(c, 0, want, sizeof(want) / sizeof(want[0]));
    /* CONFIG is not for vhost-user-net; the rest offered is taken */
    struct fake_msg m = msg(c, 2);
    assert_int_equal(u64_of(&m), ALL_PROTO & ~BIT(VFE_FE_PF_CONFIG));
    assert_int_equal(vfe_fe_protocol_features(fe), ALL_PROTO & ~BIT(VFE_FE_PF_CONFIG));
    m = msg(c, 5);
    assert_int_equal(m.nfds, 1);
    assert_true(m.flags & VFE_FE_FLAG_NEED_REPLY);   /* QEMU waits for the backend channel */
    m = msg(c, 6);
    assert_false(m.flags & VFE_FE_FLAG_NEED_REPLY);  /* SET_OWNER: no ack asked */
    m = msg(c, 8);
    uint64_t f = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_MAC) |
                 BIT(VIRTIO_NET_F_MQ) | BIT(VFE_FE_F_PROTOCOL_FEATURES);
    assert_int_equal(u64_of(&m), f);
    assert_int_equal(vfe_fe_features(fe), f);
    m = msg(c, 10);
    assert_int_equal(u64_of(&m), VIRTIO_CONFIG_S_FEATURES_OK);
    /* the two regions: GPA 0 and 1 GiB, user address = our mapping */
    struct vfe_fe_mem_reg r0, r1;
    m = msg(c, 11);
    assert_int_equal(m.size, sizeof(r0));
    assert_int_equal(m.nfds, 1);
    assert_true(m.flags & VFE_FE_FLAG_NEED_REPLY);
    memcpy(&r0, m.payload, sizeof(r0));
    m = msg(c, 12);
    memcpy(&r1, m.payload, sizeof(r1));
    assert_int_equal(r0.region.gpa, 0);
    assert_int_equal(r1.region.gpa, VFE_FE_GPA_HIGH);
    assert_ptr_equal(vfe_fe_host(fe, 0, 1), (void *)(uintptr_t)r0.region.uaddr);
    assert_ptr_equal(vfe_fe_host(fe, VFE_FE_GPA_HIGH + 8, 1), (void *)(uintptr_t)(r1.region.uaddr + 8));
    assert_null(vfe_fe_host(fe, r0.region.size, 1));   /* the hole */
    assert_int_equal(vfe_fe_queue_num(fe), 4);
    assert_int_equal(vfe_fe_max_mem_slots(fe), 8);
    vfe_fe_close(fe);
}

static void test_start_stop(void **state)
{
    struct ctx *c = *state;
    struct vfe_fe *fe = open_fe(c, 2, false);
    assert_non_null(fe);
    unsigned base = fake_wait(&c->fake, 13, 2000);
    assert_int_equal(base, 13);
    assert_int_equal(vfe_fe_start(fe, NULL), 0);
    static const uint32_t per_ring[] = {VFE_FE_SET_VRING_NUM, VFE_FE_SET_VRING_BASE, VFE_FE_SET_VRING_ADDR,
                                        VFE_FE_SET_VRING_KICK, VFE_FE_SET_VRING_CALL};
    for (unsigned r = 0; r < 4; r++) {
        expect_requests(c, base + 5 * r, per_ring, 5);
        struct fake_msg m = msg(c, base + 5 * r);
        struct vfe_fe_vring_state st;
        memcpy(&st, m.payload, 8);
        assert_int_equal(st.index, r);
        assert_int_equal(st.num, 256);
        m = msg(c, base + 5 * r + 2);
        struct vfe_fe_vring_addr a;
        memcpy(&a, m.payload, sizeof(a));
        assert_int_equal(a.index, r);
        assert_int_equal(a.flags, 0);
        uint64_t gpa, len;
        assert_int_equal(vfe_fe_ring_area(fe, r, &gpa, &len), 0);
        /* addresses are the front-end's virtual addresses */
        assert_int_equal(a.desc, (uint64_t)(uintptr_t)vfe_fe_host(fe, gpa, len));
        assert_int_equal(a.used, (uint64_t)(uintptr_t)vfe_fe_host(fe, vfe_fe_used_gpa(fe, r), 1));
        m = msg(c, base + 5 * r + 3);
        assert_int_equal(m.nfds, 1);
        assert_int_equal(u64_of(&m), r);
    }
    static const uint32_t tail[] = {VFE_FE_SET_VRING_ENABLE, VFE_FE_SET_VRING_ENABLE, VFE_FE_SET_VRING_ENABLE,
                                    VFE_FE_SET_VRING_ENABLE, VFE_FE_GET_STATUS, VFE_FE_SET_STATUS};
    expect_requests(c, base + 20, tail, 6);
    struct fake_msg m = msg(c, base + 25);
    assert_int_equal(u64_of(&m), 0xf);   /* ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK */
    uint16_t bases[4];
    unsigned s = base + 26;
    assert_int_equal(vfe_fe_stop(fe, bases), 0);
    static const uint32_t stop[] = {VFE_FE_SET_VRING_ENABLE, VFE_FE_SET_VRING_ENABLE, VFE_FE_SET_VRING_ENABLE,
                                    VFE_FE_SET_VRING_ENABLE, VFE_FE_SET_STATUS, VFE_FE_GET_VRING_BASE,
                                    VFE_FE_GET_VRING_BASE, VFE_FE_GET_VRING_BASE, VFE_FE_GET_VRING_BASE};
    expect_requests(c, s, stop, 9);
    m = msg(c, s);
    struct vfe_fe_vring_state st;
    memcpy(&st, m.payload, 8);
    assert_int_equal(st.num, 0);
    for (unsigned r = 0; r < 4; r++)
        assert_int_equal(bases[r], 40 + r);
    /* restart at the indices: BASE carries them */
    s += 9;
    assert_int_equal(vfe_fe_start(fe, bases), 0);
    int b = fake_find(&c->fake, VFE_FE_SET_VRING_BASE, s);
    assert_true(b >= 0);
    m = msg(c, (unsigned)b);
    memcpy(&st, m.payload, 8);
    assert_int_equal(st.num, 40);
    vfe_fe_close(fe);
}

static void test_mem_table_and_slots(void **state)
{
    struct ctx *c = *state;
    struct vfe_fe *fe = open_fe(c, 1, true);
    assert_non_null(fe);
    int t = fake_find(&c->fake, VFE_FE_SET_MEM_TABLE, 0);
    assert_true(t >= 0);
    assert_int_equal(fake_find(&c->fake, VFE_FE_ADD_MEM_REG, 0), -1);
    struct fake_msg m = msg(c, (unsigned)t);
    assert_int_equal(m.nfds, 2);
    assert_int_equal(m.size, 8 + 2 * sizeof(struct vfe_fe_region_desc));
    struct vfe_fe_mem_table tab;
    memcpy(&tab, m.payload, m.size);
    assert_int_equal(tab.nregions, 2);
    assert_int_equal(tab.regions[1].gpa, VFE_FE_GPA_HIGH);
    /* a third region: the whole table again */
    int slot = vfe_fe_mem_add(fe, 2ull << 30, 1 << 20);
    assert_true(slot >= 2);
    t = fake_find(&c->fake, VFE_FE_SET_MEM_TABLE, (unsigned)t + 1);
    assert_true(t >= 0);
    m = msg(c, (unsigned)t);
    assert_int_equal(m.nfds, 3);
    assert_int_equal(vfe_fe_mem_add(fe, (2ull << 30) + 4096, 4096), -EEXIST);
    assert_int_equal(vfe_fe_mem_add(fe, 123, 4096), -EINVAL);
    assert_int_equal(vfe_fe_mem_remove(fe, 0), -EBUSY);
    assert_int_equal(vfe_fe_mem_remove(fe, slot), 0);
    assert_null(vfe_fe_host(fe, 2ull << 30, 1));
    vfe_fe_close(fe);
}

static void test_mem_slots(void **state)
{
    struct ctx *c = *state;
    struct vfe_fe *fe = open_fe(c, 1, false);
    assert_non_null(fe);
    unsigned n = fake_wait(&c->fake, 13, 2000);
    int slot = vfe_fe_mem_add(fe, 3ull << 30, 2 << 20);
    assert_true(slot >= 2);
    assert_non_null(vfe_fe_host(fe, (3ull << 30) + (2 << 20) - 1, 1));
    int a = fake_find(&c->fake, VFE_FE_ADD_MEM_REG, n);
    assert_true(a >= 0);
    struct fake_msg m = msg(c, (unsigned)a);
    struct vfe_fe_mem_reg r;
    memcpy(&r, m.payload, sizeof(r));
    assert_int_equal(r.region.gpa, 3ull << 30);
    assert_int_equal(r.region.size, 2 << 20);
    assert_int_equal(m.nfds, 1);
    assert_int_equal(vfe_fe_mem_remove(fe, slot), 0);
    int rm = fake_find(&c->fake, VFE_FE_REM_MEM_REG, n);
    assert_true(rm > a);
    m = msg(c, (unsigned)rm);
    assert_int_equal(m.nfds, 0);   /* the spec: no fd with REM_MEM_REG */
    memcpy(&r, m.payload, sizeof(r));
    assert_int_equal(r.region.gpa, 3ull << 30);
    vfe_fe_close(fe);
}

static void test_log(void **state)
{
    struct ctx *c = *state;
    struct vfe_fe *fe = open_fe(c, 1, false);
    assert_non_null(fe);
    assert_int_equal(vfe_fe_start(fe, NULL), 0);
    unsigned n = fake_wait(&c->fake, 1, 100);
    assert_int_equal(vfe_fe_log_start(fe), 0);
    int lb = fake_find(&c->fake, VFE_FE_SET_LOG_BASE, n);
    assert_true(lb >= 0);
    struct fake_msg m = msg(c, (unsigned)lb);
    struct vfe_fe_log_desc d;
    memcpy(&d, m.payload, sizeof(d));
    assert_int_equal(m.nfds, 1);
    assert_false(m.flags & VFE_FE_FLAG_NEED_REPLY);   /* it has a reply of its own */
    assert_int_equal(d.offset, 0);
    assert_true(d.size >= vfe_fe_log_bytes(VFE_FE_GPA_HIGH + 1));
    assert_int_equal(d.size, vfe_fe_log_size(fe));
    m = msg(c, (unsigned)lb + 1);
    assert_int_equal(m.request, VFE_FE_SET_FEATURES);
    assert_true(u64_of(&m) & BIT(VFE_FE_F_LOG_ALL));
    assert_true(m.flags & VFE_FE_FLAG_NEED_REPLY);
    int ad = fake_find(&c->fake, VFE_FE_SET_VRING_ADDR, (unsigned)lb);
    assert_true(ad > lb);
    m = msg(c, (unsigned)ad);
    struct vfe_fe_vring_addr a;
    memcpy(&a, m.payload, sizeof(a));
    assert_int_equal(a.flags, VFE_FE_VRING_F_LOG);
    assert_int_equal(a.log, vfe_fe_used_gpa(fe, a.index));
    assert_int_equal(vfe_fe_log_stop(fe), 0);
    assert_false(vfe_fe_features(fe) & BIT(VFE_FE_F_LOG_ALL));
    uint8_t out[64];
    assert_int_equal(vfe_fe_log_take(fe, out, sizeof(out)), 64);
    vfe_fe_close(fe);
}

static void test_backend_channel(void **state)
{
    struct ctx *c = *state;
    struct vfe_fe *fe = open_fe(c, 1, false);
    assert_non_null(fe);
    int be = c->fake.backend_fd;
    assert_true(be >= 0);
    int mfd = memfd_create("notifier", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 4096), 0);
    struct {
        struct vfe_fe_msg_hdr h;
        struct vfe_fe_vring_area a;
    } __attribute__((packed)) good = {{VFE_FE_B_HOST_NOTIFIER, 1 | VFE_FE_FLAG_NEED_REPLY, 24}, {1, 4096, 0}},
      bad = {{VFE_FE_B_HOST_NOTIFIER, 1 | VFE_FE_FLAG_NEED_REPLY, 24}, {0, 4096, 100}};
    for (int k = 0; k < 2; k++) {
        struct iovec iov = {k ? (void *)&bad : (void *)&good, sizeof(good)};
        char cbuf[CMSG_SPACE(sizeof(int))] = {0};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &mfd, sizeof(int));
        assert_int_equal(sendmsg(be, &mh, 0), sizeof(good));
        vfe_fe_backend_poll(fe, 500);
        struct vfe_fe_msg_hdr rh;
        uint64_t result = 99;
        assert_int_equal(recv(be, &rh, sizeof(rh), MSG_WAITALL), sizeof(rh));
        assert_int_equal(rh.request, VFE_FE_B_HOST_NOTIFIER);
        assert_true(rh.flags & VFE_FE_FLAG_REPLY);
        assert_int_equal(recv(be, &result, 8, MSG_WAITALL), 8);
        assert_int_equal(result, k ? 1 : 0);   /* offset 100 cannot be mapped */
    }
    close(mfd);
    assert_int_equal(vfe_fe_backend_msgs(fe, VFE_FE_B_HOST_NOTIFIER), 2);
    struct vfe_fe_backend_msg bm;
    assert_true(vfe_fe_backend_msg(fe, 0, &bm));
    assert_int_equal(bm.nfds, 1);
    assert_int_equal(bm.size, 24);
    assert_false(vfe_fe_backend_msg(fe, 2, &bm));
    vfe_fe_close(fe);
}

static void test_refused_request(void **state)
{
    struct ctx *c = *state;
    c->fake.nack_request = VFE_FE_ADD_MEM_REG;
    struct vfe_fe *fe = open_fe(c, 1, false);
    assert_null(fe);
    assert_int_equal(errno, EIO);
}

static void test_wrong_reply(void **state)
{
    struct ctx *c = *state;
    c->fake.bad_reply_request = VFE_FE_GET_PROTOCOL_FEATURES;
    assert_null(open_fe(c, 1, false));
    assert_int_equal(errno, EPROTO);
}

static void test_too_many_pairs(void **state)
{
    struct ctx *c = *state;
    assert_null(open_fe(c, 5, false));   /* the fake has 4 */
    assert_int_equal(errno, ERANGE);
}

/* 16 pairs (32 rings), the sim's most: every ring is set up, enabled and
 * stopped, each under its own index. */
static void test_sixteen_pairs(void **state)
{
    struct ctx *c = *state;
    c->fake.queue_num = 16;
    struct vfe_fe *fe = open_fe(c, 16, false);
    assert_non_null(fe);
    assert_int_equal(vfe_fe_pairs(fe), 16);
    assert_int_equal(vfe_fe_start(fe, NULL), 0);
    uint16_t bases[2 * VFE_FE_MAX_PAIRS + 1];
    memset(bases, 0xff, sizeof(bases));
    assert_int_equal(vfe_fe_stop(fe, bases), 0);
    for (unsigned r = 0; r < 32; r++)
        assert_int_equal(bases[r], 40 + r);   /* the fake answers 40 + ring */
    assert_int_equal(bases[32], 0xffff);
    unsigned kicks = 0, enables = 0;
    uint32_t kick_rings = 0, enabled_rings = 0;
    struct fake_msg m;
    for (unsigned i = 0; fake_msg(&c->fake, i, &m); i++) {
        uint32_t st[2];
        memcpy(st, m.payload, sizeof(st));
        if (m.request == VFE_FE_SET_VRING_KICK) {
            kicks++;
            kick_rings |= 1u << (u64_of(&m) & 0xff);
        } else if (m.request == VFE_FE_SET_VRING_ENABLE && st[1] == 1 && st[0] < 32) {
            enables++;
            enabled_rings |= 1u << st[0];
        }
    }
    assert_int_equal(kicks, 32);
    assert_int_equal(enables, 32);
    assert_int_equal(kick_rings, 0xffffffffu);
    assert_int_equal(enabled_rings, 0xffffffffu);
    vfe_fe_close(fe);
}

static void test_silent_backend(void **state)
{
    struct ctx *c = *state;
    c->fake.silent_request = VFE_FE_GET_VRING_BASE;
    struct vfe_fe *fe = open_fe(c, 1, false);
    assert_non_null(fe);
    assert_int_equal(vfe_fe_start(fe, NULL), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(vfe_fe_stop(fe, NULL), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 900 && ms < 3000);
    vfe_fe_close(fe);
}

static void test_raw_and_close(void **state)
{
    struct ctx *c = *state;
    c->fake.close_on_unknown = true;
    struct vfe_fe *fe = open_fe(c, 1, false);
    assert_non_null(fe);
    uint64_t v = 0;
    assert_int_equal(vfe_fe_raw(fe, VFE_FE_GET_FEATURES, 1, NULL, 0, NULL, 0, &v, sizeof(v), 1000), 8);
    assert_int_equal(v, NET_FEATURES);
    /* a reply larger than the buffer */
    uint8_t small[4];
    assert_int_equal(vfe_fe_raw(fe, VFE_FE_GET_FEATURES, 1, NULL, 0, NULL, 0, small, sizeof(small), 1000), -EMSGSIZE);
    /* nothing to answer: times out */
    assert_int_equal(vfe_fe_raw_recv(fe, NULL, small, sizeof(small), 100), -ETIMEDOUT);
    uint8_t junk[16] = {1, 2, 3};
    assert_int_equal(vfe_fe_raw_send(fe, 99, 1 | VFE_FE_FLAG_NEED_REPLY, junk, sizeof(junk), NULL, 0), 0);
    assert_true(vfe_fe_peer_closed(fe, 2000));
    assert_false(vfe_fe_connected(fe));
    assert_int_equal(vfe_fe_raw_recv(fe, NULL, small, sizeof(small), 100), -EPIPE);
    assert_int_equal(vfe_fe_start(fe, NULL), -ENOTCONN);
    /* and back: the fake accepts again */
    assert_int_equal(vfe_fe_reconnect(fe), 0);
    assert_true(vfe_fe_connected(fe));
    assert_int_equal(vfe_fe_start(fe, NULL), 0);
    vfe_fe_close(fe);
}

static void test_bad_options(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(fake_start(&c->fake, c->path), 0);
    struct vfe_fe_opts o = {.path = c->path, .ring_size = 100};
    assert_null(vfe_fe_open(&o));
    assert_int_equal(errno, EINVAL);
    o = (struct vfe_fe_opts){.path = c->path, .pairs = VFE_FE_MAX_PAIRS + 1};
    assert_null(vfe_fe_open(&o));
    assert_int_equal(errno, EINVAL);
    o = (struct vfe_fe_opts){.path = NULL};
    assert_null(vfe_fe_open(&o));
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none.sock", c->dir);
    o = (struct vfe_fe_opts){.path = missing, .timeout_ms = 100};
    assert_null(vfe_fe_open(&o));
    assert_int_equal(errno, ENOENT);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_negotiation_order), T(test_start_stop),    T(test_mem_table_and_slots), T(test_mem_slots),
        T(test_log),               T(test_backend_channel), T(test_refused_request),  T(test_wrong_reply),
        T(test_too_many_pairs),    T(test_sixteen_pairs),   T(test_silent_backend), T(test_raw_and_close),     T(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
