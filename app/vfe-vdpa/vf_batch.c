/* Bulk VF provisioning in loop-sized chunks (see vf_batch.h). */
#include "app/vfe-vdpa/vf_batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/vfe-vdpa/operator_ops.h"
#include "app/vfe-vdpa/rpc_compat.h"
#include "app/vfe-vdpa/vf_msix.h"
#include "app/vfe-vdpa/vhostd.h"
#include "lib/log/vfe_log.h"

struct batch_op {
    char bdf[VHOSTD_BDF_LEN];
    bool remove, direct;
    bool added;               /* its add succeeded (stop_on_error may still undo it) */
    unsigned vectors;         /* MSI-X vectors to size the VF with ("msix"/"queues"), 0: as it is */
    const char *socket;       /* into the batch's params (kept), NULL: the default */
    const char *uuid;         /* same, NULL: none */
};

struct vhostd_batch {
    struct vhostd *d;
    struct rpc_call *call;
    struct vhostd_batch *next;
    json_t *params;           /* a reference: ops point into it */
    json_t *results;          /* one object per op, in order */
    ev_idle idle;             /* a chunk when the loop has nothing else to do */
    ev_timer guard;           /* and at least one per VHOSTD_BATCH_GUARD_S under constant traffic */
    bool ran;                 /* a chunk ran since the guard last looked */
    double started;
    unsigned n, done, stopping_devices, failed;
    unsigned adding;          /* adds whose device bring-up runs (answered by batch_added) */
    bool released;            /* the provisioning hold is given back (shutdown) */
    bool stopped;             /* daemon shutdown: no further op */
    bool stop_on_error;       /* the caller asked: ops after a failed one are not applied */
    int halted_at;            /* the first op (in order) that failed then, -1 */
    struct batch_op ops[];
};

/* ---- validation: the whole list, before anything runs ---- */

enum key_type { K_BDF, K_TRUE, K_BOOL, K_ABS_PATH, K_UUID, K_SIZE };

struct key_rule {
    const char *key;
    enum key_type type;
    bool add, remove;         /* allowed in that op */
};

static const struct key_rule rules[] = {
    {"add", K_TRUE, true, false},
    {"remove", K_TRUE, false, true},
    {"vfdev", K_BDF, true, true},
    {"socket_file", K_ABS_PATH, true, false},
    {"uuid", K_UUID, true, false},
    {"direct", K_BOOL, true, false},
    {"msix", K_SIZE, true, false},
    {"queues", K_SIZE, true, false},
};

static const struct key_rule *rule_of(const char *key)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (!strcmp(rules[i].key, key))
            return &rules[i];
    return NULL;
}

static int check_value(const struct key_rule *r, json_t *v, char *why, size_t len)
{
    const char *s = json_string_value(v);
    switch (r->type) {
    case K_TRUE:
        if (!json_is_true(v))
            return snprintf(why, len, "\"%s\" must be true (one op per entry)", r->key), -1;
        return 0;
    case K_BOOL:
        if (!json_is_boolean(v))
            return snprintf(why, len, "\"%s\" must be true or false", r->key), -1;
        return 0;
    case K_BDF: {
        char bdf[VHOSTD_BDF_LEN];
        if (!s || vhostd_bdf_normalise(s, bdf) < 0)
            return snprintf(why, len, "\"%s\" must be a PCI address DDDD:BB:DD.F (or BB:DD.F)", r->key), -1;
        return 0;
    }
    case K_ABS_PATH:
        if (!s || s[0] != '/')
            return snprintf(why, len, "\"%s\" must be an absolute path", r->key), -1;
        if (strlen(s) >= VHOSTD_SOCK_PATH_LEN)
            return snprintf(why, len, "\"%s\" is longer than a unix socket path can be", r->key), -1;
        return 0;
    case K_SIZE:
        return 0;   /* the pair is checked as `vf` checks it (parse_op) */
    case K_UUID:
        if (!json_is_null(v) && !s)
            return snprintf(why, len, "\"%s\" must be a string or null", r->key), -1;
        if (s && strlen(s) >= sizeof(((struct vhostd_vf_rec *)0)->uuid))
            return snprintf(why, len, "\"%s\" is too long", r->key), -1;
        return 0;
    }
    return -1;
}

