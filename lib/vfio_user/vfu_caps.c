/* VERSION message: version numbers and the JSON capability object. */
#include "lib/vfio_user/vfu_msg.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void vfu_caps_default(struct vfu_caps *c)
{
    memset(c, 0, sizeof(*c));
    c->max_msg_fds = 1;
    c->max_data_xfer_size = 1u << 20;
    c->pgsizes = 4096;
}

void vfu_caps_ours(struct vfu_caps *c)
{
    vfu_caps_default(c);
    c->max_msg_fds = VFU_MAX_MSG_FDS;
    c->max_data_xfer_size = VFU_MAX_DATA_XFER;
    c->vfe_ioeventfd = true;
}

char *vfu_caps_encode(const struct vfu_caps *c)
{
    json_t *caps = json_pack("{s:I, s:I, s:I}",
                             "max_msg_fds", (json_int_t)c->max_msg_fds,
                             "max_data_xfer_size", (json_int_t)c->max_data_xfer_size,
                             "pgsizes", (json_int_t)c->pgsizes);
    if (!caps)
        return NULL;
    if (c->vfe_ioeventfd) {
        json_t *vfe = json_pack("{s:i, s:i}", "version", VFU_VFE_CAP_VERSION,
                                "ioeventfd", (int)VFU_CMD_VFE_IOEVENTFD);
        if (!vfe || json_object_set_new(caps, "vfe", vfe) < 0) {
            json_decref(caps);
            return NULL;
        }
    }
    json_t *root = json_pack("{s:o}", "capabilities", caps);
    if (!root)
        return NULL;
    char *s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    return s;
}

/* An integer field within [lo, hi] if present.  0, or -EINVAL if present but bad. */
static int get_uint(json_t *obj, const char *key, uint64_t lo, uint64_t hi, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return -EINVAL;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x < lo || (uint64_t)x > hi)
        return -EINVAL;
    *out = (uint64_t)x;
    return 0;
}

int vfu_caps_parse(const char *json, size_t len, struct vfu_caps *out)
{
    vfu_caps_default(out);
    if (len == 0 || len > VFU_MAX_VERSION_JSON || json[len - 1] != '\0')
        return -EINVAL;
    if (strlen(json) != len - 1)
        return -EINVAL;   /* embedded NUL */

    json_error_t err;
    json_t *root = json_loadb(json, len - 1, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return -EINVAL;
    int rc = -EINVAL;
    if (!json_is_object(root))
        goto out;
    json_t *caps = json_object_get(root, "capabilities");
    if (!caps) {
        rc = 0;
        goto out;
    }
    if (!json_is_object(caps))
        goto out;

    uint64_t v;
    v = out->max_msg_fds;
    if (get_uint(caps, "max_msg_fds", 0, 1024, &v) < 0)
        goto out;
    out->max_msg_fds = (uint32_t)v;
    v = out->max_data_xfer_size;
    if (get_uint(caps, "max_data_xfer_size", 1, UINT32_MAX, &v) < 0)
        goto out;
    out->max_data_xfer_size = (uint32_t)v;
    v = out->pgsizes;
    if (get_uint(caps, "pgsizes", 1, INT64_MAX, &v) < 0)
        goto out;
    out->pgsizes = v;

    json_t *vfe = json_object_get(caps, "vfe");
    if (vfe) {
        if (!json_is_object(vfe))
            goto out;
        uint64_t cmd = 0, ver = 0;
        if (get_uint(vfe, "ioeventfd", 0, UINT16_MAX, &cmd) < 0 ||
            get_uint(vfe, "version", 0, UINT32_MAX, &ver) < 0)
            goto out;
        /* Only our numbering of the vendor command counts as support. */
        out->vfe_ioeventfd = cmd == VFU_CMD_VFE_IOEVENTFD && ver >= 1;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int vfu_version_parse(const void *payload, size_t len, uint16_t *major, uint16_t *minor,
                      struct vfu_caps *caps)
{
    struct vfu_version v;
    if (len < sizeof(v))
        return -EINVAL;
    memcpy(&v, payload, sizeof(v));
    *major = v.major;
    *minor = v.minor;
    if (len == sizeof(v)) {
        vfu_caps_default(caps);
        return 0;
    }
    return vfu_caps_parse((const char *)payload + sizeof(v), len - sizeof(v), caps);
}

void *vfu_version_build(const struct vfu_caps *c, size_t *len)
{
    char *json = vfu_caps_encode(c);
    if (!json)
        return NULL;
    size_t jl = strlen(json) + 1;
    uint8_t *p = malloc(sizeof(struct vfu_version) + jl);
    if (p) {
        struct vfu_version v = { .major = VFU_PROTO_MAJOR, .minor = VFU_PROTO_MINOR };
        memcpy(p, &v, sizeof(v));
        memcpy(p + sizeof(v), json, jl);
        *len = sizeof(v) + jl;
    }
    free(json);
    return p;
}
