/* Internals of lib/vhost. */
#ifndef VHOST_PRIV_H
#define VHOST_PRIV_H

#include "lib/vhost/vhost.h"
#include "lib/sock/vfe_unix_sock.h"
#include "lib/vhost/vhost_proto.h"

#define VHOST_LOG_PAGE 4096u

struct vhost_msg {
    struct vhost_user_hdr hdr;
    /* VHOST_USER_MAX_PAYLOAD bytes.  d->in's is allocated at the dev's first
     * connection (vhost_conn_attach, or a restore with a connection) and
     * kept until the dev is freed: a dev that never had a front-end does not
     * carry it, and no message is ever without it while handled. */
    uint8_t *payload;
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds;
};

/* Where the current message is (HA): a snapshot taken at RECEIVED or PAUSED
 * carries the message itself, so a successor handles it again (RECEIVED) or
 * waits for the glue again (PAUSED); HANDLED carries the reply owed. */
enum { VHOST_CUR_NONE = 0, VHOST_CUR_RECEIVED = 1, VHOST_CUR_PAUSED = 2, VHOST_CUR_HANDLED = 3 };
#define VHOST_OWED_MAX 64u

struct vhost_dev {
    struct ev_loop *loop;
    struct vhost_cfg cfg;
    char path[108];
    char name[64];
    uint64_t offered, proto_offered;

    int lfd;                       /* listening socket (server mode): listener.fd */
    struct vfe_listener listener;  /* owns lfd and the socket file at path */
    ev_io lwatch;
    ev_timer reconnect;            /* client mode back-off */
    double backoff;

    int fd;                        /* the connection, -1 if none */
    ev_io watch;
    struct vhost_msg in;           /* message being read */
    size_t in_got;                 /* bytes of header + payload read so far */
    bool in_consumed;              /* d->in is off the socket */
    ev_timer resume_t;             /* a restored connection starts from the loop */
    ev_timer partial;              /* part of a message arrived: look again soon */
    double partial_since;
    bool paused;                   /* waiting for the glue (GET_VRING_BASE, log change) */
    uint64_t serial;               /* of the pending request */
    uint32_t pending_req;          /* its request number */
    uint16_t pending_ring;
    bool pending_need_reply;
    /* Crash safety (docs/ha.md): where the head message is, and the reply owed. */
    uint8_t cur_state;             /* VHOST_CUR_* */
    bool owed;
    uint32_t owed_req, owed_size;
    uint8_t owed_payload[VHOST_OWED_MAX];
    ev_timer closer;               /* closes a broken connection from the loop */
    const char *close_why;

    /* session state */
    bool owner;
    uint64_t features, proto;
    bool features_set;
    uint8_t status;
    struct vhost_region regions[VHOST_MAX_REGIONS];
    unsigned nregions;
    int log_fd;
    uint64_t log_size, log_offset;
    uint8_t *log_map;
    size_t log_map_len;
    int backend_fd;
    /* 2 x cfg.queue_pairs rings, allocated with the dev (vhost_dev_new): a VF
     * with one queue pair carries 2 rings, not VHOST_MAX_RINGS.  Every ring
     * index from a front-end passes ring_index() first (vhost_session.c). */
    struct vhost_ring rings[];
};

static inline unsigned vhost_nrings(const struct vhost_dev *d) { return 2u * d->cfg.queue_pairs; }

/* vhost_msg.c */
/* Peek a whole message into d->in (not taken off the socket): 1, 0 nothing
 * there, 2 only part of one arrived (look again soon), -1 closed or broken. */
int vhost_msg_read(struct vhost_dev *d);
/* Take d->in off the socket (after it is deposited). */
int vhost_msg_consume(struct vhost_dev *d);
/* A restored RECEIVED message: is it still at the head of the socket (the
 * same bytes and the same open files)?  Then it is taken off (dropped). */
bool vhost_msg_at_head(struct vhost_dev *d);
void vhost_msg_release_fds(struct vhost_msg *m);
int vhost_msg_send(int fd, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
                   const int *fds, unsigned nfds);
/* Size and fd rules of a front-end request: 0 or a reason. */
const char *vhost_msg_check(const struct vhost_msg *m);

/* vhost_mem.c */
/* 0 added, 1 an identical region is there already (refcounted; fd not taken), < 0 refused. */
int vhost_mem_add(struct vhost_dev *d, const struct vhost_user_region *r, int fd, const char **why);
/* 0 the region is gone, 1 another holder keeps it, -ENOENT no such region. */
int vhost_mem_remove(struct vhost_dev *d, const struct vhost_user_region *r);
/* Does the table hold exactly these regions (same ranges, same files)? */
bool vhost_mem_same(const struct vhost_dev *d, const struct vhost_user_region *r, const int *fds, unsigned n);
void vhost_mem_clear(struct vhost_dev *d);
uint64_t vhost_mem_top(const struct vhost_dev *d);
int vhost_ring_translate(struct vhost_dev *d, struct vhost_ring *r);

/* vhost_session.c */
/* Handle d->in; 0 done, -1 the connection must close. */
int vhost_session_handle(struct vhost_dev *d);
/* notify: tell the glue each running ring stops (not while the dev is destroyed). */
void vhost_session_reset(struct vhost_dev *d, bool closing, bool notify);
void vhost_ring_update(struct vhost_dev *d, uint16_t i);
/* Configured, enabled (when negotiated) and kicked: what makes a ring start. */
bool vhost_ring_ready(const struct vhost_dev *d, const struct vhost_ring *r);
int vhost_reply(struct vhost_dev *d, uint32_t request, const void *payload, uint32_t size);
/* The current message is done; send its reply (if reply) in the order that
 * survives a crash (vhost_session.c). */
int vhost_msg_finish(struct vhost_dev *d, uint32_t request, const void *payload, uint32_t size, bool reply);
/* Handle d->in from the top, as read (also a restored RECEIVED message): 0 or
 * -1 when the connection must close. */
int vhost_msg_process(struct vhost_dev *d);
void vhost_persist(struct vhost_dev *d);
/* Pause for the glue again after a restore (the request is at the head). */
void vhost_session_repause(struct vhost_dev *d);

/* vhost_conn.c */
void vhost_conn_close(struct vhost_dev *d, const char *why);
/* Close from the loop: for calls the glue makes (no callback inside them). */
void vhost_conn_close_later(struct vhost_dev *d, const char *why);
/* Take fd as the connection: 0, or -ENOMEM (no message buffer; fd not taken). */
int vhost_conn_attach(struct vhost_dev *d, int fd);
/* d->in's payload buffer, allocated once: 0 or -ENOMEM. */
int vhost_msg_buffer(struct vhost_dev *d);
void vhost_conn_resume(struct vhost_dev *d);
int vhost_conn_listen(struct vhost_dev *d);
/* Accept on d->lfd (a listener taken over from a predecessor). */
void vhost_conn_watch_listener(struct vhost_dev *d);
/* A dev with no socket yet (create and restore finish it). */
struct vhost_dev *vhost_dev_new(struct ev_loop *loop, const struct vhost_cfg *cfg, int *err);

#endif
