/*
 * vfe-frontend: probe a vhost-user back-end the way QEMU 7.2 would, without a VM.
 * Every command prints one JSON object on stdout; exit 0 when it went as asked.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/frontend/vfe_frontend.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: vfe-frontend --socket PATH [options] COMMAND\n"
"\n"
"A vhost-user front-end that negotiates, maps guest memory (memfd regions) and\n"
"drives virtio-net split rings as QEMU 7.2 does, to probe a back-end without a VM.\n"
"\n"
"Commands:\n"
"  probe       negotiate, start the rings and stop them again; print the features,\n"
"              protocol features, queue number and ring indices as JSON\n"
"  send        start, send --count frames of --size bytes to --dst-mac (spread over\n"
"              the pairs), wait until the back-end consumed them, stop\n"
"  recv        start, receive up to --count frames or until --timeout ms pass with\n"
"              nothing new; frames built by this tool are checked byte for byte\n"
"  loopback    send frames and expect each back on the same pair, byte for byte\n"
"              (a back-end that forwards a port to itself, e.g. testpmd io mode)\n"
"  ping-pong   frames from --socket to --peer-socket and back, each checked byte\n"
"              for byte (the back-ends must switch between them, e.g. two VFs)\n"
"\n"
"Options:\n"
"  --socket PATH       the back-end's vhost-user socket\n"
"  --peer-socket PATH  second socket (ping-pong)\n"
"  --server            listen on PATH and wait for the back-end (QEMU server=on)\n"
"  --pairs N           queue pairs, 1..16 (default 1)\n"
"  --count N           frames (default 100; each way for ping-pong)\n"
"  --size BYTES        frame size 60..9216 (default 1000)\n"
"  --dst-mac MAC       destination of sent frames (default ff:ff:ff:ff:ff:ff)\n"
"  --src-mac MAC       source of sent frames (default 02:fa:00:00:00:01)\n"
"  --ring-size N       descriptors per ring, power of two up to 1024 (default 256)\n"
"  --rx-buf BYTES      size of each rx buffer (default 2048; smaller ones make the\n"
"                      back-end merge buffers)\n"
"  --timeout MS        per wait (default 3000)\n"
"  --help              this text\n");
}

struct tool {
    struct vfe_fe_opts o;
    const char *peer;
    unsigned count;
    size_t size;
    uint8_t dst[6], src[6];
};

static struct vfe_fe *open_started(const struct vfe_fe_opts *o)
{
    struct vfe_fe *fe = vfe_fe_open(o);
    if (!fe) {
        fprintf(stderr, "vfe-frontend: %s: %s\n", o->path, strerror(errno));
        return NULL;
    }
    int rc = vfe_fe_start(fe, NULL);
    if (rc < 0) {
        fprintf(stderr, "vfe-frontend: %s: start: %s\n", o->path, strerror(-rc));
        vfe_fe_close(fe);
        return NULL;
    }
    return fe;
}

static void print_bases(const uint16_t *b, unsigned n)
{
    printf("[");
    for (unsigned i = 0; i < n; i++)
        printf("%s%u", i ? "," : "", b[i]);
    printf("]");
}

static int probe(const struct tool *t)
{
    struct vfe_fe *fe = vfe_fe_open(&t->o);
    if (!fe) {
        fprintf(stderr, "vfe-frontend: %s: %s\n", t->o.path, strerror(errno));
        return 1;
    }
    uint16_t bases[2 * VFE_FE_MAX_PAIRS] = {0};
    int rc = vfe_fe_start(fe, NULL);
    if (rc == 0)
        rc = vfe_fe_stop(fe, bases);
    printf("{\"socket\":\"%s\",\"features\":\"%#llx\",\"offered_features\":\"%#llx\","
           "\"protocol_features\":\"%#llx\",\"offered_protocol_features\":\"%#llx\",\"queue_num\":%u,"
           "\"max_mem_slots\":%u,\"rings_started\":%s,\"bases\":",
           t->o.path, (unsigned long long)vfe_fe_features(fe), (unsigned long long)vfe_fe_offered_features(fe),
           (unsigned long long)vfe_fe_protocol_features(fe),
           (unsigned long long)vfe_fe_offered_protocol_features(fe), vfe_fe_queue_num(fe),
           vfe_fe_max_mem_slots(fe), rc == 0 ? "true" : "false");
    print_bases(bases, 2 * vfe_fe_pairs(fe));
    printf("}\n");
    if (rc < 0)
        fprintf(stderr, "vfe-frontend: rings: %s\n", strerror(-rc));
    vfe_fe_close(fe);
    return rc < 0;
}

static void print_totals(struct vfe_fe *fe, const char *what, unsigned extra, const char *extra_name)
{
    struct vfe_fe_stats sum = {0};
    for (unsigned p = 0; p < vfe_fe_pairs(fe); p++) {
        struct vfe_fe_stats s;
        vfe_fe_stats(fe, p, &s);
        sum.tx_frames += s.tx_frames;
        sum.tx_bytes += s.tx_bytes;
        sum.tx_done += s.tx_done;
        sum.rx_frames += s.rx_frames;
        sum.rx_bytes += s.rx_bytes;
        sum.rx_buffers += s.rx_buffers;
        sum.rx_errors += s.rx_errors;
        sum.kicks += s.kicks;
        sum.rx_calls += s.rx_calls;
    }
    printf("{\"command\":\"%s\",\"tx_frames\":%llu,\"tx_bytes\":%llu,\"tx_done\":%llu,\"rx_frames\":%llu,"
           "\"rx_bytes\":%llu,\"rx_buffers\":%llu,\"rx_errors\":%llu,\"kicks\":%llu,\"rx_calls\":%llu,\"%s\":%u}\n",
           what, (unsigned long long)sum.tx_frames, (unsigned long long)sum.tx_bytes,
           (unsigned long long)sum.tx_done, (unsigned long long)sum.rx_frames, (unsigned long long)sum.rx_bytes,
           (unsigned long long)sum.rx_buffers, (unsigned long long)sum.rx_errors, (unsigned long long)sum.kicks,
           (unsigned long long)sum.rx_calls, extra_name, extra);
}

static int send_cmd(const struct tool *t)
{
    struct vfe_fe *fe = open_started(&t->o);
    if (!fe)
        return 1;
    uint8_t *f = malloc(t->size);
    unsigned pairs = vfe_fe_pairs(fe), sent = 0;
    int rc = 0;
    for (unsigned i = 0; f && i < t->count && rc == 0; i++) {
        vfe_fe_frame(f, t->size, t->dst, t->src, i);
        rc = vfe_fe_send(fe, i % pairs, f, t->size);
        sent += rc == 0;
    }
    for (unsigned p = 0; p < pairs && rc == 0; p++)
        rc = vfe_fe_tx_drain(fe, p, t->o.timeout_ms);
    if (rc == 0)
        rc = vfe_fe_stop(fe, NULL);
    if (rc < 0)
        fprintf(stderr, "vfe-frontend: send: %s\n", strerror(-rc));
    print_totals(fe, "send", sent, "sent");
    free(f);
    vfe_fe_close(fe);
    return rc < 0 || sent != t->count;
}

static int recv_cmd(const struct tool *t)
{
    struct vfe_fe *fe = open_started(&t->o);
    if (!fe)
        return 1;
    size_t cap = VFE_FE_MAX_FRAME + 64;
    uint8_t *buf = malloc(cap);
    unsigned pairs = vfe_fe_pairs(fe), got = 0, intact = 0;
    long idle = 0;
    /* poll the pairs in turn; give up after --timeout without a frame */
    while (buf && got < t->count && idle < t->o.timeout_ms) {
        bool any = false;
        for (unsigned p = 0; p < pairs && got < t->count; p++) {
            int n = vfe_fe_recv(fe, p, buf, cap, 10);
            if (n < 0)
                continue;
            any = true;
            got++;
            intact += vfe_fe_frame_seed(buf, (size_t)n) >= 0;
        }
        idle = any ? 0 : idle + 10 * (long)pairs;
    }
    vfe_fe_stop(fe, NULL);
    print_totals(fe, "recv", intact, "intact");
    free(buf);
    vfe_fe_close(fe);
    return got != t->count;
}

