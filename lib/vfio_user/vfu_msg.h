/*
 * vfio-user message framing over a unix stream socket: one message with up to
 * VFU_MAX_MSG_FDS fds (SCM_RIGHTS), incremental reads for non-blocking
 * sockets, and the VERSION capability JSON.
 */
#ifndef VFU_MSG_H
#define VFU_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/vfio_user/vfu_proto.h"

/* One received message.  payload is malloc'd (NULL when len == 0); fds are
 * owned by the message until taken (set to -1) or vfu_msg_free() closes them. */
struct vfu_msg {
    struct vfu_hdr hdr;
    uint8_t *payload;
    size_t len;                       /* hdr.size - sizeof(hdr) */
    int fds[VFU_MAX_MSG_FDS];
    unsigned nfds;
    bool fds_dropped;                 /* more fds than allowed arrived (closed) */
};

void vfu_msg_free(struct vfu_msg *m);
void vfu_msg_close_fds(struct vfu_msg *m);
/* Take fd i out of the message (the caller owns it); -1 if none. */
int vfu_msg_take_fd(struct vfu_msg *m, unsigned i);

/*
 * Send one message: hdr->size is set here from the iovecs.  Partial writes are
 * completed (fds go with the first byte); on a non-blocking socket a full send
 * buffer is waited for at most timeout_ms.  0 or -errno.
 */
int vfu_msg_send(int sock, struct vfu_hdr *hdr, const struct iovec *iov, unsigned niov,
                 const int *fds, unsigned nfds, int timeout_ms);
/* Convenience: header fields plus one payload buffer. */
int vfu_msg_send_simple(int sock, uint16_t msg_id, uint16_t cmd, uint32_t flags, uint32_t error,
                        const void *payload, size_t len, const int *fds, unsigned nfds, int timeout_ms);

/* Incremental reader: reads exactly one message's bytes at a time, never into
 * the next message, so fds stay with the message they were sent with. */
struct vfu_reader {
    uint8_t hdr_buf[sizeof(struct vfu_hdr)];
    size_t have;                      /* bytes of the current message read so far */
    struct vfu_msg msg;               /* message being assembled */
    size_t max_size;                  /* largest message accepted, default VFU_MAX_MSG_SIZE */
    unsigned max_fds;                 /* default VFU_MAX_MSG_FDS */
};

#define VFU_RD_MSG 1
void vfu_reader_init(struct vfu_reader *r);
void vfu_reader_reset(struct vfu_reader *r);  /* drop a partial message (closes its fds) */
/*
 * Read what is available.  VFU_RD_MSG: a whole message was moved to *out (the
 * caller frees it); 0: need more data (EAGAIN); -ECONNRESET: peer closed on a
 * message boundary; -EPROTO: peer closed mid-message; -EMSGSIZE: size field is
 * below the header or above max_size (the stream is out of sync); other -errno.
 */
int vfu_reader_feed(struct vfu_reader *r, int sock, struct vfu_msg *out);
/* Blocking-style receive on any socket: feed until a message or timeout_ms
 * (-ETIMEDOUT; < 0 waits forever). */
int vfu_msg_recv(struct vfu_reader *r, int sock, struct vfu_msg *out, int timeout_ms);
/* The same for a client waiting for a reply: the message is taken off the
 * socket only once all of it is there, in one read, so a process killed at
 * any point leaves the stream at a message boundary for its successor (HA).
 * Returns like vfu_msg_recv; a reader already in the middle of a message
 * finishes it the usual way. */
int vfu_msg_recv_whole(struct vfu_reader *r, int sock, struct vfu_msg *out, int timeout_ms);

/* VERSION capabilities. */
struct vfu_caps {
    uint32_t max_msg_fds;             /* default 1 */
    uint32_t max_data_xfer_size;      /* default 1 MiB */
    uint64_t pgsizes;                 /* default 4096 */
    bool vfe_ioeventfd;               /* "vfe": {"ioeventfd": VFU_CMD_VFE_IOEVENTFD} */
};

void vfu_caps_default(struct vfu_caps *c);    /* spec defaults, no vfe extension */
void vfu_caps_ours(struct vfu_caps *c);       /* what this implementation supports */
/* JSON text (malloc'd, NUL-terminated) or NULL on allocation failure. */
char *vfu_caps_encode(const struct vfu_caps *c);
/* Parse `len` bytes that must hold a NUL-terminated JSON object; absent fields
 * keep spec defaults.  0 or -EINVAL. */
int vfu_caps_parse(const char *json, size_t len, struct vfu_caps *out);
/* Whole VERSION payload (struct vfu_version + optional JSON).  0 or -EINVAL. */
int vfu_version_parse(const void *payload, size_t len, uint16_t *major, uint16_t *minor,
                      struct vfu_caps *caps);
/* Build a VERSION payload (malloc'd) of our version and caps. */
void *vfu_version_build(const struct vfu_caps *c, size_t *len);

const char *vfu_cmd_name(uint16_t cmd);

#endif
