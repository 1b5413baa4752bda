/*
 * vfe_ha_link against a scripted HA process (this test plays it on a
 * listening socket): up() only from the loop after the HELLO answer; an
 * answer whose seq matches no request, a HELLO answer of the wrong size or an
 * answer carrying fds -> down(-EPROTO) and a reconnect; a refusal (ERR seq 0
 * EBUSY) -> down once, retries with a back-off that doubles, not reported
 * again; while the socket is full one queued entry per key (PUT replaces,
 * DEL turns the PUT into a DEL) and the requests arrive in order; destroy
 * closes every dup'd fd and runs no callback, also when called inside up()
 * or down(); put_send (1.2) writes one F_SEND packet inside the call, never
 * ahead of a queued request (also once the socket has room again), never to
 * a 1.1 HA process.
 */
#include <errno.h>
#include <ev.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include "drivers/common/virtio_ha/vfe_ha_link.h"

static char dir[64], path[96];
static struct ev_loop *loop;
static int ls = -1;
static int ups, downs, last_err;
static bool destroy_in_up, destroy_in_down;
static struct vfe_ha_link *cur;

static void on_up(void *ctx)
{
    ups++;
    if (destroy_in_up) {
        vfe_ha_link_destroy(cur);
        cur = NULL;
    }
}

static void on_down(void *ctx, int err, const char *why)
{
    downs++;
    last_err = err;
    if (destroy_in_down) {
        vfe_ha_link_destroy(cur);
        cur = NULL;
    }
}

static const struct vfe_ha_link_ops ops = {on_up, on_down};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void tick(struct ev_loop *l, ev_timer *w, int revents) {}

static void run_ms(int ms)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(loop, &t);
    double end = now() + ms / 1000.0;
    while (now() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
}

static bool run_until(const int *v, int want, int ms)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(loop, &t);
    double end = now() + ms / 1000.0;
    while (*v < want && now() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
    return *v >= want;
}

/* The link's next connection, accepted while the loop runs (it connects from a timer). */
static int accept_link(int ms)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(loop, &t);
    double end = now() + ms / 1000.0;
    int fd = -1;
    while (fd < 0 && now() < end) {
        ev_run(loop, EVRUN_ONCE);
        fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    }
    ev_timer_stop(loop, &t);
    return fd;
}

static uint8_t pkt[VFE_HA_MAX_PACKET];

/* The next packet from the link (decoded into m), its fds closed; -1 when none within ms. */
static int srv_recv(int fd, struct vfe_ha_msg *m, unsigned *nfds_out, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, ms) != 1)
        return -1;
    int fds[VFE_HA_MAX_FDS];
    unsigned nfds;
    int n = vfe_ha_recv_packet(fd, pkt, sizeof(pkt), fds, &nfds);
    if (n <= 0)
        return -1;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (nfds_out)
        *nfds_out = nfds;
    return vfe_ha_decode(pkt, (size_t)n, nfds, m, NULL) == 0 ? 0 : -1;
}

static void srv_send(int fd, uint16_t type, uint32_t seq, const void *body, size_t len, int with_fd)
{
    uint8_t out[VFE_HA_HDR_SIZE + 256];
    int n = vfe_ha_encode(out, sizeof(out), type, 0, seq, NULL, 0, body, len, with_fd >= 0 ? 1 : 0);
    assert_true(n > 0);
    assert_int_equal(vfe_ha_send_packet(fd, out, (size_t)n, &with_fd, with_fd >= 0 ? 1 : 0), 0);
}

static void srv_err(int fd, uint32_t seq, int err)
{
    struct vfe_ha_err_body e = {err};
    uint8_t body[sizeof(e) + 8];
    memcpy(body, &e, sizeof(e));
    memcpy(body + sizeof(e), "refused", 7);
    srv_send(fd, VFE_HA_ERR, seq, body, sizeof(e) + 7, -1);
}

static const struct vfe_ha_limits lim = {.max_records = 100, .max_fds = 1000,
                                         .max_record_fds = VFE_HA_MAX_RECORD_FDS, .max_blob = VFE_HA_BLOB_MAX,
                                         .max_bytes = 1 << 30};

