/* vhostmgmt: operator CLI of vfe-vhostd (JSON-RPC over its unix socket). */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"

#define TIMEOUT_MS 30000

static const char *sock_path;
static bool as_json;

static void usage(FILE *f)
{
    fprintf(f,
"Usage: vhostmgmt [-s SOCKET] [--json] COMMAND [ARGS]\n"
"\n"
"Commands:\n"
"  mgmtpf -a BDF            add a PF (brings up its admin queue)\n"
"  mgmtpf -r BDF            remove a PF (refused while it has VFs)\n"
"  mgmtpf -l                list PFs\n"
"  vf -a BDF [-v SOCK] [-u UUID] [--direct]\n"
"                           add a VF: serve vhost-user on SOCK (default: the daemon's\n"
"                           --iface prefix + BDF); VFs with the same UUID belong to one VM\n"
"                           and share one DMA domain (its guest-memory maps); --direct:\n"
"                           drive it through its own common config, without its PF's\n"
"                           admin queue (automatic for a function that is not a VF)\n"
"  bind BDF [--force]       bind a function to vfio-pci (kernel VFIO); --force takes it\n"
"                           from the driver that has it (the host loses that device)\n"
"  vf -r BDF                remove a VF (its device is stopped first)\n"
"  vf -l PF                 list the VFs of a PF\n"
"  vf -i BDF                details of a VF\n"
"  stats [BDF]              per-VF state, features, rings, connection\n"
"  migration [BDF]          the last switchover per VF: when the source's device was\n"
"                           stopped and each ring's index handed over, when the\n"
"                           destination's memory was mapped and its rings started\n"
"  health                   daemon health (provisioning state, HA link, last resume)\n"
"  upgrade                  hand every device to vfe-vhostd-ha and restart the daemon\n"
"                           from the binary on disk (needs --ha; no frame is lost)\n"
"  version                  daemon version\n"
"\n"
"  -s, --socket PATH        the daemon's socket (default $VFE_RPC_SOCKET or\n"
"                           /run/vfe-vhostd/vhostd.sock)\n"
"  --json                   print the daemon's JSON result\n"
"  --keep-going             with commands on stdin: go on after an error\n"
"With no COMMAND and stdin not a terminal, commands are read from stdin, one per\n"
"line ('#' starts a comment).  The exit status is 0 only if every command succeeded.\n");
}

static bool bdf_ok(const char *s)
{
    unsigned d, b, dev, fn;
    char tail;
    if (!s || strlen(s) != 12 || sscanf(s, "%4x:%2x:%2x.%1x%c", &d, &b, &dev, &fn, &tail) != 4)
        return false;
    for (const char *p = s; *p; p++)
        if (isupper((unsigned char)*p))
            return false;
    return dev < 32 && fn < 8;
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vhostmgmt: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see vhostmgmt --help)\n");
    va_end(ap);
    return 2;
}

static void print_obj(json_t *o, const char *indent)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (json_is_array(v) || json_is_object(v)) {
            char *t = json_dumps(v, JSON_COMPACT);
            printf("%s%-20s %s\n", indent, k, t);
            free(t);
        } else if (json_is_string(v)) {
            printf("%s%-20s %s\n", indent, k, json_string_value(v));
        } else {
            char *t = json_dumps(v, JSON_ENCODE_ANY);
            printf("%s%-20s %s\n", indent, k, t);
            free(t);
        }
    }
}

static void print_result(json_t *r)
{
    if (as_json) {
        char *t = json_dumps(r, JSON_INDENT(2) | JSON_ENCODE_ANY);
        puts(t);
        free(t);
        return;
    }
    json_t *list = json_object_get(r, "devices");
    if (!list)
        list = json_object_get(r, "vfs");
    if (json_is_array(list)) {
        size_t i;
        json_t *e;
        if (json_array_size(list) == 0)
            puts("(none)");
        json_array_foreach(list, i, e) {
            print_obj(e, "");
            if (i + 1 < json_array_size(list))
                putchar('\n');
        }
        return;
    }
    print_obj(r, "");
}

static int call(const char *method, json_t *params)
{
    json_t *res = NULL;
    char msg[512];
    int rc = rpc_client_call(sock_path, method, params, TIMEOUT_MS, &res, msg, sizeof(msg));
    json_decref(params);
    if (rc) {
        fprintf(stderr, "vhostmgmt: %s: %s (code %d)\n", method, msg, rc);
        return 1;
    }
    print_result(res);
    json_decref(res);
    return 0;
}

struct tl_event {
    const char *what;
    double ms;
};

static int tl_cmp(const void *a, const void *b)
{
    double x = ((const struct tl_event *)a)->ms, y = ((const struct tl_event *)b)->ms;
    return x < y ? -1 : x > y;
}

