/*
 * vfe-vhostd end to end with the sim and the test front-end: provisioning
 * through vhostmgmt, frames byte-exact between two front-ends through two
 * VFs (1 and 4 queue pairs) while the daemon stays idle, stop / reconnect at
 * the right ring indices, VF removal and re-add under traffic, VFs of one
 * VM sharing DMA maps, 64 VFs at once, and bad RPC input.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/lib/check.h"
#include "tests/lib/test_rpc.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_vf.h"

#define PF "0000:3b:00.0"

static struct sim_proc sp;
static pid_t vhostd = -1;
static char rpc[100], iface[400], log_path[400];

/* Run vhostmgmt with args (NULL-terminated); its exit status, output in out. */
static int mgmt_run(char *out, size_t len, const char *stdin_text, ...)
{
    va_list ap;
    va_start(ap, stdin_text);
    int rc = vhostmgmt_vrun(rpc, out, len, stdin_text, ap);
    va_end(ap);
    return rc;
}

static char tcp_spec[32];

static int start_daemon(bool client)
{
    snprintf(tcp_spec, sizeof(tcp_spec), "127.0.0.1:%d", proc_free_tcp_port());
    snprintf(rpc, sizeof(rpc), "%.80s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%s/vf-", sp.dir);
    snprintf(log_path, sizeof(log_path), "%s/vhostd.log", sp.dir);
    const char *argv[] = {vhostd_bin(), "--pci-root", sp.root, "--rpc", rpc, "--iface", iface,
                          "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", "--compat-tcp", tcp_spec, "--no-state",
                          client ? "--client" : NULL, NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    return file_wait(log_path, ready, 1, 5000) ? 0 : -1;
}

static void vf_sock(const char *bdf, char *out, size_t len)
{
    snprintf(out, len, "%s%s", iface, bdf);
}

/* Frames from a to b on pair p, checked; the count that arrived intact. */
static unsigned flow(struct vfe_fe *a, struct vfe_fe *b, const uint8_t am[6], const uint8_t bm[6], unsigned n,
                     unsigned pairs, size_t size, uint32_t seed)
{
    uint8_t out[9100], in[9200];
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = size ? size : 60 + (i * 97) % 1400;
        vfe_fe_frame(out, len, bm, am, seed + i);
        if (vfe_fe_send(a, i % pairs, out, len) == 0 &&
            vfe_fe_recv(b, i % pairs, in, sizeof(in), 3000) == (int)len && !memcmp(in, out, len))
            ok++;
        else
            break;   /* one loss is enough to fail; do not wait out the rest */
    }
    return ok;
}

/* The device runs rings asynchronously after the front-end's last message:
 * wait until the daemon reports them running. */
static bool wait_running(const char *bdf, unsigned rings)
{
    long end = check_now_ms() + 5000;
    while (check_now_ms() < end) {
        json_t *vf = test_rpc_vf_stats(rpc, bdf);
        bool ok = vf && json_integer_value(json_object_get(vf, "rings_running")) == (json_int_t)rings &&
                  !strcmp(json_string_value(json_object_get(vf, "state")) ?: "", "running");
        json_decref(vf);
        if (ok)
            return true;
        usleep(5000);
    }
    return false;
}

static const uint8_t mac_a[6] = {0x02, 0xaa, 0, 0, 0, 1}, mac_b[6] = {0x02, 0xbb, 0, 0, 0, 2};

/* Teach the sim's switch both guest MACs (the guests' first frames do this). */
static void announce(struct vfe_fe *a, struct vfe_fe *b)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[60], in[100];
    vfe_fe_frame(f, 60, bcast, mac_a, 1);
    vfe_fe_send(a, 0, f, 60);
    vfe_fe_recv(b, 0, in, sizeof(in), 1000);
    vfe_fe_frame(f, 60, bcast, mac_b, 2);
    vfe_fe_send(b, 0, f, 60);
    vfe_fe_recv(a, 0, in, sizeof(in), 1000);
}