/* Accept the link, read its HELLO, answer it; the connection. */
static int handshake(void)
{
    int fd = accept_link(3000);
    assert_true(fd >= 0);
    struct vfe_ha_msg m;
    assert_int_equal(srv_recv(fd, &m, NULL, 2000), 0);
    assert_int_equal(m.hdr.type, VFE_HA_HELLO);
    srv_send(fd, VFE_HA_ACK, m.hdr.seq, &lim, sizeof(lim), -1);
    return fd;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/vfe-ha-link-unit.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ha.sock", dir);
    ls = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(ls, 8), 0);
    loop = ev_loop_new(EVFLAG_AUTO);
    ups = downs = last_err = 0;
    destroy_in_up = destroy_in_down = false;
    return 0;
}

static int teardown(void **state)
{
    vfe_ha_link_destroy(cur);
    cur = NULL;
    close(ls);
    unlink(path);
    rmdir(dir);
    ev_loop_destroy(loop);
    return 0;
}

static void up_from_loop_and_seq_matching(void **state)
{
    cur = vfe_ha_link_create(loop, path, "unit", &ops, NULL);
    assert_non_null(cur);
    assert_int_equal(ups, 0);
    int fd = accept_link(2000);
    assert_true(fd >= 0);
    struct vfe_ha_msg m;
    assert_int_equal(srv_recv(fd, &m, NULL, 2000), 0);
    assert_int_equal(m.hdr.type, VFE_HA_HELLO);
    assert_int_equal(m.body_len, 4);
    assert_memory_equal(m.body, "unit", 4);
    run_ms(20);
    assert_int_equal(ups, 0);   /* HELLO not answered yet */
    assert_false(vfe_ha_link_connected(cur));
    assert_int_equal(vfe_ha_link_put(cur, "a", "x", 1, NULL, 0), 0);   /* not up: dropped */
    srv_send(fd, VFE_HA_ACK, m.hdr.seq, &lim, sizeof(lim), -1);
    assert_true(run_until(&ups, 1, 2000));
    assert_true(vfe_ha_link_connected(cur));

    /* the STATUS asked at up, then a PUT answered with a seq it never sent */
    assert_int_equal(srv_recv(fd, &m, NULL, 2000), 0);
    assert_int_equal(m.hdr.type, VFE_HA_STATUS);
    struct vfe_ha_status st = {.records = 7, .server_pid = 1234};
    srv_send(fd, VFE_HA_ACK, m.hdr.seq, &st, sizeof(st), -1);
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(vfe_ha_link_put(cur, "vf/a", "xyz", 3, &efd, 1), 1);
    unsigned nfds = 0;
    assert_int_equal(srv_recv(fd, &m, &nfds, 2000), 0);
    assert_int_equal(m.hdr.type, VFE_HA_PUT);
    assert_int_equal(nfds, 1);
    run_ms(20);
    struct vfe_ha_link_stats ls_;
    vfe_ha_link_stats(cur, &ls_);
    assert_int_equal(ls_.held.records, 7);
    assert_int_equal(ls_.held.server_pid, 1234);
    assert_true(ls_.held_at > 0);
    srv_send(fd, VFE_HA_ACK, m.hdr.seq + 100, NULL, 0, -1);
    assert_true(run_until(&downs, 1, 2000));
    assert_int_equal(last_err, -EPROTO);
    assert_int_equal(ups, 1);   /* not inside the loss */
    close(fd);

    /* a retry timer reconnects; an answer carrying an fd is refused the same way */
    double t0 = now();
    fd = handshake();
    assert_true(now() - t0 < 0.5);
    assert_true(run_until(&ups, 2, 2000));
    vfe_ha_link_stats(cur, &ls_);
    assert_int_equal(ls_.reconnects, 1);
    assert_int_equal(srv_recv(fd, &m, NULL, 2000), 0);   /* STATUS */
    srv_send(fd, VFE_HA_ACK, m.hdr.seq, &st, sizeof(st), efd);
    assert_true(run_until(&downs, 2, 2000));
    assert_int_equal(last_err, -EPROTO);
    close(fd);

    /* a HELLO answer of another size */
    fd = accept_link(3000);
    assert_true(fd >= 0);
    assert_int_equal(srv_recv(fd, &m, NULL, 2000), 0);
    srv_send(fd, VFE_HA_ACK, m.hdr.seq, &lim, sizeof(lim) - 4, -1);
    run_ms(50);
    assert_int_equal(ups, 2);
    vfe_ha_link_stats(cur, &ls_);
    assert_false(ls_.connected);
    assert_int_equal(ls_.last_err, EPROTO);
    assert_int_equal(downs, 2);   /* a failed reconnect is not reported again: the loss was */
    close(fd);
    close(efd);
}

