/*
 * Live-migration commands for the VFs of one PF, over its admin queue, in
 * either command dialect.  vfe_mig_probe() finds the dialect; every operation
 * then looks the same to the caller.
 *
 * Every operation is asynchronous: it returns 0 and later calls its callback
 * exactly once (never from inside the call), or returns < 0 and never calls
 * it.  err in callbacks is 0 or a negative errno: -ETIMEDOUT, -EIO/-EPROTO
 * (malformed answer), or the device's status mapped to an errno (-EINVAL,
 * -ENODEV unknown VF, -EBUSY wrong state, -ENOSPC, -EOPNOTSUPP, -EAGAIN).
 * vf is the VF number, 1..NumVFs.
 */
#ifndef VFE_MIG_H
#define VFE_MIG_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/common/virtio_mi/vfe_admin_vq.h"
#include "drivers/common/virtio_mi/vfe_dev_state.h"

enum vfe_mig_dialect { VFE_MIG_DIALECT_NONE = 0, VFE_MIG_DIALECT_NVIDIA = 1, VFE_MIG_DIALECT_VIRTIO = 2 };

/* Numbers are the nvidia dialect's.  virtio DEV_MODE_SET flags: RUNNING 0,
 * QUIESCED STOPPED, FREEZED FROZEN. */
enum vfe_mig_state { VFE_MIG_INIT = 0, VFE_MIG_RUNNING = 1, VFE_MIG_QUIESCED = 2, VFE_MIG_FREEZED = 3 };

/* Numbers are the nvidia dialect's. */
enum vfe_mig_track_mode {
    VFE_MIG_TRACK_PUSH_BITMAP = 1, VFE_MIG_TRACK_PUSH_BYTEMAP = 2,
    VFE_MIG_TRACK_PULL_BITMAP = 3, VFE_MIG_TRACK_PULL_BYTEMAP = 4,
};

#define VFE_MIG_MAX_SGES 32
#define VFE_MIG_STATE_MAX (256u * 1024)   /* largest saved state accepted */
#define VFE_MIG_SAVE_CHUNK 16384u          /* nvidia SAVE piece size */

struct vfe_mig_sge {
    uint64_t addr;           /* in the PF's DMA space */
    uint32_t len;
};

struct vfe_mig_dirty_cfg {
    enum vfe_mig_track_mode mode;
    uint32_t page_size;      /* power of two >= 4096 */
    uint64_t range_addr, range_len;
    unsigned nsges;          /* push: 1..VFE_MIG_MAX_SGES bitmap buffers; pull: 0 */
    struct vfe_mig_sge sges[VFE_MIG_MAX_SGES];
};

struct vfe_mig;

struct vfe_mig_ops {
    const char *name;
    int (*get_state)(struct vfe_mig *m, uint16_t vf, void (*cb)(void *ctx, int err, enum vfe_mig_state st), void *ctx);
    int (*set_state)(struct vfe_mig *m, uint16_t vf, enum vfe_mig_state st, void (*cb)(void *ctx, int err), void *ctx);
    int (*save_state)(struct vfe_mig *m, uint16_t vf, struct vfe_dev_state *out, void (*cb)(void *ctx, int err),
                      void *ctx);
    int (*restore_state)(struct vfe_mig *m, uint16_t vf, const struct vfe_dev_state *s,
                         void (*cb)(void *ctx, int err), void *ctx);
    int (*dirty_start)(struct vfe_mig *m, uint16_t vf, const struct vfe_mig_dirty_cfg *c,
                       void (*cb)(void *ctx, int err), void *ctx);
    int (*dirty_stop)(struct vfe_mig *m, uint16_t vf, void (*cb)(void *ctx, int err), void *ctx);
    int (*dirty_report)(struct vfe_mig *m, uint16_t vf, uint32_t offset, void *buf, uint32_t len,
                        void (*cb)(void *ctx, int err, uint32_t n), void *ctx);
    /* NULL: the dialect has no such command */
    int (*announce)(struct vfe_mig *m, uint16_t vf, const uint8_t mac[6], void (*cb)(void *ctx, int err),
                    void *ctx);
};

struct vfe_mig_op;

struct vfe_mig {
    struct vfe_admin_vq *aq;
    enum vfe_mig_dialect dialect;
    const struct vfe_mig_ops *ops;
    bool virtio_dirty;       /* virtio: the device lists vfe's dirty-report extension */
    struct vfe_mig_op *live; /* operations in flight (freed by vfe_mig_abandon) */
};

typedef void (*vfe_mig_done_cb)(void *ctx, int err);
typedef void (*vfe_mig_state_cb)(void *ctx, int err, enum vfe_mig_state st);
typedef void (*vfe_mig_report_cb)(void *ctx, int err, uint32_t n);

