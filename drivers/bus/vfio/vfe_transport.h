/*
 * Device transport: the only layer that knows whether a PCI function sits
 * behind kernel VFIO or behind a vfio-user server (vfe-dpu-sim).
 *
 * Calls are synchronous and bounded by a timeout: they stand for MMIO and
 * ioctl accesses, which are synchronous on kernel VFIO too.  Long waits
 * (device reset, admin command completion) are asynchronous one layer up.
 * Every call returns 0 or a negative errno.
 *
 * Posted mode (vfe_transport_set_posted, vfio-user only): once a device is
 * up, the writes (region_write, dma_map, dma_unmap, set_irqs, ioeventfd,
 * reset) are sent without waiting for the device's answer, as PCIe MMIO
 * writes are posted; reads stay synchronous, and region_read_async reads
 * without waiting.  The owner watches vfe_transport_watch_fd() on its loop and
 * calls vfe_transport_drain() when it is readable; vfe_transport_posted_state()
 * tells what is still unacknowledged and the first posted request the device
 * refused (docs/device-calls.md).  Kernel VFIO has no posted mode: its
 * ioctls and pwrite for these writes do not wait on the device, so every
 * write is acknowledged when the call returns (the optional ops are NULL and
 * the wrappers below answer trivially).
 */
#ifndef VFE_TRANSPORT_H
#define VFE_TRANSPORT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/vfio.h>

/* Region indices are VFIO's: BAR0..5 = 0..5, config space = VFIO_PCI_CONFIG_REGION_INDEX. */
#define VFE_REGION_CONFIG VFIO_PCI_CONFIG_REGION_INDEX

#define VFE_DMA_READ  (1u << 0)
#define VFE_DMA_WRITE (1u << 1)

struct vfe_region_info {
    uint32_t index;
    uint32_t flags; /* VFIO_REGION_INFO_FLAG_* */
    uint64_t size;
};

struct vfe_transport;

/* What a posted-mode transport still owes (vfe_transport_posted_state). */
struct vfe_posted_state {
    unsigned outstanding;      /* posted writes the device has not acknowledged */
    unsigned reads;            /* asynchronous reads not answered yet */
    long oldest_ms;            /* age of the oldest of them (writes or reads), 0 if none */
    int error;                 /* first refused posted write: -errno, or 0 */
    const char *error_op;      /* its request's name ("DMA_MAP", ...), NULL if none */
};

/* Completion of vfe_transport_read_async: err 0 and len bytes at data (valid
 * during the call only), or -errno (the device's error reply, -EPROTO for a
 * malformed reply, -ENOTCONN when the connection broke). */
typedef void (*vfe_read_cb)(void *ctx, int err, const void *data, size_t len);
/* Completion of vfe_transport_dma_map_async/_unmap_async: 0, the device's
 * -errno, or -ENOTCONN when the connection broke. */
typedef void (*vfe_write_cb)(void *ctx, int err);

/* bdf is "DDDD:BB:DD.F" (hex): nothing else is ever joined to a sysfs root
 * (a '/' or '..' could escape it). */
bool vfe_bdf_valid(const char *bdf);

struct vfe_transport_ops {
    int (*region_info)(struct vfe_transport *t, uint32_t index, struct vfe_region_info *info);
    int (*region_read)(struct vfe_transport *t, uint32_t index, uint64_t off, void *buf, size_t len);
    int (*region_write)(struct vfe_transport *t, uint32_t index, uint64_t off, const void *buf, size_t len);
    /* [off, off+len) of the region may be mmapped by the caller (or handed to QEMU):
     * the fd (owned by the transport) and the file offset of off.  -ENOENT: not mappable. */
    int (*region_mmap_fd)(struct vfe_transport *t, uint32_t index, uint64_t off, uint64_t len, int *fd,
                          uint64_t *file_off);
    /* Map [offset, offset+len) of fd at IOVA iova for the device.  prot: VFE_DMA_*. */
    int (*dma_map)(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset, uint32_t prot);
    int (*dma_unmap)(struct vfe_transport *t, uint64_t iova, uint64_t len);
    /* Attach eventfds to MSI-X vectors start..start+count-1; an fd of -1 detaches that vector. */
    int (*set_irqs)(struct vfe_transport *t, uint32_t irq_index, uint32_t start, uint32_t count, const int *fds);
    /* A write of `size` bytes equal to `data` at region/off signals eventfd `fd` in the device
     * (kernel VFIO_DEVICE_IOEVENTFD).  fd = -1 removes the registration. */
    int (*ioeventfd)(struct vfe_transport *t, uint32_t region, uint64_t off, uint32_t size, uint64_t data, int fd);
    int (*reset)(struct vfe_transport *t);
    /* Fds that keep the device open (for the HA process).  Returns the count or -errno. */
    int (*export_fds)(struct vfe_transport *t, int *fds, int max);
    /* Snapshot for vfe_transport_export(); NULL: this transport cannot be adopted. */
    int (*export_state)(struct vfe_transport *t, void *buf, size_t cap, size_t *len, int *fds, unsigned max_fds,
                        unsigned *nfds);
    void (*close)(struct vfe_transport *t);
    /* Optional (NULL: the device has its own DMA table, as on vfio-user).  The
     * identity of the IOMMU address space the device translates through: two
     * transports answering the same pointer share every map (kernel VFIO: one
     * container), so a DMA domain maps once for them. */
    const void *(*dma_space)(struct vfe_transport *t);
    /* Optional: an eventfd (owned by the transport, non-blocking) that becomes
     * readable when the host asks for the device back (kernel VFIO request
     * IRQ: hot-unplug).  -1 or NULL op: none. */
    int (*req_fd)(struct vfe_transport *t);

