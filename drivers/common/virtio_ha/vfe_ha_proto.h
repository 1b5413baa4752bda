/* Wire protocol between vfe-vhostd and vfe-vhostd-ha (docs/ha.md).
 *
 * Transport: a unix SOCK_SEQPACKET connection, one message per packet, fds as
 * SCM_RIGHTS on the packet they belong to.  A packet is a struct vfe_ha_hdr
 * followed by payload_len bytes: key_len bytes of key, then the body.
 * A packet never exceeds VFE_HA_MAX_PACKET, which fits the default socket
 * buffer (net.core.wmem_default), so no SO_SNDBUF tuning is needed; a record
 * larger than one packet (a blob over a packet, or more than VFE_HA_MAX_FDS
 * fds) travels as several PUT (or RECORD) packets of the same key and seq,
 * all but the last flagged VFE_HA_F_MORE.  Since 1.1 every packet of a record
 * may carry fds (up to VFE_HA_MAX_FDS each, VFE_HA_MAX_RECORD_FDS in all), in
 * record order; a 1.0 peer accepted fds on the first packet only and refuses
 * (never misreads) a continuation with fds.
 *
 * Every field is host byte order (both ends are on the same host).
 *
 * Validation is data: vfe_ha_decode() checks the header against the rules
 * table of the message type (key, body and fd bounds, allowed flags) and the
 * key syntax.  Error returns are negative errno values:
 *   -EBADMSG            short packet, bad magic, lengths that disagree
 *   -EPROTONOSUPPORT    another major version
 *   -EPROTO             unknown type, a rule broken, a bad key, a bad send
 *                       tail (F_SEND with MORE, len over VFE_HA_SEND_MAX or
 *                       beyond the body); fd_index is checked by the HA
 *                       process against the whole record
 *   -E2BIG              more fds than any message may carry
 * and *why says which in words.
 */
#ifndef VFE_HA_PROTO_H
#define VFE_HA_PROTO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFE_HA_MAGIC 0x41484656u   /* "VFHA" in memory on little-endian */
#define VFE_HA_MAJOR 1
#define VFE_HA_MINOR 2   /* 1.1: fds on every packet of a record; 1.2: PUT with F_SEND */

#define VFE_HA_MAX_PACKET (60u * 1024)      /* header + payload */
#define VFE_HA_MAX_FDS 64u                  /* per packet (SCM_MAX_FD is 253) */
#define VFE_HA_MAX_RECORD_FDS 240u          /* per record, over its packets */
#define VFE_HA_KEY_MAX 127u                 /* bytes, no NUL on the wire */
#define VFE_HA_BLOB_MAX (256u * 1024)       /* one record's opaque blob */
#define VFE_HA_ERRMSG_MAX 200u

enum vfe_ha_type {
    VFE_HA_HELLO = 1,    /* c->s: body = client name; reply ACK + struct vfe_ha_limits */
    VFE_HA_PUT = 2,      /* c->s: key, blob chunk, fds (any chunk); reply ACK after the last chunk */
    VFE_HA_DEL = 3,      /* c->s: key; reply ACK or ERR ENOENT */
    VFE_HA_GET = 4,      /* c->s: key, or no key for every record; reply RECORD packets then ACK + u32 count */
    VFE_HA_STATUS = 5,   /* c->s: reply ACK + struct vfe_ha_status */
    VFE_HA_ACK = 6,      /* s->c */
    VFE_HA_ERR = 7,      /* s->c: body = struct vfe_ha_err_body + message */
    VFE_HA_RECORD = 8,   /* s->c: one record (chunk) of a GET answer */
    VFE_HA_TYPE_MAX
};

#define VFE_HA_F_MORE 0x1u   /* PUT/RECORD: another chunk of this record follows */
#define VFE_HA_F_SEND 0x2u   /* PUT, last packet only (1.2): a send tail ends the body */

/* Since 1.2 the last packet of a PUT may end its body with bytes[len] and
 * this tail: once the record is stored, the HA process writes the bytes to
 * the record's fds[fd_index] (a socket the client deposited), in the same
 * step, so "stored" and "written" are seen together or not at all.  The
 * record's blob is the body without bytes and tail.  A peer older than 1.2
 * refuses the flag (EPROTO, connection closed): send it only when the HELLO
 * answer's header says minor >= 2. */
#define VFE_HA_SEND_MAX 256u
#define VFE_HA_SEND_MINOR 2
struct vfe_ha_send_tail {
    uint32_t fd_index;         /* into the whole record's fds, in record order */
    uint32_t len;              /* bytes right before this tail */
};
#define VFE_HA_SEND_OVERHEAD(n) ((size_t)(n) + sizeof(struct vfe_ha_send_tail))

