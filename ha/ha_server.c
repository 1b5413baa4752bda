/* vfe-vhostd-ha's listener: credentials, one client at a time (see ha_server.h). */
#include "ha/ha_server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ha/ha_conn.h"
#include "lib/log/vfe_log.h"

static void refuse(int fd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(int fd, int err, const char *fmt, ...)
{
    uint8_t body[VFE_HA_ERR_BODY_MAX];
    uint8_t pkt[VFE_HA_HDR_SIZE + sizeof(body)];
    va_list ap;
    va_start(ap, fmt);
    size_t blen = vfe_ha_err_vformat(body, err, fmt, ap);
    va_end(ap);
    LOG_W("connection refused: %s", (char *)body + sizeof(struct vfe_ha_err_body));
    int len = vfe_ha_encode(pkt, sizeof(pkt), VFE_HA_ERR, 0, 0, NULL, 0, body, blen, 0);
    if (len > 0)
        vfe_ha_send_packet(fd, pkt, (size_t)len, NULL, 0);
    /* closing with unread packets would reset the peer's socket before it reads the ERR */
    static uint8_t sink[VFE_HA_MAX_PACKET];
    int fds[VFE_HA_MAX_FDS];
    unsigned nfds;
    for (int i = 0; i < 16 && vfe_ha_recv_packet(fd, sink, sizeof(sink), fds, &nfds) > 0; i++)
        for (unsigned k = 0; k < nfds; k++)
            close(fds[k]);
    close(fd);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ha_server *s = w->data;
    int fd = accept4(s->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR)
            LOG_W("accept: %s", strerror(errno));
        return;
    }
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
        refuse(fd, EACCES, "cannot read the peer's credentials: %s", strerror(errno));
        return;
    }
    if (cred.uid != geteuid()) {
        refuse(fd, EACCES, "peer pid %d runs as uid %u, the HA process as uid %u", (int)cred.pid,
               (unsigned)cred.uid, (unsigned)geteuid());
        return;
    }
    if (s->client && !ha_conn_gone(s->client)) {
        refuse(fd, EBUSY, "peer pid %d: another client (pid %d) is connected; one at a time", (int)cred.pid,
               (int)ha_conn_pid(s->client));
        return;
    }
    s->client = ha_conn_new(s, fd, cred.pid);
    if (!s->client) {
        refuse(fd, ENOMEM, "out of memory");
        return;
    }
    s->accepted++;
}

int ha_server_open(struct ha_server *s, struct ev_loop *loop, const char *path, const struct vfe_ha_limits *lim,
                   ev_tstamp hello_timeout)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->hello_timeout = hello_timeout;
    s->started = ev_now(loop);
    ha_store_init(&s->store, lim);
    int rc = vfe_listener_open_type(&s->listener, path, SOCK_SEQPACKET, 0600, (gid_t)-1, 4);
    if (rc < 0)
        return rc;
    s->accept_w.data = s;
    ev_io_init(&s->accept_w, on_accept, s->listener.fd, EV_READ);
    ev_io_start(loop, &s->accept_w);
    return 0;
}

void ha_server_close(struct ha_server *s)
{
    if (s->client)
        ha_conn_destroy(s->client);
    ev_io_stop(s->loop, &s->accept_w);
    vfe_listener_close(&s->listener);
    ha_store_clear(&s->store);
}
