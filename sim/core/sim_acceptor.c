/* Accepting without spinning (see sim_acceptor.h). */
#include "sim/core/sim_acceptor.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log/vfe_log.h"

/* Errors that concern one peer only: the next accept may well succeed. */
static bool per_peer(int e)
{
    return e == ECONNABORTED || e == EPROTO || e == EPERM || e == EINTR;
}

static void pause_accepting(struct sim_acceptor *a, int e)
{
    ev_io_stop(a->loop, &a->io);
    ev_timer_set(&a->retry, SIM_ACCEPT_RETRY_S, 0.);
    ev_timer_start(a->loop, &a->retry);
    a->failures++;
    unsigned dropped;
    if (sim_ratelimit_ok(&a->rl, ev_now(a->loop), &dropped))
        LOG_W("%s: accept: %s; paused, retrying every %d ms (%u similar messages suppressed)", a->what,
              strerror(e), (int)(SIM_ACCEPT_RETRY_S * 1000), dropped);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sim_acceptor *a = w->data;
    (void)loop;
    (void)revents;
    for (unsigned i = 0; i < SIM_ACCEPT_PER_WAKEUP && a->running; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            a->on_conn(a, fd);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (per_peer(errno))
            continue;
        pause_accepting(a, errno);
        return;
    }
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sim_acceptor *a = w->data;
    (void)revents;
    if (a->running)
        ev_io_start(loop, &a->io);   /* a queued peer makes it fire again */
}

void sim_acceptor_start(struct sim_acceptor *a, struct ev_loop *loop, int lfd, const char *what,
                        sim_accept_cb *on_conn, void *data)
{
    a->loop = loop;
    a->on_conn = on_conn;
    a->data = data;
    a->failures = 0;
    a->rl = (struct sim_ratelimit)SIM_RATELIMIT_INIT(10.0, 3);
    snprintf(a->what, sizeof(a->what), "%s", what);
    ev_io_init(&a->io, io_cb, lfd, EV_READ);
    a->io.data = a;
    ev_timer_init(&a->retry, retry_cb, SIM_ACCEPT_RETRY_S, 0.);
    a->retry.data = a;
    a->running = true;
    ev_io_start(loop, &a->io);
}

void sim_acceptor_stop(struct sim_acceptor *a)
{
    if (!a->running)
        return;
    a->running = false;
    ev_io_stop(a->loop, &a->io);
    ev_timer_stop(a->loop, &a->retry);
}

void sim_acceptor_log_refused(struct sim_acceptor *a, const char *why)
{
    unsigned dropped;
    if (sim_ratelimit_ok(&a->rl, ev_now(a->loop), &dropped))
        LOG_W("%s: connection refused: %s (%u similar messages suppressed)", a->what, why, dropped);
}
