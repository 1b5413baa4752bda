/* State behind s->sw: the switch table and the optional uplink. */
#ifndef SIM_NET_SW_PRIV_H
#define SIM_NET_SW_PRIV_H

#include "sim/net/l2_switch.h"

struct sw_table;
struct uplink;

struct sw_state {
    struct sw_table *tab;
    struct sw_stats stats;
    struct uplink *up;
};

#endif
