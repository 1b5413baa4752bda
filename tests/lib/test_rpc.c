/* The tests' side of vfe-vhostd's JSON-RPC socket: test_rpc.h. */
#include "tests/lib/test_rpc.h"

#include <stdio.h>

#include "lib/rpc/rpc.h"

int test_rpc_call(const char *path, const char *method, json_t *params, json_t **result)
{
    json_t *res = NULL;
    char msg[256] = "";
    int rc = rpc_client_call(path, method, params, 5000, &res, msg, sizeof(msg));   /* borrows params */
    if (rc < 0)
        fprintf(stderr, "rpc %s: %s\n", method, msg);
    json_decref(params);
    if (result)
        *result = res;
    else
        json_decref(res);
    return rc;
}

int test_rpc_ask(const char *path, const char *method, json_t *params, int timeout_ms, json_t **result, char *msg,
                 size_t len)
{
    json_t *res = NULL;
    msg[0] = '\0';
    int rc = rpc_client_call(path, method, params, timeout_ms, &res, msg, len);   /* borrows params */
    json_decref(params);
    if (result)
        *result = res;
    else
        json_decref(res);
    return rc;
}

json_t *test_rpc_vf_stats(const char *path, const char *bdf)
{
    json_t *res = NULL;
    if (test_rpc_call(path, "stats", json_pack("{s:s}", "vfdev", bdf), &res) < 0)
        return NULL;
    json_t *vf = json_incref(json_array_get(json_object_get(res, "vfs"), 0));
    json_decref(res);
    return vf;
}
