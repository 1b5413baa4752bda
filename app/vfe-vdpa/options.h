/* Command line of vfe-vhostd. */
#ifndef VFE_VHOSTD_OPTIONS_H
#define VFE_VHOSTD_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

struct vhostd_options {
    const char *pci_root;      /* --pci-root, default /sys/bus/pci/devices */
    const char *rpc_path;      /* --rpc, default /run/vfe-vhostd/vhostd.sock */
    bool client;               /* --client: vhost-user client mode for every VF */
    const char *iface_prefix;  /* --iface: default socket path prefix */
    const char *compat_tcp;    /* --compat-tcp [ADDR:]PORT, NULL = off */
    int log_level;             /* --log-level */
};

/* 0: run; 1: exit 0 (help printed); -1: exit 2 (message printed). */
int vhostd_parse_options(struct vhostd_options *o, int argc, char **argv);
void vhostd_usage(FILE *f);

#endif
