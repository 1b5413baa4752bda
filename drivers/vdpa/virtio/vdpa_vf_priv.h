/* Internals of vdpa_vf (device half of one VF). */
#ifndef VDPA_VF_PRIV_H
#define VDPA_VF_PRIV_H

#include <sys/types.h>

#include "drivers/bus/vfio/vfe_dma_domain.h"
#include "drivers/vdpa/virtio/vdpa_swlog.h"
#include "drivers/vdpa/virtio/vdpa_vf.h"

struct vdpa_map {
    uint64_t gpa, size, fd_offset;
    dev_t dev;
    ino_t ino;
};

/* The admin command of an operation in flight (HA): set, and reported to the
 * observer, before the command is submitted, so a successor submits it again
 * (every step is idempotent on the device, see vdpa_vf_resume). */
enum vdpa_step {
    VDPA_STEP_NONE, VDPA_STEP_START_FREEZE, VDPA_STEP_START_RESTORE, VDPA_STEP_START_RUN,
    VDPA_STEP_STOP_QUIESCE, VDPA_STEP_STOP_FREEZE, VDPA_STEP_STOP_SAVE, VDPA_STEP_LOG_START, VDPA_STEP_LOG_STOP,
    VDPA_STEP_LOG_PULL_START,  /* not resumed: the log is not mapped in a successor, tracking starts again */
    VDPA_STEP_MAX
};

/* log_mode of software tracking: no device mode (VFE_MIG_TRACK_* are 1..4). */
#define VDPA_LOG_SOFTWARE 0x80
/* Seconds between two software passes while logging.  A buffer posted,
 * written, consumed and its descriptor posted again entirely between two
 * passes is lost to the walker unless it detects it (an overrun, which
 * marks all memory): the shorter the period, the rarer that is.  A pass
 * over a queue pair of 256-entry rings costs 1-2 us (bench/run swlog). */
#define VDPA_SWLOG_PERIOD 0.001

/* Pull mode (vdpa_vf_pull.c): the device keeps the bitmap; a timer reads it
 * in chunks, one report in flight at a time, and ORs it into the front-end's
 * log.  Owned by the VF (v->pull), with the mapping of the log (mmap of the
 * caller's log fd).  Released with a report in flight (the VF closes while
 * tracking), it is orphaned (v NULL) and freed by that report's callback. */
#define VDPA_PULL_CHUNK 16384u   /* bitmap bytes per report: 512 MiB of guest memory */
#define VDPA_PULL_PERIOD 0.05    /* seconds between passes */
struct vdpa_pull {
    struct vdpa_vf *v;         /* NULL: orphaned, the report in flight frees it */
    uint8_t *map;
    size_t map_len;
    uint8_t *log;              /* the log's first byte inside map */
    uint64_t size;             /* log bytes */
    uint32_t next;             /* byte offset of the next report in the pass */
    bool in_flight;            /* a report is at the device (its callback holds the VF) */
    bool in_pass;
    bool final_wanted;         /* a final pass starts when the current one ends */
    bool final_pass;           /* this pass is the final one */
    int final_err;
    void (*drained)(struct vdpa_vf *v, int err);   /* runs when the final pass ends */
    ev_timer tick;
    uint64_t passes, reports, errors;
    uint8_t buf[VDPA_PULL_CHUNK];
};

/* What a VF keeps per ring it really has (v->rings, v->nrings). */
struct vdpa_vf_ring {
    /* a kick the transport cannot turn into a doorbell write by itself (no
     * ioeventfd): the loop reads the eventfd (our own dup, closed when the
     * relay stops) and writes the doorbell.  First member: relay_cb finds
     * the ring from the watcher. */
    ev_io kick_relay;
    struct vdpa_ring dring;    /* direct mode: as programmed at the last start */
};

/* A wait (vdpa_vf_posted.c) for the device to acknowledge every write
 * posted to it so far, bounded by the transport timeout: cb(ctx, err) runs
 * once from the loop with 0, the refusal the transport latched (-errno),
 * -ENOTCONN or -ETIMEDOUT.  take: the refusal is reported to this waiter
 * and cleared (a start); else it stays latched for the next start (a
 * memory table reply). */
struct vdpa_ack_wait {
    ev_timer t;
    struct vdpa_vf *v;
    vdpa_done_cb cb;           /* NULL: not waiting */
    void *ctx;
    bool take;
    const char *what;          /* for the log: what the failure means */
};

