/*
 * The daemon's registry: every managed PF and VF, with each VF's socket path
 * and VM id.  It owns the struct vhostd_pf and struct vhostd_vf objects (and
 * through them the transports, devices and vhost-user sockets); the RPC layer
 * only translates JSON to and from these calls.
 *
 * State is plain and enumerable: two arrays of slots, each VF's struct
 * vhostd_vf_rec is everything needed to provision it again.
 *
 * A socket path belongs to at most one VF and is never the daemon's RPC
 * socket nor inside the PCI tree; paths are compared in canonical form
 * (sock_path.h), so W/./vf-x and W/vf-x are one path.  In server mode a path
 * somebody listens on, or that is not a socket, is refused (lib/sock); in
 * client mode the socket is QEMU's and is neither created nor removed.
 *
 * Errors are -errno with a sentence in msg:
 *   -EEXIST        already added; socket path taken (by a VF, the RPC socket,
 *                  or a file that is not a socket)
 *   -EADDRINUSE    somebody listens on the socket path
 *   -EINVAL        a bad socket path (directory missing, inside the PCI tree)
 *   -ENAMETOOLONG  the socket path does not fit sun_path
 *   -ENOENT        no such PCI function, not a VF, PF/VF not added
 *   -ENODEV        the VF's PF is not added or not ready
 *   -EBUSY         PF still starting or with VFs; VF being added or removed
 *   -ENOSPC        slot limit (VHOSTD_MAX_PFS PFs, VHOSTD_MAX_MANAGED_VFS VFs)
 *   -ENOMEM        (init) no memory for the lookup index
 *   other          device / transport errors
 * Callbacks run later, from the loop, never inside the call that starts them.
 *
 * A VF is added by a job on the registry's devq (vf.h): from the call until
 * its callback it is "adding": it holds its BDF and socket path (a second
 * add or a removal of it is refused with -EBUSY, "being added"), it counts
 * among its PF's VFs, and find_vf/next_vf do not return it (find_adding,
 * next_adding do).
 */
#ifndef VFE_VHOSTD_REGISTRY_H
#define VFE_VHOSTD_REGISTRY_H

#include <ev.h>
#include <limits.h>

#include "app/vfe-vdpa/options.h"
#include "app/vfe-vdpa/pf.h"
#include "app/vfe-vdpa/registry_index.h"
#include "app/vfe-vdpa/vf.h"

struct vhostd_ha;

/* 16 PFs x VHOSTD_MAX_VFS (1024, pci_tree.h) VFs each */
#define VHOSTD_MAX_PFS 16
#define VHOSTD_MAX_MANAGED_VFS (VHOSTD_MAX_PFS * VHOSTD_MAX_VFS)

struct vhostd_registry {
    struct ev_loop *loop;
    const struct vhostd_options *opt;
    char rpc_path[PATH_MAX];       /* canonical; never a VF's socket */
    char pci_root[PATH_MAX];       /* canonical; no VF socket inside */
    struct vhostd_pf *pfs[VHOSTD_MAX_PFS];
    struct vhostd_vf *vfs[VHOSTD_MAX_MANAGED_VFS];   /* removing ones stay until they are gone */
    struct vhostd_reg_index index;  /* vfs[] by BDF and socket path; a slot is indexed while vfs[slot] is set */
    void (*drained)(void *ctx);
    void *drained_ctx;
    struct vhostd_ha *ha;          /* deposits (ha.h), NULL without --ha */
    struct vfe_devq *devq;         /* owned: device bring-up jobs (VHOSTD_DEVQ_THREADS) */
    unsigned adding;               /* VFs whose bring-up job runs (take-overs included) */
    unsigned adopting_pfs, adopting_vfs;   /* HA take-overs not done yet */
    bool stopping;                 /* drain or close: a VF brought up now is not added */
};

/* Bring-up jobs running at once that are not stuck on a dead device (vfe_devq.h). */
#define VHOSTD_DEVQ_THREADS 8

/* opt must outlive the registry.  The RPC socket's directory must exist. */
int vhostd_reg_init(struct vhostd_registry *r, struct ev_loop *loop, const struct vhostd_options *opt, char *msg,
                    size_t len);
/* Close every PF and any VF left (no callbacks but the adds still running:
 * they wait for their device's current call, then answer -ESHUTDOWN or
 * -ECANCELED, inside this call). */
void vhostd_reg_close(struct vhostd_registry *r);

/* PFs.  add: 0 and done(ctx, pf, err) once the PF is ready (err 0) or failed
 * (it is then gone from the registry; pf is valid during the call only). */
typedef void (*vhostd_pf_added_cb)(void *ctx, const struct vhostd_pf *pf, int err);
int vhostd_reg_add_pf(struct vhostd_registry *r, const char *bdf, vhostd_pf_added_cb done, void *ctx, char *msg,
                      size_t len);
int vhostd_reg_remove_pf(struct vhostd_registry *r, const char *bdf, char *msg, size_t len);
struct vhostd_pf *vhostd_reg_find_pf(const struct vhostd_registry *r, const char *bdf);
/* Iterate: *cursor starts at 0; NULL at the end. */
struct vhostd_pf *vhostd_reg_next_pf(const struct vhostd_registry *r, unsigned *cursor);
/* VFs of pf in the registry (removing ones included). */
unsigned vhostd_reg_pf_vfs_in_use(const struct vhostd_registry *r, const struct vhostd_pf *pf);

