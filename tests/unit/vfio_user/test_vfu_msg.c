/* vfio-user framing: round trips with fds, partial reads, bad sizes, fd limits, VERSION JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/vfio_user/vfu_msg.h"

static int sp[2];

static int setup(void **state)
{
    (void)state;
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
}

static int teardown(void **state)
{
    (void)state;
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    return 0;
}

static int count_open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the DIR's own fd */
}

static void write_all(int fd, const void *buf, size_t len)
{
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Raw send of bytes with nfds copies of fd attached. */
static void send_raw_fds(int sock, const void *buf, size_t len, int fd, unsigned nfds)
{
    int fds[VFU_RECV_FDS_SPACE];
    for (unsigned i = 0; i < nfds; i++)
        fds[i] = fd;
    char ctl[CMSG_SPACE(sizeof(fds))];
    memset(ctl, 0, sizeof(ctl));
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * nfds) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)len);
}

static void test_wire_bytes(void **state)
{
    (void)state;
    const uint8_t payload[3] = { 0xaa, 0xbb, 0xcc };
    assert_int_equal(vfu_msg_send_simple(sp[0], 0x1234, VFU_CMD_REGION_READ, VFU_F_TYPE_REPLY | VFU_F_ERROR,
                                         22, payload, sizeof(payload), NULL, 0, 1000), 0);
    uint8_t raw[19];
    assert_int_equal(read(sp[1], raw, sizeof(raw)), 19);
    const uint8_t expect[19] = {
        0x34, 0x12,             /* msg_id */
        0x09, 0x00,             /* command */
        0x13, 0x00, 0x00, 0x00, /* size 19 */
        0x21, 0x00, 0x00, 0x00, /* reply | error */
        0x16, 0x00, 0x00, 0x00, /* errno 22 */
        0xaa, 0xbb, 0xcc,
    };
    assert_memory_equal(raw, expect, sizeof(expect));
}

static void test_round_trip_fds(void **state)
{
    (void)state;
    int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
    int fds[2] = { e1, e2 };
    struct vfu_dma_map d = { .argsz = 32, .flags = 3, .offset = 0x1000, .addr = 0x200000, .size = 0x4000 };
    assert_int_equal(vfu_msg_send_simple(sp[0], 7, VFU_CMD_DMA_MAP, 0, 0, &d, sizeof(d), fds, 2, 1000), 0);

    struct vfu_reader r;
    vfu_reader_init(&r);
    struct vfu_msg m;
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), VFU_RD_MSG);
    assert_int_equal(m.hdr.msg_id, 7);
    assert_int_equal(m.hdr.cmd, VFU_CMD_DMA_MAP);
    assert_int_equal(m.hdr.size, 16 + 32);
    assert_int_equal(m.hdr.flags, 0);
    assert_int_equal(m.len, 32);
    assert_memory_equal(m.payload, &d, 32);
    assert_int_equal(m.nfds, 2);
    assert_false(m.fds_dropped);
    /* the received fds are the same eventfds */
    uint64_t one = 1, v = 0;
    assert_int_equal(write(m.fds[1], &one, 8), 8);
    assert_int_equal(read(e2, &v, 8), 8);
    assert_int_equal(v, 1);
    int taken = vfu_msg_take_fd(&m, 0);
    assert_true(taken >= 0);
    assert_int_equal(m.fds[0], -1);
    vfu_msg_free(&m);
    close(taken);
    close(e1);
    close(e2);
}

/* A message trickling in bytes at a time, fds with the first byte; then a second one. */
static void test_pieces(void **state)
{
    (void)state;
    int e = eventfd(0, EFD_CLOEXEC);
    uint8_t buf[16 + 5 + 16];
    struct vfu_hdr h = { .msg_id = 1, .cmd = VFU_CMD_REGION_WRITE, .size = 21 };
    memcpy(buf, &h, 16);
    memcpy(buf + 16, "hello", 5);
    struct vfu_hdr h2 = { .msg_id = 2, .cmd = VFU_CMD_DEVICE_RESET, .size = 16 };
    memcpy(buf + 21, &h2, 16);

    int fl = fcntl(sp[1], F_GETFL);
    fcntl(sp[1], F_SETFL, fl | O_NONBLOCK);
    struct vfu_reader r;
    vfu_reader_init(&r);
    struct vfu_msg m;
    assert_int_equal(vfu_reader_feed(&r, sp[1], &m), 0);
    send_raw_fds(sp[0], buf, 3, e, 1);
    assert_int_equal(vfu_reader_feed(&r, sp[1], &m), 0);
    write_all(sp[0], buf + 3, 15);          /* header done, 2 payload bytes */
    assert_int_equal(vfu_reader_feed(&r, sp[1], &m), 0);
    write_all(sp[0], buf + 18, 3 + 16);     /* rest, plus the whole next message */
    assert_int_equal(vfu_reader_feed(&r, sp[1], &m), VFU_RD_MSG);
    assert_int_equal(m.hdr.msg_id, 1);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.payload, "hello", 5);
    assert_int_equal(m.nfds, 1);
    vfu_msg_free(&m);
    assert_int_equal(vfu_reader_feed(&r, sp[1], &m), VFU_RD_MSG);
    assert_int_equal(m.hdr.msg_id, 2);
    assert_int_equal(m.hdr.cmd, VFU_CMD_DEVICE_RESET);
    assert_int_equal(m.len, 0);
    assert_null(m.payload);
    assert_int_equal(m.nfds, 0);
    vfu_msg_free(&m);
    assert_int_equal(vfu_reader_feed(&r, sp[1], &m), 0);
    close(sp[0]);
    sp[0] = -1;
    assert_int_equal(vfu_reader_feed(&r, sp[1], &m), -ECONNRESET);
    close(e);
}