static void test_traffic(unsigned pairs)
{
    char out[4096], sa[450], sb[450];
    vf_sock("0000:3b:00.1", sa, sizeof(sa));
    vf_sock("0000:3b:00.2", sb, sizeof(sb));
    struct vfe_fe_opts oa = {.path = sa, .pairs = pairs}, ob = {.path = sb, .pairs = pairs};
    struct vfe_fe *a = vfe_fe_open(&oa), *b = vfe_fe_open(&ob);
    REQUIRE(a && b, out, "front-ends (%u pairs) did not connect", pairs);
    CHECK(vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, "start");
    CHECK(wait_running("0000:3b:00.1", 2 * pairs) && wait_running("0000:3b:00.2", 2 * pairs), "rings not running");
    announce(a, b);
    long t0 = proc_cpu_ms(vhostd);
    unsigned n = 500;
    CHECK(flow(a, b, mac_a, mac_b, n, pairs, 0, 10) == n, "a -> b (%u pairs)", pairs);
    CHECK(flow(b, a, mac_b, mac_a, n, pairs, 0, 20) == n, "b -> a (%u pairs)", pairs);
    CHECK(flow(a, b, mac_a, mac_b, 20, pairs, 9000, 30) == 20, "9000-byte frames");
    long used = proc_cpu_ms(vhostd) - t0;
    /* 5 clock ticks (USER_HZ is 100 on Linux) */
    CHECK(t0 >= 0 && used >= 0 && used <= 50, "the daemon used %ld ms of CPU while %u frames flowed: in the data path",
          used, 2 * n + 20);
    CHECK(mgmt_run(out, sizeof(out), NULL, "stats", "0000:3b:00.1", NULL) == 0 && strstr(out, "connected") &&
              strstr(out, "running"), "stats while running: %s", out);
    /* the device's counters, read by the daemon through the VF, match the sim's own */
    json_t *vf1 = test_rpc_vf_stats(rpc, "0000:3b:00.1");
    CHECK(vf1 != NULL, "stats of 0000:3b:00.1 failed");
    json_t *ctr = json_object_get(vf1, "counters");
    long long tx = test_sim_counter(&sp, "0000:3b:00.1", "tx_packets");
    CHECK(tx > 0 && json_integer_value(json_object_get(ctr, "tx_packets")) == tx &&
              json_integer_value(json_object_get(ctr, "rx_bytes")) ==
                  test_sim_counter(&sp, "0000:3b:00.1", "rx_bytes"),
          "device counters in stats differ from the sim's (tx %lld)", tx);
    /* kicks went through the doorbell pages the daemon offered as host notifiers */
    struct vfe_fe_stats fs;
    uint64_t nk = 0;
    for (unsigned p = 0; p < pairs && vfe_fe_stats(a, p, &fs) == 0; p++)
        nk += fs.notifier_kicks;
    CHECK(json_integer_value(json_object_get(vf1, "host_notifiers")) == 2 * pairs && nk > 0 &&
              test_sim_counter(&sp, "0000:3b:00.1", "mapped_doorbell_kicks") > 0,
          "host notifiers: %lld offered, %llu kicks through them, the sim saw %lld",
          json_integer_value(json_object_get(vf1, "host_notifiers")), (unsigned long long)nk,
          test_sim_counter(&sp, "0000:3b:00.1", "mapped_doorbell_kicks"));
    /* a received the announce and n frames, sent the announce, n and 20 */
    unsigned per = (n + pairs - 1) / pairs, big = (20 + pairs - 1) / pairs;
    /* live indices of a's first TX ring: everything published was used */
    json_t *rings = json_object_get(vf1, "rings");
    json_t *tx1 = json_array_get(rings, 1);
    CHECK(json_array_size(rings) == 2 * pairs && json_integer_value(json_object_get(tx1, "ring")) == 1 &&
              json_integer_value(json_object_get(tx1, "avail_idx")) == per + big + 1 &&
              json_integer_value(json_object_get(tx1, "used_idx")) == per + big + 1,
          "live ring indices in stats: %zu rings, tx ring avail %lld used %lld, want %u", json_array_size(rings),
          json_integer_value(json_object_get(tx1, "avail_idx")),
          json_integer_value(json_object_get(tx1, "used_idx")), per + big + 1);
    json_decref(vf1);

    /* stop as QEMU does, reconnect, continue at the indices the device reported */
    uint16_t ba[16], bb[16];
    CHECK(vfe_fe_stop(a, ba) == 0 && vfe_fe_stop(b, bb) == 0, "stop");
    CHECK(ba[0] == per + 1 && ba[1] == per + big + 1, "ring indices from the device %u %u, want %u %u", ba[0],
          ba[1], per + 1, per + big + 1);
    CHECK(vfe_fe_reconnect(a) == 0 && vfe_fe_reconnect(b) == 0, "reconnect");
    CHECK(vfe_fe_start(a, ba) == 0 && vfe_fe_start(b, bb) == 0, "start at the saved indices");
    CHECK(wait_running("0000:3b:00.1", 2 * pairs) && wait_running("0000:3b:00.2", 2 * pairs), "rings not running");
    CHECK(flow(a, b, mac_a, mac_b, 50, pairs, 0, 40) == 50, "frames after reconnect");
    CHECK(flow(b, a, mac_b, mac_a, 50, pairs, 0, 50) == 50, "frames after reconnect, back");
out:
    vfe_fe_close(a);
    vfe_fe_close(b);
}

