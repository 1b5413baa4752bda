/*
 * vfe-vhostd-ha as a process, through the client API and raw packets:
 *   - a client deposits records with real fds (an eventfd holding a count, a
 *     memfd with content, one end of a connected socket pair, a 200 KiB blob
 *     in several packets) and starts a PUT it never finishes; it is killed
 *     with SIGKILL while the HA process is stopped, and a new client connects
 *     before it runs again; that client gets every finished record back: the memfd
 *     content, the eventfd count and the socket pair still work, the blob is
 *     intact, the unfinished PUT is gone and its fd closed;
 *   - replace and delete close the old fds (the HA process's /proc/PID/fd);
 *   - a second instance on the same socket refuses to start, the first serves;
 *   - a second client while one is connected is refused with EBUSY;
 *   - a client under another uid is refused with EACCES (when run as root);
 *   - a client that sends no HELLO is closed after --hello-timeout;
 *   - garbage, a newer major version, requests before HELLO, an fd count that
 *     disagrees, an oversized packet, a reply type from the client, a blob
 *     over the limit, a GET answer never read: ERR or a closed connection, no fd
 *     kept, and the next client is served;
 *   - SIGTERM: exit 0, the socket removed, every held fd closed;
 *   - options: --help, bad numbers and levels, stray arguments, a socket path
 *     too long; a path that is a file or a socket another process listens on
 *     (SOCK_SEQPACKET too) is refused and left as it was; a stale one is replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/common/virtio_ha/vfe_ha_client.h"
#include "lib/sock/vfe_unix_sock.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"

#define TMO 2000
#define BIG_BLOB (200u * 1024)

static char dir[64], sock_path[100], log_path[128], log2_path[128];
static const char *ha_bin;

static pid_t start_ha(const char *out)
{
    const char *argv[] = {ha_bin, "--socket", sock_path, "--log-level", "debug", "--hello-timeout", "1", NULL};
    pid_t pid = proc_spawn(argv, out);
    long end = check_now_ms() + 5000;
    while (check_now_ms() < end && proc_alive(pid)) {
        if (vfe_unix_path_in_use(sock_path))
            return pid;
        usleep(10000);
    }
    return pid;
}

static struct vfe_ha_client *connect_ok(const char *name)
{
    int err = 0;
    const char *why = NULL;
    struct vfe_ha_client *c = vfe_ha_client_connect(sock_path, name, TMO, &err, &why);
    CHECK(c, "connect as %s: %s (%d)", name, why ? why : "?", err);
    return c;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 31 + seed + (i >> 9));
}

/* A raw connection: the protocol from the test's side. */
static int raw_connect(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(s);
        return -1;
    }
    struct timeval tv = {2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return s;
}

static int raw_send(int s, uint16_t type, uint32_t flags, uint32_t seq, const char *key, const void *body,
                    size_t blen, const int *fds, unsigned nfds, unsigned hdr_nfds)
{
    static uint8_t pkt[VFE_HA_MAX_PACKET];
    int n = vfe_ha_encode(pkt, sizeof(pkt), type, flags, seq, key, key ? strlen(key) : 0, body, blen, hdr_nfds);
    if (n < 0)
        return n;
    struct iovec iov = {pkt, (size_t)n};
    union { struct cmsghdr a; char b[CMSG_SPACE(sizeof(int) * 8)]; } cm;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        mh.msg_control = cm.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    return sendmsg(s, &mh, MSG_NOSIGNAL) == n ? 0 : -errno;
}

