/*
 * Software dirty tracking for a device that tracks nothing (docs/migration.md,
 * "Software mode"): vfe marks in the front-end's log every page the device
 * may write, read from the split rings in guest memory:
 *   - the device-writable buffers of every descriptor chain the guest made
 *     available (indirect tables included), remembered per avail slot as
 *     they were when first read and marked again at every pass, for as long
 *     as the device may still write them (until the slot is reused, size
 *     entries later);
 *   - every used ring (rx and tx: the device writes them all).
 * Split rings only: a packed ring is refused (logged) and not walked.
 *
 * Every value read from guest memory is untrusted: a head or next index out
 * of the table, a chain longer than the queue size (loops), an indirect
 * table of a bad length, nested, or outside guest memory ends the chain
 * (the part read so far stays recorded); a writable buffer is clipped to the
 * memory table (the device cannot write outside its DMA maps).  Each kind of
 * problem is logged once per ring; the walker never reads outside what
 * guest->host returned.
 *
 * Passes that cannot be sure they saw every buffer (more than `size` new
 * avail entries since the last pass, a head posted twice among one pass's
 * new entries or again while the pass ran) are overruns: the whole memory
 * table is marked dirty once, counted, and warned about (at most once a
 * second).
 *
 * Ownership: the walker owns its records; the log (log_size bytes, bit n =
 * guest page n of 4 KiB) is borrowed from the caller and must stay mapped
 * until vdpa_swlog_free; guest->ctx is the caller's and must stay valid while
 * a pass may run (vdpa_swlog_set_guest(w, NULL) detaches it: passes then do
 * nothing).  Marks are atomic ORs: the front-end clears words while it syncs
 * and other VFs set bits in the same words.
 * Timing: everything is synchronous, on the caller's thread; no callback
 * but the guest accessors, which run only inside vdpa_swlog_pass/_mark_all.
 */
#ifndef VDPA_SWLOG_H
#define VDPA_SWLOG_H

#include <stdbool.h>
#include <stdint.h>

#define VDPA_SWLOG_PAGE 4096u
#define VDPA_SWLOG_MAX_RINGS 64u
#define VDPA_SWLOG_MAX_REGIONS 64u

struct vdpa_swlog_ring {
    uint16_t size;                  /* entries, 1..32768 */
    uint64_t desc, avail, used;     /* guest physical addresses */
};

struct vdpa_swlog_span {
    uint64_t gpa, size;
};

struct vdpa_swlog_guest {
    /* Our mapping of [gpa, gpa + len) if it lies in one region, else NULL. */
    void *(*host)(void *ctx, uint64_t gpa, uint64_t len);
    /* The memory table now: at most max spans into out, their count. */
    unsigned (*regions)(void *ctx, struct vdpa_swlog_span *out, unsigned max);
    /* Ring q (0..VDPA_SWLOG_MAX_RINGS-1): 1 and *out if it is set up, 0 if
     * not, -EPROTONOSUPPORT if the rings are packed. */
    int (*ring)(void *ctx, uint16_t q, struct vdpa_swlog_ring *out);
    void *ctx;
};

struct vdpa_swlog_stats {
    uint64_t passes;
    uint64_t overruns;      /* passes that marked the whole memory (see above) */
    uint64_t bad;           /* guest values refused (bad index, loop, bad indirect, outside memory) */
    uint64_t marks;         /* page ranges marked (records, new buffers, used rings) */
};

struct vdpa_swlog;

/* name: for log lines (copied).  NULL with errno (EINVAL, ENOMEM). */
struct vdpa_swlog *vdpa_swlog_new(uint8_t *log, uint64_t log_size, const struct vdpa_swlog_guest *guest,
                                  const char *name);
void vdpa_swlog_free(struct vdpa_swlog *w);
/* guest NULL: detach (the front-end is gone); a new guest starts every ring afresh. */
void vdpa_swlog_set_guest(struct vdpa_swlog *w, const struct vdpa_swlog_guest *guest);
/* -EPROTONOSUPPORT when the rings are packed (nothing can be tracked), else 0. */
int vdpa_swlog_check(struct vdpa_swlog *w);
/* One pass: used rings, every recorded buffer, the new avail entries.  The
 * first pass over a ring records all its avail slots (whatever the guest
 * made available before tracking started).  Returns the overruns it had (0/1). */
int vdpa_swlog_pass(struct vdpa_swlog *w);
/* Every page of the memory table dirty (a take-over, an overrun). */
void vdpa_swlog_mark_all(struct vdpa_swlog *w);
void vdpa_swlog_stats(const struct vdpa_swlog *w, struct vdpa_swlog_stats *st);

#endif
