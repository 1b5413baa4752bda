/* DMA domains shared by the VFs of one VM (see vfe_dma_domain.h). */
#include "drivers/bus/vfio/vfe_dma_domain.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_dma_apply.h"
#include "lib/log/vfe_log.h"

struct dma_entry {
    uint64_t iova, len, offset;
    dev_t dev;
    ino_t ino;
    int fd;                 /* our own dup (also for adopted regions), replayed to members that join later */
    uint32_t prot;
    const void **holders;
    unsigned nholders;
};

struct dma_member {
    struct vfe_transport *t;
    bool adopted;           /* joined with join_adopted: holds what adopt_map records */
};

struct vfe_dma_domain {
    char name[64];
    struct dma_member *members;
    unsigned nmembers;
    struct dma_entry *maps;
    unsigned nmaps;
    struct vfe_dma_domain *next;
};

static struct vfe_dma_domain *named;   /* the daemon's named domains */

const char *vfe_dma_domain_name(const struct vfe_dma_domain *d) { return d->name; }
unsigned vfe_dma_domain_members(const struct vfe_dma_domain *d) { return d->nmembers; }
unsigned vfe_dma_domain_maps(const struct vfe_dma_domain *d) { return d->nmaps; }

static int map_on(struct vfe_transport *t, const struct dma_entry *e)
{
    return vfe_dma_apply_map(t, e->iova, e->len, e->fd, e->offset, e->prot);
}

static void unmap_on(struct vfe_transport *t, const struct dma_entry *e)
{
    int rc = vfe_dma_apply_unmap(t, e->iova, e->len);
    if (rc < 0)
        LOG_W("%s: unmap iova %#llx: %s", t->bdf, (unsigned long long)e->iova, strerror(-rc));
}

static const void *space_of(struct vfe_transport *t)
{
    return t->ops->dma_space ? t->ops->dma_space(t) : NULL;
}

/* Member m translates through an address space an earlier member (in the
 * members array, all of them when m == nmembers) already holds the maps of. */
static bool space_covered(const struct vfe_dma_domain *d, unsigned m, struct vfe_transport *t)
{
    const void *s = space_of(t);
    if (!s)
        return false;
    for (unsigned i = 0; i < m && i < d->nmembers; i++)
        if (d->members[i].t != t && space_of(d->members[i].t) == s)
            return true;
    return false;
}

static struct vfe_dma_domain *join(const char *name, struct vfe_transport *t, bool adopted)
{
    struct vfe_dma_domain *d = NULL;
    if (name && *name) {
        if (strlen(name) >= sizeof(d->name)) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        for (d = named; d && strcmp(d->name, name); d = d->next)
            ;
    }
    bool fresh = !d;
    if (fresh) {
        d = calloc(1, sizeof(*d));
        if (!d) {
            errno = ENOMEM;
            return NULL;
        }
        snprintf(d->name, sizeof(d->name), "%s", name ? name : "");
    }
    if (!t) {
        errno = EINVAL;
        goto fail_errno;
    }
    struct dma_member *m = realloc(d->members, (d->nmembers + 1) * sizeof(*m));
    if (!m) {
        errno = ENOMEM;
        goto fail_errno;
    }
    d->members = m;
    bool covered = space_covered(d, d->nmembers, t);   /* its container holds the maps already */
    for (unsigned i = 0; !adopted && !covered && i < d->nmaps; i++) {
        int rc = map_on(t, &d->maps[i]);
        if (rc < 0) {
            LOG_E("%s: joining DMA domain %s: map iova %#llx: %s", t->bdf, d->name,
                  (unsigned long long)d->maps[i].iova, strerror(-rc));
            while (i--)
                unmap_on(t, &d->maps[i]);
            errno = -rc;
            goto fail_errno;
        }
    }
    d->members[d->nmembers++] = (struct dma_member){.t = t, .adopted = adopted};
    if (fresh && *d->name) {
        d->next = named;
        named = d;
    }
    if (adopted)
        LOG_I("%s: joined DMA domain %s as adopted (holds its %u maps already)", t->bdf, d->name, d->nmaps);
    return d;
fail_errno:
    if (fresh) {
        int e = errno;
        free(d->members);
        free(d);
        errno = e;
    }
    return NULL;
}

struct vfe_dma_domain *vfe_dma_domain_join(const char *name, struct vfe_transport *t)
{
    return join(name, t, false);
}

