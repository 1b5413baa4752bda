/* Software dirty tracking: walk the split rings in guest memory and mark what
 * the device may write (see vdpa_swlog.h). */
#include "drivers/vdpa/virtio/vdpa_swlog.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/virtio_ring.h>

#include "lib/log/vfe_log.h"

/* Ranges kept per avail slot; a chain with more is kept as their hull (more
 * pages marked, none lost). */
#define SLOT_RANGES 4u

struct range {
    uint64_t page;
    uint64_t n;
};

struct slot {
    uint8_t nr;
    struct range r[SLOT_RANGES];
};

/* problems logged once per ring */
enum { P_HEAD = 1, P_LOOP = 2, P_NEXT = 4, P_INDIRECT = 8, P_NESTED = 16, P_OUTSIDE = 32, P_RING = 64 };

struct ring {
    bool known;
    struct vdpa_swlog_ring cfg;
    uint16_t seen;             /* avail entries before this one are recorded */
    struct slot *slots;        /* cfg.size: the buffers of each avail slot as first read */
    uint32_t *stamp;           /* cfg.size, per head: the pass that last saw it new */
    unsigned reported;         /* P_* logged already */
};

struct vdpa_swlog {
    uint8_t *log;
    uint64_t log_bits;
    struct vdpa_swlog_guest g;
    bool has_guest;
    bool packed_reported;
    char name[48];
    uint32_t pass_no;
    struct vdpa_swlog_span spans[VDPA_SWLOG_MAX_REGIONS];
    unsigned nspans;
    struct timespec last_warn;
    struct vdpa_swlog_stats st;
    struct ring rings[VDPA_SWLOG_MAX_RINGS];
};

struct vdpa_swlog *vdpa_swlog_new(uint8_t *log, uint64_t log_size, const struct vdpa_swlog_guest *guest,
                                  const char *name)
{
    if (!log || !log_size || log_size > UINT64_MAX / 8) {
        errno = EINVAL;
        return NULL;
    }
    struct vdpa_swlog *w = calloc(1, sizeof(*w));
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    w->log = log;
    w->log_bits = log_size * 8;
    snprintf(w->name, sizeof(w->name), "%s", name ? name : "?");
    vdpa_swlog_set_guest(w, guest);
    return w;
}

static void ring_drop(struct ring *r)
{
    free(r->slots);
    free(r->stamp);
    memset(r, 0, sizeof(*r));
}

void vdpa_swlog_free(struct vdpa_swlog *w)
{
    if (!w)
        return;
    for (unsigned q = 0; q < VDPA_SWLOG_MAX_RINGS; q++)
        ring_drop(&w->rings[q]);
    free(w);
}

void vdpa_swlog_set_guest(struct vdpa_swlog *w, const struct vdpa_swlog_guest *guest)
{
    for (unsigned q = 0; q < VDPA_SWLOG_MAX_RINGS; q++)
        ring_drop(&w->rings[q]);
    w->has_guest = guest != NULL;
    if (guest)
        w->g = *guest;
    w->nspans = 0;
}

void vdpa_swlog_stats(const struct vdpa_swlog *w, struct vdpa_swlog_stats *st) { *st = w->st; }

/* ---- marking: atomic ORs, skipped where the bits are set already ---- */

static inline void or_byte(uint8_t *b, uint8_t m)
{
    if ((__atomic_load_n(b, __ATOMIC_RELAXED) & m) != m)
        __atomic_fetch_or(b, m, __ATOMIC_RELAXED);
}

static inline void or_word(uint64_t *d)
{
    if (__atomic_load_n(d, __ATOMIC_RELAXED) != ~0ull)
        __atomic_fetch_or(d, ~0ull, __ATOMIC_RELAXED);
}

