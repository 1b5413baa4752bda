/*
 * The persisted provisioning of vfe-vhostd: DIR/provisioning.json, read once
 * at start and rewritten after every successful change of the registry.
 *
 *   {"format": "vfe-vhostd-provisioning", "version": 1,
 *    "pfs": [{"bdf": "0000:3b:00.0"}],
 *    "vfs": [{"bdf": "0000:3b:00.1", "socket": "/run/vf-1", "uuid": "vm-7", "mode": "direct"}]}
 * ("mode" only for a VF added in direct mode; "msix": N, the MSI-X vectors the
 *  VF was sized with (vf_msix.h), only for a VF added with a size)
 *
 * Pure file work on plain data: nothing here touches a device.  The caller
 * (provision.c) owns the file and the directory's lock.
 */
#ifndef VFE_VHOSTD_STATE_FILE_H
#define VFE_VHOSTD_STATE_FILE_H

#include <stddef.h>

#include "app/vfe-vdpa/registry.h"

#define VHOSTD_STATE_FORMAT "vfe-vhostd-provisioning"
#define VHOSTD_STATE_VERSION 1
#define VHOSTD_STATE_FILE "provisioning.json"
#define VHOSTD_STATE_MAX_BYTES (16 << 20)   /* 16k VFs at ~250 bytes each fit */

struct vhostd_state_pf {
    char bdf[16];
};

struct vhostd_state_vf {
    char bdf[16];
    char socket[VHOSTD_SOCK_PATH_LEN];   /* absolute; as the registry had it (canonical) */
    char uuid[64];                       /* VM id, "" for none */
    char mode[8];                        /* "direct" or "" (through its PF's admin queue) */
    unsigned msix;                       /* MSI-X vectors it was sized with, 0: not sized */
};

struct vhostd_state {
    unsigned npfs, nvfs;
    struct vhostd_state_pf pfs[VHOSTD_MAX_PFS];
    struct vhostd_state_vf vfs[VHOSTD_MAX_MANAGED_VFS];
};

/* Read and validate the whole file at path into s (s is all-or-nothing: no
 * records (npfs = nvfs = 0) on any error; entries past the counts are not
 * cleared).  0; 1 if there is no file (s empty); or -errno with
 * one sentence in msg naming what is wrong:
 *   -EINVAL      not JSON, wrong format, types, BDF, socket path, duplicates,
 *                too many records, not a regular file, too large
 *   -EPROTONOSUPPORT  written by a newer vfe-vhostd (version > ours)
 *   other        open/read errors (-EACCES ...) */
int vhostd_state_read(const char *path, struct vhostd_state *s, char *msg, size_t len);

/* Write s to DIR/provisioning.json atomically: DIR/provisioning.json.tmp
 * written and fsynced, renamed over the file, DIR fsynced.  0 or -errno with
 * a sentence in msg; on failure the old file is intact. */
int vhostd_state_write(const char *dir, const struct vhostd_state *s, char *msg, size_t len);

#endif
