/*
 * A vhost-user front-end that behaves like QEMU 7.2's vhost-user-net, for
 * tests and for probing a back-end without a VM: guest memory in memfd
 * regions (a hole between them in guest-physical space), split rings driven
 * like a virtio-net guest driver, the negotiation and the start / stop /
 * reconnect / migration sequences QEMU uses, and raw access for bad-input
 * tests.  Blocking I/O; every wait is bounded by a timeout.
 *
 * Functions returning int give 0 (or a count) on success and -errno on
 * failure: -ETIMEDOUT when the back-end did not answer in time, -EPIPE when
 * it closed the connection, -EPROTO when it answered something malformed,
 * -EIO when it refused a request (non-zero REPLY_ACK).
 */
#ifndef VFE_FRONTEND_H
#define VFE_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/frontend/vfe_fe_proto.h"

#define VFE_FE_MAX_PAIRS 16          /* QEMU allows more; 16 is the sim's most (SIM_MAX_QPAIRS) */
#define VFE_FE_HDR_LEN 12            /* virtio_net_hdr_v1 (VERSION_1 or MRG_RXBUF) */
#define VFE_FE_MAX_FRAME 9216        /* largest frame send() takes */
#define VFE_FE_MAX_REGIONS 8
#define VFE_FE_GPA_HIGH 0x40000000ull   /* second region (rx buffers): a hole below it */

struct vfe_fe_opts {
    const char *path;        /* the back-end's socket */
    bool server;             /* listen on path and accept the back-end (QEMU server=on) */
    unsigned pairs;          /* 1..VFE_FE_MAX_PAIRS, 0 = 1 */
    uint16_t ring_size;      /* power of two up to 1024, 0 = 256 */
    size_t region_size;      /* minimum size of each of the 2 regions, 0 = what the rings need */
    uint64_t features;       /* virtio features wanted (masked by what is offered);
                                0 = VERSION_1 | MRG_RXBUF | MAC | MQ when pairs > 1 */
    int timeout_ms;          /* per wait; 0 = 3000 */
    uint32_t rx_buf_size;    /* bytes of each rx buffer (one descriptor), 0 = 2048 */
    uint64_t proto_clear;    /* protocol feature bits not to negotiate */
    bool mem_table_only;     /* SET_MEM_TABLE even when CONFIGURE_MEM_SLOTS is agreed */
    bool ack_all;            /* NEED_REPLY on every request (REPLY_ACK), not only where QEMU asks */
    bool tx_hdr_apart;       /* tx: header and frame in two chained descriptors */
    uint64_t gpa_base;       /* every guest-physical address moved up by this (a multiple of
                                VFE_FE_GPA_HIGH below 2^39): front-ends whose memory must not overlap */
};

struct vfe_fe;

/* Connect (client) or accept (server) and negotiate as QEMU does:
 * GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM (MQ),
 * GET_MAX_MEM_SLOTS (CONFIGURE_MEM_SLOTS), SET_BACKEND_REQ_FD (BACKEND_REQ),
 * SET_OWNER, GET_FEATURES, SET_FEATURES (+ status FEATURES_OK with STATUS),
 * then the memory (ADD_MEM_REG per region with CONFIGURE_MEM_SLOTS, else
 * SET_MEM_TABLE).  NULL with errno set. */
struct vfe_fe *vfe_fe_open(const struct vfe_fe_opts *o);
void vfe_fe_close(struct vfe_fe *fe);

uint64_t vfe_fe_features(const struct vfe_fe *fe);          /* negotiated */
uint64_t vfe_fe_protocol_features(const struct vfe_fe *fe);  /* negotiated */
uint64_t vfe_fe_offered_features(const struct vfe_fe *fe);
uint64_t vfe_fe_offered_protocol_features(const struct vfe_fe *fe);
unsigned vfe_fe_queue_num(const struct vfe_fe *fe);          /* GET_QUEUE_NUM, 0 without MQ */
unsigned vfe_fe_max_mem_slots(const struct vfe_fe *fe);      /* 0 without CONFIGURE_MEM_SLOTS */
unsigned vfe_fe_pairs(const struct vfe_fe *fe);
size_t vfe_fe_hdr_len(const struct vfe_fe *fe);              /* 12, or 10 for legacy without MRG_RXBUF */
bool vfe_fe_connected(const struct vfe_fe *fe);

/* Rings, for every ring of every pair: SET_VRING_NUM, SET_VRING_BASE,
 * SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL; then SET_VRING_ENABLE 1
 * each, then device status DRIVER_OK (STATUS), then a kick on every rx ring.
 * bases NULL: fresh rings at index 0 with every rx buffer posted.  bases
 * given: the rings resume where they are in guest memory (as after stop),
 * told that the back-end is at bases[ring]; rings never set up before are
 * laid out fresh at those indices. */
