/*
 * The PF's own IOVA space and its one owner.
 *
 * A PF does DMA only into memory vfe gives it: its admin queue (rings and
 * command slots) and the dirty logs it writes for its VFs.  No guest memory is
 * mapped there (a VM's memory is in the VFs' DMA domains, vfe_dma_domain.h),
 * so the space is carved freely, by this module alone: nothing else maps or
 * unmaps in the PF's transport.  The PF's space is its own: its own DMA table
 * on vfio-user, its own container on kernel VFIO (never shared with a VM's).
 *
 * Layout rule:
 *   [0, base)       never handed out: a zero or small IOVA from a bug hits nothing
 *   [base, end)     windows, first fit from base; each window starts on a page,
 *                   is a whole number of pages and is followed by one unmapped
 *                   guard page, so windows never touch, let alone overlap
 * Default space: [VFE_PF_IOVA_BASE, VFE_PF_IOVA_END) = [4 GiB, 512 GiB): above
 * the 32-bit MSI window, inside the 39 address bits every IOMMU offers.
 *
 * Users: each window has exactly one user and each user at most one window:
 * VFE_PF_IOVA_ADMIN (the admin queue, vfe_admin_open) or a VF number 1..
 * VFE_PF_IOVA_MAX_VF (that VF's dirty log, vdpa_vf_log_start).  The user owns
 * its window from alloc to release and the memory mapped there; the space
 * owns the device mapping and removes it on release.
 *
 * Ownership: whoever opens the PF (app/vfe-vdpa/pf.c, tests/lib/test_pf.c)
 * creates the space after the transport and destroys it after every user has
 * released (admin queue closed, VFs closed), before closing the transport.
 * The transport is borrowed.  Single-threaded.  Timing: on a PF whose writes
 * are posted (its admin queue runs, vfe_transport.h posted mode) the loop
 * never waits: vfe_pf_iova_map_async and vfe_pf_iova_release send and the
 * device's answer comes from the PF's drain (the admin queue's watcher);
 * otherwise (kernel VFIO, a PF not posted yet: admin queue set-up on a devq
 * worker, tests) a map or unmap is answered inside its call.
 */
#ifndef VFE_PF_IOVA_H
#define VFE_PF_IOVA_H

#include <stdint.h>

#include "drivers/bus/vfio/vfe_transport.h"

#define VFE_PF_IOVA_BASE (4ull << 30)
#define VFE_PF_IOVA_END  (512ull << 30)
#define VFE_PF_IOVA_PAGE 4096ull

#define VFE_PF_IOVA_ADMIN  0u        /* the admin queue's window */
#define VFE_PF_IOVA_MAX_VF 0xffffu   /* VF n's dirty-log window is user n */

struct vfe_pf_iova;

/* The default space on the PF's transport t.  NULL with errno (EINVAL, ENOMEM). */
struct vfe_pf_iova *vfe_pf_iova_create(struct vfe_transport *t);
/* Another space [base, end) (tests use a small one): base and end page
 * aligned, base > 0, end > base.  NULL with errno. */
struct vfe_pf_iova *vfe_pf_iova_create_in(struct vfe_transport *t, uint64_t base, uint64_t end);
/* Unmaps what users left mapped (logged: a user that did not release is a
 * bug); answers still outstanding are forgotten (no cb runs). */
void vfe_pf_iova_destroy(struct vfe_pf_iova *s);
/* Free the space without a device call: the maps stay in the device (HA: a
 * successor imports the space, or a reset of the PF drops them). */
void vfe_pf_iova_destroy_quiet(struct vfe_pf_iova *s);

/* Reserve a window of len bytes (rounded up to pages) for `user`; its IOVA in *iova.
 *   -EINVAL  len 0, or user not ADMIN / 1..VFE_PF_IOVA_MAX_VF
 *   -E2BIG   len larger than the whole space
 *   -EEXIST  user holds a window already (release it first)
 *   -ENOSPC  the space has no free gap that large (exhausted)
 *   -ENOMEM */
