/* The peer's error codes and texts, and which vfe failure maps to which (as data). */
#include "app/vfe-vdpa/rpc_compat.h"

#include <errno.h>
#include <string.h>

#include "lib/log/vfe_log.h"

/* The peer's fixed texts; its users' scripts may match them, so they are
 * reproduced exactly (spelling included). */
static const struct {
    int code;
    const char *text;
} texts[] = {
    {COMPAT_OK, "Success"},
    {COMPAT_NO_PF, "PF device not found"},
    {COMPAT_NO_VF, "VF device not found"},
    {COMPAT_LIMIT, "Number exceed limit"},
    {COMPAT_PF_EXISTS, "PF device already add"},
    {COMPAT_PROBE_FAIL, "Device probe fail"},
    {COMPAT_PF_FEATURES, "PF device feature does not meet requirements"},
    {COMPAT_PF_HAS_VFS, "Please remove all VF devices before remove PF"},
    {COMPAT_VF_EXISTS, "VF device already add"},
    {COMPAT_SOCK_ACCESS, "Can't access vhost socket path"},
    {COMPAT_SOCK_EXISTS, "Vhost socket file already exists"},
};

#define ANY_OP (-1)

/* vfe's errors (registry.h's errno set) in each operation, and the peer's code
 * for that case.  First match wins; no match: the -errno itself. */
static const struct {
    int op;
    int err;
    int code;
} map[] = {
    {COMPAT_OP_PF_ADD, -EEXIST, COMPAT_PF_EXISTS},
    {COMPAT_OP_PF_ADD, -ENOENT, COMPAT_NO_PF},
    {COMPAT_OP_PF_ADD, -EOPNOTSUPP, COMPAT_PF_FEATURES},   /* no migration dialect */
    {COMPAT_OP_PF_ADD, -ENODEV, COMPAT_PROBE_FAIL},
    {COMPAT_OP_PF_ADD, -EIO, COMPAT_PROBE_FAIL},
    {COMPAT_OP_PF_ADD, -ETIMEDOUT, COMPAT_PROBE_FAIL},
    {COMPAT_OP_PF_ADD, -EPROTO, COMPAT_PROBE_FAIL},
    {COMPAT_OP_PF_REMOVE, -ENOENT, COMPAT_NO_PF},
    {COMPAT_OP_VF_ADD, -EEXIST, COMPAT_SOCK_EXISTS},        /* (already added is told apart before) */
    {COMPAT_OP_VF_ADD, -EADDRINUSE, COMPAT_SOCK_EXISTS},
    {COMPAT_OP_VF_ADD, -EINVAL, COMPAT_SOCK_ACCESS},        /* directory missing, inside the PCI tree */
    {COMPAT_OP_VF_ADD, -ENAMETOOLONG, COMPAT_SOCK_ACCESS},
    {COMPAT_OP_VF_ADD, -EACCES, COMPAT_SOCK_ACCESS},
    {COMPAT_OP_VF_ADD, -EPERM, COMPAT_SOCK_ACCESS},
    {COMPAT_OP_VF_ADD, -ENOENT, COMPAT_NO_VF},
    {COMPAT_OP_VF_ADD, -ENODEV, COMPAT_NO_PF},              /* its PF is not added (or not ready) */
    {COMPAT_OP_VF_REMOVE, -ENOENT, COMPAT_NO_VF},
    {COMPAT_OP_QUERY, -ENOENT, COMPAT_NO_VF},
    {ANY_OP, -ENOSPC, COMPAT_LIMIT},
};

int compat_code(enum compat_op op, int err)
{
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if ((map[i].op == ANY_OP || map[i].op == (int)op) && map[i].err == err)
            return map[i].code;
    return err;
}

const char *compat_errstr(int code)
{
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if (texts[i].code == code)
            return texts[i].text;
    return code < 0 && code > -1000 ? strerror(-code) : "Unknown error";
}

void compat_answer(struct rpc_call *c, json_t *obj, int code)
{
    if (!obj)
        obj = json_object();
    if (obj) {
        json_object_set_new(obj, "errno", json_integer(code));
        json_object_set_new(obj, "errstr", json_string(compat_errstr(code)));
    }
    rpc_call_result(c, obj);
}

void compat_bad_params(struct rpc_call *c, const char *what, const char *why)
{
    LOG_I("compat: %s request refused: %s", what, why);
    json_t *o = json_object();
    if (o)
        json_object_set_new(o, "Error", json_sprintf("Invalid %s parameters in RPC message", what));
    compat_answer(c, o, -EINVAL);
}
