/* The PF's IOVA space: windows handed out first fit, mapped through the PF's transport (see vfe_pf_iova.h). */
#include "drivers/bus/vfio/vfe_pf_iova.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log/vfe_log.h"

#define NO_USER (-1)   /* a window whose unmap failed: reserved until destroy */

struct pf_window {
    uint64_t iova, len;
    int user;
    bool mapped;
};

struct vfe_pf_iova {
    struct vfe_transport *t;
    uint64_t base, end;
    struct pf_window *win;   /* sorted by iova */
    unsigned nwin;
};

struct vfe_pf_iova *vfe_pf_iova_create(struct vfe_transport *t)
{
    return vfe_pf_iova_create_in(t, VFE_PF_IOVA_BASE, VFE_PF_IOVA_END);
}

struct vfe_pf_iova *vfe_pf_iova_create_in(struct vfe_transport *t, uint64_t base, uint64_t end)
{
    if (!t || !base || end <= base || (base | end) % VFE_PF_IOVA_PAGE) {
        errno = EINVAL;
        return NULL;
    }
    struct vfe_pf_iova *s = calloc(1, sizeof(*s));
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->t = t;
    s->base = base;
    s->end = end;
    return s;
}

static int unmap_window(struct vfe_pf_iova *s, struct pf_window *w)
{
    int rc = s->t->ops->dma_unmap(s->t, w->iova, w->len);
    if (rc < 0)
        LOG_E("%s: unmapping PF iova %#llx+%#llx: %s", s->t->bdf, (unsigned long long)w->iova,
              (unsigned long long)w->len, strerror(-rc));
    else
        w->mapped = false;
    return rc;
}

void vfe_pf_iova_destroy(struct vfe_pf_iova *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nwin; i++) {
        struct pf_window *w = &s->win[i];
        if (w->user != NO_USER)
            LOG_W("%s: PF iova window of user %d (%#llx) still held at close", s->t->bdf, w->user,
                  (unsigned long long)w->iova);
        if (w->mapped)
            unmap_window(s, w);
    }
    free(s->win);
    free(s);
}

static bool user_valid(unsigned user)
{
    return user <= VFE_PF_IOVA_MAX_VF;   /* VFE_PF_IOVA_ADMIN is 0, VFs 1.. */
}

static struct pf_window *find(const struct vfe_pf_iova *s, unsigned user)
{
    if (!user_valid(user))
        return NULL;
    for (unsigned i = 0; i < s->nwin; i++)
        if (s->win[i].user == (int)user)
            return &s->win[i];
    return NULL;
}

int vfe_pf_iova_alloc(struct vfe_pf_iova *s, unsigned user, uint64_t len, uint64_t *iova)
{
    if (!s || !iova || !len || !user_valid(user))
        return -EINVAL;
    /* the window and its guard page must fit in the space */
    if (len > s->end - s->base - VFE_PF_IOVA_PAGE)
        return -E2BIG;
    len = (len + VFE_PF_IOVA_PAGE - 1) & ~(VFE_PF_IOVA_PAGE - 1);
    if (find(s, user))
        return -EEXIST;
    uint64_t need = len + VFE_PF_IOVA_PAGE, at = s->base;
    unsigned pos = 0;
    for (; pos < s->nwin; pos++) {
        const struct pf_window *w = &s->win[pos];
        if (w->iova - at >= need)
            break;
        at = w->iova + w->len + VFE_PF_IOVA_PAGE;
    }
    if (pos == s->nwin && s->end - at < need)
        return -ENOSPC;
    struct pf_window *win = realloc(s->win, (s->nwin + 1) * sizeof(*win));
    if (!win)
        return -ENOMEM;
    s->win = win;
    memmove(&win[pos + 1], &win[pos], (s->nwin - pos) * sizeof(*win));
    win[pos] = (struct pf_window){.iova = at, .len = len, .user = (int)user};
    s->nwin++;
    *iova = at;
    return 0;
}

int vfe_pf_iova_map(struct vfe_pf_iova *s, unsigned user, int fd, uint64_t offset, uint32_t prot)
{
    struct pf_window *w = s ? find(s, user) : NULL;
    if (!w)
        return -ENOENT;
    if (w->mapped)
        return -EBUSY;
    int rc = s->t->ops->dma_map(s->t, w->iova, w->len, fd, offset, prot);
    if (rc < 0) {
        LOG_E("%s: mapping PF iova %#llx+%#llx for user %u: %s", s->t->bdf, (unsigned long long)w->iova,
              (unsigned long long)w->len, user, strerror(-rc));
        return rc;
    }
    w->mapped = true;
    return 0;
}

int vfe_pf_iova_release(struct vfe_pf_iova *s, unsigned user)
{
    struct pf_window *w = s ? find(s, user) : NULL;
    if (!w)
        return -ENOENT;
    int rc = w->mapped ? unmap_window(s, w) : 0;
    if (rc < 0) {
        w->user = NO_USER;
        return rc;
    }
    unsigned i = (unsigned)(w - s->win);
    memmove(&s->win[i], &s->win[i + 1], (s->nwin - i - 1) * sizeof(*w));
    s->nwin--;
    return 0;
}

int vfe_pf_iova_window(const struct vfe_pf_iova *s, unsigned user, uint64_t *iova, uint64_t *len, bool *mapped)
{
    const struct pf_window *w = s ? find(s, user) : NULL;
    if (!w)
        return -ENOENT;
    if (iova)
        *iova = w->iova;
    if (len)
        *len = w->len;
    if (mapped)
        *mapped = w->mapped;
    return 0;
}

unsigned vfe_pf_iova_windows(const struct vfe_pf_iova *s) { return s ? s->nwin : 0; }
