/*
 * The daemon's link to vfe-vhostd-ha (vfe_ha_link on a real libev loop) and
 * records with more than 64 fds, against a real vfe-vhostd-ha:
 *   - a client deposits a record of 227 fds (memfds holding their index) and
 *     a 1 KiB blob and is killed with SIGKILL; a new client gets the 227 fds
 *     back in order;
 *   - raw PUTs: 4 packets of 64 fds (256) -> ERR E2BIG, no fd kept; 240 fds
 *     over 4 packets held; a continuation for another key closes the connection;
 *   - a client GETs 64 records of 30 fds each, closes, and a link connecting
 *     right after it comes up (the HA process serves one client at a time);
 *   - the link: up() runs from the loop, never inside create; puts are
 *     written at once (return 1) and ACKed; a record of 227 fds travels with
 *     its fds;
 *   - coalescing: the HA process stopped (SIGSTOP), one key put 1000 times
 *     (16 KiB blobs) plus a PUT then DEL of another key: the queue holds at
 *     most one entry per key, no loop iteration waits for it (none near 0.5 s); after
 *     SIGCONT the HA process holds only the last blob and not the deleted key;
 *   - the HA process killed: down() from the loop at once; puts while down
 *     return 0 and queue nothing; a new HA process: up() again, the re-put
 *     from up() is deposited; a PUT over --max-records is answered ERR and
 *     counted (errors, last_err, last_why);
 *   - bad arguments: -EINVAL / -E2BIG / -EBADF, nothing queued;
 *   - the HA process stopped with a PUT unanswered: down(-ETIMEDOUT) after
 *     VFE_HA_LINK_REPLY_TIMEOUT, up again once it runs.
 * Deposits are checked with the blocking client after the link is destroyed.
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drivers/common/virtio_ha/vfe_ha_client.h"
#include "drivers/common/virtio_ha/vfe_ha_link.h"
#include "lib/sock/vfe_unix_sock.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"

#define TMO 2000
#define SESSION_FDS 227u   /* 1 + 2 + 32 + 3 * 64: a vhost-user session */
#define COAL_BLOB (16u * 1024)

static char dir[64], sock_path[100], log_path[128];
static const char *ha_bin;
static struct ev_loop *loop;

static pid_t start_ha(const char *max_records)
{
    const char *argv[] = {ha_bin, "--socket", sock_path, "--log-level", "debug", "--max-records", max_records, NULL};
    unlink(log_path);
    pid_t pid = proc_spawn(argv, log_path);
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

/* n memfds, fd i holding the u32 base + i. */
static void make_memfds(int *fds, unsigned n, uint32_t base)
{
    for (unsigned i = 0; i < n; i++) {
        fds[i] = memfd_create("ha-link", MFD_CLOEXEC);
        uint32_t v = base + i;
        if (fds[i] < 0 || pwrite(fds[i], &v, sizeof(v), 0) != sizeof(v))
            CHECK(0, "memfd %u: %s", i, strerror(errno));
    }
}

static void close_all(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* Do fds hold base, base+1, ... in this order? */
static bool memfds_in_order(const int *fds, unsigned n, uint32_t base)
{
    for (unsigned i = 0; i < n; i++) {
        uint32_t v = 0;
        if (pread(fds[i], &v, sizeof(v), 0) != sizeof(v) || v != base + i) {
            fprintf(stderr, "fd %u holds %u, expected %u\n", i, v, base + i);
            return false;
        }
    }
    return true;
}

static const struct vfe_ha_record *find_rec(const struct vfe_ha_record *r, unsigned n, const char *key)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(r[i].key, key) == 0)
            return &r[i];
    return NULL;
}

/* ---- 227 fds survive the depositing client's SIGKILL ---- */

