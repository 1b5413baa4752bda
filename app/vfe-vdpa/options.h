/* Command line of vfe-vhostd. */
#ifndef VFE_VHOSTD_OPTIONS_H
#define VFE_VHOSTD_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

struct vhostd_options {
    const char *pci_root;      /* --pci-root, default /sys/bus/pci/devices */
    const char *rpc_path;      /* --rpc, default /run/vfe-vhostd/vhostd.sock */
    bool client;               /* --client: vhost-user client mode for every VF */
    bool no_host_notifiers;    /* --no-host-notifiers: guest kicks stay on the kick eventfd */
    const char *iface_prefix;  /* --iface: default socket path prefix */
    const char *compat_tcp;    /* --compat-tcp [ADDR:]PORT, NULL = off */
    const char *socket_group;  /* --socket-group NAME, NULL = the daemon's own group */
    bool socket_group_set;
    gid_t socket_gid;          /* socket_group resolved */
    const char *rpc_group;     /* --rpc-group NAME (the RPC socket's), NULL = the daemon's own group */
    bool rpc_group_set;
    gid_t rpc_gid;
    int log_level;             /* --log-level */
    const char *state_dir;     /* --state-dir, default /var/lib/vfe-vhostd; NULL = --no-state */
    const char *ha_path;       /* --ha PATH: vfe-vhostd-ha's socket; NULL = no HA */
    int dirty_mode;            /* --dirty-mode: enum vdpa_dirty_mode, default auto */
    const char *vfio_dir;      /* --vfio-dir, default /dev/vfio (kernel VFIO group nodes) */
};

/* 0: run; 1: exit 0 (help printed); -1: exit 2 (message printed).  Also
 * checks what can be checked before starting: --pci-root is a directory,
 * --socket-group exists, --iface leaves room for a BDF in a socket path. */
int vhostd_parse_options(struct vhostd_options *o, int argc, char **argv);
void vhostd_usage(FILE *f);

#endif
