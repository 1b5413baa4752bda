/* The PF's IOVA space: windows handed out first fit, mapped through the PF's transport (see vfe_pf_iova.h). */
#include "drivers/bus/vfio/vfe_pf_iova.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/bus/vfio/vfe_dma_apply.h"
#include "lib/log/vfe_log.h"

#define NO_USER (-1)   /* a window whose unmap failed: reserved until destroy */

struct pf_window {
    uint64_t iova, len;
    int user;
    bool mapped;             /* sent to the device (its answer may be pending) */
    struct pf_op *op;        /* the map or unmap the device has not answered yet */
};

/* A posted map or unmap whose answer the space waits for: the transport's ctx. */
struct pf_op {
    struct pf_op *next;
    struct vfe_pf_iova *s;
    uint64_t iova;           /* its window's */
    bool map;
    vfe_pf_iova_cb cb;       /* map: the user's; NULL once cancelled */
    void *ctx;
};

struct vfe_pf_iova {
    struct vfe_transport *t;
    uint64_t base, end;
    struct pf_window *win;   /* sorted by iova */
    unsigned nwin;
    uint64_t changes;        /* windows added, mapped or removed */
    struct pf_op *ops;       /* answers outstanding */
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

static void log_unmap_failed(const struct vfe_pf_iova *s, const struct pf_window *w, int rc)
{
    LOG_E("%s: unmapping PF iova %#llx+%#llx: %s (the range stays reserved)", s->t->bdf,
          (unsigned long long)w->iova, (unsigned long long)w->len, strerror(-rc));
}

static int unmap_window(struct vfe_pf_iova *s, struct pf_window *w)
{
    int rc = vfe_dma_apply_unmap(s->t, w->iova, w->len);
    if (rc < 0)
        log_unmap_failed(s, w, rc);
    else
        w->mapped = false;
    return rc;
}

static void op_unlink(struct vfe_pf_iova *s, struct pf_op *op)
{
    for (struct pf_op **p = &s->ops; *p; p = &(*p)->next)
        if (*p == op) {
            *p = op->next;
            return;
        }
}

/* The transport forgets op's completion: after this it is never called. */
static void op_drop(struct vfe_pf_iova *s, struct pf_op *op)
{
    vfe_transport_cancel_reads(s->t, op);
    op_unlink(s, op);
    free(op);
}

static void ops_drop_all(struct vfe_pf_iova *s)
{
    while (s->ops)
        op_drop(s, s->ops);
    for (unsigned i = 0; i < s->nwin; i++)
        s->win[i].op = NULL;
}

void vfe_pf_iova_destroy_quiet(struct vfe_pf_iova *s)
{
    if (!s)
        return;
    ops_drop_all(s);
    free(s->win);
    free(s);
}

void vfe_pf_iova_destroy(struct vfe_pf_iova *s)
{
    if (!s)
        return;
    ops_drop_all(s);
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
    s->changes++;
    *iova = at;
    return 0;
}

static void log_map_failed(const struct vfe_pf_iova *s, const struct pf_window *w, int rc)
{
    LOG_E("%s: mapping PF iova %#llx+%#llx for user %d: %s", s->t->bdf, (unsigned long long)w->iova,
          (unsigned long long)w->len, w->user, strerror(-rc));
}

int vfe_pf_iova_map(struct vfe_pf_iova *s, unsigned user, int fd, uint64_t offset, uint32_t prot)
{
    struct pf_window *w = s ? find(s, user) : NULL;
    if (!w)
        return -ENOENT;
    if (w->mapped)
        return -EBUSY;
    int rc = vfe_dma_apply_map(s->t, w->iova, w->len, fd, offset, prot);
    if (rc < 0) {
        log_map_failed(s, w, rc);
        return rc;
    }
    w->mapped = true;
    s->changes++;
    return 0;
}

static struct pf_window *find_iova(const struct vfe_pf_iova *s, uint64_t iova)
{
    for (unsigned i = 0; i < s->nwin; i++)
        if (s->win[i].iova == iova)
            return &s->win[i];
    return NULL;
}

static void window_remove(struct vfe_pf_iova *s, struct pf_window *w)
{
    unsigned i = (unsigned)(w - s->win);
    memmove(&s->win[i], &s->win[i + 1], (s->nwin - i - 1) * sizeof(*w));
    s->nwin--;
}

/* From the PF's drain: the device answered op (its window still exists:
 * only destroy removes a window with an op, and it drops the op first). */
static void op_done(void *ctx, int err)
{
    struct pf_op *op = ctx;
    struct vfe_pf_iova *s = op->s;
    struct pf_window *w = find_iova(s, op->iova);
    vfe_pf_iova_cb cb = op->cb;
    void *cb_ctx = op->ctx;
    op_unlink(s, op);
    bool map = op->map;
    free(op);
    if (!w)
        return;
    w->op = NULL;
    s->changes++;
    if (map) {
        if (err) {
            log_map_failed(s, w, err);
            w->mapped = false;
        }
        if (cb)
            cb(cb_ctx, err);
    } else if (err) {
        log_unmap_failed(s, w, err);   /* reserved (NO_USER) until destroy */
    } else {
        window_remove(s, w);
    }
}

static struct pf_op *op_new(struct vfe_pf_iova *s, struct pf_window *w, bool map, vfe_pf_iova_cb cb, void *ctx)
{
    struct pf_op *op = calloc(1, sizeof(*op));
    if (op)
        *op = (struct pf_op){.next = s->ops, .s = s, .iova = w->iova, .map = map, .cb = cb, .ctx = ctx};
    return op;
}

int vfe_pf_iova_map_async(struct vfe_pf_iova *s, unsigned user, int fd, uint64_t offset, uint32_t prot,
                          vfe_pf_iova_cb cb, void *ctx)
{
    struct pf_window *w = s ? find(s, user) : NULL;
    if (!w)
        return -ENOENT;
    if (w->mapped)
        return -EBUSY;
    if (!cb)
        return -EINVAL;
    struct pf_op *op = op_new(s, w, true, cb, ctx);
    if (!op)
        return -ENOMEM;
    int rc = vfe_transport_dma_map_async(s->t, w->iova, w->len, fd, offset, prot, op_done, op);
    if (rc == -EOPNOTSUPP) {   /* answered inside: kernel VFIO, or writes not posted */
        free(op);
        return vfe_pf_iova_map(s, user, fd, offset, prot);
    }
    if (rc < 0) {
        free(op);
        log_map_failed(s, w, rc);
        return rc;
    }
    s->ops = op;
    w->op = op;
    w->mapped = true;
    s->changes++;
    return 1;
}

void vfe_pf_iova_cancel(struct vfe_pf_iova *s, unsigned user)
{
    struct pf_window *w = s ? find(s, user) : NULL;
    if (w && w->op) {
        op_drop(s, w->op);
        w->op = NULL;
    }
}

int vfe_pf_iova_release(struct vfe_pf_iova *s, unsigned user)
{
    struct pf_window *w = s ? find(s, user) : NULL;
    if (!w)
        return -ENOENT;
    if (w->op) {   /* the user gave up on its map: the unmap below follows it on the socket */
        op_drop(s, w->op);
        w->op = NULL;
    }
    s->changes++;
    w->user = NO_USER;
    if (!w->mapped) {
        window_remove(s, w);
        return 0;
    }
    /* posted: reserved until the device acknowledged the unmap (never handed out while it may reach it) */
    struct pf_op *op = op_new(s, w, false, NULL, NULL);
    int rc = op ? vfe_transport_dma_unmap_async(s->t, w->iova, w->len, op_done, op) : -ENOMEM;
    if (rc == 0) {
        s->ops = op;
        w->op = op;
        return 0;
    }
    free(op);
    if (rc == -EOPNOTSUPP)
        rc = unmap_window(s, w);
    else
        log_unmap_failed(s, w, rc);
    if (rc < 0)
        return rc;   /* reserved until destroy */
    window_remove(s, w);
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
uint64_t vfe_pf_iova_changes(const struct vfe_pf_iova *s) { return s ? s->changes : 0; }

/* Blob, host byte order: a head, then nwin windows sorted by iova. */
struct pf_blob_head {
    uint32_t magic;      /* VFE_PF_IOVA_BLOB_MAGIC */
    uint16_t version;    /* VFE_PF_IOVA_BLOB_VERSION */
    uint16_t reserved;   /* 0 */
    uint32_t nwin;
    uint32_t pad;        /* 0 */
    uint64_t base, end;
};

struct pf_blob_win {
    uint64_t iova, len;
    uint32_t user;       /* VFE_PF_IOVA_ADMIN, a VF number, or PF_BLOB_RESERVED */
    uint32_t flags;      /* PF_BLOB_MAPPED */
};

#define PF_BLOB_RESERVED 0xffffffffu
#define PF_BLOB_MAPPED   1u

int vfe_pf_iova_export(const struct vfe_pf_iova *s, void *buf, size_t cap, size_t *len)
{
    if (!s || !len || (!buf && cap))
        return -EINVAL;
    size_t need = sizeof(struct pf_blob_head) + (size_t)s->nwin * sizeof(struct pf_blob_win);
    *len = need;
    if (cap < need)
        return -ENOSPC;
    struct pf_blob_head h = {.magic = VFE_PF_IOVA_BLOB_MAGIC, .version = VFE_PF_IOVA_BLOB_VERSION,
                             .nwin = s->nwin, .base = s->base, .end = s->end};
    uint8_t *p = buf;
    memcpy(p, &h, sizeof(h));
    p += sizeof(h);
    for (unsigned i = 0; i < s->nwin; i++) {
        const struct pf_window *w = &s->win[i];
        struct pf_blob_win bw = {.iova = w->iova, .len = w->len,
                                 .user = w->user == NO_USER ? PF_BLOB_RESERVED : (uint32_t)w->user,
                                 .flags = w->mapped ? PF_BLOB_MAPPED : 0};
        memcpy(p, &bw, sizeof(bw));
        p += sizeof(bw);
    }
    return 0;
}

static struct vfe_pf_iova *refuse(const struct vfe_transport *t, int err, const char *why, unsigned win)
{
    if (win == ~0u)
        LOG_E("%s: PF iova import refused: %s", t->bdf, why);
    else
        LOG_E("%s: PF iova import refused: window %u %s", t->bdf, win, why);
    errno = err;
    return NULL;
}

/* Why window w (after prev, NULL for the first) cannot be in [base, end), or NULL. */
static const char *window_invalid(const struct pf_blob_win *w, const struct pf_blob_win *prev, uint64_t base,
                                  uint64_t end)
{
    if (!w->len || (w->iova | w->len) % VFE_PF_IOVA_PAGE)
        return "empty or not page aligned";
    if (w->iova < base || w->iova > end || w->len > end - w->iova || end - w->iova - w->len < VFE_PF_IOVA_PAGE)
        return "outside the space or without its guard page";
    if (prev && w->iova < prev->iova + prev->len + VFE_PF_IOVA_PAGE)
        return "overlaps, touches or precedes the previous one";
    if (w->flags & ~PF_BLOB_MAPPED)
        return "has unknown flags";
    if (w->user == PF_BLOB_RESERVED)
        return (w->flags & PF_BLOB_MAPPED) ? NULL : "reserved but not mapped";
    if (!user_valid(w->user))
        return "has an unknown user";
    return NULL;
}

struct vfe_pf_iova *vfe_pf_iova_import(struct vfe_transport *t, const void *buf, size_t len)
{
    if (!t || !buf) {
        errno = EINVAL;
        return NULL;
    }
    struct pf_blob_head h;
    if (len < sizeof(h))
        return refuse(t, EPROTO, "blob shorter than its head", ~0u);
    memcpy(&h, buf, sizeof(h));
    if (h.magic != VFE_PF_IOVA_BLOB_MAGIC)
        return refuse(t, EPROTO, "not a PF iova blob", ~0u);
    if (h.version != VFE_PF_IOVA_BLOB_VERSION)
        return refuse(t, EPROTO, "blob version unknown (newer?)", ~0u);
    if (h.nwin > (len - sizeof(h)) / sizeof(struct pf_blob_win) ||
        len != sizeof(h) + (size_t)h.nwin * sizeof(struct pf_blob_win))
        return refuse(t, EPROTO, "length does not match the window count", ~0u);
    if (h.reserved || h.pad)
        return refuse(t, EINVAL, "reserved fields set", ~0u);
    if (!h.base || h.end <= h.base || (h.base | h.end) % VFE_PF_IOVA_PAGE)
        return refuse(t, EINVAL, "space bounds not page aligned or empty", ~0u);

    const uint8_t *p = (const uint8_t *)buf + sizeof(h);
    struct pf_blob_win prev, w;
    for (unsigned i = 0; i < h.nwin; i++) {
        memcpy(&w, p + (size_t)i * sizeof(w), sizeof(w));
        const char *why = window_invalid(&w, i ? &prev : NULL, h.base, h.end);
        if (why)
            return refuse(t, EINVAL, why, i);
        for (unsigned j = 0; j < i && w.user != PF_BLOB_RESERVED; j++) {
            struct pf_blob_win o;
            memcpy(&o, p + (size_t)j * sizeof(o), sizeof(o));
            if (o.user == w.user)
                return refuse(t, EINVAL, "has a user that holds another window", i);
        }
        prev = w;
    }

    struct vfe_pf_iova *s = vfe_pf_iova_create_in(t, h.base, h.end);
    if (!s)
        return NULL;
    s->win = h.nwin ? calloc(h.nwin, sizeof(*s->win)) : NULL;
    if (h.nwin && !s->win) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    for (unsigned i = 0; i < h.nwin; i++) {
        memcpy(&w, p + (size_t)i * sizeof(w), sizeof(w));
        s->win[i] = (struct pf_window){.iova = w.iova, .len = w.len,
                                       .user = w.user == PF_BLOB_RESERVED ? NO_USER : (int)w.user,
                                       .mapped = w.flags & PF_BLOB_MAPPED};
    }
    s->nwin = h.nwin;
    LOG_I("%s: PF iova space adopted: %u windows", t->bdf, s->nwin);
    return s;
}