/* Migration source side: QEMU's dirty log filled by the device (push) while
 * frames flow into the guest; every page written is marked. */
static void test_dirty_log(void)
{
    char sa[450], sb[450], out[4096];
    vf_sock("0000:3b:00.1", sa, sizeof(sa));
    vf_sock("0000:3b:00.2", sb, sizeof(sb));
    struct vfe_fe_opts oa = {.path = sa}, ob = {.path = sb};
    struct vfe_fe *a = vfe_fe_open(&oa), *b = vfe_fe_open(&ob);
    uint8_t *log = NULL;
    REQUIRE(a && b, out, "front-ends did not connect");
    CHECK(vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, "start");
    CHECK(wait_running("0000:3b:00.1", 2) && wait_running("0000:3b:00.2", 2), "rings not running");
    announce(a, b);
    CHECK(vfe_fe_log_start(a) == 0, "SET_LOG_BASE + LOG_ALL");
    long end = check_now_ms() + 3000;
    while (check_now_ms() < end &&
           !(mgmt_run(out, sizeof(out), NULL, "stats", "0000:3b:00.1", NULL) == 0 && strstr(out, "push")))
        usleep(10000);
    CHECK(strstr(out, "dirty_tracking       push") != NULL, "dirty tracking not on: %s", out);
    log = calloc(1, 1 << 20);
    vfe_fe_log_take(a, log, 1 << 20);   /* start from a clean log */
    unsigned n = 40;
    CHECK(flow(b, a, mac_b, mac_a, n, 1, 1000, 90) == n, "frames into the logged guest");
    long got = vfe_fe_log_take(a, log, 1 << 20);
    CHECK(got > 0, "no log");
    uint64_t gpa, len;
    vfe_fe_rx_area(a, 0, &gpa, &len);
    /* the frames went into rx buffer slots (announce + earlier) ... : each one's page is marked */
    unsigned marked = 0, in_rx = 0;
    for (long i = 0; i < got * 8; i++)
        if (log[i / 8] >> (i % 8) & 1) {
            marked++;
            in_rx += (uint64_t)i * 4096 >= gpa && (uint64_t)i * 4096 < gpa + len;
        }
    uint64_t used = vfe_fe_used_gpa(a, 0) / 4096;
    CHECK(log[used / 8] >> (used % 8) & 1 || marked == 0, "rx used ring page not marked");
    CHECK(in_rx >= n * 1000 / 4096 && in_rx <= n / 2 + 2, "%u rx buffer pages marked for %u frames", in_rx, n);
    CHECK(marked == in_rx + 1, "%u pages marked, %u of them rx buffers: the device wrote nothing else", marked, in_rx);
    CHECK(vfe_fe_log_stop(a) == 0, "LOG_ALL off");
out:
    free(log);
    vfe_fe_close(a);
    vfe_fe_close(b);
}

/* The peer project's tools speak TCP to 127.0.0.1 (--compat-tcp). */
static void test_compat_tcp(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(strchr(tcp_spec, ':') + 1)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char reply[2048] = "";
    const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"mgmtpf\",\"params\":{\"list\":true},\"id\":7}";
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && write(fd, req, strlen(req)) > 0) {
        shutdown(fd, SHUT_WR);
        ssize_t r = read(fd, reply, sizeof(reply) - 1);
        reply[r > 0 ? r : 0] = '\0';
    }
    close(fd);
    CHECK(strstr(reply, "\"pf\":\"" PF "\"") && strstr(reply, "\"id\":7"), "mgmtpf list over TCP: %s", reply);
}

