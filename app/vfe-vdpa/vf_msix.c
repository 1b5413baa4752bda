/* Dynamic MSI-X of VFs through the PCI tree (see vf_msix.h). */
#include "app/vfe-vdpa/vf_msix.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/vfe-vdpa/pci_tree.h"
#include "app/vfe-vdpa/registry.h"

#define PF_FILE "sriov_vf_total_msix"
#define VF_FILE "sriov_vf_msix_count"

static int read_uint(const char *root, const char *fn, const char *attr, unsigned *out)
{
    char path[PATH_MAX], buf[24];
    snprintf(path, sizeof(path), "%s/%s/%s", root, fn, attr);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -EOPNOTSUPP : -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n > 0 ? n : 0] = '\0';
    char *end;
    unsigned long v = strtoul(buf, &end, 10);
    if (end == buf || buf[0] == '-' || (*end && *end != '\n') || v > UINT_MAX)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* One write(2), as sysfs wants it: the kernel answers with the device's verdict. */
static int write_uint(const char *root, const char *fn, const char *attr, unsigned v)
{
    char path[PATH_MAX], buf[24];
    snprintf(path, sizeof(path), "%s/%s/%s", root, fn, attr);
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? -EOPNOTSUPP : -errno;
    int n = snprintf(buf, sizeof(buf), "%u\n", v);
    ssize_t w = write(fd, buf, (size_t)n);
    int rc = w == n ? 0 : w < 0 ? -errno : -EIO;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

int vhostd_msix_pool(const char *root, const char *pf, unsigned *total, unsigned *free_vectors)
{
    int rc = read_uint(root, pf, PF_FILE, total);
    if (rc < 0)
        return rc;
    static char vfs[VHOSTD_MAX_VFS][16];   /* the loop is single-threaded */
    int n = pci_pf_vfs(root, pf, vfs, VHOSTD_MAX_VFS);
    unsigned used = 0;
    for (int i = 0; i < n; i++) {
        unsigned c;
        if (vfs[i][0] && read_uint(root, vfs[i], VF_FILE, &c) == 0)
            used += c;
    }
    *free_vectors = used >= *total ? 0 : *total - used;
    return 0;
}

int vhostd_msix_vf_count(const char *root, const char *vf, unsigned *vectors)
{
    return read_uint(root, vf, VF_FILE, vectors);
}

int vhostd_msix_assign(const char *root, const char *vf, unsigned vectors, unsigned *old, char *msg, size_t len)
{
    char pf[16];
    unsigned total, free_vectors, cur;
    *old = 0;
    if (vectors < 1 || vectors > VHOSTD_VF_MAX_MSIX) {
        snprintf(msg, len, "%s: %u MSI-X vectors: 1..%u", vf, vectors, VHOSTD_VF_MAX_MSIX);
        return -ERANGE;
    }
    if (pci_vf_pf(root, vf, pf) < 0) {
        snprintf(msg, len, "%s is not a VF (no physfn): its MSI-X vectors cannot be sized", vf);
        return -ENOENT;
    }
    int rc = vhostd_msix_pool(root, pf, &total, &free_vectors);
    if (rc == 0)
        rc = vhostd_msix_vf_count(root, vf, &cur);
    if (rc < 0) {
        snprintf(msg, len, "PF %s has no dynamic MSI-X (%s/%s: %s)", pf, PF_FILE, VF_FILE, strerror(-rc));
        return rc == -EOPNOTSUPP ? rc : -EOPNOTSUPP;
    }
    *old = cur;
    if (cur == vectors)
        return 0;
    if (vectors > free_vectors + cur) {
        snprintf(msg, len, "VF %s needs %u MSI-X vectors (%u queue pairs) but PF %s has %u free (of %u; the VF "
                 "holds %u)", vf, vectors, vhostd_msix_pairs(vectors), pf, free_vectors, total, cur);
        return -ENOSPC;
    }
    rc = write_uint(root, vf, VF_FILE, vectors);
    if (rc < 0) {
        snprintf(msg, len, "VF %s: writing %u to %s failed: %s%s", vf, vectors, VF_FILE, strerror(-rc),
                 rc == -EBUSY ? " (a driver is bound to it)" : "");
        return rc;
    }
    return 0;
}

int vhostd_msix_write(const char *root, const char *vf, unsigned vectors, char *msg, size_t len)
{
    int rc = write_uint(root, vf, VF_FILE, vectors);
    if (rc < 0)
        snprintf(msg, len, "VF %s: writing %u to %s failed: %s", vf, vectors, VF_FILE, strerror(-rc));
    return rc;
}

int vhostd_msix_reclaim(const struct vhostd_registry *reg, const char *root, const char *pf, char *msg, size_t len)
{
    unsigned total, free_vectors;
    if (vhostd_msix_pool(root, pf, &total, &free_vectors) < 0) {
        snprintf(msg, len, "PF %s has no dynamic MSI-X (no %s)", pf, PF_FILE);
        return -EOPNOTSUPP;
    }
    unsigned cur = 0, served = 0;
    const struct vhostd_vf *first = NULL;
    for (struct vhostd_vf *vf; (vf = vhostd_reg_next_vf(reg, &cur, pf)); served++)
        first = first ? first : vf;
    cur = 0;
    for (const struct vhostd_vf *vf; (vf = vhostd_reg_next_adding(reg, &cur, pf)); served++)
        first = first ? first : vf;   /* being added counts as served */
    if (served) {
        snprintf(msg, len, "PF %s: %u of its VFs are served (%s first): reclaim only while no VF is enabled; remove "
                 "them first", pf, served, first->rec.bdf);
        return -EBUSY;
    }
    static char vfs[VHOSTD_MAX_VFS][16];
    int n = pci_pf_vfs(root, pf, vfs, VHOSTD_MAX_VFS);
    for (int i = 0; i < n; i++) {
        unsigned c;
        if (!vfs[i][0] || vhostd_msix_vf_count(root, vfs[i], &c) < 0 || c == 0)
            continue;
        int rc = write_uint(root, vfs[i], VF_FILE, 0);
        if (rc < 0) {
            snprintf(msg, len, "PF %s: VF %s keeps its %u vectors: %s%s", pf, vfs[i], c, strerror(-rc),
                     rc == -EBUSY ? " (a driver is bound to it)" : "");
            return rc;
        }
    }
    return 0;
}

int vhostd_msix_param(json_t *params, unsigned *vectors, char *msg, size_t len)
{
    json_t *jm = json_object_get(params, "msix"), *jq = json_object_get(params, "queues");
    *vectors = 0;
    if (jm && jq) {
        snprintf(msg, len, "only one of \"msix\" and \"queues\"");
        return -EINVAL;
    }
    json_t *j = jm ? jm : jq;
    if (!j)
        return 0;
    json_int_t max = jm ? VHOSTD_VF_MAX_MSIX : (VHOSTD_VF_MAX_MSIX - 2) / 2, lo = jm ? 4 : 1;
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > max) {
        snprintf(msg, len, "\"%s\" must be an integer %lld..%lld%s", jm ? "msix" : "queues", (long long)lo,
                 (long long)max, jm ? " (vectors: one per queue and one for the config interrupt)" : " (queue pairs)");
        return -EINVAL;
    }
    *vectors = jm ? (unsigned)json_integer_value(j) : vhostd_msix_for_pairs((unsigned)json_integer_value(j));
    return 0;
}

void vhostd_msix_pf_json(const char *root, const char *pf, json_t *o)
{
    unsigned total, free_vectors;
    bool ok = vhostd_msix_pool(root, pf, &total, &free_vectors) == 0;
    json_object_set_new(o, "msix_total", ok ? json_integer(total) : json_null());
    json_object_set_new(o, "msix_free", ok ? json_integer(free_vectors) : json_null());
}

void vhostd_msix_vf_json(const char *root, const char *vf, json_t *o)
{
    unsigned v;
    bool ok = vhostd_msix_vf_count(root, vf, &v) == 0;
    json_object_set_new(o, "msix_vectors", ok ? json_integer(v) : json_null());
    json_object_set_new(o, "msix_queue_pairs", ok ? json_integer(vhostd_msix_pairs(v)) : json_null());
}
