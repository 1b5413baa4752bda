/* Discovery in the sysfs-shaped PCI tree (--pci-root). */
#include "app/vfe-vdpa/pci_tree.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool pci_bdf_valid(const char *bdf)
{
    unsigned d, b, s, f;
    char tail;
    if (!bdf || strlen(bdf) != 12 || sscanf(bdf, "%4x:%2x:%2x.%1x%c", &d, &b, &s, &f, &tail) != 4)
        return false;
    for (const char *p = bdf; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            return false;
    return s < 32 && f < 8;
}

bool pci_fn_exists(const char *root, const char *bdf)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", root, bdf);
    return pci_bdf_valid(bdf) && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The BDF a link such as virtfn3 -> ../0000:3b:00.4 points to. */
static int link_bdf(const char *path, char out[16])
{
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return -errno;
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    if (!pci_bdf_valid(base))
        return -EINVAL;
    memcpy(out, base, 13);   /* 12 characters and the NUL, checked above */
    return 0;
}

/* A small decimal attribute of a function (sriov_numvfs ...); -1 if unreadable. */
static int read_count(const char *root, const char *fn, const char *attr)
{
    char path[PATH_MAX], buf[16] = "";
    snprintf(path, sizeof(path), "%s/%s/%s", root, fn, attr);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    bool ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    char *end;
    long v = ok ? strtol(buf, &end, 10) : -1;
    return ok && end != buf && (*end == '\n' || !*end) && v >= 0 && v <= 65535 ? (int)v : -1;
}

int pci_pf_vfs(const char *root, const char *pf, char vfs[][16], int max)
{
    /* a VF that went away (surprise removal) leaves a hole in virtfnN: look at
     * every index up to the PF's own bound, not only up to the first hole */
    int numvfs = read_count(root, pf, "sriov_numvfs"), total = read_count(root, pf, "sriov_totalvfs");
    int bound = numvfs > total ? numvfs : total;
    if (bound < 0 || bound > max)
        bound = max;
    int slots = 0;
    for (int i = 0; i < bound; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/virtfn%d", root, pf, i);
        int rc = link_bdf(path, vfs[i]);
        if (rc == -ENOENT) {
            vfs[i][0] = '\0';
            continue;
        }
        if (rc < 0)
            return rc;
        slots = i + 1;
    }
    return slots;
}

int pci_vf_pf(const char *root, const char *vf, char pf[16])
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s/physfn", root, vf);
    return link_bdf(path, pf);
}
