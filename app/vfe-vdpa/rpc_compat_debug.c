/*
 * The peer's debug operations on one VF (vf {debug:true, vfdev,
 * test_operation:N}): force the device's migration state, start or stop
 * dirty tracking, read the state.  They bypass the vhost-user session's view
 * of the device, so each is logged at warning level, and (but for reading
 * the state) they are refused while the session is not running rings, while
 * a device operation is in flight, while QEMU has dirty tracking on (a
 * migration), and on direct-mode VFs (no admin queue).  Every operation is an
 * admin command answered later: the loop never waits.
 *
 * Debug dirty tracking writes a log of this file's own (QEMU's is not
 * touched); while it is on, QEMU cannot start a migration's tracking on that
 * VF (the device tracks into one log at a time) and an HA take-over does not
 * carry it: stop it first.
 *
 * Ownership: each operation in flight owns its struct dbg_op (freed by its
 * callback); a debug dirty log (memfd) is owned by this file's table from
 * the start to the stop that ends it (or a stop asked for a VF that is gone).
 */
#include "app/vfe-vdpa/rpc_compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "app/vfe-vdpa/vhostd.h"
#include "lib/log/vfe_log.h"

#define DBG_LOG_SIZE (1u << 20)   /* bitmap bytes: tracks the first 32 GiB of guest memory */
#define DBG_MAX_LOGS 64

enum dbg_kind { DBG_SET_STATE, DBG_LOG_START, DBG_LOG_STOP, DBG_GET_STATE };

/* test_operation N (the peer's numbering) and what it does. */
static const struct dbg_def {
    const char *name;
    enum dbg_kind kind;
    enum vfe_mig_state state;   /* DBG_SET_STATE */
} defs[] = {
    [1] = {"running", DBG_SET_STATE, VFE_MIG_RUNNING},
    [2] = {"quiesced", DBG_SET_STATE, VFE_MIG_QUIESCED},
    [3] = {"freeze", DBG_SET_STATE, VFE_MIG_FREEZED},
    [4] = {"start logging", DBG_LOG_START, 0},
    [5] = {"stop logging", DBG_LOG_STOP, 0},
    [6] = {"get lm status", DBG_GET_STATE, 0},
};
#define DBG_MAX_OP 6

/* Debug dirty logs started here and not stopped yet. */
static struct dbg_log {
    char bdf[VHOSTD_BDF_LEN];
    int fd;                     /* owned; -1: free slot */
    bool busy;                  /* a start or stop in flight */
} logs[DBG_MAX_LOGS];
static bool logs_init;

static struct dbg_log *log_find(const char *bdf)
{
    if (!logs_init) {
        for (unsigned i = 0; i < DBG_MAX_LOGS; i++)
            logs[i].fd = -1;
        logs_init = true;
    }
    for (unsigned i = 0; i < DBG_MAX_LOGS; i++)
        if (logs[i].fd >= 0 && !strcmp(logs[i].bdf, bdf))
            return &logs[i];
    return NULL;
}

static void log_drop(struct dbg_log *l)
{
    close(l->fd);
    l->fd = -1;
    l->busy = false;
}

/* VFs with a debug operation in flight (one at a time per VF). */
static char inflight[DBG_MAX_LOGS][VHOSTD_BDF_LEN];

