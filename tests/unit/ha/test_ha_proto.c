/*
 * The HA wire protocol (drivers/common/virtio_ha/vfe_ha_proto.c): encode and
 * decode round trips of every type; every rule of the table, each bound on
 * both sides; truncated, oversized and garbage packets; headers whose fd
 * count disagrees with the fds that came; other major versions; key syntax;
 * packets with fds through a real SOCK_SEQPACKET pair, including one larger
 * than the protocol allows (its fds must not leak).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "drivers/common/virtio_ha/vfe_ha_proto.h"

static uint8_t buf[VFE_HA_MAX_PACKET + 64];
static uint8_t body[VFE_HA_MAX_PACKET];

static int enc(uint16_t type, uint32_t flags, const char *key, size_t body_len, unsigned nfds)
{
    return vfe_ha_encode(buf, sizeof(buf), type, flags, 42, key, key ? strlen(key) : 0, body, body_len, nfds);
}

static int dec(size_t len, unsigned nfds)
{
    struct vfe_ha_msg m;
    const char *why = "unset";
    int rc = vfe_ha_decode(buf, len, nfds, &m, &why);
    if (rc == 0)
        assert_null(why);
    else
        assert_non_null(why);
    return rc;
}

static void hdr_edit(size_t off, const void *v, size_t n)
{
    memcpy(buf + off, v, n);
}

static void round_trip(void **state)
{
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 7 + 3);
    struct { uint16_t type; uint32_t flags; const char *key; size_t body_len; unsigned nfds; } cases[] = {
        {VFE_HA_HELLO, 0, NULL, 10, 0},
        {VFE_HA_PUT, 0, "vf/0000:3b:00.1", 1000, 3},
        {VFE_HA_PUT, VFE_HA_F_MORE, "vf/0000:3b:00.1", VFE_HA_MAX_PAYLOAD - 15, 64},
        {VFE_HA_DEL, 0, "pf/0000:3b:00.0", 0, 0},
        {VFE_HA_GET, 0, NULL, 0, 0},
        {VFE_HA_GET, 0, "vhost/vm-7@q0", 0, 0},
        {VFE_HA_STATUS, 0, NULL, 0, 0},
        {VFE_HA_ACK, 0, NULL, sizeof(struct vfe_ha_status), 0},
        {VFE_HA_ERR, 0, NULL, sizeof(struct vfe_ha_err_body) + 17, 0},
        {VFE_HA_RECORD, VFE_HA_F_MORE, "a", 5, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t klen = cases[i].key ? strlen(cases[i].key) : 0;
        int n = enc(cases[i].type, cases[i].flags, cases[i].key, cases[i].body_len, cases[i].nfds);
        assert_int_equal(n, (int)(VFE_HA_HDR_SIZE + klen + cases[i].body_len));
        struct vfe_ha_msg m;
        const char *why;
        assert_int_equal(vfe_ha_decode(buf, (size_t)n, cases[i].nfds, &m, &why), 0);
        assert_int_equal(m.hdr.magic, VFE_HA_MAGIC);
        assert_int_equal(m.hdr.major, VFE_HA_MAJOR);
        assert_int_equal(m.hdr.type, cases[i].type);
        assert_int_equal(m.hdr.flags, cases[i].flags);
        assert_int_equal(m.hdr.seq, 42);
        assert_int_equal(m.hdr.key_len, klen);
        assert_int_equal(m.hdr.nfds, cases[i].nfds);
        assert_int_equal(m.body_len, cases[i].body_len);
        if (klen)
            assert_memory_equal(m.key, cases[i].key, klen);
        if (cases[i].body_len)
            assert_memory_equal(m.body, body, cases[i].body_len);
        assert_string_equal(vfe_ha_type_name(cases[i].type) == NULL ? "" : "ok", "ok");
    }
    assert_string_equal(vfe_ha_type_name(99), "unknown");
    assert_string_equal(vfe_ha_type_name(0), "unknown");
}

static void encode_bounds(void **state)
{
    char key[VFE_HA_KEY_MAX + 2];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    assert_int_equal(enc(VFE_HA_PUT, 0, key, 0, 0), -EINVAL);          /* key too long */
    assert_int_equal(enc(VFE_HA_PUT, 0, "a", 0, VFE_HA_MAX_FDS + 1), -EINVAL);
    assert_int_equal(enc(VFE_HA_PUT, 0, "a", VFE_HA_MAX_PAYLOAD, 0), -EMSGSIZE);
    assert_int_equal(vfe_ha_encode(buf, 30, VFE_HA_STATUS, 0, 1, NULL, 0, body, 10, 0), -EMSGSIZE);
}