struct vfe_ha_hdr {
    uint32_t magic;
    uint8_t major, minor;
    uint16_t type;
    uint32_t flags;
    uint32_t seq;           /* request number; a reply carries its request's */
    uint16_t key_len;       /* key bytes at the start of the payload */
    uint16_t nfds;          /* fds attached to this packet */
    uint32_t payload_len;   /* bytes after the header, key included */
};
_Static_assert(sizeof(struct vfe_ha_hdr) == 24, "wire header");

#define VFE_HA_HDR_SIZE sizeof(struct vfe_ha_hdr)
#define VFE_HA_MAX_PAYLOAD (VFE_HA_MAX_PACKET - VFE_HA_HDR_SIZE)

struct vfe_ha_limits {         /* HELLO's ACK body */
    uint32_t max_records;
    uint32_t max_fds;          /* every record together */
    uint32_t max_record_fds;
    uint32_t max_blob;
    uint64_t max_bytes;        /* blobs and keys together */
};

struct vfe_ha_status {         /* STATUS's ACK body */
    uint32_t records;
    uint32_t fds;
    uint64_t bytes;
    uint64_t uptime_ms;
    uint32_t clients;          /* connections accepted since start */
    uint32_t server_pid;
};

struct vfe_ha_err_body {
    int32_t err;               /* positive errno */
    /* followed by up to VFE_HA_ERRMSG_MAX bytes of message, no NUL */
};

/* Room for an ERR body and the NUL that ends its message in memory. */
#define VFE_HA_ERR_BODY_MAX (sizeof(struct vfe_ha_err_body) + VFE_HA_ERRMSG_MAX + 1)

/* Fill an ERR body: err and the formatted message, cut at VFE_HA_ERRMSG_MAX.
 * Returns the length to send (the message without its NUL); the message stays
 * NUL-terminated at body + sizeof(struct vfe_ha_err_body) for logging. */
size_t vfe_ha_err_vformat(uint8_t body[VFE_HA_ERR_BODY_MAX], int err, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* A decoded packet: pointers into the caller's buffer; fds are not owned. */
struct vfe_ha_msg {
    struct vfe_ha_hdr hdr;
    const char *key;           /* key_len bytes, not NUL-terminated */
    const uint8_t *body;
    uint32_t body_len;         /* without the send tail and its bytes */
    const uint8_t *send_bytes; /* F_SEND: send_len bytes for the record's fds[send_fd] */
    uint32_t send_len, send_fd;
};

/* Check a received packet of len bytes that came with nfds fds. */
int vfe_ha_decode(const void *buf, size_t len, unsigned nfds, struct vfe_ha_msg *out, const char **why);

/* Is key (len bytes) a valid record key: 1..VFE_HA_KEY_MAX of [A-Za-z0-9._:/@-],
 * not starting with '/' or '.', no "..", no "//". */
bool vfe_ha_key_valid(const char *key, size_t len);

/* Build a packet into buf (at least VFE_HA_MAX_PACKET); its length or -EMSGSIZE/-EINVAL. */
int vfe_ha_encode(void *buf, size_t cap, uint16_t type, uint32_t flags, uint32_t seq, const char *key,
                  size_t key_len, const void *body, size_t body_len, unsigned nfds);

/* A PUT packet ending with a send tail (flags: VFE_HA_F_SEND is added; MORE is
 * refused with -EINVAL): the body is blob, then bytes, then the tail.  Its
 * length, -EMSGSIZE when it does not fit cap or a packet, -EINVAL on bad
 * arguments (nbytes over VFE_HA_SEND_MAX). */
int vfe_ha_encode_send(void *buf, size_t cap, uint32_t seq, const char *key, size_t key_len, const void *blob,
                       size_t blob_len, unsigned nfds, uint32_t fd_index, const void *bytes, uint32_t nbytes);

/* One packet out of / into a non-blocking socket.
 * vfe_ha_send_packet: 0, -EAGAIN (nothing sent), or another -errno (the
 * connection is broken).  The fds stay the caller's.
 * vfe_ha_recv_packet: the length, 0 on orderly close, -EAGAIN, -EMSGSIZE
 * (packet or its fds truncated: every fd that came is closed), -errno.  On
 * success the caller owns *nfds fds in fds[] (close-on-exec). */
int vfe_ha_send_packet(int sock, const void *buf, size_t len, const int *fds, unsigned nfds);
int vfe_ha_recv_packet(int sock, void *buf, size_t cap, int *fds, unsigned *nfds);

const char *vfe_ha_type_name(unsigned type);

/* How a record of blob_len bytes and nfds fds is cut into packets: the
 * packet that starts at (*off, *fd_off) carries *chunk bytes and *chunk_fds
 * fds, and more (VFE_HA_F_MORE) when another packet follows.  Call with
 * *off = *fd_off = 0 first, then advance both by what was sent. */
struct vfe_ha_split {
    uint32_t off, chunk;       /* blob bytes */
    unsigned fd_off, chunk_fds;
    bool more;
};
void vfe_ha_split_next(struct vfe_ha_split *sp, size_t key_len, uint32_t blob_len, unsigned nfds);

#endif