int vfe_pf_iova_alloc(struct vfe_pf_iova *s, unsigned user, uint64_t len, uint64_t *iova);
/* Map [offset, offset + window length) of fd over user's whole window, for the
 * device to read and write as prot (VFE_DMA_*) says.  Answered inside the
 * call, except on a posted transport: then 0 means sent (a refusal is latched
 * in the transport); the loop uses vfe_pf_iova_map_async.
 *   -ENOENT  user holds no window;  -EBUSY  it is mapped already;  the transport's -errno */
int vfe_pf_iova_map(struct vfe_pf_iova *s, unsigned user, int fd, uint64_t offset, uint32_t prot);

/* The device's answer to a map sent without waiting (from the PF's drain). */
typedef void (*vfe_pf_iova_cb)(void *ctx, int err);
/* vfe_pf_iova_map without waiting (the loop, the PF posted):
 *   1  sent: cb runs exactly once, from a later drain of the PF's transport,
 *      with the device's answer (a refusal leaves the window unmapped and
 *      still user's, logged), unless the user releases or cancels first;
 *   0  the transport answered inside (kernel VFIO, not posted): mapped, cb never runs;
 *   -errno as vfe_pf_iova_map, -EINVAL cb NULL; nothing pending. */
int vfe_pf_iova_map_async(struct vfe_pf_iova *s, unsigned user, int fd, uint64_t offset, uint32_t prot,
                          vfe_pf_iova_cb cb, void *ctx);
/* user's pending map: its cb never runs; the window and its map stay (a VF
 * abandoned to a successor: HA). */
void vfe_pf_iova_cancel(struct vfe_pf_iova *s, unsigned user);
/* Unmap user's window if mapped and free it for reuse; a pending map's cb
 * never runs.  -ENOENT: user holds none.  The user holds nothing any more in
 * every case.  The range is never handed out again while the device may
 * still reach it: on a posted PF the unmap is sent (0) and the range stays
 * reserved until the device acknowledged it; a refused unmap (logged; the
 * transport's -errno when answered inside) keeps it reserved until destroy. */
int vfe_pf_iova_release(struct vfe_pf_iova *s, unsigned user);

/* user's window: 0, or -ENOENT.  mapped may be NULL. */
int vfe_pf_iova_window(const struct vfe_pf_iova *s, unsigned user, uint64_t *iova, uint64_t *len, bool *mapped);
/* Windows held, including reserved ones whose unmap failed or is unanswered. */
unsigned vfe_pf_iova_windows(const struct vfe_pf_iova *s);
/* Counts every window added, mapped or removed: a holder of an exported copy
 * knows it is stale when this moved on. */
uint64_t vfe_pf_iova_changes(const struct vfe_pf_iova *s);

/*
 * HA: the space survives a daemon restart as a blob, the device keeps its maps.
 *
 * vfe_pf_iova_export() writes every window (user, iova, length, mapped, and
 * the reserved ones whose unmap failed) into buf; *len is the blob size, also
 * on -ENOSPC (cap too small) so the caller can size buf.  No device call.
 * -EINVAL: NULL argument.
 *
 * vfe_pf_iova_import() builds a space on the PF's transport t (borrowed, as
 * for create) with exactly those windows and makes no device call: the
 * device still holds the mappings.  The memory behind a mapped window is the
 * user's to adopt (its fd travels with the user's own state).  The blob is
 * external input, checked whole before anything is built: NULL with errno
 *   EPROTO  not a PF IOVA blob (magic), a newer version, length not the one
 *           its window count needs
 *   EINVAL  space bounds not page aligned or empty, a window outside the
 *           space, not page aligned, empty, without room for its guard page,
 *           overlapping or touching the previous one (windows are sorted),
 *           an unknown user or one holding two windows, unknown flag bits,
 *           a reserved window not marked mapped
 *   ENOMEM
 * Every refusal is logged with its reason.
 */
#define VFE_PF_IOVA_BLOB_MAGIC   0x56504641u   /* "AFPV" little endian */
#define VFE_PF_IOVA_BLOB_VERSION 1

int vfe_pf_iova_export(const struct vfe_pf_iova *s, void *buf, size_t cap, size_t *len);
struct vfe_pf_iova *vfe_pf_iova_import(struct vfe_transport *t, const void *buf, size_t len);

#endif