/* Every row of the table: the bounds pass, one past each fails with -EPROTO. */
static void rules_table(void **state)
{
    struct rule_case {
        uint16_t type;
        size_t key_min, key_max, body_min, body_max;
        unsigned fds_max;
        uint32_t flags;
    } rows[] = {
        {VFE_HA_HELLO, 0, 0, 0, 64, 0, 0},
        {VFE_HA_PUT, 1, VFE_HA_KEY_MAX, 0, VFE_HA_MAX_PAYLOAD, VFE_HA_MAX_FDS, VFE_HA_F_MORE},
        {VFE_HA_DEL, 1, VFE_HA_KEY_MAX, 0, 0, 0, 0},
        {VFE_HA_GET, 0, VFE_HA_KEY_MAX, 0, 0, 0, 0},
        {VFE_HA_STATUS, 0, 0, 0, 0, 0, 0},
        {VFE_HA_ACK, 0, 0, 0, 64, 0, 0},
        {VFE_HA_ERR, 0, 0, 4, 4 + VFE_HA_ERRMSG_MAX, 0, 0},
        {VFE_HA_RECORD, 1, VFE_HA_KEY_MAX, 0, VFE_HA_MAX_PAYLOAD, VFE_HA_MAX_FDS, VFE_HA_F_MORE},
    };
    char key[VFE_HA_KEY_MAX + 1];
    memset(key, 'k', sizeof(key));
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct rule_case *r = &rows[i];
        /* key bounds (body at its minimum) */
        size_t bmin = r->body_min;
        size_t klens[2] = {r->key_min, r->key_max};
        for (int j = 0; j < 2; j++) {
            size_t klen = klens[j];
            int n = vfe_ha_encode(buf, sizeof(buf), r->type, 0, 1, key, klen, body, bmin, 0);
            assert_true(n > 0);
            assert_int_equal(dec((size_t)n, 0), 0);
        }
        if (r->key_max < VFE_HA_KEY_MAX) {
            int n = vfe_ha_encode(buf, sizeof(buf), r->type, 0, 1, key, r->key_max + 1, body, bmin, 0);
            assert_int_equal(dec((size_t)n, 0), -EPROTO);
        }
        if (r->key_min > 0) {
            int n = vfe_ha_encode(buf, sizeof(buf), r->type, 0, 1, NULL, 0, body, bmin, 0);
            assert_int_equal(dec((size_t)n, 0), -EPROTO);
        }
        size_t klen = r->key_min;
        /* body bounds */
        int n = vfe_ha_encode(buf, sizeof(buf), r->type, 0, 1, key, klen, body, r->body_max, 0);
        if (klen + r->body_max <= VFE_HA_MAX_PAYLOAD)
            assert_int_equal(dec((size_t)n, 0), 0);
        if (klen + r->body_max + 1 <= VFE_HA_MAX_PAYLOAD) {
            n = vfe_ha_encode(buf, sizeof(buf), r->type, 0, 1, key, klen, body, r->body_max + 1, 0);
            assert_int_equal(dec((size_t)n, 0), -EPROTO);
        }
        if (r->body_min > 0) {
            n = vfe_ha_encode(buf, sizeof(buf), r->type, 0, 1, key, klen, body, r->body_min - 1, 0);
            assert_int_equal(dec((size_t)n, 0), -EPROTO);
        }
        /* fd bounds */
        n = vfe_ha_encode(buf, sizeof(buf), r->type, 0, 1, key, klen, body, bmin, r->fds_max);
        assert_int_equal(dec((size_t)n, r->fds_max), 0);
        if (r->fds_max < VFE_HA_MAX_FDS) {
            n = vfe_ha_encode(buf, sizeof(buf), r->type, 0, 1, key, klen, body, bmin, r->fds_max + 1);
            assert_int_equal(dec((size_t)n, r->fds_max + 1), -EPROTO);
        }
        /* flags: the allowed ones pass, any other bit fails */
        n = vfe_ha_encode(buf, sizeof(buf), r->type, r->flags, 1, key, klen, body, bmin, 0);
        assert_int_equal(dec((size_t)n, 0), 0);
        for (int bit = 0; bit < 32; bit++) {
            if (r->flags & (1u << bit))
                continue;
            n = vfe_ha_encode(buf, sizeof(buf), r->type, 1u << bit, 1, key, klen, body, bmin, 0);
            assert_int_equal(dec((size_t)n, 0), -EPROTO);
        }
    }
    /* unknown types */
    uint16_t bad_types[] = {0, VFE_HA_TYPE_MAX, 1000, 0xffff};
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        int n = vfe_ha_encode(buf, sizeof(buf), bad_types[i], 0, 1, NULL, 0, NULL, 0, 0);
        assert_int_equal(dec((size_t)n, 0), -EPROTO);
    }
}