static void refusal_and_backoff(void **state)
{
    cur = vfe_ha_link_create(loop, path, "unit", &ops, NULL);
    double at[5];
    for (int i = 0; i < 5; i++) {
        int fd = accept_link(4000);
        assert_true(fd >= 0);
        at[i] = now();
        struct vfe_ha_msg m;
        assert_int_equal(srv_recv(fd, &m, NULL, 2000), 0);
        srv_err(fd, 0, EBUSY);   /* "another client is connected" */
        close(fd);
    }
    run_ms(20);
    assert_int_equal(downs, 1);   /* reported once, not at every retry */
    assert_int_equal(last_err, -EBUSY);
    assert_int_equal(ups, 0);
    for (int i = 1; i < 5; i++) {
        double want = VFE_HA_LINK_RETRY_MIN * (1 << (i - 1));
        if (want > VFE_HA_LINK_RETRY_MAX)
            want = VFE_HA_LINK_RETRY_MAX;
        double got = at[i] - at[i - 1];
        assert_true(got >= want * 0.9 && got < want + 0.3);
    }
    int fd = handshake();
    assert_true(run_until(&ups, 1, 2000));
    /* after up the back-off starts over */
    close(fd);
    assert_true(run_until(&downs, 2, 2000));
    assert_int_equal(last_err, -ECONNRESET);
    double t0 = now();
    fd = handshake();
    assert_true(now() - t0 < VFE_HA_LINK_RETRY_MIN + 0.1);
    close(fd);
}

static void coalescing_and_order(void **state)
{
    int base = count_fds();
    cur = vfe_ha_link_create(loop, path, "unit", &ops, NULL);
    int fd = handshake();
    assert_true(run_until(&ups, 1, 2000));
    int efd = eventfd(0, EFD_CLOEXEC);
    static uint8_t blob[16384];
    /* nobody reads: fill the socket */
    int rc = 1, written = 0;
    for (int i = 0; i < 10000 && rc == 1; i++) {
        rc = vfe_ha_link_put(cur, "vhost/k", blob, sizeof(blob), &efd, 1);
        written += rc == 1;
    }
    assert_int_equal(rc, 0);
    struct vfe_ha_link_stats st;
    vfe_ha_link_stats(cur, &st);
    uint64_t q0 = st.queued;
    for (int i = 0; i < 100; i++) {
        blob[0] = (uint8_t)i;
        assert_int_equal(vfe_ha_link_put(cur, "vhost/k", blob, sizeof(blob), &efd, 1), 0);
    }
    vfe_ha_link_stats(cur, &st);
    assert_true(st.queued <= q0 + 1 && st.queued <= 3);
    assert_true(st.queued_bytes <= 2 * sizeof(blob));
    assert_int_equal(vfe_ha_link_del(cur, "vhost/k"), 0);   /* the unsent PUT becomes a DEL */
    assert_int_equal(vfe_ha_link_put(cur, "vf/j", "j", 1, NULL, 0), 0);
    assert_int_equal(vfe_ha_link_put(cur, "vf/j", "J", 1, NULL, 0), 0);
    vfe_ha_link_stats(cur, &st);
    assert_true(st.queued <= 4);
    assert_true(st.queued_bytes <= sizeof(blob) + 1);   /* at most the record being sent, and "J" */

    /* the server reads: every request in order, the last ones DEL vhost/k and PUT vf/j "J" */
    int puts_k = 0, dels_k = 0, puts_j = 0;
    char last_j = 0;
    bool del_after_puts = true;
    ev_timer t;
    ev_timer_init(&t, tick, 0.002, 0.002);
    ev_timer_start(loop, &t);
    for (int idle = 0; idle < 50;) {
        struct vfe_ha_msg m;
        ev_run(loop, EVRUN_NOWAIT);
        if (srv_recv(fd, &m, NULL, 5) < 0) {
            idle++;
            continue;
        }
        idle = 0;
        bool k = m.hdr.key_len == 7 && memcmp(m.key, "vhost/k", 7) == 0;
        if (m.hdr.type == VFE_HA_PUT && k && !(m.hdr.flags & VFE_HA_F_MORE)) {
            puts_k++;
            del_after_puts &= dels_k == 0;
        }
        if (m.hdr.type == VFE_HA_DEL && k)
            dels_k++;
        if (m.hdr.type == VFE_HA_PUT && !k) {
            puts_j++;
            last_j = (char)m.body[0];
        }
    }
    ev_timer_stop(loop, &t);
    assert_true(puts_k >= written && puts_k <= written + 1);   /* the one started when the socket filled */
    assert_int_equal(dels_k, 1);
    assert_true(del_after_puts);
    assert_int_equal(puts_j, 1);
    assert_int_equal(last_j, 'J');
    vfe_ha_link_stats(cur, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.queued_bytes, 0);

    /* destroy: no callback, every dup'd fd closed */
    vfe_ha_link_destroy(cur);
    cur = NULL;
    run_ms(20);
    assert_int_equal(downs, 0);
    close(fd);
    close(efd);
    assert_int_equal(count_fds(), base);
}

