/* The persisted provisioning file (see state_file.h). */
#include "app/vfe-vdpa/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/vfe-vdpa/pci_tree.h"
#include "app/vfe-vdpa/vf_msix.h"

/* ---- validation: one rule per field of a record ---- */

typedef int (*value_check)(const char *v, char *why, size_t len);

static int check_bdf(const char *v, char *why, size_t len)
{
    if (pci_bdf_valid(v))
        return 0;
    snprintf(why, len, "'%.32s' is not a PCI address DDDD:BB:DD.F (lower-case hex)", v);
    return -1;
}

static int check_socket(const char *v, char *why, size_t len)
{
    const char *base = strrchr(v, '/');
    if (v[0] != '/')
        snprintf(why, len, "'%.64s' is not an absolute path", v);
    else if (strlen(v) > VFE_SUN_PATH_MAX)
        snprintf(why, len, "'%.64s...' is longer than %zu characters", v, (size_t)VFE_SUN_PATH_MAX);
    else if (!base[1] || !strcmp(base, "/.") || !strcmp(base, "/.."))
        snprintf(why, len, "'%.64s' names no socket file", v);
    else
        return 0;
    return -1;
}

static int check_mode(const char *v, char *why, size_t len)
{
    if (!*v || !strcmp(v, "direct"))
        return 0;
    snprintf(why, len, "\"%.16s\" is not a mode (\"direct\", or absent)", v);
    return -1;
}

static int check_uuid(const char *v, char *why, size_t len)
{
    if (strlen(v) < sizeof(((struct vhostd_state_vf *)0)->uuid))
        return 0;
    snprintf(why, len, "the VM id is longer than %zu characters",
             sizeof(((struct vhostd_state_vf *)0)->uuid) - 1);
    return -1;
}

struct field_rule {
    const char *key;
    bool required;
    bool nullable;      /* null stands for "" */
    value_check check;
    size_t offset, size;  /* where the string goes in the record */
    unsigned max;       /* > 0: an integer 1..max, stored as unsigned at offset (check unused) */
};

#define PF_FIELD(k, req, chk, m) {k, req, false, chk, offsetof(struct vhostd_state_pf, m), \
                                  sizeof(((struct vhostd_state_pf *)0)->m), 0}
#define VF_FIELD(k, req, nul, chk, m) {k, req, nul, chk, offsetof(struct vhostd_state_vf, m), \
                                       sizeof(((struct vhostd_state_vf *)0)->m), 0}

static const struct field_rule pf_rules[] = {
    PF_FIELD("bdf", true, check_bdf, bdf),
    {NULL, false, false, NULL, 0, 0, 0},
};

static const struct field_rule vf_rules[] = {
    VF_FIELD("bdf", true, false, check_bdf, bdf),
    VF_FIELD("socket", true, false, check_socket, socket),
    VF_FIELD("uuid", false, true, check_uuid, uuid),
    VF_FIELD("mode", false, true, check_mode, mode),
    {"msix", false, false, NULL, offsetof(struct vhostd_state_vf, msix), sizeof(unsigned), VHOSTD_VF_MAX_MSIX},
    {NULL, false, false, NULL, 0, 0, 0},
};

/* One record (a JSON object) into rec by its rules. */
static int parse_record(json_t *o, const struct field_rule *rules, void *rec, const char *what, size_t idx,
                        char *why, size_t len)
{
    char sub[200];
    if (!json_is_object(o)) {
        snprintf(why, len, "%s[%zu] is not an object", what, idx);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        const struct field_rule *r = rules;
        while (r->key && strcmp(r->key, key))
            r++;
        if (!r->key) {
            snprintf(why, len, "%s[%zu] has an unknown key \"%.32s\"", what, idx, key);
            return -1;
        }
    }
    for (const struct field_rule *r = rules; r->key; r++) {
        v = json_object_get(o, r->key);
        char *dst = (char *)rec + r->offset;
        if (!v || (r->nullable && json_is_null(v))) {
            if (r->required) {
                snprintf(why, len, "%s[%zu] lacks \"%s\"", what, idx, r->key);
                return -1;
            }
            if (r->max)
                memset(dst, 0, sizeof(unsigned));
            else
                dst[0] = '\0';
            continue;
        }
        if (r->max) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > r->max) {
                snprintf(why, len, "%s[%zu].%s must be an integer 1..%u", what, idx, r->key, r->max);
                return -1;
            }
            unsigned n = (unsigned)json_integer_value(v);
            memcpy(dst, &n, sizeof(n));
            continue;
        }
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
            snprintf(why, len, "%s[%zu].%s must be a string", what, idx, r->key);
            return -1;
        }
        const char *s = json_string_value(v);
        if (r->check(s, sub, sizeof(sub)) < 0) {
            snprintf(why, len, "%s[%zu].%s: %s", what, idx, r->key, sub);
            return -1;
        }
        if (strlen(s) >= r->size) {
            snprintf(why, len, "%s[%zu].%s is too long", what, idx, r->key);
            return -1;
        }
        memcpy(dst, s, strlen(s) + 1);
    }
    return 0;
}