    /* ---- posted mode (all optional; NULL on kernel VFIO) ----
     * set_posted: on: the writes named above return once sent (0), or with
     *   the error known before sending (-EINVAL, -ENOTCONN, -ENOBUFS: the
     *   device stopped reading, see below); off: each waits for its reply
     *   again (what is outstanding is still absorbed).
     * watch_fd: an fd owned by the transport, readable when drain has work
     *   (replies in the socket, or replies a synchronous call absorbed:
     *   read completions to run, a changed posted_state).  Stable for the
     *   transport's life.
     * drain: never blocks.  Consumes the whole replies that are there
     *   (a partial one waits in the transport's buffer), matches each to
     *   its request by msg_id, latches the first refused write (logged),
     *   runs the callbacks of answered asynchronous reads.  A reply that
     *   matches nothing, or a malformed stream, breaks the connection as a
     *   synchronous call would (-ENOTCONN from then on; reads still
     *   outstanding complete with -ENOTCONN).  0 or -ENOTCONN.
     * posted_state: see struct vfe_posted_state; take_error clears the
     *   latched error after reporting it.
     * region_read_async: len <= the negotiated transfer size (else
     *   -EMSGSIZE), sent at once; cb runs exactly once, from a later drain
     *   (never inside this call or any other transport call but drain),
     *   unless cancel_reads or close comes first.  cb may post requests,
     *   never close the transport.
     * dma_map_async / dma_unmap_async: the posted dma_map / dma_unmap (as
     *   repeatable, see below) whose outcome the caller needs: cb runs
     *   exactly once, from a later drain, with that request's own result
     *   (never latched), unless cancel_reads or close comes first.  Same
     *   rules for cb as region_read_async.  -EOPNOTSUPP when the transport
     *   is not in posted mode: call dma_map / dma_unmap, answered inside.
     * cancel_reads: forget every read or DMA completion posted with ctx
     *   (their cb never runs; the requests themselves stay sent).
     * A synchronous call made meanwhile reads the stream too: it absorbs the
     * posted replies that come before its own (answered reads are kept for
     * the next drain).  At most VFE_POSTED_MAX requests are outstanding; a
     * further one, or one the socket buffer cannot take within
     * VFE_POSTED_ROOM_MS (the device does not read), fails with -ENOBUFS
     * and a log line naming the oldest unanswered request; until the device
     * reads again or has answered everything, later ones fail at once
     * (that wait is paid once per episode).  Nothing is queued in memory.
     * DMA in posted mode is repeatable after a crash as vfe_dma_apply.h
     * makes it from synchronous answers it cannot see now: dma_map first
     * posts an unmap of exactly that range (an identical leftover goes, a
     * different range in the way still makes the map fail with -EEXIST,
     * latched), and an unmap the device answers "not mapped" counts as done. */
    int (*set_posted)(struct vfe_transport *t, bool on);
    int (*watch_fd)(struct vfe_transport *t);
    int (*drain)(struct vfe_transport *t);
    void (*posted_state)(struct vfe_transport *t, struct vfe_posted_state *st, bool take_error);
    int (*region_read_async)(struct vfe_transport *t, uint32_t index, uint64_t off, size_t len, vfe_read_cb cb,
                             void *ctx);
    void (*cancel_reads)(struct vfe_transport *t, void *ctx);
    int (*dma_map_async)(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset,
                         uint32_t prot, vfe_write_cb cb, void *ctx);
    int (*dma_unmap_async)(struct vfe_transport *t, uint64_t iova, uint64_t len, vfe_write_cb cb, void *ctx);
};

