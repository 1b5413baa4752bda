/* Client of vfe-vhostd-ha: bounded synchronous calls over SOCK_SEQPACKET (see vfe_ha_client.h). */
#include "drivers/common/virtio_ha/vfe_ha_client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct vfe_ha_client {
    int fd;
    int timeout_ms;
    uint32_t seq;
    struct vfe_ha_limits limits;
    uint8_t peer_minor;        /* from the HELLO answer's header */
    char err[VFE_HA_ERRMSG_MAX + 64];
    uint8_t pkt[VFE_HA_MAX_PACKET];
};

static int fail(struct vfe_ha_client *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct vfe_ha_client *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return err;
}

/* Transport trouble: the connection's state is unknown, so it ends here. */
static int broken(struct vfe_ha_client *c, int err, const char *what)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    return fail(c, err, "%s: %s; connection closed", what, strerror(-err));
}

static int wait_for(struct vfe_ha_client *c, short ev)
{
    struct pollfd p = {c->fd, ev, 0};
    int rc;
    do
        rc = poll(&p, 1, c->timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    return rc == 0 ? -ETIMEDOUT : 0;
}

static int send_pkt(struct vfe_ha_client *c, size_t len, const int *fds, unsigned nfds)
{
    for (;;) {
        int rc = vfe_ha_send_packet(c->fd, c->pkt, len, fds, nfds);
        if (rc != -EAGAIN)
            return rc;
        if ((rc = wait_for(c, POLLOUT)) < 0)
            return rc;
    }
}

/* The next packet of the answer to seq, decoded into *m (pointing into c->pkt); fds are the caller's. */
static int recv_pkt(struct vfe_ha_client *c, uint32_t seq, struct vfe_ha_msg *m, int *fds, unsigned *nfds)
{
    for (;;) {
        int n = vfe_ha_recv_packet(c->fd, c->pkt, sizeof(c->pkt), fds, nfds);
        if (n == -EAGAIN) {
            int rc = wait_for(c, POLLIN);
            if (rc < 0)
                return broken(c, rc, "waiting for the HA process");
            continue;
        }
        if (n == 0)
            return broken(c, -ECONNRESET, "the HA process closed the connection");
        if (n < 0)
            return broken(c, n, "receiving from the HA process");
        const char *why;
        int rc = vfe_ha_decode(c->pkt, (size_t)n, *nfds, m, &why);
        if (rc == 0 && m->hdr.seq != seq && m->hdr.seq != 0)
            rc = -EPROTO, why = "an answer to another request";
        if (rc == 0 && m->hdr.type != VFE_HA_ACK && m->hdr.type != VFE_HA_ERR && m->hdr.type != VFE_HA_RECORD)
            rc = -EPROTO, why = "a request where an answer was expected";
        if (rc < 0) {
            for (unsigned i = 0; i < *nfds; i++)
                close(fds[i]);
            *nfds = 0;
            broken(c, rc, "bad answer from the HA process");
            return fail(c, rc, "bad answer from the HA process: %s; connection closed", why);
        }
        if (m->hdr.type == VFE_HA_ERR) {
            struct vfe_ha_err_body e;
            memcpy(&e, m->body, sizeof(e));
            int len = (int)(m->body_len - sizeof(e));
            int err = e.err > 0 && e.err < 4096 ? e.err : EPROTO;
            if (m->hdr.seq == 0 && c->fd >= 0) {   /* not an answer: the HA process refused the connection */
                close(c->fd);
                c->fd = -1;
            }
            return fail(c, -err, "HA process: %.*s", len, (const char *)m->body + sizeof(e));
        }
        return 0;
    }
}

/* Send a single-packet request and take its ACK body (up to cap bytes, *len set). */
static int call(struct vfe_ha_client *c, uint16_t type, const char *key, const void *body, size_t body_len,
                void *ack, size_t cap, size_t *ack_len)
{
    if (c->fd < 0)
        return fail(c, -ENOTCONN, "not connected to the HA process");
    uint32_t seq = ++c->seq ? c->seq : ++c->seq;
    int n = vfe_ha_encode(c->pkt, sizeof(c->pkt), type, 0, seq, key, key ? strlen(key) : 0, body, body_len, 0);
    if (n < 0)
        return fail(c, -EINVAL, "request does not fit a packet");
    int rc = send_pkt(c, (size_t)n, NULL, 0);
    if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET)
        return broken(c, rc, "sending to the HA process");
    /* even when the send failed, an ERR saying why may be waiting */
    struct vfe_ha_msg m;
    int fds[VFE_HA_MAX_FDS];
    unsigned nfds;
    int r = recv_pkt(c, seq, &m, fds, &nfds);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (m.hdr.type != VFE_HA_ACK || (ack_len == NULL && m.body_len))
        return broken(c, -EPROTO, "unexpected answer from the HA process");
    if (type == VFE_HA_HELLO)
        c->peer_minor = m.hdr.minor;
    if (ack_len) {
        *ack_len = m.body_len < cap ? m.body_len : cap;
        memcpy(ack, m.body, *ack_len);
    }
    return 0;
}

