/*
 * vhost-user back-end for virtio-net devices (QEMU docs/interop/vhost-user.rst),
 * on the caller's libev loop.  One struct vhost_dev per socket: server mode
 * (listen, one front-end at a time) or client mode (connect to QEMU's
 * server=on socket, reconnect with back-off).  The library speaks the protocol
 * and validates every message; it never touches a device: the glue gets
 * callbacks (struct vhost_ops).
 *
 * File descriptors: the library owns every fd it receives (memory regions,
 * kick/call/err, log, backend channel).  Callbacks may use them during the call
 * and may dup() them to keep them.
 *
 * Lifetimes: callbacks run only from the loop (a message read, a timer), never
 * inside a call the glue makes into the library.  A call that finds the
 * connection broken (vhost_ring_base_done, vhost_log_done) closes it later,
 * from the loop: the `disconnected` callback never runs inside it, and the
 * struct vhost_dev is never freed while the glue's call chain still runs.
 * vhost_dev_destroy() runs no callback at all: the glue tears its own side
 * down before or after it.
 */
#ifndef VHOST_H
#define VHOST_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VHOST_MAX_QUEUE_PAIRS 32
#define VHOST_MAX_RINGS (2 * VHOST_MAX_QUEUE_PAIRS)
#define VHOST_MAX_REGIONS 32        /* GET_MAX_MEM_SLOTS */
#define VHOST_MAX_RING_SIZE 32768

struct vhost_dev;

struct vhost_region {
    uint64_t gpa, size;
    uint64_t qva;             /* the front-end's virtual address of gpa */
    uint64_t mmap_offset;     /* of gpa in fd */
    unsigned refs;            /* identical ADD_MEM_REGs (one per vhost device of a multiqueue front-end) */
    int fd;
    uint8_t *host;            /* our mapping of gpa */
};

struct vhost_ring {
    uint16_t num;             /* 0: not set */
    bool addr_set, enabled, started;
    uint32_t addr_flags;
    uint64_t desc_qva, avail_qva, used_qva;
    uint64_t desc, avail, used;       /* guest physical, valid while addr_ok */
    bool addr_ok;
    uint64_t log_gpa;
    uint16_t base;            /* from SET_VRING_BASE */
    int kick_fd, call_fd, err_fd;     /* -1: none */
};

/* A request waiting for the glue (GET_VRING_BASE, a log change, or a memory
 * table change the device still holds old memory for): complete it with
 * vhost_ring_base_done() / vhost_log_done() / vhost_mem_done().  A completion for a
 * request that is no longer pending (connection gone, completed already) is
 * ignored, so a stale token is harmless. */
struct vhost_pending {
    struct vhost_dev *dev;
    uint16_t ring;
    uint64_t serial;
};

#define VHOST_MEM_WAIT 1