struct vdpa_vf {
    struct ev_loop *loop;
    struct vdpa_pf_ref pf;
    uint16_t vf_num;
    struct vfe_transport *t;
    struct vfe_dma_domain *dom;
    struct vfe_virtio_pci vp;
    uint64_t dev_features;
    uint16_t max_pairs, num_queues;
    uint8_t mac[6];
    bool facts_read;           /* facts holds the device's answers (vdpa_vf_facts) */
    struct vdpa_vf_facts facts;
    /* facts the probe did not get (or an adopted VF's): asked without
     * waiting from vdpa_vf_facts, kept when answered (vdpa_vf.c) */
    struct vdpa_facts_read { struct vdpa_vf *v; bool pending; } fq_size, fq_mtu;
    bool fq_failed;
    enum vdpa_vf_state state;

    /* VDPA_MAX_REGIONS entries, owned by the VF: allocated at the first map
     * (vdpa_vf_maps_alloc: a VF that never had guest memory carries none),
     * freed with the VF.  NULL while nmaps is 0 and nothing was mapped yet. */
    struct vdpa_map *maps;
    unsigned nmaps;
    bool kick_set[VDPA_MAX_RINGS], call_set[VDPA_MAX_RINGS];
    /* min(num_queues, VDPA_MAX_RINGS) entries, owned by the VF: allocated
     * when it is opened or restored (vdpa_vf_alloc_rings), freed with it.
     * Every ring index is checked against num_queues before it is used. */
    struct vdpa_vf_ring *rings;
    unsigned nrings;

    /* the operation in progress (one at a time) */
    struct vfe_dev_state st;
    vdpa_done_cb done_cb;
    vdpa_stop_cb stop_cb;
    void *op_ctx;
    int op_err;
    ev_timer defer;            /* completes an operation outside the caller's call */
    ev_timer log_map_t;        /* bounds the wait for the PF's answer to the log window's map */
    uint16_t saved_avail[VDPA_MAX_RINGS];
    unsigned nsaved;

    /* dirty log in the PF's IOVA space (window of user vf_num, vfe_pf_iova.h) */
    bool log_mapped, log_active;
    uint64_t log_size;

    uint8_t log_mode;          /* VFE_MIG_TRACK_PUSH_BITMAP, _PULL_BITMAP or VDPA_LOG_SOFTWARE while log_active */
    int log_fd;                /* borrowed from the caller for the log start only */
    uint64_t log_offset;
    struct vdpa_pull *pull;    /* the VF's mapping of the log (pull and software modes) and pull's state, else NULL */

    /* software mode (vdpa_vf_swlog.c): the walker marks into pull->log */
    struct vdpa_swlog_guest guest;   /* the session's accessors (has_guest) */
    bool has_guest;
    struct vdpa_swlog *sw;     /* owned, while software tracking runs */
    ev_timer sw_tick;

    /* direct mode (vdpa_vf_direct.c): no PF admin queue, the VF's own common config */
    bool direct;
    uint64_t dmask;            /* rings programmed at the last start */
    uint64_t dfeatures;        /* the front-end's features of that start */
    ev_timer dpoll;            /* polls a reset for completion */
    unsigned dpoll_left;
    bool dpoll_reading;        /* a status read of the poll is at the device */
    void (*dnext)(struct vdpa_vf *v, int err);
    struct dprog *dprog;       /* a start being programmed (owned, vdpa_vf_direct.c), else NULL */

    /* posted device calls (vdpa_vf_posted.c): the watcher on the transport's
     * watch fd (from the VF's first use on the loop), a start waiting for the
     * device to acknowledge what was posted, asynchronous counter reads
     * (owned, a list), the copy of a direct start's rings while it waits */
    ev_io pwatch;
    bool pwatch_on;
    struct vdpa_ack_wait start_wait;   /* a start's barrier */
    struct vdpa_ack_wait mem_wait;     /* vdpa_vf_sync: a memory table reply */
    struct vdpa_ctr_req *ctr_reqs;
    ev_timer ctr_defer;
    struct vdpa_ring *brings;
    unsigned bnrings;
    uint64_t bfeatures;
    bool unmapped;             /* the last set_mem posted unmaps */

    uint8_t step;              /* enum vdpa_step */
    void (*observer)(void *ctx);
    void *observer_ctx;
    unsigned resumed;          /* times this VF was taken over by a restarted daemon */
};

/* Size v->rings for num_queues (capped at VDPA_MAX_RINGS).  0 / -ENOMEM. */
int vdpa_vf_alloc_rings(struct vdpa_vf *v, unsigned num_queues);

