/* The front-end's memory table: regions mapped with their fds, translations. */
#include "lib/vhost/vhost_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

#define PAGE_MASK_ 4095ull

static void unmap_region(struct vhost_region *r)
{
    uint64_t lead = r->mmap_offset & PAGE_MASK_;
    munmap(r->host - lead, r->size + lead);
    close(r->fd);
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static bool same_region(const struct vhost_region *o, const struct vhost_user_region *u, int fd)
{
    return o->gpa == u->gpa && o->size == u->size && o->qva == u->qva && o->mmap_offset == u->mmap_offset &&
           same_file(o->fd, fd);
}

int vhost_mem_add(struct vhost_dev *d, const struct vhost_user_region *u, int fd, const char **why)
{
    /* a multiqueue front-end sends its table once per queue pair's vhost device */
    for (unsigned i = 0; i < d->nregions; i++)
        if (same_region(&d->regions[i], u, fd)) {
            d->regions[i].refs++;
            return 1;
        }
    if (d->nregions >= VHOST_MAX_REGIONS) {
        *why = "too many regions";
        return -ENOSPC;
    }
    if (u->size == 0 || u->gpa + u->size < u->gpa || u->qva + u->size < u->qva ||
        u->mmap_offset + u->size < u->mmap_offset) {
        *why = "empty or wrapping region";
        return -EINVAL;
    }
    for (unsigned i = 0; i < d->nregions; i++) {
        const struct vhost_region *o = &d->regions[i];
        if (u->gpa < o->gpa + o->size && o->gpa < u->gpa + u->size) {
            *why = "guest physical range overlaps another region";
            return -EEXIST;
        }
        if (u->qva < o->qva + o->size && o->qva < u->qva + u->size) {
            *why = "front-end address range overlaps another region";
            return -EEXIST;
        }
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || (S_ISREG(st.st_mode) && u->mmap_offset + u->size > (uint64_t)st.st_size)) {
        *why = "region lies beyond its fd";
        return -EINVAL;
    }
    uint64_t lead = u->mmap_offset & PAGE_MASK_;
    void *p = mmap(NULL, u->size + lead, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(u->mmap_offset - lead));
    if (p == MAP_FAILED) {
        *why = "mmap failed";
        return -errno;
    }
    d->regions[d->nregions++] = (struct vhost_region){u->gpa, u->size, u->qva, u->mmap_offset, 1, fd,
                                                      (uint8_t *)p + lead};
    return 0;
}

int vhost_mem_remove(struct vhost_dev *d, const struct vhost_user_region *u)
{
    for (unsigned i = 0; i < d->nregions; i++) {
        struct vhost_region *r = &d->regions[i];
        if (r->gpa == u->gpa && r->size == u->size && r->qva == u->qva) {
            if (--r->refs > 0)
                return 1;
            unmap_region(r);
            d->regions[i] = d->regions[--d->nregions];
            return 0;
        }
    }
    return -ENOENT;
}

bool vhost_mem_same(const struct vhost_dev *d, const struct vhost_user_region *u, const int *fds, unsigned n)
{
    if (n != d->nregions)
        return false;
    for (unsigned i = 0; i < n; i++) {   /* each new region is there, each old one is named */
        bool found = false, named = false;
        for (unsigned j = 0; j < n; j++) {
            found = found || same_region(&d->regions[j], &u[i], fds[i]);
            named = named || same_region(&d->regions[i], &u[j], fds[j]);
        }
        if (!found || !named)
            return false;
    }
    return true;
}

void vhost_mem_clear(struct vhost_dev *d)
{
    for (unsigned i = 0; i < d->nregions; i++)
        unmap_region(&d->regions[i]);
    d->nregions = 0;
}

uint64_t vhost_mem_top(const struct vhost_dev *d)
{
    uint64_t top = 0;
    for (unsigned i = 0; i < d->nregions; i++)
        if (d->regions[i].gpa + d->regions[i].size > top)
            top = d->regions[i].gpa + d->regions[i].size;
    return top;
}

int vhost_qva_to_gpa(const struct vhost_dev *d, uint64_t qva, uint64_t len, uint64_t *gpa)
{
    for (unsigned i = 0; i < d->nregions; i++) {
        const struct vhost_region *r = &d->regions[i];
        if (qva >= r->qva && qva - r->qva < r->size) {
            if (len > r->size - (qva - r->qva))
                return -EFAULT;
            *gpa = r->gpa + (qva - r->qva);
            return 0;
        }
    }
    return -EFAULT;
}

int vhost_gpa_to_qva(const struct vhost_dev *d, uint64_t gpa, uint64_t len, uint64_t *qva)
{
    for (unsigned i = 0; i < d->nregions; i++) {
        const struct vhost_region *r = &d->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size) {
            if (len > r->size - (gpa - r->gpa))
                return -EFAULT;
            *qva = r->qva + (gpa - r->gpa);
            return 0;
        }
    }
    return -EFAULT;
}

void *vhost_gpa_to_host(const struct vhost_dev *d, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < d->nregions; i++) {
        const struct vhost_region *r = &d->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size)
            return len <= r->size - (gpa - r->gpa) ? r->host + (gpa - r->gpa) : NULL;
    }
    return NULL;
}

/* Ring addresses to guest physical: each part inside one region. */
int vhost_ring_translate(struct vhost_dev *d, struct vhost_ring *r)
{
    r->addr_ok = false;
    if (!r->addr_set || !r->num)
        return -EINVAL;
    uint64_t n = r->num;
    if (vhost_qva_to_gpa(d, r->desc_qva, 16 * n, &r->desc) < 0 ||
        vhost_qva_to_gpa(d, r->avail_qva, 6 + 2 * n, &r->avail) < 0 ||
        vhost_qva_to_gpa(d, r->used_qva, 6 + 8 * n, &r->used) < 0)
        return -EFAULT;
    if ((r->desc & 15) || (r->avail & 1) || (r->used & 3))
        return -EINVAL;
    r->addr_ok = true;
    return 0;
}
