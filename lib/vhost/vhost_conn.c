/* vhost-user sockets: server (listen, one front-end at a time) and client
 * (connect with back-off), the read loop, and the public accessors. */
#include "lib/vhost/vhost_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 2.0

static void read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void start_client(struct vhost_dev *d);

static uint64_t proto_offered(void)
{
    static const unsigned bits[] = {
        VHOST_USER_PROTOCOL_F_MQ, VHOST_USER_PROTOCOL_F_LOG_SHMFD, VHOST_USER_PROTOCOL_F_RARP,
        VHOST_USER_PROTOCOL_F_REPLY_ACK, VHOST_USER_PROTOCOL_F_NET_MTU, VHOST_USER_PROTOCOL_F_BACKEND_REQ,
        VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD, VHOST_USER_PROTOCOL_F_HOST_NOTIFIER,
        VHOST_USER_PROTOCOL_F_RESET_DEVICE, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS,
        VHOST_USER_PROTOCOL_F_STATUS,
    };
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
        v |= 1ull << bits[i];
    return v;
}

int vhost_msg_buffer(struct vhost_dev *d)
{
    if (!d->in.payload && !(d->in.payload = malloc(VHOST_USER_MAX_PAYLOAD)))
        return -ENOMEM;
    return 0;
}

int vhost_conn_attach(struct vhost_dev *d, int fd)
{
    if (vhost_msg_buffer(d) < 0) {
        LOG_E("vhost-user %s: no memory for a connection's message buffer", d->name);
        return -ENOMEM;
    }
    d->fd = fd;
    d->in_got = 0;
    d->in.nfds = 0;
    d->paused = false;
    ev_io_init(&d->watch, read_cb, fd, EV_READ);
    d->watch.data = d;
    ev_io_start(d->loop, &d->watch);
    d->backoff = BACKOFF_MIN;
    return 0;
}

static void close_conn(struct vhost_dev *d, const char *why, bool notify)
{
    ev_timer_stop(d->loop, &d->closer);
    ev_timer_stop(d->loop, &d->resume_t);
    ev_timer_stop(d->loop, &d->partial);
    if (d->fd < 0)
        return;
    LOG_N("vhost-user %s: front-end disconnected (%s)", d->name, why);
    ev_io_stop(d->loop, &d->watch);
    shutdown(d->fd, SHUT_RDWR);   /* the front-end sees it even while vfe-vhostd-ha holds a copy */
    close(d->fd);
    d->fd = -1;
    d->paused = false;
    d->cur_state = VHOST_CUR_NONE;
    d->owed = false;
    d->serial++;   /* a GET_VRING_BASE still with the glue is void now */
    vhost_msg_release_fds(&d->in);
    d->in_got = 0;
    vhost_session_reset(d, true, notify);
    if (notify && d->cfg.ops->disconnected)
        d->cfg.ops->disconnected(d->cfg.ctx, d);
    if (notify)
        vhost_persist(d);   /* a successor must not continue a connection that ended */
    if (d->cfg.client)
        start_client(d);
    else if (d->lfd >= 0)
        ev_io_start(d->loop, &d->lwatch);
}

void vhost_conn_close(struct vhost_dev *d, const char *why)
{
    close_conn(d, why, true);
}

static void closer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhost_dev *d = w->data;
    vhost_conn_close(d, d->close_why);
}

void vhost_conn_close_later(struct vhost_dev *d, const char *why)
{
    if (d->fd < 0 || ev_is_active(&d->closer))
        return;
    ev_io_stop(d->loop, &d->watch);   /* nothing more is read from a broken connection */
    d->paused = true;                 /* and nothing resumes it */
    d->serial++;                      /* nor answers a request on it */
    d->close_why = why;
    ev_timer_set(&d->closer, 0., 0.);
    ev_timer_start(d->loop, &d->closer);
}

void vhost_conn_resume(struct vhost_dev *d)
{
    if (d->fd >= 0 && !d->paused)
        ev_io_start(d->loop, &d->watch);
}

static void partial_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhost_dev *d = w->data;
    if (d->fd < 0 || d->paused)
        return;
    ev_io_start(loop, &d->watch);
    read_cb(loop, &d->watch, EV_READ);
}

int vhost_msg_process(struct vhost_dev *d)
{
    if (d->cfg.ops->persist) {   /* from here a successor handles it again */
        d->cur_state = VHOST_CUR_RECEIVED;
        vhost_persist(d);
    }
    if (!d->in_consumed && vhost_msg_consume(d) < 0)
        return -1;
    int rc = vhost_session_handle(d);
    if (rc == 0 && d->fd >= 0 && !d->paused && d->cur_state == VHOST_CUR_RECEIVED)
        rc = vhost_msg_finish(d, 0, NULL, 0, false) < 0 ? -1 : 0;   /* no reply: persist the result */
    vhost_msg_release_fds(&d->in);
    d->in_got = 0;
    return rc;
}

