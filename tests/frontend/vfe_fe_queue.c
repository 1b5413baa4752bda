/* Rings: their place in guest memory, and the start / stop sequences QEMU
 * 7.2 sends for vhost-user-net (vhost_virtqueue_start / _stop). */
#include "tests/frontend/vfe_frontend_priv.h"

#include <linux/virtio_ring.h>

#include <errno.h>
#include <unistd.h>
#include <linux/virtio_config.h>

static uint16_t ring_size(const struct vfe_fe *fe)
{
    return fe->o.ring_size;
}

uint64_t vfe_fe_rx_buf_gpa(const struct vfe_fe *fe, unsigned pair, unsigned head)
{
    return fe->o.gpa_base + VFE_FE_GPA_HIGH + ((uint64_t)pair * ring_size(fe) + head) * fe->o.rx_buf_size;
}

int vfe_fe_rx_area(const struct vfe_fe *fe, unsigned pair, uint64_t *gpa, uint64_t *len)
{
    if (pair >= fe->o.pairs)
        return -EINVAL;
    *gpa = vfe_fe_rx_buf_gpa(fe, pair, 0);
    *len = (uint64_t)ring_size(fe) * fe->o.rx_buf_size;
    return 0;
}

uint64_t vfe_fe_used_gpa(const struct vfe_fe *fe, unsigned ring)
{
    return ring < FE_RINGS && fe->q[ring].laid_out ? fe->q[ring].ring.used_gpa : 0;
}

int vfe_fe_ring_area(const struct vfe_fe *fe, unsigned ring, uint64_t *gpa, uint64_t *len)
{
    if (ring >= 2 * fe->o.pairs)
        return -EINVAL;
    *gpa = fe->o.gpa_base + FE_RING_BASE_GPA + (uint64_t)ring * fe->ring_area_size;
    *len = fe->ring_area_size;
    return 0;
}

static int post_rx(struct vfe_fe *fe, unsigned pair)
{
    struct vfe_fe_ring *r = &fe->q[2 * pair].ring;
    int head, n = 0;
    while ((head = vfe_fe_ring_next_head(r)) >= 0) {
        struct vfe_fe_seg s = {vfe_fe_rx_buf_gpa(fe, pair, (unsigned)head), fe->o.rx_buf_size, true};
        if (vfe_fe_ring_add(r, &s, 1) < 0)
            break;
        n++;
    }
    vfe_fe_ring_publish(r);
    return n;
}

static int lay_out(struct vfe_fe *fe, unsigned ring, uint16_t base)
{
    struct fe_queue *q = &fe->q[ring];
    q->area_gpa = fe->o.gpa_base + FE_RING_BASE_GPA + (uint64_t)ring * fe->ring_area_size;
    void *mem = vfe_fe_host(fe, q->area_gpa, fe->ring_area_size);
    if (!mem)
        return -EFAULT;
    int rc = vfe_fe_ring_init(&q->ring, ring_size(fe), mem, q->area_gpa, base);
    if (rc < 0)
        return rc;
    q->laid_out = true;
    if (ring % 2 == 0)
        post_rx(fe, ring / 2);
    return 0;
}

static uint64_t qva(struct vfe_fe *fe, uint64_t gpa)
{
    return (uint64_t)(uintptr_t)vfe_fe_host(fe, gpa, 1);
}

int fe_set_ring_addr(struct vfe_fe *fe, unsigned ring, bool log)
{
    const struct vfe_fe_ring *r = &fe->q[ring].ring;
    struct vfe_fe_vring_addr a = {
        .index = ring, .flags = log ? VFE_FE_VRING_F_LOG : 0,
        .desc = qva(fe, r->desc_gpa), .used = qva(fe, r->used_gpa), .avail = qva(fe, r->avail_gpa),
        .log = log ? r->used_gpa : 0,
    };
    return fe_request(fe, VFE_FE_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, log);
}

static int set_state(struct vfe_fe *fe, uint32_t req, unsigned ring, uint32_t num)
{
    struct vfe_fe_vring_state s = {ring, num};
    return fe_request(fe, req, &s, sizeof(s), NULL, 0, false);
}

static int set_fd(struct vfe_fe *fe, uint32_t req, unsigned ring, int fd)
{
    uint64_t v = ring;
    return fe_request(fe, req, &v, sizeof(v), &fd, 1, false);
}

static bool rings_enableable(const struct vfe_fe *fe)
{
    return fe->features & (1ull << VFE_FE_F_PROTOCOL_FEATURES);
}

