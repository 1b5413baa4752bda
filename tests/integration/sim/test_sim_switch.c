/*
 * The sim's switch as a learning bridge (issue 10), seen from vfe's drivers
 * and from the uplink (this test is the far end of --uplink):
 *  - a MAC learned on VF1 stays on VF1 after VF1 stops (its driver goes
 *    away, the function is reset): frames from the uplink to it are VF1's
 *    (dropped there), never VF2's, although VF2's guest now uses the MAC;
 *  - the MAC moves to VF2 at its first frame from VF2, at once;
 *  - an entry not seen for --fdb-aging seconds is gone (ctl "switch" says
 *    so and counts it); bad --fdb-aging values exit 2; --help names it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/test_vf.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define TMO 3000

static const uint8_t GUEST[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x3a};   /* the migrating guest's MAC */
static const uint8_t PEER[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x99};    /* the host on the uplink */
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

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

/* The port the switch sends mac to now ("0000:..", "uplink", "null"), and its counters. */
static void fdb(const struct sim_proc *sp, const uint8_t mac[6], char *port, size_t len, long long *aged)
{
    char req[128], reply[1024];
    snprintf(req, sizeof(req), "{\"cmd\":\"switch\",\"mac\":\"%02x:%02x:%02x:%02x:%02x:%02x\"}", mac[0], mac[1],
             mac[2], mac[3], mac[4], mac[5]);
    snprintf(port, len, "?");
    if (sim_proc_ctl(sp, req, reply, sizeof(reply)) < 0)
        return;
    const char *p = strstr(reply, "\"port\":");
    if (p) {
        p += 7;
        size_t n = strcspn(p, ",}");
        snprintf(port, len, "%.*s", (int)n, p[0] == '"' ? p + 1 : p);
        if (p[0] == '"')
            port[strcspn(port, "\"")] = 0;
    }
    const char *a = strstr(reply, "\"aged\":");
    if (aged)
        *aged = a ? strtoll(a + 7, NULL, 10) : -1;
}

static void uplink_send(int fd, uint16_t sim_port, const uint8_t *f, size_t len)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(sim_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(sendto(fd, f, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len, "uplink send: %s",
          strerror(errno));
}

/* A frame from the uplink with source `src` within tmo ms: its length, or -1. */
static int uplink_recv_from(int fd, const uint8_t src[6], uint8_t *buf, size_t cap, int tmo)
{
    for (long end = check_now_ms() + tmo; check_now_ms() < end;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - check_now_ms())) <= 0)
            continue;
        ssize_t n = recv(fd, buf, cap, 0);
        if (n >= 14 && !memcmp(buf + 6, src, 6))
            return (int)n;
    }
    return -1;
}

static void test_bad_options(const char *dir)
{
    char out[400], root[400];
    snprintf(out, sizeof(out), "%s/badopt.log", dir);
    snprintf(root, sizeof(root), "%s/badroot", dir);
    const char *sim = getenv("VFE_SIM_BIN") ?: "vfe-dpu-sim";
    static const char *const bad[] = {"", "0", "-1", "abc", "1000001", "30s", "99999999999"};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *argv[] = {sim, "--root", root, "--pf", PF, "--fdb-aging", bad[i], NULL};
        pid_t pid = proc_spawn(argv, out);
        CHECK(proc_wait(pid, 5000) == 2, "vfe-dpu-sim --fdb-aging '%s' not refused", bad[i]);
    }
    const char *help[] = {sim, "--help", NULL};
    pid_t pid = proc_spawn(help, out);
    CHECK(proc_wait(pid, 5000) == 0, "--help exit status");
    const char *needle[] = {"--fdb-aging SECONDS", NULL};
    CHECK(file_count(out, needle) >= 1, "--help does not describe --fdb-aging");
}