/* VFs.  socket NULL or "": the --iface prefix + bdf.  uuid NULL: none.
 * direct: drive it without its PF's admin queue (the PF must not be managed);
 * a function that is not a VF (no physfn link) is always direct.
 * 0: the bring-up runs; done(ctx, bdf, vf, err, msg) follows (done may be
 * NULL): err 0 and the serving vf (already deposited with HA), or -errno and
 * a sentence (vf NULL; the VF is gone from the registry).  <0: refused now
 * with msg. */
typedef void (*vhostd_vf_added_cb)(void *ctx, const char *bdf, struct vhostd_vf *vf, int err, const char *msg);
int vhostd_reg_add_vf_mode(struct vhostd_registry *r, const char *bdf, const char *socket, const char *uuid,
                           bool direct, vhostd_vf_added_cb done, void *ctx, char *msg, size_t len);
static inline int vhostd_reg_add_vf(struct vhostd_registry *r, const char *bdf, const char *socket, const char *uuid,
                                    vhostd_vf_added_cb done, void *ctx, char *msg, size_t len)
{ return vhostd_reg_add_vf_mode(r, bdf, socket, uuid, false, done, ctx, msg, len); }
/* A VF being added (only its rec may be read), and the iteration over them. */
const struct vhostd_vf *vhostd_reg_find_adding(const struct vhostd_registry *r, const char *bdf);
const struct vhostd_vf *vhostd_reg_next_adding(const struct vhostd_registry *r, unsigned *cursor, const char *pf);
/* 0 and done(ctx) once the device is stopped and the VF gone. */
int vhostd_reg_remove_vf(struct vhostd_registry *r, const char *bdf, void (*done)(void *ctx), void *ctx, char *msg,
                         size_t len);
/* Serving VFs only (not being removed). */
struct vhostd_vf *vhostd_reg_find_vf(const struct vhostd_registry *r, const char *bdf);
/* Iterate serving VFs, of pf only if it is not NULL. */
struct vhostd_vf *vhostd_reg_next_vf(const struct vhostd_registry *r, unsigned *cursor, const char *pf);
/* Who uses the canonical socket path: "VF <bdf>", "the RPC socket", or NULL. */
const char *vhostd_reg_socket_user(const struct vhostd_registry *r, const char *canon, char *buf, size_t len);

/* HA take-over, off the loop (pf.h vhostd_pf_adopt_async, vf.h
 * vhostd_vf_adopt_begin/start).  Every fd of the record is taken, whatever
 * the outcome.  A record's section data must stay valid until its done.
 *   adopt_pf_async: the PF's shell (STARTING, adopted) is in the registry at
 *     once: it cannot be added or removed (-EBUSY, "being taken over"), its
 *     VFs cannot be added.  0: done(ctx, bdf, err, msg) follows from the
 *     loop (on failure the PF is gone from the registry and abandoned, after
 *     done returned); <0: refused now (msg).
 *   adopt_vf_hold: the VF's shell, "adopting" (listed by next_adding, held
 *     like an add: -EBUSY to an add or removal), waiting for its PF's
 *     take-over.  0, or <0 refused now (msg; transport fds closed, session
 *     ended).
 *   adopt_vf_start: its PF is READY: the job is queued; done follows (on
 *     failure the shell is gone).  -ENOENT (no waiting shell), -ENODEV (PF
 *     not ready), devq's -errno: the shell still waits.
 *   adopt_vf_cancel: a waiting shell goes (its PF failed: end_session shuts
 *     the session down so the front-end reconnects; the daemon stops: only
 *     this process's copies close). */
struct ha_rec;
typedef void (*vhostd_reg_adopted_cb)(void *ctx, const char *bdf, int err, const char *msg);
int vhostd_reg_adopt_pf_async(struct vhostd_registry *r, const struct ha_rec *rec, const int *fds, unsigned nfds,
                              vhostd_reg_adopted_cb done, void *ctx, char *msg, size_t len);
int vhostd_reg_adopt_vf_hold(struct vhostd_registry *r, const struct ha_rec *rec, const int *fds, unsigned nfds,
                             char *msg, size_t len);
int vhostd_reg_adopt_vf_start(struct vhostd_registry *r, const char *bdf, vhostd_reg_adopted_cb done, void *ctx);
void vhostd_reg_adopt_vf_cancel(struct vhostd_registry *r, const char *bdf, bool end_session);
/* Forget every PF and VF as a crash would: the HA process holds them
 * (hand-over).  The device queue is destroyed first: adds still running
 * end with -ESHUTDOWN, take-overs are abandoned without a reset. */
void vhostd_reg_abandon(struct vhostd_registry *r);

/* Shutdown: remove every VF (a VF being added: once its bring-up ends, and
 * its add fails with -ECANCELED, "not added: the daemon is stopping");
 * drained(ctx) runs once none is left.  The number of VFs still to go (0:
 * drained will not run). */
unsigned vhostd_reg_drain(struct vhostd_registry *r, void (*drained)(void *ctx), void *ctx);

#endif