struct vhost_ops {
    /* A front-end connected / went away (every ring is stopped by then). */
    void (*connected)(void *ctx, struct vhost_dev *d);
    void (*disconnected)(void *ctx, struct vhost_dev *d);
    /* SET_FEATURES (LOG_ALL included).  < 0 refuses. */
    int (*features)(void *ctx, uint64_t features);
    /* The whole memory table after SET_MEM_TABLE, ADD_MEM_REG or REM_MEM_REG.
     * < 0 refuses; VHOST_MEM_WAIT: the device may still use memory of the
     * old table (unmaps not acknowledged yet), so reading stops and the
     * reply waits: mem_wait gets the token, the glue answers with
     * vhost_mem_done() (the front-end may reuse that memory once it has
     * the reply). */
    int (*mem_table)(void *ctx, const struct vhost_region *r, unsigned n);
    void (*mem_wait)(void *ctx, struct vhost_pending p);
    /* A ring became ready (configured, enabled, kick set) or stopped being so. */
    int (*ring_start)(void *ctx, uint16_t ring, const struct vhost_ring *r);
    void (*ring_stop)(void *ctx, uint16_t ring);
    int (*ring_kick)(void *ctx, uint16_t ring, int fd);
    int (*ring_call)(void *ctx, uint16_t ring, int fd);
    /* GET_VRING_BASE: reading stops until vhost_ring_base_done(p, index).
     * NULL: the library answers with the base it was given. */
    void (*get_ring_base)(void *ctx, uint16_t ring, struct vhost_pending p);
    /* SET_LOG_BASE: the log is mapped at base (size bytes, one bit a page). */
    int (*log_base)(void *ctx, int fd, uint64_t offset, uint64_t size, uint8_t *base);
    /* After SET_FEATURES with VHOST_F_LOG_ALL, and after SET_LOG_BASE: the
     * front-end copies guest memory as soon as it has the reply, so reading
     * stops and the reply waits until vhost_log_done(p, 0 or -errno) says the
     * device logs into the current log.  NULL: answered at once. */
    void (*log_wait)(void *ctx, struct vhost_pending p);
    int (*status)(void *ctx, uint8_t status);
    void (*rarp)(void *ctx, const uint8_t mac[6]);
    int (*mtu)(void *ctx, uint16_t mtu);
    /* RESET_OWNER / RESET_DEVICE. */
    void (*reset)(void *ctx);
    /* HA (docs/ha.md): deposit vhost_snapshot() of d now, with the glue's own
     * state; called at every point a successor must be able to continue
     * from (each message handled, before it is taken off the socket, and
     * again after its reply).  NULL: no crash safety, nothing deposited. */
    void (*persist)(void *ctx, struct vhost_dev *d);
    /* HA: deposit d (already in the state after the reply) and have the HA
     * process write `reply` (len bytes: header and payload) on the
     * connection once it holds the deposit, so that a successor never has to
     * guess whether the reply went out.  true: it will; false: it cannot now
     * (the library then writes the reply itself, between two deposits). */
    bool (*persist_reply)(void *ctx, struct vhost_dev *d, const void *reply, size_t len);
};

/* Permissions of the socket file a server-mode device creates (the umask
 * plays no part).  Zero-initialised: mode 0660, the process's group. */
struct vhost_sock_perm {
    mode_t mode;                /* 0: 0660 */
    bool set_group;
    gid_t group;                /* the socket's group when set_group */
};

struct vhost_cfg {
    const char *path;           /* unix socket; in server mode created with perm and
                                 * removed on destroy (only if it is still ours); never
                                 * taken over while somebody listens on it (-EADDRINUSE)
                                 * or when it is not a socket (-EEXIST).  Client mode
                                 * never creates nor removes it. */
    bool client;                /* connect (QEMU server=on) instead of listen */
    struct vhost_sock_perm perm;
    uint64_t features;          /* virtio features the device offers */
    uint16_t queue_pairs;       /* 1..VHOST_MAX_QUEUE_PAIRS; the dev holds 2 x queue_pairs
                                 * rings (sized at create/restore), a ring index past
                                 * them from the front-end is refused */
    const struct vhost_ops *ops;
    void *ctx;
    const char *name;           /* for log lines, e.g. the VF's BDF */
};

struct vhost_dev *vhost_dev_create(struct ev_loop *loop, const struct vhost_cfg *cfg, int *err);
/* Closes the connection and the listening socket and frees d.  No callback
 * runs (see Lifetimes above). */
void vhost_dev_destroy(struct vhost_dev *d);