/* The next packet that is not a STATUS (the link asks one at up); -1 when none within ms. */
static int srv_recv_no_status(int fd, struct vfe_ha_msg *m, unsigned *nfds, int ms)
{
    for (;;) {
        if (srv_recv(fd, m, nfds, ms) < 0)
            return -1;
        if (m->hdr.type != VFE_HA_STATUS)
            return 0;
    }
}

/* put_send: one F_SEND packet written inside the call; never ahead of a
 * queued request, even when the socket has room again; never to a 1.1 peer. */
static void put_send_order(void **state)
{
    cur = vfe_ha_link_create(loop, path, "unit", &ops, NULL);
    int fd = handshake();
    assert_true(run_until(&ups, 1, 2000));
    int efd = eventfd(0, EFD_CLOEXEC);
    int fds[2] = {efd, efd};
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/s", "blob", 4, fds, 2, 1, "REPLY", 5), 1);
    struct vfe_ha_msg m;
    unsigned nfds = 0;
    assert_int_equal(srv_recv_no_status(fd, &m, &nfds, 1000), 0);
    assert_int_equal(m.hdr.type, VFE_HA_PUT);
    assert_int_equal(m.hdr.flags, VFE_HA_F_SEND);
    assert_int_equal(nfds, 2);
    assert_int_equal(m.body_len, 4);
    assert_memory_equal(m.body, "blob", 4);
    assert_int_equal(m.send_fd, 1);
    assert_int_equal(m.send_len, 5);
    assert_memory_equal(m.send_bytes, "REPLY", 5);
    /* no answers from here on (they would have to come in request order, STATUS first) */

    /* fill the socket, then empty it without letting the loop run: room again, a PUT still queued */
    static uint8_t blob[16384];
    int rc = 1;
    for (int i = 0; i < 10000 && rc == 1; i++)
        rc = vfe_ha_link_put(cur, "vhost/k", blob, sizeof(blob), NULL, 0);
    assert_int_equal(rc, 0);
    int drained = 0;
    while (srv_recv(fd, &m, NULL, 0) == 0)
        drained++;
    assert_true(drained > 0);
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/s", "b2", 2, fds, 2, 0, "LATE", 4), 0);
    /* the queued PUT goes out from the loop; no F_SEND packet ever follows */
    ev_timer t;
    ev_timer_init(&t, tick, 0.002, 0.002);
    ev_timer_start(loop, &t);
    int puts_k = 0;
    for (int idle = 0; idle < 30;) {
        ev_run(loop, EVRUN_NOWAIT);
        if (srv_recv(fd, &m, NULL, 5) < 0) {
            idle++;
            continue;
        }
        idle = 0;
        assert_false(m.hdr.flags & VFE_HA_F_SEND);
        puts_k += m.hdr.type == VFE_HA_PUT;
    }
    ev_timer_stop(loop, &t);
    assert_true(puts_k >= 1);
    struct vfe_ha_link_stats st;
    vfe_ha_link_stats(cur, &st);
    assert_int_equal(st.queued, 0);
    /* queue empty: put_send goes again */
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/s", "b3", 2, fds, 2, 0, "NOW", 3), 1);
    assert_int_equal(srv_recv_no_status(fd, &m, NULL, 1000), 0);
    assert_int_equal(m.hdr.flags, VFE_HA_F_SEND);
    /* bad arguments */
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/s", "b", 1, fds, 2, 2, "X", 1), -EINVAL);
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/s", "b", 1, fds, 0, 0, "X", 1), -EINVAL);
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/s", "b", 1, fds, 2, 0, NULL, 1), -EINVAL);
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/s", "b", 1, fds, 2, 0, blob, VFE_HA_SEND_MAX + 1), -EINVAL);
    assert_int_equal(vfe_ha_link_put_send(cur, "../s", "b", 1, fds, 2, 0, "X", 1), -EINVAL);
    vfe_ha_link_destroy(cur);
    cur = NULL;
    close(fd);

    /* a 1.1 HA process: HELLO answered with minor 1 -> 0, nothing sent */
    ups = 0;
    cur = vfe_ha_link_create(loop, path, "unit", &ops, NULL);
    fd = accept_link(3000);
    assert_true(fd >= 0);
    assert_int_equal(srv_recv(fd, &m, NULL, 2000), 0);
    uint8_t out[VFE_HA_HDR_SIZE + sizeof(lim)];
    int n = vfe_ha_encode(out, sizeof(out), VFE_HA_ACK, 0, m.hdr.seq, NULL, 0, &lim, sizeof(lim), 0);
    out[offsetof(struct vfe_ha_hdr, minor)] = 1;
    assert_int_equal(vfe_ha_send_packet(fd, out, (size_t)n, NULL, 0), 0);
    assert_true(run_until(&ups, 1, 2000));
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/s", "b", 1, fds, 2, 0, "OLD", 3), 0);
    run_ms(20);
    assert_int_equal(srv_recv_no_status(fd, &m, NULL, 20), -1);
    vfe_ha_link_destroy(cur);
    cur = NULL;
    close(fd);
    close(efd);
}