/* One entry into op; -1 with why. */
static int parse_op(json_t *e, struct batch_op *op, char *why, size_t len)
{
    if (!json_is_object(e))
        return snprintf(why, len, "not an object"), -1;
    bool add = json_is_true(json_object_get(e, "add")), remove = json_is_true(json_object_get(e, "remove"));
    if (add == remove)
        return snprintf(why, len, "exactly one of \"add\" and \"remove\" must be true"), -1;
    const char *key;
    json_t *v;
    json_object_foreach(e, key, v) {
        const struct key_rule *r = rule_of(key);
        if (!r || !(add ? r->add : r->remove))
            return snprintf(why, len, "\"%.40s\" is not a key of a %s op", key, add ? "add" : "remove"), -1;
        if (check_value(r, v, why, len) < 0)
            return -1;
    }
    json_t *bdf = json_object_get(e, "vfdev");
    if (!bdf)
        return snprintf(why, len, "\"vfdev\" is required"), -1;
    vhostd_bdf_normalise(json_string_value(bdf), op->bdf);
    op->remove = remove;
    op->direct = json_is_true(json_object_get(e, "direct"));
    op->socket = json_string_value(json_object_get(e, "socket_file"));
    op->uuid = json_string_value(json_object_get(e, "uuid"));
    return add && vhostd_msix_param(e, &op->vectors, why, len) < 0 ? -1 : 0;
}

/* A VF named twice, or one socket path asked for by two adds (as written;
 * spellings of one path that differ are caught by the registry per op). */
static int find_twin(const struct batch_op *ops, unsigned i, const char **what)
{
    for (unsigned j = 0; j < i; j++) {
        if (!strcmp(ops[j].bdf, ops[i].bdf)) {
            *what = "VF";
            return (int)j;
        }
        if (ops[i].socket && ops[j].socket && !strcmp(ops[i].socket, ops[j].socket)) {
            *what = "socket_file";
            return (int)j;
        }
    }
    return -1;
}

/* Append "ops[i]: why" to the refusal, as many as fit. */
static void note_bad(char *msg, size_t len, unsigned *nbad, unsigned i, const char *why)
{
    size_t used = strlen(msg);
    if (used + 40 < len)
        snprintf(msg + used, len - used, "%sops[%u]: %s", (*nbad)++ ? "; " : "", i, why);
    else
        (*nbad)++;
}

static struct vhostd_batch *validate(struct vhostd *d, json_t *params, char *msg, size_t len)
{
    json_t *ops = json_object_get(params, "ops");
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v) {
        if (!strcmp(key, "stop_on_error") && json_is_boolean(v))
            continue;
        if (!strcmp(key, "stop_on_error")) {
            snprintf(msg, len, "\"stop_on_error\" must be true or false");
            return NULL;
        }
        if (strcmp(key, "ops")) {
            snprintf(msg, len, "\"%.40s\" is not a parameter of vf_batch (\"ops\", \"stop_on_error\")", key);
            return NULL;
        }
    }
    if (!json_is_array(ops) || !json_array_size(ops)) {
        snprintf(msg, len, "\"ops\" (a non-empty array of VF add/remove ops) is required");
        return NULL;
    }
    size_t n = json_array_size(ops);
    if (n > VHOSTD_BATCH_MAX_OPS) {
        snprintf(msg, len, "%zu ops: at most %d per batch; nothing was applied", n, VHOSTD_BATCH_MAX_OPS);
        return NULL;
    }
    struct vhostd_batch *b = calloc(1, sizeof(*b) + n * sizeof(b->ops[0]));
    if (!b) {
        snprintf(msg, len, "out of memory");
        return NULL;
    }
    int w = snprintf(msg, len, "batch refused, nothing was applied: ");
    char *list = msg + w;
    size_t list_len = len - (size_t)w;
    list[0] = '\0';
    unsigned nbad = 0;
    for (unsigned i = 0; i < n; i++) {
        char why[160];
        const char *what;
        int twin;
        if (parse_op(json_array_get(ops, i), &b->ops[i], why, sizeof(why)) < 0)
            note_bad(list, list_len, &nbad, i, why);
        else if ((twin = find_twin(b->ops, i, &what)) >= 0) {
            snprintf(why, sizeof(why), "%s %s is also in ops[%d]", what,
                     *what == 'V' ? b->ops[i].bdf : b->ops[i].socket, twin);
            b->ops[i].bdf[0] = '\0';   /* reported once, not again by a third twin */
            note_bad(list, list_len, &nbad, i, why);
        }
    }
    if (nbad) {
        size_t used = strlen(msg);
        if (used + 24 < len)
            snprintf(msg + used, len - used, " (%u bad op%s)", nbad, nbad > 1 ? "s" : "");
        free(b);
        return NULL;
    }
    b->d = d;
    b->n = (unsigned)n;
    b->stop_on_error = json_is_true(json_object_get(params, "stop_on_error"));
    b->halted_at = -1;
    b->params = json_incref(params);
    b->results = json_array();
    for (unsigned i = 0; i < n; i++)   /* answered in place, in the order of ops, whenever each ends */
        json_array_append_new(b->results, json_null());
    return b;
}

