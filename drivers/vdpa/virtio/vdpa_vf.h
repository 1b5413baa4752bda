/*
 * The device half of vDPA for one virtio-net VF: everything vfe does to the VF
 * so that it moves packets straight into guest memory, driven by the vhost-user
 * session (vdpa_session.c) but independent of it.
 *
 *   memory   guest regions DMA-mapped at IOVA = guest physical address (diffed)
 *   kick     the ring's kick eventfd becomes a device ioeventfd on its doorbell
 *   call     the ring's call eventfd triggers MSI-X vector q+1
 *   start    queues programmed through the PF admin queue: freeze, restore the
 *            state (features, rings, indices), run
 *   stop     quiesce, freeze, save: the indices come back from the device
 *   log      dirty tracking into QEMU's log bitmap: push (the device
 *            writes the log), pull (vfe reads the device's bitmap every
 *            50 ms and ORs it in; a final read when the device stops) or
 *            software (the device tracks nothing: vfe walks the rings in
 *            guest memory every 1 ms and marks what the device may write;
 *            a complete pass when the device stops)
 *
 * Long operations are asynchronous (admin commands); the callback runs once,
 * later, never from inside the call.  Single-threaded on the caller's loop.
 *
 * Device calls on the loop do not wait for the device (vdpa_vf_posted.c):
 * from the VF's first memory/kick/call/counters call on, its transport posts
 * its writes (vfe_transport.h) and the VF drains the replies from the loop.
 * A start first waits, asynchronously and at most the transport timeout,
 * until the device acknowledged everything posted to it (maps, vectors,
 * ioeventfds); a device that refused one, or did not answer, fails the start
 * (-errno / -ETIMEDOUT through the callback, logged).
 */
#ifndef VDPA_VF_H
#define VDPA_VF_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "drivers/bus/vfio/vfe_pf_iova.h"
#include "drivers/bus/vfio/vfe_transport.h"
#include "drivers/common/virtio/vfe_virtio_pci.h"
#include "drivers/common/virtio_mi/vfe_mig.h"
#include "drivers/vdpa/virtio/vdpa_swlog.h"

#define VDPA_MAX_RINGS 64
#define VDPA_MAX_REGIONS 64

struct vdpa_region {
    uint64_t gpa, size;
    int fd;                 /* borrowed: the caller keeps it open while mapped */
    uint64_t fd_offset;
};

struct vdpa_ring {
    bool ready;             /* configured and enabled by the front-end */
    uint16_t size;
    uint64_t desc, avail, used;   /* guest physical addresses */
    uint16_t base;          /* next avail index = used index at start */
};

enum vdpa_vf_state { VDPA_VF_IDLE, VDPA_VF_STARTING, VDPA_VF_RUNNING, VDPA_VF_STOPPING, VDPA_VF_STOPPED };

struct vdpa_vf;

typedef void (*vdpa_done_cb)(void *ctx, int err);
/* last_avail[q] for every ring the device saved (n entries). */
typedef void (*vdpa_stop_cb)(void *ctx, int err, const uint16_t *last_avail, unsigned n);

/* The PF: its admin interface and its IOVA space (the dirty log is mapped
 * there, in the VF's window, where the device writes it). */
struct vdpa_pf_ref {
    struct vfe_mig *mig;
    struct vfe_pf_iova *iova;
};

/* vf_num: 1..NumVFs; t: the VF's transport.  Neither pf nor t is owned.
 * pf NULL or pf->mig NULL: direct mode (vdpa_vf_direct.c), the VF is driven
 * through its own common configuration, vf_num is unused, dirty tracking is
 * software only and announce is refused (-EOPNOTSUPP).
 * dma_domain: the VM the VF serves (VFs of one VM share their DMA maps);
 * NULL or "" for a domain of its own.  NULL with errno on failure. */
struct vdpa_vf *vdpa_vf_open(struct ev_loop *loop, const struct vdpa_pf_ref *pf, uint16_t vf_num,
                             struct vfe_transport *t, const char *dma_domain);
