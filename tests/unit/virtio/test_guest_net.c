/* Unit tests of the test-support guest virtio-net driver against the fake
 * device, which plays a virtio-net function through its rings. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <cmocka.h>

#include "tests/lib/guest/guest_net.h"
#include "tests/unit/virtio/fake_vdev.h"

#define IOVA  0x80000000ull
#define CTRLQ 4
#define HDR   GUEST_NET_HDR_LEN

static struct fake_vdev D;
static struct guest_mem GM;
static uint8_t ctrl_seen[64];
static size_t ctrl_seen_len;
static uint8_t ctrl_ack = VIRTIO_NET_OK;
static const uint8_t MAC[6] = { 0x02, 0xfe, 0, 0, 0, 7 };

static void on_notify(struct fake_vdev *d, uint16_t qidx)
{
    if (qidx != CTRLQ)
        return;
    struct fv_elem e;
    while (fv_pop(d, CTRLQ, &e) == 1) {
        ctrl_seen_len = fv_read_out(d, &e, ctrl_seen, sizeof(ctrl_seen));
        fv_push(d, CTRLQ, e.head, (uint32_t)fv_write_in(d, &e, 0, &ctrl_ack, 1));
    }
}

static int setup(void **state)
{
    fv_init(&D, 5, 256);
    D.dev_features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_ACCESS_PLATFORM | 1ull << VIRTIO_NET_F_MAC |
                     1ull << VIRTIO_NET_F_MTU | 1ull << VIRTIO_NET_F_STATUS | 1ull << VIRTIO_NET_F_MQ |
                     1ull << VIRTIO_NET_F_CTRL_VQ | 1ull << VIRTIO_NET_F_MRG_RXBUF |
                     1ull << VIRTIO_RING_F_EVENT_IDX;
    struct virtio_net_config c = { .status = VIRTIO_NET_S_LINK_UP, .max_virtqueue_pairs = 2, .mtu = 1500 };
    memcpy(c.mac, MAC, 6);
    memcpy(D.devcfg, &c, sizeof(c));
    D.on_notify = on_notify;
    ctrl_ack = VIRTIO_NET_OK;
    ctrl_seen_len = 0;
    GM.fd = -1;
    return 0;
}

static int teardown(void **state)
{
    fv_fini(&D);
    guest_mem_destroy(&GM);
    return 0;
}

static struct guest_net *open_with(const struct guest_net_opts *o)
{
    assert_int_equal(guest_mem_create(&GM, guest_net_mem_needed(o)), 0);
    return guest_net_open(&D.t, &GM, IOVA, o);
}

static uint16_t avail_idx(uint16_t q)
{
    uint16_t *p = fv_ptr(&D, D.q[q].avail + 2, 2);
    assert_non_null(p);
    return *p;
}

static void make_frame(uint8_t *f, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        f[i] = (uint8_t)(seed + i * 7);
}

/* The device receives one frame on rx queue q, over as many buffers as it takes. */
static void deliver(uint16_t q, const uint8_t *frame, size_t len, bool mrg)
{
    struct virtio_net_hdr_v1 h = { .gso_type = VIRTIO_NET_HDR_GSO_NONE, .num_buffers = 1 };
    uint8_t pkt[16384];
    memcpy(pkt + HDR, frame, len);
    size_t total = HDR + len, off = 0;
    unsigned n = 0;
    struct fv_elem e[16];
    while (off < total) {
        assert_int_equal(fv_pop(&D, q, &e[n]), 1);
        size_t room = e[n].seg[0].len, k = room < total - off ? room : total - off;
        if (!mrg)
            assert_true(room >= total);
        off += k;
        n++;
    }
    h.num_buffers = (uint16_t)n;
    memcpy(pkt, &h, HDR);
    off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t k = fv_write_in(&D, &e[i], 0, pkt + off, total - off);
        fv_fill(&D, q, i, e[i].head, (uint32_t)k);
        off += k;
    }
    fv_flush(&D, q, n);
}

