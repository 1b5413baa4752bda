/*
 * Lookups of the registry's VF slots by BDF and by socket path in constant
 * time: with 16k slots a linear strcmp scan on every RPC call and every add
 * (duplicate checks) grows provisioning quadratically.
 *
 * Two chained hash tables over slot numbers; the keys are not copied, they
 * are the VF records' own strings (the registry keeps them unchanged while a
 * slot is indexed).  Owned by struct vhostd_registry; no allocation after init.
 */
#ifndef VFE_VHOSTD_REGISTRY_INDEX_H
#define VFE_VHOSTD_REGISTRY_INDEX_H

#include <stdbool.h>
#include <stdint.h>

struct vhostd_reg_index {
    unsigned nslots, nbuckets;      /* nbuckets: a power of two */
    int *bdf_head, *bdf_next;       /* -1 ends a chain */
    int *sock_head, *sock_next;
    uint32_t *bdf_hash, *sock_hash;  /* of each indexed slot: deleting needs no key */
    unsigned used;                  /* slots indexed */
    unsigned free_hint;             /* no free slot below it */
};

/* 0 or -ENOMEM. */
int vhostd_reg_index_init(struct vhostd_reg_index *x, unsigned nslots);
void vhostd_reg_index_free(struct vhostd_reg_index *x);
/* key_of(ctx, slot, which): which 0 = BDF, 1 = socket path of slot's VF. */
typedef const char *(*vhostd_reg_key_fn)(const void *ctx, unsigned slot, int which);
/* slot (not indexed) gets these keys. */
void vhostd_reg_index_put(struct vhostd_reg_index *x, unsigned slot, const char *bdf, const char *sock);
/* slot leaves the index (its VF may already be freed). */
void vhostd_reg_index_del(struct vhostd_reg_index *x, unsigned slot);
/* The lowest free slot (slots[i] NULL: the registry's own array), or -1 if none. */
int vhostd_reg_index_free_slot(struct vhostd_reg_index *x, void *const *slots);
/* The slot whose key (which 0: BDF, 1: socket) equals key, or -1. */
int vhostd_reg_index_find(const struct vhostd_reg_index *x, int which, const char *key, vhostd_reg_key_fn key_of,
                          const void *ctx);

#endif