/* One half of a switchover: its events in time order (the unset ones left out). */
static void print_half(const char *title, json_t *h, const char *const *keys, const char *const *labels,
                       unsigned nkeys)
{
    if (!json_is_object(h)) {
        printf("  %s: none seen\n", title);
        return;
    }
    struct tl_event ev[16 + 64];
    unsigned n = 0;
    for (unsigned i = 0; i < nkeys; i++) {
        json_t *v = json_object_get(h, keys[i]);
        if (json_is_number(v))
            ev[n++] = (struct tl_event){labels[i], json_number_value(v)};
    }
    static char ring_label[64][64];
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(h, "answered"), i, a) {
        json_int_t r = json_integer_value(json_object_get(a, "ring"));
        if (i >= 64 || r < 0 || !json_is_number(json_object_get(a, "ms")))
            continue;
        snprintf(ring_label[i], sizeof(ring_label[i]), "ring %lld GET_VRING_BASE answered", (long long)r);
        ev[n++] = (struct tl_event){ring_label[i], json_number_value(json_object_get(a, "ms"))};
    }
    qsort(ev, n, sizeof(ev[0]), tl_cmp);
    json_t *sw = json_object_get(h, "switchover_ms");
    printf("  %s, %.1f s ago: switchover ", title, json_number_value(json_object_get(h, "age_ms")) / 1000.0);
    if (json_is_number(sw))
        printf("%.3f ms\n", json_number_value(sw));
    else
        printf("not complete\n");
    for (unsigned k = 0; k < n; k++)
        printf("    %+10.3f ms  %s\n", ev[k].ms, ev[k].what);
}

static void print_migration(json_t *vf)
{
    static const char *const src_keys[] = {"first_get_vring_base_ms", "stop_begun_ms", "stopped_ms"};
    static const char *const src_labels[] = {"first GET_VRING_BASE", "device stop begun",
                                             "device stopped (frozen, state saved)"};
    static const char *const dst_keys[] = {"connected_ms", "mem_table_ms", "mem_mapped_ms", "start_begun_ms",
                                           "rings_started_ms"};
    static const char *const dst_labels[] = {"vhost-user connection accepted", "memory table received",
                                             "memory mapped", "device start begun", "rings running"};
    json_t *m = json_object_get(vf, "migration");
    printf("%s\n", json_string_value(json_object_get(vf, "vf")) ?: "?");
    print_half("source", json_object_get(m, "source"), src_keys, src_labels, 3);
    print_half("destination", json_object_get(m, "destination"), dst_keys, dst_labels, 5);
}

static int migration(const char *bdf)
{
    json_t *res = NULL;
    char msg[512];
    json_t *params = bdf ? json_pack("{s:s}", "vfdev", bdf) : json_object();
    int rc = rpc_client_call(sock_path, "stats", params, TIMEOUT_MS, &res, msg, sizeof(msg));
    json_decref(params);   /* the call borrows it */
    if (rc) {
        fprintf(stderr, "vhostmgmt: migration: %s (code %d)\n", msg, rc);
        return 1;
    }
    json_t *vfs = json_object_get(res, "vfs"), *out = json_array(), *vf;
    size_t i;
    json_array_foreach(vfs, i, vf) {
        if (as_json) {
            json_array_append_new(out, json_pack("{s:O, s:O}", "vf", json_object_get(vf, "vf"), "migration",
                                                 json_object_get(vf, "migration")));
            continue;
        }
        if (i)
            putchar('\n');
        print_migration(vf);
    }
    if (as_json) {
        json_t *doc = json_pack("{s:o}", "vfs", out);
        char *t = json_dumps(doc, JSON_INDENT(2));
        puts(t);
        free(t);
        json_decref(doc);
    } else {
        json_decref(out);
        if (!json_array_size(vfs))
            puts("(none)");
    }
    json_decref(res);
    return 0;
}