/* The next packet: its type (ERR's errno in *err, message in msg), 0 on close, -1 on timeout/error. */
static int raw_recv(int s, int *err, char *msg, size_t cap)
{
    static uint8_t in[VFE_HA_MAX_PACKET];
    ssize_t n = recv(s, in, sizeof(in), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
        return 0;
    if (n < 0)
        return -1;
    struct vfe_ha_msg m;
    if (vfe_ha_decode(in, (size_t)n, 0, &m, NULL) < 0)
        return -1;
    if (m.hdr.type == VFE_HA_ERR) {
        struct vfe_ha_err_body e;
        memcpy(&e, m.body, sizeof(e));
        *err = e.err;
        snprintf(msg, cap, "%.*s", (int)(m.body_len - sizeof(e)), (const char *)m.body + sizeof(e));
    }
    return m.hdr.type;
}

/* After an ERR (or straight away) the HA process closes the connection. */
static bool raw_closed(int s)
{
    int err;
    char msg[256];
    for (int i = 0; i < 4; i++) {
        int t = raw_recv(s, &err, msg, sizeof(msg));
        if (t == 0)
            return true;
        if (t < 0)
            return false;
    }
    return false;
}

static int raw_hello(int s)
{
    int err = 0;
    char msg[256];
    if (raw_send(s, VFE_HA_HELLO, 0, 1, NULL, "raw", 3, NULL, 0, 0) < 0)
        return -1;
    return raw_recv(s, &err, msg, sizeof(msg)) == VFE_HA_ACK ? 0 : -1;
}

/* The depositing client: runs in a child, signals on ready_fd, waits to be killed. */
static void depositor(int ready_fd, int pair_end)
{
    struct vfe_ha_client *c = connect_ok("depositor");
    if (!c)
        _exit(10);
    int efd = eventfd(5, EFD_CLOEXEC);
    int mfd = memfd_create("ha-test", MFD_CLOEXEC);
    if (efd < 0 || mfd < 0 || write(mfd, "hello-ha", 8) != 8)
        _exit(11);
    static uint8_t big[BIG_BLOB];
    fill(big, sizeof(big), 3);
    int fds[3] = {efd, mfd, pair_end};
    if (vfe_ha_put(c, "vf/0000:3b:00.1", big, sizeof(big), fds, 3) < 0)
        _exit(12);
    int efd2 = eventfd(9, EFD_CLOEXEC);
    if (vfe_ha_put(c, "vhost/vm-1", "small", 5, &efd2, 1) < 0)
        _exit(13);
    /* a PUT that never finishes: first packet only, with an fd */
    if (raw_send(vfe_ha_client_fd(c), VFE_HA_PUT, VFE_HA_F_MORE, 99, "vf/partial", "x", 1, &efd2, 1, 1) < 0)
        _exit(14);
    close(efd);
    close(mfd);
    close(efd2);
    close(pair_end);
    if (write(ready_fd, "R", 1) != 1)
        _exit(15);
    for (;;)
        pause();
}

static void test_deposit_survives_client_kill(pid_t ha, int *base_fds)
{
    /* the HA process's fds with one client and no records */
    struct vfe_ha_client *c0 = connect_ok("base");
    if (!c0)
        return;
    *base_fds = proc_fd_count(ha);
    vfe_ha_client_close(c0);

    int pair[2], ready[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    CHECK(pipe(ready) == 0, "pipe");
    usleep(50000);   /* the HA process notices the base client left */
    pid_t child = fork();
    if (child == 0) {
        close(pair[0]);
        close(ready[0]);
        depositor(ready[1], pair[1]);
    }
    close(pair[1]);
    close(ready[1]);
    char r = 0;
    CHECK(read(ready[0], &r, 1) == 1 && r == 'R', "the depositor finished (status %d)", proc_wait(child, 100));
    close(ready[0]);
    /* the HA process sees the death and the next client in the same loop turn: stopped meanwhile */
    kill(ha, SIGSTOP);
    kill(child, SIGKILL);
    CHECK(proc_wait(child, 2000) == 128 + SIGKILL, "the depositor died of SIGKILL");
    pid_t waker = fork();
    if (waker == 0) {
        usleep(200000);
        kill(ha, SIGCONT);
        _exit(0);
    }
    struct vfe_ha_client *c = connect_ok("restarted");
    CHECK(proc_wait(waker, 2000) == 0, "waker");
    if (!c) {
        close(pair[0]);
        return;
    }
    struct vfe_ha_record *recs = NULL;
    unsigned n = 0;
    int rc = vfe_ha_get(c, NULL, &recs, &n);
    CHECK(rc == 0 && n == 2, "GET all: rc %d, %u records (%s)", rc, n, vfe_ha_client_error(c));
    static uint8_t want[BIG_BLOB];
    fill(want, sizeof(want), 3);
    bool saw_vf = false, saw_vm = false;
    for (unsigned i = 0; i < n; i++) {
        struct vfe_ha_record *x = &recs[i];
        CHECK(strcmp(x->key, "vf/partial") != 0, "an unfinished PUT was stored");
        if (strcmp(x->key, "vf/0000:3b:00.1") == 0) {
            saw_vf = true;
            CHECK(x->blob_len == BIG_BLOB && memcmp(x->blob, want, BIG_BLOB) == 0, "the 200 KiB blob (%u bytes)",
                  x->blob_len);
            REQUIRE(x->nfds == 3, out, "3 fds, got %u", x->nfds);
            uint64_t v = 0;
            CHECK(read(x->fds[0], &v, sizeof(v)) == sizeof(v) && v == 5, "eventfd count 5, got %llu",
                  (unsigned long long)v);
            char m[16] = {0};
            CHECK(pread(x->fds[1], m, 8, 0) == 8 && memcmp(m, "hello-ha", 8) == 0, "memfd content: '%s'", m);
            char b[8] = {0};
            CHECK(write(pair[0], "ping", 4) == 4, "write on our end");
            CHECK(read(x->fds[2], b, 4) == 4 && memcmp(b, "ping", 4) == 0, "read on the deposited end: '%s'", b);
            CHECK(write(x->fds[2], "pong", 4) == 4, "write on the deposited end");
            memset(b, 0, sizeof(b));
            CHECK(read(pair[0], b, 4) == 4 && memcmp(b, "pong", 4) == 0, "read on our end: '%s'", b);
        } else if (strcmp(x->key, "vhost/vm-1") == 0) {
            saw_vm = true;
            CHECK(x->blob_len == 5 && memcmp(x->blob, "small", 5) == 0 && x->nfds == 1, "small record");
            uint64_t v = 0;
            CHECK(x->nfds == 1 && read(x->fds[0], &v, sizeof(v)) == sizeof(v) && v == 9, "second eventfd");
        }
    }
    CHECK(saw_vf && saw_vm, "both records back");
    /* one record by key; an unknown key */
    vfe_ha_records_free(recs, n);
    recs = NULL;
    n = 0;
    rc = vfe_ha_get(c, "vhost/vm-1", &recs, &n);
    CHECK(rc == 0 && n == 1 && strcmp(recs[0].key, "vhost/vm-1") == 0, "GET one: rc %d n %u", rc, n);
    vfe_ha_records_free(recs, n);
    recs = NULL;
    n = 0;
    rc = vfe_ha_get(c, "vf/partial", &recs, &n);
    CHECK(rc == -ENOENT && n == 0, "GET of the unfinished record: %d", rc);
    /* the store holds 4 fds; the unfinished PUT's fd is closed; the GETs' dup()s too */
    struct vfe_ha_status st;
    CHECK(vfe_ha_status(c, &st) == 0 && st.records == 2 && st.fds == 4 && st.bytes > BIG_BLOB &&
              st.server_pid == (uint32_t)ha,
          "status: %u records, %u fds, %llu bytes", st.records, st.fds, (unsigned long long)st.bytes);
    CHECK(proc_fd_count(ha) == *base_fds + 4, "HA fds: %d, want %d", proc_fd_count(ha), *base_fds + 4);
out:
    vfe_ha_records_free(recs, n);
    vfe_ha_client_close(c);
    close(pair[0]);
}

static void test_replace_and_delete_close(pid_t ha, int base_fds)
{
    struct vfe_ha_client *c = connect_ok("replace");
    if (!c)
        return;
    int before = proc_fd_count(ha);
    CHECK(before == base_fds + 4, "start: %d fds, want %d", before, base_fds + 4);
    int e[3] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    CHECK(vfe_ha_put(c, "x/1", "a", 1, e, 3) == 0, "PUT 3 fds: %s", vfe_ha_client_error(c));
    CHECK(proc_fd_count(ha) == before + 3, "after PUT: %d", proc_fd_count(ha));
    CHECK(vfe_ha_put(c, "x/1", "bb", 2, e, 1) == 0, "replace with 1 fd");
    CHECK(proc_fd_count(ha) == before + 1, "after replace: %d, want %d", proc_fd_count(ha), before + 1);
    CHECK(vfe_ha_del(c, "x/1") == 0, "DEL");
    CHECK(proc_fd_count(ha) == before, "after DEL: %d, want %d", proc_fd_count(ha), before);
    CHECK(vfe_ha_del(c, "x/1") == -ENOENT, "DEL again: %s", vfe_ha_client_error(c));
    /* refused locally, nothing sent; the connection stays */
    CHECK(vfe_ha_put(c, "../x", "a", 1, NULL, 0) == -EINVAL, "bad key");
    struct vfe_ha_status st;
    CHECK(vfe_ha_status(c, &st) == 0 && st.records == 2, "still connected");
    /* a second client while this one is connected */
    int err = 0;
    const char *why = "";
    struct vfe_ha_client *c2 = vfe_ha_client_connect(sock_path, "second", TMO, &err, &why);
    CHECK(!c2 && err == -EBUSY && strstr(why, "another client"), "second client: err %d (%s)", err, why);
    vfe_ha_client_close(c2);
    CHECK(vfe_ha_status(c, &st) == 0, "the first client is still served");
    for (int i = 0; i < 3; i++)
        close(e[i]);
    vfe_ha_client_close(c);
}

static void test_second_instance(pid_t ha)
{
    const char *argv[] = {ha_bin, "--socket", sock_path, NULL};
    pid_t p2 = proc_spawn(argv, log2_path);
    int st = proc_wait(p2, 5000);
    CHECK(st == 1, "second instance exit status %d", st);
    if (st < 0)
        proc_stop(p2, 1000);
    const char *needle[] = {"another vfe-vhostd-ha serves", NULL};
    CHECK(file_count(log2_path, needle) == 1, "second instance says why");
    CHECK(proc_alive(ha), "the first instance lives");
    struct vfe_ha_client *c = connect_ok("after-second");
    struct vfe_ha_status s;
    CHECK(c && vfe_ha_status(c, &s) == 0 && s.records == 2, "the first instance serves");
    vfe_ha_client_close(c);
}

static void test_foreign_uid(pid_t ha)
{
    if (geteuid() != 0) {
        fprintf(stderr, "not root: foreign uid case skipped\n");
        return;
    }
    /* let uid 65534 reach the socket, so that the credential check is what refuses it */
    char run[sizeof(dir) + 8];
    snprintf(run, sizeof(run), "%s/run", dir);
    CHECK(chmod(dir, 0711) == 0 && chmod(run, 0711) == 0 && chmod(sock_path, 0666) == 0, "chmod");
    pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(20);
        int err = 0;
        const char *why = "";
        struct vfe_ha_client *c = vfe_ha_client_connect(sock_path, "nobody", TMO, &err, &why);
        if (c)
            _exit(21);
        fprintf(stderr, "foreign uid refused: %d %s\n", err, why);
        _exit(err == -EACCES && strstr(why, "uid 65534") ? 0 : 22);
    }
    int st = proc_wait(child, 5000);
    CHECK(st == 0, "the foreign uid client was refused with EACCES (status %d)", st);
    CHECK(chmod(sock_path, 0600) == 0 && chmod(run, 0700) == 0 && chmod(dir, 0700) == 0, "chmod back");
    const char *needle[] = {"runs as uid 65534", NULL};
    CHECK(file_count(log_path, needle) == 1, "the refusal is logged");
    struct vfe_ha_client *c = connect_ok("after-foreign");
    struct vfe_ha_status s;
    CHECK(c && vfe_ha_status(c, &s) == 0 && s.records == 2, "served after the foreign client");
    vfe_ha_client_close(c);
}

static void test_bad_input(pid_t ha, int base_fds)
{
    int err;
    char msg[256];
    /* random bytes */
    int s = raw_connect();
    uint8_t junk[100];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 97 + 13);
    CHECK(send(s, junk, sizeof(junk), MSG_NOSIGNAL) == sizeof(junk), "send junk");
    int t = raw_recv(s, &err, msg, sizeof(msg));
    CHECK(t == VFE_HA_ERR && err == EBADMSG, "junk: type %d err %d '%s'", t, err, msg);
    CHECK(raw_closed(s), "junk: closed");
    close(s);
    /* a newer major version */
    s = raw_connect();
    static uint8_t pkt[VFE_HA_MAX_PACKET + 1000];
    int n = vfe_ha_encode(pkt, sizeof(pkt), VFE_HA_HELLO, 0, 7, NULL, 0, "future", 6, 0);
    pkt[offsetof(struct vfe_ha_hdr, major)] = VFE_HA_MAJOR + 1;
    CHECK(send(s, pkt, (size_t)n, MSG_NOSIGNAL) == n, "send newer HELLO");
    err = 0;
    t = raw_recv(s, &err, msg, sizeof(msg));
    CHECK(t == VFE_HA_ERR && err == EPROTONOSUPPORT && strstr(msg, "newer") && strstr(msg, "speaks 1."),
          "newer major: type %d err %d '%s'", t, err, msg);
    CHECK(raw_closed(s), "newer major: closed");
    close(s);
    /* a client that says nothing: ERR ETIMEDOUT after --hello-timeout (1 s), closed */
    s = raw_connect();
    long t0 = check_now_ms();
    err = 0;
    t = raw_recv(s, &err, msg, sizeof(msg));
    long waited = check_now_ms() - t0;
    CHECK(t == VFE_HA_ERR && err == ETIMEDOUT && waited >= 900 && waited < 1900, "silent client: %d err %d after %ld ms",
          t, err, waited);
    CHECK(raw_closed(s), "silent client: closed");
    close(s);
    /* a request before HELLO */
    s = raw_connect();
    raw_send(s, VFE_HA_STATUS, 0, 3, NULL, NULL, 0, NULL, 0, 0);
    t = raw_recv(s, &err, msg, sizeof(msg));
    CHECK(t == VFE_HA_ERR && err == EPROTO && strstr(msg, "HELLO first"), "before HELLO: %d '%s'", t, msg);
    CHECK(raw_closed(s), "before HELLO: closed");
    close(s);
    /* a header that claims 2 fds, with 1 attached: the fd is not kept */
    int efd = eventfd(0, EFD_CLOEXEC);
    s = raw_connect();
    CHECK(raw_hello(s) == 0, "HELLO");
    raw_send(s, VFE_HA_PUT, 0, 4, "vf/liar", "z", 1, &efd, 1, 2);
    t = raw_recv(s, &err, msg, sizeof(msg));
    CHECK(t == VFE_HA_ERR && err == EBADMSG && strstr(msg, "fd count"), "fd count: %d '%s'", t, msg);
    CHECK(raw_closed(s), "fd count: closed");
    close(s);
    /* an oversized packet with an fd */
    s = raw_connect();
    CHECK(raw_hello(s) == 0, "HELLO");
    struct vfe_ha_hdr h = {.magic = VFE_HA_MAGIC, .major = VFE_HA_MAJOR, .type = VFE_HA_PUT, .key_len = 1,
                           .nfds = 1, .payload_len = VFE_HA_MAX_PAYLOAD + 1000};
    memset(pkt, 'a', sizeof(pkt));
    memcpy(pkt, &h, sizeof(h));
    struct iovec iov = {pkt, sizeof(pkt)};
    union { struct cmsghdr a; char b[CMSG_SPACE(sizeof(int))]; } cm;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
    struct cmsghdr *cmh = CMSG_FIRSTHDR(&mh);
    cmh->cmsg_level = SOL_SOCKET;
    cmh->cmsg_type = SCM_RIGHTS;
    cmh->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmh), &efd, sizeof(int));
    CHECK(sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(pkt), "send oversized");
    t = raw_recv(s, &err, msg, sizeof(msg));
    CHECK(t == VFE_HA_ERR && err == EMSGSIZE, "oversized: %d err %d '%s'", t, err, msg);
    CHECK(raw_closed(s), "oversized: closed");
    close(s);
    /* a reply type from the client: closed */
    s = raw_connect();
    CHECK(raw_hello(s) == 0, "HELLO");
    raw_send(s, VFE_HA_ACK, 0, 5, NULL, NULL, 0, NULL, 0, 0);
    CHECK(raw_closed(s), "ACK from the client: closed");
    close(s);
    /* another request in the middle of a multi-packet PUT: closed, the started record dropped */
    s = raw_connect();
    CHECK(raw_hello(s) == 0, "HELLO");
    raw_send(s, VFE_HA_PUT, VFE_HA_F_MORE, 6, "vf/mid", "a", 1, &efd, 1, 1);
    raw_send(s, VFE_HA_DEL, 0, 7, "vf/mid", NULL, 0, NULL, 0, 0);
    CHECK(raw_closed(s), "DEL inside a PUT: closed");
    close(s);
    /* a blob over the limit, in packets: ERR E2BIG at its end, the connection stays */
    s = raw_connect();
    CHECK(raw_hello(s) == 0, "HELLO");
    memset(pkt, 'b', sizeof(pkt));
    size_t chunk = VFE_HA_MAX_PAYLOAD - 6;
    size_t sent = 0;
    for (int i = 0; i < 5; i++, sent += chunk)
        raw_send(s, VFE_HA_PUT, i < 4 ? VFE_HA_F_MORE : 0, 8, "vf/big", pkt, chunk, i == 0 ? &efd : NULL,
                 i == 0 ? 1 : 0, i == 0 ? 1 : 0);
    t = raw_recv(s, &err, msg, sizeof(msg));
    CHECK(sent > VFE_HA_BLOB_MAX && t == VFE_HA_ERR && err == E2BIG, "big blob: %d err %d '%s'", t, err, msg);
    raw_send(s, VFE_HA_STATUS, 0, 9, NULL, NULL, 0, NULL, 0, 0);
    t = raw_recv(s, &err, msg, sizeof(msg));
    CHECK(t == VFE_HA_ACK, "after the big blob the connection serves: %d", t);
    close(s);
    close(efd);
    /* a GET whose answer (over 200 KiB, more than the socket buffer) is never read: the client leaves */
    s = raw_connect();
    CHECK(raw_hello(s) == 0, "HELLO");
    raw_send(s, VFE_HA_GET, 0, 10, NULL, NULL, 0, NULL, 0, 0);
    usleep(50000);
    close(s);
    /* a packet cannot be cut on SOCK_SEQPACKET; a stream socket cannot even connect */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == EPROTOTYPE, "stream connect refused");
    close(s);
    /* alive, the records intact, no fd kept from any of the above */
    CHECK(proc_alive(ha), "HA alive after bad input");
    struct vfe_ha_client *c = connect_ok("after-garbage");
    struct vfe_ha_status st;
    CHECK(c && vfe_ha_status(c, &st) == 0 && st.records == 2 && st.fds == 4, "served after garbage");
    CHECK(proc_fd_count(ha) == base_fds + 4, "HA fds after bad input: %d, want %d", proc_fd_count(ha), base_fds + 4);
    vfe_ha_client_close(c);
}