/* Only root, the daemon's user and the socket's group may call it. */
static void test_peer_credentials(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
            _exit(3);
        json_t *res = NULL;
        char msg[256];
        int rc = rpc_client_call(rpc, "version", NULL, 2000, &res, msg, sizeof(msg));
        _exit(rc == RPC_ACCESS_DENIED ? 0 : rc == 0 ? 1 : 2);
    }
    int st = proc_wait(pid, 5000);
    if (getuid() != 0)
        return;   /* cannot become another user: nothing to check */
    CHECK(st == 0 || st == 2, "an unprivileged caller got %s", st == 1 ? "an answer" : "an unexpected result");
}

static void test_remove_readd(void)
{
    char out[4096], sa[450], sb[450];
    vf_sock("0000:3b:00.1", sa, sizeof(sa));
    vf_sock("0000:3b:00.2", sb, sizeof(sb));
    struct vfe_fe_opts oa = {.path = sa}, ob = {.path = sb};
    struct vfe_fe *a = vfe_fe_open(&oa), *b = vfe_fe_open(&ob);
    REQUIRE(a && b, out, "front-ends did not connect");
    CHECK(vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, "start");
    CHECK(wait_running("0000:3b:00.1", 2) && wait_running("0000:3b:00.2", 2), "rings not running");
    announce(a, b);
    CHECK(flow(a, b, mac_a, mac_b, 50, 1, 0, 60) == 50, "before removal");
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-r", "0000:3b:00.2", NULL) == 0, "vf -r: %s", out);
    uint8_t f[100], in[200];
    vfe_fe_frame(f, 100, mac_b, mac_a, 99);
    CHECK(vfe_fe_send(a, 0, f, 100) == 0, "send while the peer VF is gone");
    CHECK(vfe_fe_recv(b, 0, in, sizeof(in), 300) == -ETIMEDOUT, "a removed VF delivered a frame");
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", "0000:3b:00.2", NULL) == 0, "vf -a again: %s", out);
    CHECK(vfe_fe_reconnect(b) == 0, "front-end reconnects to the re-added VF");
    uint16_t bases[2];
    vfe_fe_used_indices(b, bases);   /* as QEMU does when its back-end went away */
    CHECK(vfe_fe_start(b, bases) == 0, "start on the re-added VF");
    CHECK(wait_running("0000:3b:00.2", 2), "re-added VF not running");
    announce(a, b);
    CHECK(flow(a, b, mac_a, mac_b, 50, 1, 0, 70) == 50, "after re-add");
    CHECK(flow(b, a, mac_b, mac_a, 50, 1, 0, 80) == 50, "after re-add, back");
out:
    vfe_fe_close(a);
    vfe_fe_close(b);
}

static long long domain_field(const char *bdf, const char *key)
{
    json_t *vf = test_rpc_vf_stats(rpc, bdf);
    long long v = vf ? json_integer_value(json_object_get(json_object_get(vf, "dma_domain"), key)) : -1;
    json_decref(vf);
    return v;
}

/* VFs added with one VM id share one DMA domain: the guest memory one
 * session maps reaches every VF of that VM (the sim's own DMA tables say
 * so), and no VF of another VM; it goes when its session lets go. */
