#include "fake_core.h"

#include <errno.h>
#include <string.h>
#include <linux/virtio_config.h>

struct fake_core fake;

struct sim_fn *sim_pf_vf(struct sim_fn *pf, unsigned vf_num)
{
    if (!pf || !pf->is_pf)
        return NULL;
    struct sim_pf *p = (struct sim_pf *)pf;
    if (vf_num < 1 || vf_num > p->num_vfs)
        return NULL;
    struct sim_fn *vf = p->vfs[vf_num - 1];
    return vf && !vf->removed ? vf : NULL;
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

bool sim_fn_dma_allowed(const struct sim_fn *fn)
{
    return fn->mig_state != SIM_MIG_FREEZED && !fn->dma_stalled && !fn->removed;
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
    if (!sim_fn_dma_allowed(fn))
        return -EBUSY;
    void *p = sim_dma_ptr(fn, iova, len, 2);
    if (!p)
        return -EFAULT;
    memcpy(p, buf, len);
    return 0;
}

void sim_queue_interrupt(struct sim_queue *q)
{
    fake.irqs++;
}

void sim_fn_needs_reset(struct sim_fn *fn, const char *why)
{
    fn->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    fake.needs_reset++;
}

void sim_net_resume(struct sim_fn *fn)
{
    if (fn->vf_num <= FAKE_MAX_VFS)
        fake.resumes[fn->vf_num]++;
}

int sim_net_announce(struct sim_fn *fn, const uint8_t mac[6])
{
    if (fn->mig_state == SIM_MIG_QUIESCED || fn->mig_state == SIM_MIG_FREEZED)
        return -EBUSY;
    if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
        return -EINVAL;
    fake.announces++;
    memcpy(fake.announced, mac, 6);
    fake.announced_vf = fn->vf_num;
    return 0;
}
