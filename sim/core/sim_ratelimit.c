/* Rate-limited logging (see sim_ratelimit.h). */
#include "sim/core/sim_ratelimit.h"

bool sim_ratelimit_ok(struct sim_ratelimit *r, ev_tstamp now, unsigned *suppressed)
{
    if (now - r->start >= r->interval || now < r->start) {
        r->start = now;
        r->n = 0;
    }
    if (r->n >= r->burst) {
        r->suppressed++;
        return false;
    }
    r->n++;
    *suppressed = r->suppressed;
    r->suppressed = 0;
    return true;
}
