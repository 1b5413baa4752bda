/*
 * The last switchover of one VF, as the vhost-user session saw it: when the
 * front-end stopped the device (the migration source) and when it started it
 * again (the destination).  The session records events as they happen
 * (CLOCK_MONOTONIC); readers get offsets in microseconds from the first event
 * of each half, so a record says how long the switchover took and where the
 * time went, not when it was.
 *
 * Source half, opened by the first GET_VRING_BASE while the session is not
 * already stopping (a new switchover):
 *   get_base (t0) -> stop_begun -> stopped (freeze + save done) -> each ring's
 *   GET_VRING_BASE answered.
 *   A device that did not run has no stop: stop_begun and stopped stay unset;
 *   a device already stopped before (a front-end that disables its rings
 *   first) has them as negative offsets.
 * Destination half, opened by the first memory table (SET_MEM_TABLE or
 * ADD_MEM_REG) while no ring runs and no destination half is open:
 *   mem (t0) -> mem_mapped (the DMA map done, for the last table before the
 *   start) -> start_begun -> started (the start operation completed).
 *   connected: the connection's accept, usually before t0 (QEMU connects long
 *   before a switchover): given as a negative offset, or unset.
 *
 * Ownership: plain data, embedded in (and owned by) the vdpa_session; only
 * the loop thread writes or reads it.  A new half replaces the last one; an
 * HA take-over starts empty.
 */
#ifndef VDPA_TIMELINE_H
#define VDPA_TIMELINE_H

#include <stdbool.h>
#include <stdint.h>

#define VDPA_TL_RINGS 64    /* = VDPA_MAX_RINGS */
#define VDPA_TL_UNSET INT64_MIN

enum vdpa_tl_src_event { VDPA_TL_STOP_BEGUN, VDPA_TL_STOPPED };
enum vdpa_tl_dst_event { VDPA_TL_MEM_MAPPED, VDPA_TL_START_BEGUN, VDPA_TL_STARTED };

struct vdpa_tl_source {
    uint64_t t0_ns;                     /* 0: no source switchover seen */
    int64_t stop_begun_ns, stopped_ns;  /* absolute; 0: not (yet) */
    int64_t answered_ns[VDPA_TL_RINGS];
    uint64_t asked_mask, answered_mask;
};

struct vdpa_tl_dest {
    uint64_t t0_ns;                     /* 0: no destination start seen */
    int64_t connected_ns, mem_mapped_ns, start_begun_ns, started_ns;   /* 0: not (yet) */
    unsigned rings;                     /* rings the completed start runs */
};

struct vdpa_timeline {
    struct vdpa_tl_source src;
    struct vdpa_tl_dest dst;
    int64_t connected_ns;               /* the current connection's accept */
    int64_t stop_begun_ns, stopped_ns;  /* the device's last stop since its last start */
    bool src_open;                      /* a source half waits for its answers */
    bool dst_open;                      /* a destination half waits for (more of) its start */
};

/* Recording (the session's hooks).  Start with a zeroed struct. */
void vdpa_tl_connected(struct vdpa_timeline *tl);
/* GET_VRING_BASE for ring; stopping: the session already holds (a switchover
 * in progress), else this opens a new source half. */
void vdpa_tl_get_base(struct vdpa_timeline *tl, uint16_t ring, bool stopping);
void vdpa_tl_source(struct vdpa_timeline *tl, enum vdpa_tl_src_event e);
void vdpa_tl_answered(struct vdpa_timeline *tl, uint16_t ring);
/* A memory table; running: some ring runs (not a start from stopped). */
void vdpa_tl_mem(struct vdpa_timeline *tl, bool running);
void vdpa_tl_dest(struct vdpa_timeline *tl, enum vdpa_tl_dst_event e, unsigned rings);

/* Reading: offsets from t0 in microseconds, VDPA_TL_UNSET where unset. */
struct vdpa_tl_view {
    bool src_valid, dst_valid;
    uint64_t src_age_us, dst_age_us;    /* now - t0 */
    int64_t stop_begun_us, stopped_us, first_answer_us, last_answer_us;
    unsigned nasked, nanswered;
    int64_t answered_us[VDPA_TL_RINGS];
    int64_t connected_us, mem_mapped_us, start_begun_us, started_us;
    unsigned dst_rings;
};
void vdpa_tl_view(const struct vdpa_timeline *tl, struct vdpa_tl_view *v);

struct vdpa_session;
/* The session's timeline (defined in vdpa_session.c). */
const struct vdpa_timeline *vdpa_session_timeline(const struct vdpa_session *s);

#endif
