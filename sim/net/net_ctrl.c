/* virtio-net control queue: MQ VQ_PAIRS_SET and RX PROMISC/ALLMULTI. */
#include <endian.h>
#include <string.h>

#include "lib/log/vfe_log.h"
#include "sim/net/net_dev.h"
#include "sim/net/net_priv.h"

/* Command bytes we read: class, command and up to a few bytes of data. */
#define CTRL_MAX_IN 64

static uint8_t ctrl_handle(struct sim_fn *fn, const uint8_t *cmd, size_t len)
{
    if (len < 2)
        return VIRTIO_NET_ERR;
    uint8_t cls = cmd[0], op = cmd[1];
    const uint8_t *data = cmd + 2;
    size_t dlen = len - 2;

    if (cls == VIRTIO_NET_CTRL_MQ && op == VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET) {
        uint16_t max = le16toh(fn->net_cfg.max_virtqueue_pairs);
        uint16_t want;
        if (!sim_net_has_feature(fn, VIRTIO_NET_F_MQ) || dlen != 2)
            return VIRTIO_NET_ERR;
        memcpy(&want, data, 2);
        want = le16toh(want);
        if (want < 1 || want > max || want > SIM_MAX_QPAIRS)
            return VIRTIO_NET_ERR;
        fn->active_pairs = want;
        LOG_I("%s: %u queue pairs active", fn->bdf, want);
        return VIRTIO_NET_OK;
    }
    if (cls == VIRTIO_NET_CTRL_RX &&
        (op == VIRTIO_NET_CTRL_RX_PROMISC || op == VIRTIO_NET_CTRL_RX_ALLMULTI)) {
        if (dlen != 1 || data[0] > 1)
            return VIRTIO_NET_ERR;
        uint8_t bit = op == VIRTIO_NET_CTRL_RX_PROMISC ? 1 : 2;
        fn->rx_mode = data[0] ? (fn->rx_mode | bit) : (fn->rx_mode & ~bit);
        return VIRTIO_NET_OK;
    }
    LOG_D("%s: ctrl class %u command %u not supported", fn->bdf, cls, op);
    return VIRTIO_NET_ERR;
}

void sim_net_ctrl_process(struct sim_fn *fn, struct sim_queue *q)
{
    struct net_priv *p = sim_net_priv_get(fn);
    if (!p)
        return;
    struct vq_elem *e = &p->tx_elem;
    /* At most `size` chains can be pending, so the loop normally ends on an
     * empty ring; the bound only stops a driver that keeps refilling. */
    for (unsigned done = 0; done <= 2u * q->size; done++) {
        if (!sim_net_fn_can_fetch(fn))
            return;
        int rc = sim_vq_pop(q, e);
        if (rc < 0)
            return;
        if (rc == 0) {
            if (sim_vq_enable_kick(q))
                continue;
            return;
        }
        uint8_t cmd[CTRL_MAX_IN];
        size_t want = e->out_len < sizeof(cmd) ? (size_t)e->out_len : sizeof(cmd);
        long n = sim_vq_gather(fn, e, 0, cmd, want);
        uint8_t ack = VIRTIO_NET_ERR;
        /* Longer commands are ones we do not support anyway. */
        if (n == (long)e->out_len)
            ack = ctrl_handle(fn, cmd, (size_t)n);
        uint32_t used = 0;
        if (e->in_len >= 1 && sim_vq_scatter(fn, e, 0, &ack, 1) == 1)
            used = 1;
        else
            LOG_W("%s: ctrl command without room for the ack", fn->bdf);
        if (sim_vq_push(q, e->head, used) < 0)
            return;
    }
}
