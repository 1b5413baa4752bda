/*
 * DMA map and unmap on one device, made safe to repeat after a crash.
 *
 * A daemon killed between a device map (or unmap) and the record of it leaves
 * the device one step ahead of what its successor believes.  Re-applying must
 * converge instead of failing:
 *   - a map the device refuses with -EEXIST is retried once after unmapping
 *     exactly [iova, iova+len): if the device held that identical range (a
 *     leftover) it now holds the new one; if the conflict is a different
 *     range that unmap fails and -EEXIST is returned, nothing changed.
 *   - an unmap the device answers -ENOENT (it does not hold that range) is
 *     success: the range is unmapped either way.
 * Both are one or two synchronous transport round trips (a transport in
 * posted mode does the same without waiting, vfe_transport.h); t is borrowed;
 * errnos are the transport's.  Callers: dma_domain.c and pf_iova.c, the only
 * modules that map on a device.
 */
#ifndef VFE_DMA_APPLY_H
#define VFE_DMA_APPLY_H

#include "drivers/bus/vfio/vfe_transport.h"

int vfe_dma_apply_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot);
int vfe_dma_apply_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len);

#endif
