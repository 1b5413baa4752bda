/*
 * The records vfe-vhostd deposits with vfe-vhostd-ha (docs/ha.md): one per PF
 * ("pf/<bdf>") and one per VF ("vf/<bdf>").  A record is a versioned blob of
 * sections (each a length and the bytes a lower layer exported) and its fds,
 * section by section.  A VF's record holds everything about the VF at one
 * moment (transport, device half, vhost-user session), so a successor never
 * sees one part newer than another.
 *
 * Decoding is validation of external input: every length is checked against
 * the blob, every fd count against the fds that came; -EINVAL with a reason,
 * -EPROTONOSUPPORT for a newer version (refused, never half read).  Decoded
 * sections point into the caller's blob; fds stay the caller's.
 */
#ifndef VFE_VHOSTD_HA_RECORD_H
#define VFE_VHOSTD_HA_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "app/vfe-vdpa/vf.h"

#define HA_REC_VERSION 1
#define HA_REC_SECTIONS 4

enum ha_rec_kind { HA_REC_PF = 1, HA_REC_VF = 2 };

struct ha_section {
    const uint8_t *data;
    uint32_t len;
    unsigned nfds;        /* fds of this section, in order after the previous sections' */
};

struct ha_rec {
    enum ha_rec_kind kind;
    char bdf[16];
    struct vhostd_vf_rec vf;       /* HA_REC_VF: what provisioned it */
    uint16_t max_pairs;            /* HA_REC_VF: the session's queue pairs */
    uint64_t device_features;      /* HA_REC_VF */
    /* PF: transport, IOVA space, admin queue, dialect.  VF: transport, device, session. */
    struct ha_section sec[HA_REC_SECTIONS];
    unsigned nsec;
};

/* Encode r into buf (cap bytes); *len the record's size.  -ENOSPC. */
int ha_rec_encode(const struct ha_rec *r, uint8_t *buf, size_t cap, size_t *len);
/* Decode a record of nfds fds.  0, -EINVAL (and *why), -EPROTONOSUPPORT. */
int ha_rec_decode(const uint8_t *buf, size_t len, unsigned nfds, struct ha_rec *r, const char **why);

#endif
