/*
 * vhostmgmt (also installed as vfe-vhost-cli): operator CLI of vfe-vhostd.
 * vfe's JSON-RPC over the daemon's unix socket by default; with --tcp the
 * peer's interface (mgmt_peer.h), printed as the peer's CLI prints it.
 * Commands parse the same in vfe's and the peer CLI's syntax (mgmt_cmd.h).
 */
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tools/vhostmgmt/mgmt_batch.h"
#include "tools/vhostmgmt/mgmt_cmd.h"
#include "tools/vhostmgmt/mgmt_out.h"
#include "tools/vhostmgmt/mgmt_page.h"
#include "tools/vhostmgmt/mgmt_peer.h"

#include "vfe_version.h"

#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 3600

static const char *prog = "vhostmgmt";
static const char *sock_path;
static const char *tcp_addr;   /* --tcp: the peer's interface there */
static bool as_json;
static int timeout_ms = DEFAULT_TIMEOUT_S * 1000;
static unsigned peer_id;       /* the JSON-RPC id of the last peer request */

static void usage(FILE *f)
{
    fprintf(f,
"Usage: %s [GLOBAL OPTIONS] COMMAND [OPTIONS] [DEVICE]\n"
"Operator CLI of vfe-vhostd: provision PFs and VFs, read their state.\n"
"\n"
"Commands (COMMAND -h shows each one's options; options and the device may come in\n"
"any order, long forms --add/--remove/--list/--info/--debug as in the peer's CLI):\n"
"  mgmtpf -a BDF            add a PF (brings up its admin queue)\n"
"  mgmtpf -r BDF            remove a PF (refused while it has VFs)\n"
"  mgmtpf -l                list PFs\n"
"  vf -a BDF [-v SOCK] [-u UUID] [--direct]\n"
"                           add a VF: serve vhost-user on SOCK (default: the daemon's\n"
"                           --iface prefix + BDF); VFs with the same UUID belong to one VM\n"
"                           and share one DMA domain (its guest-memory maps); --direct:\n"
"                           drive it through its own common config, without its PF's\n"
"                           admin queue (automatic for a function that is not a VF)\n"
"  vf -r BDF                remove a VF (its device is stopped first)\n"
"  vf -l PF                 list the VFs of a PF (up to 1024)\n"
"  vf -i BDF                details of a VF\n"
"  vf -d BDF -o N [-b MODE] a test operation on a VF (the peer's debug interface)\n"
"  bind BDF [--force]       bind a function to vfio-pci (kernel VFIO); --force takes it\n"
"                           from the driver that has it (the host loses that device)\n"
"  stats [BDF]              per-VF state, features, rings, connection\n"
"                           (vf -l and stats of many VFs: the daemon answers in\n"
"                           pages; every page is fetched and printed as one list)\n"
"  migration [BDF]          the last switchover per VF: when the source's device was\n"
"                           stopped and each ring's index handed over, when the\n"
"                           destination's memory was mapped and its rings started\n"
"  health                   daemon health (provisioning state, HA link, last resume)\n"
"  upgrade                  hand every device to vfe-vhostd-ha and restart the daemon\n"
"                           from the binary on disk (needs --ha; no frame is lost)\n"
"  version                  daemon version\n"
"A BDF is DDDD:BB:DD.F or BB:DD.F (domain 0000), hex digits in either case.\n"
"\n"
"Global options (before COMMAND):\n"
"  -s, --socket PATH        the daemon's socket (default $VFE_RPC_SOCKET or\n"
"                           /run/vfe-vhostd/vhostd.sock)\n"
"  --tcp [[ADDR:]PORT]      talk to the peer's TCP interface instead (vfe-vhostd\n"
"                           --compat-tcp, or the peer's own daemon; default\n"
"                           " MGMT_PEER_DEFAULT_ADDR "): the peer's requests and its CLI's\n"
"                           output (the params echoed, then the reply's result);\n"
"                           only mgmtpf, vf (without --direct) and version\n"
"  --json                   print the daemon's JSON result (with --tcp: no echo line)\n"
"  --timeout SECONDS        give up waiting for the daemon after this (default %d)\n"
"  --keep-going             with commands on stdin: go on after an error\n"
"  -h, --help               this help\n"
"  --version                the version of this program\n"
"With no COMMAND and stdin not a terminal, commands are read from stdin, one per\n"
"line ('#' starts a comment).\n"
"\n"
"Exit status: 0 when every command succeeded; 1 when the daemon refused one or\n"
"could not be reached (with --tcp also a reply whose errno is not 0 or that has\n"
"an \"Error\" member: the peer's own CLI exits 0 there); 2 for a usage error\n"
"(unknown command or option, missing or bad argument), with a one-line message.\n",
            prog, DEFAULT_TIMEOUT_S);
}