/* ---- applying, a few ops per loop iteration ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void unlink_batch(struct vhostd_batch *b)
{
    for (struct vhostd_batch **p = &b->d->batches; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            return;
        }
}

static void stop_watchers(struct vhostd_batch *b)
{
    ev_idle_stop(b->d->loop, &b->idle);
    ev_timer_stop(b->d->loop, &b->guard);
}

static void finish(struct vhostd_batch *b)
{
    stop_watchers(b);
    unlink_batch(b);
    if (!b->released)
        vhostd_prov_release(&b->d->prov);   /* the one write of the batch */
    double ms = (now_s() - b->started) * 1000.0;
    LOG_N("vf_batch: %u ops, %u failed, %.1f ms", b->n, b->failed, ms);
    rpc_call_result(b->call, json_pack("{s:o, s:i, s:i, s:f}", "results", b->results, "ok", b->n - b->failed,
                                       "failed", b->failed, "elapsed_ms", ms));
    json_decref(b->params);
    free(b);
}

static void maybe_finish(struct vhostd_batch *b)
{
    if (b->done == b->n && !b->stopping_devices && !b->adding)
        finish(b);
}

static void device_gone(void *ctx)
{
    struct vhostd_batch *b = ctx;
    b->stopping_devices--;
    maybe_finish(b);
}

static void result(struct vhostd_batch *b, unsigned i, int rc, const char *msg, const struct vhostd_vf *vf)
{
    const struct batch_op *op = &b->ops[i];
    json_t *r = json_pack("{s:s, s:s, s:b}", "vfdev", op->bdf, "op", op->remove ? "remove" : "add", "ok", rc >= 0);
    if (rc < 0) {
        b->failed++;
        json_object_update_new(r, json_pack("{s:i, s:s}", "code", vhostd_rpc_code(rc), "message", msg));
    } else if (vf) {
        json_object_set_new(r, "device", vhostd_rpc_vf_json(vf));
    }
    json_array_set_new(b->results, i, r);
}

struct batch_add {
    struct vhostd_batch *b;
    unsigned i;
};

static void chunk(struct vhostd_batch *b);

/* stop_on_error: an add after the failed op succeeded while that op's
 * device was still coming up: removed again, as if it never ran. */
static void undo_add(struct vhostd_batch *b, unsigned i)
{
    struct batch_op *op = &b->ops[i];
    char msg[512], why[300];
    op->added = false;
    int rc = vhostd_op_vf_remove(b->d, op->bdf, device_gone, b, msg, sizeof(msg));
    b->stopping_devices += rc == 0;
    if (rc == 0)
        snprintf(why, sizeof(why), "not applied: ops[%d] failed before it (stop_on_error); its add was undone",
                 b->halted_at);
    else
        snprintf(why, sizeof(why), "ops[%d] failed before it (stop_on_error), but undoing this add failed: %.100s",
                 b->halted_at, msg);
    LOG_W("vf_batch: ops[%u] %s: %s", i, op->bdf, why);
    result(b, i, rc == 0 ? -ECANCELED : rc, why, NULL);
}

/* stop_on_error: op i failed; every later add that is up already goes again. */
static void halt(struct vhostd_batch *b, unsigned i)
{
    if (!b->stop_on_error || b->stopped || (b->halted_at >= 0 && (unsigned)b->halted_at < i))
        return;
    b->halted_at = (int)i;
    for (unsigned k = i + 1; k < b->n; k++)
        if (b->ops[k].added)
            undo_add(b, k);
}

/* An add's device is up, or failed (from the loop). */
static void batch_added(void *ctx, const char *bdf, struct vhostd_vf *vf, int err, const char *msg)
{
    struct batch_add a = *(struct batch_add *)ctx;
    struct vhostd_batch *b = a.b;
    free(ctx);
    b->adding--;
    result(b, a.i, err, msg, vf);
    if (err) {
        halt(b, a.i);
    } else {
        b->ops[a.i].added = true;
        if (b->halted_at >= 0 && a.i > (unsigned)b->halted_at && !b->stopped)
            undo_add(b, a.i);
    }
    if (b->done < b->n && !b->stopped && !ev_is_active(&b->idle))
        ev_idle_start(b->d->loop, &b->idle);   /* stop_on_error waited for this answer */
    maybe_finish(b);
}