bool vhost_connected(const struct vhost_dev *d);
uint64_t vhost_features(const struct vhost_dev *d);          /* as set by the front-end */
uint64_t vhost_protocol_features(const struct vhost_dev *d);
uint8_t vhost_status(const struct vhost_dev *d);
/* NULL past the dev's 2 x cfg.queue_pairs rings (the dev holds only those). */
const struct vhost_ring *vhost_get_ring(const struct vhost_dev *d, uint16_t ring);
unsigned vhost_regions(const struct vhost_dev *d, const struct vhost_region **r);
/* Translations with bounds: a range must lie in one region.  0 or -EFAULT. */
int vhost_qva_to_gpa(const struct vhost_dev *d, uint64_t qva, uint64_t len, uint64_t *gpa);
void *vhost_gpa_to_host(const struct vhost_dev *d, uint64_t gpa, uint64_t len);
int vhost_gpa_to_qva(const struct vhost_dev *d, uint64_t gpa, uint64_t len, uint64_t *qva);
/* The mapped dirty log (NULL if none) and its size in bytes. */
uint8_t *vhost_log(const struct vhost_dev *d, uint64_t *size);
/* The log's fd (-1 if none), owned by d. */
int vhost_log_fd(const struct vhost_dev *d);

/* Answer a pending GET_VRING_BASE and resume reading. */
void vhost_ring_base_done(struct vhost_pending p, uint16_t index);
/* Answer a pending log change (err < 0: the front-end hears of a failure
 * where it asked for a reply) and resume reading. */
void vhost_log_done(struct vhost_pending p, int err);

/* Answer a memory table change that waited (VHOST_MEM_WAIT; err < 0: the
 * front-end hears of a failure where it asked for a reply) and resume reading. */
void vhost_mem_done(struct vhost_pending p, int err);

/* Backend channel: map a doorbell page into the guest (fd -1 removes it). */
int vhost_host_notifier(struct vhost_dev *d, uint16_t ring, int fd, uint64_t size, uint64_t offset);
int vhost_config_change(struct vhost_dev *d);

/* HA.  A message stays on the socket until it is handled and persisted (the
 * `persist` op), so a successor reads again whatever its predecessor had not
 * finished; the snapshot says which message was in flight and which reply
 * is owed (docs/ha.md).
 *
 * vhost_snapshot: the session (connected, or only listening) and its fds
 * (connection, listener, log, backend channel, regions, ring eventfds) for
 * another process.  The fds stay d's.  -ENOTCONN (neither), -ENOSPC.
 * vhost_dev_restore: a dev continuing that session on the same connection
 * and listening socket.  cfg as for create.  No callback runs and nothing is
 * read until vhost_dev_resume(): the glue adopts the device first (from the
 * accessors: every ring the snapshot had started reads as started).  Takes
 * ownership of every fd on success, none on failure (-EINVAL bad blob,
 * -EPROTONOSUPPORT another version, -errno of a region map).
 * vhost_dev_resume: from the loop, finish the message the predecessor was in
 * the middle of (take it off, send the reply it owed, or wait for the glue
 * again: get_ring_base / log_wait), then read on. */
int vhost_snapshot(const struct vhost_dev *d, uint8_t *buf, size_t cap, size_t *len, int *fds,
                   unsigned max_fds, unsigned *nfds);
struct vhost_dev *vhost_dev_restore(struct ev_loop *loop, const struct vhost_cfg *cfg, const uint8_t *buf,
                                    size_t len, const int *fds, unsigned nfds, int *err);
void vhost_dev_resume(struct vhost_dev *d);
/* The point a successor would continue from: 0 nothing in flight, 1 a
 * message read (it handles it again), 2 waiting for the glue, 3 a reply owed;
 * *request: the message's (for logs and tests). */
int vhost_ha_point(const struct vhost_dev *d, uint32_t *request);
/* Forget d as a crash would: close its copies of every fd, but neither shut
 * the connection down nor remove the socket file (a successor continues
 * them).  No callback runs.  For a planned hand-over and for tests. */
void vhost_dev_abandon(struct vhost_dev *d);
/* Upper bounds for a snapshot of any session. */
#define VHOST_SNAPSHOT_MAX (512u + VHOST_MAX_REGIONS * 40u + VHOST_MAX_RINGS * 64u + 4096u)
#define VHOST_SNAPSHOT_MAX_FDS (4u + VHOST_MAX_REGIONS + 3u * VHOST_MAX_RINGS + 8u)

#endif
