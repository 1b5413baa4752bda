/*
 * Driver of a virtio PF's admin virtqueue: pipelined, asynchronous commands.
 *
 * Bring-up order on the PF (the caller owns the virtio_pci device):
 *   1. vfe_vpci_reset() and wait for reset_done (timer or vfe_vpci_reset_wait)
 *   2. ACKNOWLEDGE | DRIVER
 *   3. vfe_vpci_negotiate(VERSION_1 | ACCESS_PLATFORM | ADMIN_VQ)  -> FEATURES_OK
 *   4. vfe_vpci_msix_enable() if the transport needs it
 *   5. vfe_admin_open()   (queue set up, eventfd on vector index+1, queue enabled)
 *   6. DRIVER_OK
 * Take-over after a restart (HA), instead of all of the above: vfe_vpci_adopt(),
 * vfe_admin_adopt(), vfe_mig_adopt(): nothing is reset or set up again.
 * Teardown: vfe_admin_close() after the device is reset (or while it is quiet):
 * close cancels every outstanding command and unmaps the ring memory.
 *
 * One command = one chain: the command bytes (device-readable) and a
 * device-writable result area.  The dialect is told by the first command byte
 * (64/65: nvidia class, else a standard opcode) and decides the result layout:
 * nvidia { result[result_cap]; u8 status }, virtio { vfe_adm_std_res; result[] }.
 * Callbacks see only result bytes; status is
 *   < 0   -ETIMEDOUT (no answer in time), -EIO (malformed answer),
 *         -ECANCELED (queue closed)
 *   >= 0  the device's status: nvidia status byte, or virtio
 *         status | status_qualifier << 16.  0 is success in both.
 * result points into the command's slot and is valid during the callback only.
 *
 * A command that times out completes with -ETIMEDOUT at once, but its slot
 * stays quarantined until the device returns the chain: memory the device may
 * still write is never reused.  nvidia commands failing without the
 * do-not-retry bit are retried up to VFE_ADMIN_NV_RETRIES times after a short
 * timer back-off, within the same overall timeout.
 *
 * Single-threaded on the caller's libev loop.  Callbacks may submit new
 * commands; they must not call vfe_admin_close().
 *
 * A queue can be handed to a restarted process without a PF reset: see
 * vfe_admin_export / vfe_admin_adopt below.
 */
#ifndef VFE_ADMIN_VQ_H
#define VFE_ADMIN_VQ_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/common/virtio/vfe_virtio_pci.h"
#include "drivers/bus/vfio/vfe_pf_iova.h"
#include "drivers/common/virtio/vfe_vring.h"

#define VFE_ADMIN_DEFAULT_TIMEOUT_MS 5000
#define VFE_ADMIN_NV_RETRIES         3
#define VFE_ADMIN_RETRY_BACKOFF_MS   10      /* doubled on each retry */
#define VFE_ADMIN_CMD_MAX            4096    /* = VFE_ADM_MAX_CMD */
#define VFE_ADMIN_RESULT_MAX         65536   /* result bytes of one command */
#define VFE_ADMIN_MAX_SLOTS          16      /* commands in the device at once */

#define VFE_ADMIN_F_NO_RETRY (1u << 0)

struct vfe_admin_vq;

typedef void (*vfe_admin_cb)(void *ctx, int status, const uint8_t *result, uint32_t result_len);

struct vfe_admin_opts {
    uint32_t timeout_ms;     /* 0: the queue's default */
    uint32_t flags;          /* VFE_ADMIN_F_* */
};

struct vfe_admin_stats {
    unsigned in_flight;      /* chains owned by the device for live commands */
    unsigned pending;        /* waiting for a free slot */
    unsigned backoff;        /* waiting to be retried */
    unsigned quarantined;    /* timed out, device has not returned the chain */
    unsigned inherited;      /* of those: left in the device by the previous owner (adopt) */
    uint64_t completed, timeouts, retries, bad_answers;
};

/* The queue's memory goes in the admin window of `space` (the PF's IOVA
 * space on vp's transport, see vfe_pf_iova.h); close releases it. */
int vfe_admin_open(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                   struct vfe_admin_vq **out);
void vfe_admin_close(struct vfe_admin_vq *aq);
/* vfe_admin_open in two halves, so that the device calls run off the loop:
 * open_device (any thread that owns vp's transport and space, nothing of
 * loop's is touched: reads the admin queue's index and size, maps its
 * memory, sets it up, attaches its vector, enables it, reads its doorbell
 * address and puts the transport in posted mode), then open_watch on the
 * loop's thread (the interrupt and reply watchers start; only then may
 * commands be submitted).  A queue that open_device made may be closed on
 * the same thread before open_watch. */