static void mark_pages(struct vdpa_swlog *w, uint64_t first, uint64_t n)
{
    if (first >= w->log_bits || !n)
        return;
    if (n > w->log_bits - first)
        n = w->log_bits - first;
    w->st.marks++;
    uint64_t p = first, end = first + n;
    uint8_t *log = w->log;
    if (p & 7) {   /* the first byte's tail */
        uint64_t lim = (p | 7) + 1 < end ? (p | 7) + 1 : end;
        or_byte(log + p / 8, (uint8_t)(((1u << (lim - p)) - 1) << (p & 7)));
        p = lim;
    }
    for (; p + 8 <= end && ((uintptr_t)(log + p / 8) & 7); p += 8)
        or_byte(log + p / 8, 0xff);
    for (; p + 64 <= end; p += 64)
        or_word((uint64_t *)(void *)(log + p / 8));
    for (; p + 8 <= end; p += 8)
        or_byte(log + p / 8, 0xff);
    if (p < end)
        or_byte(log + p / 8, (uint8_t)((1u << (end - p)) - 1));
}

static void mark_gpa(struct vdpa_swlog *w, uint64_t gpa, uint64_t len)
{
    if (len)
        mark_pages(w, gpa / VDPA_SWLOG_PAGE, (gpa + len - 1) / VDPA_SWLOG_PAGE - gpa / VDPA_SWLOG_PAGE + 1);
}

static void load_spans(struct vdpa_swlog *w)
{
    w->nspans = w->has_guest ? w->g.regions(w->g.ctx, w->spans, VDPA_SWLOG_MAX_REGIONS) : 0;
    if (w->nspans > VDPA_SWLOG_MAX_REGIONS)
        w->nspans = VDPA_SWLOG_MAX_REGIONS;
}

void vdpa_swlog_mark_all(struct vdpa_swlog *w)
{
    load_spans(w);
    for (unsigned i = 0; i < w->nspans; i++)
        mark_gpa(w, w->spans[i].gpa, w->spans[i].size);
}

/* ---- problems and overruns ---- */

static void problem(struct vdpa_swlog *w, uint16_t q, struct ring *r, unsigned kind, const char *what)
{
    w->st.bad++;
    if (r->reported & kind)
        return;
    r->reported |= kind;
    LOG_W("%s: ring %u: %s (software dirty tracking; logged once per ring)", w->name, q, what);
}

static void overrun(struct vdpa_swlog *w, uint16_t q, const char *why)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!w->st.overruns || now.tv_sec > w->last_warn.tv_sec) {
        w->last_warn = now;
        LOG_W("%s: ring %u: %s: every page of guest memory marked dirty (overruns so far: %llu)", w->name, q, why,
              (unsigned long long)w->st.overruns + 1);
    }
}

/* ---- recording a chain ---- */

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

static struct desc read_desc(const uint8_t *table, uint32_t i)
{
    struct vring_desc raw;
    memcpy(&raw, table + (size_t)i * sizeof(raw), sizeof(raw));   /* one copy: the guest may change it meanwhile */
    return (struct desc){le64toh(raw.addr), le32toh(raw.len), le16toh(raw.flags), le16toh(raw.next)};
}

static void slot_add(struct slot *s, uint64_t gpa, uint64_t len)
{
    uint64_t first = gpa / VDPA_SWLOG_PAGE, last = (gpa + len - 1) / VDPA_SWLOG_PAGE;
    for (unsigned i = 0; i < s->nr; i++) {   /* overlapping or adjacent: one range */
        struct range *x = &s->r[i];
        if (first <= x->page + x->n && last + 1 >= x->page) {
            uint64_t lo = first < x->page ? first : x->page;
            uint64_t hi = last > x->page + x->n - 1 ? last : x->page + x->n - 1;
            x->page = lo;
            x->n = hi - lo + 1;
            return;
        }
    }
    if (s->nr < SLOT_RANGES) {
        s->r[s->nr++] = (struct range){first, last - first + 1};
        return;
    }
    /* too many pieces: their hull */
    uint64_t lo = first, hi = last;
    for (unsigned i = 0; i < s->nr; i++) {
        lo = s->r[i].page < lo ? s->r[i].page : lo;
        hi = s->r[i].page + s->r[i].n - 1 > hi ? s->r[i].page + s->r[i].n - 1 : hi;
    }
    s->nr = 1;
    s->r[0] = (struct range){lo, hi - lo + 1};
}

/* A writable buffer, clipped to the memory table: the device writes only
 * through its DMA maps, which are the regions. */