/* A usage error: one line on stderr, exit status 2.  verb: where its help is. */
static int bad_in(const struct mgmt_verb *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad_in(const struct mgmt_verb *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    if (verb)
        fprintf(stderr, " (see %s %s -h)\n", prog, verb->name);
    else
        fprintf(stderr, " (see %s --help)\n", prog);
    va_end(ap);
    return 2;
}

#define bad(...) bad_in(NULL, __VA_ARGS__)

/* One vfe JSON-RPC call on the unix socket for verb; takes params. */
static int call(const struct mgmt_verb *verb, json_t *params, json_t **result)
{
    char msg[512];
    int rc = mgmt_page_call(sock_path, verb->method, params, timeout_ms, result, msg, sizeof(msg));
    json_decref(params);
    if (rc) {
        fprintf(stderr, "%s: %s: %s (code %d)\n", prog, verb->name, msg, rc);
        return 1;
    }
    return 0;
}

static int run_peer(const struct mgmt_cmd *c)
{
    if (!c->verb->peer)
        return bad("%s is not part of the peer's TCP interface: use vfe's unix socket (-s)", c->verb->name);
    if (c->direct)
        return bad("vf --direct is not part of the peer's TCP interface: use vfe's unix socket (-s)");
    json_t *params = mgmt_cmd_params(c, true), *reply = NULL;
    struct mgmt_peer_conn conn;
    char msg[512];
    int rc = mgmt_peer_connect(&conn, tcp_addr, timeout_ms, msg, sizeof(msg));
    if (!rc && params && json_object_size(params) && !as_json) {
        mgmt_out_peer_echo(params);   /* as the peer's CLI: once connected, before the request */
        fflush(stdout);
    }
    if (!rc)
        rc = mgmt_peer_call(&conn, c->verb->method, params, ++peer_id, &reply, msg, sizeof(msg));
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, c->verb->name, msg);
        rc = 1;
    } else if (!json_is_object(reply) || (!json_object_get(reply, "result") && !json_object_get(reply, "error"))) {
        fprintf(stderr, "%s: %s: malformed answer from %s (neither result nor error)\n", prog, c->verb->name,
                tcp_addr);
        rc = 1;
    } else {
        rc = mgmt_out_peer_reply(c->verb->method, params, peer_id, reply);
    }
    json_decref(reply);
    json_decref(params);
    return rc;
}

