/* Command line of vfe-vhostd. */
#include "app/vfe-vdpa/options.h"
#include "app/vfe-vdpa/fd_budget.h"
#include "app/vfe-vdpa/registry.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "drivers/vdpa/virtio/vdpa_vf.h"
#include "lib/log/vfe_log.h"
#include "lib/rpc/rpc.h"
#include "lib/sock/vfe_unix_sock.h"
#include "vfe_version.h"

#define BDF_LEN 12   /* DDDD:BB:DD.F */

void vhostd_usage(FILE *f)
{
    fprintf(f,
"Usage: vfe-vhostd [options]\n"
"\n"
"vDPA acceleration service for virtio-net VFs: serves one vhost-user socket per\n"
"provisioned VF and programs the VF to move packets straight into guest memory.\n"
"Runs in the foreground, logs to stderr with syslog priority prefixes and tells\n"
"systemd (Type=notify) it is ready once the RPC socket accepts.\n"
"\n"
"  --pci-root DIR        sysfs-shaped device tree (default /sys/bus/pci/devices);\n"
"                        a function whose directory holds vfio-user.sock (vfe-dpu-sim)\n"
"                        is reached over vfio-user, any other through kernel VFIO\n"
"  --rpc PATH            JSON-RPC 2.0 unix socket (default /run/vfe-vhostd/vhostd.sock),\n"
"                        mode 0660; root and the socket's group may call it\n"
"  --client              connect to QEMU's vhost-user sockets (QEMU server=on) instead\n"
"                        of listening; reconnects with back-off when QEMU restarts\n"
"  --iface PREFIX        default vhost-user socket path prefix; a VF added without -v\n"
"                        gets PREFIX<bdf> (default /tmp/vf-)\n"
"  --no-host-notifiers   never offer QEMU the VF's doorbell pages (guest kicks then go\n"
"                        through QEMU's kick eventfd)\n"
"  --socket-group NAME   group of the vhost-user sockets, so a QEMU in that group can\n"
"                        connect; sockets are mode 0660\n"
"  --rpc-group NAME      group of the RPC socket (mode 0660), for operators allowed to\n"
"                        run vhostmgmt without root; default: the daemon's own group\n"
"  --compat-tcp [ADDR:]PORT\n"
"                        also serve the peer project's tools (Mellanox dpdk-vhost-vfe\n"
"                        vhostmgmt, port 12190) on TCP, in their formats: methods\n"
"                        version, mgmtpf and vf only (docs/rpc.md).  ADDR must be a\n"
"                        loopback address (127.0.0.0/8, default 127.0.0.1), others\n"
"                        are refused.  Who may call is checked as on the RPC socket\n"
"                        (root, the daemon's user, members of its group): the owner\n"
"                        of the client's socket is asked of the kernel.  Off by\n"
"                        default\n"
"  --state-dir DIR       keep the provisioning (PFs, VFs, socket paths, VM ids) in\n"
"                        DIR/provisioning.json and apply it again at start (default\n"
"                        /var/lib/vfe-vhostd, created 0700); '' turns it off\n"
"  --no-state            do not read or write any provisioning state\n"
"  --ha PATH             use the vfe-vhostd-ha process on PATH (systemd unit: on,\n"
"                        /run/vfe-vhostd/ha.sock): every device and session is\n"
"                        deposited with it, a restarted daemon takes them over\n"
"                        without a reset, and SIGTERM hands over instead of\n"
"                        stopping the devices (docs/ha.md)\n"
"  --dirty-mode M        how a VF's dirty pages reach QEMU's log during migration:\n"
"                        push (the device writes the log), pull (the daemon reads\n"
"                        the device's bitmap every 50 ms and merges it), software\n"
"                        (the device tracks nothing: the daemon walks the rings\n"
"                        in guest memory every 1 ms and marks every buffer the\n"
"                        device may write; split rings only) or auto (default:\n"
"                        push, else pull, else software)\n"
"  --vfio-dir DIR        where kernel VFIO's group nodes are (default /dev/vfio)\n"
"  --log-level L         err, warning, notice, info (default) or debug\n"
"  -h, --help            this text\n"
"  --version             print the version (one line) and exit\n"
"\n"
"One daemon per RPC path: PATH.lock is held for the daemon's life and a second\n"
"vfe-vhostd on the same --rpc refuses to start.  vhost-user sockets are never\n"
"created over a socket another process listens on, nor over a file that is not\n"
"a socket; with --client they are QEMU's and are neither created nor removed.\n"
"\n"
"Limits: %d PFs, %d VFs per PF (virtfn0..virtfn%d), %d VFs in all.\n"
"Each VF holds file descriptors (%d without a guest, about %d with one): the\n"
"soft RLIMIT_NOFILE is raised to the hard one at start and the number of VFs it\n"
"allows is logged.  stats and vf -l answer in pages (offset, limit; docs/rpc.md).\n",
            VHOSTD_MAX_PFS, VHOSTD_MAX_VFS, VHOSTD_MAX_VFS - 1, VHOSTD_MAX_MANAGED_VFS, VHOSTD_FDS_PER_IDLE_VF,
            VHOSTD_FDS_PER_ACTIVE_VF);
}

