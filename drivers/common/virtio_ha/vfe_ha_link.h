/* The daemon's link to vfe-vhostd-ha on a libev loop (docs/ha.md, "The link").
 *
 * The loop never blocks on the HA process: the socket is non-blocking,
 * connect() on a unix socket completes or fails at once, and every answer
 * (HELLO's included) is read from an EV_READ watcher.
 *
 * States: down -> connecting (HELLO sent) -> up (HELLO answered) -> down ...
 *   - up(ctx) runs from the loop once HELLO is answered, after every
 *     (re)connect.  The HA process may hold records of a previous daemon or
 *     an older state: the caller puts everything it wants held now.
 *   - down(ctx, err, why) runs from the loop when an up link is lost (the HA
 *     process hung up: noticed at once through EV_READ; a write failed; a
 *     bad or unmatched answer; no progress on an outstanding request for
 *     VFE_HA_LINK_REPLY_TIMEOUT seconds), and once when the first connect
 *     attempt after create (or after a loss) fails.  Failed retries are not
 *     reported again.  A retry timer reconnects with a back-off from
 *     VFE_HA_LINK_RETRY_MIN to VFE_HA_LINK_RETRY_MAX seconds.
 *   err is a negative errno: -ECONNRESET (hung up), -ETIMEDOUT, -EPROTO,
 *   -EBUSY / -EACCES / -EPROTONOSUPPORT (refused by the HA process), or the
 *   errno of connect() (-ENOENT, -ECONNREFUSED, -EAGAIN).
 *   No callback ever runs inside a call the caller made into the link.
 *
 * Queue (memory stays bounded):
 *   - while not up, put/del return 0 and keep nothing: up() re-puts all;
 *   - while up, a request goes to the socket at once when the socket takes
 *     it (return 1: written completely, the HA process applies it even if
 *     this process dies now), otherwise it waits in a FIFO drained on
 *     EV_WRITE (return 0).  The FIFO holds at most one unsent entry per key:
 *     a PUT replaces the unsent PUT or DEL of its key, a DEL turns the unsent
 *     PUT of its key into a DEL.  A record whose first packet is written is
 *     finished before any other packet goes out.
 *   - answers are matched by seq, in order.  An ERR to a PUT is logged with
 *     the key and counted (stats.errors, last_err, last_why); an ERR ENOENT
 *     to a DEL is not an error (the key was not held).
 *
 * Ownership: the link owns its socket, its copies (dup()s) of the fds of
 * every queued PUT and the copies of queued blobs; the caller keeps its own
 * fds and buffers.  Limits checked on put: key syntax, blob up to
 * VFE_HA_BLOB_MAX, fds up to the HA process's max_record_fds (at most
 * VFE_HA_MAX_RECORD_FDS): -EINVAL / -E2BIG, nothing queued.  -EMFILE /
 * -ENOMEM when the copies cannot be made.
 *
 * vfe_ha_link_destroy() may be called from inside up/down: the link is torn
 * down at once (socket closed, nothing more sent, no further callback) and
 * its memory freed when the callback returns.
 */
#ifndef VFE_HA_LINK_H
#define VFE_HA_LINK_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "drivers/common/virtio_ha/vfe_ha_proto.h"

#define VFE_HA_LINK_RETRY_MIN 0.1
#define VFE_HA_LINK_RETRY_MAX 2.0
#define VFE_HA_LINK_REPLY_TIMEOUT 10.0   /* seconds without progress on an outstanding request */
#define VFE_HA_LINK_STATUS_PERIOD 5.0    /* STATUS refresh while up (and right after up) */

struct vfe_ha_link;

struct vfe_ha_link_ops {
    void (*up)(void *ctx);                              /* connected (again), HELLO answered: put everything */
    void (*down)(void *ctx, int err, const char *why);  /* lost; a retry timer reconnects */
};