static void test_short_header(void **state)
{
    (void)state;
    struct vfu_hdr h = { .msg_id = 1, .cmd = 1, .size = 16 };
    write_all(sp[0], &h, 8);
    struct vfu_reader r;
    vfu_reader_init(&r);
    struct vfu_msg m;
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 50), -ETIMEDOUT);
    shutdown(sp[0], SHUT_WR);
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), -EPROTO);
    vfu_reader_reset(&r);
}

static void test_short_payload_eof(void **state)
{
    (void)state;
    struct vfu_hdr h = { .msg_id = 1, .cmd = VFU_CMD_REGION_READ, .size = 16 + 16 };
    write_all(sp[0], &h, 16);
    write_all(sp[0], "12345678", 8);
    shutdown(sp[0], SHUT_WR);
    struct vfu_reader r;
    vfu_reader_init(&r);
    struct vfu_msg m;
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), -EPROTO);
    vfu_reader_reset(&r);
}

static void test_size_out_of_range(void **state)
{
    (void)state;
    struct vfu_reader r;
    struct vfu_msg m;
    struct vfu_hdr h = { .msg_id = 1, .cmd = 1, .size = VFU_MAX_MSG_SIZE + 1 };
    write_all(sp[0], &h, 16);
    vfu_reader_init(&r);
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), -EMSGSIZE);
    vfu_reader_reset(&r);

    h.size = 15;   /* below the header */
    write_all(sp[0], &h, 16);
    vfu_reader_init(&r);
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), -EMSGSIZE);
    vfu_reader_reset(&r);

    h.size = 0xffffffffu;
    write_all(sp[0], &h, 16);
    vfu_reader_init(&r);
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), -EMSGSIZE);
    vfu_reader_reset(&r);

    /* exactly the maximum is accepted */
    r.max_size = 16 + 4;
    h.size = 16 + 4;
    write_all(sp[0], &h, 16);
    write_all(sp[0], "abcd", 4);
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), VFU_RD_MSG);
    assert_int_equal(m.len, 4);
    vfu_msg_free(&m);
}

static void test_too_many_fds_closed(void **state)
{
    (void)state;
    int e = eventfd(0, EFD_CLOEXEC);
    int before = count_open_fds();
    struct vfu_hdr h = { .msg_id = 9, .cmd = VFU_CMD_DEVICE_SET_IRQS, .size = 16 };
    send_raw_fds(sp[0], &h, 16, e, VFU_MAX_MSG_FDS + 6);
    struct vfu_reader r;
    vfu_reader_init(&r);
    struct vfu_msg m;
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), VFU_RD_MSG);
    assert_true(m.fds_dropped);
    assert_int_equal(m.nfds, VFU_MAX_MSG_FDS);
    assert_int_equal(count_open_fds(), before + (int)VFU_MAX_MSG_FDS);
    vfu_msg_free(&m);
    assert_int_equal(count_open_fds(), before);

    /* a reader limited to one fd keeps one and closes the other */
    r.max_fds = 1;
    send_raw_fds(sp[0], &h, 16, e, 2);
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 1000), VFU_RD_MSG);
    assert_true(m.fds_dropped);
    assert_int_equal(m.nfds, 1);
    vfu_msg_free(&m);
    assert_int_equal(count_open_fds(), before);
    close(e);
}

static void test_send_limits(void **state)
{
    (void)state;
    int fds[VFU_MAX_MSG_FDS + 1] = { 0 };
    assert_int_equal(vfu_msg_send_simple(sp[0], 1, 1, 0, 0, NULL, 0, fds, VFU_MAX_MSG_FDS + 1, 100), -EINVAL);
    void *big = calloc(1, VFU_MAX_MSG_SIZE);
    assert_int_equal(vfu_msg_send_simple(sp[0], 1, 1, 0, 0, big, VFU_MAX_MSG_SIZE, NULL, 0, 100), -EMSGSIZE);
    free(big);
}