static void test_open_close(void **state)
{
    struct guest_net_opts o = { .ring_size = 64, .rx_buf_size = 2048, .tx_buf_size = 2048 };
    struct guest_net *g = open_with(&o);
    assert_non_null(g);
    uint64_t want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_ACCESS_PLATFORM | 1ull << VIRTIO_NET_F_MAC |
                    1ull << VIRTIO_NET_F_MTU | 1ull << VIRTIO_NET_F_STATUS;
    assert_int_equal(D.drv_features, want);
    assert_int_equal(guest_net_features(g), want);
    assert_int_equal(D.status, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                               VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    assert_int_equal(guest_net_status(g), D.status);
    assert_int_equal(D.nmaps, 1);
    assert_int_equal(D.map[0].iova, IOVA);
    assert_int_equal(D.map[0].len, GM.size);
    assert_true(D.cfg[PCI_COMMAND] & PCI_COMMAND_MASTER);
    for (unsigned q = 0; q < 2; q++) {
        assert_int_equal(D.q[q].enable, 1);
        assert_int_equal(D.q[q].size, 64);
        assert_int_equal(D.q[q].msix, VFE_VIRTIO_MSI_NO_VECTOR);
    }
    assert_int_equal(D.q[2].enable, 0);
    assert_int_equal(D.q[CTRLQ].enable, 0);
    assert_int_equal(avail_idx(0), 64);    /* rx filled */
    assert_int_equal(avail_idx(1), 0);
    assert_int_equal(D.q[0].notifies, 1);  /* rx kicked after DRIVER_OK */
    uint8_t mac[6];
    guest_net_mac(g, mac);
    assert_memory_equal(mac, MAC, 6);
    assert_int_equal(guest_net_mtu(g), 1500);
    guest_net_close(g);
    assert_int_equal(D.status, 0);
    assert_int_equal(D.nmaps, 0);
}

static void test_send(void **state)
{
    struct guest_net_opts o = { .ring_size = 64, .rx_buf_size = 2048, .tx_buf_size = 2048 };
    struct guest_net *g = open_with(&o);
    assert_non_null(g);
    uint8_t f[100], got[200];
    make_frame(f, sizeof(f), 1);
    assert_int_equal(guest_net_send(g, 0, f, sizeof(f)), 0);
    assert_int_equal(D.q[1].notifies, 1);
    assert_int_equal(guest_net_kick_count(g, 1), 1);
    struct fv_elem e;
    assert_int_equal(fv_pop(&D, 1, &e), 1);
    assert_int_equal(e.n, 1);
    assert_false(e.seg[0].write);
    assert_int_equal(e.seg[0].len, HDR + sizeof(f));
    assert_int_equal(fv_read_out(&D, &e, got, sizeof(got)), HDR + sizeof(f));
    static const uint8_t zero[HDR];
    assert_memory_equal(got, zero, HDR);
    assert_memory_equal(got + HDR, f, sizeof(f));
    fv_push(&D, 1, e.head, 0);
    assert_int_equal(guest_net_reclaim_tx(g, 0), 1);

    for (unsigned i = 0; i < 64; i++)
        assert_int_equal(guest_net_send(g, 0, f, sizeof(f)), 0);
    assert_int_equal(guest_net_send(g, 0, f, sizeof(f)), -ENOSPC);
    assert_int_equal(fv_pop(&D, 1, &e), 1);
    fv_push(&D, 1, e.head, 0);
    assert_int_equal(guest_net_send(g, 0, f, sizeof(f)), 0);   /* reclaimed on the way */

    assert_int_equal(guest_net_send(g, 1, f, sizeof(f)), -EINVAL);
    assert_int_equal(guest_net_send(g, 0, f, 2048 - HDR + 1), -EINVAL);
    assert_int_equal(guest_net_send(g, 0, f, 0), -EINVAL);
    guest_net_close(g);
}

static void test_recv(void **state)
{
    struct guest_net_opts o = { .ring_size = 64, .rx_buf_size = 2048, .tx_buf_size = 2048 };
    struct guest_net *g = open_with(&o);
    assert_non_null(g);
    uint8_t f[1514], got[2048];
    make_frame(f, sizeof(f), 9);
    assert_int_equal(guest_net_recv(g, 0, got, sizeof(got), 20), -ETIMEDOUT);
    deliver(0, f, sizeof(f), false);
    assert_int_equal(guest_net_recv(g, 0, got, sizeof(got), 100), sizeof(f));
    assert_memory_equal(got, f, sizeof(f));
    assert_int_equal(avail_idx(0), 65);   /* buffer reposted */
    deliver(0, f, 60, false);
    assert_int_equal(guest_net_recv(g, 0, got, 59, 100), -EMSGSIZE);
    deliver(0, f, 60, false);
    assert_int_equal(guest_net_recv(g, 0, got, sizeof(got), 100), 60);
    assert_int_equal(guest_net_recv(g, 1, got, sizeof(got), 10), -EINVAL);
    guest_net_close(g);
}

static void test_recv_mergeable(void **state)
{
    struct guest_net_opts o = { .ring_size = 32, .mrg_rxbuf = true, .rx_buf_size = 128, .tx_buf_size = 2048 };
    struct guest_net *g = open_with(&o);
    assert_non_null(g);
    assert_true(guest_net_features(g) & (1ull << VIRTIO_NET_F_MRG_RXBUF));
    uint8_t f[300], got[512];
    make_frame(f, sizeof(f), 3);
    deliver(0, f, sizeof(f), true);       /* 312 bytes: 3 buffers of 128 */
    assert_int_equal(guest_net_recv(g, 0, got, sizeof(got), 100), sizeof(f));
    assert_memory_equal(got, f, sizeof(f));
    assert_int_equal(avail_idx(0), 32 + 3);

    /* num_buffers 0 is garbage */
    struct fv_elem e;
    assert_int_equal(fv_pop(&D, 0, &e), 1);
    struct virtio_net_hdr_v1 h = { .num_buffers = 0 };
    fv_write_in(&D, &e, 0, &h, sizeof(h));
    fv_push(&D, 0, e.head, 80);
    assert_int_equal(guest_net_recv(g, 0, got, sizeof(got), 100), -EPROTO);
    assert_int_equal(avail_idx(0), 32 + 4);   /* and the buffer is not lost */
    guest_net_close(g);
}

static void test_two_pairs(void **state)
{
    struct guest_net_opts o = { .pairs = 2, .ring_size = 32, .rx_buf_size = 2048, .tx_buf_size = 2048 };
    struct guest_net *g = open_with(&o);
    assert_non_null(g);
    assert_true(D.drv_features & (1ull << VIRTIO_NET_F_MQ));
    assert_true(D.drv_features & (1ull << VIRTIO_NET_F_CTRL_VQ));
    for (unsigned q = 0; q <= CTRLQ; q++)
        assert_int_equal(D.q[q].enable, 1);
    assert_int_equal(ctrl_seen_len, 4);
    assert_int_equal(ctrl_seen[0], VIRTIO_NET_CTRL_MQ);
    assert_int_equal(ctrl_seen[1], VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET);
    assert_int_equal(ctrl_seen[2] | ctrl_seen[3] << 8, 2);

    uint8_t f[80], got[2048];
    make_frame(f, sizeof(f), 5);
    deliver(2, f, sizeof(f), false);
    assert_int_equal(guest_net_recv(g, 0, got, sizeof(got), 10), -ETIMEDOUT);
    assert_int_equal(guest_net_recv(g, 1, got, sizeof(got), 100), sizeof(f));
    assert_int_equal(guest_net_send(g, 1, f, sizeof(f)), 0);
    assert_int_equal(D.q[3].notifies, 1);

    uint8_t on = 1;
    assert_int_equal(guest_net_ctrl(g, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1, 100), 0);
    ctrl_ack = VIRTIO_NET_ERR;
    assert_int_equal(guest_net_ctrl(g, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1, 100), -EIO);
    guest_net_close(g);
}

static void test_two_pairs_refused(void **state)
{
    ctrl_ack = VIRTIO_NET_ERR;
    struct guest_net_opts o = { .pairs = 2, .ring_size = 32, .rx_buf_size = 2048, .tx_buf_size = 2048 };
    assert_null(open_with(&o));
    assert_int_equal(errno, EIO);
    assert_int_equal(D.status, 0);      /* left reset */
    assert_int_equal(D.nmaps, 0);
}

static void test_open_failures(void **state)
{
    struct guest_net_opts o = { .pairs = 3, .ring_size = 32, .rx_buf_size = 2048, .tx_buf_size = 2048 };
    assert_null(open_with(&o));        /* device has 2 pairs */
    assert_int_equal(errno, EINVAL);
    guest_mem_destroy(&GM);

    o.pairs = 2;
    D.dev_features &= ~(1ull << VIRTIO_NET_F_MQ);
    assert_null(open_with(&o));
    assert_int_equal(errno, ENOTSUP);
    guest_mem_destroy(&GM);

    o.pairs = 1;
    D.refuse_features = true;
    assert_null(open_with(&o));
    assert_int_equal(errno, EIO);
    guest_mem_destroy(&GM);

    D.refuse_features = false;
    assert_int_equal(guest_mem_create(&GM, 4096), 0);
    assert_null(guest_net_open(&D.t, &GM, IOVA, &o));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(D.nmaps, 0);
}

static void test_irqs_event_idx(void **state)
{
    struct guest_net_opts o = { .ring_size = 32, .rx_buf_size = 2048, .tx_buf_size = 2048, .use_irq = true,
                                .event_idx = true };
    struct guest_net *g = open_with(&o);
    assert_non_null(g);
    assert_true(D.drv_features & (1ull << VIRTIO_RING_F_EVENT_IDX));
    assert_int_equal(D.msix_config, 0);
    assert_int_equal(D.q[0].msix, 1);
    assert_int_equal(D.q[1].msix, 2);
    assert_true(D.irq_fds[0] >= 0 && D.irq_fds[1] >= 0 && D.irq_fds[2] >= 0);
    assert_true(D.cfg[FV_CAP_MSIX + 3] & (PCI_MSIX_FLAGS_ENABLE >> 8));

    uint8_t f[64], got[2048];
    make_frame(f, sizeof(f), 11);
    deliver(0, f, sizeof(f), false);
    assert_int_equal(guest_net_irq_count(g, 0), 1);
    assert_int_equal(guest_net_recv(g, 0, got, sizeof(got), 100), sizeof(f));
    deliver(0, f, sizeof(f), false);     /* used_event followed the driver: interrupts again */
    assert_int_equal(guest_net_irq_count(g, 0), 2);
    assert_int_equal(guest_net_recv(g, 0, got, sizeof(got), 100), sizeof(f));
    assert_int_equal(guest_net_irq_count(g, 1), 0);
    assert_int_equal(guest_net_irq_count(g, GUEST_NET_CONFIG_IRQ), 0);

    /* event_idx on the kick side: the device asks for no kick until avail idx passes 100 */
    uint16_t *avail_event = fv_ptr(&D, D.q[1].used + 4 + 8 * 32, 2);
    *avail_event = 100;
    assert_int_equal(guest_net_send(g, 0, f, sizeof(f)), 0);
    assert_int_equal(D.q[1].notifies, 0);
    *avail_event = 1;
    assert_int_equal(guest_net_send(g, 0, f, sizeof(f)), 0);   /* 1 -> 2 crosses 1 */
    assert_int_equal(D.q[1].notifies, 1);
    guest_net_close(g);
    assert_int_equal(D.irq_fds[1], -1);   /* detached */
}

static void test_raw_desc(void **state)
{
    struct guest_net_opts o = { .ring_size = 8, .rx_buf_size = 2048, .tx_buf_size = 2048 };
    struct guest_net *g = open_with(&o);
    assert_non_null(g);
    assert_int_equal(guest_net_send_raw_desc(g, 0, 0xdead0000ull, 64), 0);
    struct fv_elem e;
    assert_int_equal(fv_pop(&D, 1, &e), 1);
    assert_int_equal(e.seg[0].iova, 0xdead0000ull);
    assert_int_equal(e.seg[0].len, 64);
    assert_false(e.seg[0].write);
    assert_int_equal(D.q[1].notifies, 1);
    fv_push(&D, 1, e.head, 0);
    assert_int_equal(guest_net_reclaim_tx(g, 0), 1);
    uint8_t f[64] = { 0 };
    for (unsigned i = 0; i < 8; i++)                /* all TX slots still free */
        assert_int_equal(guest_net_send(g, 0, f, sizeof(f)), 0);
    D.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    assert_true(guest_net_status(g) & VIRTIO_CONFIG_S_NEEDS_RESET);
    guest_net_close(g);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_close),
        T(test_send),
        T(test_recv),
        T(test_recv_mergeable),
        T(test_two_pairs),
        T(test_two_pairs_refused),
        T(test_open_failures),
        T(test_irqs_event_idx),
        T(test_raw_desc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
