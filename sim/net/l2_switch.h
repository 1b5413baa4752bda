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
#define SW_AGING_DEFAULT 300u      /* seconds, as IEEE 802.1D recommends */
#define SW_AGING_MAX 1000000u

struct sw_stats {
    uint64_t frames_in, unicast, flooded, filtered, runts;
    uint64_t learned;      /* new entries, and entries moved to another port */
    uint64_t aged;         /* entries dropped because they were not seen for the ageing time */
    uint64_t announces;    /* RARP announcements the device sent for a VF (sim_sw_announce) */
};

int sim_sw_create(struct sim *s);
void sim_sw_destroy(struct sim *s);

/* A frame arrives from port `src` (a function, or NULL for the uplink).
 * `pair` is the queue pair it was sent on (selects the receiver's rx queue). */
void sim_sw_input(struct sim *s, struct sim_fn *src, const uint8_t *frame, size_t len, unsigned pair);

/* Forget everything learned on fn (function removed: never for a stop or reset). */
void sim_sw_forget_port(struct sim *s, struct sim_fn *fn);

/* Learned port of mac: 1 and *port set (NULL = uplink) or 0 when unknown or
 * expired (an expired entry is dropped and counted in `aged`). */
int sim_sw_lookup(struct sim *s, const uint8_t mac[6], struct sim_fn **port);
const struct sw_stats *sim_sw_get_stats(struct sim *s);
/* Entries in the table, expired ones not yet dropped included. */
unsigned sim_sw_entries(struct sim *s);

/* The device announces mac from VF vf (after a migration): a broadcast RARP
 * request (ethertype 0x8035, 60 bytes) with source mac enters the switch
 * from vf's port, so every switch on the way learns mac there.  mac must be
 * unicast and not zero: -EINVAL.  0 once sent. */
#define SW_ETH_P_RARP 0x8035
#define SW_RARP_FRAME_LEN 60
int sim_sw_announce(struct sim *s, struct sim_fn *vf, const uint8_t mac[6]);
/* The announcement frame for mac (SW_RARP_FRAME_LEN bytes into out). */
void sim_sw_rarp_frame(uint8_t out[SW_RARP_FRAME_LEN], const uint8_t mac[6]);

#endif
