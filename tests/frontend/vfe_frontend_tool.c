/*
 * vfe-frontend: probe a vhost-user back-end the way QEMU 7.2 would, without a VM.
 * Every command prints one JSON object on stdout; exit 0 when it went as asked.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
"  exchange    start, then per round (--rounds): send that round's share of the\n"
"              frames in --frames, wait until the back-end consumed them, receive\n"
"              --count frames into --dump; with --remap the memory table changes\n"
"              before every round after the first (a region added, then removed)\n"
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
"  --frames FILE       exchange: frames to send, one per line in hex (60..9216 bytes)\n"
"  --dump FILE         exchange: received frames are appended there, one per line in hex\n"
"  --rounds N          exchange: rounds, 1..64 (default 1)\n"
"  --remap             exchange: change the memory table between rounds\n"
"  --mem-table         send the whole table (SET_MEM_TABLE) even when memory slots are\n"
"                      agreed\n"
"  --go PREFIX         exchange: before round r, wait until file PREFIX<r> exists, and\n"
"                      for PREFIX<rounds> before stopping\n"
"  --gpa-base ADDR     guest memory (every ring, buffer and region) starts at this\n"
"                      guest-physical address, a multiple of 1 GiB below 2^39 (default 0):\n"
"                      front-ends of one DMA domain (vhostmgmt -u) whose memory must not overlap\n"
"  --help              this text\n");
}

struct tool {
    struct vfe_fe_opts o;
    const char *peer;
    const char *frames_path, *dump_path, *go_prefix;
    unsigned rounds;
    bool remap;
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

/* Frames to send: one per line, in hex.  NULL (and a message) on bad input. */
struct frame_list {
    unsigned n;
    size_t *len;
    uint8_t **f;
};

static void frames_free(struct frame_list *l)
{
    for (unsigned i = 0; i < l->n; i++)
        free(l->f[i]);
    free(l->f);
    free(l->len);
    memset(l, 0, sizeof(*l));
}

static int hex_nibble(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int frames_read(const char *path, struct frame_list *l)
{
    FILE *in = fopen(path, "r");
    if (!in) {
        fprintf(stderr, "vfe-frontend: --frames %s: %s\n", path, strerror(errno));
        return -1;
    }
    memset(l, 0, sizeof(*l));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        size_t len = (size_t)n / 2;
        if (n % 2 || len < 60 || len > VFE_FE_MAX_FRAME) {
            fprintf(stderr, "vfe-frontend: %s:%u: a frame is 60..%d bytes in hex (%zd hex digits)\n", path, lineno,
                    VFE_FE_MAX_FRAME, n);
            rc = -1;
            break;
        }
        uint8_t *f = malloc(len);
        size_t *nl = realloc(l->len, (l->n + 1) * sizeof(*nl));
        if (nl)
            l->len = nl;
        uint8_t **nf = nl ? realloc(l->f, (l->n + 1) * sizeof(*nf)) : NULL;
        if (nf)
            l->f = nf;
        if (!f || !nl || !nf) {
            free(f);
            fprintf(stderr, "vfe-frontend: %s: out of memory\n", path);
            rc = -1;
            break;
        }
        for (size_t i = 0; i < len && rc == 0; i++) {
            int hi = hex_nibble(line[2 * i]), lo = hex_nibble(line[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "vfe-frontend: %s:%u: not hex at column %zu\n", path, lineno,
                        2 * i + (hi < 0 ? 1 : 2));
                rc = -1;
                break;
            }
            f[i] = (uint8_t)(hi << 4 | lo);
        }
        l->f[l->n] = f;
        l->len[l->n++] = len;
    }
    free(line);
    fclose(in);
    if (rc < 0)
        frames_free(l);
    return rc;
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* While it waits, the back-end's messages are served as QEMU's main loop does: a host
 * notifier offered meanwhile is mapped before the next kick. */
static int wait_go(struct vfe_fe *fe, const char *prefix, unsigned round, int timeout_ms)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s%u", prefix, round) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    long long end = now_us() + (long long)timeout_ms * 1000;
    while (access(path, F_OK) != 0) {
        long long left = end - now_us();
        if (left <= 0)
            return -ETIMEDOUT;
        vfe_fe_backend_poll(fe, 10);
        if (end - now_us() > left - 10000)   /* no back-end channel: poll returned at once */
            usleep(10000);
    }
    return 0;
}

/* The memory table before round r (r >= 1): a region at 2 GiB (above --gpa-base) added in odd
 * rounds, removed in even ones. */
static int remap(struct vfe_fe *fe, uint64_t gpa_base, int *slot)
{
    if (*slot < 0) {
        *slot = vfe_fe_mem_add(fe, gpa_base + 0x80000000ull, 2u << 20);
        return *slot < 0 ? *slot : 0;
    }
    int rc = vfe_fe_mem_remove(fe, *slot);
    *slot = -1;
    return rc;
}

