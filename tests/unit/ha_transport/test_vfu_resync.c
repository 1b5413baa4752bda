/*
 * vfe_vfio_user_adopt() against a scripted server on a socketpair: the resync
 * drops stale replies (even one that carries the first probe's id and
 * command), refuses a stream that starts inside a message (-EPROTO, fd left
 * to the caller), is bounded by the timeout, reports a closed peer, and the
 * adopted client then works.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "lib/vfio_user/vfu_msg.h"

#define BDF "0000:3b:00.1"

/* Version 1 of the vfio-user transport blob, as vfe_transport.h's HA contract stores it. */
struct blob_v1 {
    uint32_t magic;
    uint16_t version, kind;
    uint32_t len, nfds;
    char bdf[32];
    uint32_t xfer_max, fds_max, peer_max_msg_fds, peer_max_data_xfer;
    uint64_t peer_pgsizes;
    uint32_t flags, dev_flags, num_regions, num_irqs;
    uint16_t next_id, reserved[3];
};

static struct blob_v1 good_blob(void)
{
    struct blob_v1 b = {.magic = VFE_TRANSPORT_BLOB_MAGIC, .version = VFE_TRANSPORT_BLOB_VERSION,
                        .kind = VFE_TRANSPORT_KIND_VFIO_USER, .len = sizeof(b), .nfds = 1, .bdf = BDF,
                        .xfer_max = 4096, .fds_max = 8, .peer_max_msg_fds = 8, .peer_max_data_xfer = 4096,
                        .peer_pgsizes = 4096, .dev_flags = VFIO_DEVICE_FLAGS_PCI, .num_regions = 9,
                        .num_irqs = 5, .next_id = 10};
    return b;
}

enum script { SCRIPT_STALE, SCRIPT_SILENT_B, SCRIPT_CLOSE };

struct srv {
    int fd;
    enum script script;
    pthread_t thr;
    unsigned reads;
};

static void send_info_reply(int fd, uint16_t id, bool error)
{
    struct vfu_region_info r = {.argsz = sizeof(r), .index = VFE_REGION_CONFIG, .size = 4096,
                                .flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE};
    assert_int_equal(vfu_msg_send_simple(fd, id, VFU_CMD_DEVICE_GET_REGION_INFO,
                                         VFU_F_TYPE_REPLY | (error ? VFU_F_ERROR : 0), error ? EIO : 0, &r,
                                         sizeof(r), NULL, 0, 1000), 0);
}

