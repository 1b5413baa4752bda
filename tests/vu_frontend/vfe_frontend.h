/*
 * A vhost-user front-end that behaves like QEMU 7.2's vhost-user-net, for
 * tests and for probing a back-end without a VM: guest memory in memfd
 * regions (with a hole between them), split rings driven like a virtio-net
 * guest driver, negotiation and the start / stop / reconnect / migration
 * sequences QEMU uses.  Blocking I/O, every wait bounded.
 */
#ifndef VFE_FRONTEND_H
#define VFE_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFE_FE_MAX_PAIRS 8
#define VFE_FE_HDR_LEN 12

struct vfe_fe_opts {
    const char *path;        /* the back-end's socket */
    bool server;             /* listen and wait for the back-end (QEMU server=on) */
    unsigned pairs;          /* 1..VFE_FE_MAX_PAIRS, 0 = 1 */
    uint16_t ring_size;      /* 0 = 256 */
    size_t region_size;      /* each of the 2 regions; 0 = 16 MiB */
    uint64_t features;       /* virtio features wanted (masked by what is offered);
                                0 = VERSION_1 | MRG_RXBUF | MAC | MQ when pairs > 1 */
    int timeout_ms;          /* per wait; 0 = 3000 */
};

struct vfe_fe;

/* Connect (or accept) and negotiate: features, protocol features, owner,
 * backend channel, memory table.  NULL with errno set. */
struct vfe_fe *vfe_fe_open(const struct vfe_fe_opts *o);
void vfe_fe_close(struct vfe_fe *fe);

uint64_t vfe_fe_features(const struct vfe_fe *fe);          /* negotiated */
uint64_t vfe_fe_protocol_features(const struct vfe_fe *fe);
unsigned vfe_fe_queue_num(const struct vfe_fe *fe);          /* GET_QUEUE_NUM */

/* Rings: NUM, BASE (bases[i] or 0), ADDR, KICK, CALL, ENABLE 1 for every ring
 * of every pair; rx rings filled with buffers. */
int vfe_fe_start(struct vfe_fe *fe, const uint16_t *bases);
/* As QEMU stops: ENABLE 0 then GET_VRING_BASE for every ring. */
int vfe_fe_stop(struct vfe_fe *fe, uint16_t *bases);
/* Drop the connection and connect again, keeping guest memory and rings
 * (the back-end restarted or QEMU reconnects). */
int vfe_fe_reconnect(struct vfe_fe *fe);

int vfe_fe_send(struct vfe_fe *fe, unsigned pair, const void *frame, size_t len);
/* One frame: its length, -ETIMEDOUT, -EMSGSIZE. */
int vfe_fe_recv(struct vfe_fe *fe, unsigned pair, void *buf, size_t cap, int timeout_ms);
/* The index each ring's device has used up to, read from guest memory: what a
 * front-end restarts from when the back-end could not tell it (it went away). */
void vfe_fe_used_indices(struct vfe_fe *fe, uint16_t *bases);
/* Interrupts seen on ring i's call eventfd so far. */
uint64_t vfe_fe_calls(struct vfe_fe *fe, unsigned ring);

/* Migration: a dirty log sized for guest memory, SET_LOG_BASE, LOG_ALL on. */
int vfe_fe_log_start(struct vfe_fe *fe);
int vfe_fe_log_stop(struct vfe_fe *fe);
/* Copy and clear the log (atomic exchange per word); bytes or -errno. */
long vfe_fe_log_take(struct vfe_fe *fe, uint8_t *out, size_t cap);
/* Guest physical address of the memory behind a host pointer of ours. */
uint64_t vfe_fe_gpa_of(const struct vfe_fe *fe, const void *p);
/* Pages of the rx buffer area of a pair (for dirty checks). */
int vfe_fe_rx_area(const struct vfe_fe *fe, unsigned pair, uint64_t *gpa, uint64_t *len);
uint64_t vfe_fe_used_gpa(const struct vfe_fe *fe, unsigned ring);

/* Raw access for bad-input tests: a request with any bytes and fds; the reply
 * payload (size returned), -ETIMEDOUT, or -EPIPE when the back-end closed. */
int vfe_fe_raw(struct vfe_fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
               const int *fds, unsigned nfds, void *reply, size_t cap, int timeout_ms);
/* Requests the back-end sent on the backend channel (e.g. host notifiers). */
unsigned vfe_fe_backend_msgs(struct vfe_fe *fe, uint32_t request);

/* Test frames: dst, src, ethertype 0x88b5, seeded payload. */
void vfe_fe_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6], uint32_t seed);

#endif