static int start_add(struct vhostd_batch *b, unsigned i, char *msg, size_t len)
{
    const struct batch_op *op = &b->ops[i];
    struct batch_add *a = malloc(sizeof(*a));
    if (!a) {
        snprintf(msg, len, "out of memory");
        return -ENOMEM;
    }
    *a = (struct batch_add){b, i};
    int rc = vhostd_op_vf_add_sized(b->d, op->bdf, op->socket, op->uuid, op->direct, op->vectors, batch_added, a,
                                    msg, len);
    if (rc < 0)
        free(a);
    else
        b->adding++;
    return rc;
}

static void run_one(struct vhostd_batch *b)
{
    unsigned i = b->done;
    const struct batch_op *op = &b->ops[i];
    char msg[512];
    int rc;
    b->done++;
    if (b->stopped) {
        rc = -ECANCELED;
        snprintf(msg, sizeof(msg), "not applied: the daemon is stopping");
    } else if (b->halted_at >= 0) {
        rc = -ECANCELED;
        snprintf(msg, sizeof(msg), "not run: ops[%d] failed before it (stop_on_error)", b->halted_at);
    } else if (op->remove) {
        rc = vhostd_op_vf_remove(b->d, op->bdf, device_gone, b, msg, sizeof(msg));
        b->stopping_devices += rc == 0;
    } else {
        rc = start_add(b, i, msg, sizeof(msg));
        if (rc == 0)
            return;   /* batch_added answers it */
    }
    result(b, i, rc, msg, NULL);
    if (rc < 0)
        halt(b, i);
}

/* Adds run in parallel (each on its own device's queue), also with
 * stop_on_error: an add after one that fails later is undone (halt).  A
 * remove cannot be undone: with stop_on_error it starts only once every
 * earlier add has answered. */
static void chunk(struct vhostd_batch *b)
{
    double start = now_s();
    do {
        if (b->stop_on_error && b->adding && !b->stopped && b->ops[b->done].remove) {
            ev_idle_stop(b->d->loop, &b->idle);   /* batch_added starts it again */
            break;
        }
        run_one(b);
    } while (b->done < b->n && now_s() - start < VHOSTD_BATCH_TICK_S);
    b->ran = true;
    if (b->done == b->n)
        stop_watchers(b);
    maybe_finish(b);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    chunk(w->data);
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhostd_batch *b = w->data;
    if (!b->ran)
        chunk(b);   /* other watchers were pending at every iteration: progress anyway */
    else
        b->ran = false;
}

int vhostd_batch_method(void *ctx, json_t *params, struct rpc_call *c)
{
    struct vhostd *d = ctx;
    char msg[512];
    struct vhostd_batch *b = validate(d, params, msg, sizeof(msg));
    if (!b) {
        LOG_W("vf_batch: %s", msg);
        rpc_call_error(c, RPC_INVALID_PARAMS, "%s", msg);
        return 0;
    }
    b->call = c;
    b->started = now_s();
    b->next = d->batches;
    d->batches = b;
    vhostd_prov_hold(&d->prov);
    /* chunks run when no other watcher is pending (other clients' requests, vhost-user messages
     * and device events go first), and at least every VHOSTD_BATCH_GUARD_S */
    ev_idle_init(&b->idle, idle_cb);
    b->idle.data = b;
    ev_idle_start(d->loop, &b->idle);
    ev_timer_init(&b->guard, guard_cb, VHOSTD_BATCH_GUARD_S, VHOSTD_BATCH_GUARD_S);
    b->guard.data = b;
    ev_timer_start(d->loop, &b->guard);
    return RPC_PENDING;
}

void vhostd_batch_stop_all(struct vhostd *d)
{
    struct vhostd_batch *b = d->batches;
    while (b) {
        struct vhostd_batch *next = b->next;
        b->stopped = true;
        stop_watchers(b);
        while (b->done < b->n)
            run_one(b);
        b->released = true;
        vhostd_prov_release(&d->prov);   /* its file write now, before the provisioning closes */
        maybe_finish(b);   /* or when its last device is gone or its last add answered (the drain) */
        b = next;
    }
}