static void *serve(void *arg)
{
    struct srv *s = arg;
    struct vfu_reader rd;
    vfu_reader_init(&rd);
    struct vfu_msg a, b;
    if (s->script == SCRIPT_CLOSE) {
        vfu_msg_recv(&rd, s->fd, &a, 2000);
        vfu_msg_free(&a);
        shutdown(s->fd, SHUT_RDWR);
        return NULL;
    }
    assert_int_equal(vfu_msg_recv(&rd, s->fd, &a, 2000), VFU_RD_MSG);
    assert_int_equal(vfu_msg_recv(&rd, s->fd, &b, 2000), VFU_RD_MSG);
    assert_int_equal(a.hdr.cmd, VFU_CMD_DEVICE_GET_REGION_INFO);
    assert_int_equal(b.hdr.cmd, VFU_CMD_DEVICE_GET_REGION_INFO);
    assert_int_equal((uint16_t)(a.hdr.msg_id + 1), b.hdr.msg_id);
    /* the predecessor's late replies come first: one to a read, an error, one that collides with a */
    struct vfu_region_access ra = {.offset = 0, .region = VFE_REGION_CONFIG, .count = 4};
    uint8_t rr[sizeof(ra) + 4] = {0};
    memcpy(rr, &ra, sizeof(ra));
    assert_int_equal(vfu_msg_send_simple(s->fd, 77, VFU_CMD_REGION_READ, VFU_F_TYPE_REPLY, 0, rr, sizeof(rr), NULL,
                                         0, 1000), 0);
    send_info_reply(s->fd, 78, true);
    send_info_reply(s->fd, a.hdr.msg_id, false);   /* stale, same id and command as probe a */
    send_info_reply(s->fd, a.hdr.msg_id, false);
    if (s->script == SCRIPT_SILENT_B)
        goto out;
    send_info_reply(s->fd, b.hdr.msg_id, false);
    /* then serve config space: ids must follow the probes */
    for (;;) {
        struct vfu_msg m;
        if (vfu_msg_recv(&rd, s->fd, &m, 3000) != VFU_RD_MSG)
            break;
        assert_int_equal(m.hdr.msg_id, (uint16_t)(b.hdr.msg_id + 1 + s->reads));
        s->reads++;
        if (m.hdr.cmd == VFU_CMD_DEVICE_GET_REGION_INFO) {
            send_info_reply(s->fd, m.hdr.msg_id, false);
            vfu_msg_free(&m);
            continue;
        }
        assert_int_equal(m.hdr.cmd, VFU_CMD_REGION_READ);
        struct vfu_region_access q;
        memcpy(&q, m.payload, sizeof(q));
        uint8_t rep[sizeof(q) + 64];
        memcpy(rep, &q, sizeof(q));
        memset(rep + sizeof(q), 0xab, q.count);
        assert_int_equal(vfu_msg_send_simple(s->fd, m.hdr.msg_id, m.hdr.cmd, VFU_F_TYPE_REPLY, 0, rep,
                                             sizeof(q) + q.count, NULL, 0, 1000), 0);
        vfu_msg_free(&m);
    }
out:
    vfu_msg_free(&a);
    vfu_msg_free(&b);
    vfu_reader_reset(&rd);
    return NULL;
}

static int pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

static void test_stale_replies_dropped(void **state)
{
    int sv[2];
    assert_int_equal(pair(sv), 0);
    struct srv s = {.fd = sv[1], .script = SCRIPT_STALE};
    assert_int_equal(pthread_create(&s.thr, NULL, serve, &s), 0);
    struct blob_v1 b = good_blob();
    struct vfe_transport *t = NULL;
    assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b), &sv[0], 1, &t), 0);
    uint8_t buf[8];
    assert_int_equal(vfe_cfg_read(t, 8, buf, 8), 0);
    assert_int_equal(buf[0], 0xab);
    assert_int_equal(vfe_cfg_read(t, 16, buf, 4), 0);
    vfe_transport_close(t);   /* closes sv[0]: the server's loop ends */
    pthread_join(s.thr, NULL);
    assert_int_equal(s.reads, 3);   /* region info, then two reads */
    close(sv[1]);
}

static void test_timeout_bounded(void **state)
{
    int sv[2];
    assert_int_equal(pair(sv), 0);
    struct srv s = {.fd = sv[1], .script = SCRIPT_SILENT_B};
    assert_int_equal(pthread_create(&s.thr, NULL, serve, &s), 0);
    struct blob_v1 b = good_blob();
    struct vfe_transport *t = NULL;
    assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b), &sv[0], 1, &t), -ETIMEDOUT);
    assert_null(t);
    assert_true(fcntl(sv[0], F_GETFD) >= 0);   /* still the caller's */
    pthread_join(s.thr, NULL);
    close(sv[0]);
    close(sv[1]);
}

static void test_peer_closed(void **state)
{
    int sv[2];
    assert_int_equal(pair(sv), 0);
    struct srv s = {.fd = sv[1], .script = SCRIPT_CLOSE};
    assert_int_equal(pthread_create(&s.thr, NULL, serve, &s), 0);
    struct blob_v1 b = good_blob();
    struct vfe_transport *t = NULL;
    int rc = vfe_vfio_user_adopt(BDF, &b, sizeof(b), &sv[0], 1, &t);
    assert_true(rc == -ECONNRESET || rc == -EPIPE);
    pthread_join(s.thr, NULL);
    close(sv[0]);
    close(sv[1]);
}

