/* Records deposited with vfe-vhostd-ha (see ha_record.h). */
#include "app/vfe-vdpa/ha_record.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define REC_MAGIC 0x52484656u   /* "VFHR" */

struct rec_head {
    uint32_t magic;
    uint16_t version, kind;
    char bdf[16];
    struct {
        char pf[16];
        uint32_t vf_num;
        char socket[VHOSTD_SOCK_PATH_LEN];
        char uuid[64];
    } vf;
    uint16_t max_pairs, nsec;
    uint64_t device_features;
    uint32_t sec_len[HA_REC_SECTIONS];
    uint32_t sec_fds[HA_REC_SECTIONS];
} __attribute__((packed));

int ha_rec_encode(const struct ha_rec *r, uint8_t *buf, size_t cap, size_t *len)
{
    struct rec_head h;
    memset(&h, 0, sizeof(h));
    h.magic = REC_MAGIC;
    h.version = HA_REC_VERSION;
    h.kind = (uint16_t)r->kind;
    snprintf(h.bdf, sizeof(h.bdf), "%s", r->bdf);
    if (r->kind == HA_REC_VF) {
        snprintf(h.vf.pf, sizeof(h.vf.pf), "%s", r->vf.pf);
        h.vf.vf_num = r->vf.vf_num;
        snprintf(h.vf.socket, sizeof(h.vf.socket), "%s", r->vf.socket);
        snprintf(h.vf.uuid, sizeof(h.vf.uuid), "%s", r->vf.uuid);
    }
    h.max_pairs = r->max_pairs;
    h.device_features = r->device_features;
    h.nsec = (uint16_t)r->nsec;
    size_t need = sizeof(h);
    for (unsigned i = 0; i < r->nsec; i++) {
        h.sec_len[i] = r->sec[i].len;
        h.sec_fds[i] = r->sec[i].nfds;
        need += r->sec[i].len;
    }
    if (r->nsec > HA_REC_SECTIONS || need > cap)
        return -ENOSPC;
    memcpy(buf, &h, sizeof(h));
    size_t off = sizeof(h);
    for (unsigned i = 0; i < r->nsec; i++) {
        memcpy(buf + off, r->sec[i].data, r->sec[i].len);
        off += r->sec[i].len;
    }
    *len = off;
    return 0;
}

static bool terminated(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

int ha_rec_decode(const uint8_t *buf, size_t len, unsigned nfds, struct ha_rec *r, const char **why)
{
    struct rec_head h;
    memset(r, 0, sizeof(*r));
    if (len < 8) {
        *why = "shorter than a record head";
        return -EINVAL;
    }
    memcpy(&h, buf, len < sizeof(h) ? len : sizeof(h));
    if (h.magic != REC_MAGIC) {
        *why = "not a vfe-vhostd record (magic)";
        return -EINVAL;
    }
    if (h.version != HA_REC_VERSION) {
        *why = h.version > HA_REC_VERSION ? "written by a newer vfe-vhostd (record version)" : "unknown record version";
        return -EPROTONOSUPPORT;
    }
    if (len < sizeof(h)) {
        *why = "truncated head";
        return -EINVAL;
    }
    if ((h.kind != HA_REC_PF && h.kind != HA_REC_VF) || h.nsec > HA_REC_SECTIONS || !terminated(h.bdf, sizeof(h.bdf)) ||
        !terminated(h.vf.pf, sizeof(h.vf.pf)) || !terminated(h.vf.socket, sizeof(h.vf.socket)) ||
        !terminated(h.vf.uuid, sizeof(h.vf.uuid)) || !h.bdf[0]) {
        *why = "bad head fields";
        return -EINVAL;
    }
    if (h.kind == HA_REC_VF && (!h.vf.pf[0] || !h.vf.socket[0] || h.vf.vf_num == 0 || h.max_pairs == 0)) {
        *why = "VF record without its PF, socket, number or queue pairs";
        return -EINVAL;
    }
    size_t off = sizeof(h);
    unsigned fds = 0;
    for (unsigned i = 0; i < h.nsec; i++) {
        if (h.sec_len[i] > len - off || h.sec_fds[i] > nfds - fds) {
            *why = "a section longer than the record, or more fds than came";
            return -EINVAL;
        }
        r->sec[i] = (struct ha_section){buf + off, h.sec_len[i], h.sec_fds[i]};
        off += h.sec_len[i];
        fds += h.sec_fds[i];
    }
    if (off != len || fds != nfds) {
        *why = "bytes or fds beyond the sections";
        return -EINVAL;
    }
    r->kind = (enum ha_rec_kind)h.kind;
    r->nsec = h.nsec;
    memcpy(r->bdf, h.bdf, sizeof(r->bdf));
    if (r->kind == HA_REC_VF) {
        snprintf(r->vf.bdf, sizeof(r->vf.bdf), "%s", h.bdf);
        memcpy(r->vf.pf, h.vf.pf, sizeof(r->vf.pf));
        r->vf.vf_num = h.vf.vf_num;
        memcpy(r->vf.socket, h.vf.socket, sizeof(r->vf.socket));
        memcpy(r->vf.uuid, h.vf.uuid, sizeof(r->vf.uuid));
    }
    r->max_pairs = h.max_pairs;
    r->device_features = h.device_features;
    return 0;
}
