/* Transport selection: a function directory with vfio-user.sock speaks vfio-user. */
#include "drivers/bus/vfio/vfe_transport.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log/vfe_log.h"

/* A BDF is "DDDD:BB:DD.F" (hex); anything else could escape pci_root. */
static bool bdf_valid(const char *bdf)
{
    unsigned d, b, dev, fn;
    char tail;
    if (!bdf || strlen(bdf) != 12 || strchr(bdf, '/'))
        return false;
    if (sscanf(bdf, "%4x:%2x:%2x.%1x%c", &d, &b, &dev, &fn, &tail) != 4)
        return false;
    return dev < 32 && fn < 8;
}

int vfe_transport_open(const char *pci_root, const char *bdf, struct vfe_transport **out)
{
    if (!pci_root || !out || !bdf_valid(bdf))
        return -EINVAL;
    char dir[4096], sock[4200];
    int n = snprintf(dir, sizeof(dir), "%s/%s", pci_root, bdf);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return -ENAMETOOLONG;
    struct stat st;
    if (stat(dir, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    snprintf(sock, sizeof(sock), "%s/vfio-user.sock", dir);
    if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
        return vfe_vfio_user_open(sock, bdf, out);
    LOG_W("%s: no vfio-user.sock and kernel VFIO is not built yet", bdf);
    return -ENOTSUP;
}
