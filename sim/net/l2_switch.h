/*
 * The sim's L2 switch (s->sw): ports are the sim's functions (PF and VFs)
 * and the optional UDP uplink.  Source-MAC learning into a bounded table
 * (oldest entry replaced), unicast to the learned port, else to the function
 * whose configured MAC matches, else flood; broadcast/multicast flood; never
 * back to the source port.
 */
#ifndef SIM_NET_L2_SWITCH_H
#define SIM_NET_L2_SWITCH_H

#include <stddef.h>
#include <stdint.h>

#include "sim/sim.h"

#define SW_MAC_TABLE_SIZE 4096
#define ETH_HDR_LEN 14

struct sw_stats {
    uint64_t frames_in, unicast, flooded, filtered, runts;
};

int sim_sw_create(struct sim *s);
void sim_sw_destroy(struct sim *s);

/* A frame arrives from port `src` (a function, or NULL for the uplink).
 * `pair` is the queue pair it was sent on (selects the receiver's rx queue). */
void sim_sw_input(struct sim *s, struct sim_fn *src, const uint8_t *frame, size_t len, unsigned pair);

/* Forget everything learned on fn (function going away). */
void sim_sw_forget_port(struct sim *s, struct sim_fn *fn);

/* Learned port of mac: 1 and *port set (NULL = uplink) or 0 when unknown. */
int sim_sw_lookup(struct sim *s, const uint8_t mac[6], struct sim_fn **port);
const struct sw_stats *sim_sw_get_stats(struct sim *s);

#endif
