/*
 * Accepting on a listening socket without ever spinning.
 *
 * A failed accept4() that will fail again at once (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM, or any error not caused by one peer) stops the read watcher and
 * retries on a timer, SIM_ACCEPT_RETRY_S later: the connection stays queued
 * in the backlog meanwhile.  Failures are logged rate-limited.
 *
 * Ownership: the acceptor does not own the listening fd; it owns its two
 * watchers.  on_conn runs from the loop (never inside sim_acceptor_start)
 * and owns the fd it is given (non-blocking, close-on-exec); it may not stop
 * or free its acceptor (the accept loop goes on after it returns).
 */
#ifndef SIM_CORE_SIM_ACCEPTOR_H
#define SIM_CORE_SIM_ACCEPTOR_H

#include <ev.h>
#include <stdbool.h>

#include "sim/core/sim_ratelimit.h"

#define SIM_ACCEPT_RETRY_S 0.2
#define SIM_ACCEPT_PER_WAKEUP 16

struct sim_acceptor;
typedef void sim_accept_cb(struct sim_acceptor *a, int fd);

struct sim_acceptor {
    struct ev_loop *loop;
    ev_io io;
    ev_timer retry;
    char what[48];                /* names the socket in the log */
    sim_accept_cb *on_conn;
    void *data;                   /* the owner's */
    struct sim_ratelimit rl;
    unsigned long failures;       /* accept4 errors that paused accepting */
    bool running;
};

void sim_acceptor_start(struct sim_acceptor *a, struct ev_loop *loop, int lfd, const char *what,
                        sim_accept_cb *on_conn, void *data);
void sim_acceptor_stop(struct sim_acceptor *a);

/* Log a refused connection, rate-limited on the acceptor's limiter. */
void sim_acceptor_log_refused(struct sim_acceptor *a, const char *why);

#endif
