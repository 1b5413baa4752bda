/* Binding a function to vfio-pci through sysfs (see vfio_bind.h). */
#include "drivers/bus/vfio/vfio_bind.h"
#include "drivers/bus/vfio/vfio_kernel_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "lib/log/vfe_log.h"

/* snprintf for paths; a path that does not fit is an error, not a cut. */
static int pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pathf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int say(char *msg, size_t len, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int say(char *msg, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return rc;
}

/* The driver name a device directory's `driver` link points at; "" if unbound. */
static int driver_of(const char *devdir, char *name, size_t len)
{
    char path[PATH_MAX], target[PATH_MAX];
    name[0] = 0;
    if (pathf(path, sizeof(path), "%s/driver", devdir) < 0)
        return -ENAMETOOLONG;
    ssize_t l = readlink(path, target, sizeof(target) - 1);
    if (l < 0)
        return errno == ENOENT ? 0 : -errno;
    target[l] = 0;
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t bl = strlen(base);
    if (bl >= len)
        return -ENAMETOOLONG;
    memcpy(name, base, bl + 1);
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int rc = w < 0 ? -errno : (size_t)w == n ? 0 : -EIO;
    close(fd);
    return rc;
}

/* Append the entries of dir (not dot files) to out, comma separated. */
static void list_dir(const char *dir, char *out, size_t len)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t u = strlen(out);
        snprintf(out + u, len - u, "%s%s", u ? ", " : "", e->d_name);
    }
    closedir(d);
}

/* Network interfaces a function carries: in <dev>/net and <dev>/virtioN/net. */
static void netdevs_of(const char *devdir, char *out, size_t len)
{
    char path[PATH_MAX];
    out[0] = 0;
    pathf(path, sizeof(path), "%s/net", devdir);
    list_dir(path, out, len);
    DIR *d = opendir(devdir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "virtio", 6))
            continue;
        pathf(path, sizeof(path), "%s/%s/net", devdir, e->d_name);
        list_dir(path, out, len);
    }
    closedir(d);
}

/* "BDF: bound to DRV with network interface(s) X (in use?)" into msg: its length. */
static int bound_elsewhere(const char *devdir, const char *bdf, const char *drv, char *msg, size_t len)
{
    char nets[256];
    netdevs_of(devdir, nets, sizeof(nets));
    int n = snprintf(msg, len, "%s: bound to %s%s%s%s", bdf, drv, *nets ? " with network interface(s) " : "", nets,
                     *nets ? " (in use?)" : "");
    return n < 0 ? 0 : (size_t)n >= len ? (int)len - 1 : n;
}

int vfe_vfio_explain_open(const char *pci_root, const char *bdf, char *msg, size_t len)
{
    char dev[PATH_MAX], drv[128];
    if (!len)
        return 0;
    msg[0] = 0;
    if (!pci_root || !vfe_bdf_valid(bdf) || pathf(dev, sizeof(dev), "%s/%s", pci_root, bdf) < 0 ||
        driver_of(dev, drv, sizeof(drv)) < 0 || !*drv || !strcmp(drv, "vfio-pci"))
        return 0;
    int n = bound_elsewhere(dev, bdf, drv, msg, len);
    snprintf(msg + n, len - (size_t)n, ", not vfio-pci: 'vhostmgmt bind %s --force' hands it to vfio-pci", bdf);
    return 1;
}