int vfe_admin_open_device(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                          struct vfe_admin_vq **out);
void vfe_admin_open_watch(struct vfe_admin_vq *aq);

/* 0: cb will run exactly once, later (never from inside this call).
 * < 0 (-EINVAL, -E2BIG, -ENOMEM, ring error): cb will not run. */
int vfe_admin_submit(struct vfe_admin_vq *aq, const void *cmd, uint32_t cmd_len, uint32_t result_cap,
                     vfe_admin_cb cb, void *ctx);
int vfe_admin_submit_opts(struct vfe_admin_vq *aq, const void *cmd, uint32_t cmd_len, uint32_t result_cap,
                          const struct vfe_admin_opts *opts, vfe_admin_cb cb, void *ctx);

/* Reap completed chains; returns how many were consumed. */
int vfe_admin_poll(struct vfe_admin_vq *aq);

/* Blocking helpers for tools and tests: run the loop (and poll) until *done
 * becomes true.  Termination is guaranteed by the command timeouts. */
void vfe_admin_wait(struct vfe_admin_vq *aq, const bool *done);
/* Returns the status as in the callback; copies up to result_cap result bytes. */
int vfe_admin_exec_sync(struct vfe_admin_vq *aq, const void *cmd, uint32_t cmd_len, void *result,
                        uint32_t result_cap, uint32_t *result_len, int timeout_ms);

void vfe_admin_set_timeout(struct vfe_admin_vq *aq, uint32_t timeout_ms);
void vfe_admin_get_stats(const struct vfe_admin_vq *aq, struct vfe_admin_stats *st);
struct ev_loop *vfe_admin_loop(const struct vfe_admin_vq *aq);

/* ---- lower interface: the ring the core drives (real vring, or a test fake) ---- */
struct vfe_admin_ring_ops {
    /* Queue one chain of out readable + in writable buffers (IOVAs). */
    int (*add)(void *priv, const struct vfe_sg *sg, unsigned out, unsigned in, void *cookie);
    /* Publish what was added and notify the device if it wants it. */
    void (*kick)(void *priv);
    /* Next chain the device returned: its cookie and written length, or NULL. */
    void *(*get_used)(void *priv, uint32_t *len);
    /* Undo the ring's setup (called by vfe_admin_close before the memory goes). */
    void (*fini)(void *priv);
    /* Free host memory only, touch neither device nor IOVA space (vfe_admin_abandon). */
    void (*abandon)(void *priv);
};

struct vfe_admin_cfg {
    struct ev_loop *loop;
    uint64_t iova;           /* device address of the memfd's first byte */
    size_t ring_bytes;       /* reserved for the ring at the start of the memfd */
    unsigned nslots;         /* 1..VFE_ADMIN_MAX_SLOTS */
    const struct vfe_admin_ring_ops *ops;
    void *ops_priv;
};

/* Bytes of the memfd vfe_admin_create makes for this ring and slot count. */
size_t vfe_admin_mem_size(size_t ring_bytes, unsigned nslots);
/* Create the memfd (ring area + command slots) and the command engine. */
int vfe_admin_create(const struct vfe_admin_cfg *cfg, struct vfe_admin_vq **out);
/* The memfd, its mapping and size (for dma_map and the ring). */
void vfe_admin_mem(const struct vfe_admin_vq *aq, int *fd, void **mem, size_t *len);
/* Host pointer of [iova, iova+len) inside the memfd, NULL if outside. */
void *vfe_admin_dma_ptr(const struct vfe_admin_vq *aq, uint64_t iova, uint64_t len);
/* Watch an eventfd signalled on completions (the caller keeps ownership). */
void vfe_admin_set_irq_fd(struct vfe_admin_vq *aq, int fd);

