/*
 * vfe-vf-traffic: drive two VFs of a running vfe-dpu-sim through vfe's own
 * drivers and send frames between them, checking each byte; or print a
 * function's device counters.  Used by scripts/demo, handy for probing a sim.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/test_vf.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: vfe-vf-traffic --root DIR --vf1 BDF --vf2 BDF [--frames N] [--size BYTES] [--pairs N]\n"
"       vfe-vf-traffic --root DIR --counters BDF [--counters BDF]...\n"
"\n"
"  --root DIR      the sim's tree (vfe-dpu-sim --root)\n"
"  --vf1, --vf2    the two VFs: frames go VF1 -> VF2, then VF2 -> VF1\n"
"  --frames N      frames each way (default 1000)\n"
"  --size BYTES    frame size, 60..9014 (default: cycle 64, 512, 1514, 9014)\n"
"  --pairs N       queue pairs to spread frames over (default 1)\n"
"  --counters BDF  print the sim's counters of BDF\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void mac_str(const uint8_t m[6], char *out)
{
    sprintf(out, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Frames a -> b; returns how many arrived intact. */
static unsigned one_way(struct test_vf *a, struct test_vf *b, unsigned frames, unsigned fixed, unsigned pairs)
{
    static const unsigned cycle[] = {64, 512, 1514, 9014};
    uint8_t *out = malloc(GUEST_NET_MAX_FRAME), *in = malloc(GUEST_NET_MAX_FRAME);
    unsigned ok = 0, step = frames >= 10 ? frames / 10 : 1;
    unsigned long long bytes = 0;
    double t0 = now_s();
    for (unsigned i = 0; i < frames; i++) {
        unsigned len = fixed ? fixed : cycle[i % 4];
        unsigned pair = i % pairs;
        vfe_fe_frame(out, len, b->mac, a->mac, i);
        int rc = guest_net_send(a->g, pair, out, len);
        int got = rc == 0 ? guest_net_recv(b->g, pair, in, GUEST_NET_MAX_FRAME, 2000) : rc;
        guest_net_reclaim_tx(a->g, pair);
        if (got == (int)len && memcmp(in, out, len) == 0) {
            ok++;
            bytes += len;
        } else {
            fprintf(stderr, "  frame %u (%u bytes) on pair %u: %s\n", i, len, pair,
                    got < 0 ? strerror(-got) : "content differs");
        }
        if ((i + 1) % step == 0 && isatty(STDOUT_FILENO))
            printf("\r  %s -> %s: %u/%u frames byte-exact", a->bdf, b->bdf, ok, frames), fflush(stdout);
    }
    double dt = now_s() - t0;
    if (isatty(STDOUT_FILENO))
        printf("\n");
    printf("  %s -> %s: %u frames, %llu bytes in %.3f s (%.0f frames/s, each checked byte for byte)\n", a->bdf, b->bdf, ok, bytes, dt,
           dt > 0 ? ok / dt : 0.0);
    free(out);
    free(in);
    return ok;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'}, {"vf1", required_argument, NULL, '1'},
        {"vf2", required_argument, NULL, '2'},  {"frames", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'}, {"pairs", required_argument, NULL, 'p'},
        {"counters", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *root = NULL, *vf1 = NULL, *vf2 = NULL, *counters[16];
    unsigned frames = 1000, size = 0, pairs = 1, ncounters = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': root = optarg; break;
        case '1': vf1 = optarg; break;
        case '2': vf2 = optarg; break;
        case 'n': frames = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': size = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p': pairs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': if (ncounters < 16) counters[ncounters++] = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!root || (!ncounters && (!vf1 || !vf2)) || (size && (size < 60 || size > 9014)) || pairs < 1 ||
        pairs > GUEST_NET_MAX_PAIRS || frames == 0) {
        usage(stderr);
        return 2;
    }
    struct sim_proc sp = {0};
    snprintf(sp.root, sizeof(sp.root), "%s", root);
    snprintf(sp.ctl, sizeof(sp.ctl), "%s/sim-ctl.sock", root);
    for (unsigned i = 0; i < ncounters; i++) {
        char req[128], reply[4096];
        snprintf(req, sizeof(req), "{\"cmd\":\"counters\",\"bdf\":\"%s\"}", counters[i]);
        if (sim_proc_ctl(&sp, req, reply, sizeof(reply)) < 0) {
            fprintf(stderr, "vfe-vf-traffic: no answer from %s\n", sp.ctl);
            return 1;
        }
        printf("  %s rx %lld pkts %lld bytes %lld drops | tx %lld pkts %lld bytes %lld drops\n", counters[i],
               test_sim_counter(&sp, counters[i], "rx_packets"), test_sim_counter(&sp, counters[i], "rx_bytes"),
               test_sim_counter(&sp, counters[i], "rx_drops"), test_sim_counter(&sp, counters[i], "tx_packets"),
               test_sim_counter(&sp, counters[i], "tx_bytes"), test_sim_counter(&sp, counters[i], "tx_drops"));
    }
    if (ncounters)
        return 0;

    struct guest_net_opts o = {.pairs = pairs, .mrg_rxbuf = true, .event_idx = true, .use_irq = true,
                               .use_ioeventfd = true};
    struct test_vf a = {0}, b = {0};
    int rc = 1;
    if (test_vf_open(&a, &sp, vf1, &o) < 0 || test_vf_open(&b, &sp, vf2, &o) < 0)
        goto out;
    char m1[20], m2[20];
    mac_str(a.mac, m1);
    mac_str(b.mac, m2);
    printf("  %s up: mac %s, features %#llx, %u queue pair(s)\n", vf1, m1,
           (unsigned long long)guest_net_features(a.g), pairs);
    printf("  %s up: mac %s, features %#llx, %u queue pair(s)\n", vf2, m2,
           (unsigned long long)guest_net_features(b.g), pairs);
    unsigned ok = one_way(&a, &b, frames, size, pairs) + one_way(&b, &a, frames, size, pairs);
    printf("  %s: %u of %u frames delivered intact\n", ok == 2 * frames ? "PASS" : "FAIL", ok, 2 * frames);
    rc = ok == 2 * frames ? 0 : 1;
out:
    test_vf_close(&a);
    test_vf_close(&b);
    return rc;
}