#define VFE_POSTED_MAX 128
#define VFE_POSTED_ROOM_MS 200   /* wait for socket room, once per "stopped reading" episode */

struct vfe_transport {
    const struct vfe_transport_ops *ops;
    char bdf[32];
    int timeout_ms; /* bound of one round trip; default VFE_TRANSPORT_TIMEOUT_MS */
    bool posted;    /* in posted mode (vfe_transport_set_posted) */
};

#define VFE_TRANSPORT_TIMEOUT_MS 2000

/* The bound of one round trip on t (its own, or the default). */
static inline int vfe_transport_timeout_ms(const struct vfe_transport *t)
{ return t->timeout_ms > 0 ? t->timeout_ms : VFE_TRANSPORT_TIMEOUT_MS; }

/* Open the function `bdf` found under pci_root (a sysfs-shaped tree).  A function
 * whose directory has a `vfio-user.sock` uses vfio-user, any other kernel VFIO
 * (/dev/vfio: the group named by <pci_root>/<bdf>/iommu_group).
 * dma_domain (NULL or "": a private one) names the VFIO container the
 * function's group joins: the functions opened with the same name share one
 * container, hence one IOMMU table (vfe_dma_domain.h maps once for them).
 * vfio-user ignores it.  Errors: -EINVAL bad bdf, -ENOENT/-ENOTDIR no such
 * function, -ENODEV no IOMMU group, -EBUSY group not viable or in another
 * container, the open/ioctl errno otherwise (logged with what to check). */
int vfe_transport_open_in(const char *pci_root, const char *bdf, const char *dma_domain,
                          struct vfe_transport **out);
static inline int vfe_transport_open(const char *pci_root, const char *bdf, struct vfe_transport **out)
{ return vfe_transport_open_in(pci_root, bdf, NULL, out); }

/* Where the group nodes and the container node (vfio) are: /dev/vfio unless
 * set (tests use a temp dir).  The string must outlive every open. */
void vfe_vfio_kernel_set_dir(const char *dir);
/* Kernel VFIO on one function (what vfe_transport_open_in picks without a socket). */
int vfe_vfio_kernel_open(const char *pci_root, const char *bdf, const char *dma_domain, struct vfe_transport **out);

/* The transport's request-IRQ eventfd, or -1 (see vfe_transport_ops.req_fd). */
static inline int vfe_transport_req_fd(struct vfe_transport *t)
{ return t && t->ops->req_fd ? t->ops->req_fd(t) : -1; }

/* Posted mode wrappers: kernel VFIO (no op) acknowledges every write inside
 * its call, so it has nothing outstanding, no fd to watch, nothing to drain,
 * and no asynchronous read (-EOPNOTSUPP: read synchronously). */
static inline int vfe_transport_set_posted(struct vfe_transport *t, bool on)
{
    int rc = t->ops->set_posted ? t->ops->set_posted(t, on) : 0;
    if (rc == 0 && t->ops->set_posted)
        t->posted = on;
    return rc;
}
static inline int vfe_transport_watch_fd(struct vfe_transport *t)
{ return t->ops->watch_fd ? t->ops->watch_fd(t) : -1; }
static inline int vfe_transport_drain(struct vfe_transport *t)
{ return t->ops->drain ? t->ops->drain(t) : 0; }
static inline void vfe_transport_posted_state(struct vfe_transport *t, struct vfe_posted_state *st, bool take_error)
{
    if (t->ops->posted_state)
        t->ops->posted_state(t, st, take_error);
    else
        *st = (struct vfe_posted_state){0};
}
static inline int vfe_transport_read_async(struct vfe_transport *t, uint32_t index, uint64_t off, size_t len,
                                           vfe_read_cb cb, void *ctx)
{ return t->ops->region_read_async ? t->ops->region_read_async(t, index, off, len, cb, ctx) : -EOPNOTSUPP; }
static inline void vfe_transport_cancel_reads(struct vfe_transport *t, void *ctx)
{ if (t->ops->cancel_reads) t->ops->cancel_reads(t, ctx); }
static inline int vfe_transport_dma_map_async(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd,
                                              uint64_t offset, uint32_t prot, vfe_write_cb cb, void *ctx)
{ return t->ops->dma_map_async ? t->ops->dma_map_async(t, iova, len, fd, offset, prot, cb, ctx) : -EOPNOTSUPP; }
static inline int vfe_transport_dma_unmap_async(struct vfe_transport *t, uint64_t iova, uint64_t len,
                                                vfe_write_cb cb, void *ctx)
{ return t->ops->dma_unmap_async ? t->ops->dma_unmap_async(t, iova, len, cb, ctx) : -EOPNOTSUPP; }