/* v->maps allocated (once): 0 / -ENOMEM. */
int vdpa_vf_maps_alloc(struct vdpa_vf *v);

/* Enter step s (reported to the observer before the command goes out). */
void vdpa_vf_step(struct vdpa_vf *v, enum vdpa_step s);

void vdpa_vf_defer_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* Complete the operation in progress from the loop with err. */
void vdpa_vf_finish(struct vdpa_vf *v, int err);

/* vdpa_vf_direct.c: start/stop without admin commands (completion through
 * vdpa_vf_finish); cancel: a reset poll in progress stops (close). */
int vdpa_direct_start(struct vdpa_vf *v, uint64_t features, const struct vdpa_ring *rings, unsigned nrings);
int vdpa_direct_stop(struct vdpa_vf *v);
void vdpa_direct_cancel(struct vdpa_vf *v);
/* Pieces of the operations, for vdpa_vf_resume (vdpa_vf_ha.c). */
void vdpa_vf_build_start_state(struct vdpa_vf *v, uint64_t features, const struct vdpa_ring *rings, unsigned nrings);
void vdpa_vf_start_frozen(void *ctx, int err);
void vdpa_vf_start_restored(void *ctx, int err);
void vdpa_vf_stop_quiesced(void *ctx, int err);
void vdpa_vf_stop_frozen(void *ctx, int err);
int vdpa_vf_log_submit(struct vdpa_vf *v, uint64_t iova, uint64_t log_size);
void vdpa_vf_log_stopped(void *ctx, int err);
void vdpa_vf_log_release(struct vdpa_vf *v);

/* vdpa_vf_posted.c.  watch: the transport goes to posted mode and its
 * replies are drained from the loop (idempotent; 0 on kernel VFIO, which has
 * nothing to watch).  unwatch: the watcher, a waiting start and the counter
 * reads go (close, abandon; no callback runs).  barrier: 0 when the device
 * acknowledged every posted write, a latched refusal (-errno, logged, taken),
 * or 1: next(ctx, err) runs later from the loop once it did (0), refused one
 * (-errno) or did not answer within the transport timeout (-ETIMEDOUT),
 * each logged. */
int vdpa_posted_watch(struct vdpa_vf *v);
/* Forget the facts' reads still at the device (close, abandon). */
void vdpa_vf_facts_cancel(struct vdpa_vf *v);
void vdpa_posted_unwatch(struct vdpa_vf *v);
int vdpa_posted_barrier(struct vdpa_vf *v, vdpa_done_cb next, void *ctx);
bool vdpa_posted_waiting(const struct vdpa_vf *v);
void vdpa_vf_counters_cancel_all(struct vdpa_vf *v);

/* vdpa_vf_pull.c */
/* Map the front-end's log (fd borrowed, offset any) for merging.  0 / -errno. */
int vdpa_pull_map(struct vdpa_vf *v, int fd, uint64_t offset, uint64_t size);
/* Stop the timer and unmap (nothing may be in flight: after a drain). */
void vdpa_pull_release(struct vdpa_vf *v);
/* Tracking runs: passes every VDPA_PULL_PERIOD. */
void vdpa_pull_run(struct vdpa_vf *v);
/* Stop the timer; read the whole bitmap once more (after the device stopped
 * writing or the caller asks), then done(v, err), from an admin callback. */
void vdpa_pull_drain(struct vdpa_vf *v, void (*done)(struct vdpa_vf *v, int err));
/* OR n bytes of src into dst, 64-bit atomically where aligned, never
 * clearing a bit: the front-end and other VFs write the same log. */
void vdpa_pull_merge(uint8_t *dst, const uint8_t *src, size_t n);

/* vdpa_vf_swlog.c: software tracking into v->pull's mapping of the log.
 * start: the walker, a first pass (before the front-end hears the reply),
 * passes every VDPA_SWLOG_PERIOD.  -EOPNOTSUPP without a guest or with
 * packed rings, -ENOMEM.  final: one complete pass now (the device stopped,
 * or logging ends).  release: the timer and the walker (the mapping is
 * pull's).  mark_all: every page of guest memory (a take-over). */
int vdpa_sw_start(struct vdpa_vf *v);
void vdpa_sw_final(struct vdpa_vf *v);
void vdpa_sw_release(struct vdpa_vf *v);
void vdpa_sw_mark_all(struct vdpa_vf *v);

#endif
