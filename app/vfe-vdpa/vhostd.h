/* vfe-vhostd: the registry of managed PFs and VFs. */
#ifndef VFE_VHOSTD_H
#define VFE_VHOSTD_H

#include <ev.h>

#include "app/vfe-vdpa/options.h"
#include "app/vfe-vdpa/pf.h"
#include "drivers/vdpa/virtio/vdpa_session.h"
#include "lib/rpc/rpc.h"

#define VHOSTD_MAX_PFS 16
#define VHOSTD_MAX_MANAGED_VFS 1024

struct vhostd_vf {
    char bdf[16];
    struct vhostd_pf *pf;
    unsigned vf_num;
    char socket[108];
    char uuid[64];
    struct vfe_transport *t;
    struct vdpa_vf *dev;
    struct vdpa_session *session;
    bool removing;
};

struct vhostd {
    struct ev_loop *loop;
    struct vhostd_options opt;
    struct rpc_server *rpc;
    struct vhostd_pf *pfs[VHOSTD_MAX_PFS];
    struct vhostd_vf *vfs[VHOSTD_MAX_MANAGED_VFS];
    double started_at;
};

struct vhostd_pf *vhostd_find_pf(struct vhostd *d, const char *bdf);
struct vhostd_vf *vhostd_find_vf(struct vhostd *d, const char *bdf);
struct vhostd_vf *vhostd_find_socket(struct vhostd *d, const char *path);

/* Register the JSON-RPC methods. */
int vhostd_rpc_register(struct vhostd *d);

/* VF provisioning (vf.c). 0 or -errno with msg filled. */
int vhostd_vf_add(struct vhostd *d, const char *bdf, const char *socket, const char *uuid, char *msg, size_t len);
/* Removal completes asynchronously (device stop); done(ctx) then. */
int vhostd_vf_remove(struct vhostd *d, struct vhostd_vf *vf, void (*done)(void *ctx), void *ctx);

#endif
