/* Unaligned little-endian access to wire buffers. */
#ifndef VFE_MI_LE_H
#define VFE_MI_LE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t vfe_get_le16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t vfe_get_le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t vfe_get_le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static inline void vfe_put_le16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void vfe_put_le32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void vfe_put_le64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

#endif
