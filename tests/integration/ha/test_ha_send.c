/*
 * PUT with F_SEND (protocol 1.2) against the real vfe-vhostd-ha:
 *   - put_send to one end of a socket pair: the other end receives exactly
 *     the bytes, and a client connecting after the first closed GETs the record;
 *   - the link (libev) does the same and gets its ACK, also for a record of
 *     two packets (100 fds); it refuses (0, nothing sent) behind a queued PUT;
 *   - a client SIGKILLed right after writing a put_send (HA process stopped
 *     meanwhile): the bytes still arrive and the record is stored (drain path);
 *   - an eventfd as the target: written with write(); 3 bytes to it: ERR EIO,
 *     record stored;
 *   - a peer whose socket buffer is full: ERR EIO "stored, reply not written",
 *     record stored, nothing written;
 *   - a record of 70 fds (two packets) with the target in the second packet;
 *   - fd_index past the record's fds (raw packet): ERR EPROTO, connection
 *     closed, nothing stored;
 *   - a record refused by a limit writes nothing;
 *   - an HA process speaking 1.1 (a scripted one): the client sends no F_SEND
 *     (-EOPNOTSUPP / the link returns 0 and writes nothing).
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/common/virtio_ha/vfe_ha_client.h"
#include "drivers/common/virtio_ha/vfe_ha_link.h"
#include "lib/sock/vfe_unix_sock.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"

#define TMO 2000
#define MAX_RECORDS 12

static char dir[64], sock_path[100], log_path[128], old_path[100];
static const char *ha_bin;

static pid_t start_ha(void)
{
    char maxrec[16];
    snprintf(maxrec, sizeof(maxrec), "%d", MAX_RECORDS);
    const char *argv[] = {ha_bin, "--socket", sock_path, "--log-level", "debug", "--max-records", maxrec, NULL};
    pid_t pid = proc_spawn(argv, log_path);
    long end = check_now_ms() + 5000;
    while (check_now_ms() < end && proc_alive(pid) && !vfe_unix_path_in_use(sock_path))
        usleep(10000);
    return pid;
}

static struct vfe_ha_client *connect_to(const char *path, const char *name)
{
    int err = 0;
    const char *why = NULL;
    struct vfe_ha_client *c = vfe_ha_client_connect(path, name, TMO, &err, &why);
    CHECK(c, "connect as %s: %s (%d)", name, why ? why : "?", err);
    return c;
}

/* Exactly len bytes equal to want arrive on s within timeout_ms, and nothing after them. */
static bool receives_exactly(int s, const void *want, size_t len, int timeout_ms)
{
    char got[512];
    size_t have = 0;
    long end = check_now_ms() + timeout_ms;
    while (have < len && check_now_ms() < end) {
        struct pollfd p = {s, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(s, got + have, sizeof(got) - have, MSG_DONTWAIT);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    usleep(20000);
    ssize_t extra = recv(s, got + have, sizeof(got) - have, MSG_DONTWAIT);
    if (extra > 0)
        have += (size_t)extra;
    if (have != len || memcmp(got, want, len) != 0) {
        fprintf(stderr, "received %zu bytes, wanted %zu\n", have, len);
        return false;
    }
    return true;
}

static bool nothing_arrives(int s)
{
    char b[16];
    usleep(50000);
    return recv(s, b, sizeof(b), MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* The record key from a fresh client; its blob must be blob, with nfds fds. */
static bool record_held(const char *key, const char *blob, unsigned nfds)
{
    struct vfe_ha_client *c = connect_to(sock_path, "reader");
    if (!c)
        return false;
    struct vfe_ha_record *recs = NULL;
    unsigned n = 0;
    int rc = vfe_ha_get(c, key, &recs, &n);
    bool ok = rc == 0 && n == 1 && recs[0].blob_len == strlen(blob) && memcmp(recs[0].blob, blob, strlen(blob)) == 0 &&
              recs[0].nfds == nfds;
    if (!ok)
        fprintf(stderr, "GET %s: rc %d, %u records, %u fds\n", key, rc, n, n ? recs[0].nfds : 0);
    vfe_ha_records_free(recs, n);
    vfe_ha_client_close(c);
    return ok;
}

static void test_put_send(void)
{
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    int efd = eventfd(0, EFD_CLOEXEC);
    struct vfe_ha_client *c = connect_to(sock_path, "sender");
    if (!c)
        return;
    CHECK(vfe_ha_client_peer_minor(c) == VFE_HA_MINOR, "minor %u", vfe_ha_client_peer_minor(c));
    int fds[2] = {efd, pair[1]};
    int rc = vfe_ha_put_send(c, "vhost/s1", "record-1", 8, fds, 2, 1, "REPLY-1", 7);
    CHECK(rc == 0, "put_send: %d %s", rc, vfe_ha_client_error(c));
    CHECK(receives_exactly(pair[0], "REPLY-1", 7, 1000), "the peer got the bytes");
    /* bad arguments: nothing sent */
    CHECK(vfe_ha_put_send(c, "vhost/s1", "x", 1, fds, 2, 2, "R", 1) == -EINVAL, "send_fd out of the record");
    static uint8_t many[VFE_HA_SEND_MAX + 1];
    CHECK(vfe_ha_put_send(c, "vhost/s1", "x", 1, fds, 2, 1, many, sizeof(many)) == -EINVAL, "too many bytes");
    CHECK(vfe_ha_status(c, &(struct vfe_ha_status){0}) == 0, "connection still fine");
    vfe_ha_client_close(c);
    close(efd);
    close(pair[1]);
    CHECK(record_held("vhost/s1", "record-1", 2), "record stored");
    CHECK(nothing_arrives(pair[0]), "nothing more arrived");
    close(pair[0]);
}

static int link_ups;
static void on_up(void *ctx)
{
    (void)ctx;
    link_ups++;
}
static void on_down(void *ctx, int err, const char *why)
{
    (void)ctx;
    (void)err;
    (void)why;
}

static bool run_until(struct ev_loop *loop, bool (*done)(void *), void *arg, int timeout_ms)
{
    long end = check_now_ms() + timeout_ms;
    while (!done(arg) && check_now_ms() < end)
        ev_run(loop, EVRUN_ONCE);
    return done(arg);
}
static bool is_up(void *arg)
{
    return vfe_ha_link_connected(arg);
}
static bool acked(void *arg)
{
    struct vfe_ha_link_stats st;
    vfe_ha_link_stats(arg, &st);
    return st.acks + st.errors >= st.puts;
}

static bool all_answered(void *arg)
{
    struct vfe_ha_link_stats st;
    vfe_ha_link_stats(arg, &st);
    return st.queued == 0 && st.acks + st.errors >= st.puts;
}

static void test_link_put_send(const char *path, bool old_peer, int old_srv, pid_t ha)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct vfe_ha_link_ops ops = {on_up, on_down};
    struct vfe_ha_link *l = vfe_ha_link_create(loop, path, "link", &ops, NULL);
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    CHECK(vfe_ha_link_put_send(l, "vhost/l1", "L", 1, &pair[1], 1, 0, "R", 1) == 0, "not up yet: 0");
    if (old_peer) {
        /* the scripted 1.1 process: answer HELLO with minor 1 */
        long end = check_now_ms() + 2000;
        int s = -1;
        while (s < 0 && check_now_ms() < end) {
            ev_run(loop, EVRUN_NOWAIT);
            s = accept4(old_srv, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (s < 0)
                usleep(5000);
        }
        CHECK(s >= 0, "link connected to the 1.1 process");
        uint8_t pkt[VFE_HA_MAX_PACKET];
        struct pollfd p = {s, POLLIN, 0};
        poll(&p, 1, 1000);
        ssize_t n = recv(s, pkt, sizeof(pkt), 0);
        struct vfe_ha_msg m;
        CHECK(n > 0 && vfe_ha_decode(pkt, (size_t)n, 0, &m, NULL) == 0 && m.hdr.type == VFE_HA_HELLO, "HELLO");
        struct vfe_ha_limits lim = {16, 1000, 64, VFE_HA_BLOB_MAX, 1 << 20};
        int k = vfe_ha_encode(pkt, sizeof(pkt), VFE_HA_ACK, 0, m.hdr.seq, NULL, 0, &lim, sizeof(lim), 0);
        pkt[offsetof(struct vfe_ha_hdr, minor)] = 1;
        CHECK(send(s, pkt, (size_t)k, 0) == k, "HELLO answer");
        CHECK(run_until(loop, is_up, l, 2000), "link up with the 1.1 process");
        CHECK(vfe_ha_link_put_send(l, "vhost/l1", "L", 1, &pair[1], 1, 0, "R", 1) == 0, "1.1: 0, caller writes");
        /* nothing but (maybe) a STATUS reached the 1.1 process */
        for (int i = 0; i < 4; i++) {
            ev_run(loop, EVRUN_NOWAIT);
            n = recv(s, pkt, sizeof(pkt), MSG_DONTWAIT);
            if (n > 0) {
                CHECK(vfe_ha_decode(pkt, (size_t)n, 0, &m, NULL) == 0 && m.hdr.type != VFE_HA_PUT &&
                          !(m.hdr.flags & VFE_HA_F_SEND),
                      "no PUT went to the 1.1 process (type %u)", m.hdr.type);
            }
            usleep(10000);
        }
        CHECK(nothing_arrives(pair[0]), "nothing written for the caller");
        close(s);
    } else {
        CHECK(run_until(loop, is_up, l, 3000), "link up");
        int fds[2] = {pair[1], pair[1]};
        CHECK(vfe_ha_link_put_send(l, "vhost/l1", "L", 1, fds, 2, 2, "R", 1) == -EINVAL, "send_fd out");
        static uint8_t big[VFE_HA_MAX_PAYLOAD];
        /* two packets (100 fds, the target last): written now, stored and written by the HA process */
        int many[100];
        for (int i = 0; i < 100; i++)
            many[i] = pair[1];
        int rc2 = vfe_ha_link_put_send(l, "vhost/l100", "l100", 4, many, 100, 99, "MANY", 4);
        CHECK(rc2 == 1, "two-packet put_send: %d", rc2);
        CHECK(receives_exactly(pair[0], "MANY", 4, 1000), "the peer got the two-packet record's bytes");
        CHECK(run_until(loop, acked, l, 2000), "answered");
        int rc = vfe_ha_link_put_send(l, "vhost/l1", "link-rec", 8, fds, 2, 1, "LINK-REPLY", 10);
        CHECK(rc == 1, "put_send written: %d", rc);
        CHECK(receives_exactly(pair[0], "LINK-REPLY", 10, 1000), "the peer got the link's bytes");
        CHECK(run_until(loop, acked, l, 2000), "answered");
        struct vfe_ha_link_stats st;
        vfe_ha_link_stats(l, &st);
        CHECK(st.acks == 2 && st.errors == 0 && st.puts == 2, "acks %llu errors %llu puts %llu",
              (unsigned long long)st.acks, (unsigned long long)st.errors, (unsigned long long)st.puts);
        /* HA process stopped, socket full, a PUT queued: put_send must not overtake it */
        kill(ha, SIGSTOP);
        int q = 1;
        for (int i = 0; i < 1000 && q == 1; i++)
            q = vfe_ha_link_put(l, "vhost/lfill", big, 16384, NULL, 0);
        CHECK(q == 0, "a PUT queued behind a full socket");
        rc = vfe_ha_link_put_send(l, "vhost/l1", "link-rec2", 9, fds, 2, 1, "OVERTAKE", 8);
        CHECK(rc == 0, "put_send behind a queued PUT: %d", rc);
        kill(ha, SIGCONT);
        CHECK(run_until(loop, all_answered, l, 3000), "queue drained");
        CHECK(nothing_arrives(pair[0]), "the refused put_send wrote nothing");
        rc = vfe_ha_link_put_send(l, "vhost/l1", "link-rec", 8, fds, 2, 1, "AGAIN", 5);
        CHECK(rc == 1, "put_send once the queue is empty: %d", rc);
        CHECK(receives_exactly(pair[0], "AGAIN", 5, 1000), "bytes of the second put_send");
        CHECK(run_until(loop, all_answered, l, 2000), "answered");
        vfe_ha_link_stats(l, &st);
        CHECK(st.errors == 0, "no ERR: %s", st.last_why);
    }
    vfe_ha_link_destroy(l);
    ev_loop_destroy(loop);
    close(pair[1]);
    if (!old_peer) {
        CHECK(record_held("vhost/l1", "link-rec", 2), "the link's record stored");
        CHECK(record_held("vhost/l100", "l100", 100), "the link's two-packet record stored");
    }
    close(pair[0]);
}

/* Child: connect, then (HA process stopped by the parent) write a put_send raw and wait to be killed. */
static void killed_sender(int go_fd, int ready_fd, int target, const char *key)
{
    struct vfe_ha_client *c = connect_to(sock_path, "doomed");
    if (!c)
        _exit(10);
    char b;
    if (write(ready_fd, "C", 1) != 1 || read(go_fd, &b, 1) != 1)
        _exit(11);
    static uint8_t pkt[VFE_HA_MAX_PACKET];
    int n = vfe_ha_encode_send(pkt, sizeof(pkt), 77, key, strlen(key), "drained", 7, 1, 0, "DRAIN-REPLY", 11);
    if (n < 0 || vfe_ha_send_packet(vfe_ha_client_fd(c), pkt, (size_t)n, &target, 1) != 0)
        _exit(12);
    if (write(ready_fd, "S", 1) != 1)
        _exit(13);
    for (;;)
        pause();
}

/* With next_waiting, a new client connects while the HA process is stopped:
 * it is accepted in the same loop turn that finds the dead one (applied first). */
static void test_drain(pid_t ha, bool next_waiting)
{
    const char *key = next_waiting ? "vhost/drained2" : "vhost/drained";
    int pair[2], go[2], ready[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0 && pipe(go) == 0 && pipe(ready) == 0,
          "pipes");
    pid_t child = fork();
    if (child == 0) {
        close(pair[0]);
        killed_sender(go[0], ready[1], pair[1], key);
    }
    close(pair[1]);
    char b = 0;
    CHECK(read(ready[0], &b, 1) == 1 && b == 'C', "child connected");
    kill(ha, SIGSTOP);
    CHECK(write(go[1], "G", 1) == 1, "go");
    CHECK(read(ready[0], &b, 1) == 1 && b == 'S', "child sent its put_send");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    CHECK(nothing_arrives(pair[0]), "nothing written while the HA process is stopped");
    int next = -1;
    if (next_waiting) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        next = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        CHECK(connect(next, (struct sockaddr *)&sa, sizeof(sa)) == 0, "next client queued");
    }
    kill(ha, SIGCONT);
    CHECK(receives_exactly(pair[0], "DRAIN-REPLY", 11, 2000), "the dead client's bytes arrive");
    if (next >= 0)
        close(next);
    usleep(20000);
    CHECK(record_held(key, "drained", 1), "the dead client's record stored");
    close(pair[0]);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
}

static void test_not_a_socket_and_full(void)
{
    struct vfe_ha_client *c = connect_to(sock_path, "edge");
    if (!c)
        return;
    /* an eventfd: write() of its 8-byte counter increment */
    int efd = eventfd(2, EFD_CLOEXEC | EFD_NONBLOCK);
    uint64_t add = 5;
    int rc = vfe_ha_put_send(c, "vhost/efd", "efd", 3, &efd, 1, 0, &add, sizeof(add));
    CHECK(rc == 0, "put_send to an eventfd: %d %s", rc, vfe_ha_client_error(c));
    uint64_t v = 0;
    CHECK(read(efd, &v, sizeof(v)) == sizeof(v) && v == 7, "eventfd counter %llu", (unsigned long long)v);
    /* 3 bytes are not a counter: the write fails, the record stays stored */
    rc = vfe_ha_put_send(c, "vhost/efd", "efd2", 4, &efd, 1, 0, "abc", 3);
    CHECK(rc == -EIO && strstr(vfe_ha_client_error(c), "stored, reply not written"), "eventfd EINVAL: %d %s", rc,
          vfe_ha_client_error(c));
    close(efd);

    /* a peer whose buffer is full */
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    int sz = 4096;
    setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    static char junk[4096];
    size_t queued = 0;
    ssize_t n;
    while ((n = send(pair[1], junk, sizeof(junk), MSG_DONTWAIT)) > 0)
        queued += (size_t)n;
    CHECK(n < 0 && errno == EAGAIN, "buffer full after %zu bytes", queued);
    rc = vfe_ha_put_send(c, "vhost/full", "full", 4, &pair[1], 1, 0, "LOST", 4);
    CHECK(rc == -EIO && strstr(vfe_ha_client_error(c), "stored, reply not written"), "full: %d %s", rc,
          vfe_ha_client_error(c));
    CHECK(vfe_ha_status(c, &(struct vfe_ha_status){0}) == 0, "connection kept after ERR EIO");
    size_t drained = 0;
    while ((n = recv(pair[0], junk, sizeof(junk), MSG_DONTWAIT)) > 0)
        drained += (size_t)n;
    CHECK(drained == queued, "only the junk arrived: %zu of %zu", drained, queued);

    /* 70 fds: two packets, the target is fd 69, in the second */
    int fds[70];
    for (int i = 0; i < 69; i++)
        fds[i] = efd = eventfd(0, EFD_CLOEXEC);
    fds[69] = pair[1];
    rc = vfe_ha_put_send(c, "vhost/multi", "multi", 5, fds, 70, 69, "MULTI", 5);
    CHECK(rc == 0, "put_send of 70 fds: %d %s", rc, vfe_ha_client_error(c));
    CHECK(receives_exactly(pair[0], "MULTI", 5, 1000), "the 70th fd got the bytes");
    for (int i = 0; i < 69; i++)
        close(fds[i]);
    vfe_ha_client_close(c);
    CHECK(record_held("vhost/efd", "efd2", 1), "eventfd record replaced though not written");
    CHECK(record_held("vhost/full", "full", 1), "record stored though not written");
    CHECK(record_held("vhost/multi", "multi", 70), "70-fd record stored");
    close(pair[1]);
    close(pair[0]);
}

static void test_bad_index_and_refused(void)
{
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    struct vfe_ha_client *c = connect_to(sock_path, "bad-index");
    if (!c)
        return;
    static uint8_t pkt[VFE_HA_MAX_PACKET];
    int n = vfe_ha_encode_send(pkt, sizeof(pkt), 500, "vhost/badidx", 12, "b", 1, 1, 1, "NO", 2);
    CHECK(vfe_ha_send_packet(vfe_ha_client_fd(c), pkt, (size_t)n, &pair[1], 1) == 0, "raw put_send");
    /* the answer: ERR EPROTO, then the connection closes */
    int fd = vfe_ha_client_fd(c);
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, 2000);
    n = (int)recv(fd, pkt, sizeof(pkt), 0);
    struct vfe_ha_msg m;
    int32_t err = 0;
    if (n > 0 && vfe_ha_decode(pkt, (size_t)n, 0, &m, NULL) == 0 && m.hdr.type == VFE_HA_ERR)
        memcpy(&err, m.body, sizeof(err));
    CHECK(err == EPROTO, "ERR EPROTO for fd_index past the record: %d", (int)err);
    poll(&p, 1, 2000);
    n = (int)recv(fd, pkt, sizeof(pkt), 0);
    CHECK(n == 0 || (n < 0 && errno == ECONNRESET), "connection closed: %d", n);
    vfe_ha_client_close(c);
    CHECK(nothing_arrives(pair[0]), "nothing written");

    /* fill the store, then a put_send of a new key is refused and writes nothing */
    c = connect_to(sock_path, "filler");
    if (!c)
        return;
    struct vfe_ha_record *recs;
    unsigned nrec = 0;
    CHECK(vfe_ha_get(c, "vhost/badidx", &recs, &nrec) == -ENOENT, "bad-index record not stored");
    CHECK(vfe_ha_get(c, NULL, &recs, &nrec) == 0, "list");
    vfe_ha_records_free(recs, nrec);
    for (unsigned i = nrec; i < MAX_RECORDS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "fill/%u", i);
        CHECK(vfe_ha_put(c, key, "f", 1, NULL, 0) == 0, "fill %u", i);
    }
    int rc = vfe_ha_put_send(c, "vhost/over", "o", 1, &pair[1], 1, 0, "OVER", 4);
    CHECK(rc == -ENOSPC, "refused over the record limit: %d %s", rc, vfe_ha_client_error(c));
    CHECK(nothing_arrives(pair[0]), "a refused record writes nothing");
    vfe_ha_client_close(c);
    close(pair[0]);
    close(pair[1]);
}

/* A scripted HA process speaking 1.1: the blocking client refuses put_send, sends nothing. */
static void test_old_peer(void)
{
    int srv = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", old_path);
    CHECK(bind(srv, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(srv, 4) == 0, "bind %s", old_path);
    pid_t child = fork();
    if (child == 0) {
        /* answer one HELLO with minor 1, then report whether anything else came */
        int s = accept(srv, NULL, NULL);
        uint8_t pkt[VFE_HA_MAX_PACKET];
        ssize_t n = recv(s, pkt, sizeof(pkt), 0);
        struct vfe_ha_msg m;
        if (n <= 0 || vfe_ha_decode(pkt, (size_t)n, 0, &m, NULL) < 0 || m.hdr.type != VFE_HA_HELLO)
            _exit(20);
        struct vfe_ha_limits lim = {16, 1000, 64, VFE_HA_BLOB_MAX, 1 << 20};
        int k = vfe_ha_encode(pkt, sizeof(pkt), VFE_HA_ACK, 0, m.hdr.seq, NULL, 0, &lim, sizeof(lim), 0);
        pkt[offsetof(struct vfe_ha_hdr, minor)] = 1;
        if (send(s, pkt, (size_t)k, 0) != k)
            _exit(21);
        n = recv(s, pkt, sizeof(pkt), 0);   /* the client closes without sending anything */
        _exit(n == 0 ? 0 : 22);
    }
    struct vfe_ha_client *c = connect_to(old_path, "to-old");
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    if (c) {
        CHECK(vfe_ha_client_peer_minor(c) == 1, "minor 1");
        int rc = vfe_ha_put_send(c, "vhost/old", "o", 1, &pair[1], 1, 0, "OLD", 3);
        CHECK(rc == -EOPNOTSUPP, "put_send to 1.1: %d", rc);
        vfe_ha_client_close(c);
    }
    int st = -1;
    CHECK((st = proc_wait(child, 3000)) == 0,
          "the 1.1 process saw no PUT: %d", st);
    /* the link against a 1.1 process */
    test_link_put_send(old_path, true, srv, -1);
    close(srv);
    unlink(old_path);
    close(pair[0]);
    close(pair[1]);
}

int main(void)
{
    ha_bin = getenv("VFE_VHOSTD_HA");
    if (!ha_bin) {
        fprintf(stderr, "VFE_VHOSTD_HA not set\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/vfe-ha-send.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock_path, sizeof(sock_path), "%s/ha.sock", dir);
    snprintf(old_path, sizeof(old_path), "%s/old.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/ha.log", dir);
    pid_t ha = start_ha();
    REQUIRE(proc_alive(ha) && vfe_unix_path_in_use(sock_path), done, "vfe-vhostd-ha started");
    test_put_send();
    test_link_put_send(sock_path, false, -1, ha);
    test_drain(ha, false);
    test_drain(ha, true);
    test_not_a_socket_and_full();
    test_bad_index_and_refused();
    test_old_peer();
    CHECK(proc_alive(ha), "the HA process survived");
done:
    if (ha > 0)
        proc_stop(ha, 2000);
    if (check_failures) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "cat %s", log_path);
        if (system(cmd) < 0)
            perror("cat");
    }
    unlink(log_path);
    char p[200];
    snprintf(p, sizeof(p), "%s.lock", sock_path);
    unlink(p);
    rmdir(dir);
    return check_result("ha_send");
}