int vfe_fe_start(struct vfe_fe *fe, const uint16_t *bases);
/* As QEMU 7.2 stops: SET_VRING_ENABLE 0 on every ring, status 0 (STATUS),
 * then GET_VRING_BASE per ring; bases (may be NULL) gets 2 * pairs indices. */
int vfe_fe_stop(struct vfe_fe *fe, uint16_t *bases);
/* Close the connection and connect (or accept) again and renegotiate;
 * guest memory and rings stay, ready for vfe_fe_start(fe, saved_bases). */
int vfe_fe_reconnect(struct vfe_fe *fe);
/* The index each ring's device has used up to, read from guest memory: where a
 * front-end restarts when its back-end went away without answering GET_VRING_BASE. */
void vfe_fe_used_indices(struct vfe_fe *fe, uint16_t *bases);
/* Only close the connection (the back-end sees the front-end go away). */
void vfe_fe_disconnect(struct vfe_fe *fe);

/* One frame on pair's tx ring, after a zeroed virtio-net header; waits up to
 * the timeout for a free descriptor (-ENOSPC). */
int vfe_fe_send(struct vfe_fe *fe, unsigned pair, const void *frame, size_t len);
/* Wait until every tx buffer of pair came back (the device consumed it). */
int vfe_fe_tx_drain(struct vfe_fe *fe, unsigned pair, int timeout_ms);
/* One frame from pair's rx ring (num_buffers merged): its length,
 * -ETIMEDOUT, -EMSGSIZE (frame dropped: larger than cap), -EPROTO. */
int vfe_fe_recv(struct vfe_fe *fe, unsigned pair, void *buf, size_t cap, int timeout_ms);

struct vfe_fe_stats {
    uint64_t tx_frames, tx_bytes, tx_done;      /* tx_done: buffers the device gave back */
    uint64_t rx_frames, rx_bytes, rx_buffers;   /* rx_buffers: used rx buffers (> frames when merged) */
    uint64_t rx_errors;                         /* frames dropped as malformed or too big */
    uint64_t kicks, kicks_suppressed;           /* eventfd writes / skipped for NO_NOTIFY */
    uint64_t notifier_kicks;                    /* doorbell writes into host notifier pages */
    uint64_t rx_calls, tx_calls;                /* interrupts seen on the call eventfds */
};
int vfe_fe_stats(struct vfe_fe *fe, unsigned pair, struct vfe_fe_stats *st);
/* Interrupts seen on ring i's call eventfd so far. */
uint64_t vfe_fe_calls(struct vfe_fe *fe, unsigned ring);

/* Guest memory.  Regions 0 (GPA 0: rings, tx buffers) and 1 (GPA 1 GiB:
 * rx buffers) exist from open; more can be added: ADD_MEM_REG with
 * CONFIGURE_MEM_SLOTS, else a new SET_MEM_TABLE.  Slot number or -errno. */
int vfe_fe_mem_add(struct vfe_fe *fe, uint64_t gpa, uint64_t size);
int vfe_fe_mem_remove(struct vfe_fe *fe, int slot);   /* REM_MEM_REG or SET_MEM_TABLE */
/* Host pointer behind [gpa, gpa+len) (NULL if not inside one region). */
void *vfe_fe_host(struct vfe_fe *fe, uint64_t gpa, uint64_t len);
/* Guest physical address of the memory behind a host pointer of ours. */
uint64_t vfe_fe_gpa_of(const struct vfe_fe *fe, const void *p);
/* Pages of the rx buffer area of a pair (for dirty checks). */
int vfe_fe_rx_area(const struct vfe_fe *fe, unsigned pair, uint64_t *gpa, uint64_t *len);
int vfe_fe_tx_area(const struct vfe_fe *fe, unsigned pair, uint64_t *gpa, uint64_t *len);
uint64_t vfe_fe_used_gpa(const struct vfe_fe *fe, unsigned ring);
/* Guest memory of ring i (descriptors, available and used ring). */
int vfe_fe_ring_area(const struct vfe_fe *fe, unsigned ring, uint64_t *gpa, uint64_t *len);
/* GPA of the rx buffer behind descriptor head of pair (for dirty checks). */
uint64_t vfe_fe_rx_buf_gpa(const struct vfe_fe *fe, unsigned pair, unsigned head);

