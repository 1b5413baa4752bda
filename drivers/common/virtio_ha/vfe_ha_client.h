/* Client of vfe-vhostd-ha (the daemon side of docs/ha.md).
 *
 * Timing: every call is synchronous and bounded.  It sends its request and
 * waits for the answer with poll(), never longer than timeout_ms without
 * progress (a packet sent or received).  A call that times out, or whose
 * connection breaks, closes the connection: later calls return -ENOTCONN
 * and the caller reconnects (from a retry timer) when it wants.  With the
 * HA process alive, a PUT of a few packets answers in well under a
 * millisecond; a caller on an event loop picks a short timeout (tens of ms)
 * so a stuck HA process costs it at most that once.
 *
 * Errors are negative errno values; vfe_ha_client_error() says why in words:
 *   from the HA process (ERR reply, the connection stays usable):
 *     -ENOENT (no such record), -E2BIG, -ENOSPC, -EMFILE (limits),
 *     -EPROTO (a request it refused), -EBUSY (another client is connected),
 *     -EACCES (another uid), -EPROTONOSUPPORT (another major version);
 *   local: -ETIMEDOUT, -ECONNRESET, -ENOTCONN, -EPROTO / -EBADMSG (the
 *     HA process sent something this client does not accept), -EINVAL
 *     (bad key or argument, nothing sent), -ENOMEM.
 *
 * Ownership: fds given to put() stay the caller's (the kernel passes
 * copies); the HA process owns its copies from the ACK on.  Records from
 * get() are the caller's: their fds (close-on-exec) and blobs, released
 * with vfe_ha_records_free() (which closes every fd not set to -1).
 */
#ifndef VFE_HA_CLIENT_H
#define VFE_HA_CLIENT_H

#include <stdint.h>

#include "drivers/common/virtio_ha/vfe_ha_proto.h"

struct vfe_ha_client;

struct vfe_ha_record {
    char key[VFE_HA_KEY_MAX + 1];
    uint8_t *blob;
    uint32_t blob_len;
    unsigned nfds;
    int fds[VFE_HA_MAX_RECORD_FDS];   /* in the order they were put */
};

/* Connect to path and say HELLO as name; NULL with *err on failure (then
 * *why, if given, points at a static description valid until the next call). */
struct vfe_ha_client *vfe_ha_client_connect(const char *path, const char *name, int timeout_ms, int *err,
                                            const char **why);
void vfe_ha_client_close(struct vfe_ha_client *c);
/* The socket, for a caller that wants to watch it for a hang-up; -1 once closed. */
int vfe_ha_client_fd(const struct vfe_ha_client *c);
const char *vfe_ha_client_error(const struct vfe_ha_client *c);
/* The HA process's limits, from its HELLO answer. */
const struct vfe_ha_limits *vfe_ha_client_limits(const struct vfe_ha_client *c);

/* Deposit or replace the record key: blob (up to VFE_HA_BLOB_MAX) and nfds fds
 * (up to the HA process's max_record_fds, VFE_HA_MAX_RECORD_FDS since protocol
 * 1.1; -E2BIG beyond, nothing sent).  A record travels as
 * max(blob packets, ceil(nfds / VFE_HA_MAX_FDS)) packets. */
int vfe_ha_put(struct vfe_ha_client *c, const char *key, const void *blob, uint32_t len, const int *fds,
               unsigned nfds);
/* vfe_ha_put() whose last packet asks the HA process (protocol >= 1.2) to
 * write bytes (up to VFE_HA_SEND_MAX) to the record's fds[send_fd] once the
 * record is stored.  0: stored and written; -EIO: stored, the bytes not
 * written (peer's buffer full, not writable, short write; see the message);
 * -EOPNOTSUPP: the HA process is older than 1.2 (nothing sent); -EINVAL:
 * send_fd >= nfds or too many bytes (nothing sent); otherwise as put. */
int vfe_ha_put_send(struct vfe_ha_client *c, const char *key, const void *blob, uint32_t len, const int *fds,
                    unsigned nfds, unsigned send_fd, const void *bytes, uint32_t nbytes);
/* The minor protocol version of the HA process (its HELLO answer's header). */
unsigned vfe_ha_client_peer_minor(const struct vfe_ha_client *c);
int vfe_ha_del(struct vfe_ha_client *c, const char *key);
/* Every record (key NULL) or one; *recs is malloc'd, *n records (0 and NULL when there are none). */
int vfe_ha_get(struct vfe_ha_client *c, const char *key, struct vfe_ha_record **recs, unsigned *n);
void vfe_ha_records_free(struct vfe_ha_record *recs, unsigned n);
int vfe_ha_status(struct vfe_ha_client *c, struct vfe_ha_status *st);

/* Hand the connection over (to vfe_ha_link_create_connected): between two
 * calls, nothing in flight.  The client is closed, the socket is not.  The
 * caller owns h->fd until it gives it to a link. */
struct vfe_ha_handover {
    int fd;
    struct vfe_ha_limits limits;
    uint8_t peer_minor;
    uint32_t seq;
};
int vfe_ha_client_release(struct vfe_ha_client *c, struct vfe_ha_handover *h);

#endif
