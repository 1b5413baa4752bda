/* Internals of sim/admin: the PF admin virtqueue and its two command dialects. */
#ifndef SIM_ADMIN_ADMIN_PRIV_H
#define SIM_ADMIN_ADMIN_PRIV_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/spec/sim_admin_spec.h"
#include "sim/net/virtq_dev.h"
#include "sim/sim.h"

/* Commands served per queue notification before yielding to the loop. */
#define ADM_BATCH 64
/* Completions waiting for the injected delay; when full, popping pauses. */
#define ADM_PENDING_MAX 256
/* Largest encoded state (blob or parts list) of one VF. */
#define ADM_STATE_MAX 8192
/* Pull bitmaps cover at most this much guest memory. */
#define ADM_PULL_MAX_RANGE (64ull << 30)

/* Outcome of a command, mapped onto each dialect's status codes. */
enum adm_err {
    ADM_OK = 0,
    ADM_EINVAL,    /* malformed command or bad field */
    ADM_ENODEV,    /* unknown VF */
    ADM_EBUSY,     /* not allowed in the VF's current state */
    ADM_ENOSPC,    /* result area too small */
    ADM_EUNSUPP,   /* unknown command or unsupported mode */
};

struct adm_done {
    uint16_t head;
    uint32_t len;
    ev_tstamp due;
};

struct adm_priv {
    struct sim_fn *pf;
    struct vq_elem elem;                 /* 16 KiB: never on the stack */
    uint8_t cmd[SIM_ADM_MAX_CMD];
    uint8_t *res;                        /* SIM_ADM_MAX_RESULT bytes */
    ev_timer batch;                      /* zero timer: continue a long queue */
    ev_timer delay;                      /* fires for fifo[fifo_head] */
    ev_timer slow;                       /* admin_slow: the next command's turn */
    ev_tstamp slow_due;                  /* 0: no command waiting for its turn */
    struct adm_done fifo[ADM_PENDING_MAX];
    unsigned fifo_head, fifo_count;
    bool list_used;                      /* virtio LIST_USE accepted */
    uint64_t in_use;                     /* its opcode bitmap */
};

/* One command being served: its data (after the dialect header) and room
 * for the result. */
struct adm_req {
    struct sim_fn *pf;
    const uint8_t *data;
    size_t data_len;
    uint8_t *res;
    size_t res_cap;
    size_t res_len;                      /* set by the handler */
    char why[160];                       /* reason of a refusal, for the log */
};

/* admin_queue.c: injected failure status for the next command, 0 if none. */
int sim_adm_fault_take(struct sim *s);
/* The dialect is served by this PF (--admin-dialect, global or per PF). */
bool sim_adm_dialect_enabled(const struct sim_fn *pf, bool nvidia);

/* admin_nvidia.c / admin_virtio.c: serve one popped chain whose first
 * `len` readable bytes are in cmd.  Returns the used length to report. */
uint32_t sim_adm_nv_serve(struct adm_priv *p, const struct vq_elem *e, size_t len, bool too_long, int injected);
uint32_t sim_adm_std_serve(struct adm_priv *p, const struct vq_elem *e, size_t len, bool too_long, int injected);

/* admin_mode.c */
const char *sim_adm_mig_name(enum sim_mig_state st);
/* nvidia MODIFY_STATUS: validates the transition, logs, resumes net. */
enum adm_err sim_adm_mig_modify(struct sim_fn *vf, unsigned to, char *why, size_t why_len);
/* virtio DEV_MODE_SET flags (0, STOPPED, FROZEN). */
enum adm_err sim_adm_mode_set(struct sim_fn *vf, uint8_t flags, char *why, size_t why_len);

/* admin_state.c: device state as nvidia TLVs or as virtio device parts. */
enum adm_fmt { ADM_FMT_TLV, ADM_FMT_PARTS };

struct adm_state {
    bool has_common;
    struct sim_state_common common;
    bool has_drv_features;
    uint64_t drv_features;
    bool has_status;
    uint8_t status;
    bool has_net_cfg;
    struct virtio_net_config net_cfg;
    size_t net_cfg_len;
    bool has_rx_mode;
    uint8_t rx_mode;
    bool has_pairs;
    uint16_t pairs;
    uint64_t vq_cfg_mask, vq_split_mask;           /* bit = queue index */
    struct sim_state_vq_cfg vq_cfg[SIM_MAX_QUEUES];
    struct sim_state_vq_split vq_split[SIM_MAX_QUEUES];
};

/* Encode vf's state.  `filter` 0 = every record, else only records of that
 * wire type.  Returns the total size (ADM_ENCODE_OVERFLOW when `cap` is too
 * small), *count the number of records. */
#define ADM_ENCODE_OVERFLOW ((size_t)-1)
size_t sim_adm_state_encode(const struct sim_fn *vf, enum adm_fmt fmt, uint32_t filter,
                            uint8_t *buf, size_t cap, unsigned *count);
/* Parse and validate a record list for vf without touching it. */
enum adm_err sim_adm_state_parse(const struct sim_fn *vf, enum adm_fmt fmt, const uint8_t *buf, size_t len,
                                 struct adm_state *st, char *why, size_t why_len);
void sim_adm_state_apply(struct sim_fn *vf, const struct adm_state *st);

/* admin_dirty.c: data = struct sim_nv_start_track + sges. */
enum adm_err sim_adm_dirty_start(struct sim_fn *pf, struct sim_fn *vf, const uint8_t *data, size_t len,
                                 char *why, size_t why_len);
void sim_adm_dirty_stop(struct sim_fn *vf);
/* The tracking modes offered (bit 1 << SIM_NV_TRACK_*), after --dirty-tracking. */
unsigned sim_adm_dirty_modes(const struct sim *s);
uint64_t sim_adm_dirty_pending_bytes(const struct sim_fn *vf);
/* Pull mode: copy the bitmap from byte `offset` into req->res and clear it. */
enum adm_err sim_adm_dirty_report(struct sim_fn *vf, uint32_t offset, struct adm_req *r);

#endif