/* Migration: a dirty log (memfd, 1 bit per 4 KiB page up to the highest
 * GPA), SET_LOG_BASE (reply awaited), SET_FEATURES with LOG_ALL, and
 * SET_VRING_ADDR with VHOST_VRING_F_LOG on started rings, as QEMU does. */
int vfe_fe_log_start(struct vfe_fe *fe);
int vfe_fe_log_stop(struct vfe_fe *fe);
size_t vfe_fe_log_size(const struct vfe_fe *fe);
/* Copy and clear the log (atomic exchange per 64-bit word); bytes or -errno. */
long vfe_fe_log_take(struct vfe_fe *fe, uint8_t *out, size_t cap);

/* After migration: ask the back-end to broadcast a RARP from mac (RARP
 * protocol feature; -EOPNOTSUPP without). */
int vfe_fe_send_rarp(struct vfe_fe *fe, const uint8_t mac[6]);

/* Dirty log bitmaps (page = gpa / 4096, bit page % 8 of byte page / 8). */
size_t vfe_fe_log_bytes(uint64_t top_gpa);          /* rounded up to 8 bytes */
bool vfe_fe_log_test(const uint8_t *log, size_t n, uint64_t gpa);
void vfe_fe_log_mark(uint8_t *log, size_t n, uint64_t gpa, uint64_t len);
/* Pages of [gpa, gpa+len) not marked (0: all marked). */
uint64_t vfe_fe_log_missing(const uint8_t *log, size_t n, uint64_t gpa, uint64_t len);
uint64_t vfe_fe_log_count(const uint8_t *log, size_t n);
/* Exchange each 64-bit word of log with 0 into out (n rounded down to 8). */
size_t vfe_fe_log_exchange(uint8_t *log, uint8_t *out, size_t n);

/* Raw access for bad-input tests. */
int vfe_fe_raw_send(struct vfe_fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                    const int *fds, unsigned nfds);
/* Next message from the back-end: payload size (payload cut to cap, the rest
 * dropped: -EMSGSIZE), -ETIMEDOUT, -EPIPE when it closed.  hdr may be NULL. */
int vfe_fe_raw_recv(struct vfe_fe *fe, struct vfe_fe_msg_hdr *hdr, void *payload, size_t cap, int timeout_ms);
/* Send, then read the reply to it: payload size, -ETIMEDOUT, -EPIPE, or
 * -EPROTO if what came back is not a reply to req. */
int vfe_fe_raw(struct vfe_fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
               const int *fds, unsigned nfds, void *reply, size_t cap, int timeout_ms);
/* True once the back-end has closed the connection (waits up to timeout_ms,
 * dropping anything it sends meanwhile). */
bool vfe_fe_peer_closed(struct vfe_fe *fe, int timeout_ms);

/* The backend channel: every request is recorded and answered when it asks. */
struct vfe_fe_backend_msg {
    uint32_t request, flags, size;
    unsigned nfds;
    uint8_t payload[48];     /* first bytes */
};
/* Serve the channel for up to timeout_ms (0: what is already there). */
void vfe_fe_backend_poll(struct vfe_fe *fe, int timeout_ms);
/* Requests of that type received so far. */
unsigned vfe_fe_backend_msgs(struct vfe_fe *fe, uint32_t request);
/* The i-th of the last recorded requests (oldest first); false past the end. */
bool vfe_fe_backend_msg(struct vfe_fe *fe, unsigned i, struct vfe_fe_backend_msg *m);

/* Test frames: dst, src, ethertype 0x88b5, the seed (big endian), then a
 * pattern derived from the seed.  len >= 18. */
void vfe_fe_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6], uint32_t seed);
/* The seed of a frame built by vfe_fe_frame when every byte after the
 * header matches it; -1 otherwise. */
int64_t vfe_fe_frame_seed(const uint8_t *f, size_t len);
/* n test frames from -> to on pair 0, sizes 60 + (i * 97 + size_offset) % 1400,
 * seeds seed + i, each received within 3 s and checked byte for byte; stops
 * at the first that is not (said on stderr).  How many arrived intact. */
unsigned vfe_fe_flow(struct vfe_fe *from, struct vfe_fe *to, const uint8_t from_mac[6], const uint8_t to_mac[6],
                     unsigned n, uint32_t seed, uint32_t size_offset);
/* -1 when equal, else the first differing offset (length mismatch: the shorter length). */
long vfe_fe_frame_diff(const void *a, size_t alen, const void *b, size_t blen);
/* "aa:bb:cc:dd:ee:ff" into mac; -EINVAL if malformed. */
int vfe_fe_parse_mac(const char *s, uint8_t mac[6]);

#endif