int vfe_vfio_group_peers(const char *pci_root, const char *bdf, char *msg, size_t len)
{
    char path[PATH_MAX];
    msg[0] = 0;
    if (pathf(path, sizeof(path), "%s/%s/iommu_group/devices", pci_root, bdf) < 0)
        return -ENAMETOOLONG;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, bdf))
            continue;
        char dev[PATH_MAX + 300], drv[64];
        if (pathf(dev, sizeof(dev), "%s/%s", path, e->d_name) < 0)
            continue;
        if (driver_of(dev, drv, sizeof(drv)) < 0 || !*drv || !strcmp(drv, "vfio-pci") || !strcmp(drv, "pcieport"))
            continue;   /* unbound, vfio-pci and bridges do not spoil a group */
        size_t u = strlen(msg);
        snprintf(msg + u, len - u, "%s%s (%s)", n ? ", " : "", e->d_name, drv);
        n++;
    }
    closedir(d);
    return n;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int vfe_vfio_bind(const struct vfe_bind_opts *o, const char *bdf, char *msg, size_t len)
{
    if (!o || !o->bus_root || !o->vfio_dir || !vfe_bdf_valid(bdf))
        return say(msg, len, -EINVAL, "'%.32s' is not a PCI address DDDD:BB:DD.F", bdf ? bdf : "");
    char devs[PATH_MAX], dev[PATH_MAX + 20], path[PATH_MAX + 64];
    if (pathf(devs, sizeof(devs), "%s/devices", o->bus_root) < 0 || pathf(dev, sizeof(dev), "%s/%s", devs, bdf) < 0)
        return say(msg, len, -ENAMETOOLONG, "%s: sysfs root path too long", bdf);
    if (!is_dir(dev))
        return say(msg, len, -ENODEV, "%s: no such PCI function (%s)", bdf, dev);
    pathf(path, sizeof(path), "%s/drivers/vfio-pci", o->bus_root);
    if (!is_dir(path))
        return say(msg, len, -ENOPKG, "%s: the vfio-pci driver is not loaded (modprobe vfio-pci; it pulls vfio and "
                   "vfio_iommu_type1)", bdf);
    unsigned group;
    int rc = vk_group_number(devs, bdf, &group);
    if (rc == -ENODEV)
        return say(msg, len, -ENXIO, "%s: no IOMMU group: the IOMMU is off (boot with intel_iommu=on or "
                   "amd_iommu=on, iommu=pt; check dmesg for DMAR/AMD-Vi)", bdf);
    if (rc < 0)
        return say(msg, len, rc, "%s: unreadable iommu_group link: %s", bdf, strerror(-rc));
    char drv[64];
    if ((rc = driver_of(dev, drv, sizeof(drv))) < 0)
        return say(msg, len, rc, "%s: unreadable driver link: %s", bdf, strerror(-rc));
    char peers[512];
    int np = vfe_vfio_group_peers(devs, bdf, peers, sizeof(peers));
    if (np > 0)
        return say(msg, len, -EBUSY, "%s: IOMMU group %u is not viable: the other devices in it must be unbound or "
                   "bound to vfio-pci too: %s", bdf, group, peers);
    char node[PATH_MAX + 20];
    pathf(node, sizeof(node), "%s/%u", o->vfio_dir, group);
    if (!strcmp(drv, "vfio-pci"))
        return say(msg, len, 0, "%s: already bound to vfio-pci (group %u, %s)", bdf, group, node);
    if (*drv && !o->force) {
        int n = bound_elsewhere(dev, bdf, drv, msg, len);
        snprintf(msg + n, len - (size_t)n, "; not taken from it without force (the host loses that device)");
        return -EBUSY;
    }
    pathf(path, sizeof(path), "%s/driver_override", dev);
    if ((rc = write_file(path, "vfio-pci")) < 0)
        return say(msg, len, rc, "%s: write %s: %s", bdf, path, strerror(-rc));
    if (*drv) {
        pathf(path, sizeof(path), "%s/driver/unbind", dev);
        if ((rc = write_file(path, bdf)) < 0)
            return say(msg, len, rc, "%s: unbind from %s: %s", bdf, drv, strerror(-rc));
        LOG_N("%s: unbound from %s (forced)", bdf, drv);
    }
    pathf(path, sizeof(path), "%s/drivers_probe", o->bus_root);
    if ((rc = write_file(path, bdf)) < 0)
        return say(msg, len, rc, "%s: write %s: %s", bdf, path, strerror(-rc));
    long deadline = now_ms() + (o->wait_ms > 0 ? o->wait_ms : 2000);
    struct stat st;
    while (stat(node, &st) < 0) {
        if (now_ms() >= deadline) {
            driver_of(dev, drv, sizeof(drv));
            return say(msg, len, -ETIMEDOUT, "%s: %s did not appear after the probe (driver now: %s)", bdf, node,
                       *drv ? drv : "none");
        }
        usleep(20 * 1000);
    }
    LOG_N("%s: bound to vfio-pci, IOMMU group %u (%s)", bdf, group, node);
    return say(msg, len, 0, "%s: bound to vfio-pci (group %u, %s)", bdf, group, node);
}
