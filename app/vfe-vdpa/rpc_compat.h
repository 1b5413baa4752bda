/*
 * The peer project's control interface (Mellanox/dpdk-vhost-vfe's vhostmgmt),
 * served on the --compat-tcp listener only: the methods version, mgmtpf and
 * vf with the peer's parameters and reply formats (docs/rpc.md, "Peer
 * compatibility").  Every answer is a JSON-RPC result carrying errno/errstr:
 * 0/"Success", the peer's -10xx codes for its error cases, and -errno with
 * strerror's text for the rest (the peer does the same for system errors).
 *
 * The unix socket keeps vfe's own methods and replies (rpc_methods.c); both
 * go to the same registry and provisioning state.
 */
#ifndef VFE_VHOSTD_RPC_COMPAT_H
#define VFE_VHOSTD_RPC_COMPAT_H

#include <jansson.h>
#include <stdbool.h>

#include "lib/rpc/rpc.h"

struct vhostd;
struct vhostd_vf;

/* Register version/mgmtpf/vf on the TCP listener (rpc_register_tcp). */
int vhostd_compat_register(struct vhostd *d);

/* ---- rpc_compat_bdf.c ----
 * A PCI address as the peer's tools write it: DDDD:BB:DD.F or BB:DD.F (domain
 * 0000), hex digits in either case, device 00-1f, function 0-7.  out gets the
 * canonical lower-case DDDD:BB:DD.F.  0, or -EINVAL (anything else: signs,
 * spaces, missing or extra digits). */
#define VHOSTD_BDF_LEN 13   /* with the NUL */
int vhostd_bdf_normalise(const char *in, char out[VHOSTD_BDF_LEN]);

/* ---- rpc_compat_codes.c ---- */
enum compat_code {
    COMPAT_OK = 0,
    COMPAT_NO_PF = -1001,             /* "PF device not found" */
    COMPAT_NO_VF = -1003,             /* "VF device not found" */
    COMPAT_LIMIT = -1005,             /* "Number exceed limit" */
    COMPAT_PF_EXISTS = -1008,         /* "PF device already add" */
    COMPAT_PROBE_FAIL = -1009,        /* "Device probe fail" */
    COMPAT_PF_FEATURES = -1011,       /* "PF device feature does not meet requirements" */
    COMPAT_PF_HAS_VFS = -1013,        /* "Please remove all VF devices before remove PF" */
    COMPAT_VF_EXISTS = -1014,         /* "VF device already add" */
    COMPAT_SOCK_ACCESS = -1030,       /* "Can't access vhost socket path" */
    COMPAT_SOCK_EXISTS = -1038,       /* "Vhost socket file already exists" */
};
/* What was asked, for the errno -> code translation. */
enum compat_op { COMPAT_OP_PF_ADD, COMPAT_OP_PF_REMOVE, COMPAT_OP_VF_ADD, COMPAT_OP_VF_REMOVE, COMPAT_OP_QUERY };
/* The peer's code for vfe's err (-errno) in op: a -10xx code where the peer
 * has one for that case, else err itself. */
int compat_code(enum compat_op op, int err);
/* The peer's text for a code (-10xx), strerror for -errno, "Success" for 0. */
const char *compat_errstr(int code);
/* Add errno/errstr to obj (a new object if NULL) and answer the call with it. */
void compat_answer(struct rpc_call *c, json_t *obj, int code);
/* The peer's answer to parameters it cannot use: {"Error": text, errno -22, errstr}. */
void compat_bad_params(struct rpc_call *c, const char *what, const char *why);

/* ---- rpc_compat_device.c ---- */
struct vhostd_state_vf;
/* {vf, probed, msix_num, queue_num, queue_size, device_feature, mtu, mac, vm_uuid, socket_file, configured}. */
json_t *compat_vf_device(struct vhostd_vf *vf);
/* A VF in the state file not brought up yet: {vf, probed:false, vm_uuid, socket_file}. */
json_t *compat_pending_device(const struct vhostd_state_vf *v);

/* ---- rpc_compat_debug.c ---- */
/* vf {debug:true, vfdev, test_operation, test_mode|size_mode}. */
int compat_vf_debug(struct vhostd *d, const char *bdf, json_t *params, struct rpc_call *c);

/* ---- rpc_compat.c, for the debug operations ---- */
/* A BDF param normalised into out, or the peer's bad-params answer given. */
bool compat_bdf_param(json_t *params, const char *key, const char *what, char out[VHOSTD_BDF_LEN],
                      struct rpc_call *c);

#endif
