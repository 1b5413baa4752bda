/* Paged list replies (see rpc_page.h). */
#include "app/vfe-vdpa/rpc_page.h"

#include <limits.h>

static bool page_int(json_t *params, const char *key, json_int_t lo, json_int_t hi, json_int_t dflt, unsigned *out,
                     struct rpc_call *c)
{
    json_t *v = json_object_get(params, key);
    if (!v) {
        *out = (unsigned)dflt;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        rpc_call_error(c, RPC_INVALID_PARAMS, "'%s' must be an integer from %lld to %lld", key, (long long)lo,
                       (long long)hi);
        return false;
    }
    *out = (unsigned)json_integer_value(v);
    return true;
}

bool vhostd_page_params(json_t *params, unsigned dflt_limit, struct vhostd_page *pg, struct rpc_call *c)
{
    *pg = (struct vhostd_page){0};
    return page_int(params, "offset", 0, INT_MAX, 0, &pg->offset, c) &&
           page_int(params, "limit", 1, VHOSTD_PAGE_MAX, dflt_limit, &pg->limit, c);
}

bool vhostd_page_take(struct vhostd_page *pg)
{
    unsigned i = pg->seen++;
    return i >= pg->offset && i - pg->offset < pg->limit;
}

void vhostd_page_finish(json_t *res, const struct vhostd_page *pg)
{
    json_object_set_new(res, "total", json_integer(pg->seen));
    if (pg->seen > pg->offset && pg->seen - pg->offset > pg->limit)
        json_object_set_new(res, "next", json_integer((json_int_t)pg->offset + pg->limit));
}