/* The predecessor read 6 bytes of a reply's header: what is left is no header. */
static void test_torn_message(void **state)
{
    int sv[2];
    assert_int_equal(pair(sv), 0);
    struct vfu_hdr h = {.msg_id = 5, .cmd = VFU_CMD_REGION_READ, .size = sizeof(h) + 24, .flags = VFU_F_TYPE_REPLY};
    uint8_t body[24];
    memset(body, 0x11, sizeof(body));
    assert_int_equal(write(sv[1], (uint8_t *)&h + 6, sizeof(h) - 6), (ssize_t)(sizeof(h) - 6));
    assert_int_equal(write(sv[1], body, sizeof(body)), (ssize_t)sizeof(body));
    struct blob_v1 b = good_blob();
    struct vfe_transport *t = NULL;
    assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b), &sv[0], 1, &t), -EPROTO);
    assert_null(t);
    assert_true(fcntl(sv[0], F_GETFD) >= 0);
    close(sv[0]);
    close(sv[1]);
}

/* Every field is checked before the socket is touched. */
static void test_bad_fields(void **state)
{
    int sv[2];
    assert_int_equal(pair(sv), 0);
    struct vfe_transport *t = NULL;
    struct blob_v1 b;
#define BAD(field, value, err) do { b = good_blob(); b.field = value; \
        assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b), &sv[0], 1, &t), err); } while (0)
    BAD(magic, 0x12345678, -EPROTO);
    BAD(version, VFE_TRANSPORT_BLOB_VERSION + 1, -EPROTO);
    BAD(kind, 9, -EPROTO);
    BAD(len, sizeof(b) + 1, -EPROTO);
    BAD(nfds, 2, -EINVAL);
    BAD(xfer_max, 0, -EINVAL);
    BAD(xfer_max, 8192, -EINVAL);   /* more than the peer takes */
    BAD(fds_max, 0, -EINVAL);
    BAD(fds_max, 1000, -EINVAL);
    BAD(peer_pgsizes, 0, -EINVAL);
    BAD(flags, 0x80, -EINVAL);
    BAD(dev_flags, 0, -EINVAL);
    BAD(num_regions, 2, -EINVAL);
    BAD(num_irqs, 100, -EINVAL);
    BAD(reserved[1], 1, -EINVAL);
    b = good_blob();
    memset(b.bdf, 'x', sizeof(b.bdf));
    assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b), &sv[0], 1, &t), -EINVAL);
    b = good_blob();
    assert_int_equal(vfe_vfio_user_adopt("0000:3b:00.2", &b, sizeof(b), &sv[0], 1, &t), -EINVAL);
    assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b) - 1, &sv[0], 1, &t), -EPROTO);
    assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b), &sv[0], 0, &t), -EINVAL);
    int notsock = -1;
    assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b), &notsock, 1, &t), -EINVAL);
    int dgram[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dgram), 0);
    assert_int_equal(vfe_vfio_user_adopt(BDF, &b, sizeof(b), &dgram[0], 1, &t), -EINVAL);
    close(dgram[0]);
    close(dgram[1]);
    assert_null(t);
    /* nothing was sent */
    char c;
    assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    /* the generic entry checks the head too */
    b = good_blob();
    assert_int_equal(vfe_transport_adopt("/nonexistent", BDF, &b, sizeof(b), &sv[0], 1, &t), -EINVAL);
    assert_int_equal(vfe_transport_adopt("/nonexistent", BDF, &b, 3, &sv[0], 1, &t), -EPROTO);
    assert_int_equal(vfe_transport_adopt("/nonexistent", "../../etc", &b, sizeof(b), &sv[0], 1, &t), -EINVAL);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_replies_dropped),
        cmocka_unit_test(test_timeout_bounded),
        cmocka_unit_test(test_peer_closed),
        cmocka_unit_test(test_torn_message),
        cmocka_unit_test(test_bad_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
