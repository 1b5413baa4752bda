/* Dirty-page tracking commands (nvidia class 65, virtio 0x30..0x32): set up
 * vf->dirty for core's sim_dirty_mark(), and serve pull reports. */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log/vfe_log.h"
#include "sim/admin/admin_priv.h"

#define BAD(...) do { snprintf(why, why_len, __VA_ARGS__); return ADM_EINVAL; } while (0)

static uint64_t bitmap_bytes(uint64_t range_len, uint32_t page)
{
    uint64_t pages = range_len / page + (range_len % page != 0);
    return pages / 8 + (pages % 8 != 0);
}

unsigned sim_adm_dirty_modes(const struct sim *s)
{
    return ((1u << SIM_NV_TRACK_PUSH_BITMAP) | (1u << SIM_NV_TRACK_PULL_BITMAP)) & ~s->opt.dirty_refused;
}

static enum adm_err push_sges(struct sim_fn *pf, const uint8_t *data, size_t len, unsigned n,
                              uint64_t need, struct sim_dirty *d, char *why, size_t why_len)
{
    const size_t hdr = sizeof(struct sim_nv_start_track);
    uint64_t total = 0;

    if (n == 0 || n > SIM_NV_MAX_SGES || n > SIM_DIRTY_MAX_SGES)
        BAD("push bitmap needs 1..%u sges, got %u", SIM_NV_MAX_SGES, n);
    if (len < hdr + (size_t)n * sizeof(struct sim_nv_sge))
        BAD("%u sges announced, command holds %zu", n, (len - hdr) / sizeof(struct sim_nv_sge));
    for (unsigned i = 0; i < n; i++) {
        struct sim_nv_sge s;
        memcpy(&s, data + hdr + i * sizeof(s), sizeof(s));
        uint64_t addr = le64toh(s.addr);
        uint32_t slen = le32toh(s.len);
        if (slen == 0)
            BAD("sge %u is empty", i);
        if (!sim_dma_ptr(pf, addr, slen, VQ_DMA_WRITE))
            BAD("sge %u [0x%llx, +%u) is not writable PF memory", i, (unsigned long long)addr, slen);
        d->sges[i].iova = addr;
        d->sges[i].len = slen;
        total += slen;
    }
    if (total < need)
        BAD("sges hold %llu bytes, the bitmap needs %llu", (unsigned long long)total,
            (unsigned long long)need);
    d->nsges = n;
    return ADM_OK;
}

enum adm_err sim_adm_dirty_start(struct sim_fn *pf, struct sim_fn *vf, const uint8_t *data, size_t len,
                                 char *why, size_t why_len)
{
    struct sim_nv_start_track t;
    struct sim_dirty d = { 0 };
    struct sim_dirty *old = &vf->dirty;

    if (len < sizeof(t))
        BAD("start track: %zu bytes of data", len);
    memcpy(&t, data, sizeof(t));
    uint32_t page = le32toh(t.vdev_host_page_size);
    uint64_t addr = le64toh(t.range_addr), rlen = le64toh(t.range_length);

    if (t.track_mode == SIM_NV_TRACK_PUSH_BYTEMAP || t.track_mode == SIM_NV_TRACK_PULL_BYTEMAP) {
        snprintf(why, why_len, "bytemap tracking (mode %u) not supported", t.track_mode);
        return ADM_EUNSUPP;
    }
    if (t.track_mode != SIM_NV_TRACK_PUSH_BITMAP && t.track_mode != SIM_NV_TRACK_PULL_BITMAP)
        BAD("unknown track mode %u", t.track_mode);
    if (!(sim_adm_dirty_modes(pf->sim) & (1u << t.track_mode))) {
        snprintf(why, why_len, "%s tracking not offered (--dirty-tracking)",
                 t.track_mode == SIM_NV_TRACK_PUSH_BITMAP ? "push" : "pull");
        return ADM_EUNSUPP;
    }
    if (page != SIM_PAGE_SIZE)
        BAD("page size %u, only %u supported", page, SIM_PAGE_SIZE);
    if (rlen == 0 || addr % page || addr + rlen < addr)
        BAD("bad range [0x%llx, +0x%llx)", (unsigned long long)addr, (unsigned long long)rlen);
    uint64_t bytes = bitmap_bytes(rlen, page);

    d.mode = t.track_mode;
    d.page_size = page;
    d.range_addr = addr;
    d.range_len = rlen;
    if (t.track_mode == SIM_NV_TRACK_PUSH_BITMAP) {
        enum adm_err e = push_sges(pf, data, len, t.num_sges, bytes, &d, why, why_len);
        if (e)
            return e;
    } else {
        if (rlen > ADM_PULL_MAX_RANGE)
            BAD("pull range 0x%llx larger than %llu GiB", (unsigned long long)rlen, ADM_PULL_MAX_RANGE >> 30);
        /* Restarting the same pull range keeps the bits collected so far. */
        if (old->mode == SIM_NV_TRACK_PULL_BITMAP && old->pull_bitmap && old->page_size == page &&
            old->range_addr == addr && old->range_len == rlen) {
            d.pull_bitmap = old->pull_bitmap;
            old->pull_bitmap = NULL;
        } else {
            d.pull_bitmap = calloc(1, bytes);
            if (!d.pull_bitmap) {
                snprintf(why, why_len, "no memory for a %llu-byte bitmap", (unsigned long long)bytes);
                return ADM_ENOSPC;
            }
        }
        d.pull_bytes = bytes;
    }
    free(old->pull_bitmap);
    vf->dirty = d;
    LOG_I("vf %s: dirty tracking %s, range [0x%llx, +0x%llx), %llu bitmap bytes", vf->bdf,
          d.mode == SIM_NV_TRACK_PUSH_BITMAP ? "push" : "pull", (unsigned long long)addr,
          (unsigned long long)rlen, (unsigned long long)bytes);
    return ADM_OK;
}

void sim_adm_dirty_stop(struct sim_fn *vf)
{
    if (vf->dirty.mode)
        LOG_I("vf %s: dirty tracking stopped", vf->bdf);
    free(vf->dirty.pull_bitmap);
    memset(&vf->dirty, 0, sizeof(vf->dirty));
}

uint64_t sim_adm_dirty_pending_bytes(const struct sim_fn *vf)
{
    const struct sim_dirty *d = &vf->dirty;
    if (!d->mode || !d->page_size)
        return 0;
    return bitmap_bytes(d->range_len, d->page_size);
}

enum adm_err sim_adm_dirty_report(struct sim_fn *vf, uint32_t offset, struct adm_req *r)
{
    struct sim_dirty *d = &vf->dirty;
    if (d->mode != SIM_NV_TRACK_PULL_BITMAP || !d->pull_bitmap) {
        snprintf(r->why, sizeof(r->why), "no pull tracking");
        return ADM_EINVAL;
    }
    if (offset > d->pull_bytes) {
        snprintf(r->why, sizeof(r->why), "offset %u beyond %zu bitmap bytes", offset, d->pull_bytes);
        return ADM_EINVAL;
    }
    size_t n = d->pull_bytes - offset;
    if (n > r->res_cap)
        n = r->res_cap;
    if (n == 0 && offset < d->pull_bytes) {
        snprintf(r->why, sizeof(r->why), "no room for the result");
        return ADM_ENOSPC;
    }
    memcpy(r->res, d->pull_bitmap + offset, n);
    memset(d->pull_bitmap + offset, 0, n);
    r->res_len = n;
    return ADM_OK;
}