/* One command from argv-like words. */
static int run(int argc, char **argv)
{
    if (argc < 1)
        return bad("no command");
    const char *cmd = argv[0];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "health") || !strcmp(cmd, "upgrade"))
        return argc == 1 ? call(cmd, json_object()) : bad("%s takes no arguments", cmd);
    if (!strcmp(cmd, "stats")) {
        if (argc > 2 || (argc == 2 && !bdf_ok(argv[1])))
            return bad("stats [BDF]: '%s' is not a PCI address DDDD:BB:DD.F", argc == 2 ? argv[1] : "");
        return call("stats", argc == 2 ? json_pack("{s:s}", "vfdev", argv[1]) : json_object());
    }
    if (!strcmp(cmd, "migration")) {
        if (argc > 2 || (argc == 2 && !bdf_ok(argv[1])))
            return bad("migration [BDF]: '%s' is not a PCI address DDDD:BB:DD.F", argc == 2 ? argv[1] : "");
        return migration(argc == 2 ? argv[1] : NULL);
    }
    if (!strcmp(cmd, "mgmtpf")) {
        if (argc == 2 && !strcmp(argv[1], "-l"))
            return call("mgmtpf", json_pack("{s:b}", "list", 1));
        if (argc != 3 || (strcmp(argv[1], "-a") && strcmp(argv[1], "-r")))
            return bad("usage: mgmtpf -a BDF | -r BDF | -l");
        if (!bdf_ok(argv[2]))
            return bad("'%s' is not a PCI address DDDD:BB:DD.F", argv[2]);
        return call("mgmtpf", json_pack("{s:b, s:s}", argv[1][1] == 'a' ? "add" : "remove", 1, "dev", argv[2]));
    }
    if (!strcmp(cmd, "vf")) {
        if (argc < 3)
            return bad("usage: vf -a BDF [-v SOCK] [-u UUID] [--direct] | -r BDF | -l PF | -i BDF");
        const char *op = argv[1], *bdf = argv[2];
        if (!bdf_ok(bdf))
            return bad("'%s' is not a PCI address DDDD:BB:DD.F", bdf);
        if (!strcmp(op, "-a")) {
            json_t *p = json_pack("{s:b, s:s}", "add", 1, "vfdev", bdf);
            for (int i = 3; i < argc; i += 2) {
                if (!strcmp(argv[i], "--direct")) {
                    json_object_set_new(p, "direct", json_true());
                    i--;
                    continue;
                }
                if (i + 1 >= argc || (strcmp(argv[i], "-v") && strcmp(argv[i], "-u"))) {
                    json_decref(p);
                    return bad("vf -a: unexpected '%s' (-v SOCK, -u UUID, --direct)", argv[i]);
                }
                json_object_set_new(p, argv[i][1] == 'v' ? "socket_file" : "uuid", json_string(argv[i + 1]));
            }
            return call("vf", p);
        }
        if (argc != 3)
            return bad("vf %s takes one BDF", op);
        if (!strcmp(op, "-r"))
            return call("vf", json_pack("{s:b, s:s}", "remove", 1, "vfdev", bdf));
        if (!strcmp(op, "-l"))
            return call("vf", json_pack("{s:b, s:s}", "list", 1, "mgmtpf", bdf));
        if (!strcmp(op, "-i"))
            return call("vf", json_pack("{s:b, s:s}", "info", 1, "vfdev", bdf));
        return bad("vf: unknown option '%s'", op);
    }
    if (!strcmp(cmd, "bind")) {
        if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--force")))
            return bad("usage: bind BDF [--force]");
        if (!bdf_ok(argv[1]))
            return bad("'%s' is not a PCI address DDDD:BB:DD.F", argv[1]);
        return call("bind", json_pack("{s:s, s:b}", "dev", argv[1], "force", argc == 3));
    }
    return bad("unknown command '%s'", cmd);
}

#define MAX_WORDS 16

/* Split line into at most MAX_WORDS words; -1 if there are more. */
static int split(char *line, char **words)
{
    int nw = 0;
    for (char *t = strtok(line, " \t\r\n"); t; t = strtok(NULL, " \t\r\n")) {
        if (nw == MAX_WORDS)
            return -1;
        words[nw++] = t;
    }
    return nw;
}

static int run_stdin(bool keep_going)
{
    char line[1024];
    int worst = 0, n = 0;
    while (fgets(line, sizeof(line), stdin)) {
        n++;
        int rc;
        char *words[MAX_WORDS];
        int nw = 0;
        if (!strchr(line, '\n') && !feof(stdin)) {   /* never run the tail of a long line as a command */
            int ch;
            while ((ch = getchar()) != EOF && ch != '\n')
                ;
            rc = bad("line %d is longer than %zu characters", n, sizeof(line) - 2);
        } else {
            char *hash = strchr(line, '#');
            if (hash)
                *hash = '\0';
            nw = split(line, words);
            if (!nw)
                continue;
            rc = nw < 0 ? bad("line %d has more than %d words", n, MAX_WORDS) : run(nw, words);
        }
        if (rc) {
            fprintf(stderr, "vhostmgmt: line %d failed\n", n);
            worst = rc;
            if (!keep_going)
                return rc;
        }
    }
    return worst;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"keep-going", no_argument, NULL, 'k'},   {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    sock_path = getenv("VFE_RPC_SOCKET");
    if (!sock_path || !*sock_path)
        sock_path = "/run/vfe-vhostd/vhostd.sock";
    bool keep = false;
    int c;
    /* options only before the command: "vf -a" belongs to the command */
    while ((c = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': sock_path = optarg; break;
        case 'j': as_json = true; break;
        case 'k': keep = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind == argc) {
        if (isatty(STDIN_FILENO)) {
            usage(stderr);
            return 2;
        }
        return run_stdin(keep);
    }
    return run(argc - optind, argv + optind);
}