static int check_options(struct vhostd_options *o)
{
    struct stat st;
    int e = stat(o->pci_root, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (e) {
        fprintf(stderr, "vfe-vhostd: --pci-root %s: %s (the PCI device tree must exist)\n", o->pci_root,
                strerror(e));
        return -1;
    }
    if (strlen(o->iface_prefix) + BDF_LEN > VFE_SUN_PATH_MAX) {
        fprintf(stderr, "vfe-vhostd: --iface %s: with a BDF the socket path would exceed %zu characters\n",
                o->iface_prefix, (size_t)VFE_SUN_PATH_MAX);
        return -1;
    }
    if (strlen(o->rpc_path) > VFE_SUN_PATH_MAX) {
        fprintf(stderr, "vfe-vhostd: --rpc %s: longer than %zu characters\n", o->rpc_path,
                (size_t)VFE_SUN_PATH_MAX);
        return -1;
    }
    if (o->ha_path && strlen(o->ha_path) > VFE_SUN_PATH_MAX) {
        fprintf(stderr, "vfe-vhostd: --ha %s: longer than %zu characters\n", o->ha_path, (size_t)VFE_SUN_PATH_MAX);
        return -1;
    }
    if (o->state_dir && o->state_dir[0] != '/') {
        fprintf(stderr, "vfe-vhostd: --state-dir %s: must be an absolute path\n", o->state_dir);
        return -1;
    }
    struct sockaddr_in sin;
    int rc = o->compat_tcp ? rpc_tcp_spec_parse(o->compat_tcp, &sin) : 0;
    if (rc < 0) {
        fprintf(stderr, "vfe-vhostd: --compat-tcp %s: %s\n", o->compat_tcp,
                rc == -EADDRNOTAVAIL ? "not a loopback address; callers can be identified only on "
                                       "loopback, so only 127.0.0.0/8 is accepted"
                                     : "expected [ADDR:]PORT with an IPv4 ADDR and PORT 1-65535");
        return -1;
    }
    if (o->socket_group) {
        if (vfe_group_id(o->socket_group, &o->socket_gid) < 0) {
            fprintf(stderr, "vfe-vhostd: --socket-group %s: no such group\n", o->socket_group);
            return -1;
        }
        o->socket_group_set = true;
    }
    if (o->rpc_group) {
        if (vfe_group_id(o->rpc_group, &o->rpc_gid) < 0) {
            fprintf(stderr, "vfe-vhostd: --rpc-group %s: no such group\n", o->rpc_group);
            return -1;
        }
        o->rpc_group_set = true;
    }
    return 0;
}

int vhostd_parse_options(struct vhostd_options *o, int argc, char **argv)
{
    enum { O_ROOT = 256, O_RPC, O_CLIENT, O_IFACE, O_TCP, O_LOG, O_GROUP, O_NO_NOTIFIERS, O_STATE, O_NO_STATE, O_HA, O_DIRTY, O_VFIO, O_VERSION, O_RPC_GROUP };
    static const struct option opts[] = {
        {"pci-root", required_argument, NULL, O_ROOT}, {"rpc", required_argument, NULL, O_RPC},
        {"client", no_argument, NULL, O_CLIENT},       {"iface", required_argument, NULL, O_IFACE},
        {"compat-tcp", required_argument, NULL, O_TCP}, {"log-level", required_argument, NULL, O_LOG},
        {"socket-group", required_argument, NULL, O_GROUP}, {"rpc-group", required_argument, NULL, O_RPC_GROUP}, {"no-host-notifiers", no_argument, NULL, O_NO_NOTIFIERS},
        {"state-dir", required_argument, NULL, O_STATE}, {"no-state", no_argument, NULL, O_NO_STATE},
        {"ha", required_argument, NULL, O_HA},          {"dirty-mode", required_argument, NULL, O_DIRTY},
        {"vfio-dir", required_argument, NULL, O_VFIO},
        {"help", no_argument, NULL, 'h'},               {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->pci_root = "/sys/bus/pci/devices";
    o->rpc_path = "/run/vfe-vhostd/vhostd.sock";
    o->iface_prefix = "/tmp/vf-";
    o->log_level = LOG_INFO;
    o->state_dir = "/var/lib/vfe-vhostd";
    o->vfio_dir = "/dev/vfio";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_ROOT: o->pci_root = optarg; break;
        case O_RPC: o->rpc_path = optarg; break;
        case O_CLIENT: o->client = true; break;
        case O_NO_NOTIFIERS: o->no_host_notifiers = true; break;
        case O_IFACE: o->iface_prefix = optarg; break;
        case O_TCP: o->compat_tcp = optarg; break;
        case O_GROUP: o->socket_group = optarg; break;
        case O_RPC_GROUP: o->rpc_group = optarg; break;
        case O_STATE: o->state_dir = *optarg ? optarg : NULL; break;
        case O_NO_STATE: o->state_dir = NULL; break;
        case O_VFIO: o->vfio_dir = optarg; break;
        case O_HA: o->ha_path = *optarg ? optarg : NULL; break;
        case O_DIRTY:
            if (!strcmp(optarg, "auto"))
                o->dirty_mode = VDPA_DIRTY_AUTO;
            else if (!strcmp(optarg, "push"))
                o->dirty_mode = VDPA_DIRTY_PUSH;
            else if (!strcmp(optarg, "pull"))
                o->dirty_mode = VDPA_DIRTY_PULL;
            else if (!strcmp(optarg, "software"))
                o->dirty_mode = VDPA_DIRTY_SOFTWARE;
            else {
                fprintf(stderr, "vfe-vhostd: --dirty-mode '%s': push, pull, software or auto\n", optarg);
                return -1;
            }
            break;
        case O_LOG:
            if ((o->log_level = vfe_log_parse_level(optarg)) < 0) {
                fprintf(stderr, "vfe-vhostd: --log-level '%s': err, warning, notice, info or debug\n", optarg);
                return -1;
            }
            break;
        case 'h': vhostd_usage(stdout); return 1;
        case O_VERSION: printf("vfe-vhostd (vfe) %s\n", VFE_VERSION); return 1;
        default:
            fprintf(stderr, "vfe-vhostd: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vfe-vhostd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!*o->pci_root || !*o->rpc_path || !*o->iface_prefix || !*o->vfio_dir) {
        fprintf(stderr, "vfe-vhostd: empty path argument\n");
        return -1;
    }
    int rc = check_options(o);
    if (rc == 0) {   /* every VF's log start reads it */
        vdpa_vf_set_default_dirty_mode((enum vdpa_dirty_mode)o->dirty_mode);
        vfe_vfio_kernel_set_dir(o->vfio_dir);
    }
    return rc;
}
