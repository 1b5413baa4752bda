/*
 * After a migration the network must find the guest on its new VF (issue 10).
 * The sim (its uplink's far end is this test), vfe-vhostd and test front-ends
 * playing QEMU.  Argument: the sim's admin dialect, "nvidia" (default) or
 * "virtio".
 *  - both: GUEST_ANNOUNCE is offered in GET_FEATURES and negotiated, but the
 *    device is started without it (the sim refuses a restore with a feature
 *    it does not offer, and its driver_features say so);
 *  - nvidia: SEND_RARP makes the device broadcast a RARP from the VF, which
 *    reaches the uplink byte for byte; multicast, broadcast and zero MACs
 *    are refused (no frame); a SEND_RARP before the rings start (QEMU sends
 *    it when the migration completes, the guest still paused) goes out once
 *    they run, and the switch then sends the MAC to that VF; stats count;
 *  - virtio: no standard command can announce: no frame, the daemon logs it
 *    once and stats say "unsupported"; the VF runs on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "lib/rpc/rpc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/lib/check.h"
#include "tests/lib/test_rpc.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define PF "0000:3b:00.0"
#define VF_A "0000:3b:00.1"
#define VF_B "0000:3b:00.2"

static struct sim_proc sp = {.pid = -1};
static pid_t vhostd = -1;
static char rpc[300], log_path[300], iface[300];
static int up_fd = -1;
static const uint8_t GUEST_A[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x3a};
static const uint8_t GUEST_B[6] = {0x52, 0x54, 0x00, 0x00, 0x01, 0x3b};

static long long announce_field(const char *bdf, const char *field)
{
    json_t *vf = test_rpc_vf_stats(rpc, bdf);
    json_t *v = json_object_get(json_object_get(vf, "announce"), field);
    long long r = json_is_integer(v) ? json_integer_value(v) : json_is_boolean(v) ? json_is_true(v) : -1;
    json_decref(vf);
    return r;
}

/* The counters follow the device's answer to the announce command, which the
 * daemon reads after the device put the RARP on the wire: wait for them. */
static bool announce_becomes(const char *bdf, const char *field, long long want)
{
    for (long end = check_now_ms() + 3000; check_now_ms() < end; usleep(5000))
        if (announce_field(bdf, field) == want)
            return true;
    return announce_field(bdf, field) == want;
}

static bool wait_running(const char *bdf)
{
    for (long end = check_now_ms() + 8000; check_now_ms() < end; usleep(5000)) {
        json_t *vf = test_rpc_vf_stats(rpc, bdf);
        bool ok = vf && !strcmp(json_string_value(json_object_get(vf, "state")) ?: "", "running") &&
                  json_integer_value(json_object_get(vf, "rings_running")) == 2;
        json_decref(vf);
        if (ok)
            return true;
    }
    return false;
}

static int udp_bound(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A RARP (ethertype 0x8035) from the uplink within tmo ms: its length into
 * buf, or -1.  Other frames are skipped. */
static int uplink_rarp(uint8_t *buf, size_t cap, int tmo)
{
    for (long end = check_now_ms() + tmo; check_now_ms() < end;) {
        struct pollfd p = {.fd = up_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - check_now_ms())) <= 0)
            continue;
        ssize_t n = recv(up_fd, buf, cap, 0);
        if (n >= 14 && buf[12] == 0x80 && buf[13] == 0x35)
            return (int)n;
    }
    return -1;
}

/* What RFC 903 says a RARP request for mac looks like, padded to the
 * Ethernet minimum (written here, not taken from the sim). */
static void expected_rarp(uint8_t f[60], const uint8_t mac[6])
{
    static const uint8_t head[] = {0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x03};
    memset(f, 0, 60);
    memset(f, 0xff, 6);
    memcpy(f + 6, mac, 6);
    memcpy(f + 12, head, sizeof(head));
    memcpy(f + 22, mac, 6);      /* sender hardware address, then sender IP 0 */
    memcpy(f + 32, mac, 6);      /* target hardware address, then target IP 0 */
}