struct vfe_ha_client *vfe_ha_client_connect(const char *path, const char *name, int timeout_ms, int *err,
                                            const char **why)
{
    static char reason[sizeof(((struct vfe_ha_client *)0)->err)];
    const char *ignored;
    if (!why)
        why = &ignored;
    *why = reason;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(reason, sizeof(reason), "socket path missing or too long");
        *err = -ENAMETOOLONG;
        return NULL;
    }
    strcpy(sa.sun_path, path);
    struct vfe_ha_client *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(reason, sizeof(reason), "out of memory");
        *err = -ENOMEM;
        return NULL;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        *err = -errno;
        snprintf(reason, sizeof(reason), "connect %s: %s", path, strerror(errno));
        vfe_ha_client_close(c);
        return NULL;
    }
    size_t nlen = name ? strnlen(name, 64) : 0;
    size_t got = 0;
    int rc = call(c, VFE_HA_HELLO, NULL, name, nlen, &c->limits, sizeof(c->limits), &got);
    if (rc == 0 && got != sizeof(c->limits))
        rc = fail(c, -EPROTO, "HELLO answer of %zu bytes", got);
    if (rc < 0) {
        *err = rc;
        snprintf(reason, sizeof(reason), "%s", c->err);
        vfe_ha_client_close(c);
        return NULL;
    }
    return c;
}