static bool inflight_take(const char *bdf)
{
    int free_slot = -1;
    for (int i = 0; i < DBG_MAX_LOGS; i++) {
        if (!strcmp(inflight[i], bdf))
            return false;
        if (!inflight[i][0] && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        return false;
    snprintf(inflight[free_slot], VHOSTD_BDF_LEN, "%s", bdf);
    return true;
}

static void inflight_put(const char *bdf)
{
    for (int i = 0; i < DBG_MAX_LOGS; i++)
        if (!strcmp(inflight[i], bdf))
            inflight[i][0] = '\0';
}

struct dbg_op {
    struct rpc_call *call;
    char bdf[VHOSTD_BDF_LEN];
    int op;
};

/* The peer's replies: {"Success": bdf} or {"Error": text}, with errno/errstr. */
static void dbg_fail(struct rpc_call *c, const char *text, int err)
{
    compat_answer(c, json_pack("{s:s}", "Error", text), err);
}

static void dbg_finish(struct dbg_op *o, int err, json_t *device)
{
    inflight_put(o->bdf);
    if (err) {
        LOG_W("compat: debug operation %d on VF %s failed: %s", o->op, o->bdf, strerror(-err));
        json_decref(device);
        dbg_fail(o->call, "Fail to debug VF device", err);
    } else {
        json_t *r = json_pack("{s:s}", "Success", o->bdf);
        if (device)
            json_object_set_new(r, "device", device);
        compat_answer(o->call, r, COMPAT_OK);
    }
    free(o);
}

static void state_set(void *ctx, int err)
{
    dbg_finish(ctx, err, NULL);
}

static void state_got(void *ctx, int err, enum vfe_mig_state st)
{
    struct dbg_op *o = ctx;
    dbg_finish(o, err, err ? NULL : json_pack("{s:s, s:o}", "vf", o->bdf, "lm_status", json_sprintf("%u", st)));
}

static void log_started(void *ctx, int err)
{
    struct dbg_op *o = ctx;
    struct dbg_log *l = log_find(o->bdf);
    if (l && err)
        log_drop(l);
    else if (l)
        l->busy = false;
    dbg_finish(o, err, NULL);
}

static void log_stopped(void *ctx, int err)
{
    struct dbg_op *o = ctx;
    struct dbg_log *l = log_find(o->bdf);
    if (l)
        log_drop(l);   /* the device no longer writes it, whatever the answer */
    dbg_finish(o, err, NULL);
}

static int log_start(struct vhostd_vf *vf, struct dbg_op *o)
{
    struct dbg_log *l = NULL;
    for (unsigned i = 0; i < DBG_MAX_LOGS && !l; i++)
        if (logs[i].fd < 0)
            l = &logs[i];
    if (!l)
        return -ENOSPC;
    int fd = memfd_create("vfe-debug-log", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, DBG_LOG_SIZE) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *l = (struct dbg_log){.fd = fd, .busy = true};
    snprintf(l->bdf, sizeof(l->bdf), "%s", o->bdf);
    int rc = vdpa_vf_log_start(vf->dev, fd, 0, DBG_LOG_SIZE, log_started, o);
    if (rc < 0)
        log_drop(l);
    return rc;
}

/* test_mode (or the peer server's name for it, size_mode): 1 bitmap, 2 bytemap. */
static int size_mode(json_t *params, int *mode)
{
    json_t *v = json_object_get(params, "test_mode");
    if (!v)
        v = json_object_get(params, "size_mode");
    if (!v) {
        *mode = 1;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2)
        return -EINVAL;
    *mode = (int)json_integer_value(v);
    return 0;
}

/* Why the VF cannot take a debug operation now: 0, or -errno with the reason logged. */
static int refusal(struct vhostd_vf *vf, const struct dbg_def *def, struct dbg_log *l)
{
    const char *why = NULL;
    int err = 0;
    struct vdpa_session_stats st;
    vdpa_session_stats(vf->session, &st);
    const char *tracking = vdpa_vf_dirty_tracking(vf->dev);
    if (!vf->pf) {
        why = "direct mode: the VF has no admin queue";
        err = -EOPNOTSUPP;
    } else if (def->kind != DBG_GET_STATE && (!st.connected || vdpa_vf_state(vf->dev) != VDPA_VF_RUNNING)) {
        why = "no vhost-user session runs the device";
        err = -ENOTCONN;
    } else if (vdpa_vf_step_pending(vf->dev) || (l && l->busy)) {
        why = "a device operation is in flight";
        err = -EBUSY;
    } else if (tracking && !l) {
        why = "dirty tracking for a migration is on";
        err = -EBUSY;
    } else if (def->kind == DBG_LOG_START && l) {
        why = "debug dirty tracking is on already";
        err = -EALREADY;
    } else if (def->kind == DBG_LOG_STOP && !l) {
        why = "no debug dirty tracking to stop (start it first)";
        err = -EINVAL;
    }
    if (why)
        LOG_W("compat: debug operation %s on VF %s refused: %s", def->name, vf->rec.bdf, why);
    return err;
}

int compat_vf_debug(struct vhostd *d, const char *bdf, json_t *params, struct rpc_call *c)
{
    json_t *jo = json_object_get(params, "test_operation");
    int mode;
    if (!json_is_integer(jo) || json_integer_value(jo) < 1 || json_integer_value(jo) > DBG_MAX_OP ||
        size_mode(params, &mode) < 0) {
        compat_bad_params(c, "vf", "test_operation must be 1..6 and test_mode 1 or 2");
        return 0;
    }
    int op = (int)json_integer_value(jo);
    const struct dbg_def *def = &defs[op];
    LOG_W("compat: debug operation %d (%s) on VF %s asked over TCP", op, def->name, bdf);
    struct dbg_log *l = log_find(bdf);
    struct vhostd_vf *vf = vhostd_reg_find_vf(&d->reg, bdf);
    if (!vf) {
        if (l && !l->busy)
            log_drop(l);   /* its VF is gone, and the log with the VF's tracking */
        if (vhostd_prov_vf_pending(&d->prov, bdf))
            dbg_fail(c, "VF is in restore state", -EBUSY);
        else
            dbg_fail(c, "Fail to find VF device", COMPAT_NO_VF);
        return 0;
    }
    if (l && !l->busy && !vdpa_vf_dirty_tracking(vf->dev)) {
        log_drop(l);   /* the device stopped tracking meanwhile (the VF was removed and added again) */
        l = NULL;
    }
    if (def->kind == DBG_LOG_START && mode == 2) {
        LOG_W("compat: debug start logging on VF %s refused: vfe tracks in bitmaps (test_mode 1) only", bdf);
        dbg_fail(c, "Fail to debug VF device", -EOPNOTSUPP);
        return 0;
    }
    int err = refusal(vf, def, l);
    if (!err && !inflight_take(bdf))
        err = -EBUSY;
    if (err) {
        dbg_fail(c, "Fail to debug VF device", err);
        return 0;
    }
    struct dbg_op *o = malloc(sizeof(*o));
    if (!o) {
        inflight_put(bdf);
        dbg_fail(c, "Fail to debug VF device", -ENOMEM);
        return 0;
    }
    *o = (struct dbg_op){.call = c, .op = op};
    snprintf(o->bdf, sizeof(o->bdf), "%s", bdf);
    struct vfe_mig *mig = &vf->pf->mig;
    unsigned n = vf->rec.vf_num;
    switch (def->kind) {
    case DBG_SET_STATE: err = vfe_mig_set_state(mig, (uint16_t)n, def->state, state_set, o); break;
    case DBG_GET_STATE: err = vfe_mig_get_state(mig, (uint16_t)n, state_got, o); break;
    case DBG_LOG_START: err = log_start(vf, o); break;
    case DBG_LOG_STOP:
        l->busy = true;
        err = vdpa_vf_log_stop(vf->dev, log_stopped, o);
        if (err < 0)
            l->busy = false;
        break;
    }
    if (err < 0) {
        inflight_put(bdf);
        free(o);
        LOG_W("compat: debug operation %d on VF %s not started: %s", op, bdf, strerror(-err));
        dbg_fail(c, "Fail to debug VF device", err);
        return 0;
    }
    return RPC_PENDING;
}