/* Duplicates are found by sorting (16k records: pairwise compares would take
 * seconds at start). */
struct dup_key {
    const char *key;
    const char *bdf;      /* the record's, for the message */
    bool is_pf;
};

static int dup_cmp(const void *a, const void *b)
{
    return strcmp(((const struct dup_key *)a)->key, ((const struct dup_key *)b)->key);
}

/* No BDF twice (PF or VF), no socket twice. */
static int check_duplicates(const struct vhostd_state *s, char *why, size_t len)
{
    unsigned n = s->npfs + s->nvfs;
    struct dup_key *k = malloc((n ? n : 1) * sizeof(*k));
    if (!k) {
        snprintf(why, len, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < s->npfs; i++)
        k[i] = (struct dup_key){s->pfs[i].bdf, s->pfs[i].bdf, true};
    for (unsigned i = 0; i < s->nvfs; i++)
        k[s->npfs + i] = (struct dup_key){s->vfs[i].bdf, s->vfs[i].bdf, false};
    qsort(k, n, sizeof(*k), dup_cmp);
    int rc = 0;
    for (unsigned i = 1; i < n && !rc; i++) {
        if (strcmp(k[i - 1].key, k[i].key))
            continue;
        rc = -1;
        if (k[i - 1].is_pf != k[i].is_pf)
            snprintf(why, len, "%s is listed both as a PF and as a VF", k[i].key);
        else
            snprintf(why, len, "%s %s is listed twice", k[i].is_pf ? "PF" : "VF", k[i].key);
    }
    for (unsigned i = 0; i < s->nvfs && !rc; i++)
        k[i] = (struct dup_key){s->vfs[i].socket, s->vfs[i].bdf, false};
    if (!rc)
        qsort(k, s->nvfs, sizeof(*k), dup_cmp);
    for (unsigned i = 1; i < s->nvfs && !rc; i++)
        if (!strcmp(k[i - 1].key, k[i].key)) {
            rc = -1;
            snprintf(why, len, "VFs %s and %s have the same socket %.64s", k[i - 1].bdf, k[i].bdf, k[i].key);
        }
    free(k);
    return rc;
}

static int parse_doc(json_t *doc, struct vhostd_state *s, char *why, size_t len)
{
    if (!json_is_object(doc)) {
        snprintf(why, len, "the top level is not an object");
        return -EINVAL;
    }
    json_t *f = json_object_get(doc, "format"), *v = json_object_get(doc, "version");
    if (!json_is_string(f) || strcmp(json_string_value(f), VHOSTD_STATE_FORMAT)) {
        snprintf(why, len, "\"format\" is not \"%s\"", VHOSTD_STATE_FORMAT);
        return -EINVAL;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        snprintf(why, len, "\"version\" is not a positive integer");
        return -EINVAL;
    }
    if (json_integer_value(v) > VHOSTD_STATE_VERSION) {
        snprintf(why, len, "written by a newer vfe-vhostd, version %lld; this one reads %d",
                 (long long)json_integer_value(v), VHOSTD_STATE_VERSION);
        return -EPROTONOSUPPORT;
    }
    const char *key;
    json_t *val;
    json_object_foreach(doc, key, val) {
        if (strcmp(key, "format") && strcmp(key, "version") && strcmp(key, "pfs") && strcmp(key, "vfs")) {
            snprintf(why, len, "unknown key \"%.32s\"", key);
            return -EINVAL;
        }
    }
    json_t *pfs = json_object_get(doc, "pfs"), *vfs = json_object_get(doc, "vfs");
    if (!json_is_array(pfs) || !json_is_array(vfs)) {
        snprintf(why, len, "\"pfs\" and \"vfs\" must be arrays");
        return -EINVAL;
    }
    if (json_array_size(pfs) > VHOSTD_MAX_PFS || json_array_size(vfs) > VHOSTD_MAX_MANAGED_VFS) {
        snprintf(why, len, "more than %d PFs or %d VFs", VHOSTD_MAX_PFS, VHOSTD_MAX_MANAGED_VFS);
        return -EINVAL;
    }
    size_t i;
    json_array_foreach(pfs, i, val) {
        memset(&s->pfs[i], 0, sizeof(s->pfs[i]));
        if (parse_record(val, pf_rules, &s->pfs[i], "pfs", i, why, len) < 0)
            return -EINVAL;
        s->npfs++;
    }
    json_array_foreach(vfs, i, val) {
        memset(&s->vfs[i], 0, sizeof(s->vfs[i]));
        if (parse_record(val, vf_rules, &s->vfs[i], "vfs", i, why, len) < 0)
            return -EINVAL;
        s->nvfs++;
    }
    return check_duplicates(s, why, len) < 0 ? -EINVAL : 0;
}

int vhostd_state_read(const char *path, struct vhostd_state *s, char *msg, size_t len)
{
    /* only the records read are written: the tables are sized for 16k VFs and
     * pages never touched cost no memory */
    s->npfs = s->nvfs = 0;
    char why[300];
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return 1;
    struct stat st;
    if (fd < 0) {
        rc = -errno;
        snprintf(why, sizeof(why), "%s", strerror(errno));
    } else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(why, sizeof(why), "not a regular file");
    } else if (st.st_size > VHOSTD_STATE_MAX_BYTES) {
        rc = -EINVAL;
        snprintf(why, sizeof(why), "larger than %d bytes", VHOSTD_STATE_MAX_BYTES);
    } else {
        json_error_t jerr;
        json_t *doc = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
            rc = -EINVAL;
            snprintf(why, sizeof(why), "not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                     jerr.column);
        } else {
            rc = parse_doc(doc, s, why, sizeof(why));
            json_decref(doc);
        }
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        s->npfs = s->nvfs = 0;
        snprintf(msg, len, "state file %s: %s", path, why);
    }
    return rc;
}