/* A large message goes out whole even when the socket buffer is smaller. */
static void test_large_message(void **state)
{
    (void)state;
    size_t len = VFU_MAX_DATA_XFER + 16;
    uint8_t *p = malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7);
    pid_t pid = fork();
    if (pid == 0) {
        close(sp[1]);
        _exit(vfu_msg_send_simple(sp[0], 3, VFU_CMD_REGION_WRITE, 0, 0, p, len, NULL, 0, 5000) == 0 ? 0 : 1);
    }
    struct vfu_reader r;
    vfu_reader_init(&r);
    struct vfu_msg m;
    assert_int_equal(vfu_msg_recv(&r, sp[1], &m, 5000), VFU_RD_MSG);
    assert_int_equal(m.len, len);
    assert_memory_equal(m.payload, p, len);
    vfu_msg_free(&m);
    free(p);
    int st = -1;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_caps_encode(void **state)
{
    (void)state;
    struct vfu_caps c;
    vfu_caps_ours(&c);
    char *s = vfu_caps_encode(&c);
    assert_string_equal(s, "{\"capabilities\":{\"max_data_xfer_size\":1048576,\"max_msg_fds\":64,"
                           "\"pgsizes\":4096,\"vfe\":{\"ioeventfd\":32513,\"version\":1}}}");
    struct vfu_caps back;
    assert_int_equal(vfu_caps_parse(s, strlen(s) + 1, &back), 0);
    assert_int_equal(back.max_msg_fds, 64);
    assert_int_equal(back.max_data_xfer_size, 1048576);
    assert_true(back.vfe_ioeventfd);
    free(s);

    size_t len;
    uint8_t *v = vfu_version_build(&c, &len);
    uint16_t major = 9, minor = 9;
    assert_int_equal(vfu_version_parse(v, len, &major, &minor, &back), 0);
    assert_int_equal(major, 0);
    assert_int_equal(minor, 1);
    assert_true(back.vfe_ioeventfd);
    free(v);
}

#define J(s) s, sizeof(s)   /* text and length including its NUL */

static void test_caps_parse_good(void **state)
{
    (void)state;
    struct vfu_caps c;
    assert_int_equal(vfu_caps_parse(J("{}"), &c), 0);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(c.max_data_xfer_size, 1048576);
    assert_false(c.vfe_ioeventfd);

    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":4096,"
                                      "\"unknown\":[1,2]}}"), &c), 0);
    assert_int_equal(c.max_msg_fds, 8);
    assert_int_equal(c.max_data_xfer_size, 4096);
    assert_false(c.vfe_ioeventfd);

    /* another vendor's number for the command is not our extension */
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":{\"vfe\":{\"version\":1,\"ioeventfd\":99}}}"), &c), 0);
    assert_false(c.vfe_ioeventfd);

    uint8_t v4[4] = { 0, 0, 1, 0 };
    uint16_t major, minor;
    assert_int_equal(vfu_version_parse(v4, 4, &major, &minor, &c), 0);
    assert_int_equal(minor, 1);
    assert_int_equal(c.max_msg_fds, 1);
}

static void test_caps_parse_bad(void **state)
{
    (void)state;
    struct vfu_caps c;
    assert_int_equal(vfu_caps_parse("{}", 2, &c), -EINVAL);                     /* no NUL */
    assert_int_equal(vfu_caps_parse(J("{}\0{}"), &c), -EINVAL);                 /* embedded NUL */
    assert_int_equal(vfu_caps_parse(J("[1]"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":7}"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":{\"max_msg_fds\":-1}}"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":{\"max_msg_fds\":\"8\"}}"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":{\"max_msg_fds\":1.5}}"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":{\"max_data_xfer_size\":0}}"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":{\"max_data_xfer_size\":4294967296}}"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"capabilities\":{\"vfe\":true}}"), &c), -EINVAL);
    assert_int_equal(vfu_caps_parse(J("{\"a\":1,\"a\":2}"), &c), -EINVAL);
    uint16_t major, minor;
    assert_int_equal(vfu_version_parse("\0\0\1", 3, &major, &minor, &c), -EINVAL);
    uint8_t v[6] = { 0, 0, 1, 0, '{', '}' };                                   /* JSON without NUL */
    assert_int_equal(vfu_version_parse(v, sizeof(v), &major, &minor, &c), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wire_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_payload_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_fds_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_message, setup, teardown),
        cmocka_unit_test(test_caps_encode),
        cmocka_unit_test(test_caps_parse_good),
        cmocka_unit_test(test_caps_parse_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
