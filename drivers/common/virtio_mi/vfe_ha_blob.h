/* Head shared by the HA snapshot blobs of this folder (admin queue, migration
 * dialect): u32 magic, u16 version, u16 total length, little-endian. */
#ifndef VFE_HA_BLOB_H
#define VFE_HA_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define VFE_HA_BLOB_HEAD 8

void vfe_ha_blob_put_head(uint8_t *p, uint32_t magic, uint16_t version, uint16_t len);
/* Checks the head of a len-byte blob said to be `what` (for the log line):
 *   -EINVAL  shorter than the head, wrong magic, version 0, or the length
 *            field differs from len
 *   -EPROTO  version newer than `newest` (refused before reading further)
 * On 0 the blob's version is in *version. */
int vfe_ha_blob_check_head(const void *blob, size_t len, uint32_t magic, uint16_t newest, const char *what,
                           uint16_t *version);

#endif