void vfe_ha_client_close(struct vfe_ha_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

int vfe_ha_client_fd(const struct vfe_ha_client *c)
{
    return c->fd;
}

const char *vfe_ha_client_error(const struct vfe_ha_client *c)
{
    return c->err;
}

const struct vfe_ha_limits *vfe_ha_client_limits(const struct vfe_ha_client *c)
{
    return &c->limits;
}

unsigned vfe_ha_client_peer_minor(const struct vfe_ha_client *c)
{
    return c->peer_minor;
}

static int put_record(struct vfe_ha_client *c, const char *key, const void *blob, uint32_t len, const int *fds,
                      unsigned nfds, unsigned send_fd, const void *bytes, uint32_t nbytes, bool send);

int vfe_ha_put(struct vfe_ha_client *c, const char *key, const void *blob, uint32_t len, const int *fds,
               unsigned nfds)
{
    return put_record(c, key, blob, len, fds, nfds, 0, NULL, 0, false);
}

int vfe_ha_put_send(struct vfe_ha_client *c, const char *key, const void *blob, uint32_t len, const int *fds,
                    unsigned nfds, unsigned send_fd, const void *bytes, uint32_t nbytes)
{
    if (nbytes > VFE_HA_SEND_MAX || send_fd >= nfds || (nbytes && !bytes))
        return fail(c, -EINVAL, "SEND of %u bytes to fd %u of %u", nbytes, send_fd, nfds);
    if (c->fd >= 0 && c->peer_minor < VFE_HA_SEND_MINOR)
        return fail(c, -EOPNOTSUPP, "the HA process speaks %u.%u, SEND needs %u.%u", VFE_HA_MAJOR, c->peer_minor,
                    VFE_HA_MAJOR, VFE_HA_SEND_MINOR);
    return put_record(c, key, blob, len, fds, nfds, send_fd, bytes, nbytes, true);
}

static int put_record(struct vfe_ha_client *c, const char *key, const void *blob, uint32_t len, const int *fds,
                      unsigned nfds, unsigned send_fd, const void *bytes, uint32_t nbytes, bool send)
{
    if (c->fd < 0)
        return fail(c, -ENOTCONN, "not connected to the HA process");
    size_t klen = key ? strlen(key) : 0;
    if (!vfe_ha_key_valid(key, klen))
        return fail(c, -EINVAL, "bad record key");
    if (len > VFE_HA_BLOB_MAX || nfds > VFE_HA_MAX_RECORD_FDS || nfds > c->limits.max_record_fds || (len && !blob) ||
        (nfds && !fds))
        return fail(c, -E2BIG, "record of %u bytes and %u fds exceeds the bounds (%u fds per record)", len, nfds,
                    c->limits.max_record_fds);
    uint32_t seq = ++c->seq ? c->seq : ++c->seq;
    /* every packet leaves room for the send tail, so the last one has it */
    size_t room = klen + (send ? VFE_HA_SEND_OVERHEAD(nbytes) : 0);
    struct vfe_ha_split sp = {0};
    do {
        vfe_ha_split_next(&sp, room, len, nfds);
        const uint8_t *chunk = sp.chunk ? (const uint8_t *)blob + sp.off : NULL;
        int n = send && !sp.more
                    ? vfe_ha_encode_send(c->pkt, sizeof(c->pkt), seq, key, klen, chunk, sp.chunk, sp.chunk_fds,
                                         send_fd, bytes, nbytes)
                    : vfe_ha_encode(c->pkt, sizeof(c->pkt), VFE_HA_PUT, sp.more ? VFE_HA_F_MORE : 0, seq, key,
                                    klen, chunk, sp.chunk, sp.chunk_fds);
        int rc = n < 0 ? n : send_pkt(c, (size_t)n, sp.chunk_fds ? fds + sp.fd_off : NULL, sp.chunk_fds);
        if (rc == -EPIPE || rc == -ECONNRESET)
            break;   /* the ERR that made it close may be waiting */
        if (rc < 0)
            return broken(c, rc, "sending a PUT");
        sp.off += sp.chunk;
        sp.fd_off += sp.chunk_fds;
    } while (sp.more);
    struct vfe_ha_msg m;
    int rfds[VFE_HA_MAX_FDS];
    unsigned rn;
    int rc = recv_pkt(c, seq, &m, rfds, &rn);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < rn; i++)
        close(rfds[i]);
    if (m.hdr.type != VFE_HA_ACK || m.body_len)
        return broken(c, -EPROTO, "unexpected answer to PUT");
    return 0;
}

int vfe_ha_del(struct vfe_ha_client *c, const char *key)
{
    if (!key || !vfe_ha_key_valid(key, strlen(key)))
        return fail(c, -EINVAL, "bad record key");
    return call(c, VFE_HA_DEL, key, NULL, 0, NULL, 0, NULL);
}

int vfe_ha_status(struct vfe_ha_client *c, struct vfe_ha_status *st)
{
    size_t got = 0;
    int rc = call(c, VFE_HA_STATUS, NULL, NULL, 0, st, sizeof(*st), &got);
    if (rc == 0 && got != sizeof(*st))
        return broken(c, -EPROTO, "STATUS answer of another size");
    return rc;
}

void vfe_ha_records_free(struct vfe_ha_record *recs, unsigned n)
{
    for (unsigned i = 0; recs && i < n; i++) {
        for (unsigned k = 0; k < recs[i].nfds; k++)
            if (recs[i].fds[k] >= 0)
                close(recs[i].fds[k]);
        free(recs[i].blob);
    }
    free(recs);
}