static int exchange(const struct tool *t)
{
    struct frame_list l;
    if (frames_read(t->frames_path, &l) < 0)
        return 2;
    FILE *dump = t->dump_path ? fopen(t->dump_path, "a") : NULL;
    if (t->dump_path && !dump) {
        fprintf(stderr, "vfe-frontend: --dump %s: %s\n", t->dump_path, strerror(errno));
        frames_free(&l);
        return 2;
    }
    struct vfe_fe *fe = open_started(&t->o);
    if (!fe) {
        frames_free(&l);
        if (dump)
            fclose(dump);
        return 1;
    }
    size_t cap = VFE_FE_MAX_FRAME + 64;
    uint8_t *buf = malloc(cap);
    unsigned pairs = vfe_fe_pairs(fe), sent = 0, got = 0, remaps = 0;
    int rc = buf ? 0 : -ENOMEM, slot = -1;
    long long tx_us = 0;
    const char *step = "start";
    for (unsigned r = 0; r < t->rounds && rc == 0; r++) {
        if (t->remap && r > 0) {
            step = "memory table change";
            rc = remap(fe, t->o.gpa_base, &slot);
            remaps += rc == 0;
        }
        if (rc == 0 && t->go_prefix) {
            step = "waiting for the go file";
            fprintf(stderr, "vfe-frontend: round %u waits for %s%u\n", r, t->go_prefix, r);
            rc = wait_go(fe, t->go_prefix, r, t->o.timeout_ms);
        }
        unsigned first = (unsigned)((unsigned long long)l.n * r / t->rounds);
        unsigned end = (unsigned)((unsigned long long)l.n * (r + 1) / t->rounds);
        long long t0 = now_us();
        step = "send";
        for (unsigned i = first; i < end && rc == 0; i++) {
            rc = vfe_fe_send(fe, i % pairs, l.f[i], l.len[i]);
            sent += rc == 0;
        }
        for (unsigned p = 0; p < pairs && rc == 0; p++)
            rc = vfe_fe_tx_drain(fe, p, t->o.timeout_ms);
        tx_us += now_us() - t0;
        /* the round's frames in: poll the pairs until --count or --timeout without one */
        step = "receive";
        unsigned want = got + t->count;
        long idle = 0;
        while (rc == 0 && got < want && idle < t->o.timeout_ms) {
            bool any = false;
            for (unsigned p = 0; p < pairs && got < want; p++) {
                int n = vfe_fe_recv(fe, p, buf, cap, 10);
                if (n < 0)
                    continue;
                any = true;
                got++;
                for (int i = 0; dump && i < n; i++)
                    fprintf(dump, "%02x", buf[i]);
                if (dump) {
                    fputc('\n', dump);
                    fflush(dump);
                }
            }
            idle = any ? 0 : idle + 10 * (long)pairs;
        }
        if (rc == 0 && got < want)
            rc = -ETIMEDOUT;
        unsigned long long calls = 0;
        for (unsigned p = 0; p < pairs; p++)
            calls += vfe_fe_calls(fe, 2 * p);
        fprintf(stderr, "vfe-frontend: round %u: sent %u, received %u, rx interrupts %llu%s\n", r, sent, got, calls,
                rc ? " (failed)" : "");
    }
    if (rc == 0 && t->go_prefix) {
        step = "waiting for the go file";
        fprintf(stderr, "vfe-frontend: stop waits for %s%u\n", t->go_prefix, t->rounds);
        rc = wait_go(fe, t->go_prefix, t->rounds, t->o.timeout_ms);
    }
    if (rc < 0)
        fprintf(stderr, "vfe-frontend: exchange: %s: %s\n", step, strerror(-rc));
    if (vfe_fe_stop(fe, NULL) < 0 && rc == 0)
        rc = -EIO;
    struct vfe_fe_stats sum = {0};
    for (unsigned p = 0; p < pairs; p++) {
        struct vfe_fe_stats s;
        vfe_fe_stats(fe, p, &s);
        sum.kicks += s.kicks;
        sum.notifier_kicks += s.notifier_kicks;
        sum.rx_calls += s.rx_calls;
        sum.tx_calls += s.tx_calls;
        sum.rx_errors += s.rx_errors;
    }
    printf("{\"command\":\"exchange\",\"rounds\":%u,\"remaps\":%u,\"sent\":%u,\"received\":%u,\"tx_us\":%lld,"
           "\"kicks\":%llu,\"notifier_kicks\":%llu,\"notifier_msgs\":%u,\"rx_calls\":%llu,\"tx_calls\":%llu,"
           "\"rx_errors\":%llu}\n",
           t->rounds, remaps, sent, got, tx_us, (unsigned long long)sum.kicks,
           (unsigned long long)sum.notifier_kicks, vfe_fe_backend_msgs(fe, VFE_FE_B_HOST_NOTIFIER),
           (unsigned long long)sum.rx_calls,
           (unsigned long long)sum.tx_calls, (unsigned long long)sum.rx_errors);
    bool all_sent = sent == l.n;
    free(buf);
    frames_free(&l);
    if (dump)
        fclose(dump);
    vfe_fe_close(fe);
    return rc < 0 || !all_sent;
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
        {"frames", required_argument, NULL, 'F'},   {"dump", required_argument, NULL, 'D'},
        {"rounds", required_argument, NULL, 'R'},   {"remap", no_argument, NULL, 'M'},
        {"mem-table", no_argument, NULL, 'T'},      {"go", required_argument, NULL, 'G'},
        {"gpa-base", required_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    struct tool t = {.count = 100, .size = 1000, .dst = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
                     .src = {0x02, 0xfa, 0, 0, 0, 1}, .rounds = 1};
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
        case 'F': t.frames_path = optarg; break;
        case 'D': t.dump_path = optarg; break;
        case 'R': bad |= !parse_uint(optarg, 64, &v) || !v; t.rounds = (unsigned)v; break;
        case 'M': t.remap = true; break;
        case 'T': t.o.mem_table_only = true; break;
        case 'G': t.go_prefix = optarg; break;
        case 'B':
            bad |= !parse_uint(optarg, (1ull << 39) - 1, &v) || v % VFE_FE_GPA_HIGH;
            t.o.gpa_base = v;
            break;
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
    if (!strcmp(cmd, "exchange") && t.frames_path)
        return exchange(&t);
    if (!strcmp(cmd, "ping-pong") && t.peer)
        return ping_pong(&t);
    usage(stderr);
    return 2;
}
