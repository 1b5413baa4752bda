/* Repeatable DMA map/unmap on one device (see vfe_dma_apply.h). */
#include "drivers/bus/vfio/vfe_dma_apply.h"

#include <errno.h>
#include <string.h>

#include "lib/log/vfe_log.h"

int vfe_dma_apply_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot)
{
    int rc = t->ops->dma_map(t, iova, len, fd, offset, prot);
    if (rc != -EEXIST)
        return rc;
    if (t->ops->dma_unmap(t, iova, len) < 0)
        return -EEXIST;   /* a different range is in the way: not ours to remove */
    LOG_W("%s: iova %#llx+%#llx was mapped already (left by a crash?): mapped again", t->bdf,
          (unsigned long long)iova, (unsigned long long)len);
    return t->ops->dma_map(t, iova, len, fd, offset, prot);
}

int vfe_dma_apply_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len)
{
    int rc = t->ops->dma_unmap(t, iova, len);
    if (rc == -ENOENT) {
        LOG_I("%s: iova %#llx+%#llx was not mapped (unmapped before a crash?)", t->bdf,
              (unsigned long long)iova, (unsigned long long)len);
        return 0;
    }
    return rc;
}
