/* virtio-net device model of one function: per-function private state and the
 * receive entry point used by the switch. */
#ifndef SIM_NET_NET_DEV_H
#define SIM_NET_NET_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "sim/sim.h"

/* TX chains handled per queue before yielding to the loop. */
#define NET_TX_BATCH 256

/* Deliver one Ethernet frame to fn's receive side.  `pair` is a hint for
 * the receive queue (taken modulo the active pairs).  Counts rx_packets/
 * rx_bytes or rx_drops on fn.  0 or -errno (dropped). */
int sim_net_deliver(struct sim_fn *fn, const uint8_t *frame, size_t len, unsigned pair);

/* Queue-pair hint for a frame from the uplink: hash of its MAC addresses. */
unsigned sim_net_l2_hash(const uint8_t *frame, size_t len);

/* Index of the control queue of fn, or -1 when it has none. */
int sim_net_ctrl_index(const struct sim_fn *fn);

#endif
