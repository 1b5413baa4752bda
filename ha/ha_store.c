/* Records and their fds, with limits checked before any change (see ha_store.h). */
#include "ha/ha_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ha_store_init(struct ha_store *s, const struct vfe_ha_limits *lim)
{
    memset(s, 0, sizeof(*s));
    s->lim = *lim;
}

static struct ha_record *lookup(const struct ha_store *s, const char *key)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (strcmp(s->recs[i].key, key) == 0)
            return &s->recs[i];
    return NULL;
}

const struct ha_record *ha_store_find(const struct ha_store *s, const char *key)
{
    return lookup(s, key);
}

static uint64_t record_bytes(const struct ha_record *r)
{
    return (uint64_t)r->blob_len + strlen(r->key);
}

static void release(struct ha_store *s, struct ha_record *r)
{
    for (unsigned i = 0; i < r->nfds; i++)
        close(r->fds[i]);
    s->fds -= r->nfds;
    s->bytes -= record_bytes(r);
    free(r->fds);
    free(r->blob);
    r->fds = NULL;
    r->blob = NULL;
    r->nfds = 0;
    r->blob_len = 0;
}

int ha_store_put(struct ha_store *s, const char *key, uint8_t *blob, uint32_t len, const int *fds, unsigned nfds)
{
    size_t klen = strlen(key);
    if (!vfe_ha_key_valid(key, klen))
        return -EINVAL;
    if (len > s->lim.max_blob || nfds > s->lim.max_record_fds)
        return -E2BIG;
    struct ha_record *old = lookup(s, key);
    uint64_t old_bytes = old ? record_bytes(old) : 0;
    uint32_t old_fds = old ? old->nfds : 0;
    if (!old && s->n >= s->lim.max_records)
        return -ENOSPC;
    if ((uint64_t)s->fds - old_fds + nfds > s->lim.max_fds)
        return -EMFILE;
    if (s->bytes - old_bytes + len + klen > s->lim.max_bytes)
        return -ENOSPC;
    int *copy = NULL;
    if (nfds) {
        copy = malloc(sizeof(int) * nfds);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, fds, sizeof(int) * nfds);
    }
    if (!old && s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        struct ha_record *recs = realloc(s->recs, sizeof(*recs) * cap);
        if (!recs) {
            free(copy);
            return -ENOMEM;
        }
        s->recs = recs;
        s->cap = cap;
    }
    struct ha_record *r = old;
    if (r)
        release(s, r);
    else
        r = &s->recs[s->n++];
    memcpy(r->key, key, klen + 1);
    r->blob = blob;
    r->blob_len = len;
    r->fds = copy;
    r->nfds = (uint16_t)nfds;
    s->fds += nfds;
    s->bytes += record_bytes(r);
    return 0;
}

int ha_store_del(struct ha_store *s, const char *key)
{
    struct ha_record *r = lookup(s, key);
    if (!r)
        return -ENOENT;
    release(s, r);
    *r = s->recs[--s->n];
    return 0;
}

void ha_store_clear(struct ha_store *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        release(s, &s->recs[i]);
    free(s->recs);
    s->recs = NULL;
    s->n = s->cap = 0;
}
