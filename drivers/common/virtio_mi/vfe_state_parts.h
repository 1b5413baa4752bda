/* virtio dialect device parts (DEV_PARTS_GET / DEV_PARTS_SET) <-> vfe_dev_state. */
#ifndef VFE_STATE_PARTS_H
#define VFE_STATE_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/common/virtio_mi/vfe_dev_state.h"

int vfe_state_parts_encode(const struct vfe_dev_state *s, uint8_t *buf, size_t cap, size_t *len);
int vfe_state_parts_decode(const uint8_t *buf, size_t len, struct vfe_dev_state *s);

#endif
