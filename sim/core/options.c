/* Command line of vfe-dpu-sim. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"
#include "sim/net/l2_switch.h"
#include "sim/spec/sim_admin_spec.h"
#include "vfe_version.h"

void sim_usage(FILE *f)
{
    fprintf(f,
"Usage: vfe-dpu-sim --root DIR --pf BDF [--vfs N] [--pf BDF [--vfs N]]... [options]\n"
"\n"
"A software DPU: virtio-net PCI functions (a PF with SR-IOV VFs) served over\n"
"vfio-user, joined by an L2 switch.  Writes a sysfs-shaped tree under DIR\n"
"(DIR/<bdf>/{vendor,device,class,sriov_totalvfs,sriov_numvfs,physfn,virtfnN,\n"
"vfio-user.sock}), then DIR/ready once every socket listens.  SIGTERM or SIGINT\n"
"removes the tree and exits 0.\n"
"\n"
"  --root DIR            where the tree is written (created if missing)\n"
"  --pf BDF              add a PF, e.g. 0000:3b:00.0 (up to %d); VF n gets the\n"
"                        routing id of the PF plus n (First VF Offset 1, VF\n"
"                        Stride 1): VFs run on past function 7 and past a bus,\n"
"                        e.g. VF 256 of 3b:00.0 is 3c:00.0\n"
"  --vfs N               VFs enabled at start on the preceding --pf (default 0);\n"
"                        later, write a number to DIR/<pf>/sriov_numvfs\n"
"  --total-vfs N         sriov_totalvfs of every PF (default 64, max %d)\n"
"  --qpairs N            queue pairs of each VF, 1..%d (default 4)\n"
"  --msix-pool N         MSI-X vectors of each PF's pool for its VFs (the file\n"
"                        sriov_vf_total_msix; default total-vfs x (2 x qpairs + 2));\n"
"                        each VF gets an even share, at most 2 x qpairs + 2, and\n"
"                        its queue pairs follow: (vectors - 2) / 2; write a VF's\n"
"                        sriov_vf_msix_count (0..%d) while it has no driver\n"
"  --mtu N               MTU in the device config, 68..9000 (default 1500)\n"
"  --mac-prefix A:B:C:D  first four MAC bytes of the functions (default 02:fe:00:00);\n"
"                        give two sims joined by an uplink different prefixes\n"
"  --uplink udp:[LADDR:]LPORT,HOST:PORT\n"
"                        exchange frames with another sim over UDP on loopback, or\n"
"                        from the local address LADDR to a HOST on the same link\n"
"                        (e.g. a veth pair between two network namespaces)\n"
"  --fdb-aging SECONDS   how long the switch keeps a MAC it learned and no longer\n"
"                        sees, 1..%u (default %u); a stopped or reset port keeps\n"
"                        its MACs, a MAC seen on another port moves at once\n"
"  --admin-dialect D     both (default), nvidia or virtio: admin commands served;\n"
"                        after a --pf it applies to that PF only\n"
"  --dirty-tracking M    dirty-page tracking modes the PFs offer: a comma list of\n"
"                        push and pull, or none (default push,pull); a start in\n"
"                        another mode is refused as unsupported\n"
"  --ctl PATH            control socket (default DIR/sim-ctl.sock): one JSON\n"
"                        request per line, e.g. {\"cmd\":\"counters\",\"bdf\":\"...\"},\n"
"                        {\"cmd\":\"list\"}, {\"cmd\":\"fault\",\"type\":\"admin_delay\",\"ms\":N},\n"
"                        admin_fail (status, count), dma_stall (bdf, on),\n"
"                        vfu_stall (bdf, on: its vfio-user socket is not read), remove (bdf),\n"
"                        pf_reset (bdf), clear; {\"cmd\":\"switch\",\"mac\":M}: the\n"
"                        switch's counters and the port M is sent to now;\n"
"                        {\"cmd\":\"msix\",\"bdf\":B}: a PF's pool or a VF's vectors,\n"
"                        with \"vectors\":N (VF) or \"reclaim\":true (PF) to change them\n"
"  --log-level L         err, warning, notice, info (default) or debug\n"
"  -h, --help            this text\n"
"  --version             print the version (one line) and exit\n",
            SIM_MAX_PFS, SIM_MAX_VFS, SIM_MAX_QPAIRS, 2 * SIM_MAX_QPAIRS + 2, SW_AGING_MAX, SW_AGING_DEFAULT);
}

static int parse_uint(const char *name, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "vfe-dpu-sim: %s '%s': expected a number in %u..%u\n", name, s, lo, hi);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int check_pfs(struct sim_options *o)
{
    for (unsigned i = 0; i < o->npfs; i++) {
        unsigned di, ri;
        sim_bdf_parse(o->pfs[i].bdf, &di, &ri);
        if (o->pfs[i].vfs > o->total_vfs) {
            fprintf(stderr, "vfe-dpu-sim: %s: --vfs %u exceeds --total-vfs %u\n", o->pfs[i].bdf,
                    o->pfs[i].vfs, o->total_vfs);
            return -1;
        }
        for (unsigned j = 0; j < o->npfs; j++) {
            unsigned dj, rj;
            sim_bdf_parse(o->pfs[j].bdf, &dj, &rj);
            if (i != j && di == dj && rj >= ri && o->total_vfs && rj <= SIM_VF_RID(ri, o->total_vfs)) {
                fprintf(stderr, "vfe-dpu-sim: PF %s overlaps %s or its %u VFs\n", o->pfs[j].bdf,
                        o->pfs[i].bdf, o->total_vfs);
                return -1;
            }
        }
        if (o->total_vfs && SIM_VF_RID(ri, o->total_vfs) > 0xffff) {
            fprintf(stderr, "vfe-dpu-sim: %s: its %u VFs would pass bus ff\n", o->pfs[i].bdf, o->total_vfs);
            return -1;
        }
    }
    return 0;
}

/* "push", "pull", "push,pull" (any order, no repeats) or "none" -> the
 * modes refused (bitmaps only: bytemaps are never offered). */