/* PUT with F_SEND (1.2): the tail round-trips, the blob excludes it, and
 * every rule of the tail refuses with -EPROTO. */
static void send_tail(void **state)
{
    uint8_t blob[100], bytes[VFE_HA_SEND_MAX + 1];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (uint8_t)(0xa0 ^ i);
    uint32_t sizes[] = {0, 1, 12, VFE_HA_SEND_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int n = vfe_ha_encode_send(buf, sizeof(buf), 9, "vhost/q", 7, blob, sizeof(blob), 3, 2, bytes, sizes[i]);
        assert_int_equal(n, (int)(VFE_HA_HDR_SIZE + 7 + sizeof(blob) + sizes[i] + 8));
        struct vfe_ha_msg m;
        const char *why;
        assert_int_equal(vfe_ha_decode(buf, (size_t)n, 3, &m, &why), 0);
        assert_int_equal(m.hdr.flags, VFE_HA_F_SEND);
        assert_int_equal(m.hdr.type, VFE_HA_PUT);
        assert_int_equal(m.body_len, sizeof(blob));
        assert_memory_equal(m.body, blob, sizeof(blob));
        assert_non_null(m.send_bytes);
        assert_int_equal(m.send_len, sizes[i]);
        assert_int_equal(m.send_fd, 2);
        if (sizes[i])
            assert_memory_equal(m.send_bytes, bytes, sizes[i]);
    }
    /* an empty blob: the whole body is bytes + tail */
    int n = vfe_ha_encode_send(buf, sizeof(buf), 9, "k", 1, NULL, 0, 1, 0, bytes, 5);
    struct vfe_ha_msg m;
    assert_int_equal(vfe_ha_decode(buf, (size_t)n, 1, &m, NULL), 0);
    assert_int_equal(m.body_len, 0);
    assert_int_equal(m.send_len, 5);
    /* a plain PUT has no send part */
    n = enc(VFE_HA_PUT, 0, "k", 20, 0);
    assert_int_equal(vfe_ha_decode(buf, (size_t)n, 0, &m, NULL), 0);
    assert_null(m.send_bytes);
    assert_int_equal(m.body_len, 20);

    /* encoder bounds */
    assert_int_equal(vfe_ha_encode_send(buf, sizeof(buf), 9, "k", 1, blob, 1, 1, 0, bytes, VFE_HA_SEND_MAX + 1),
                     -EINVAL);
    assert_int_equal(vfe_ha_encode_send(buf, sizeof(buf), 9, "k", 1, NULL, 0, 1, 0, NULL, 4), -EINVAL);
    assert_int_equal(vfe_ha_encode_send(buf, sizeof(buf), 9, "k", 1, body, VFE_HA_MAX_PAYLOAD - 1 - 8, 1, 0, NULL, 0),
                     (int)VFE_HA_MAX_PACKET);
    assert_int_equal(vfe_ha_encode_send(buf, sizeof(buf), 9, "k", 1, body, VFE_HA_MAX_PAYLOAD - 1 - 7, 1, 0, NULL, 0),
                     -EMSGSIZE);
    assert_int_equal(vfe_ha_encode_send(buf, 60, 9, "k", 1, blob, 20, 1, 0, bytes, 8), -EMSGSIZE);

    /* F_SEND with MORE: never on a packet that is not the last */
    n = vfe_ha_encode_send(buf, sizeof(buf), 9, "k", 1, blob, 10, 1, 0, bytes, 4);
    struct vfe_ha_hdr h;
    memcpy(&h, buf, sizeof(h));
    h.flags |= VFE_HA_F_MORE;
    memcpy(buf, &h, sizeof(h));
    assert_int_equal(dec((size_t)n, 1), -EPROTO);
    /* F_SEND on any other type (the tail is there) */
    uint16_t others[] = {VFE_HA_HELLO, VFE_HA_DEL, VFE_HA_GET, VFE_HA_STATUS, VFE_HA_ACK, VFE_HA_ERR, VFE_HA_RECORD};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        n = vfe_ha_encode_send(buf, sizeof(buf), 9, "k", 1, NULL, 0, 0, 0, bytes, 4);
        memcpy(&h, buf, sizeof(h));
        h.type = others[i];
        memcpy(buf, &h, sizeof(h));
        assert_int_equal(dec((size_t)n, 0), -EPROTO);
    }
    /* no room for the tail: body of 0..7 bytes */
    for (size_t b = 0; b < sizeof(struct vfe_ha_send_tail); b++) {
        n = enc(VFE_HA_PUT, VFE_HA_F_SEND, "k", b, 0);
        assert_int_equal(dec((size_t)n, 0), -EPROTO);
    }
    /* len over VFE_HA_SEND_MAX, even when the body has room for it */
    struct vfe_ha_send_tail t = {0, VFE_HA_SEND_MAX + 1};
    memset(body, 0, VFE_HA_SEND_MAX + 1);
    memcpy(body + VFE_HA_SEND_MAX + 1, &t, sizeof(t));
    n = enc(VFE_HA_PUT, VFE_HA_F_SEND, "k", VFE_HA_SEND_MAX + 1 + sizeof(t), 0);
    assert_int_equal(dec((size_t)n, 0), -EPROTO);
    /* len beyond the body (one byte more than there is), and exactly the body */
    t.len = 11;
    memcpy(body + 10, &t, sizeof(t));
    n = enc(VFE_HA_PUT, VFE_HA_F_SEND, "k", 10 + sizeof(t), 0);
    assert_int_equal(dec((size_t)n, 0), -EPROTO);
    t.len = 10;
    memcpy(body + 10, &t, sizeof(t));
    n = enc(VFE_HA_PUT, VFE_HA_F_SEND, "k", 10 + sizeof(t), 0);
    assert_int_equal(dec((size_t)n, 0), 0);
    t.len = UINT32_MAX;   /* no wrap-around */
    memcpy(body + 10, &t, sizeof(t));
    n = enc(VFE_HA_PUT, VFE_HA_F_SEND, "k", 10 + sizeof(t), 0);
    assert_int_equal(dec((size_t)n, 0), -EPROTO);
}

