/*
 * A guest-side virtio-net driver for tests, the bench and demos: it drives a
 * (sim) VF only through the device transport, vfe_vpci and vfe_vring, with the
 * guest's memory in a memfd DMA-mapped at one IOVA.  Single-threaded, polling
 * or eventfd interrupts.  Not a data path: every frame is copied.
 *
 * Queues: rx of pair p is 2p, tx is 2p+1, the control queue (if any) follows
 * the device's max_virtqueue_pairs.  MSI-X vector 0 is config, q+1 is queue q.
 */
#ifndef TESTS_GUEST_NET_H
#define TESTS_GUEST_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "drivers/common/virtio/vfe_virtio_pci.h"
#include "tests/lib/sim_proc.h"

#define GUEST_NET_HDR_LEN    12            /* struct virtio_net_hdr_v1 */
#define GUEST_NET_MAX_FRAME  (9216 + 64)
#define GUEST_NET_MAX_PAIRS  16
#define GUEST_NET_CONFIG_IRQ 0xffff        /* guest_net_irq_count(): the config vector */

struct guest_net_opts {
    unsigned pairs;          /* 1..16; 0 means 1 */
    uint16_t ring_size;      /* data queues, power of two; 0 means 256 */
    bool mrg_rxbuf;
    bool event_idx;
    uint32_t rx_buf_size;    /* per RX buffer, header included; 0: 2048 with mrg_rxbuf,
                                else room for the largest frame */
    uint32_t tx_buf_size;    /* per TX slot, header included; 0: room for the largest frame */
    bool use_irq;            /* eventfds on the MSI-X vectors */
    bool use_ioeventfd;      /* kick through registered ioeventfds (falls back to doorbell writes) */
};

struct guest_net;

/* Guest memory that guest_net_open() carves up for these options. */
size_t guest_net_mem_needed(const struct guest_net_opts *o);

/* Map gm at iova_base, reset, negotiate, set up and fill the queues, DRIVER_OK,
 * and with pairs > 1 activate them on the control queue.  NULL with errno set
 * on failure (the device is left reset).  o may be NULL for the defaults.
 * t and gm stay owned by the caller and must outlive the guest_net. */
struct guest_net *guest_net_open(struct vfe_transport *t, struct guest_mem *gm, uint64_t iova_base,
                                 const struct guest_net_opts *o);
/* Reset the device, detach interrupts and ioeventfds, unmap, free. */
void guest_net_close(struct guest_net *g);

void guest_net_mac(const struct guest_net *g, uint8_t mac[6]);
uint64_t guest_net_features(const struct guest_net *g);     /* negotiated */
uint16_t guest_net_mtu(const struct guest_net *g);          /* 0 without VIRTIO_NET_F_MTU */
/* Device status byte (e.g. to see VIRTIO_CONFIG_S_NEEDS_RESET) or -errno. */
int guest_net_status(struct guest_net *g);
struct vfe_virtio_pci *guest_net_vpci(struct guest_net *g);

/* Queue one frame (a header is prepended) and kick if the device wants it.
 * 0, -ENOSPC (ring full after reclaiming), -EINVAL (bad pair or length). */
int guest_net_send(struct guest_net *g, unsigned pair, const void *frame, size_t len);
/* Completed TX chains taken back (count), or -EINVAL. */
int guest_net_reclaim_tx(struct guest_net *g, unsigned pair);
/* Wait up to timeout_ms for one frame: its length (copied into buf), -ETIMEDOUT,
 * -EMSGSIZE (longer than cap: dropped), -EPROTO (device returned garbage). */
int guest_net_recv(struct guest_net *g, unsigned pair, void *buf, size_t cap, int timeout_ms);

/* One control-queue command: 0 on VIRTIO_NET_OK, -EIO on VIRTIO_NET_ERR,
 * -ETIMEDOUT, -ENOTSUP without a control queue. */
int guest_net_ctrl(struct guest_net *g, uint8_t cls, uint8_t cmd, const void *data, size_t len,
                   int timeout_ms);

/* Interrupts seen on queue qidx's vector (or GUEST_NET_CONFIG_IRQ), and
 * doorbells rung for queue qidx. */
uint64_t guest_net_irq_count(struct guest_net *g, uint16_t qidx);
uint64_t guest_net_kick_count(const struct guest_net *g, uint16_t qidx);

/* For fault tests: post one device-readable descriptor with any address on
 * the pair's TX queue and kick.  0 or -errno. */
int guest_net_send_raw_desc(struct guest_net *g, unsigned pair, uint64_t iova, uint32_t len);

#endif