static void test_session_record_survives_kill(void)
{
    int ready[2];
    CHECK(pipe(ready) == 0, "pipe");
    pid_t child = fork();
    if (child == 0) {
        struct vfe_ha_client *c = connect_ok("depositor");
        int fds[SESSION_FDS];
        make_memfds(fds, SESSION_FDS, 1000);
        uint8_t blob[1024];
        memset(blob, 0x5a, sizeof(blob));
        int rc = c ? vfe_ha_put(c, "vhost/0000:3b:00.2", blob, sizeof(blob), fds, SESSION_FDS) : -1;
        close_all(fds, SESSION_FDS);
        if (rc != 0 || write(ready[1], "R", 1) != 1)
            _exit(20);
        for (;;)
            pause();
    }
    close(ready[1]);
    char b = 0;
    CHECK(read(ready[0], &b, 1) == 1 && b == 'R', "the depositor put a record of %u fds", SESSION_FDS);
    close(ready[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    struct vfe_ha_client *c = connect_ok("adopter");
    if (!c)
        return;
    CHECK(vfe_ha_client_limits(c)->max_record_fds == VFE_HA_MAX_RECORD_FDS, "limit %u fds per record",
          vfe_ha_client_limits(c)->max_record_fds);
    struct vfe_ha_record *recs = NULL;
    unsigned n = 0;
    int rc = vfe_ha_get(c, "vhost/0000:3b:00.2", &recs, &n);
    CHECK(rc == 0 && n == 1, "GET the session record: %d (%s)", rc, vfe_ha_client_error(c));
    if (rc == 0 && n == 1) {
        CHECK(recs[0].nfds == SESSION_FDS, "%u fds back", recs[0].nfds);
        CHECK(recs[0].blob_len == 1024 && recs[0].blob[0] == 0x5a && recs[0].blob[1023] == 0x5a, "the blob");
        CHECK(memfds_in_order(recs[0].fds, recs[0].nfds, 1000), "the 227 fds come back in order");
    }
    vfe_ha_records_free(recs, n);
    /* one over the record limit is refused by the client, nothing sent */
    static int many[VFE_HA_MAX_RECORD_FDS + 1];
    for (unsigned i = 0; i < VFE_HA_MAX_RECORD_FDS + 1; i++)
        many[i] = 0;
    CHECK(vfe_ha_put(c, "vhost/too-many", "x", 1, many, VFE_HA_MAX_RECORD_FDS + 1) == -E2BIG, "241 fds: E2BIG");
    CHECK(vfe_ha_del(c, "vhost/0000:3b:00.2") == 0, "delete");
    vfe_ha_client_close(c);
}

/* ---- the HA process's record fd limit, over raw packets ---- */

static int raw_put(int s, uint32_t flags, uint32_t seq, const char *key, const int *fds, unsigned nfds)
{
    static uint8_t pkt[VFE_HA_MAX_PACKET];
    int n = vfe_ha_encode(pkt, sizeof(pkt), VFE_HA_PUT, flags, seq, key, strlen(key), "r", 1, nfds);
    return n < 0 ? n : vfe_ha_send_packet(s, pkt, (size_t)n, fds, nfds);
}

/* The next answer's type (ERR's errno in *err); -1 on timeout. */
static int raw_answer(int s, int *err)
{
    static uint8_t in[VFE_HA_MAX_PACKET];
    struct pollfd p = {s, POLLIN, 0};
    if (poll(&p, 1, 2000) != 1)
        return -1;
    ssize_t n = recv(s, in, sizeof(in), 0);   /* the client's socket is non-blocking */
    struct vfe_ha_msg m;
    if (n <= 0 || vfe_ha_decode(in, (size_t)n, 0, &m, NULL) < 0)
        return -1;
    if (m.hdr.type == VFE_HA_ERR) {
        struct vfe_ha_err_body e;
        memcpy(&e, m.body, sizeof(e));
        *err = e.err;
    }
    return m.hdr.type;
}

static void test_record_fd_limit(pid_t ha)
{
    struct vfe_ha_client *c = connect_ok("limit");
    if (!c)
        return;
    int base = proc_fd_count(ha);
    int s = vfe_ha_client_fd(c);
    int fds[VFE_HA_MAX_FDS];
    make_memfds(fds, VFE_HA_MAX_FDS, 0);
    /* 4 packets of 64 fds: 256 > 240, refused at the last packet, every fd closed */
    for (int i = 0; i < 4; i++)
        CHECK(raw_put(s, i < 3 ? VFE_HA_F_MORE : 0, 900, "vhost/over", fds, VFE_HA_MAX_FDS) == 0, "packet %d", i);
    int err = 0;
    int t = raw_answer(s, &err);
    CHECK(t == VFE_HA_ERR && err == E2BIG, "256 fds: ERR E2BIG (%d, %d)", t, err);
    CHECK(proc_fd_count(ha) == base, "no fd kept: %d, before %d", proc_fd_count(ha), base);
    /* 3 x 64 + 48 = 240: held, and the connection still serves */
    for (int i = 0; i < 4; i++)
        CHECK(raw_put(s, i < 3 ? VFE_HA_F_MORE : 0, 901, "vhost/max", fds, i < 3 ? VFE_HA_MAX_FDS : 48) == 0,
              "packet %d", i);
    t = raw_answer(s, &err);
    CHECK(t == VFE_HA_ACK, "240 fds: ACK (%d)", t);
    CHECK(proc_fd_count(ha) == base + 240, "240 fds held: %d, before %d", proc_fd_count(ha), base);
    struct vfe_ha_record *recs = NULL;
    unsigned n = 0;
    CHECK(vfe_ha_get(c, "vhost/max", &recs, &n) == 0 && n == 1 && recs[0].nfds == 240 &&
          memfds_in_order(recs[0].fds + 192, 48, 0), "GET 240 fds");
    vfe_ha_records_free(recs, n);
    /* a continuation for another key: the connection is closed, the partial record's fds too */
    CHECK(raw_put(s, VFE_HA_F_MORE, 902, "vhost/a", fds, 2) == 0 && raw_put(s, 0, 902, "vhost/b", fds, 2) == 0,
          "mixed continuation sent");
    t = raw_answer(s, &err);
    CHECK(t == -1, "connection closed (%d)", t);
    vfe_ha_client_close(c);
    close_all(fds, VFE_HA_MAX_FDS);
    c = connect_ok("limit2");
    CHECK(c && vfe_ha_del(c, "vhost/max") == 0, "delete");
    CHECK(proc_fd_count(ha) == base, "back to %d fds: %d", base, proc_fd_count(ha));
    vfe_ha_client_close(c);
}

/* ---- a GET of 64 records x 30 fds, then a link right after close ---- */

static int ups, downs, last_down_err;
static long down_at_ms;
static char last_down_why[128];
static void (*on_up_hook)(void);

static void link_up(void *ctx)
{
    (void)ctx;
    ups++;
    if (on_up_hook)
        on_up_hook();
}

static void link_down(void *ctx, int err, const char *why)
{
    (void)ctx;
    downs++;
    last_down_err = err;
    down_at_ms = check_now_ms();
    snprintf(last_down_why, sizeof(last_down_why), "%s", why);
}

static const struct vfe_ha_link_ops link_ops = {link_up, link_down};

static void tick(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

/* Run the loop until *flag (an int) reaches want or timeout_ms passes. */
static bool run_until_int(const int *v, int want, int timeout_ms)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.01, 0.01);
    ev_timer_start(loop, &t);
    long end = check_now_ms() + timeout_ms;
    while (*v < want && check_now_ms() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
    return *v >= want;
}

static bool run_until_acks(struct vfe_ha_link *l, uint64_t want, int timeout_ms)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.01, 0.01);
    ev_timer_start(loop, &t);
    long end = check_now_ms() + timeout_ms;
    struct vfe_ha_link_stats st;
    vfe_ha_link_stats(l, &st);
    while (st.acks + st.errors < want && check_now_ms() < end) {
        ev_run(loop, EVRUN_ONCE);
        vfe_ha_link_stats(l, &st);
    }
    ev_timer_stop(loop, &t);
    return st.acks + st.errors >= want;
}

