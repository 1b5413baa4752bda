/* Rate-limited logging for messages a peer can trigger at will (accept
 * failures, refused connections): at most `burst` messages per `interval`
 * seconds from one limiter; the first message let through after a drop
 * reports how many were left out. */
#ifndef SIM_CORE_SIM_RATELIMIT_H
#define SIM_CORE_SIM_RATELIMIT_H

#include <ev.h>
#include <stdbool.h>

struct sim_ratelimit {
    ev_tstamp interval;
    unsigned burst;
    ev_tstamp start;         /* of the current window */
    unsigned n;              /* messages let through in it */
    unsigned suppressed;     /* dropped since the last one let through */
};

#define SIM_RATELIMIT_INIT(iv, b) { .interval = (iv), .burst = (b) }

/* true: log now, *suppressed = messages dropped before this one (then reset). */
bool sim_ratelimit_ok(struct sim_ratelimit *r, ev_tstamp now, unsigned *suppressed);

#endif