static void add_writable(struct vdpa_swlog *w, uint16_t q, struct ring *r, struct slot *s, uint64_t gpa,
                         uint32_t len)
{
    if (!len)
        return;
    uint64_t end = gpa + len;
    if (end < gpa)
        end = UINT64_MAX;
    bool any = false;
    for (unsigned i = 0; i < w->nspans; i++) {
        const struct vdpa_swlog_span *sp = &w->spans[i];
        uint64_t lo = gpa > sp->gpa ? gpa : sp->gpa;
        uint64_t top = sp->gpa + sp->size < sp->gpa ? UINT64_MAX : sp->gpa + sp->size;
        uint64_t hi = end < top ? end : top;
        if (lo < hi) {
            slot_add(s, lo, hi - lo);
            any = true;
        }
    }
    if (!any)
        problem(w, q, r, P_OUTSIDE, "a device-writable buffer outside guest memory (the device cannot reach it)");
}

static void record_chain(struct vdpa_swlog *w, uint16_t q, struct ring *r, const uint8_t *table, uint16_t head,
                         struct slot *s)
{
    uint16_t size = r->cfg.size;
    s->nr = 0;
    if (head >= size) {
        problem(w, q, r, P_HEAD, "an avail entry names a descriptor beyond the table");
        return;
    }
    const uint8_t *t = table;
    uint32_t tn = size, i = head;
    bool indirect = false;
    /* a chain (indirect entries included) is never longer than the queue: this also ends loops */
    for (uint32_t steps = 0;; steps++) {
        if (steps >= size) {
            problem(w, q, r, P_LOOP, "a descriptor chain longer than the queue (a loop?)");
            return;
        }
        struct desc d = read_desc(t, i);
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (indirect) {
                problem(w, q, r, P_NESTED, "a nested indirect table");
                return;
            }
            const uint8_t *it = NULL;
            if (d.len && d.len % sizeof(struct vring_desc) == 0 && d.len / sizeof(struct vring_desc) <= size)
                it = w->g.host(w->g.ctx, d.addr, d.len);
            if (!it) {
                problem(w, q, r, P_INDIRECT, "an indirect table of a bad length or outside guest memory");
                return;
            }
            t = it;
            tn = d.len / (uint32_t)sizeof(struct vring_desc);
            indirect = true;
            i = 0;
            continue;   /* the direct chain ends with its indirect descriptor */
        }
        if (d.flags & VRING_DESC_F_WRITE)
            add_writable(w, q, r, s, d.addr, d.len);
        if (!(d.flags & VRING_DESC_F_NEXT))
            return;
        if (d.next >= tn) {
            problem(w, q, r, P_NEXT, "a next index beyond the table");
            return;
        }
        i = d.next;
    }
}

static void mark_slot(struct vdpa_swlog *w, const struct slot *s)
{
    for (unsigned k = 0; k < s->nr; k++)
        mark_pages(w, s->r[k].page, s->r[k].n);
}

/* ---- a pass ---- */

static bool same_cfg(const struct vdpa_swlog_ring *a, const struct vdpa_swlog_ring *b)
{
    return a->size == b->size && a->desc == b->desc && a->avail == b->avail && a->used == b->used;
}

static void ring_forget(struct vdpa_swlog *w, struct ring *r)
{
    /* the device may have written them until the ring changed: once more */
    for (unsigned i = 0; r->slots && i < r->cfg.size; i++)
        mark_slot(w, &r->slots[i]);
    ring_drop(r);
}

static int ring_init(struct ring *r, const struct vdpa_swlog_ring *c)
{
    r->slots = calloc(c->size, sizeof(*r->slots));
    r->stamp = calloc(c->size, sizeof(*r->stamp));
    if (!r->slots || !r->stamp) {
        ring_drop(r);
        return -ENOMEM;
    }
    r->cfg = *c;
    r->known = true;
    return 0;
}

static inline uint16_t avail_idx(const uint8_t *avail)
{
    return le16toh(__atomic_load_n((const uint16_t *)(const void *)(avail + 2), __ATOMIC_ACQUIRE));
}

static inline uint16_t avail_head(const uint8_t *avail, uint16_t size, uint16_t e)
{
    uint16_t h;
    memcpy(&h, avail + 4 + 2u * (e % size), 2);
    return le16toh(h);
}