static void truncated_and_oversized(void **state)
{
    int n = enc(VFE_HA_PUT, 0, "vf/1", 100, 0);
    for (int len = 0; len < n; len++) {
        int rc = dec((size_t)len, 0);
        assert_true(rc == -EBADMSG);
    }
    /* payload_len larger or smaller than what came */
    uint32_t pl = 200;
    hdr_edit(offsetof(struct vfe_ha_hdr, payload_len), &pl, sizeof(pl));
    assert_int_equal(dec((size_t)n, 0), -EBADMSG);
    pl = 10;
    hdr_edit(offsetof(struct vfe_ha_hdr, payload_len), &pl, sizeof(pl));
    assert_int_equal(dec((size_t)n, 0), -EBADMSG);
    /* key longer than the payload */
    n = enc(VFE_HA_PUT, 0, "vf/1", 0, 0);
    uint16_t kl = 5;
    hdr_edit(offsetof(struct vfe_ha_hdr, key_len), &kl, sizeof(kl));
    assert_int_equal(dec((size_t)n, 0), -EBADMSG);
    /* a packet longer than the protocol allows, even with a consistent header */
    struct vfe_ha_hdr h = {.magic = VFE_HA_MAGIC, .major = VFE_HA_MAJOR, .type = VFE_HA_PUT, .key_len = 1,
                           .payload_len = VFE_HA_MAX_PAYLOAD + 1};
    memcpy(buf, &h, sizeof(h));
    buf[sizeof(h)] = 'a';
    assert_int_equal(dec(VFE_HA_MAX_PACKET + 1, 0), -EBADMSG);
}