/* The link's socket: the one connected to path (found by its peer's name). */
static int link_fd(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);
        int type = 0;
        socklen_t tl = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_SEQPACKET &&
            getpeername(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_family == AF_UNIX &&
            strcmp(sa.sun_path, path) == 0)
            return fd;
    }
    return -1;
}

/* Fill the link's socket behind its back (its queue stays empty) with small
 * packets the scripted server ignores, then read `room` of them: the kernel
 * then takes the next packet whatever its size, and none after it. */
static void fill_then_room(int fd, int room)
{
    int lfd = link_fd();
    assert_true(lfd >= 0);
    uint8_t out[VFE_HA_HDR_SIZE + 8];
    int n = vfe_ha_encode(out, sizeof(out), VFE_HA_STATUS, 0, 0, NULL, 0, NULL, 0, 0);
    int sent = 0;
    while (vfe_ha_send_packet(lfd, out, (size_t)n, NULL, 0) == 0)
        sent++;
    assert_true(sent > 0);
    struct vfe_ha_msg m;
    for (int i = 0; i < room; i++)
        assert_int_equal(srv_recv(fd, &m, NULL, 100), 0);
}

/* put_send of a record over one packet (100 fds: two packets): with no room,
 * 0 and nothing sent or kept; with room for the first packet only, 1 and the
 * rest from the loop, the send tail on the last packet; a link lost before
 * the rest went out counts in sends_failed. */
