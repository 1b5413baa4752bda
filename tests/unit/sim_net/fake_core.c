#include "fake_core.h"

#include <errno.h>
#include <string.h>
#include <linux/virtio_config.h>

struct fake_core fake;

void fake_reset(void)
{
    struct sim_fn *keep[FAKE_MAX_FNS];
    memcpy(keep, fake.fns, sizeof(keep));
    memset(&fake, 0, sizeof(fake));
    memcpy(fake.fns, keep, sizeof(keep));
}

int fake_slot(const struct sim_fn *fn)
{
    for (int i = 0; i < FAKE_MAX_FNS; i++)
        if (fake.fns[i] == fn)
            return i;
    return -1;
}

int fake_written(const struct sim_fn *fn, uint64_t iova, uint64_t len)
{
    /* every byte of the range must be covered by some recorded write */
    for (uint64_t b = iova; b < iova + len; b++) {
        int hit = 0;
        for (unsigned i = 0; i < fake.nwrites && !hit; i++)
            hit = fake.writes[i].fn == fn && b >= fake.writes[i].iova &&
                  b < fake.writes[i].iova + fake.writes[i].len;
        if (!hit)
            return 0;
    }
    return 1;
}

void *sim_dma_ptr(struct sim_fn *fn, uint64_t iova, uint64_t len, uint32_t prot)
{
    for (unsigned i = 0; i < fn->ndma; i++) {
        struct sim_dma_map *m = &fn->dma[i];
        if (iova >= m->iova && iova - m->iova < m->size && len <= m->size - (iova - m->iova))
            return (m->prot & prot) == prot ? m->va + (iova - m->iova) : NULL;
    }
    return NULL;
}

int sim_dma_read(struct sim_fn *fn, uint64_t iova, void *buf, size_t len)
{
    void *p = sim_dma_ptr(fn, iova, len, 1);
    if (!p)
        return -EFAULT;
    memcpy(buf, p, len);
    return 0;
}

int sim_dma_write(struct sim_fn *fn, uint64_t iova, const void *buf, size_t len)
{
    if (fn->mig_state == SIM_MIG_FREEZED)
        return -EBUSY;
    void *p = sim_dma_ptr(fn, iova, len, 2);
    if (!p)
        return -EFAULT;
    memcpy(p, buf, len);
    if (fake.nwrites < FAKE_MAX_WRITES)
        fake.writes[fake.nwrites++] = (struct fake_write){ fn, iova, len };
    return 0;
}

void sim_queue_interrupt(struct sim_queue *q)
{
    int s = fake_slot(q->fn);
    if (s >= 0)
        fake.irqs[s][q->index]++;
}

void sim_fn_needs_reset(struct sim_fn *fn, const char *why)
{
    int s = fake_slot(fn);
    fn->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (s >= 0)
        fake.needs_reset[s]++;
}

bool sim_fn_dma_allowed(const struct sim_fn *fn)
{
    return fn->mig_state != SIM_MIG_FREEZED && !fn->stopped && !fn->dma_stalled && !fn->removed;
}