struct vfe_ha_link_stats {
    bool connected;                /* up */
    uint64_t puts, dels, acks, errors, reconnects;   /* puts/dels: written completely to the socket */
    uint64_t queued, queued_bytes; /* entries and blob bytes waiting for the socket now */
    int last_err;                  /* positive errno of the last ERR answer or loss, 0 if none */
    char last_why[128];
    struct vfe_ha_status held;     /* the last STATUS answer */
    double held_at;                /* ev_now() when it came; 0 before the first */
    uint64_t sends_failed;         /* put_send returned 1 but the bytes were not written: ERR answer
                                      (EIO: stored, not written; or refused), or the link was lost
                                      before the rest of a multi-packet record went out */
};

/* Start connecting (from the loop: nothing happens inside this call but
 * allocation).  path and name are copied.  NULL with errno on a path too
 * long (ENAMETOOLONG), bad arguments (EINVAL) or ENOMEM. */
struct vfe_ha_link *vfe_ha_link_create(struct ev_loop *loop, const char *path, const char *name,
                                       const struct vfe_ha_link_ops *ops, void *ctx);
/* Close the socket, drop what is queued; no callback runs (NULL is fine). */
void vfe_ha_link_destroy(struct vfe_ha_link *l);
/* A link that is up at once on a connection a blocking client opened (the
 * daemon's start: what it fetched and adopted is deposited from the first
 * loop turn on, with no window where nothing could be).  `up` runs only for
 * later connections; the link owns h->fd (also on failure: closed). */
struct vfe_ha_handover;
struct vfe_ha_link *vfe_ha_link_create_connected(struct ev_loop *loop, const char *path, const char *name,
                                                 const struct vfe_ha_link_ops *ops, void *ctx,
                                                 const struct vfe_ha_handover *h);
/* 1: written completely; 0: queued (socket full) or not up (dropped, up()
 * will ask again); -errno on bad arguments (nothing kept). */
int vfe_ha_link_put(struct vfe_ha_link *l, const char *key, const void *blob, uint32_t len, const int *fds,
                    unsigned nfds);
/* A PUT whose packet asks the HA process to write bytes (up to
 * VFE_HA_SEND_MAX) to the record's fds[send_fd] right after storing it
 * (protocol 1.2, docs/ha.md "Send with PUT"): a successor sees "stored" and
 * "written" together or neither, which no order of put-then-write (or
 * write-then-put) by this process can give across a kill -9.
 * Not queued: 1 when the PUT was written to the socket inside this call
 * (the HA process will store it and write the bytes, even if this process
 * dies now); 0 when NOTHING of it was sent or kept: the link is not up, the
 * HA process is older than 1.2, other requests are queued ahead of it
 * (order is kept), or the socket does not take (the first packet of) it -
 * then the caller writes the bytes itself (and puts as usual).
 * A record of one packet (up to VFE_HA_MAX_FDS fds and key + blob + bytes +
 * 8 within a packet: the daemon's usual record) is sent from the caller's
 * buffers, nothing copied.  A larger one is copied like a put; if its first
 * packet is written but a later one meets a full socket, the rest is queued
 * and finished from the loop before anything else, and 1 is returned: the
 * HA process stores and writes once the last packet arrives.  If this
 * process dies or the link is lost before that, the HA process drops the
 * partial record: neither stored nor written (a successor sees the previous
 * record and no reply); a loss is counted in stats.sends_failed.
 * -EINVAL (send_fd >= nfds, nbytes over VFE_HA_SEND_MAX, bad key/args),
 * -E2BIG, -EBADF, -ENOMEM: nothing sent.  The fds stay the caller's.  If
 * the HA process stores the record but cannot write the bytes (peer's
 * buffer full...) it answers ERR EIO: logged, counted in stats.errors and
 * stats.sends_failed. */
int vfe_ha_link_put_send(struct vfe_ha_link *l, const char *key, const void *blob, uint32_t len, const int *fds,
                         unsigned nfds, unsigned send_fd, const void *bytes, uint32_t nbytes);
int vfe_ha_link_del(struct vfe_ha_link *l, const char *key);
bool vfe_ha_link_connected(const struct vfe_ha_link *l);
void vfe_ha_link_stats(const struct vfe_ha_link *l, struct vfe_ha_link_stats *st);

#endif