static void test_big_get_then_link(void)
{
    enum { RECS = 64, FDS = 30 };
    int base[FDS];
    make_memfds(base, FDS, 0);
    struct vfe_ha_client *c = connect_ok("many");
    if (!c) {
        close_all(base, FDS);
        return;
    }
    uint8_t blob[2048];
    for (unsigned r = 0; r < RECS; r++) {
        int fds[FDS];
        for (unsigned k = 0; k < FDS; k++)
            fds[k] = base[(r + k) % FDS];   /* each record its own order */
        memset(blob, (int)r, sizeof(blob));
        char key[32];
        snprintf(key, sizeof(key), "vf/many.%u", r);
        CHECK(vfe_ha_put(c, key, blob, sizeof(blob), fds, FDS) == 0, "put %s: %s", key, vfe_ha_client_error(c));
    }
    vfe_ha_client_close(c);
    close_all(base, FDS);

    c = connect_ok("restart");
    struct vfe_ha_record *recs = NULL;
    unsigned n = 0;
    int rc = c ? vfe_ha_get(c, NULL, &recs, &n) : -1;
    CHECK(rc == 0 && n == RECS, "GET all: %d, %u records", rc, n);
    unsigned good = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned r;
        if (sscanf(recs[i].key, "vf/many.%u", &r) != 1 || recs[i].nfds != FDS || recs[i].blob_len != sizeof(blob) ||
            recs[i].blob[0] != (uint8_t)r)
            continue;
        bool ok = true;
        for (unsigned k = 0; k < FDS && ok; k++) {
            uint32_t v = 0;
            ok = pread(recs[i].fds[k], &v, sizeof(v), 0) == sizeof(v) && v == (r + k) % FDS;
        }
        good += ok;
    }
    CHECK(good == RECS, "%u of %u records whole, fds in order", good, RECS);
    vfe_ha_records_free(recs, n);
    vfe_ha_client_close(c);

    /* the daemon's start: GET, close, and the link connects at once */
    ups = downs = 0;
    struct vfe_ha_link *l = vfe_ha_link_create(loop, sock_path, "vfe-vhostd", &link_ops, NULL);
    CHECK(l && ups == 0, "create runs no callback");
    CHECK(run_until_int(&ups, 1, 3000), "the link comes up right after the client closed");
    CHECK(downs == 0, "no down: %d (%s)", last_down_err, last_down_why);
    vfe_ha_link_destroy(l);

    c = connect_ok("cleanup");
    for (unsigned r = 0; c && r < RECS; r++) {
        char key[32];
        snprintf(key, sizeof(key), "vf/many.%u", r);
        vfe_ha_del(c, key);
    }
    vfe_ha_client_close(c);
}