#define PARTIAL_RETRY 0.001
#define PARTIAL_GIVE_UP 5.0   /* a message that never completes: the front-end is broken */

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct vhost_dev *d = w->data;
    for (int budget = 64; budget > 0 && d->fd >= 0 && !d->paused; budget--) {
        int r = vhost_msg_read(d);
        if (r != 2)
            d->partial_since = 0;
        if (r == 0)
            return;
        if (r == 2) {   /* the socket stays readable: wait on a timer, not on the watcher */
            if (d->partial_since == 0)
                d->partial_since = ev_now(loop);
            else if (ev_now(loop) - d->partial_since > PARTIAL_GIVE_UP) {
                vhost_conn_close(d, "a message never completed");
                return;
            }
            ev_io_stop(loop, &d->watch);
            ev_timer_set(&d->partial, PARTIAL_RETRY, 0.);
            ev_timer_start(loop, &d->partial);
            return;
        }
        if (r < 0) {
            vhost_conn_close(d, d->in_got ? "broken message" : "closed");
            return;
        }
        if (vhost_msg_process(d) < 0) {
            vhost_conn_close(d, "protocol error");
            return;
        }
    }
}

static int on_connected(struct vhost_dev *d, int fd)
{
    if (vhost_conn_attach(d, fd) < 0)
        return -ENOMEM;
    LOG_N("vhost-user %s: front-end connected on %s", d->name, d->path);
    if (d->cfg.ops->connected)
        d->cfg.ops->connected(d->cfg.ctx, d);
    return 0;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct vhost_dev *d = w->data;
    int fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    if (d->fd >= 0 && !d->paused && ev_is_active(&d->watch))
        read_cb(loop, &d->watch, EV_READ);   /* the old front-end may be gone already */
    if (d->fd >= 0) {   /* one front-end at a time */
        LOG_W("vhost-user %s: second front-end on %s refused", d->name, d->path);
        close(fd);
        return;
    }
    if (on_connected(d, fd) < 0)
        close(fd);
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vhost_dev *d = w->data;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, d->path, strlen(d->path) + 1);
    int fl;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && (fl = fcntl(fd, F_GETFL)) >= 0 &&
        fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 && on_connected(d, fd) == 0)
        return;
    if (fd >= 0)
        close(fd);
    LOG_D("vhost-user %s: %s not reachable, retry in %.1f s", d->name, d->path, d->backoff);
    ev_timer_set(&d->reconnect, d->backoff, 0.);
    ev_timer_start(loop, &d->reconnect);
    d->backoff = d->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : d->backoff * 2;
}

static void start_client(struct vhost_dev *d)
{
    ev_timer_set(&d->reconnect, d->backoff, 0.);
    ev_timer_start(d->loop, &d->reconnect);
}

void vhost_conn_watch_listener(struct vhost_dev *d)
{
    ev_io_init(&d->lwatch, accept_cb, d->lfd, EV_READ);
    d->lwatch.data = d;
    ev_io_start(d->loop, &d->lwatch);
}

int vhost_conn_listen(struct vhost_dev *d)
{
    const struct vhost_sock_perm *p = &d->cfg.perm;
    int rc = vfe_listener_open(&d->listener, d->path, p->mode ? p->mode : 0660, p->set_group ? p->group : (gid_t)-1,
                               4);
    if (rc < 0)
        return rc;
    d->lfd = d->listener.fd;
    ev_io_init(&d->lwatch, accept_cb, d->lfd, EV_READ);
    d->lwatch.data = d;
    ev_io_start(d->loop, &d->lwatch);
    return 0;
}