static int parse_dirty_modes(const char *arg, unsigned *refused)
{
    const unsigned push = 1u << SIM_NV_TRACK_PUSH_BITMAP, pull = 1u << SIM_NV_TRACK_PULL_BITMAP;
    if (!strcmp(arg, "none")) {
        *refused = push | pull;
        return 0;
    }
    unsigned offered = 0;
    const char *p = arg;
    for (;;) {
        size_t n = strcspn(p, ",");
        unsigned m = n == 4 && !strncmp(p, "push", 4) ? push : n == 4 && !strncmp(p, "pull", 4) ? pull : 0;
        if (!m || (offered & m))
            return -1;
        offered |= m;
        if (!p[n])
            break;
        p += n + 1;
    }
    *refused = (push | pull) & ~offered;
    return 0;
}

/* 0: run; 1: exit 0 (help or version shown); -1: exit 2 (message printed). */
int sim_parse_options(struct sim_options *o, int argc, char **argv)
{
    enum { O_ROOT = 256, O_PF, O_VFS, O_TOTAL, O_QPAIRS, O_MTU, O_MAC, O_UPLINK, O_DIALECT, O_CTL, O_LOG, O_DIRTY,
           O_AGING, O_VERSION, O_MSIX };
    static const struct option opts[] = {
        {"root", required_argument, NULL, O_ROOT},     {"pf", required_argument, NULL, O_PF},
        {"vfs", required_argument, NULL, O_VFS},       {"total-vfs", required_argument, NULL, O_TOTAL},
        {"qpairs", required_argument, NULL, O_QPAIRS}, {"mtu", required_argument, NULL, O_MTU},
        {"mac-prefix", required_argument, NULL, O_MAC}, {"uplink", required_argument, NULL, O_UPLINK},
        {"admin-dialect", required_argument, NULL, O_DIALECT}, {"ctl", required_argument, NULL, O_CTL},
        {"dirty-tracking", required_argument, NULL, O_DIRTY}, {"fdb-aging", required_argument, NULL, O_AGING},
        {"log-level", required_argument, NULL, O_LOG}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},     {"msix-pool", required_argument, NULL, O_MSIX},     {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->total_vfs = 64;
    o->max_qpairs = 4;
    o->mtu = 1500;
    o->admin_dialect = "both";
    o->fdb_aging = SW_AGING_DEFAULT;
    int c;
    unsigned v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_ROOT: o->root = optarg; break;
        case O_PF: {
            unsigned d, r;
            if (sim_bdf_parse(optarg, &d, &r) < 0) {
                fprintf(stderr, "vfe-dpu-sim: --pf '%s': expected DDDD:BB:DD.F\n", optarg);
                return -1;
            }
            if (o->npfs == SIM_MAX_PFS) {
                fprintf(stderr, "vfe-dpu-sim: at most %d --pf\n", SIM_MAX_PFS);
                return -1;
            }
            for (unsigned i = 0; i < o->npfs; i++)
                if (!strcmp(o->pfs[i].bdf, optarg)) {
                    fprintf(stderr, "vfe-dpu-sim: --pf %s given twice\n", optarg);
                    return -1;
                }
            snprintf(o->pfs[o->npfs++].bdf, sizeof(o->pfs[0].bdf), "%s", optarg);
            break;
        }
        case O_VFS:
            if (!o->npfs) {
                fprintf(stderr, "vfe-dpu-sim: --vfs must follow a --pf\n");
                return -1;
            }
            if (parse_uint("--vfs", optarg, 0, SIM_MAX_VFS, &o->pfs[o->npfs - 1].vfs) < 0)
                return -1;
            break;
        case O_TOTAL: if (parse_uint("--total-vfs", optarg, 0, SIM_MAX_VFS, &o->total_vfs) < 0) return -1; break;
        case O_QPAIRS: if (parse_uint("--qpairs", optarg, 1, SIM_MAX_QPAIRS, &o->max_qpairs) < 0) return -1; break;
        case O_MTU:
            if (parse_uint("--mtu", optarg, 68, 9000, &v) < 0)
                return -1;
            o->mtu = (uint16_t)v;
            break;
        case O_MAC: {
            unsigned b[4];
            char tail;
            if (sscanf(optarg, "%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &tail) != 4) {
                fprintf(stderr, "vfe-dpu-sim: --mac-prefix '%s': expected four hex bytes A:B:C:D\n", optarg);
                return -1;
            }
            o->mac_prefix = optarg;
            break;
        }
        case O_UPLINK: o->uplink = optarg; break;
        case O_MSIX: if (parse_uint("--msix-pool", optarg, 1, 1u << 20, &o->msix_pool) < 0) return -1; break;
        case O_AGING:
            if (parse_uint("--fdb-aging", optarg, 1, SW_AGING_MAX, &o->fdb_aging) < 0)
                return -1;
            break;
        case O_DIALECT:
            if (strcmp(optarg, "both") && strcmp(optarg, "nvidia") && strcmp(optarg, "virtio")) {
                fprintf(stderr, "vfe-dpu-sim: --admin-dialect '%s': both, nvidia or virtio\n", optarg);
                return -1;
            }
            if (o->npfs)
                o->pfs[o->npfs - 1].admin_dialect = optarg;
            else
                o->admin_dialect = optarg;
            break;
        case O_CTL: o->ctl_path = optarg; break;
        case O_DIRTY:
            if (parse_dirty_modes(optarg, &o->dirty_refused) < 0) {
                fprintf(stderr, "vfe-dpu-sim: --dirty-tracking '%s': a comma list of push and pull, or none\n",
                        optarg);
                return -1;
            }
            break;
        case O_LOG: {
            int lvl = vfe_log_parse_level(optarg);
            if (lvl < 0) {
                fprintf(stderr, "vfe-dpu-sim: --log-level '%s': err, warning, notice, info or debug\n", optarg);
                return -1;
            }
            vfe_log_set_level(lvl);
            break;
        }
        case 'h': sim_usage(stdout); return 1;
        case O_VERSION: printf("vfe-dpu-sim (vfe) %s\n", VFE_VERSION); return 1;
        default:
            fprintf(stderr, "vfe-dpu-sim: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vfe-dpu-sim: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!o->root || !o->npfs) {
        fprintf(stderr, "vfe-dpu-sim: --root and at least one --pf are required (see --help)\n");
        return -1;
    }
    return check_pfs(o);
}