/* ---- the link on a loop ---- */

static struct vfe_ha_link *g_link;
static int session_fds[SESSION_FDS];

/* What a daemon does at up: put everything it wants held. */
static void put_everything(void)
{
    int rc = vfe_ha_link_put(g_link, "vf/0000:3b:00.1", "state-A", 7, session_fds, 3);
    CHECK(rc == 1, "re-put from up(): %d", rc);
}

/* Loop blocking: the longest stretch between an iteration's check and the next prepare (callbacks). */
static double iter_start, iter_max;
static unsigned iters, iters_slow;
static void on_check(struct ev_loop *l, ev_check *w, int revents)
{
    (void)w;
    (void)revents;
    ev_now_update(l);
    iter_start = ev_time();
}
static void on_prepare(struct ev_loop *l, ev_prepare *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    if (iter_start <= 0)
        return;
    double d = ev_time() - iter_start;
    iters++;
    iters_slow += d > 0.5;   /* a put that waited for the stopped HA process */
    if (d > iter_max)
        iter_max = d;
}

/* Puts from the loop, 50 per idle turn, as a daemon handling events would. */
static unsigned coal_done, coal_max_queued;
static uint64_t coal_max_bytes;
static double put_max;
static uint8_t coal_blob[COAL_BLOB];
static void coal_idle(struct ev_loop *l, ev_idle *w, int revents)
{
    (void)revents;
    for (unsigned i = 0; i < 50 && coal_done < 1000; i++, coal_done++) {
        memcpy(coal_blob, &coal_done, sizeof(coal_done));
        double t0 = ev_time();
        int rc = vfe_ha_link_put(g_link, "vhost/coalesce", coal_blob, sizeof(coal_blob), session_fds, 2);
        double dt = ev_time() - t0;
        if (dt > put_max)
            put_max = dt;
        if (rc < 0)
            CHECK(0, "put %u: %d", coal_done, rc);
        struct vfe_ha_link_stats st;
        vfe_ha_link_stats(g_link, &st);
        if (st.queued > coal_max_queued)
            coal_max_queued = (unsigned)st.queued;
        if (st.queued_bytes > coal_max_bytes)
            coal_max_bytes = st.queued_bytes;
    }
    if (coal_done >= 1000)
        ev_idle_stop(l, w);
}

/* Coalescing result: checked on the first HA process before it is killed. */
static void test_coalesced_result(void)
{
    struct vfe_ha_client *c = connect_ok("coalesced");
    if (!c)
        return;
    struct vfe_ha_record *recs = NULL;
    unsigned n = 0;
    int rc = vfe_ha_get(c, "vhost/coalesce", &recs, &n);
    uint32_t v = 0;
    if (rc == 0 && n == 1 && recs[0].blob_len == COAL_BLOB)
        memcpy(&v, recs[0].blob, sizeof(v));
    CHECK(rc == 0 && n == 1 && v == 999 && recs[0].nfds == 2, "only the last blob is held: %u", v);
    vfe_ha_records_free(recs, n);
    CHECK(vfe_ha_get(c, "vf/put-then-del", &recs, &n) == -ENOENT, "a PUT then DEL while queued: not held");
    vfe_ha_client_close(c);
}