struct vhost_dev *vhost_dev_new(struct ev_loop *loop, const struct vhost_cfg *cfg, int *err)
{
    if (!cfg || !cfg->path || !cfg->ops || cfg->queue_pairs == 0 || cfg->queue_pairs > VHOST_MAX_QUEUE_PAIRS ||
        strlen(cfg->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        *err = -EINVAL;
        return NULL;
    }
    struct vhost_dev *d = calloc(1, sizeof(*d) + 2u * cfg->queue_pairs * sizeof(d->rings[0]));
    if (!d) {
        *err = -ENOMEM;
        return NULL;
    }
    d->loop = loop;
    d->cfg = *cfg;
    snprintf(d->path, sizeof(d->path), "%s", cfg->path);
    snprintf(d->name, sizeof(d->name), "%s", cfg->name ? cfg->name : cfg->path);
    d->cfg.path = d->path;
    d->cfg.name = d->name;
    d->offered = cfg->features | 1ull << VHOST_USER_F_PROTOCOL_FEATURES | 1ull << VHOST_F_LOG_ALL;
    d->proto_offered = proto_offered();
    d->lfd = d->fd = d->log_fd = d->backend_fd = -1;
    for (unsigned i = 0; i < vhost_nrings(d); i++)
        d->rings[i].kick_fd = d->rings[i].call_fd = d->rings[i].err_fd = -1;
    ev_timer_init(&d->reconnect, reconnect_cb, 0., 0.);
    d->reconnect.data = d;
    ev_timer_init(&d->closer, closer_cb, 0., 0.);
    d->closer.data = d;
    ev_timer_init(&d->resume_t, NULL, 0., 0.);
    ev_timer_init(&d->partial, partial_cb, 0., 0.);
    d->partial.data = d;
    d->backoff = BACKOFF_MIN;
    return d;
}

struct vhost_dev *vhost_dev_create(struct ev_loop *loop, const struct vhost_cfg *cfg, int *err)
{
    struct vhost_dev *d = vhost_dev_new(loop, cfg, err);
    if (!d)
        return NULL;
    if (cfg->client) {
        d->backoff = 0;   /* first attempt at once */
        start_client(d);
        d->backoff = BACKOFF_MIN;
    } else if ((*err = vhost_conn_listen(d)) < 0) {
        LOG_E("vhost-user %s: cannot listen on %s: %s", d->name, d->path, strerror(-*err));
        free(d->in.payload);
        free(d);
        return NULL;
    }
    *err = 0;
    return d;
}

void vhost_dev_destroy(struct vhost_dev *d)
{
    if (!d)
        return;
    d->cfg.client = false;      /* no reconnect from the close below */
    if (d->lfd >= 0)
        ev_io_stop(d->loop, &d->lwatch);
    close_conn(d, "device removed", false);
    ev_timer_stop(d->loop, &d->reconnect);
    if (d->lfd >= 0) {
        ev_io_stop(d->loop, &d->lwatch);
        shutdown(d->lfd, SHUT_RDWR);        /* a copy vfe-vhostd-ha holds accepts nothing more */
        vfe_listener_close(&d->listener);   /* removes the file only if it is still ours */
        d->lfd = -1;
    }
    free(d->in.payload);
    free(d);
}

void vhost_dev_abandon(struct vhost_dev *d)
{
    if (!d)
        return;
    ev_io_stop(d->loop, &d->watch);
    ev_io_stop(d->loop, &d->lwatch);
    ev_timer_stop(d->loop, &d->closer);
    ev_timer_stop(d->loop, &d->resume_t);
    ev_timer_stop(d->loop, &d->partial);
    ev_timer_stop(d->loop, &d->reconnect);
    vhost_msg_release_fds(&d->in);
    if (d->fd >= 0)
        close(d->fd);   /* no shutdown: the connection lives on in the other copies */
    d->fd = -1;
    vhost_session_reset(d, true, false);
    if (d->lfd >= 0)
        close(d->lfd);  /* the socket file stays: it is the successor's */
    free(d->in.payload);
    free(d);
}

bool vhost_connected(const struct vhost_dev *d) { return d->fd >= 0; }
int vhost_log_fd(const struct vhost_dev *d) { return d->log_fd; }
uint64_t vhost_features(const struct vhost_dev *d) { return d->features; }
uint64_t vhost_protocol_features(const struct vhost_dev *d) { return d->proto; }
uint8_t vhost_status(const struct vhost_dev *d) { return d->status; }

const struct vhost_ring *vhost_get_ring(const struct vhost_dev *d, uint16_t ring)
{
    return ring < vhost_nrings(d) ? &d->rings[ring] : NULL;
}

unsigned vhost_regions(const struct vhost_dev *d, const struct vhost_region **r)
{
    *r = d->regions;
    return d->nregions;
}

uint8_t *vhost_log(const struct vhost_dev *d, uint64_t *size)
{
    *size = d->log_size;
    return d->log_map ? d->log_map + (d->log_offset & 4095) : NULL;
}

static int backend_send(struct vhost_dev *d, uint32_t req, const void *payload, uint32_t size, int fd)
{
    if (d->backend_fd < 0)
        return -ENOTCONN;
    int rc = vhost_msg_send(d->backend_fd, req, VHOST_USER_VERSION, payload, size, fd >= 0 ? &fd : NULL,
                            fd >= 0 ? 1 : 0);
    if (rc < 0)
        LOG_W("vhost-user %s: backend request %u: %s", d->name, req, strerror(-rc));
    return rc;
}

int vhost_host_notifier(struct vhost_dev *d, uint16_t ring, int fd, uint64_t size, uint64_t offset)
{
    if (ring >= 2u * d->cfg.queue_pairs)
        return -EINVAL;
    if (!(d->proto & (1ull << VHOST_USER_PROTOCOL_F_HOST_NOTIFIER)) ||
        !(d->proto & (1ull << VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD)))
        return -ENOTSUP;
    struct vhost_user_notifier_area a = {ring | (fd < 0 ? VHOST_USER_VRING_NOFD : 0), size, offset};
    return backend_send(d, VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, &a, sizeof(a), fd);
}

int vhost_config_change(struct vhost_dev *d)
{
    return backend_send(d, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, NULL, 0, -1);
}