/* Bring-up in two halves, for a caller that keeps the loop free while the
 * device answers (app/vfe-vdpa/vf.c runs the probe on a devq worker):
 * vdpa_vf_probe: only device calls (virtio capabilities, features, MAC,
 *   queue pairs, reset, bus master, ring 0's size and the MTU for
 *   vdpa_vf_facts); no loop, no shared state: safe on any one thread that
 *   has t to itself.  NULL with *err (-errno of the transport) and *step
 *   (if not NULL) naming what failed ("device features", "reset", ...).
 * vdpa_vf_attach: on the loop: joins the DMA domain and binds the VF to
 *   loop.  0, or -errno (the VF is left probed: discard it).
 * vdpa_vf_discard: frees a probed VF that was not attached, without any
 *   device call (t stays the caller's).
 * vdpa_vf_open is probe + attach in one call. */
struct vdpa_vf *vdpa_vf_probe(const struct vdpa_pf_ref *pf, uint16_t vf_num, struct vfe_transport *t, int *err,
                              const char **step);
int vdpa_vf_attach(struct vdpa_vf *v, struct ev_loop *loop, const char *dma_domain);
void vdpa_vf_discard(struct vdpa_vf *v);
/* The page of ring q's doorbell that QEMU may map into the guest (vhost-user
 * host notifier): fd (owned by the transport) and its offset.  -ENOENT when
 * the device's doorbells cannot be mapped a page per queue. */
#define VDPA_NOTIFIER_SIZE 4096u
int vdpa_vf_host_notifier(struct vdpa_vf *v, uint16_t q, int *fd, uint64_t *offset);
/* The domain's members (VFs) and maps, for stats. */
void vdpa_vf_dma_domain(const struct vdpa_vf *v, unsigned *members, unsigned *maps);
/* Stops nothing: the caller stops first.  Unmaps, detaches fds, frees. */
void vdpa_vf_close(struct vdpa_vf *v);

uint64_t vdpa_vf_device_features(const struct vdpa_vf *v);
uint16_t vdpa_vf_max_pairs(const struct vdpa_vf *v);
uint16_t vdpa_vf_num_queues(const struct vdpa_vf *v);
/* What the device says of itself, for listings: its MSI-X table size, the
 * largest size of ring 0, its MTU (1500 without VIRTIO_NET_F_MTU).  Read
 * by the probe and kept with the VF: a call is a copy, so listing n VFs
 * costs n, not n x n, and no device call.
 * A field the device did not answer reads 0 (MTU 1500), and nothing is
 * kept then: the device is asked again at the next call, without waiting
 * (an asynchronous read whose answer the call after it shows; an adopted
 * VF, which no probe read, is asked the same way). */
struct vdpa_vf_facts {
    unsigned msix, queue_size, mtu;
};
void vdpa_vf_facts(struct vdpa_vf *v, struct vdpa_vf_facts *f);
void vdpa_vf_mac(const struct vdpa_vf *v, uint8_t mac[6]);
enum vdpa_vf_state vdpa_vf_state(const struct vdpa_vf *v);
/* The device's packet counters (VFE_CTR_*), without waiting (no synchronous
 * form: the loop never waits for a device): cb(ctx, err, ctr) runs once,
 * later, from the loop (ctr NULL when err), unless vdpa_vf_counters_cancel(v, ctx) or
 * vdpa_vf_close comes first.  No bound here: the caller bounds its wait
 * and cancels.  -ENOTSUP (no counters window), -ENOBUFS (the device stopped
 * reading), -ENOMEM, -ENOTCONN. */
typedef void (*vdpa_counters_cb)(void *ctx, int err, const uint64_t *ctr);
int vdpa_vf_counters_async(struct vdpa_vf *v, vdpa_counters_cb cb, void *ctx);
void vdpa_vf_counters_cancel(struct vdpa_vf *v, void *ctx);
const char *vdpa_vf_state_name(enum vdpa_vf_state s);

