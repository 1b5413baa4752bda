/* UDP uplink: one Ethernet frame per datagram between two sims, on loopback
 * or over a directly attached link (never through a gateway). */
#ifndef SIM_NET_UPLINK_H
#define SIM_NET_UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include "sim/sim.h"

struct uplink_stats {
    uint64_t tx_packets, tx_bytes, tx_drops;
    uint64_t rx_packets, rx_bytes, rx_drops;
};

/* Parse "udp:[LOCALADDR:]LOCALPORT,HOST:PORT".  Without LOCALADDR the local
 * end is 127.0.0.1 and HOST must resolve to 127.0.0.0/8; with a numeric
 * LOCALADDR (an address of this network namespace, e.g. a veth end) HOST may
 * be any unicast IPv4 address.  0 or -EINVAL. */
int sim_uplink_parse(const char *spec, uint16_t *lport, uint32_t *local_addr_be, uint32_t *peer_addr_be,
                     uint16_t *rport);
/* Open the socket and watch it on s->loop.  0 or -errno. */
int sim_uplink_open(struct sim *s, const char *spec);
void sim_uplink_close(struct sim *s);
bool sim_uplink_present(struct sim *s);
/* Send one frame to the peer (counted, dropped on error). */
void sim_uplink_send(struct sim *s, const uint8_t *frame, size_t len);
const struct uplink_stats *sim_uplink_get_stats(struct sim *s);

#endif