struct vfe_dma_domain *vfe_dma_domain_join_adopted(const char *name, struct vfe_transport *t)
{
    return join(name, t, true);
}

/* Drop entry i from the table; the devices are not touched. */
static void entry_forget(struct vfe_dma_domain *d, unsigned i)
{
    close(d->maps[i].fd);
    free(d->maps[i].holders);
    d->maps[i] = d->maps[--d->nmaps];
}

static void leave(struct vfe_dma_domain *d, struct vfe_transport *t, bool unmap)
{
    if (!d)
        return;
    unsigned i = 0;
    while (i < d->nmembers && d->members[i].t != t)
        i++;
    if (i == d->nmembers)
        return;
    bool shared = space_covered(d, d->nmembers, t);   /* another member still needs the container's maps */
    for (unsigned j = 0; unmap && !shared && j < d->nmaps; j++)
        unmap_on(t, &d->maps[j]);
    d->members[i] = d->members[--d->nmembers];
    if (d->nmembers)
        return;
    if (d->nmaps && unmap)
        LOG_W("DMA domain %s: last member left with %u maps held", d->name, d->nmaps);
    while (d->nmaps)
        entry_forget(d, d->nmaps - 1);
    for (struct vfe_dma_domain **p = &named; *p; p = &(*p)->next)
        if (*p == d) {
            *p = d->next;
            break;
        }
    free(d->maps);
    free(d->members);
    free(d);
}

void vfe_dma_domain_leave(struct vfe_dma_domain *d, struct vfe_transport *t)
{
    leave(d, t, true);
}

void vfe_dma_domain_forget(struct vfe_dma_domain *d, struct vfe_transport *t)
{
    leave(d, t, false);
}

static bool overlaps(const struct dma_entry *e, uint64_t iova, uint64_t len)
{
    return iova < e->iova + e->len && e->iova < iova + len;
}

static int add_holder(struct dma_entry *e, const void *holder)
{
    for (unsigned i = 0; i < e->nholders; i++)
        if (e->holders[i] == holder)
            return 0;
    const void **h = realloc(e->holders, (e->nholders + 1) * sizeof(*h));
    if (!h)
        return -ENOMEM;
    e->holders = h;
    e->holders[e->nholders++] = holder;
    return 0;
}

/* Map e on every member (but the adopted ones if skip_adopted), or on none. */
static int map_members(struct vfe_dma_domain *d, const struct dma_entry *e, bool skip_adopted)
{
    for (unsigned m = 0; m < d->nmembers; m++) {
        if ((skip_adopted && d->members[m].adopted) || space_covered(d, m, d->members[m].t))
            continue;
        int rc = map_on(d->members[m].t, e);
        if (rc < 0) {
            LOG_E("%s: map iova %#llx size %#llx: %s", d->members[m].t->bdf, (unsigned long long)e->iova,
                  (unsigned long long)e->len, strerror(-rc));
            while (m--)
                if ((!skip_adopted || !d->members[m].adopted) && !space_covered(d, m, d->members[m].t))
                    unmap_on(d->members[m].t, e);
            return rc;
        }
    }
    return 0;
}

static int map_everywhere(struct vfe_dma_domain *d, const struct dma_entry *e)
{
    return map_members(d, e, false);
}

static void unmap_everywhere(struct vfe_dma_domain *d, const struct dma_entry *e)
{
    for (unsigned m = 0; m < d->nmembers; m++)
        if (!space_covered(d, m, d->members[m].t))
            unmap_on(d->members[m].t, e);
}

/* Devices refuse overlapping maps, so the regions the new one replaces leave
 * the devices first; if the new one then fails they are mapped back. */
