/* Page after page of a list call (see mgmt_page.h). */
#include "tools/vhostmgmt/mgmt_page.h"

#include <stdio.h>

#include "lib/rpc/rpc.h"

static const char *const list_keys[] = {"vfs", "devices", NULL};

const char *mgmt_page_key(const json_t *result)
{
    if (!json_is_object(result))
        return NULL;
    for (unsigned i = 0; list_keys[i]; i++)
        if (json_is_array(json_object_get(result, list_keys[i])))
            return list_keys[i];
    return NULL;
}

int mgmt_page_merge(json_t *acc, const json_t *page, char *msg, size_t len)
{
    const char *key = mgmt_page_key(acc);
    if (!key || mgmt_page_key(page) == NULL || json_object_get(page, key) == NULL) {
        snprintf(msg, len, "a further page of the list is not a list");
        return -1;
    }
    json_array_extend(json_object_get(acc, key), json_object_get(page, key));
    json_t *next = json_object_get(page, "next");
    if (next)
        json_object_set(acc, "next", next);
    else
        json_object_del(acc, "next");
    return 0;
}

int mgmt_page_call(const char *path, const char *method, json_t *params, int timeout_ms, json_t **result, char *msg,
                   size_t len)
{
    *result = NULL;
    json_t *base = params ? json_deep_copy(params) : json_object();
    int rc = rpc_client_call(path, method, params, timeout_ms, result, msg, len);
    json_int_t last = 0;
    for (unsigned pages = 1; !rc && base; pages++) {
        json_t *next = json_object_get(*result, "next");
        if (!next)
            break;
        if (!json_is_integer(next) || json_integer_value(next) <= last || pages >= MGMT_PAGE_MAX_PAGES ||
            !mgmt_page_key(*result)) {
            snprintf(msg, len, "the daemon's paging does not advance (next %s after %lld)",
                     json_is_integer(next) ? "repeats or goes back" : "is not a number", (long long)last);
            rc = -1;
            break;
        }
        last = json_integer_value(next);
        json_t *p = json_deep_copy(base), *page = NULL;
        json_object_set_new(p, "offset", json_integer(last));
        rc = rpc_client_call(path, method, p, timeout_ms, &page, msg, len);
        json_decref(p);
        if (!rc)
            rc = mgmt_page_merge(*result, page, msg, len);
        json_decref(page);
    }
    json_decref(base);
    if (rc && *result) {
        json_decref(*result);
        *result = NULL;
    }
    return rc;
}
