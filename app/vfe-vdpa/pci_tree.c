/* Discovery in the sysfs-shaped PCI tree (--pci-root). */
#include "app/vfe-vdpa/pci_tree.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
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

int pci_pf_vfs(const char *root, const char *pf, char vfs[][16], int max)
{
    int n = 0;
    for (; n < max; n++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/virtfn%d", root, pf, n);
        int rc = link_bdf(path, vfs[n]);
        if (rc == -ENOENT)
            break;
        if (rc < 0)
            return rc;
    }
    return n;
}

int pci_vf_pf(const char *root, const char *vf, char pf[16])
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s/physfn", root, vf);
    return link_bdf(path, pf);
}