static void switch_port(const uint8_t mac[6], char *port, size_t len)
{
    char req[128], reply[1024];
    snprintf(req, sizeof(req), "{\"cmd\":\"switch\",\"mac\":\"%02x:%02x:%02x:%02x:%02x:%02x\"}", mac[0], mac[1],
             mac[2], mac[3], mac[4], mac[5]);
    snprintf(port, len, "?");
    const char *p = sim_proc_ctl(&sp, req, reply, sizeof(reply)) == 0 ? strstr(reply, "\"port\":") : NULL;
    if (p) {
        p += 7 + (p[7] == '"');
        snprintf(port, len, "%.*s", (int)strcspn(p, "\",}"), p);
    }
}

static void test_features(struct vfe_fe *a)
{
    const uint64_t ga = 1ull << VIRTIO_NET_F_GUEST_ANNOUNCE;
    CHECK(vfe_fe_offered_features(a) & ga, "GUEST_ANNOUNCE not offered: %#llx",
          (unsigned long long)vfe_fe_offered_features(a));
    CHECK(vfe_fe_features(a) & ga, "GUEST_ANNOUNCE not negotiated");
    char req[128], reply[4096];
    snprintf(req, sizeof(req), "{\"cmd\":\"counters\",\"bdf\":\"%s\"}", VF_A);
    const char *p = sim_proc_ctl(&sp, req, reply, sizeof(reply)) == 0 ? strstr(reply, "\"driver_features\":") : NULL;
    unsigned long long df = p ? strtoull(p + 18, NULL, 10) : 0;
    CHECK(df & (1ull << VIRTIO_F_VERSION_1), "the device's driver features %#llx (%s)", df, p ? "" : reply);
    CHECK(!(df & ga), "GUEST_ANNOUNCE reached the device's driver features %#llx", df);
}