static int loopback(const struct tool *t)
{
    struct vfe_fe *fe = open_started(&t->o);
    if (!fe)
        return 1;
    uint8_t *out = malloc(t->size), *in = malloc(t->size + 64);
    unsigned pairs = vfe_fe_pairs(fe), ok = 0;
    for (unsigned i = 0; out && in && i < t->count; i++) {
        vfe_fe_frame(out, t->size, t->dst, t->src, i);
        int n = vfe_fe_send(fe, i % pairs, out, t->size);
        if (n == 0)
            n = vfe_fe_recv(fe, i % pairs, in, t->size + 64, t->o.timeout_ms);
        ok += n >= 0 && vfe_fe_frame_diff(in, (size_t)n, out, t->size) < 0;
    }
    vfe_fe_stop(fe, NULL);
    print_totals(fe, "loopback", ok, "intact");
    free(out);
    free(in);
    vfe_fe_close(fe);
    return ok != t->count;
}

static unsigned one_way(struct vfe_fe *a, struct vfe_fe *b, const uint8_t am[6], const uint8_t bm[6],
                        const struct tool *t, uint32_t seed0)
{
    uint8_t *out = malloc(t->size), *in = malloc(t->size + 64);
    unsigned ok = 0, pairs = vfe_fe_pairs(a);
    for (unsigned i = 0; out && in && i < t->count; i++) {
        vfe_fe_frame(out, t->size, bm, am, seed0 + i);
        int n = vfe_fe_send(a, i % pairs, out, t->size);
        if (n == 0)
            n = vfe_fe_recv(b, i % pairs, in, t->size + 64, t->o.timeout_ms);
        ok += n >= 0 && vfe_fe_frame_diff(in, (size_t)n, out, t->size) < 0;
    }
    free(out);
    free(in);
    return ok;
}