static void test_shared_domain(void)
{
    char out[4096], sa[450];
    const char *a3 = "0000:3b:00.3", *a4 = "0000:3b:00.4", *b5 = "0000:3b:00.5";
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", a3, "-u", "vm-shared", NULL) == 0, "vf -a 3: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", a4, "-u", "vm-shared", NULL) == 0, "vf -a 4: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", b5, "-u", "vm-other", NULL) == 0, "vf -a 5: %s", out);
    CHECK(domain_field(a3, "members") == 2 && domain_field(b5, "members") == 1, "domain members %lld %lld",
          domain_field(a3, "members"), domain_field(b5, "members"));
    vf_sock(a3, sa, sizeof(sa));
    struct vfe_fe_opts oa = {.path = sa};
    struct vfe_fe *a = vfe_fe_open(&oa);
    REQUIRE(a, out, "front-end did not connect to %s", a3);
    CHECK(vfe_fe_start(a, NULL) == 0 && wait_running(a3, 2), "start on %s", a3);
    long long m3 = test_sim_counter(&sp, a3, "dma_maps"), bytes3 = test_sim_counter(&sp, a3, "dma_bytes");
    CHECK(m3 >= 2 && bytes3 > 0, "the connected VF has %lld maps, %lld bytes", m3, bytes3);
    CHECK(test_sim_counter(&sp, a4, "dma_maps") == m3 && test_sim_counter(&sp, a4, "dma_bytes") == bytes3,
          "the other VF of the VM has %lld maps of %lld bytes, want %lld of %lld",
          test_sim_counter(&sp, a4, "dma_maps"), test_sim_counter(&sp, a4, "dma_bytes"), m3, bytes3);
    CHECK(test_sim_counter(&sp, b5, "dma_maps") == 0, "a VF of another VM got %lld maps",
          test_sim_counter(&sp, b5, "dma_maps"));
    CHECK(domain_field(a4, "maps") == m3, "stats of %s: %lld maps in its domain", a4, domain_field(a4, "maps"));
    /* the session goes: its maps go from every member */
    vfe_fe_close(a);
    long long end = check_now_ms() + 3000;
    while (check_now_ms() < end && test_sim_counter(&sp, a4, "dma_maps") != 0)
        usleep(10000);
    CHECK(test_sim_counter(&sp, a3, "dma_maps") == 0 && test_sim_counter(&sp, a4, "dma_maps") == 0,
          "maps left after the session closed: %lld %lld", test_sim_counter(&sp, a3, "dma_maps"),
          test_sim_counter(&sp, a4, "dma_maps"));
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-r", a3, NULL) == 0, "vf -r 3: %s", out);
    CHECK(domain_field(a4, "members") == 1, "members after a VF left: %lld", domain_field(a4, "members"));
    /* a VM id that is not a string, or too long, is refused */
    json_t *res = NULL;
    char msg[256];
    json_t *params = json_pack("{s:b, s:s, s:i}", "add", 1, "vfdev", a3, "uuid", 7);
    CHECK(rpc_client_call(rpc, "vf", params, 2000, &res, msg, sizeof(msg)) == RPC_INVALID_PARAMS, "uuid 7: %s", msg);
    json_decref(params);
    char longid[100];
    memset(longid, 'u', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    params = json_pack("{s:b, s:s, s:s}", "add", 1, "vfdev", a3, "uuid", longid);
    CHECK(rpc_client_call(rpc, "vf", params, 2000, &res, msg, sizeof(msg)) == RPC_INVALID_PARAMS, "long uuid: %s",
          msg);
    json_decref(params);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-r", a4, NULL) == 0 &&
              mgmt_run(out, sizeof(out), NULL, "vf", "-r", b5, NULL) == 0, "vf -r 4, 5: %s", out);
out:;
}

static void test_bad_rpc(void)
{
    char out[4096];
    /* raw malformed requests on the socket */
    static const char *const raw[] = {
        "{not json", "[]", "{\"jsonrpc\":\"1.0\",\"method\":\"version\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":2}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"vf\",\"params\":{\"add\":\"yes\",\"vfdev\":\"0000:3b:00.3\"},\"id\":3}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"vf\",\"params\":{\"add\":true,\"vfdev\":42},\"id\":4}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"mgmtpf\",\"params\":[1,2],\"id\":5}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"vf\",\"params\":{\"add\":true,\"vfdev\":\"0000:3b:00.3\",\"socket_file\":\"rel\"},\"id\":6}",
    };
    static const int codes[] = {RPC_PARSE_ERROR, RPC_INVALID_REQUEST, RPC_INVALID_REQUEST, RPC_METHOD_NOT_FOUND,
                                RPC_INVALID_PARAMS, RPC_INVALID_PARAMS, RPC_INVALID_PARAMS, RPC_INVALID_PARAMS};
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un su = {.sun_family = AF_UNIX};
        memcpy(su.sun_path, rpc, sizeof(rpc) < sizeof(su.sun_path) ? sizeof(rpc) : sizeof(su.sun_path));
        char reply[2048] = "", line[512];
        int n = snprintf(line, sizeof(line), "%s\n", raw[i]);
        /* the daemon may answer and hang up before reading all: no SIGPIPE */
        if (connect(fd, (struct sockaddr *)&su, sizeof(su)) == 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL) > 0) {
            shutdown(fd, SHUT_WR);
            ssize_t r = read(fd, reply, sizeof(reply) - 1);
            reply[r > 0 ? r : 0] = '\0';
        }
        close(fd);
        char want[32];
        snprintf(want, sizeof(want), "\"code\":%d", codes[i]);
        CHECK(strstr(reply, want) != NULL, "request %zu: want %s, got %s", i, want, reply);
    }
    /* through vhostmgmt: clear messages and exit codes */
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", "0000:3c:07.7", NULL) == 1 && strstr(out, "no PCI function"),
          "unknown BDF: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", "0000:3b:00.3", "-v", iface, NULL) == 0,
          "vf -a with a socket: %s", out);
    char s3[450];
    vf_sock("0000:3b:00.1", s3, sizeof(s3));
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", "0000:3b:00.4", "-v", s3, NULL) == 1 &&
              strstr(out, "already used"), "duplicate socket: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", "0000:3b:00.1", NULL) == 1 && strstr(out, "already added"),
          "VF added twice: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "mgmtpf", "-r", PF, NULL) == 1 && strstr(out, "remove its VFs"),
          "PF removal while in use: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "mgmtpf", "-a", "0000:3b:00.1", NULL) == 1 && strstr(out, "is a VF"),
          "VF added as a PF: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", "3b:00.9", NULL) == 2, "bad BDF format: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "frobnicate", NULL) == 2, "unknown command: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-r", "0000:3b:00.3", NULL) == 0, "vf -r: %s", out);
    CHECK(proc_alive(vhostd), "the daemon died on bad input");
    CHECK(mgmt_run(out, sizeof(out), NULL, "health", NULL) == 0 && strstr(out, "ok"), "health: %s", out);
}