static void bad_magic_and_versions(void **state)
{
    int n = enc(VFE_HA_HELLO, 0, NULL, 3, 0);
    uint32_t magic = 0x12345678;
    hdr_edit(0, &magic, sizeof(magic));
    assert_int_equal(dec((size_t)n, 0), -EBADMSG);
    n = enc(VFE_HA_HELLO, 0, NULL, 3, 0);
    uint8_t major = VFE_HA_MAJOR + 1;
    hdr_edit(offsetof(struct vfe_ha_hdr, major), &major, 1);
    struct vfe_ha_msg m;
    const char *why;
    assert_int_equal(vfe_ha_decode(buf, (size_t)n, 0, &m, &why), -EPROTONOSUPPORT);
    assert_non_null(strstr(why, "newer"));
    major = VFE_HA_MAJOR - 1;
    hdr_edit(offsetof(struct vfe_ha_hdr, major), &major, 1);
    assert_int_equal(vfe_ha_decode(buf, (size_t)n, 0, &m, &why), -EPROTONOSUPPORT);
    assert_non_null(strstr(why, "older"));
    /* a newer minor is compatible */
    n = enc(VFE_HA_HELLO, 0, NULL, 3, 0);
    uint8_t minor = VFE_HA_MINOR + 5;
    hdr_edit(offsetof(struct vfe_ha_hdr, minor), &minor, 1);
    assert_int_equal(dec((size_t)n, 0), 0);
}

static void fd_count_disagrees(void **state)
{
    int n = enc(VFE_HA_PUT, 0, "vf/1", 10, 2);
    assert_int_equal(dec((size_t)n, 2), 0);
    assert_int_equal(dec((size_t)n, 1), -EBADMSG);
    assert_int_equal(dec((size_t)n, 3), -EBADMSG);
    assert_int_equal(dec((size_t)n, 0), -EBADMSG);
    /* a header claiming more than any message may carry, and that many fds */
    uint16_t many = VFE_HA_MAX_FDS + 1;
    hdr_edit(offsetof(struct vfe_ha_hdr, nfds), &many, sizeof(many));
    assert_int_equal(dec((size_t)n, VFE_HA_MAX_FDS + 1), -E2BIG);
}