void fe_count_calls(struct vfe_fe *fe, unsigned ring)
{
    uint64_t n;
    if (fe->q[ring].call >= 0 && read(fe->q[ring].call, &n, sizeof(n)) == sizeof(n))
        fe->q[ring].calls += n;
}

int fe_kick(struct vfe_fe *fe, unsigned ring)
{
    if (fe->q[ring].notifier) {   /* the guest's doorbell write, straight to the device */
        *fe->q[ring].notifier = (uint16_t)ring;
        fe->q[ring].notifier_kicks++;
        return 0;
    }
    uint64_t one = 1;
    if (write(fe->q[ring].kick, &one, sizeof(one)) != sizeof(one))
        return -errno;
    fe->q[ring].kicks++;
    return 0;
}

int vfe_fe_start(struct vfe_fe *fe, const uint16_t *bases)
{
    unsigned n = 2 * fe->o.pairs;
    int rc = 0;
    if (fe->sock < 0)
        return -ENOTCONN;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        uint16_t base = bases ? bases[i] : 0;
        if (!bases || !fe->q[i].laid_out)
            rc = lay_out(fe, i, base);
        rc = rc ?: set_state(fe, VFE_FE_SET_VRING_NUM, i, ring_size(fe));
        rc = rc ?: set_state(fe, VFE_FE_SET_VRING_BASE, i, base);
        rc = rc ?: fe_set_ring_addr(fe, i, fe->logging);
        rc = rc ?: set_fd(fe, VFE_FE_SET_VRING_KICK, i, fe->q[i].kick);
        rc = rc ?: set_fd(fe, VFE_FE_SET_VRING_CALL, i, fe->q[i].call);
    }
    for (unsigned i = 0; i < n && rc == 0 && rings_enableable(fe); i++)
        rc = set_state(fe, VFE_FE_SET_VRING_ENABLE, i, 1);
    if (rc == 0)
        rc = fe_add_status(fe, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
    for (unsigned i = 0; i < n && rc == 0; i++)
        fe->q[i].started = true;
    /* rx buffers were posted before the device knew the ring */
    for (unsigned p = 0; p < fe->o.pairs && rc == 0; p++)
        rc = fe_kick(fe, 2 * p);
    return rc;
}

int vfe_fe_stop(struct vfe_fe *fe, uint16_t *bases)
{
    unsigned n = 2 * fe->o.pairs;
    int rc = fe->sock < 0 ? -ENOTCONN : 0;
    for (unsigned i = 0; i < n && rc == 0 && rings_enableable(fe); i++)
        rc = set_state(fe, VFE_FE_SET_VRING_ENABLE, i, 0);
    if (rc == 0 && (fe->proto & (1ull << VFE_FE_PF_STATUS))) {
        rc = fe_set_u64(fe, VFE_FE_SET_STATUS, 0, true);
        fe->status = 0;
    }
    for (unsigned i = 0; i < n && rc == 0; i++) {
        struct vfe_fe_vring_state s = {i, 0};
        rc = fe_send_msg(fe->sock, VFE_FE_GET_VRING_BASE, VFE_FE_VERSION, &s, sizeof(s), NULL, 0,
                         fe->o.timeout_ms);
        if (rc == 0) {
            rc = fe_read_reply(fe, VFE_FE_GET_VRING_BASE, &s, sizeof(s));
            rc = rc < 0 ? rc : (rc != sizeof(s) || s.index != i || s.num > 0xffff) ? -EPROTO : 0;
        }
        if (rc == 0 && bases)
            bases[i] = (uint16_t)s.num;
        if (rc == 0)
            fe->q[i].started = false;
        fe_notifier_drop(fe, i);   /* QEMU unmaps them at GET_VRING_BASE */
    }
    /* what the back-end used before it stopped */
    for (unsigned i = 0; i < n; i++)
        fe_count_calls(fe, i);
    return rc;
}

int vfe_fe_reconnect(struct vfe_fe *fe)
{
    int rc = fe_connect(fe);
    return rc < 0 ? rc : fe_negotiate(fe);
}

void vfe_fe_used_indices(struct vfe_fe *fe, uint16_t *bases)
{
    for (unsigned i = 0; i < 2 * fe->o.pairs && i < FE_RINGS; i++)
        bases[i] = fe->q[i].laid_out ? __atomic_load_n(&fe->q[i].ring.used->idx, __ATOMIC_ACQUIRE) : 0;
}

uint64_t vfe_fe_calls(struct vfe_fe *fe, unsigned ring)
{
    if (ring >= FE_RINGS)
        return 0;
    fe_count_calls(fe, ring);
    return fe->q[ring].calls;
}
