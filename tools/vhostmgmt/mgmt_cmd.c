/* Command-line words to one command (see mgmt_cmd.h). */
#include "tools/vhostmgmt/mgmt_cmd.h"

#include <stdlib.h>
#include <string.h>

#include "tools/vhostmgmt/mgmt_err.h"

enum mgmt_field { F_OP, F_DEV, F_SOCKET, F_UUID, F_TEST_OP, F_SIZE_MODE, F_DIRECT, F_FORCE, F_QUEUES, F_MSIX,
                  F_RELEASE_MSIX, F_COUNT };

/* One option of a subcommand. */
struct mgmt_opt {
    const char *shorts;      /* its one-letter names ("" none) */
    const char *longs;       /* its long names, '|' between them */
    enum mgmt_field field;
    enum mgmt_op op;         /* F_OP: the operation it selects */
    unsigned with;           /* the operations it goes with (1 << op) */
};

#define OP(x) (1u << MGMT_OP_##x)
#define ANY_OP 0xffffu

static bool takes_arg(enum mgmt_field f)
{
    return f == F_DEV || f == F_SOCKET || f == F_UUID || f == F_TEST_OP || f == F_SIZE_MODE || f == F_QUEUES ||
           f == F_MSIX;
}

static const struct mgmt_opt no_opts[] = {{NULL, NULL, 0, 0, 0}};

static const struct mgmt_opt mgmtpf_opts[] = {
    {"a", "add", F_OP, MGMT_OP_ADD, ANY_OP},
    {"r", "remove", F_OP, MGMT_OP_REMOVE, ANY_OP},
    {"l", "list", F_OP, MGMT_OP_LIST, ANY_OP},
    {"", "reclaim-msix|reclaim_msix", F_OP, MGMT_OP_RECLAIM, ANY_OP},
    {"", "dev", F_DEV, 0, OP(ADD) | OP(REMOVE) | OP(RECLAIM)},
    {NULL, NULL, 0, 0, 0},
};

static const struct mgmt_opt vf_opts[] = {
    {"a", "add", F_OP, MGMT_OP_ADD, ANY_OP},
    {"r", "remove", F_OP, MGMT_OP_REMOVE, ANY_OP},
    {"l", "list", F_OP, MGMT_OP_LIST, ANY_OP},
    {"i", "info", F_OP, MGMT_OP_INFO, ANY_OP},
    {"d", "debug", F_OP, MGMT_OP_DEBUG, ANY_OP},
    {"v", "socket-file|socket_file|socket", F_SOCKET, 0, OP(ADD)},
    {"u", "uuid", F_UUID, 0, OP(ADD)},
    {"", "direct", F_DIRECT, 0, OP(ADD)},
    {"", "queues", F_QUEUES, 0, OP(ADD)},
    {"", "msix", F_MSIX, 0, OP(ADD)},
    {"", "release-msix|release_msix", F_RELEASE_MSIX, 0, OP(REMOVE)},
    {"o", "test-operation|test_operation", F_TEST_OP, 0, OP(DEBUG)},
    {"bm", "size-mode|size_mode|test-mode|test_mode", F_SIZE_MODE, 0, OP(DEBUG)},
    {"", "vfdev", F_DEV, 0, OP(ADD) | OP(REMOVE) | OP(INFO) | OP(DEBUG)},
    {"", "mgmtpf", F_DEV, 0, OP(LIST)},
    {NULL, NULL, 0, 0, 0},
};

static const struct mgmt_opt bind_opts[] = {
    {"f", "force", F_FORCE, 0, ANY_OP},
    {"", "dev", F_DEV, 0, ANY_OP},
    {NULL, NULL, 0, 0, 0},
};