int main(void)
{
    struct sim_proc sp = {.pid = -1};
    uint16_t peer_port, sim_port;
    int fd = udp_bound(&peer_port), spare = udp_bound(&sim_port);   /* a free port for the sim */
    if (fd < 0 || spare < 0)
        return 1;
    close(spare);
    char uplink[64];
    snprintf(uplink, sizeof(uplink), "udp:%u,127.0.0.1:%u", sim_port, peer_port);
    const char *args[] = {"--pf", PF, "--vfs", "2", "--uplink", uplink, "--fdb-aging", "2", NULL};
    REQUIRE(sim_proc_start(&sp, args) == 0, done, "sim did not start");
    struct guest_net_opts o = {.pairs = 1, .mrg_rxbuf = true};
    struct test_vf a = {0}, b = {0};
    uint8_t f[200], in[600];
    char port[32];
    long long aged0, aged;
    REQUIRE(test_vf_open(&a, &sp, VF1, &o) == 0 && test_vf_open(&b, &sp, VF2, &o) == 0, done, "open the VFs");

    /* the guest talks on VF1: learned there */
    vfe_fe_frame(f, 100, BCAST, GUEST, 1);
    CHECK(guest_net_send(a.g, 0, f, 100) == 0, "VF1 send");
    CHECK(uplink_recv_from(fd, GUEST, in, sizeof(in), TMO) == 100, "the guest's broadcast did not reach the uplink");
    CHECK(guest_net_recv(b.g, 0, in, sizeof(in), TMO) == 100, "the guest's broadcast did not reach VF2");
    fdb(&sp, GUEST, port, sizeof(port), &aged0);
    CHECK(!strcmp(port, VF1), "learned on '%s', want " VF1, port);

    /* VF1 stops: its driver goes, the function is reset (as on a migration source) */
    test_vf_close(&a);
    usleep(100 * 1000);
    fdb(&sp, GUEST, port, sizeof(port), NULL);
    CHECK(!strcmp(port, VF1), "after VF1 stopped the MAC is on '%s', want " VF1 " (a bridge keeps it)", port);
    long long drops1 = test_sim_counter(&sp, VF1, "rx_drops"), rx2 = test_sim_counter(&sp, VF2, "rx_packets");
    vfe_fe_frame(f, 120, GUEST, PEER, 2);
    uplink_send(fd, sim_port, f, 120);
    CHECK(guest_net_recv(b.g, 0, in, sizeof(in), 300) == -ETIMEDOUT, "VF2 got a frame for a MAC learned on VF1");
    CHECK(test_sim_counter(&sp, VF1, "rx_drops") == drops1 + 1, "the frame was not VF1's (dropped there)");
    CHECK(test_sim_counter(&sp, VF2, "rx_packets") == rx2, "VF2 counted a frame");

    /* the guest's first frame on VF2 moves the MAC at once */
    vfe_fe_frame(f, 90, PEER, GUEST, 3);
    CHECK(guest_net_send(b.g, 0, f, 90) == 0, "VF2 send");
    CHECK(uplink_recv_from(fd, GUEST, in, sizeof(in), TMO) == 90, "VF2's frame did not reach the uplink");
    fdb(&sp, GUEST, port, sizeof(port), NULL);
    CHECK(!strcmp(port, VF2), "after VF2's frame the MAC is on '%s', want " VF2, port);
    vfe_fe_frame(f, 130, GUEST, PEER, 4);
    uplink_send(fd, sim_port, f, 130);
    int got = guest_net_recv(b.g, 0, in, sizeof(in), TMO);
    CHECK(got == 130 && !memcmp(in, f, 130), "VF2 did not receive the frame for the moved MAC (%d)", got);

    /* not seen for the ageing time (2 s): gone */
    usleep(1000 * 1000);
    fdb(&sp, GUEST, port, sizeof(port), &aged);
    CHECK(!strcmp(port, VF2) && aged == aged0, "after 1 s of 2 the entry is '%s' (aged %lld)", port, aged);
    usleep(1300 * 1000);
    fdb(&sp, GUEST, port, sizeof(port), &aged);
    CHECK(!strcmp(port, "null"), "after the ageing time the entry is '%s', want none", port);
    CHECK(aged == aged0 + 1, "aged %lld, want %lld", aged, aged0 + 1);

    test_bad_options(sp.dir);
done:
    test_vf_close(&a);
    test_vf_close(&b);
    if (sp.pid > 0)
        CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    close(fd);
    return check_result("sim_switch");
}