/* vfio-user client on a socket path; usable directly by tests. */
int vfe_vfio_user_open(const char *sock_path, const char *bdf, struct vfe_transport **out);

/*
 * HA: hand a live transport to the next daemon without touching the device.
 *
 * vfe_transport_export() writes a snapshot blob (at most VFE_TRANSPORT_BLOB_MAX
 * bytes) into buf and the fds that keep the device open into fds.  The fds
 * stay owned by t (they are t's own descriptors, not copies: send them over
 * SCM_RIGHTS, which dups them, or dup them yourself); the blob refers to them
 * by position.  For vfio-user: one fd, the connected socket; the blob holds
 * what VERSION negotiated (it cannot be asked again) and the device info.
 * Region info and mmap fds are not exported: the adopter asks again (read-only).
 * Kernel VFIO: export_fds gives the device, group and container fds, but
 * export_state answers -EOPNOTSUPP (logged): such a function is not adopted,
 * a successor opens and resets it (docs/real-host.md).
 * Call it between round trips (the transport is synchronous, so any time
 * from the thread that owns t).  No device call.  Posted requests may be
 * outstanding: their replies reach the adopter, whose resync drops them
 * (unanswered asynchronous reads are lost with the exporter).
 *   -EINVAL  NULL argument;  -ENOSPC  cap or max_fds too small;
 *   -ENOTCONN  the connection is broken;  -EOPNOTSUPP  transport cannot be adopted.
 *
 * vfe_transport_adopt() builds a transport for `bdf` under pci_root from a
 * blob and its fds, as exported by a predecessor that may have died at any
 * point, even in the middle of a round trip.  It sends no VERSION and nothing
 * that changes device state: for vfio-user it resynchronises the stream with
 * two probes (REGION_INFO of the config region, fresh msg_ids), discarding,
 * with a log line, well-formed replies to the predecessor's requests that
 * were still in the socket or arrive meanwhile, until both probe replies came
 * in order.  Bounded by VFE_TRANSPORT_TIMEOUT_MS.  Every field of the blob is
 * validated (external input).
 * Ownership: on success *out owns fds[0..nfds); on failure the caller still
 * owns them (and closes them, or resets that device by other means), nothing
 * else is kept open.
 *   -EINVAL   NULL argument, bad bdf, a field out of range, nfds not what the
 *             blob names, an fd that is not a connected unix stream socket,
 *             bdf not the one the blob was exported for, pci_root/bdf is not
 *             a vfio-user function
 *   -EPROTO   not a transport blob (magic), a newer version, an unknown kind,
 *             wrong length for its version; or the stream cannot be resynced
 *             (a header that is not a well-formed reply: the predecessor died
 *             having read part of a message)
 *   -ETIMEDOUT  no probe reply within the timeout;  -ECONNRESET  peer closed;
 *   -ENOMEM
 * Limit: the predecessor writes each request with one sendmsg(); one cut by
 * a full socket buffer and then a kill cannot be detected from this side.
 */
#define VFE_TRANSPORT_BLOB_MAX   256
#define VFE_TRANSPORT_BLOB_MAGIC 0x56544241u   /* "ABTV" little endian */
#define VFE_TRANSPORT_BLOB_VERSION 1
#define VFE_TRANSPORT_KIND_VFIO_USER 1

int vfe_transport_export(struct vfe_transport *t, void *buf, size_t cap, size_t *len, int *fds, unsigned max_fds,
                         unsigned *nfds);
int vfe_transport_adopt(const char *pci_root, const char *bdf, const void *blob, size_t len, const int *fds,
                        unsigned nfds, struct vfe_transport **out);
/* The vfio-user half of vfe_transport_adopt(), the blob's common header already checked. */
int vfe_vfio_user_adopt(const char *bdf, const void *blob, size_t len, const int *fds, unsigned nfds,
                        struct vfe_transport **out);

/* Convenience wrappers. */
static inline int vfe_cfg_read(struct vfe_transport *t, uint32_t off, void *buf, size_t len)
{ return t->ops->region_read(t, VFE_REGION_CONFIG, off, buf, len); }
static inline int vfe_cfg_write(struct vfe_transport *t, uint32_t off, const void *buf, size_t len)
{ return t->ops->region_write(t, VFE_REGION_CONFIG, off, buf, len); }
static inline void vfe_transport_close(struct vfe_transport *t) { if (t) t->ops->close(t); }

#endif