/* ---- HA: hand a running admin queue to a restarted process ----
 *
 * vfe_admin_export() describes a queue opened with vfe_admin_open() (or
 * adopted) so that another process can drive it on: a blob and the memfd
 * holding the ring and the command slots.
 *   blob: written into buf (cap bytes), its length in *len.  Starts with
 *     u32 magic VFE_ADMIN_BLOB_MAGIC, u16 version VFE_ADMIN_BLOB_VERSION,
 *     u16 total length; then queue index, size, MSI-X vector, slot count,
 *     the IOVA and length of the memory and the ring offsets, u32 reserved 0.
 *     Little-endian, VFE_ADMIN_BLOB_MAX bytes.
 *   *memfd: the queue's own memfd, borrowed (valid while aq lives): the
 *     caller passes a copy on (SCM_RIGHTS, dup) and closes that copy.
 * Timing: export ONCE, right after vfe_admin_open() (or adopt), and deposit
 * it with the memfd; never again.  The blob holds nothing that changes while
 * the queue runs (an export at any later time is byte-identical), so it stays
 * valid for the queue's whole life, whatever was submitted or completed
 * since and wherever a crash hits (between an add and its publish, between a
 * submit and a completion, in the middle of reaping).  Export is memory
 * only, no device access.
 * Errors: -EINVAL (NULL args), -ENOTSUP (not a PCI queue: a test ring),
 * -ENOSPC (cap too small; *len says how much is needed).
 *
 * vfe_admin_adopt() takes over the queue a dead predecessor exported, on the
 * PF vp (initialized with vfe_vpci_init or vfe_vpci_adopt on an already
 * connected transport; nothing here cares how it was obtained) WITHOUT
 * resetting the PF or setting the queue up again: no status, feature or
 * queue register is written (queue_select only, to read back).
 * Everything dynamic comes from the ring memory (the memfd) as the device
 * and the dead owner left it:
 *   - avail index and used index are read from the memory; the new owner
 *     consumes used entries from the used index on;
 *   - every chain between used and avail index (published, not returned) is
 *     inherited: its slot is the one its descriptors point into, it stays
 *     quarantined until the device returns the chain and that answer is
 *     dropped (logged); the dead owner's callbacks never run;
 *   - chains the device returned that the owner never reaped are done;
 *     chains the owner added but never published never reached the device;
 *   - descriptor free list and slots are rebuilt from that: every
 *     descriptor and slot no inherited chain holds is free.
 * Checks, each refused with a log line saying why, nothing applied:
 *   -EINVAL  blob malformed: magic, version 0, length, reserved bytes, a field
 *            out of range (size not a power of two, slots >
 *            VFE_ADMIN_MAX_SLOTS or > size / 2, layout offsets not those of
 *            that size, memory length not that of size and slots)
 *   -EPROTO  blob version newer than VFE_ADMIN_BLOB_VERSION (never half
 *            applied) or older (version 1 carried the ring indices and is
 *            not read); the blob does not match the device: admin queue
 *            index, size, enable, ring addresses or vector read back differ,
 *            the IOVA window differs; the memory does not match the blob or
 *            is not a ring an admin queue left: memfd size not the blob's
 *            length, avail index more than the slot count ahead of the used
 *            index, a chain's head or next descriptor beyond the ring, flags
 *            not those of a command chain (readable + writable, no
 *            indirect), descriptors pointing outside the command slots or
 *            into two slots, lengths beyond the slot areas, two chains in
 *            one slot or sharing a descriptor
 *   -ENOENT  space holds no admin window (vfe_pf_iova_window): the caller
 *            must pass the PF's IOVA space, imported or kept, holding the
 *            window the blob names, mapped to the same memfd
 *   transport -errno, -ENOMEM
 * memfd is borrowed: adopt keeps a dup of it; the caller closes its own.
 * The adopted queue owns the admin window from then on (vfe_admin_close
 * releases it, as for an opened queue).
 * Interrupts: a new eventfd is attached to the queue's MSI-X vector with
 * set_irqs (a vector change, not a reset); the predecessor's eventfd is not
 * needed.  Completions the device wrote before that are reaped by a poll at
 * once (that poll runs no callback: only inherited slots can complete).
 * New commands use the free slots meanwhile.
 *
 * vfe_admin_abandon(): tests only.  What a crash of the owner leaves behind:
 * unmaps and frees the host side, closes its fds, runs no callback, sends
 * nothing to the device (the queue stays enabled, its memory mapped and its
 * IOVA window held in the space). */
#define VFE_ADMIN_BLOB_MAGIC   0x51414656u     /* "VFAQ" */
#define VFE_ADMIN_BLOB_VERSION 2
#define VFE_ADMIN_BLOB_MAX     48
int vfe_admin_export(const struct vfe_admin_vq *aq, void *buf, size_t cap, size_t *len, int *memfd);
int vfe_admin_adopt(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                    const void *blob, size_t len, int memfd, struct vfe_admin_vq **out);
/* The same in two halves, as open_device/open_watch: adopt_device makes
 * every device call (the read-back checks, the vector attached, the doorbell
 * address read, posted mode on) and starts nothing of the loop's, so it may
 * run on a worker thread (the queue may be abandoned on that thread);
 * adopt_watch, on the loop's thread, starts the interrupt and reply watchers
 * and reaps what the device completed meanwhile. */
int vfe_admin_adopt_device(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                           const void *blob, size_t len, int memfd, struct vfe_admin_vq **out);
void vfe_admin_adopt_watch(struct vfe_admin_vq *aq);
void vfe_admin_abandon(struct vfe_admin_vq *aq);

#endif
