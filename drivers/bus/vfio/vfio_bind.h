/*
 * Binding a PCI function to vfio-pci through sysfs, and saying what is in the
 * way when it cannot be done.
 *
 * Paths are parameters so tests can use a fake tree:
 *   bus_root     the PCI bus directory (/sys/bus/pci): devices/<bdf>,
 *                drivers/<name>, drivers_probe
 *   vfio_dir     where the group nodes appear (/dev/vfio)
 * Synchronous (sysfs writes, then a bounded wait for /dev/vfio/<group>).
 * The caller owns nothing new: no fd stays open.
 */
#ifndef VFE_VFIO_BIND_H
#define VFE_VFIO_BIND_H

#include <stdbool.h>
#include <stddef.h>

struct vfe_bind_opts {
    const char *bus_root;
    const char *vfio_dir;
    bool force;        /* unbind from another driver (never done otherwise) */
    int wait_ms;       /* for /dev/vfio/<group> after the probe; 0: 2000 */
};

/*
 * Bind bdf to vfio-pci: driver_override = "vfio-pci", unbind from the current
 * driver (only with force), write bdf to drivers_probe, wait for the group node.
 * Checks first, in this order, and refuses with a sentence in msg:
 *   -EINVAL     bdf not DDDD:BB:DD.F
 *   -ENODEV     no such function under bus_root/devices
 *   -ENOPKG     vfio-pci not loaded (bus_root/drivers/vfio-pci absent)
 *   -ENXIO      no iommu_group link: the IOMMU is off
 *   -EBUSY      bound to another driver (msg names it and its network
 *               interfaces) and not force; or the group is not viable (msg
 *               lists the other devices of the group and their drivers)
 *   -ETIMEDOUT  the group node did not appear (msg says which driver holds it)
 *   or the errno of a sysfs write.
 * Already bound to vfio-pci: 0 and msg says so (nothing written).
 */
int vfe_vfio_bind(const struct vfe_bind_opts *o, const char *bdf, char *msg, size_t len);

/* The devices sharing bdf's IOMMU group that are bound to a driver other than
 * vfio-pci, as "BDF (driver), ..." in msg (empty if none).  pci_root is
 * bus_root/devices.  Returns their count, or -errno. */
int vfe_vfio_group_peers(const char *pci_root, const char *bdf, char *msg, size_t len);

/* Why a function under pci_root (bus_root/devices) cannot be opened through
 * kernel VFIO when it is bound to another driver: 1 and a sentence naming the
 * driver, its network interfaces and the bind command; 0 (msg empty) when
 * that is not the reason.  Reads sysfs only. */
int vfe_vfio_explain_open(const char *pci_root, const char *bdf, char *msg, size_t len);

#endif