static void test_stop(pid_t ha)
{
    /* keep one socket pair end ourselves, deposit the other, stop the HA process: the end it held closes */
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    struct vfe_ha_client *c = connect_ok("stop");
    CHECK(c && vfe_ha_put(c, "stop/1", NULL, 0, &pair[1], 1) == 0, "deposit");
    close(pair[1]);
    vfe_ha_client_close(c);
    CHECK(proc_stop(ha, 3000) == 0, "SIGTERM: exit 0");
    struct stat sb;
    CHECK(lstat(sock_path, &sb) < 0 && errno == ENOENT, "the socket is removed");
    char lock[160];
    snprintf(lock, sizeof(lock), "%s.lock", sock_path);
    CHECK(lstat(lock, &sb) == 0, "the lock file stays");
    char b;
    CHECK(read(pair[0], &b, 1) == 0, "the deposited end was closed with the HA process");
    close(pair[0]);
}

static int run_ha(const char *const *args, const char *out)
{
    const char *argv[12] = {ha_bin};
    for (int i = 0; args[i] && i < 10; i++)
        argv[i + 1] = args[i];
    pid_t p = proc_spawn(argv, out);
    int st = proc_wait(p, 5000);
    if (st < 0)
        proc_stop(p, 1000);
    return st;
}