static json_t *state_json(const struct vhostd_state *s)
{
    json_t *pfs = json_array(), *vfs = json_array();
    for (unsigned i = 0; i < s->npfs; i++)
        json_array_append_new(pfs, json_pack("{s:s}", "bdf", s->pfs[i].bdf));
    for (unsigned i = 0; i < s->nvfs; i++) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "bdf", s->vfs[i].bdf, "socket", s->vfs[i].socket, "uuid",
                              s->vfs[i].uuid);
        if (s->vfs[i].mode[0])
            json_object_set_new(o, "mode", json_string(s->vfs[i].mode));
        if (s->vfs[i].msix)
            json_object_set_new(o, "msix", json_integer(s->vfs[i].msix));
        json_array_append_new(vfs, o);
    }
    return json_pack("{s:s, s:i, s:o, s:o}", "format", VHOSTD_STATE_FORMAT, "version", VHOSTD_STATE_VERSION, "pfs",
                     pfs, "vfs", vfs);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int vhostd_state_write(const char *dir, const struct vhostd_state *s, char *msg, size_t len)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, VHOSTD_STATE_FILE);
    snprintf(final, sizeof(final), "%s/%s", dir, VHOSTD_STATE_FILE);
    json_t *doc = state_json(s);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    if (!text) {
        snprintf(msg, len, "%s: out of memory", final);
        return -ENOMEM;
    }
    const char *step = "create";
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        rc = -errno;
    if (rc == 0 && (step = "write", rc = write_all(fd, text, strlen(text))) == 0 &&
        (rc = write_all(fd, "\n", 1)) == 0 && (step = "fsync", fsync(fd) < 0))
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0) {
        step = "close";
        rc = -errno;
    }
    free(text);
    if (rc == 0 && (step = "rename", rename(tmp, final) < 0))
        rc = -errno;
    if (rc < 0) {
        snprintf(msg, len, "%s %s: %s", step, !strcmp(step, "rename") ? final : tmp, strerror(-rc));
        if (fd >= 0)
            unlink(tmp);   /* ours: we created or truncated it above */
        return rc;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        rc = -errno;
        snprintf(msg, len, "fsync %s: %s", dir, strerror(-rc));
    }
    if (dfd >= 0)
        close(dfd);
    return rc;
}
