/* DMA maps of a function (guest memory shared as fds) and the single device
 * write path, which also records dirty pages for migration. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

int sim_dma_map(struct sim_fn *fn, uint64_t iova, uint64_t size, int fd, uint64_t offset, uint32_t prot)
{
    if (size == 0 || iova + size < iova || offset + size < offset)
        return -EINVAL;
    if (!(prot & 3) || (prot & ~3u))
        return -EINVAL;
    if (fn->ndma >= SIM_MAX_DMA_MAPS)
        return -ENOSPC;
    for (unsigned i = 0; i < fn->ndma; i++)
        if (ranges_overlap(iova, size, fn->dma[i].iova, fn->dma[i].size))
            return -EEXIST;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    uint64_t fd_pages = ((uint64_t)st.st_size + SIM_PAGE_SIZE - 1) & ~(uint64_t)(SIM_PAGE_SIZE - 1);
    if (!S_ISREG(st.st_mode) || offset + size > fd_pages)
        return -EINVAL;
    /* mmap wants a page-aligned offset: map from the page start. */
    uint64_t pg_off = offset & ~(uint64_t)(SIM_PAGE_SIZE - 1);
    size_t map_len = (size_t)(offset - pg_off + size);
    int mprot = ((prot & 1) ? PROT_READ : 0) | ((prot & 2) ? PROT_READ | PROT_WRITE : 0);
    uint8_t *va = mmap(NULL, map_len, mprot, MAP_SHARED, fd, (off_t)pg_off);
    if (va == MAP_FAILED)
        return -errno;
    struct sim_dma_map *m = &fn->dma[fn->ndma++];
    m->iova = iova;
    m->size = size;
    m->va = va + (offset - pg_off);
    m->map_len = map_len;
    m->prot = prot;
    LOG_D("%s: dma map iova %#llx size %#llx prot %u", fn->bdf, (unsigned long long)iova,
          (unsigned long long)size, prot);
    return 0;
}

static void unmap_slot(struct sim_fn *fn, unsigned i)
{
    struct sim_dma_map *m = &fn->dma[i];
    uint8_t *base = (uint8_t *)((uintptr_t)m->va & ~(uintptr_t)(SIM_PAGE_SIZE - 1));
    munmap(base, m->map_len);
    fn->dma[i] = fn->dma[--fn->ndma];
}

int sim_dma_unmap(struct sim_fn *fn, uint64_t iova, uint64_t size)
{
    for (unsigned i = 0; i < fn->ndma; i++) {
        if (fn->dma[i].iova == iova && fn->dma[i].size == size) {
            unmap_slot(fn, i);
            return 0;
        }
    }
    return -ENOENT;
}

void sim_dma_unmap_all(struct sim_fn *fn)
{
    while (fn->ndma)
        unmap_slot(fn, fn->ndma - 1);
}

void *sim_dma_ptr(struct sim_fn *fn, uint64_t iova, uint64_t len, uint32_t prot)
{
    for (unsigned i = 0; i < fn->ndma; i++) {
        struct sim_dma_map *m = &fn->dma[i];
        if (iova >= m->iova && iova - m->iova < m->size) {
            if (len > m->size - (iova - m->iova) || (m->prot & prot) != prot)
                return NULL;
            return m->va + (iova - m->iova);
        }
    }
    return NULL;
}

bool sim_fn_dma_allowed(const struct sim_fn *fn)
{
    return fn->mig_state != SIM_MIG_FREEZED && !fn->dma_stalled && !fn->removed;
}

int sim_dma_read(struct sim_fn *fn, uint64_t iova, void *buf, size_t len)
{
    if (!sim_fn_dma_allowed(fn))
        return -EBUSY;
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
    sim_dirty_mark(fn, iova, len);
    return 0;
}

/* Set bit `bit` of the push bitmap spread over the PF-side sges. */
static bool push_set_bit(struct sim_fn *fn, uint64_t bit)
{
    struct sim_dirty *d = &fn->dirty;
    uint64_t byte = bit / 8;
    for (unsigned i = 0; i < d->nsges; i++) {
        if (byte < d->sges[i].len) {
            uint8_t *p = sim_dma_ptr(fn->pf, d->sges[i].iova + byte, 1, 2);
            if (!p)
                return false;
            __atomic_fetch_or(p, (uint8_t)(1u << (bit % 8)), __ATOMIC_RELAXED);
            return true;
        }
        byte -= d->sges[i].len;
    }
    return false;
}

void sim_dirty_mark(struct sim_fn *fn, uint64_t iova, uint64_t len)
{
    struct sim_dirty *d = &fn->dirty;
    if (!d->mode || len == 0 || !d->page_size)
        return;
    uint64_t end = iova + len;
    uint64_t r_end = d->range_addr + d->range_len;
    if (end <= d->range_addr || iova >= r_end)
        return;
    if (iova < d->range_addr)
        iova = d->range_addr;
    if (end > r_end)
        end = r_end;
    uint64_t first = (iova - d->range_addr) / d->page_size;
    uint64_t last = (end - 1 - d->range_addr) / d->page_size;
    for (uint64_t pg = first; pg <= last; pg++) {
        if (d->mode == 1) {
            if (!push_set_bit(fn, pg))
                LOG_W("%s: dirty bitmap for page %llu not writable", fn->bdf, (unsigned long long)pg);
        } else if (d->mode == 3 && d->pull_bitmap && pg / 8 < d->pull_bytes) {
            d->pull_bitmap[pg / 8] |= (uint8_t)(1u << (pg % 8));
        }
        fn->ctr.dirty_pages_marked++;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

void sim_dirty_stop(struct sim_fn *fn)
{
    free(fn->dirty.pull_bitmap);
    memset(&fn->dirty, 0, sizeof(fn->dirty));
}