/* One command from argv-like words. */
static int run(int argc, char **argv)
{
    struct mgmt_cmd c;
    char err[256];
    if (mgmt_cmd_parse(argc, argv, &c, err, sizeof(err)))
        return bad_in(c.verb, "%s", err);
    if (c.help) {
        mgmt_verb_help(c.verb, stdout, prog);
        return 0;
    }
    if (tcp_addr)
        return run_peer(&c);
    json_t *res = NULL;
    int rc = call(c.verb, mgmt_cmd_params(&c, false), &res);
    if (!rc && !strcmp(c.verb->name, "migration"))
        mgmt_out_migration(res, as_json);
    else if (!rc)
        mgmt_out_result(res, as_json);
    json_decref(res);
    return rc;
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

/* Line n's command joins the pending vf_batch lines (mgmt_batch.h), unless it is not a
 * `vf -a` or the peer's interface is used: then false, and the pending lines run first. */
static bool batched(struct mgmt_batch *b, struct mgmt_batch_ctx *x, int nw, char **words, int n, int *worst,
                    bool *stop)
{
    struct mgmt_cmd c;
    char err[256];
    bool wants = !tcp_addr && mgmt_cmd_parse(nw, words, &c, err, sizeof(err)) == 0 && mgmt_batch_wants(&c);
    if (!wants || !mgmt_batch_fits(b, &c))
        *stop = mgmt_batch_flush(b, x, worst);
    if (!wants || *stop)
        return false;
    mgmt_batch_add(b, &c, n);
    return true;
}

static int run_stdin(bool keep_going)
{
    char line[1024];
    int worst = 0, n = 0;
    struct mgmt_batch b;
    struct mgmt_batch_ctx x = {.prog = prog, .sock_path = sock_path, .timeout_ms = timeout_ms, .as_json = as_json,
                               .keep_going = keep_going};
    bool stop = false;
    mgmt_batch_init(&b);
    while (!stop && fgets(line, sizeof(line), stdin)) {
        n++;
        int rc;
        char *words[MAX_WORDS];
        int nw = 0;
        if (!strchr(line, '\n') && !feof(stdin)) {   /* never run the tail of a long line as a command */
            int ch;
            while ((ch = getchar()) != EOF && ch != '\n')
                ;
            if ((stop = mgmt_batch_flush(&b, &x, &worst)))
                break;
            rc = bad("line %d is longer than %zu characters", n, sizeof(line) - 2);
        } else {
            char *hash = strchr(line, '#');
            if (hash)
                *hash = '\0';
            nw = split(line, words);
            if (!nw)
                continue;
            if (nw > 0 && batched(&b, &x, nw, words, n, &worst, &stop))
                continue;
            if (stop)
                break;
            if (nw < 0 && (stop = mgmt_batch_flush(&b, &x, &worst)))
                break;
            rc = nw < 0 ? bad("line %d has more than %d words", n, MAX_WORDS) : run(nw, words);
        }
        fflush(stdout);
        if (rc) {
            fprintf(stderr, "%s: line %d failed\n", prog, n);
            worst = rc;   /* the last failure's status, as line by line */
            stop = !keep_going;
        }
    }
    if (!stop)
        mgmt_batch_flush(&b, &x, &worst);
    mgmt_batch_free(&b);
    return worst;
}

/* --timeout SECONDS: 1..MAX_TIMEOUT_S. */
static int set_timeout(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > MAX_TIMEOUT_S)
        return bad("--timeout '%.20s': seconds, 1..%d", s, MAX_TIMEOUT_S);
    timeout_ms = (int)v * 1000;
    return 0;
}

/* The word after a bare --tcp is its address unless it is a command or an option. */
static bool tcp_word(const char *w)
{
    return w && w[0] != '-' && !mgmt_verb_find(w);
}

int main(int argc, char **argv)
{
    enum { O_JSON = 256, O_KEEP, O_TCP, O_TIMEOUT, O_VERSION };
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"json", no_argument, NULL, O_JSON},
        {"keep-going", no_argument, NULL, O_KEEP},  {"help", no_argument, NULL, 'h'},
        {"tcp", optional_argument, NULL, O_TCP},    {"timeout", required_argument, NULL, O_TIMEOUT},
        {"version", no_argument, NULL, O_VERSION},  {NULL, 0, NULL, 0},
    };
    if (argc > 0 && argv[0] && *argv[0])
        prog = basename(argv[0]);
    sock_path = getenv("VFE_RPC_SOCKET");
    if (!sock_path || !*sock_path)
        sock_path = "/run/vfe-vhostd/vhostd.sock";
    bool keep = false;
    int c;
    opterr = 0;   /* our own one-line messages */
    /* options only before the command: "vf -a" belongs to the command */
    while ((c = getopt_long(argc, argv, "+:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': sock_path = optarg; break;
        case O_JSON: as_json = true; break;
        case O_KEEP: keep = true; break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: printf("%s (vfe) %s\n", prog, VFE_VERSION); return 0;
        case O_TIMEOUT:
            if (set_timeout(optarg))
                return 2;
            break;
        case O_TCP:
            tcp_addr = optarg ? optarg : tcp_word(optind < argc ? argv[optind] : NULL) ? argv[optind++]
                                                                                        : MGMT_PEER_DEFAULT_ADDR;
            break;
        case ':': return bad("option '%s' needs an argument", argv[optind - 1]);
        default: return bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (tcp_addr) {
        char host[256], port[8], msg[160];
        if (mgmt_peer_addr(tcp_addr, host, sizeof(host), port, sizeof(port), msg, sizeof(msg)))
            return bad("%s", msg);
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