/* One ring: true if it overran. */
static bool walk_ring(struct vdpa_swlog *w, uint16_t q, const struct vdpa_swlog_ring *c)
{
    struct ring *r = &w->rings[q];
    if (r->known && !same_cfg(&r->cfg, c))
        ring_forget(w, r);
    bool first = !r->known;
    if (first && ring_init(r, c) < 0) {
        LOG_E("%s: ring %u: no memory for software dirty tracking: all memory marked dirty", w->name, q);
        return true;
    }
    uint16_t size = c->size;
    mark_gpa(w, c->used, 4u + 8u * size + 2u);   /* flags, idx, ring, avail_event */
    if (size & (size - 1) || (c->avail & 1)) {   /* indices wrap at 65536: a power of two only */
        problem(w, q, r, P_RING, "a ring size that is not a power of two, or a misaligned avail ring");
        return false;
    }
    const uint8_t *table = w->g.host(w->g.ctx, c->desc, 16ull * size);
    const uint8_t *avail = w->g.host(w->g.ctx, c->avail, 4ull + 2ull * size);
    if (!table || !avail) {   /* the device cannot read it either: it uses no buffer of it */
        problem(w, q, r, P_RING, "descriptor table or avail ring outside guest memory");
        return false;
    }
    /* the index first: a buffer whose slot is reused below was consumed
     * before the reuse was posted, so before this read; marking the old
     * record after it covers the device's last write */
    uint16_t idx = avail_idx(avail);
    for (unsigned i = 0; i < size; i++)
        mark_slot(w, &r->slots[i]);
    uint16_t news = (uint16_t)(idx - r->seen);
    bool over = false, check = !first;
    if (first || news > size) {
        over = !first;
        if (over)
            overrun(w, q, "more new avail entries than the queue holds since the last pass");
        news = size;   /* every slot: whatever was made available before */
    }
    uint32_t pass = w->pass_no;
    for (uint16_t k = 0; k < news; k++) {
        uint16_t e = (uint16_t)(idx - news + k);
        uint16_t head = avail_head(avail, size, e);
        struct slot *s = &r->slots[e % size];
        record_chain(w, q, r, table, head, s);
        mark_slot(w, s);
        if (!check || head >= size)
            continue;
        if (r->stamp[head] == pass && !over) {   /* consumed and posted again between two passes */
            over = true;
            overrun(w, q, "a descriptor posted twice between two passes");
        }
        r->stamp[head] = pass;
    }
    r->seen = idx;
    if (check && !over) {   /* posted again while this pass read it */
        uint16_t idx2 = avail_idx(avail), late = (uint16_t)(idx2 - idx);
        for (uint16_t k = 0; k < late && k < size && !over; k++) {
            uint16_t head = avail_head(avail, size, (uint16_t)(idx + k));
            if (head < size && r->stamp[head] == pass) {
                over = true;
                overrun(w, q, "a descriptor posted again while it was read");
            }
        }
    }
    return over;
}

int vdpa_swlog_check(struct vdpa_swlog *w)
{
    struct vdpa_swlog_ring c;
    for (uint16_t q = 0; w->has_guest && q < VDPA_SWLOG_MAX_RINGS; q++)
        if (w->g.ring(w->g.ctx, q, &c) == -EPROTONOSUPPORT)
            return -EPROTONOSUPPORT;
    return 0;
}

int vdpa_swlog_pass(struct vdpa_swlog *w)
{
    if (!w->has_guest)
        return 0;
    w->st.passes++;
    if (++w->pass_no == 0)   /* stamps of 0 mean "never" */
        w->pass_no = 1;
    load_spans(w);
    bool over = false;
    for (uint16_t q = 0; q < VDPA_SWLOG_MAX_RINGS; q++) {
        struct vdpa_swlog_ring c;
        int rc = w->g.ring(w->g.ctx, q, &c);
        if (rc == -EPROTONOSUPPORT && !w->packed_reported) {
            w->packed_reported = true;
            LOG_E("%s: packed rings: software dirty tracking walks split rings only", w->name);
        }
        if (rc <= 0 || c.size == 0) {
            if (w->rings[q].known)
                ring_forget(w, &w->rings[q]);
            continue;
        }
        over |= walk_ring(w, q, &c);
    }
    if (over) {
        w->st.overruns++;
        vdpa_swlog_mark_all(w);
    }
    return over;
}