/* Replace the DMA maps by these regions (only the differences are applied). */
int vdpa_vf_set_mem(struct vdpa_vf *v, const struct vdpa_region *r, unsigned n);
/* After vdpa_vf_set_mem: it removed maps the device has not acknowledged
 * yet (the front-end must not reuse that memory before). */
bool vdpa_vf_unmaps_pending(struct vdpa_vf *v);
/* cb(ctx, err) once, later, from the loop, when the device acknowledged
 * everything posted to it so far (0), refused something (-errno; it stays
 * latched for the next start) or after the transport timeout (-ETIMEDOUT).
 * One at a time (-EBUSY); vdpa_vf_sync_cancel and vdpa_vf_close drop it. */
int vdpa_vf_sync(struct vdpa_vf *v, vdpa_done_cb cb, void *ctx);
void vdpa_vf_sync_cancel(struct vdpa_vf *v);
/* fd -1 detaches. */
int vdpa_vf_set_kick(struct vdpa_vf *v, uint16_t q, int fd);
int vdpa_vf_set_call(struct vdpa_vf *v, uint16_t q, int fd);

/* Program and run the rings (features as the front-end negotiated them). */
/* "direct" or "admin" (through the PF's admin queue). */
const char *vdpa_vf_mode(const struct vdpa_vf *v);
int vdpa_vf_start(struct vdpa_vf *v, uint64_t features, const struct vdpa_ring *rings, unsigned nrings,
                  vdpa_done_cb cb, void *ctx);
/* Freeze and save; the VF does no DMA afterwards. */
int vdpa_vf_stop(struct vdpa_vf *v, vdpa_stop_cb cb, void *ctx);

/* After a migration: the device sends a broadcast RARP from the VF with
 * source mac (vfe_mig_announce), independent of the one operation at a time
 * above.  Only while the VF runs (-EBUSY otherwise).  cb runs once, later,
 * with ctx (which must stay valid until then; it need not be the VF's, and
 * the VF may be closed meanwhile).  -EOPNOTSUPP: the device's dialect
 * cannot announce; -EINVAL: a multicast or zero mac. */
int vdpa_vf_announce(struct vdpa_vf *v, const uint8_t mac[6], vdpa_done_cb cb, void *ctx);

/* Dirty tracking into the front-end's log: log_fd + offset, log_size bytes,
 * one bit per 4 KiB guest page. */
int vdpa_vf_log_start(struct vdpa_vf *v, int log_fd, uint64_t log_offset, uint64_t log_size, vdpa_done_cb cb,
                      void *ctx);
int vdpa_vf_log_stop(struct vdpa_vf *v, vdpa_done_cb cb, void *ctx);
/* Which tracking mode vdpa_vf_log_start uses: auto tries push and, if the
 * device answers "unsupported", pull, and if it refuses that too, software.
 * Read at every log start.
 * Pull and software modes map the log themselves (log_fd is only used during
 * the call); a VF closed while it pulls lets go of the log at once (a report
 * still out completes into nothing).  Software mode needs the guest's memory
 * and rings (vdpa_vf_set_guest) and split rings: without them it refuses
 * (-EOPNOTSUPP, logged). */
enum vdpa_dirty_mode { VDPA_DIRTY_AUTO, VDPA_DIRTY_PUSH, VDPA_DIRTY_PULL, VDPA_DIRTY_SOFTWARE };
void vdpa_vf_set_default_dirty_mode(enum vdpa_dirty_mode m);
const char *vdpa_dirty_mode_name(enum vdpa_dirty_mode m);
/* HA: a VF adopted while it tracks in pull mode gets the front-end's log
 * again (the session's, fd borrowed), marks every page dirty (a report in
 * flight when the predecessor died was cleared on the device, never merged)
 * and polls on.  In software mode (set the guest first) it maps the log,
 * marks every page dirty (the walker's records died with the predecessor)
 * and walks on.  0 (also when there is nothing to do) or -errno. */