int vfe_mig_init(struct vfe_mig *m, struct vfe_admin_vq *aq, enum vfe_mig_dialect d);
/* Forget every operation in flight without a callback (after
 * vfe_admin_abandon(): their commands will never complete here). */
void vfe_mig_abandon(struct vfe_mig *m);
const char *vfe_mig_dialect_name(enum vfe_mig_dialect d);

/* virtio has no mode query: -EOPNOTSUPP there. */
int vfe_mig_get_state(struct vfe_mig *m, uint16_t vf, vfe_mig_state_cb cb, void *ctx);
/* st: RUNNING, QUIESCED or FREEZED. */
int vfe_mig_set_state(struct vfe_mig *m, uint16_t vf, enum vfe_mig_state st, vfe_mig_done_cb cb, void *ctx);
/* *out is written before cb runs and must stay valid until then. */
int vfe_mig_save_state(struct vfe_mig *m, uint16_t vf, struct vfe_dev_state *out, vfe_mig_done_cb cb, void *ctx);
/* s is encoded during the call. */
int vfe_mig_restore_state(struct vfe_mig *m, uint16_t vf, const struct vfe_dev_state *s, vfe_mig_done_cb cb,
                          void *ctx);
int vfe_mig_dirty_start(struct vfe_mig *m, uint16_t vf, const struct vfe_mig_dirty_cfg *c, vfe_mig_done_cb cb,
                        void *ctx);
int vfe_mig_dirty_stop(struct vfe_mig *m, uint16_t vf, vfe_mig_done_cb cb, void *ctx);
/* Pull mode: read and clear up to len bitmap bytes from byte offset into buf
 * (valid until cb); n is how many the device returned. */
int vfe_mig_dirty_report(struct vfe_mig *m, uint16_t vf, uint32_t offset, void *buf, uint32_t len,
                         vfe_mig_report_cb cb, void *ctx);

/* After a migration: the device sends a broadcast RARP with source mac from
 * the VF's port, so the network learns where the guest is now.  nvidia only
 * (vendor command class 64 cmd 6, docs/admin-queue.md); the standard has no
 * such command.  Synchronous refusals: -EINVAL (mac multicast or zero, bad
 * arguments), -EOPNOTSUPP (the dialect cannot announce; the guest or QEMU
 * must).  The callback's err: -EBUSY (the VF does not run), -EOPNOTSUPP (the
 * device does not know the command), or the errors above. */
int vfe_mig_announce(struct vfe_mig *m, uint16_t vf, const uint8_t mac[6], vfe_mig_done_cb cb, void *ctx);
/* mac is a unicast address other than 00:00:00:00:00:00. */
bool vfe_mig_mac_valid(const uint8_t mac[6]);

/* Dialect detection: nvidia IDENTITY, else virtio LIST_QUERY (+ LIST_USE).
 * On success m is initialized for the dialect found; -ENOTSUP if neither.
 * Probing is not read-only: IDENTITY and LIST_QUERY only ask, but LIST_USE
 * tells the device which commands the driver will use, and the standard lets
 * a device refuse it once commands are in use.  It also costs admin round
 * trips on a queue that may be slow.  So a PF taken over after a restart is
 * not probed again: the dialect comes back with vfe_mig_adopt() below. */
int vfe_mig_probe(struct vfe_mig *m, struct vfe_admin_vq *aq, vfe_mig_done_cb cb, void *ctx);
int vfe_mig_probe_sync(struct vfe_mig *m, struct vfe_admin_vq *aq);

/* ---- HA: the dialect a PF was probed for, handed to a restarted process ----
 * Blob: u32 magic VFE_MIG_BLOB_MAGIC, u16 version VFE_MIG_BLOB_VERSION, u16
 * length (VFE_MIG_BLOB_LEN), u8 dialect, u8 flags (bit 0: virtio dirty
 * extension in use), u16 reserved 0; little-endian.
 * export: -EINVAL (m not initialized, NULL args), -ENOSPC (cap too small;
 *   *len says how much is needed).  Memory only.
 * adopt: initializes m on aq (the adopted admin queue) as the probe did,
 *   sends nothing.  -EINVAL (bad magic, length, unknown dialect or flags,
 *   reserved bits set), -EPROTO (version newer than this build reads); each
 *   refusal is logged with its reason and leaves m untouched. */
#define VFE_MIG_BLOB_MAGIC   0x474d4656u      /* "VFMG" */
#define VFE_MIG_BLOB_VERSION 1
#define VFE_MIG_BLOB_LEN     12
int vfe_mig_export(const struct vfe_mig *m, void *buf, size_t cap, size_t *len);
int vfe_mig_adopt(struct vfe_mig *m, struct vfe_admin_vq *aq, const void *blob, size_t len);

#endif
