/* Hash lookups of the registry's VF slots (see registry_index.h). */
#include "app/vfe-vdpa/registry_index.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int vhostd_reg_index_init(struct vhostd_reg_index *x, unsigned nslots)
{
    memset(x, 0, sizeof(*x));
    unsigned nb = 64;
    while (nb < nslots)
        nb <<= 1;
    x->nslots = nslots;
    x->nbuckets = nb;
    x->bdf_head = malloc(nb * sizeof(int));
    x->sock_head = malloc(nb * sizeof(int));
    x->bdf_next = malloc(nslots * sizeof(int));
    x->sock_next = malloc(nslots * sizeof(int));
    x->bdf_hash = calloc(nslots, sizeof(uint32_t));
    x->sock_hash = calloc(nslots, sizeof(uint32_t));
    if (!x->bdf_head || !x->sock_head || !x->bdf_next || !x->sock_next || !x->bdf_hash || !x->sock_hash) {
        vhostd_reg_index_free(x);
        return -ENOMEM;
    }
    memset(x->bdf_head, 0xff, nb * sizeof(int));
    memset(x->sock_head, 0xff, nb * sizeof(int));
    memset(x->bdf_next, 0xff, nslots * sizeof(int));
    memset(x->sock_next, 0xff, nslots * sizeof(int));
    return 0;
}

void vhostd_reg_index_free(struct vhostd_reg_index *x)
{
    free(x->bdf_head);
    free(x->sock_head);
    free(x->bdf_next);
    free(x->sock_next);
    free(x->bdf_hash);
    free(x->sock_hash);
    memset(x, 0, sizeof(*x));
}

void vhostd_reg_index_put(struct vhostd_reg_index *x, unsigned slot, const char *bdf, const char *sock)
{
    x->bdf_hash[slot] = hash_str(bdf);
    x->sock_hash[slot] = hash_str(sock);
    unsigned b = x->bdf_hash[slot] & (x->nbuckets - 1), s = x->sock_hash[slot] & (x->nbuckets - 1);
    x->bdf_next[slot] = x->bdf_head[b];
    x->bdf_head[b] = (int)slot;
    x->sock_next[slot] = x->sock_head[s];
    x->sock_head[s] = (int)slot;
    x->used++;
}

static void unlink_slot(int *head, int *next, unsigned slot)
{
    for (int *p = head; *p >= 0; p = &next[*p])
        if (*p == (int)slot) {
            *p = next[slot];
            next[slot] = -1;
            return;
        }
}

void vhostd_reg_index_del(struct vhostd_reg_index *x, unsigned slot)
{
    unlink_slot(&x->bdf_head[x->bdf_hash[slot] & (x->nbuckets - 1)], x->bdf_next, slot);
    unlink_slot(&x->sock_head[x->sock_hash[slot] & (x->nbuckets - 1)], x->sock_next, slot);
    x->used--;
    if (slot < x->free_hint)
        x->free_hint = slot;
}

int vhostd_reg_index_free_slot(struct vhostd_reg_index *x, void *const *slots)
{
    while (x->free_hint < x->nslots && slots[x->free_hint])
        x->free_hint++;
    return x->free_hint < x->nslots ? (int)x->free_hint : -1;
}

int vhostd_reg_index_find(const struct vhostd_reg_index *x, int which, const char *key, vhostd_reg_key_fn key_of,
                          const void *ctx)
{
    const int *head = which ? x->sock_head : x->bdf_head, *next = which ? x->sock_next : x->bdf_next;
    for (int i = head[hash_str(key) & (x->nbuckets - 1)]; i >= 0; i = next[i])
        if (!strcmp(key_of(ctx, (unsigned)i, which), key))
            return i;
    return -1;
}