static void test_many_vfs(void)
{
    char script[8192] = "", out[8192];
    for (unsigned v = 5; v <= 64; v++) {
        char bdf[16], line[64];
        snprintf(bdf, sizeof(bdf), "0000:3b:%02x.%x", v >> 3, v & 7);
        snprintf(line, sizeof(line), "vf -a %s\\n", bdf);
        strncat(script, line, sizeof(script) - strlen(script) - 1);
    }
    CHECK(mgmt_run(out, sizeof(out), script, NULL) == 0, "adding VFs 5..64 from a script: %s",
          strstr(out, "vhostmgmt:") ? strstr(out, "vhostmgmt:") : out);
    unsigned served = 0;
    for (unsigned v = 1; v <= 64; v++) {
        if (v == 3 || v == 4)
            continue;   /* not provisioned */
        char bdf[16], s[450];
        snprintf(bdf, sizeof(bdf), "0000:3b:%02x.%x", v >> 3, v & 7);
        vf_sock(bdf, s, sizeof(s));
        struct vfe_fe_opts o = {.path = s, .timeout_ms = 2000};
        struct vfe_fe *fe = vfe_fe_open(&o);
        if (fe && vfe_fe_start(fe, NULL) == 0)
            served++;
        vfe_fe_close(fe);
    }
    CHECK(served == 62, "%u of 62 VFs served", served);
    json_t *res = NULL;
    char msg[256];
    CHECK(rpc_client_call(rpc, "stats", NULL, 5000, &res, msg, sizeof(msg)) == 0 &&
              json_array_size(json_object_get(res, "vfs")) == 62, "stats of 62 VFs: %s", msg);
    json_decref(res);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);   /* a write to a closed socket must fail a check, not kill the test before cleanup */
    const char *args[] = {"--pf", PF, "--vfs", "64", "--total-vfs", "64", "--qpairs", "4", "--mtu", "9000",
                          "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    char out[4096];
    REQUIRE(start_daemon(false) == 0, done, "vfe-vhostd did not start");
    CHECK(mgmt_run(out, sizeof(out), NULL, "mgmtpf", "-a", PF, NULL) == 0, "mgmtpf -a: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", "0000:3b:00.1", NULL) == 0, "vf -a 1: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "vf", "-a", "0000:3b:00.2", "-u", "vm-1", NULL) == 0, "vf -a 2: %s", out);
    CHECK(mgmt_run(out, sizeof(out), NULL, "--json", "vf", "-l", PF, NULL) == 0 && strstr(out, "\"vm_uuid\": \"vm-1\""),
          "vf -l: %s", out);
    test_traffic(1);
    test_traffic(4);
    test_dirty_log();
    test_remove_readd();
    test_shared_domain();
    test_bad_rpc();
    test_peer_credentials();
    test_compat_tcp();
    test_many_vfs();
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
done:
    CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("vhostd");
}