int vfe_dma_domain_map(struct vfe_dma_domain *d, const void *holder, uint64_t iova, uint64_t len, int fd,
                       uint64_t offset, uint32_t prot)
{
    struct stat st;
    if (!len || iova + len < iova)
        return -EINVAL;
    if (fstat(fd, &st) < 0)
        return -errno;
    for (unsigned i = 0; i < d->nmaps; i++) {
        struct dma_entry *e = &d->maps[i];
        if (e->iova == iova && e->len == len && e->offset == offset && e->dev == st.st_dev && e->ino == st.st_ino)
            return add_holder(e, holder);
    }
    /* everything that can fail without touching a device comes first */
    struct dma_entry *maps = realloc(d->maps, (d->nmaps + 1) * sizeof(*maps));
    if (!maps)
        return -ENOMEM;
    d->maps = maps;
    struct dma_entry e = {.iova = iova, .len = len, .offset = offset, .dev = st.st_dev, .ino = st.st_ino,
                          .prot = prot, .fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)};
    if (e.fd < 0)
        return -errno;
    int rc = add_holder(&e, holder);
    if (rc < 0) {
        close(e.fd);
        return rc;
    }
    /* a different region where this one goes: the newer memory table wins */
    unsigned nold = 0;
    for (unsigned i = 0; i < d->nmaps; i++)
        if (overlaps(&d->maps[i], iova, len)) {
            struct dma_entry tmp = d->maps[nold];   /* gather the replaced ones at the front */
            d->maps[nold] = d->maps[i];
            d->maps[i] = tmp;
            unmap_everywhere(d, &d->maps[nold++]);
        }
    rc = map_everywhere(d, &e);
    if (rc < 0) {
        close(e.fd);
        free(e.holders);
        for (unsigned i = nold; i--;)
            if (map_everywhere(d, &d->maps[i]) < 0) {
                LOG_E("DMA domain %s: iova %#llx+%#llx lost: it could not be mapped back", d->name,
                      (unsigned long long)d->maps[i].iova, (unsigned long long)d->maps[i].len);
                entry_forget(d, i);
            }
        return rc;
    }
    for (unsigned i = nold; i--;) {
        LOG_I("DMA domain %s: iova %#llx+%#llx replaced by a newer memory table", d->name,
              (unsigned long long)d->maps[i].iova, (unsigned long long)d->maps[i].len);
        entry_forget(d, i);
    }
    d->maps[d->nmaps++] = e;
    return 0;
}

void vfe_dma_domain_unmap(struct vfe_dma_domain *d, const void *holder, uint64_t iova, uint64_t len)
{
    for (unsigned i = 0; i < d->nmaps; i++) {
        struct dma_entry *e = &d->maps[i];
        if (e->iova != iova || e->len != len)
            continue;
        for (unsigned h = 0; h < e->nholders; h++)
            if (e->holders[h] == holder) {
                e->holders[h] = e->holders[--e->nholders];
                if (!e->nholders) {
                    unmap_everywhere(d, e);
                    entry_forget(d, i);
                }
                return;
            }
    }
}

int vfe_dma_domain_adopt_map(struct vfe_dma_domain *d, const void *holder, uint64_t iova, uint64_t len, int fd,
                             uint64_t offset, uint32_t prot)
{
    struct stat st;
    if (!d || !len || iova + len < iova || offset + len < offset || !prot ||
        (prot & ~(VFE_DMA_READ | VFE_DMA_WRITE))) {
        LOG_E("DMA domain %s: adopt map iova %#llx+%#llx prot %#x refused: invalid", d ? d->name : "?",
              (unsigned long long)iova, (unsigned long long)len, prot);
        return -EINVAL;
    }
    if (fstat(fd, &st) < 0)
        return -errno;
    for (unsigned i = 0; i < d->nmaps; i++) {
        struct dma_entry *e = &d->maps[i];
        if (e->iova == iova && e->len == len && e->offset == offset && e->dev == st.st_dev && e->ino == st.st_ino)
            return add_holder(e, holder);
        if (overlaps(e, iova, len)) {
            LOG_E("DMA domain %s: adopt map iova %#llx+%#llx refused: overlaps recorded %#llx+%#llx", d->name,
                  (unsigned long long)iova, (unsigned long long)len, (unsigned long long)e->iova,
                  (unsigned long long)e->len);
            return -EEXIST;
        }
    }
    struct dma_entry *maps = realloc(d->maps, (d->nmaps + 1) * sizeof(*maps));
    if (!maps)
        return -ENOMEM;
    d->maps = maps;
    struct dma_entry e = {.iova = iova, .len = len, .offset = offset, .dev = st.st_dev, .ino = st.st_ino,
                          .prot = prot, .fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)};
    if (e.fd < 0)
        return -errno;
    int rc = add_holder(&e, holder);
    if (rc == 0)
        rc = map_members(d, &e, true);   /* members that joined fresh do not hold it yet */
    if (rc < 0) {
        close(e.fd);
        free(e.holders);
        return rc;
    }
    d->maps[d->nmaps++] = e;
    return 0;
}
