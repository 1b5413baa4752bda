/* Script mode's `vf -a` lines as vf_batch calls (see mgmt_batch.h). */
#include "tools/vhostmgmt/mgmt_batch.h"

#include <stdio.h>
#include <string.h>

#include "lib/rpc/rpc.h"
#include "tools/vhostmgmt/mgmt_out.h"

void mgmt_batch_init(struct mgmt_batch *b)
{
    b->ops = json_array();
}

void mgmt_batch_free(struct mgmt_batch *b)
{
    json_decref(b->ops);
    b->ops = NULL;
}

bool mgmt_batch_wants(const struct mgmt_cmd *c)
{
    return !c->help && c->op == MGMT_OP_ADD && !strcmp(c->verb->name, "vf");
}

static bool same(json_t *op, const char *key, const char *value)
{
    const char *s = json_string_value(json_object_get(op, key));
    return value && s && !strcmp(s, value);
}

bool mgmt_batch_fits(const struct mgmt_batch *b, const struct mgmt_cmd *c)
{
    if (json_array_size(b->ops) >= MGMT_BATCH_MAX)
        return false;
    size_t i;
    json_t *op;
    json_array_foreach(b->ops, i, op)
        if (same(op, "vfdev", c->dev) || same(op, "socket_file", c->socket_file))
            return false;
    return true;
}

void mgmt_batch_add(struct mgmt_batch *b, const struct mgmt_cmd *c, int n)
{
    b->line[json_array_size(b->ops)] = n;
    json_array_append_new(b->ops, mgmt_cmd_params(c, false));
}

/* One line's failure, as a line-by-line run reports it.  true: stop. */
static bool failed(struct mgmt_batch_ctx *x, int line, int code, const char *msg, int *worst)
{
    fprintf(stderr, "%s: vf: %s (code %d)\n", x->prog, msg, code);
    fprintf(stderr, "%s: line %d failed\n", x->prog, line);
    *worst = 1;
    return !x->keep_going;
}

/* The old way: one `vf` call per line. */
static bool one_by_one(struct mgmt_batch *b, struct mgmt_batch_ctx *x, int *worst)
{
    size_t i;
    json_t *op;
    json_array_foreach(b->ops, i, op) {
        json_t *res = NULL;
        char msg[512];
        int rc = rpc_client_call(x->sock_path, "vf", op, x->timeout_ms, &res, msg, sizeof(msg));
        if (!rc)
            mgmt_out_result(res, x->as_json);
        json_decref(res);
        fflush(stdout);
        if (rc && failed(x, b->line[i], rc, msg, worst))
            return true;
    }
    return false;
}

static bool report(struct mgmt_batch *b, struct mgmt_batch_ctx *x, json_t *res, int *worst)
{
    json_t *results = json_object_get(res, "results");
    for (size_t i = 0; i < json_array_size(b->ops); i++) {
        json_t *r = json_array_get(results, i);
        if (!r) {
            if (failed(x, b->line[i], RPC_INTERNAL_ERROR, "the daemon's vf_batch answer lacks this line", worst))
                return true;
            continue;
        }
        if (json_is_true(json_object_get(r, "ok"))) {
            json_t *dev = json_object_get(r, "device");
            mgmt_out_result(dev ? dev : r, x->as_json);
            fflush(stdout);
            continue;
        }
        if (failed(x, b->line[i], (int)json_integer_value(json_object_get(r, "code")),
                   json_string_value(json_object_get(r, "message")) ?: "failed", worst))
            return true;
    }
    return false;
}

bool mgmt_batch_flush(struct mgmt_batch *b, struct mgmt_batch_ctx *x, int *worst)
{
    size_t n = json_array_size(b->ops);
    if (!n)
        return false;
    bool stop;
    if (n == 1) {
        stop = one_by_one(b, x, worst);   /* a lone line: the plain call, as before */
    } else {
        json_t *params = json_pack("{s:O, s:b}", "ops", b->ops, "stop_on_error", !x->keep_going), *res = NULL;
        char msg[512];
        int rc = rpc_client_call(x->sock_path, "vf_batch", params, x->timeout_ms, &res, msg, sizeof(msg));
        json_decref(params);
        if (rc == RPC_INVALID_PARAMS || rc == RPC_METHOD_NOT_FOUND)
            stop = one_by_one(b, x, worst);   /* refused whole, nothing applied: each line on its own */
        else if (rc)   /* the daemon could not be asked (or failed the call): every line failed */
            for (size_t i = 0; i < n && !(stop = failed(x, b->line[i], rc, msg, worst)); i++)
                ;
        else
            stop = report(b, x, res, worst);
        json_decref(res);
    }
    json_array_clear(b->ops);
    return stop;
}