const struct mgmt_verb mgmt_verb_table[] = {
    {"mgmtpf", "mgmtpf", true, "-a BDF | -r BDF | -l | --reclaim-msix BDF",
     "Manage PFs (the management functions whose admin queue drives their VFs).\n"
     "  -a, --add BDF        add a PF: bring up its admin queue\n"
     "  -r, --remove BDF     remove a PF (refused while it has VFs)\n"
     "  -l, --list           list the PFs (with msix_total/msix_free: its MSI-X pool)\n"
     "  --reclaim-msix BDF   give every VF's MSI-X vectors back to the PF's pool\n"
     "                       (refused while any VF of it is served; vfe only)\n",
     mgmtpf_opts, 1, OP(ADD) | OP(REMOVE) | OP(RECLAIM), OP(ADD) | OP(REMOVE) | OP(RECLAIM)},
    {"vf", "vf", true,
     "-a BDF [-v SOCK] [-u UUID] [--direct] [--queues N | --msix N] | -r BDF [--release-msix] | -l PF | -i BDF |\n"
     "       -d BDF -o N [-b MODE]",
     "Manage VFs (each one served as a vhost-user back-end).\n"
     "  -a, --add BDF        add a VF and serve vhost-user for it\n"
     "    -v, --socket-file SOCK  its socket (default: the daemon's --iface prefix + BDF)\n"
     "    -u, --uuid UUID     the VM it belongs to: VFs of one VM share one DMA domain\n"
     "    --direct            drive it through its own common config, not its PF's admin\n"
     "                        queue (automatic for a function that is not a VF; vfe only)\n"
     "    --queues N          size it first: N queue pairs (2N+2 MSI-X vectors from its\n"
     "                        PF's pool; vfe only)\n"
     "    --msix N            size it first: N MSI-X vectors, (N-2)/2 queue pairs\n"
     "  -r, --remove BDF     remove a VF (its device is stopped first)\n"
     "    --release-msix      then give its MSI-X vectors back to its PF's pool\n"
     "  -l, --list PF        list the VFs of a PF\n"
     "  -i, --info BDF       details of a VF\n"
     "  -d, --debug BDF      a test operation on a VF (the peer's debug interface)\n"
     "    -o, --test-operation N  1 running, 2 quiesced, 3 freeze, 4 start logging,\n"
     "                        5 stop logging, 6 get live-migration status\n"
     "    -b, -m, --size-mode MODE  dirty log of operation 4 and 5: 1 or bit, 2 or byte\n"
     "                        (default 2)\n"
     "  --vfdev BDF, --mgmtpf PF  the device as a named option (--mgmtpf with -l)\n",
     vf_opts, 1, OP(ADD) | OP(REMOVE) | OP(LIST) | OP(INFO) | OP(DEBUG),
     OP(ADD) | OP(REMOVE) | OP(LIST) | OP(INFO) | OP(DEBUG)},
    {"bind", "bind", false, "BDF [--force]",
     "Bind a PCI function to vfio-pci (kernel VFIO).\n"
     "  -f, --force          take it from the driver that has it (the host loses that device)\n",
     bind_opts, 0, OP(NONE), OP(NONE)},
    {"stats", "stats", false, "[BDF]", "Per-VF state, features, rings, connection and counters (all VFs, or one).\n",
     no_opts, 0, 0, OP(NONE)},
    {"migration", "stats", false, "[BDF]",
     "The last switchover per VF: when the source's device was stopped and each ring's\n"
     "index handed over, when the destination's memory was mapped and its rings started.\n",
     no_opts, 0, 0, OP(NONE)},
    {"health", "health", false, "", "Daemon health: provisioning state, HA link, last resume.\n", no_opts, 0, 0, 0},
    {"upgrade", "upgrade", false, "",
     "Hand every device to vfe-vhostd-ha and restart the daemon from the binary on disk\n"
     "(needs the daemon's --ha; no frame is lost).\n",
     no_opts, 0, 0, 0},
    {"version", "version", true, "", "The daemon's version.\n", no_opts, 0, 0, 0},
};

const size_t mgmt_verb_count = sizeof(mgmt_verb_table) / sizeof(mgmt_verb_table[0]);

const struct mgmt_verb *mgmt_verb_find(const char *name)
{
    for (size_t i = 0; i < mgmt_verb_count; i++)
        if (!strcmp(mgmt_verb_table[i].name, name))
            return &mgmt_verb_table[i];
    return NULL;
}