static void test_link(pid_t *ha)
{
    make_memfds(session_fds, SESSION_FDS, 5000);
    ups = downs = 0;
    on_up_hook = NULL;
    g_link = vfe_ha_link_create(loop, sock_path, "vfe-vhostd", &link_ops, NULL);
    REQUIRE(g_link, out, "create");
    CHECK(!vfe_ha_link_connected(g_link) && ups == 0, "not up inside create");
    CHECK(vfe_ha_link_put(g_link, "vf/early", "x", 1, NULL, 0) == 0, "a put before up is not queued");
    REQUIRE(run_until_int(&ups, 1, 3000), out, "up");
    CHECK(vfe_ha_link_connected(g_link), "connected");

    /* bad arguments: nothing queued */
    CHECK(vfe_ha_link_put(g_link, "/bad", "x", 1, NULL, 0) == -EINVAL, "bad key");
    CHECK(vfe_ha_link_put(g_link, "k", NULL, 4, NULL, 0) == -EINVAL, "blob NULL");
    CHECK(vfe_ha_link_put(g_link, "k", "x", VFE_HA_BLOB_MAX + 1, NULL, 0) == -E2BIG, "blob too big");
    CHECK(vfe_ha_link_put(g_link, "k", "x", 1, session_fds, VFE_HA_MAX_RECORD_FDS + 1) == -E2BIG, "241 fds");
    int badfd = -1;
    CHECK(vfe_ha_link_put(g_link, "k", "x", 1, &badfd, 1) == -EBADF, "fd -1");
    CHECK(vfe_ha_link_del(g_link, "a..b") == -EINVAL, "bad key on del");

    /* puts deposited, a session record of 227 fds among them */
    struct vfe_ha_link_stats st;
    vfe_ha_link_stats(g_link, &st);
    uint64_t acks0 = st.acks + st.errors;
    static uint8_t kb[1024];
    memset(kb, 0xa5, sizeof(kb));
    CHECK(vfe_ha_link_put(g_link, "vf/0000:3b:00.1", "state-A", 7, session_fds, 3) == 1, "put written at once");
    CHECK(vfe_ha_link_put(g_link, "vhost/session", kb, sizeof(kb), session_fds, SESSION_FDS) == 1,
          "227 fds written at once");
    CHECK(vfe_ha_link_put(g_link, "vf/gone", "z", 1, NULL, 0) == 1, "put");
    CHECK(vfe_ha_link_del(g_link, "vf/gone") == 1, "del");
    CHECK(vfe_ha_link_del(g_link, "vf/never-held") == 1, "del of a key never held");
    CHECK(run_until_acks(g_link, acks0 + 5, 3000), "answers");
    vfe_ha_link_stats(g_link, &st);
    CHECK(st.errors == 0 && st.puts >= 3 && st.dels == 2, "puts %lu dels %lu errors %lu (%s)",
          (unsigned long)st.puts, (unsigned long)st.dels, (unsigned long)st.errors, st.last_why);
    CHECK(st.held_at > 0 && st.held.server_pid == (uint32_t)*ha, "STATUS after up: pid %u at %.1f",
          st.held.server_pid, st.held_at);

    /* coalescing with the HA process stopped */
    ev_check chk;
    ev_prepare prep;
    ev_check_init(&chk, on_check);
    ev_prepare_init(&prep, on_prepare);
    ev_check_start(loop, &chk);
    ev_prepare_start(loop, &prep);
    kill(*ha, SIGSTOP);
    ev_idle idle;
    ev_idle_init(&idle, coal_idle);
    ev_idle_start(loop, &idle);
    long end = check_now_ms() + 5000;
    while (coal_done < 1000 && check_now_ms() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_idle_stop(loop, &idle);
    int r1 = vfe_ha_link_put(g_link, "vf/put-then-del", "p", 1, NULL, 0);
    int r2 = vfe_ha_link_del(g_link, "vf/put-then-del");
    CHECK(r1 == 0 && r2 == 0, "queued while the socket is full: %d %d", r1, r2);
    vfe_ha_link_stats(g_link, &st);
    printf("coalescing: 1000 puts of %u KiB, %lu written, queue max %u entries / %lu bytes, now %lu / %lu; "
           "longest put %.3f ms, longest loop iteration %.3f ms (%u iterations)\n",
           COAL_BLOB / 1024, (unsigned long)st.puts, coal_max_queued, (unsigned long)coal_max_bytes,
           (unsigned long)st.queued, (unsigned long)st.queued_bytes, put_max * 1e3, iter_max * 1e3, iters);
    CHECK(coal_done == 1000, "1000 puts made");
    CHECK(coal_max_queued <= 3 && st.queued <= 3, "one queued entry per key: max %u, now %lu", coal_max_queued,
          (unsigned long)st.queued);
    CHECK(coal_max_bytes <= 2 * COAL_BLOB, "queued bytes bounded: %lu", (unsigned long)coal_max_bytes);
    /* a link that blocked would hang here for as long as the HA process is stopped (seconds): no
     * iteration may come near that; how fast the loop turns is a bench matter, not this test's */
    CHECK(iters_slow == 0, "loop iterations over 500 ms with the HA process stopped: %u of %u (max %.3f ms)",
          iters_slow, iters, iter_max * 1e3);
    kill(*ha, SIGCONT);
    end = check_now_ms() + 5000;
    do {
        ev_run(loop, EVRUN_NOWAIT);
        vfe_ha_link_stats(g_link, &st);
        if (st.queued == 0 && st.acks + st.errors == st.puts + st.dels)
            break;
        usleep(1000);
    } while (check_now_ms() < end);
    CHECK(st.queued == 0 && st.queued_bytes == 0 && st.errors == 0 && st.acks == st.puts + st.dels,
          "drained after SIGCONT: %lu queued, %lu acks of %lu, %lu errors (%s)", (unsigned long)st.queued,
          (unsigned long)st.acks, (unsigned long)(st.puts + st.dels), (unsigned long)st.errors, st.last_why);
    ev_check_stop(loop, &chk);
    ev_prepare_stop(loop, &prep);

    /* one client at a time: the link goes, a client checks, a new link comes */
    vfe_ha_link_destroy(g_link);
    test_coalesced_result();
    ups = 0;
    g_link = vfe_ha_link_create(loop, sock_path, "vfe-vhostd", &link_ops, NULL);
    REQUIRE(g_link && run_until_int(&ups, 1, 3000), out, "a new link up");

    /* the HA process killed: down at once, puts while down keep nothing */
    long t0 = check_now_ms();
    kill(*ha, SIGKILL);
    waitpid(*ha, NULL, 0);
    *ha = -1;
    CHECK(run_until_int(&downs, 1, 2000), "down after the HA process died");
    CHECK(down_at_ms - t0 < 500, "down within %ld ms", down_at_ms - t0);
    CHECK(last_down_err == -ECONNRESET, "down: %d (%s)", last_down_err, last_down_why);
    CHECK(!vfe_ha_link_connected(g_link), "not connected");
    CHECK(vfe_ha_link_put(g_link, "vf/while-down", "d", 1, session_fds, 1) == 0, "put while down: 0");
    vfe_ha_link_stats(g_link, &st);
    CHECK(st.queued == 0 && st.queued_bytes == 0, "nothing queued while down");
    /* counted before the restart: the re-put's answer may come in the same
     * loop iteration as the link's up */
    acks0 = st.acks + st.errors;

    /* a new HA process (4 records at most): up again, the re-put from up() deposited */
    on_up_hook = put_everything;
    *ha = start_ha("4");
    CHECK(run_until_int(&ups, 2, 5000), "up again after the HA process restarted");
    CHECK(downs == 1, "down once, retries not reported: %d", downs);
    vfe_ha_link_stats(g_link, &st);
    CHECK(st.reconnects == 1, "reconnects %lu", (unsigned long)st.reconnects);
    CHECK(vfe_ha_link_put(g_link, "vhost/session", kb, sizeof(kb), session_fds, SESSION_FDS) == 1, "session again");
    CHECK(vfe_ha_link_put(g_link, "vf/b", "b", 1, NULL, 0) == 1, "3rd record");
    CHECK(vfe_ha_link_put(g_link, "vf/c", "c", 1, NULL, 0) == 1, "4th record");
    CHECK(vfe_ha_link_put(g_link, "vf/over-limit", "o", 1, session_fds, 1) == 1, "5th record written");
    CHECK(run_until_acks(g_link, acks0 + 5, 3000), "answers (re-put, 4 puts)");
    vfe_ha_link_stats(g_link, &st);
    CHECK(st.errors == 1 && st.last_err == ENOSPC && strstr(st.last_why, "vf/over-limit"),
          "the over-limit PUT counted: %lu errors, %d '%s'", (unsigned long)st.errors, st.last_err, st.last_why);
    CHECK(file_wait(log_path, (const char *const[]){"vf/over-limit", NULL}, 1, 2000), "HA process logged it");
    vfe_ha_link_destroy(g_link);
    g_link = NULL;

    /* what the HA process holds, read by the next client */
    struct vfe_ha_client *c = connect_ok("check");
    struct vfe_ha_record *recs = NULL;
    unsigned n = 0;
    int rc = c ? vfe_ha_get(c, NULL, &recs, &n) : -1;
    CHECK(rc == 0 && n == 4, "GET after destroy: %d, %u records", rc, n);
    const struct vfe_ha_record *r = find_rec(recs, n, "vf/0000:3b:00.1");
    CHECK(r && r->blob_len == 7 && memcmp(r->blob, "state-A", 7) == 0 && r->nfds == 3 &&
          memfds_in_order(r->fds, 3, 5000), "the re-put record with its fds");
    r = find_rec(recs, n, "vhost/session");
    CHECK(r && r->nfds == SESSION_FDS && r->blob_len == sizeof(kb) && memfds_in_order(r->fds, SESSION_FDS, 5000),
          "the session record with 227 fds in order");
    CHECK(!find_rec(recs, n, "vf/over-limit") && !find_rec(recs, n, "vf/while-down"), "no refused or dropped record");
    vfe_ha_records_free(recs, n);
    vfe_ha_client_close(c);

    /* an answer that never comes: after VFE_HA_LINK_REPLY_TIMEOUT the link reconnects */
    ups = downs = 0;
    on_up_hook = NULL;
    g_link = vfe_ha_link_create(loop, sock_path, "vfe-vhostd", &link_ops, NULL);
    REQUIRE(g_link && run_until_int(&ups, 1, 3000), out, "link up for the stall test");
    kill(*ha, SIGSTOP);
    t0 = check_now_ms();
    CHECK(vfe_ha_link_put(g_link, "vf/b", "b2", 2, NULL, 0) == 1, "put to a stopped HA process is written");
    CHECK(run_until_int(&downs, 1, (int)(VFE_HA_LINK_REPLY_TIMEOUT * 1000) + 2000), "down when no answer comes");
    long waited = down_at_ms - t0;
    CHECK(last_down_err == -ETIMEDOUT && waited >= (long)(VFE_HA_LINK_REPLY_TIMEOUT * 1000) - 100 &&
          waited < (long)(VFE_HA_LINK_REPLY_TIMEOUT * 1000) + 1000, "down %d after %ld ms (%s)", last_down_err,
          waited, last_down_why);
    kill(*ha, SIGCONT);
    CHECK(run_until_int(&ups, 2, 5000), "up again once the HA process runs");
out:
    vfe_ha_link_destroy(g_link);
    g_link = NULL;
    close_all(session_fds, SESSION_FDS);
}

int main(void)
{
    ha_bin = getenv("VFE_VHOSTD_HA");
    if (!ha_bin) {
        fprintf(stderr, "VFE_VHOSTD_HA not set\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    loop = ev_loop_new(EVFLAG_AUTO);
    snprintf(dir, sizeof(dir), "/tmp/vfe-ha-link.XXXXXX");
    if (!loop || !mkdtemp(dir))
        return 1;
    snprintf(sock_path, sizeof(sock_path), "%s/ha.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/ha.log", dir);
    pid_t ha = start_ha("4096");
    REQUIRE(proc_alive(ha) && vfe_unix_path_in_use(sock_path), done, "vfe-vhostd-ha started");
    test_session_record_survives_kill();
    test_record_fd_limit(ha);
    test_big_get_then_link();
    test_link(&ha);
done:
    if (ha > 0) {
        kill(ha, SIGCONT);
        proc_stop(ha, 2000);
    }
    if (check_failures) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "tail -50 %s", log_path);
        if (system(cmd) < 0)
            perror("cat");
    }
    unlink(log_path);
    char p[200];
    snprintf(p, sizeof(p), "%s.lock", sock_path);
    unlink(p);
    rmdir(dir);
    ev_loop_destroy(loop);
    return check_result("ha_link");
}
