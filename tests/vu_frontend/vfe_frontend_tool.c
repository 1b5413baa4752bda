/*
 * vfe-frontend: probe a vhost-user back-end the way QEMU would, without a VM.
 *
 *   vfe-frontend --socket PATH [--server] [--pairs N] probe
 *   vfe-frontend --socket A --peer-socket B [--count N] [--size S] ping-pong
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_net.h>

#include "tests/vu_frontend/vfe_frontend.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: vfe-frontend --socket PATH [options] COMMAND\n"
"\n"
"A vhost-user front-end that negotiates, maps guest memory (memfd regions) and\n"
"drives virtio-net rings as QEMU 7.2 does, to probe a back-end without a VM.\n"
"\n"
"Commands:\n"
"  probe        negotiate, start and stop the rings; print what was agreed as JSON\n"
"  ping-pong    frames from --socket to --peer-socket and back, each checked byte for\n"
"               byte (both back-ends must switch frames between them, e.g. two VFs)\n"
"\n"
"Options:\n"
"  --socket PATH       the back-end's vhost-user socket\n"
"  --peer-socket PATH  second socket (ping-pong)\n"
"  --server            listen on PATH and wait for the back-end (QEMU server=on)\n"
"  --pairs N           queue pairs (default 1)\n"
"  --count N           frames each way (default 100)\n"
"  --size BYTES        frame size 60..9000 (default 1000)\n"
"  --timeout MS        per wait (default 3000)\n");
}

static int probe(const struct vfe_fe_opts *o)
{
    struct vfe_fe *fe = vfe_fe_open(o);
    if (!fe) {
        fprintf(stderr, "vfe-frontend: %s: %s\n", o->path, strerror(errno));
        return 1;
    }
    uint16_t bases[2 * VFE_FE_MAX_PAIRS] = {0};
    int rc = vfe_fe_start(fe, NULL);
    if (rc == 0)
        rc = vfe_fe_stop(fe, bases);
    printf("{\"socket\":\"%s\",\"features\":\"%#llx\",\"protocol_features\":\"%#llx\",\"queue_num\":%u,"
           "\"rings_started\":%s}\n", o->path, (unsigned long long)vfe_fe_features(fe),
           (unsigned long long)vfe_fe_protocol_features(fe), vfe_fe_queue_num(fe), rc == 0 ? "true" : "false");
    if (rc < 0)
        fprintf(stderr, "vfe-frontend: rings: %s\n", strerror(-rc));
    vfe_fe_close(fe);
    return rc < 0;
}

static unsigned one_way(struct vfe_fe *a, struct vfe_fe *b, const uint8_t am[6], const uint8_t bm[6],
                        unsigned count, size_t size, unsigned pairs, int tmo)
{
    uint8_t *out = malloc(size), *in = malloc(size + 64);
    unsigned ok = 0;
    for (unsigned i = 0; i < count; i++) {
        vfe_fe_frame(out, size, bm, am, i);
        int got = vfe_fe_send(a, i % pairs, out, size);
        if (got == 0)
            got = vfe_fe_recv(b, i % pairs, in, size + 64, tmo);
        ok += got == (int)size && !memcmp(in, out, size);
    }
    free(out);
    free(in);
    return ok;
}

static int ping_pong(const struct vfe_fe_opts *o, const char *peer, unsigned count, size_t size)
{
    struct vfe_fe_opts po = *o;
    po.path = peer;
    struct vfe_fe *a = vfe_fe_open(o), *b = a ? vfe_fe_open(&po) : NULL;
    if (!a || !b) {
        fprintf(stderr, "vfe-frontend: open: %s\n", strerror(errno));
        vfe_fe_close(a);
        return 1;
    }
    int rc = vfe_fe_start(a, NULL);
    rc = rc ?: vfe_fe_start(b, NULL);
    /* MACs: locally administered, the switch learns them from the first frames */
    const uint8_t am[6] = {0x02, 0xfa, 0, 0, 0, 1}, bm[6] = {0x02, 0xfa, 0, 0, 0, 2};
    unsigned pairs = o->pairs ? o->pairs : 1, ok = 0;
    if (rc == 0) {
        uint8_t hello[60];
        vfe_fe_frame(hello, sizeof(hello), (const uint8_t[6]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, bm, 0);
        vfe_fe_send(b, 0, hello, sizeof(hello));   /* teach the switch b's address */
        uint8_t sink[128];
        vfe_fe_recv(a, 0, sink, sizeof(sink), o->timeout_ms);
        ok = one_way(a, b, am, bm, count, size, pairs, o->timeout_ms) +
             one_way(b, a, bm, am, count, size, pairs, o->timeout_ms);
    }
    printf("{\"frames\":%u,\"intact\":%u,\"size\":%zu}\n", 2 * count, ok, size);
    vfe_fe_close(a);
    vfe_fe_close(b);
    return rc < 0 || ok != 2 * count;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"peer-socket", required_argument, NULL, 'P'},
        {"server", no_argument, NULL, 'S'},       {"pairs", required_argument, NULL, 'p'},
        {"count", required_argument, NULL, 'n'},  {"size", required_argument, NULL, 'z'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    struct vfe_fe_opts o = {0};
    const char *peer = NULL;
    unsigned count = 100;
    size_t size = 1000;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': o.path = optarg; break;
        case 'P': peer = optarg; break;
        case 'S': o.server = true; break;
        case 'p': o.pairs = (unsigned)atoi(optarg); break;
        case 'n': count = (unsigned)atoi(optarg); break;
        case 'z': size = (size_t)atoi(optarg); break;
        case 't': o.timeout_ms = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    const char *cmd = optind < argc ? argv[optind] : NULL;
    if (!o.path || !cmd || o.pairs > VFE_FE_MAX_PAIRS || size < 60 || size > 9000) {
        usage(stderr);
        return 2;
    }
    if (!o.timeout_ms)
        o.timeout_ms = 3000;
    if (!strcmp(cmd, "probe"))
        return probe(&o);
    if (!strcmp(cmd, "ping-pong") && peer)
        return ping_pong(&o, peer, count, size);
    usage(stderr);
    return 2;
}