/* name is one of the '|'-separated names in list. */
static bool name_in(const char *list, const char *name, size_t name_len)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, "|");
        if (n == name_len && !strncmp(p, name, n))
            return true;
        p += n + (p[n] == '|');
    }
    return false;
}

/* The option a word names ("--name[=value]" or "-x[value]"); *value is the
 * attached argument if there is one. */
static const struct mgmt_opt *opt_find(const struct mgmt_opt *opts, const char *word, const char **value)
{
    *value = NULL;
    if (word[1] == '-') {
        const char *name = word + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        for (const struct mgmt_opt *o = opts; o->longs; o++)
            if (name_in(o->longs, name, n)) {
                *value = eq ? eq + 1 : NULL;
                return o;
            }
        return NULL;
    }
    for (const struct mgmt_opt *o = opts; o->longs; o++)
        if (word[1] && strchr(o->shorts, word[1])) {
            if (word[2] && !takes_arg(o->field))
                return NULL;   /* no bundling of flags: "-ar" is not a thing here */
            *value = word[2] ? word + 2 : NULL;
            return o;
        }
    return NULL;
}

static bool is_help(const char *w)
{
    return !strcmp(w, "-h") || !strcmp(w, "--help");
}

/* Check and store one option's value. */
static int set_value(struct mgmt_cmd *c, enum mgmt_field f, const char *word, const char *v, char *err, size_t len)
{
    switch (f) {
    case F_DEV:
        if (!mgmt_bdf_normalise(v, c->dev))
            return mgmt_failf(err, len, "%s: '%.40s%s' is not a PCI address [DDDD:]BB:DD.F", c->verb->name, v,
                         strlen(v) > 40 ? "..." : "");
        return 0;
    case F_SOCKET:
        if (!*v)
            return mgmt_failf(err, len, "%s: %s: the socket path is empty", c->verb->name, word);
        if (strlen(v) > MGMT_SOCKET_MAX)
            return mgmt_failf(err, len, "%s: %s: the socket path is %zu bytes long, at most %d fit in a unix socket address",
                         c->verb->name, word, strlen(v), MGMT_SOCKET_MAX);
        c->socket_file = v;
        return 0;
    case F_UUID:
        if (!*v || strlen(v) > MGMT_UUID_MAX)
            return mgmt_failf(err, len, "%s: %s: the VM id must be 1 to %d bytes long", c->verb->name, word, MGMT_UUID_MAX);
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return mgmt_failf(err, len, "%s: %s: the VM id has a control character", c->verb->name, word);
        c->uuid = v;
        return 0;
    case F_TEST_OP: {
        char *end;
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 1 || n > MGMT_TEST_OP_MAX)
            return mgmt_failf(err, len, "%s: %s: '%.20s' is not a test operation 1..%d", c->verb->name, word, v,
                         MGMT_TEST_OP_MAX);
        c->test_operation = (int)n;
        return 0;
    }
    case F_QUEUES:
    case F_MSIX: {
        char *end;
        long n = strtol(v, &end, 10);
        long lo = f == F_MSIX ? 4 : 1, hi = f == F_MSIX ? 2048 : 1023;
        if (!*v || *end || n < lo || n > hi)
            return mgmt_failf(err, len, "%s: %s: '%.20s' is not a number %ld..%ld", c->verb->name, word, v, lo, hi);
        *(f == F_MSIX ? &c->msix : &c->queues) = (unsigned)n;
        return 0;
    }
    case F_SIZE_MODE:
        if (!strcmp(v, "1") || !strcmp(v, "bit"))
            c->size_mode = 1;
        else if (!strcmp(v, "2") || !strcmp(v, "byte"))
            c->size_mode = 2;
        else
            return mgmt_failf(err, len, "%s: %s: '%.20s' is not a size mode (1 or bit, 2 or byte)", c->verb->name, word, v);
        return 0;
    default:
        return 0;
    }
}

