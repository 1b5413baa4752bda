/* Internals shared by the guest_net files. */
#ifndef TESTS_GUEST_NET_PRIV_H
#define TESTS_GUEST_NET_PRIV_H

#include "drivers/common/virtio/vfe_vring.h"
#include "tests/lib/guest/guest_net.h"

#define GN_CTRL_RING   64u
#define GN_CTRL_BUF    4096u     /* command at 0, ack at GN_CTRL_ACK */
#define GN_CTRL_ACK    2048u
#define GN_RAW_COOKIE  ((void *)(uintptr_t)0x100000)   /* beyond any slot cookie */

struct gn_queue {
    bool ready;
    uint16_t idx;
    struct vfe_vring vr;
    uint8_t *buf_va;         /* ring-size slots of buf_size bytes */
    uint64_t buf_iova;
    uint32_t buf_size;
    uint16_t *free_slots;    /* TX: stack of unused slots */
    uint16_t nfree;
    uint32_t notify_region;
    uint64_t notify_off;
    int irq_fd;
    uint64_t irqs;
    int kick_fd;             /* registered ioeventfd, -1 if none */
    uint64_t kicks;
};

struct guest_net {
    struct vfe_transport *t;
    struct guest_mem *gm;
    uint64_t iova_base;
    struct guest_net_opts o;
    struct vfe_virtio_pci vp;
    bool vp_ok, dma_mapped;
    unsigned nvec;           /* MSI-X vectors attached, 0 if none */
    int cfg_irq_fd;
    uint64_t cfg_irqs;
    size_t alloc_off;        /* bump allocator in guest memory */

    uint64_t features;
    uint8_t mac[6];
    uint16_t mtu, max_pairs;

    struct gn_queue q[2 * GUEST_NET_MAX_PAIRS];
    bool has_ctrl, ctrl_broken;
    uint16_t ctrl_idx;
    struct gn_queue ctrl;
    uint8_t *ctrl_buf;
    uint64_t ctrl_iova;
};

/* Cookies for slot-backed chains: never NULL. */
static inline void *gn_slot_cookie(uint16_t slot) { return (void *)(uintptr_t)(slot + 1u); }
static inline uintptr_t gn_cookie_slot(void *c) { return (uintptr_t)c - 1u; }

struct gn_queue *gn_queue_of(struct guest_net *g, uint16_t qidx);
void gn_kick(struct guest_net *g, struct gn_queue *q);
/* Put RX slot back on its ring (not published). */
int gn_rx_post(struct gn_queue *q, uint16_t slot);
/* Wait (poll the used ring, or the queue's eventfd) at most ms for used entries. */
void gn_wait_used(struct guest_net *g, struct gn_queue *q, int ms);
long gn_now_ms(void);

#endif
