/* net/ of the whole sim: the switch and the optional uplink. */
#include "lib/log/vfe_log.h"
#include "sim/net/l2_switch.h"
#include "sim/net/uplink.h"

int sim_net_init(struct sim *s)
{
    int rc = sim_sw_create(s);
    if (rc < 0)
        return rc;
    if (s->opt.uplink) {
        rc = sim_uplink_open(s, s->opt.uplink);
        if (rc < 0) {
            sim_sw_destroy(s);
            return rc;
        }
    }
    return 0;
}

void sim_net_fini(struct sim *s)
{
    sim_uplink_close(s);
    sim_sw_destroy(s);
}