/* "-a, -r or -l": the operation options of a verb, for messages. */
static void op_names(const struct mgmt_verb *v, char *out, size_t len)
{
    size_t n = 0, count = 0, total = 0;
    for (const struct mgmt_opt *o = v->opts; o->longs; o++)
        total += o->field == F_OP;
    out[0] = '\0';
    for (const struct mgmt_opt *o = v->opts; o->longs && n < len; o++)
        if (o->field == F_OP) {
            count++;
            const char *sep = count == 1 ? "" : count == total ? " or " : ", ";
            if (o->shorts[0])
                n += (size_t)snprintf(out + n, len - n, "%s-%c", sep, o->shorts[0]);
            else
                n += (size_t)snprintf(out + n, len - n, "%s--%.*s", sep, (int)strcspn(o->longs, "|"), o->longs);
        }
}

int mgmt_cmd_parse(int argc, char *const *argv, struct mgmt_cmd *c, char *err, size_t len)
{
    memset(c, 0, sizeof(*c));
    err[0] = '\0';
    if (argc < 1)
        return mgmt_failf(err, len, "no command");
    c->verb = mgmt_verb_find(argv[0]);
    if (!c->verb)
        return mgmt_failf(err, len, "unknown command '%.40s'", argv[0]);
    const struct mgmt_verb *v = c->verb;
    const char *given[F_COUNT] = {NULL};   /* the word that set each field, for messages */
    const struct mgmt_opt *by[F_COUNT] = {NULL};   /* and the option it was (NULL: the positional device) */
    const char *dev_word = NULL;
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (!only_positional && !strcmp(w, "--")) {
            only_positional = true;
            continue;
        }
        if (!only_positional && is_help(w)) {
            c->help = true;
            return 0;
        }
        if (only_positional || w[0] != '-' || !w[1]) {
            if (dev_word)
                return mgmt_failf(err, len, "%s: unexpected '%.40s' (the device is '%.40s')", v->name, w, dev_word);
            if (!v->dev_may)
                return mgmt_failf(err, len, "%s takes no arguments ('%.40s')", v->name, w);
            dev_word = w;
            if (set_value(c, F_DEV, w, w, err, len))
                return -1;
            continue;
        }
        const char *val;
        const struct mgmt_opt *o = opt_find(v->opts, w, &val);
        if (!o)
            return mgmt_failf(err, len, "%s: unknown option '%.40s'", v->name, w);
        if (!takes_arg(o->field) && val)
            return mgmt_failf(err, len, "%s: option '%.40s' takes no argument", v->name, w);
        if (takes_arg(o->field) && !val) {
            if (i + 1 >= argc)
                return mgmt_failf(err, len, "%s: option '%s' needs an argument", v->name, w);
            val = argv[++i];
        }
        if (o->field == F_OP) {
            if (c->op && c->op != o->op)
                return mgmt_failf(err, len, "%s: conflicting operations '%s' and '%s'", v->name, given[F_OP], w);
            c->op = o->op;
            given[F_OP] = w;
            continue;
        }
        if (o->field == F_DEV) {
            if (dev_word)
                return mgmt_failf(err, len, "%s: the device is given twice ('%.40s' and '%.40s')", v->name, dev_word, val);
            dev_word = val;
        } else if (given[o->field]) {
            return mgmt_failf(err, len, "%s: '%s' is given twice", v->name, w);
        }
        given[o->field] = w;
        by[o->field] = o;
        if (set_value(c, o->field, w, val, err, len))
            return -1;
        if (o->field == F_DIRECT)
            c->direct = true;
        else if (o->field == F_FORCE)
            c->force = true;
        else if (o->field == F_RELEASE_MSIX)
            c->release_msix = true;
    }
    if (c->queues && c->msix)
        return mgmt_failf(err, len, "%s: '%s' and '%s': one of them, not both", v->name, given[F_QUEUES], given[F_MSIX]);
    char ops[64];
    op_names(v, ops, sizeof(ops));
    if (v->need_op && !c->op)
        return mgmt_failf(err, len, "%s: one of %s is needed", v->name, ops);
    for (int f = 0; f < F_COUNT; f++)
        if (by[f] && !(by[f]->with & (1u << c->op)))
            return mgmt_failf(err, len, "%s: '%s' does not go with '%s'", v->name, given[f], given[F_OP] ? given[F_OP] : v->name);
    if (dev_word && !(v->dev_may & (1u << c->op)))
        return mgmt_failf(err, len, "%s %s takes no device ('%.40s')", v->name, given[F_OP] ? given[F_OP] : "", dev_word);
    if (!dev_word && (v->dev_need & (1u << c->op)))
        return mgmt_failf(err, len, "%s %s: which device? (a PCI address [DDDD:]BB:DD.F)", v->name,
                     given[F_OP] ? given[F_OP] : "");
    if (c->op == MGMT_OP_DEBUG && !c->test_operation)
        return mgmt_failf(err, len, "%s -d: the test operation (-o 1..%d) is needed", v->name, MGMT_TEST_OP_MAX);
    if (c->op == MGMT_OP_DEBUG && !c->size_mode)
        c->size_mode = 2;
    return 0;
}

