/* vfe-vhostd: the daemon's parts, owned by main(). */
#ifndef VFE_VHOSTD_H
#define VFE_VHOSTD_H

#include <ev.h>

#include "app/vfe-vdpa/ha.h"
#include "app/vfe-vdpa/options.h"
#include "app/vfe-vdpa/provision.h"
#include "app/vfe-vdpa/registry.h"
#include "lib/rpc/rpc.h"

struct vhostd {
    struct ev_loop *loop;
    struct vhostd_options opt;
    struct rpc_server *rpc;
    struct vhostd_registry reg;    /* every PF and VF */
    struct vhostd_prov prov;       /* the persisted provisioning, applied to reg */
    int lock_fd;                   /* flock on <rpc>.lock for the daemon's life: one daemon per RPC path */
    double started_at;
    struct vhostd_ha ha;           /* used when opt.ha_path */
    bool upgrade;                  /* vhostmgmt upgrade: hand over, then exec the binary on disk */
    ev_timer upgrade_t;
    char exe[4096];                /* that binary (resolved at start) */
    char **argv;
    struct vhostd_batch *batches;  /* running vf_batch calls (vf_batch.h owns them) */
};

/* Register the JSON-RPC methods. */
int vhostd_rpc_register(struct vhostd *d);
/* The RPC error code of a registry/operator -errno (docs/rpc.md). */
int vhostd_rpc_code(int err);
/* A VF as `vf -a` answers it (vf, pf, socket_file, vm_uuid, mode). */
json_t *vhostd_rpc_vf_json(const struct vhostd_vf *vf);

#endif
