/*
 * DMA domains: the IOVA space devices share.  VFs given to one VM (same
 * vm_uuid) join one named domain and see one set of guest-memory maps; a VF
 * without a VM id gets a private domain.
 *
 * Several holders (one per vhost-user session) may map the same region; the
 * domain maps it once and unmaps it when its last holder lets go.  Holders of
 * one VM converge on the same memory table, but not at the same moment: a
 * map that overlaps a different existing one replaces it (the newer table
 * wins), and the older holder's later unmap of the replaced region is a no-op.
 *
 * On kernel VFIO a domain is one container (vfe_transport_open_in with the
 * domain's name): members whose transports answer the same dma_space share
 * one IOMMU table, so a map goes to the first of them only, a member joining
 * a space already present gets no replay, and a member leaving unmaps only
 * when no other member of its space remains.  On vfio-user (no dma_space)
 * every device has its own DMA table, so the domain replays each map on every
 * member, including members that join later.
 *
 * Ownership: the domain owns one dup of each mapped fd; the kernel transport's
 * container owns the process mapping MAP_DMA pins (vfio_kernel.c); the
 * transports stay the callers'.
 */
#ifndef VFE_DMA_DOMAIN_H
#define VFE_DMA_DOMAIN_H

#include <stdint.h>

#include "drivers/bus/vfio/vfe_transport.h"

struct vfe_dma_domain;

/* Join the domain `name` (created on first use); NULL or "" gives a private
 * domain.  The transport gets every map the domain holds.  NULL with errno. */
struct vfe_dma_domain *vfe_dma_domain_join(const char *name, struct vfe_transport *t);
/* The transport loses every map of the domain; the last member frees it and
 * all it holds.  Maps still held then are dropped (their holders must let go first). */
void vfe_dma_domain_leave(struct vfe_dma_domain *d, struct vfe_transport *t);
/* Leave as a crash would (HA hand-over): no device call, the transport keeps
 * its maps; the last member frees the domain and the records it holds. */
void vfe_dma_domain_forget(struct vfe_dma_domain *d, struct vfe_transport *t);

/* `holder` maps [iova, iova+len) to fd at offset.  The same region (same
 * iova, length, file and offset) held already only gains a holder.  All or
 * nothing across members: on failure (-errno: -EINVAL, -EBADF, -ENOMEM or the
 * transport's) the regions it would have replaced are still mapped everywhere. */
int vfe_dma_domain_map(struct vfe_dma_domain *d, const void *holder, uint64_t iova, uint64_t len, int fd,
                       uint64_t offset, uint32_t prot);
/* `holder` lets go of the region it mapped at iova/len. */
void vfe_dma_domain_unmap(struct vfe_dma_domain *d, const void *holder, uint64_t iova, uint64_t len);

/*
 * HA: re-adopting a domain after a daemon restart, without touching devices
 * that kept their DMA tables.
 *
 * vfe_dma_domain_join_adopted(): like join, but t is an adopted transport
 * whose device holds already every region the domain has or will record with
 * adopt_map: nothing is replayed to it.  NULL with errno (EINVAL, ENOMEM,
 * ENAMETOOLONG).
 *
 * vfe_dma_domain_adopt_map(): record that `holder` maps [iova, iova+len) to
 * fd at offset, a region every adopted member already holds: no device call
 * for adopted members; members that joined with plain join get it mapped
 * (all or nothing).  fd ownership is the same as for vfe_dma_domain_map():
 * the domain keeps its own dup, the caller keeps fd.  The same region held
 * already only gains a holder.
 *   -EINVAL  len 0, a range that wraps, prot 0 or unknown bits
 *   -EBADF   fd not open
 *   -EEXIST  overlaps a different recorded region (records disagree: refused,
 *            nothing changed)
 *   -ENOMEM, or a fresh member's map error
 *
 * Every map and unmap the domain sends to a device goes through
 * vfe_dma_apply.h, so re-applying after a crash converges: a leftover
 * identical range on the device is replaced, an unmap of a range the device
 * does not hold counts as done.
 */
struct vfe_dma_domain *vfe_dma_domain_join_adopted(const char *name, struct vfe_transport *t);
int vfe_dma_domain_adopt_map(struct vfe_dma_domain *d, const void *holder, uint64_t iova, uint64_t len, int fd,
                             uint64_t offset, uint32_t prot);

const char *vfe_dma_domain_name(const struct vfe_dma_domain *d);   /* "" for a private one */
unsigned vfe_dma_domain_members(const struct vfe_dma_domain *d);
unsigned vfe_dma_domain_maps(const struct vfe_dma_domain *d);

#endif