json_t *mgmt_cmd_params(const struct mgmt_cmd *c, bool peer)
{
    const char *m = c->verb->name;
    if (!strcmp(m, "mgmtpf")) {
        if (c->op == MGMT_OP_LIST)
            return json_pack("{s:b}", "list", 1);
        return json_pack("{s:b, s:s}", c->op == MGMT_OP_ADD ? "add" : c->op == MGMT_OP_RECLAIM ? "reclaim_msix" : "remove",
                         1, "dev", c->dev);
    }
    if (!strcmp(m, "vf")) {
        switch (c->op) {
        case MGMT_OP_ADD: {
            json_t *p = json_pack("{s:b, s:s}", "add", 1, "vfdev", c->dev);
            if (c->socket_file || peer)
                json_object_set_new(p, "socket_file", c->socket_file ? json_string(c->socket_file) : json_null());
            if (c->uuid || peer)
                json_object_set_new(p, "uuid", c->uuid ? json_string(c->uuid) : json_null());
            if (c->direct)
                json_object_set_new(p, "direct", json_true());
            if (c->queues)
                json_object_set_new(p, "queues", json_integer(c->queues));
            if (c->msix)
                json_object_set_new(p, "msix", json_integer(c->msix));
            return p;
        }
        case MGMT_OP_REMOVE:
            if (c->release_msix)
                return json_pack("{s:b, s:s, s:b}", "remove", 1, "vfdev", c->dev, "release_msix", 1);
            return json_pack("{s:b, s:s}", "remove", 1, "vfdev", c->dev);
        case MGMT_OP_LIST: return json_pack("{s:b, s:s}", "list", 1, "mgmtpf", c->dev);
        case MGMT_OP_INFO: return json_pack("{s:b, s:s}", "info", 1, "vfdev", c->dev);
        default:
            return json_pack("{s:s, s:b, s:i, s:i}", "vfdev", c->dev, "debug", 1, "test_operation", c->test_operation,
                             "size_mode", c->size_mode);
        }
    }
    if (!strcmp(m, "bind"))
        return json_pack("{s:s, s:b}", "dev", c->dev, "force", c->force);
    if (c->dev[0])
        return json_pack("{s:s}", "vfdev", c->dev);
    return peer ? NULL : json_object();
}

void mgmt_verb_help(const struct mgmt_verb *v, FILE *f, const char *prog)
{
    fprintf(f, "Usage: %s [GLOBAL OPTIONS] %s%s%s\n\n%s", prog, v->name, *v->usage ? " " : "", v->usage, v->help);
    fprintf(f, "  -h, --help           this help\n");
    if (v->dev_may)
        fprintf(f, "A BDF is DDDD:BB:DD.F or BB:DD.F (domain 0000), hex in either case.\n");
    fprintf(f, "Options and the device may come in any order.%s\n",
            v->peer ? "" : "  Not part of the peer's TCP interface (--tcp).");
}