/* Add one RECORD packet to the array: a new record, or the next chunk of the last one. */
static int take_record(const struct vfe_ha_msg *m, int *fds, unsigned *nfds, struct vfe_ha_record **recs,
                       unsigned *n, unsigned *cap, bool *open)
{
    struct vfe_ha_record *r;
    if (!*open) {
        if (*n == *cap) {
            unsigned ncap = *cap ? *cap * 2 : 8;
            struct vfe_ha_record *b = realloc(*recs, sizeof(*b) * ncap);
            if (!b)
                return -ENOMEM;
            *recs = b;
            *cap = ncap;
        }
        r = &(*recs)[(*n)++];
        memset(r, 0, sizeof(*r));
        memcpy(r->key, m->key, m->hdr.key_len);
        memcpy(r->fds, fds, sizeof(int) * *nfds);
        r->nfds = *nfds;
        *nfds = 0;   /* the record's now */
        *open = true;
    } else {
        r = &(*recs)[*n - 1];
        if (m->hdr.key_len != strlen(r->key) || memcmp(m->key, r->key, m->hdr.key_len) != 0 ||
            r->nfds + *nfds > VFE_HA_MAX_RECORD_FDS)
            return -EPROTO;
        memcpy(r->fds + r->nfds, fds, sizeof(int) * *nfds);
        r->nfds += *nfds;
        *nfds = 0;
    }
    if ((uint64_t)r->blob_len + m->body_len > VFE_HA_BLOB_MAX)
        return -EPROTO;
    if (m->body_len) {
        uint8_t *b = realloc(r->blob, r->blob_len + m->body_len);
        if (!b)
            return -ENOMEM;
        memcpy(b + r->blob_len, m->body, m->body_len);
        r->blob = b;
        r->blob_len += m->body_len;
    }
    if (!(m->hdr.flags & VFE_HA_F_MORE))
        *open = false;
    return 0;
}

int vfe_ha_get(struct vfe_ha_client *c, const char *key, struct vfe_ha_record **recs, unsigned *n)
{
    *recs = NULL;
    *n = 0;
    if (c->fd < 0)
        return fail(c, -ENOTCONN, "not connected to the HA process");
    if (key && !vfe_ha_key_valid(key, strlen(key)))
        return fail(c, -EINVAL, "bad record key");
    uint32_t seq = ++c->seq ? c->seq : ++c->seq;
    int len = vfe_ha_encode(c->pkt, sizeof(c->pkt), VFE_HA_GET, 0, seq, key, key ? strlen(key) : 0, NULL, 0, 0);
    int rc = send_pkt(c, (size_t)len, NULL, 0);
    if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET)
        return broken(c, rc, "sending GET");
    struct vfe_ha_record *out = NULL;
    unsigned count = 0, cap = 0;
    bool open = false;
    for (;;) {
        struct vfe_ha_msg m;
        int fds[VFE_HA_MAX_FDS];
        unsigned nfds;
        rc = recv_pkt(c, seq, &m, fds, &nfds);
        if (rc < 0)
            break;
        if (m.hdr.type == VFE_HA_ACK) {
            uint32_t total = 0;
            if (m.body_len == sizeof(total))
                memcpy(&total, m.body, sizeof(total));
            if (open || m.body_len != sizeof(total) || total != count) {
                rc = broken(c, -EPROTO, "GET answer: record count disagrees or a record is unfinished");
                break;
            }
            *recs = out;
            *n = count;
            return 0;
        }
        rc = take_record(&m, fds, &nfds, &out, &count, &cap, &open);
        if (rc < 0) {
            for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
            rc = broken(c, rc, "GET answer: a bad record");
            break;
        }
    }
    vfe_ha_records_free(out, count);
    return rc;
}

int vfe_ha_client_release(struct vfe_ha_client *c, struct vfe_ha_handover *h)
{
    if (!c || c->fd < 0)
        return -ENOTCONN;
    *h = (struct vfe_ha_handover){.fd = c->fd, .limits = c->limits, .peer_minor = c->peer_minor, .seq = c->seq};
    c->fd = -1;
    vfe_ha_client_close(c);
    return 0;
}