static void garbage(void **state)
{
    srand(7);
    int accepted = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len = (size_t)(rand() % 200);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rand();
        if (i & 1)   /* a valid magic and major make the later checks reachable */
            memcpy(buf, &(struct vfe_ha_hdr){.magic = VFE_HA_MAGIC, .major = VFE_HA_MAJOR}, len < 5 ? len : 5);
        struct vfe_ha_msg m;
        const char *why;
        int rc = vfe_ha_decode(buf, len, (unsigned)(rand() % 3), &m, &why);
        if (rc == 0) {
            accepted++;
            assert_true(m.hdr.key_len + m.body_len == len - VFE_HA_HDR_SIZE);
            assert_true(m.key == (const char *)buf + VFE_HA_HDR_SIZE);
        } else {
            assert_true(rc == -EBADMSG || rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -E2BIG);
        }
    }
    assert_int_equal(accepted, 0);   /* random bytes never make a consistent header */
}

static void key_syntax(void **state)
{
    const char *good[] = {"vf/0000:3b:00.1", "a", "vhost/vm-7@q0", "pf_0", "X.y-z:1"};
    const char *bad[] = {"", "/abs", ".hidden", "a..b", "a//b", "sp ace", "nl\n", "tab\t", "q\"", "uni\xc3\xa9",
                         "back\\slash", "semi;colon"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(vfe_ha_key_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(vfe_ha_key_valid(bad[i], strlen(bad[i])));
    char k[VFE_HA_KEY_MAX + 1];
    memset(k, 'a', sizeof(k));
    assert_true(vfe_ha_key_valid(k, VFE_HA_KEY_MAX));
    assert_false(vfe_ha_key_valid(k, VFE_HA_KEY_MAX + 1));
    assert_false(vfe_ha_key_valid("a\0b", 3));
    /* the decoder applies it */
    int n = vfe_ha_encode(buf, sizeof(buf), VFE_HA_DEL, 0, 1, "a b", 3, NULL, 0, 0);
    assert_int_equal(dec((size_t)n, 0), -EPROTO);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void packets_with_fds(void **state)
{
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp), 0);
    int efd = eventfd(5, EFD_CLOEXEC);
    int fds[2] = {efd, efd};
    int n = enc(VFE_HA_PUT, 0, "vf/2", 300, 2);
    assert_int_equal(vfe_ha_send_packet(sp[0], buf, (size_t)n, fds, 2), 0);
    uint8_t in[VFE_HA_MAX_PACKET];
    int got[VFE_HA_MAX_FDS];
    unsigned ng;
    int r = vfe_ha_recv_packet(sp[1], in, sizeof(in), got, &ng);
    assert_int_equal(r, n);
    assert_int_equal(ng, 2);
    struct vfe_ha_msg m;
    assert_int_equal(vfe_ha_decode(in, (size_t)r, ng, &m, NULL), 0);
    uint64_t v;
    assert_int_equal(read(got[1], &v, sizeof(v)), sizeof(v));
    assert_int_equal(v, 5);
    assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
    close(got[0]);
    close(got[1]);
    /* nothing queued */
    assert_int_equal(vfe_ha_recv_packet(sp[1], in, sizeof(in), got, &ng), -EAGAIN);
    /* an oversized packet: refused, and the fds that came with it are closed, not leaked */
    int probe = dup(efd);
    close(probe);   /* the lowest free fd number: the first received fd would take it */
    size_t big = VFE_HA_MAX_PACKET + 100;
    uint8_t *huge = calloc(1, big);
    assert_int_equal(vfe_ha_send_packet(sp[0], huge, big, fds, 1), 0);
    assert_int_equal(vfe_ha_recv_packet(sp[1], in, sizeof(in), got, &ng), -EMSGSIZE);
    assert_int_equal(ng, 0);
    assert_false(fd_open(probe));
    /* more fds than the protocol allows: refused, none of them left open */
    int many[VFE_HA_MAX_FDS + 4];
    for (unsigned i = 0; i < VFE_HA_MAX_FDS + 4; i++)
        many[i] = efd;
    struct iovec iov = {buf, (size_t)enc(VFE_HA_STATUS, 0, NULL, 0, 0)};
    union { struct cmsghdr a; char b[CMSG_SPACE(sizeof(many))]; } cm;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(many));
    memcpy(CMSG_DATA(c), many, sizeof(many));
    assert_true(sendmsg(sp[0], &mh, 0) > 0);
    assert_int_equal(vfe_ha_recv_packet(sp[1], in, sizeof(in), got, &ng), -EMSGSIZE);
    assert_int_equal(ng, 0);
    /* the lowest free fd number is the same as before: nothing leaked */
    int after = dup(efd);
    assert_int_equal(after, probe);
    close(after);
    /* the peer closed: 0 */
    close(sp[0]);
    assert_int_equal(vfe_ha_recv_packet(sp[1], in, sizeof(in), got, &ng), 0);
    free(huge);
    close(sp[1]);
    close(efd);
}