static int ping_pong(const struct tool *t)
{
    struct vfe_fe_opts po = t->o;
    po.path = t->peer;
    struct vfe_fe *a = open_started(&t->o), *b = a ? open_started(&po) : NULL;
    if (!a || !b) {
        vfe_fe_close(a);
        return 1;
    }
    /* locally administered MACs; a learning switch learns them from the hellos */
    const uint8_t am[6] = {0x02, 0xfa, 0, 0, 0, 1}, bm[6] = {0x02, 0xfa, 0, 0, 0, 2};
    const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t hello[60], sink[128];
    vfe_fe_frame(hello, sizeof(hello), bcast, bm, 0xffffffffu);
    vfe_fe_send(b, 0, hello, sizeof(hello));
    vfe_fe_recv(a, 0, sink, sizeof(sink), t->o.timeout_ms);
    vfe_fe_frame(hello, sizeof(hello), bcast, am, 0xfffffffeu);
    vfe_fe_send(a, 0, hello, sizeof(hello));
    vfe_fe_recv(b, 0, sink, sizeof(sink), t->o.timeout_ms);
    unsigned ok = one_way(a, b, am, bm, t, 0) + one_way(b, a, bm, am, t, 1u << 20);
    printf("{\"command\":\"ping-pong\",\"frames\":%u,\"intact\":%u,\"size\":%zu}\n", 2 * t->count, ok, t->size);
    vfe_fe_close(a);
    vfe_fe_close(b);
    return ok != 2 * t->count;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *v)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(s, &end, 0);
    if (errno || end == s || *end || x > max)
        return false;
    *v = x;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"peer-socket", required_argument, NULL, 'P'},
        {"server", no_argument, NULL, 'S'},         {"pairs", required_argument, NULL, 'p'},
        {"count", required_argument, NULL, 'n'},    {"size", required_argument, NULL, 'z'},
        {"dst-mac", required_argument, NULL, 'd'},  {"src-mac", required_argument, NULL, 'm'},
        {"ring-size", required_argument, NULL, 'r'}, {"rx-buf", required_argument, NULL, 'b'},
        {"timeout", required_argument, NULL, 't'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct tool t = {.count = 100, .size = 1000, .dst = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
                     .src = {0x02, 0xfa, 0, 0, 0, 1}};
    int c;
    unsigned long v;
    bool bad = false;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': t.o.path = optarg; break;
        case 'P': t.peer = optarg; break;
        case 'S': t.o.server = true; break;
        case 'p': bad |= !parse_uint(optarg, VFE_FE_MAX_PAIRS, &v) || !v; t.o.pairs = (unsigned)v; break;
        case 'n': bad |= !parse_uint(optarg, 100000000, &v); t.count = (unsigned)v; break;
        case 'z': bad |= !parse_uint(optarg, VFE_FE_MAX_FRAME, &v) || v < 60; t.size = v; break;
        case 'd': bad |= vfe_fe_parse_mac(optarg, t.dst) < 0; break;
        case 'm': bad |= vfe_fe_parse_mac(optarg, t.src) < 0; break;
        case 'r': bad |= !parse_uint(optarg, 1024, &v); t.o.ring_size = (uint16_t)v; break;
        case 'b': bad |= !parse_uint(optarg, 65536, &v) || v < 64; t.o.rx_buf_size = (uint32_t)v; break;
        case 't': bad |= !parse_uint(optarg, 3600000, &v) || !v; t.o.timeout_ms = (int)v; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    const char *cmd = optind < argc ? argv[optind] : NULL;
    if (bad || !t.o.path || !cmd || optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    if (!t.o.timeout_ms)
        t.o.timeout_ms = 3000;
    if (!strcmp(cmd, "probe"))
        return probe(&t);
    if (!strcmp(cmd, "send"))
        return send_cmd(&t);
    if (!strcmp(cmd, "recv"))
        return recv_cmd(&t);
    if (!strcmp(cmd, "loopback"))
        return loopback(&t);
    if (!strcmp(cmd, "ping-pong") && t.peer)
        return ping_pong(&t);
    usage(stderr);
    return 2;
}
