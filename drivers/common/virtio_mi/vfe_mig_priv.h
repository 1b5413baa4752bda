/* Shared pieces of the two migration dialects. */
#ifndef VFE_MIG_PRIV_H
#define VFE_MIG_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/common/virtio_mi/vfe_mig.h"

extern const struct vfe_mig_ops vfe_mig_nvidia_ops;
extern const struct vfe_mig_ops vfe_mig_virtio_ops;

/* Device status (as vfe_admin_cb gives it) -> 0 or -errno. */
int vfe_mig_nv_errno(int status);
int vfe_mig_std_errno(int status);
int vfe_mig_status_errno(const struct vfe_mig *m, int status);

/* Standard command header for an SR-IOV group member; returns its length. */
size_t vfe_mig_std_hdr(uint8_t *p, uint16_t opcode, uint64_t member);

int vfe_mig_dirty_cfg_check(const struct vfe_mig_dirty_cfg *c);
/* nv_start_track followed by the sges; returns bytes written. */
size_t vfe_mig_put_start_track(uint8_t *p, uint16_t vf, const struct vfe_mig_dirty_cfg *c);
size_t vfe_mig_put_vdev(uint8_t *p, uint16_t vf);
size_t vfe_mig_put_report(uint8_t *p, uint16_t vf, uint32_t offset);

/* One command whose answer carries no data. */
int vfe_mig_submit_simple(struct vfe_mig *m, const uint8_t *cmd, uint32_t len, vfe_mig_done_cb cb, void *ctx);
/* One command whose result bytes are copied to buf (cap len). */
int vfe_mig_submit_report(struct vfe_mig *m, const uint8_t *cmd, uint32_t cmd_len, void *buf, uint32_t len,
                          vfe_mig_report_cb cb, void *ctx);

/* Operation contexts: tracked so that vfe_mig_abandon() can free them.
 * release (may be NULL) frees what the op owns beyond itself. */
void *vfe_mig_op_new(struct vfe_mig *m, size_t size, void (*release)(void *op));
void vfe_mig_op_free(void *op);

#endif