static int bound_socket(const char *path, bool listening)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (listening && listen(s, 1) < 0)) {
        close(s);
        return -1;
    }
    return s;
}

static void test_options_and_paths(void)
{
    char p[100], out[128];
    snprintf(out, sizeof(out), "%s/opts.log", dir);
    const char *help[] = {"--help", NULL};
    const char *needle_help[] = {"--socket PATH", NULL};
    CHECK(run_ha(help, out) == 0 && file_count(out, needle_help) == 1, "--help");
    char longp[300];
    memset(longp, 'l', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    const char *bad[][4] = {
        {"--max-records", "0", NULL}, {"--max-records", "12x", NULL}, {"--max-bytes", "-1", NULL},
        {"--log-level", "loud", NULL}, {"--socket", "", NULL},        {"--socket", longp, NULL},
        {"stray", NULL},               {"--no-such-option", NULL},    {"--hello-timeout", "0", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(run_ha(bad[i], out) == 2, "bad options %zu (%s %s) exit 2", i, bad[i][0], bad[i][1] ? bad[i][1] : "");
    /* a file at the path: refused, untouched */
    snprintf(p, sizeof(p), "%s/file.sock", dir);
    FILE *f = fopen(p, "w");
    CHECK(f && fputs("mine", f) >= 0 && fclose(f) == 0, "file");
    const char *on_file[] = {"--socket", p, NULL};
    CHECK(run_ha(on_file, out) == 1, "a file at --socket: exit 1");
    char b[8] = {0};
    f = fopen(p, "r");
    CHECK(f && fread(b, 1, 4, f) == 4 && strcmp(b, "mine") == 0, "the file is untouched");
    if (f)
        fclose(f);
    unlink(p);
    /* a SOCK_SEQPACKET socket somebody listens on: refused, still theirs */
    snprintf(p, sizeof(p), "%s/live.sock", dir);
    int live = bound_socket(p, true);
    CHECK(live >= 0, "live listener");
    const char *on_live[] = {"--socket", p, NULL};
    const char *needle_live[] = {"somebody serves it", NULL};
    CHECK(run_ha(on_live, out) == 1 && file_count(out, needle_live) == 1, "a live socket at --socket: refused");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    CHECK(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "the listener still owns its socket");
    close(s);
    close(live);
    unlink(p);
    /* a stale one (nobody listens): replaced and served */
    snprintf(p, sizeof(p), "%s/stale.sock", dir);
    close(bound_socket(p, false));
    const char *argv[] = {ha_bin, "--socket", p, NULL};
    pid_t ha = proc_spawn(argv, out);
    long end = check_now_ms() + 5000;
    while (check_now_ms() < end && proc_alive(ha) && !vfe_unix_path_in_use(p))
        usleep(10000);
    CHECK(vfe_unix_path_in_use(p), "a stale socket is replaced");
    CHECK(proc_stop(ha, 3000) == 0, "stop");
    char lock[160];
    snprintf(lock, sizeof(lock), "%s.lock", p);
    unlink(lock);
    snprintf(lock, sizeof(lock), "%s/live.sock.lock", dir);
    unlink(lock);
    snprintf(lock, sizeof(lock), "%s/file.sock.lock", dir);
    unlink(lock);
    unlink(out);
}

int main(void)
{
    ha_bin = getenv("VFE_VHOSTD_HA");
    if (!ha_bin) {
        fprintf(stderr, "VFE_VHOSTD_HA not set\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/vfe-ha-test.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock_path, sizeof(sock_path), "%s/run/ha.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/ha.log", dir);
    snprintf(log2_path, sizeof(log2_path), "%s/ha2.log", dir);
    pid_t ha = start_ha(log_path);
    REQUIRE(proc_alive(ha) && vfe_unix_path_in_use(sock_path), done, "vfe-vhostd-ha started");
    struct stat sb;
    CHECK(stat(sock_path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "socket mode 0600: %o", sb.st_mode & 0777);
    int base_fds = -1;
    test_deposit_survives_client_kill(ha, &base_fds);
    test_replace_and_delete_close(ha, base_fds);
    test_second_instance(ha);
    test_foreign_uid(ha);
    test_bad_input(ha, base_fds);
    test_stop(ha);
    ha = -1;
    test_options_and_paths();
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
    unlink(log2_path);
    char p[200];
    snprintf(p, sizeof(p), "%s.lock", sock_path);
    unlink(p);
    snprintf(p, sizeof(p), "%s/run", dir);
    rmdir(p);
    rmdir(dir);
    return check_result("ha");
}