int vdpa_vf_log_adopt(struct vdpa_vf *v, int log_fd, uint64_t log_offset, uint64_t log_size);
/* "push", "pull", "software", or NULL when nothing tracks. */
const char *vdpa_vf_dirty_tracking(const struct vdpa_vf *v);
/* The guest's memory and rings for software tracking: the session's
 * accessors (copied; g->ctx must stay valid until vdpa_vf_set_guest(v, NULL),
 * which the session calls before it goes).  Passes with no guest do nothing. */
void vdpa_vf_set_guest(struct vdpa_vf *v, const struct vdpa_swlog_guest *g);
/* Software tracking's counters: 0, or -ENOENT when it does not run. */
int vdpa_vf_swlog_stats(const struct vdpa_vf *v, struct vdpa_swlog_stats *st);

/* ---- HA (docs/ha.md): the VF survives a daemon restart ----
 * vdpa_vf_set_observer: fn(ctx) runs, synchronously, whenever an operation
 * is about to submit an admin command (the caller deposits then, so a
 * successor knows which command may be in the device).
 * vdpa_vf_export: the VF's state (maps, attached eventfds, run state, saved
 * indices, the step in flight) as a blob of at most VDPA_VF_SNAPSHOT_MAX.
 * vdpa_vf_adopt: a VF from that blob over an adopted transport t, without
 * any device call but reads: no reset, no map, the DMA maps recorded against
 * the front-end's regions (each map must have its region: same range and
 * offset), the DMA domain joined as adopted.  vp_read/st_read: what
 * vfe_vpci_adopt() read from t before (on a worker thread, so the loop does
 * not wait for those reads); NULL: read here.  NULL with *err: -EINVAL/-EPROTO
 * (blob, or device and blob disagree), -errno.
 * vdpa_vf_resume: resubmit the admin step a crash interrupted (each step is
 * idempotent on the device: a mode it is in already, a restore on a frozen
 * VF, a save, tracking into the same window) and finish the operation as
 * the original call would: done (start, log) or stopped (stop) runs once,
 * later.  A start needs the same rings as the original call.  A pull-mode
 * tracking start is not resumed (-EINVAL: the caller starts tracking again;
 * the device keeps the bits of a same-range restart).  -EALREADY:
 * nothing was in flight; -EINVAL: cannot be resumed (start it again).
 * vdpa_vf_abandon: forget the VF as a crash would (no device call). */
#define VDPA_VF_SNAPSHOT_MAX 2048u
void vdpa_vf_set_observer(struct vdpa_vf *v, void (*fn)(void *ctx), void *ctx);
int vdpa_vf_export(const struct vdpa_vf *v, void *buf, size_t cap, size_t *len);
struct vdpa_vf *vdpa_vf_adopt(struct ev_loop *loop, const struct vdpa_pf_ref *pf, struct vfe_transport *t,
                              const char *dma_domain, const void *blob, size_t len, const struct vdpa_region *regions,
                              unsigned nregions, const struct vfe_virtio_pci *vp_read,
                              const struct vfe_vpci_state *st_read, int *err);
int vdpa_vf_resume(struct vdpa_vf *v, uint64_t features, const struct vdpa_ring *rings, unsigned nrings,
                   vdpa_done_cb done, vdpa_stop_cb stopped, void *ctx);
bool vdpa_vf_step_pending(const struct vdpa_vf *v);
/* The indices of the last stop (idx: VDPA_MAX_RINGS entries); their count. */
unsigned vdpa_vf_saved(const struct vdpa_vf *v, uint16_t *idx);
/* How often this VF was taken over by a restarted daemon (0: never). */
unsigned vdpa_vf_resumed(const struct vdpa_vf *v);
void vdpa_vf_abandon(struct vdpa_vf *v);

#endif
