/* Private state of net/ for one function (fn->net_priv). */
#ifndef SIM_NET_NET_PRIV_H
#define SIM_NET_NET_PRIV_H

#include <ev.h>
#include <stdint.h>

#include "sim/net/virtq_dev.h"

#define NET_HDR_MAX 12

struct net_priv {
    struct sim_fn *fn;
    struct vq_elem tx_elem;      /* TX and ctrl chains */
    struct vq_elem rx_elem;      /* RX chains (another function may be mid-TX) */
    uint8_t frame[SIM_MAX_FRAME + 1];
    uint64_t tx_pending;         /* queues whose batch ran out, bit = index */
    ev_timer resume;             /* zero timer: continue pending TX next loop turn */
};

struct net_priv *sim_net_priv_get(struct sim_fn *fn);
bool sim_net_has_feature(const struct sim_fn *fn, unsigned bit);
/* virtio_net_hdr length the driver expects (12 with VERSION_1 or MRG_RXBUF). */
size_t sim_net_hdr_len(const struct sim_fn *fn);
/* DRIVER_OK, no NEEDS_RESET, DMA allowed, not quiesced/frozen/stalled/removed. */
bool sim_net_fn_can_fetch(const struct sim_fn *fn);
/* Handle all pending chains of the control queue. */
void sim_net_ctrl_process(struct sim_fn *fn, struct sim_queue *q);

#endif
