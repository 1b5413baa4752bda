/* net/ of the whole sim: the switch and the optional uplink. */
#include "lib/log/vfe_log.h"
#include "sim/net/l2_switch.h"
#include "sim/net/uplink.h"

int sim_net_init(struct sim *s)
{
    int rc = sw_create(s);
    if (rc < 0)
        return rc;
    if (s->opt.uplink) {
        rc = uplink_open(s, s->opt.uplink);
        if (rc < 0) {
            sw_destroy(s);
            return rc;
        }
    }
    return 0;
}

void sim_net_fini(struct sim *s)
{
    uplink_close(s);
    sw_destroy(s);
}
