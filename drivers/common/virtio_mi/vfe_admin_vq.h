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
    uint64_t completed, timeouts, retries, bad_answers;
};

/* The queue's memory goes in the admin window of `space` (the PF's IOVA
 * space on vp's transport, see vfe_pf_iova.h); close releases it. */
int vfe_admin_open(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                   struct vfe_admin_vq **out);
void vfe_admin_close(struct vfe_admin_vq *aq);

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

#endif
