/* nvidia dialect state blob (SAVE/RESTORE_INTERNAL_STATE): TLVs <-> vfe_dev_state. */
#ifndef VFE_STATE_TLV_H
#define VFE_STATE_TLV_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/common/virtio_mi/vfe_dev_state.h"

/* -EINVAL if s fails vfe_dev_state_check, -E2BIG if cap is too small. */
int vfe_state_tlv_encode(const struct vfe_dev_state *s, uint8_t *buf, size_t cap, size_t *len);
/* Unknown types are skipped; truncated records, wrong record sizes, queue
 * indices out of range and a missing common record give -EINVAL. */
int vfe_state_tlv_decode(const uint8_t *buf, size_t len, struct vfe_dev_state *s);

#endif