/* How records are cut into packets (both ends use vfe_ha_split_next). */
static unsigned split_count(size_t klen, uint32_t len, unsigned nfds, unsigned *chunk_fds, uint32_t *chunks)
{
    struct vfe_ha_split sp = {0};
    unsigned n = 0;
    do {
        vfe_ha_split_next(&sp, klen, len, nfds);
        assert_true(VFE_HA_HDR_SIZE + klen + sp.chunk <= VFE_HA_MAX_PACKET);
        assert_true(sp.chunk_fds <= VFE_HA_MAX_FDS);
        if (n < 8) {
            chunk_fds[n] = sp.chunk_fds;
            chunks[n] = sp.chunk;
        }
        n++;
        sp.off += sp.chunk;
        sp.fd_off += sp.chunk_fds;
    } while (sp.more && n < 100);
    assert_int_equal(sp.off, len);
    assert_int_equal(sp.fd_off, nfds);
    return n;
}

static void record_split(void **state)
{
    unsigned f[8];
    uint32_t c[8];
    /* a vhost-user session: 227 fds and a 1 KiB blob travel as 4 packets, 64 + 64 + 64 + 35 fds */
    assert_int_equal(split_count(18, 1024, 227, f, c), 4);
    assert_int_equal(f[0], 64);
    assert_int_equal(f[1], 64);
    assert_int_equal(f[2], 64);
    assert_int_equal(f[3], 35);
    assert_int_equal(c[0], 1024);
    assert_int_equal(c[1] + c[2] + c[3], 0);
    /* a 200 KiB blob and 3 fds: 4 packets, the fds on the first */
    assert_int_equal(split_count(15, 200 * 1024, 3, f, c), 4);
    assert_int_equal(f[0], 3);
    assert_int_equal(f[1] + f[2] + f[3], 0);
    /* nothing at all is still one packet; 64 fds one, 65 two */
    assert_int_equal(split_count(1, 0, 0, f, c), 1);
    assert_int_equal(split_count(1, 0, 64, f, c), 1);
    assert_int_equal(split_count(1, 0, 65, f, c), 2);
    assert_int_equal(f[1], 1);
    /* the largest record: 256 KiB and 240 fds, a long key */
    assert_int_equal(split_count(VFE_HA_KEY_MAX, VFE_HA_BLOB_MAX, VFE_HA_MAX_RECORD_FDS, f, c), 5);
    assert_int_equal(f[3], 240 - 3 * 64);
    assert_int_equal(f[4], 0);
    /* continuation packets with fds decode (1.1), at most VFE_HA_MAX_FDS each */
    int n = enc(VFE_HA_PUT, VFE_HA_F_MORE, "vhost/s", 0, VFE_HA_MAX_FDS);
    assert_int_equal(dec((size_t)n, VFE_HA_MAX_FDS), 0);
    n = enc(VFE_HA_RECORD, 0, "vhost/s", 0, 35);
    assert_int_equal(dec((size_t)n, 35), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(encode_bounds),
        cmocka_unit_test(rules_table),
        cmocka_unit_test(send_tail),
        cmocka_unit_test(truncated_and_oversized),
        cmocka_unit_test(bad_magic_and_versions),
        cmocka_unit_test(fd_count_disagrees),
        cmocka_unit_test(garbage),
        cmocka_unit_test(key_syntax),
        cmocka_unit_test(packets_with_fds),
        cmocka_unit_test(record_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
