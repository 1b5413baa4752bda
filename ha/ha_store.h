/* The records vfe-vhostd-ha holds: key -> (opaque blob, fds), in memory.
 *
 * Ownership: the store owns every fd and blob it holds, from a successful
 * ha_store_put() on (the caller hands them over only then: on error they are
 * still the caller's) until ha_store_del(), a replacing put of the same key,
 * or ha_store_clear().  Readers get borrowed pointers that stay valid until
 * the next put/del/clear.
 *
 * Limits are checked before anything changes: a put that would exceed
 * max_records, max_fds (all records), max_record_fds or max_bytes (keys and
 * blobs) fails with -ENOSPC/-EMFILE/-E2BIG/-ENOSPC and changes nothing.
 */
#ifndef HA_STORE_H
#define HA_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/common/virtio_ha/vfe_ha_proto.h"

struct ha_record {
    char key[VFE_HA_KEY_MAX + 1];
    uint8_t *blob;
    uint32_t blob_len;
    uint16_t nfds;
    int *fds;
};

struct ha_store {
    struct ha_record *recs;     /* unordered; a deleted slot takes the last record */
    uint32_t n, cap;
    /* records by key: chains of record indexes (-1 ends), cap buckets; 16k
     * records (16 PFs x 1024 VFs) are looked up on every deposit */
    int32_t *head, *next;
    uint32_t fds;               /* held by every record */
    uint64_t bytes;
    struct vfe_ha_limits lim;
};

void ha_store_init(struct ha_store *s, const struct vfe_ha_limits *lim);
/* Take blob (malloc'd, len bytes) and fds; replaces and closes a record of the same key. */
int ha_store_put(struct ha_store *s, const char *key, uint8_t *blob, uint32_t len, const int *fds, unsigned nfds);
/* -ENOENT if there is no such key. */
int ha_store_del(struct ha_store *s, const char *key);
const struct ha_record *ha_store_find(const struct ha_store *s, const char *key);
/* Close every fd, free everything. */
void ha_store_clear(struct ha_store *s);

#endif