static void put_send_multi_packet(void **state)
{
    int base = count_fds();
    cur = vfe_ha_link_create(loop, path, "unit", &ops, NULL);
    int fd = handshake();
    assert_true(run_until(&ups, 1, 2000));
    int efd = eventfd(0, EFD_CLOEXEC);
    int fds[100];
    for (int i = 0; i < 100; i++)
        fds[i] = efd;
    struct vfe_ha_link_stats st;

    fill_then_room(fd, 0);
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/m", "multi", 5, fds, 100, 99, "TAIL", 4), 0);
    vfe_ha_link_stats(cur, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.queued_bytes, 0);
    struct vfe_ha_msg m;
    ev_timer t;
    ev_timer_init(&t, tick, 0.002, 0.002);
    ev_timer_start(loop, &t);
    for (int idle = 0; idle < 20;) {
        ev_run(loop, EVRUN_NOWAIT);
        if (srv_recv(fd, &m, NULL, 5) < 0) {
            idle++;
            continue;
        }
        idle = 0;
        assert_int_not_equal(m.hdr.type, VFE_HA_PUT);   /* nothing of the refused put_send */
    }

    fill_then_room(fd, 1);
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/m", "multi", 5, fds, 100, 99, "TAIL", 4), 1);
    vfe_ha_link_stats(cur, &st);
    assert_int_equal(st.queued, 1);   /* the second packet waits for the socket */
    int first = 0, last = 0;
    unsigned nfds_total = 0;
    for (int idle = 0; idle < 20;) {
        ev_run(loop, EVRUN_NOWAIT);
        unsigned nfds = 0;
        if (srv_recv(fd, &m, &nfds, 5) < 0) {
            idle++;
            continue;
        }
        idle = 0;
        if (m.hdr.type != VFE_HA_PUT)
            continue;
        nfds_total += nfds;
        if (m.hdr.flags & VFE_HA_F_MORE) {
            first++;
            assert_false(m.hdr.flags & VFE_HA_F_SEND);
            assert_null(m.send_bytes);
        } else {
            last++;
            assert_int_equal(m.hdr.flags, VFE_HA_F_SEND);
            assert_int_equal(m.send_fd, 99);
            assert_int_equal(m.send_len, 4);
            assert_memory_equal(m.send_bytes, "TAIL", 4);
        }
    }
    ev_timer_stop(loop, &t);
    assert_int_equal(first, 1);
    assert_int_equal(last, 1);
    assert_int_equal(nfds_total, 100);
    vfe_ha_link_stats(cur, &st);
    assert_int_equal(st.sends_failed, 0);

    /* started, then the link is lost: counted */
    fill_then_room(fd, 1);
    assert_int_equal(vfe_ha_link_put_send(cur, "vhost/m", "multi", 5, fds, 100, 99, "TAIL", 4), 1);
    close(fd);
    assert_true(run_until(&downs, 1, 2000));
    vfe_ha_link_stats(cur, &st);
    assert_int_equal(st.sends_failed, 1);
    vfe_ha_link_destroy(cur);
    cur = NULL;
    close(efd);
    assert_int_equal(count_fds(), base);
}

static void destroy_inside_callbacks(void **state)
{
    destroy_in_up = true;
    cur = vfe_ha_link_create(loop, path, "unit", &ops, NULL);
    int fd = handshake();
    assert_true(run_until(&ups, 1, 2000));
    assert_null(cur);
    run_ms(50);
    assert_int_equal(downs, 0);
    close(fd);

    destroy_in_up = false;
    destroy_in_down = true;
    cur = vfe_ha_link_create(loop, path, "unit", &ops, NULL);
    fd = handshake();
    assert_true(run_until(&ups, 2, 2000));
    close(fd);
    assert_true(run_until(&downs, 1, 2000));
    assert_null(cur);
    run_ms(300);   /* no retry: nothing is accepted */
    assert_true(accept4(ls, NULL, NULL, SOCK_NONBLOCK) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(up_from_loop_and_seq_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(refusal_and_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(coalescing_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(put_send_order, setup, teardown),
        cmocka_unit_test_setup_teardown(put_send_multi_packet, setup, teardown),
        cmocka_unit_test_setup_teardown(destroy_inside_callbacks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