static void test_nvidia(struct vfe_fe *a, const char *sb)
{
    uint8_t f[2048], want[60];
    struct vfe_fe *b = NULL;
    long long sent0 = announce_field(VF_A, "sent");
    REQUIRE(vfe_fe_send_rarp(a, GUEST_A) == 0, out, "SEND_RARP");
    int n = uplink_rarp(f, sizeof(f), 3000);
    expected_rarp(want, GUEST_A);
    CHECK(n == 60, "the RARP on the uplink has %d bytes, want 60", n);
    if (n == 60)
        CHECK(!memcmp(f, want, 60), "the RARP differs from RFC 903's layout");
    CHECK(announce_becomes(VF_A, "sent", sent0 + 1), "stats announce.sent %lld", announce_field(VF_A, "sent"));

    /* bad MACs: refused by the daemon, no frame */
    static const uint8_t bad[3][6] = {{0x01, 0x00, 0x5e, 0, 0, 1}, {0}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    long long failed0 = announce_field(VF_A, "failed");
    for (unsigned i = 0; i < 3; i++)
        CHECK(vfe_fe_send_rarp(a, bad[i]) == 0, "SEND_RARP %u", i);
    CHECK(uplink_rarp(f, sizeof(f), 300) < 0, "a RARP went out for a bad MAC");
    CHECK(announce_field(VF_A, "failed") == failed0 + 3, "stats announce.failed %lld, want %lld",
          announce_field(VF_A, "failed"), failed0 + 3);
    CHECK(announce_field(VF_A, "sent") == sent0 + 1, "a bad MAC was counted as sent");

    /* a migration destination: SEND_RARP comes before the rings start */
    struct vfe_fe_opts ob = {.path = sb};
    b = vfe_fe_open(&ob);
    REQUIRE(b, out, "front-end on " VF_B);
    REQUIRE(vfe_fe_send_rarp(b, GUEST_B) == 0, out, "SEND_RARP before the start");
    CHECK(uplink_rarp(f, sizeof(f), 300) < 0, "a RARP went out before the VF runs");
    CHECK(announce_field(VF_B, "pending") == 1, "stats announce.pending %lld", announce_field(VF_B, "pending"));
    long t0 = check_now_ms();
    REQUIRE(vfe_fe_start(b, NULL) == 0, out, "start " VF_B);
    n = uplink_rarp(f, sizeof(f), 3000);
    long dt = check_now_ms() - t0;
    expected_rarp(want, GUEST_B);
    CHECK(n == 60 && !memcmp(f, want, 60), "no RARP for the pending SEND_RARP once the rings run (%d)", n);
    fprintf(stderr, "announce: RARP on the uplink %ld ms after the destination's rings were started\n", dt);
    CHECK(announce_becomes(VF_B, "sent", 1) && announce_field(VF_B, "pending") == 0, "stats of " VF_B ": sent %lld, "
          "pending %lld", announce_field(VF_B, "sent"), announce_field(VF_B, "pending"));
    char port[32];
    switch_port(GUEST_B, port, sizeof(port));
    CHECK(!strcmp(port, VF_B), "the switch sends the announced MAC to '%s', want " VF_B, port);
out:
    vfe_fe_close(b);
}

static void test_virtio(struct vfe_fe *a)
{
    uint8_t f[2048];
    CHECK(vfe_fe_send_rarp(a, GUEST_A) == 0 && vfe_fe_send_rarp(a, GUEST_A) == 0, "SEND_RARP");
    CHECK(uplink_rarp(f, sizeof(f), 500) < 0, "a RARP went out though the device cannot announce");
    CHECK(announce_field(VF_A, "unsupported") == 1, "stats announce.unsupported %lld",
          announce_field(VF_A, "unsupported"));
    CHECK(announce_field(VF_A, "sent") == 0 && announce_field(VF_A, "requests") == 2, "stats announce sent %lld "
          "requests %lld", announce_field(VF_A, "sent"), announce_field(VF_A, "requests"));
    const char *needle[] = {"cannot announce", NULL};
    CHECK(file_count(log_path, needle) == 1, "the daemon said %d times that the device cannot announce, want once",
          file_count(log_path, needle));
    CHECK(wait_running(VF_A), "the VF stopped running");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *dialect = argc > 1 ? argv[1] : "nvidia";
    uint16_t peer_port, sim_port;
    up_fd = udp_bound(&peer_port);
    int spare = udp_bound(&sim_port);   /* a free port for the sim's end */
    if (up_fd < 0 || spare < 0)
        return 1;
    close(spare);
    char uplink[64];
    snprintf(uplink, sizeof(uplink), "udp:%u,127.0.0.1:%u", sim_port, peer_port);
    const char *args[] = {"--pf", PF, "--vfs", "2", "--uplink", uplink, "--admin-dialect", dialect, NULL};
    struct vfe_fe *a = NULL;
    REQUIRE(sim_proc_start(&sp, args) == 0, done, "sim did not start");
    snprintf(rpc, sizeof(rpc), "%.200s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%.200s/vf-", sp.dir);
    snprintf(log_path, sizeof(log_path), "%.200s/vhostd.log", sp.dir);
    const char *argv_d[] = {getenv("VFE_VHOSTD") ?: "vfe-vhostd", "--no-state", "--pci-root", sp.root, "--rpc", rpc,
                            "--iface", iface, "--log-level", "info", NULL};
    vhostd = proc_spawn(argv_d, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    REQUIRE(vhostd > 0 && file_wait(log_path, ready, 1, 5000), done, "vfe-vhostd did not start");
    REQUIRE(test_rpc_call(rpc, "mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", PF), NULL) == 0 &&
                test_rpc_call(rpc, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_A), NULL) == 0 &&
                test_rpc_call(rpc, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_B), NULL) == 0, done, "provisioning");
    char sa[320], sb[320];
    snprintf(sa, sizeof(sa), "%s%s", iface, VF_A);
    snprintf(sb, sizeof(sb), "%s%s", iface, VF_B);
    struct vfe_fe_opts oa = {.path = sa, .features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF |
                                                     1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_GUEST_ANNOUNCE};
    a = vfe_fe_open(&oa);
    REQUIRE(a && vfe_fe_start(a, NULL) == 0, done, "front-end on " VF_A);
    REQUIRE(wait_running(VF_A), done, VF_A " does not run");
    test_features(a);
    if (!strcmp(dialect, "virtio"))
        test_virtio(a);
    else
        test_nvidia(a, sb);
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
done:
    vfe_fe_close(a);
    if (vhostd > 0)
        CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    if (sp.pid > 0)
        CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    close(up_fd);
    char name[64];
    snprintf(name, sizeof(name), "announce (%s dialect)", dialect);
    return check_result(name);
}
