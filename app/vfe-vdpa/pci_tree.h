/* Discovery in the sysfs-shaped PCI tree (--pci-root). */
#ifndef VFE_VHOSTD_PCI_TREE_H
#define VFE_VHOSTD_PCI_TREE_H

#include <stdbool.h>
#include <stddef.h>

#define VHOSTD_MAX_VFS 1024   /* per PF; SR-IOV allows 65535, the daemon manages this many */

/* A BDF is DDDD:BB:DD.F in lower-case hex. */
bool pci_bdf_valid(const char *bdf);
/* The function exists under root. */
bool pci_fn_exists(const char *root, const char *bdf);
/* VFs of a PF: vfs[i] is the BDF of VF i+1 (from virtfn<i>), "" where that VF
 * is gone (surprise removal leaves a hole).  Every index below the larger of
 * sriov_numvfs and sriov_totalvfs (max if neither is readable) is looked at.
 * The number of slots (the highest VF number present) or -errno. */
int pci_pf_vfs(const char *root, const char *pf, char vfs[][16], int max);
/* The PF of a VF (from physfn) into pf[16].  0 or -errno (-ENOENT: not a VF). */
int pci_vf_pf(const char *root, const char *vf, char pf[16]);

#endif
