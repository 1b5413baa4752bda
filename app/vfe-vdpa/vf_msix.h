/*
 * Dynamic MSI-X of VFs through the PCI tree (--pci-root), the same on a real
 * host (Linux >= 5.13 with a driver that supports it, e.g. mlx5) and on the
 * sim: DIR/<pf>/sriov_vf_total_msix is the pool the PF's VFs draw from,
 * DIR/<vf>/sriov_vf_msix_count each VF's share, writable only while the VF
 * has no driver.  Free = total - the sum of its present VFs' counts.
 *
 * A VF with V vectors offers (V - 2) / 2 queue pairs: one vector per queue
 * (vfe programs queue q, data or control, on vector q + 1) and one for the
 * config interrupt (vector 0).
 *
 * Plain file work on the loop (small sysfs reads and writes, no device call);
 * nothing here owns anything.  Errors are -errno with one sentence in msg:
 *   -EOPNOTSUPP  the PF has no sriov_vf_total_msix (no dynamic MSI-X)
 *   -ENOENT      not a VF (no physfn)
 *   -ERANGE      a count out of 1..VHOSTD_VF_MAX_MSIX
 *   -ENOSPC      not enough free vectors (msg says how many are free)
 *   -EBUSY       the VF or one of the PF's VFs is served (reclaim)
 *   other        the write of the file failed (Linux: -EBUSY while a driver
 *                is bound, -EINVAL for a count the device refuses)
 */
#ifndef VFE_VHOSTD_VF_MSIX_H
#define VFE_VHOSTD_VF_MSIX_H

#include <jansson.h>
#include <stddef.h>

struct vhostd_registry;

#define VHOSTD_VF_MAX_MSIX 2048

static inline unsigned vhostd_msix_pairs(unsigned vectors) { return vectors < 4 ? 0 : (vectors - 2) / 2; }
static inline unsigned vhostd_msix_for_pairs(unsigned pairs) { return 2 * pairs + 2; }

/* The PF's pool: total and free.  0 or -EOPNOTSUPP. */
int vhostd_msix_pool(const char *root, const char *pf, unsigned *total, unsigned *free_vectors);
/* The VF's current count.  0 or -errno (-EOPNOTSUPP: no such file). */
int vhostd_msix_vf_count(const char *root, const char *vf, unsigned *vectors);
/* Give the VF `vectors` (1..VHOSTD_VF_MAX_MSIX) from its PF's pool; a VF that
 * already has that many is left alone.  *old gets the count it had. */
int vhostd_msix_assign(const char *root, const char *vf, unsigned vectors, unsigned *old, char *msg, size_t len);
/* Write the VF's count as it is (no pool check: giving back, or restoring). */
int vhostd_msix_write(const char *root, const char *vf, unsigned vectors, char *msg, size_t len);
/* Return the VF's vectors to the pool (count 0). */
static inline int vhostd_msix_release(const char *root, const char *vf, char *msg, size_t len)
{ return vhostd_msix_write(root, vf, 0, msg, len); }
/* Every VF of the PF to 0; refused (-EBUSY) while the registry serves one of them. */
int vhostd_msix_reclaim(const struct vhostd_registry *reg, const char *root, const char *pf, char *msg, size_t len);

/* "vfs -a" params: "msix" (vectors) or "queues" (pairs), at most one.
 * 0 with *vectors (0 when neither is given), or -EINVAL with msg. */
int vhostd_msix_param(json_t *params, unsigned *vectors, char *msg, size_t len);
/* Fields for answers: a PF's "msix_total"/"msix_free", a VF's
 * "msix_vectors"/"msix_queue_pairs" (null where the tree has no such file). */
void vhostd_msix_pf_json(const char *root, const char *pf, json_t *o);
void vhostd_msix_vf_json(const char *root, const char *vf, json_t *o);

#endif
