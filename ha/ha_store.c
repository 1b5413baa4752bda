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

static uint32_t bucket(const struct ha_store *s, const char *key)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (; *key; key++)
        h = (h ^ (uint8_t)*key) * 16777619u;
    return h & (s->cap - 1);     /* cap is a power of two */
}

static void index_add(struct ha_store *s, uint32_t i)
{
    uint32_t b = bucket(s, s->recs[i].key);
    s->next[i] = s->head[b];
    s->head[b] = (int32_t)i;
}

static void index_remove(struct ha_store *s, uint32_t i)
{
    for (int32_t *p = &s->head[bucket(s, s->recs[i].key)]; *p >= 0; p = &s->next[*p])
        if (*p == (int32_t)i) {
            *p = s->next[i];
            return;
        }
}

/* Room for cap records, the index rebuilt for it.  0 or -ENOMEM (nothing changed). */
static int grow(struct ha_store *s, uint32_t cap)
{
    struct ha_record *recs = realloc(s->recs, sizeof(*recs) * cap);
    if (!recs)
        return -ENOMEM;
    s->recs = recs;
    int32_t *head = malloc(sizeof(int32_t) * cap), *next = malloc(sizeof(int32_t) * cap);
    if (!head || !next) {
        free(head);
        free(next);
        return -ENOMEM;
    }
    free(s->head);
    free(s->next);
    s->head = head;
    s->next = next;
    s->cap = cap;
    memset(s->head, 0xff, sizeof(int32_t) * cap);
    for (uint32_t i = 0; i < s->n; i++)
        index_add(s, i);
    return 0;
}

static struct ha_record *lookup(const struct ha_store *s, const char *key)
{
    if (!s->cap)
        return NULL;
    for (int32_t i = s->head[bucket(s, key)]; i >= 0; i = s->next[i])
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
    if (!old && s->n == s->cap && grow(s, s->cap ? s->cap * 2 : 16) < 0) {
        free(copy);
        return -ENOMEM;
    }
    struct ha_record *r = old;
    if (r)
        release(s, r);
    else
        r = &s->recs[s->n++];
    memcpy(r->key, key, klen + 1);
    if (!old)
        index_add(s, (uint32_t)(r - s->recs));
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
    uint32_t i = (uint32_t)(r - s->recs), last = s->n - 1;
    index_remove(s, i);
    release(s, r);
    if (i != last) {
        index_remove(s, last);
        *r = s->recs[last];
        index_add(s, i);
    }
    s->n--;
    return 0;
}

void ha_store_clear(struct ha_store *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        release(s, &s->recs[i]);
    free(s->recs);
    free(s->head);
    free(s->next);
    s->recs = NULL;
    s->head = s->next = NULL;
    s->n = s->cap = 0;
}
