/*
 * Direct mode: a function without a managed PF admin queue (QEMU's
 * virtio-net-pci, or a VF whose PF vfe does not drive) is programmed through
 * its own common configuration, as a plain virtio driver would.
 *
 *   start: reset, ACKNOWLEDGE|DRIVER, features, every ready ring (size,
 *          addresses, vector q+1, enable), config vector 0, bus master,
 *          DRIVER_OK.  Virtio has no register for a split ring's next avail
 *          index: a device starts every ring at 0, so a start with another
 *          base is refused (-EOPNOTSUPP, logged) before anything is written.
 *   stop:  reset (the device stops all DMA once status reads back 0), then
 *          each ring's used index, read from guest memory, is its saved
 *          index (docs/real-host.md: exact for a device that consumes in
 *          order; otherwise the buffers it took but had not completed are
 *          offered again).
 * Reset completion is polled from a timer, never waited for in a call: the
 * status register is read asynchronously (one read at a time).
 */
#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

#include <errno.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "lib/log/vfe_log.h"

#define DIRECT_RESET_TICKS 2000   /* polls of 1 ms */

/* Features that need the control queue, which vfe does not run in direct mode. */
#define CTRL_FEATURES ((1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_CTRL_RX) |                         \
                       (1ull << VIRTIO_NET_F_CTRL_VLAN) | (1ull << VIRTIO_NET_F_CTRL_RX_EXTRA) |                  \
                       (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE) | (1ull << VIRTIO_NET_F_MQ) |                        \
                       (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR) | (1ull << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |        \
                       (1ull << VIRTIO_NET_F_RSS) | (1ull << VIRTIO_NET_F_HASH_REPORT))

static void poll_finish(struct vdpa_vf *v, int rc)
{
    ev_timer_stop(v->loop, &v->dpoll);
    if (v->dpoll_reading)
        vfe_transport_cancel_reads(v->t, v);
    v->dpoll_reading = false;
    void (*next)(struct vdpa_vf *, int) = v->dnext;
    v->dnext = NULL;
    next(v, rc);
}

/* One answer of the status register (done: it reads 0). */
static void poll_result(struct vdpa_vf *v, int rc, bool done)
{
    if (rc == 0 && !done)
        return;   /* the next tick asks again */
    poll_finish(v, rc);
}

static void status_in(void *ctx, int err, const void *data, size_t len)
{
    struct vdpa_vf *v = ctx;
    v->dpoll_reading = false;
    poll_result(v, err, !err && len == 1 && *(const uint8_t *)data == 0);
}

/* The status register is read without waiting (the answer comes through the
 * VF's drain, one read at a time); kernel VFIO reads it at once (an MMIO
 * read).  The ticks bound the wait, answered or not. */
static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vdpa_vf *v = w->data;
    if (!--v->dpoll_left) {
        poll_finish(v, -ETIMEDOUT);
        return;
    }
    if (v->dpoll_reading)
        return;
    int rc = vfe_transport_read_async(v->t, v->vp.common.bar, v->vp.common.offset + VFE_CC_STATUS, 1, status_in, v);
    if (rc == 0) {
        v->dpoll_reading = true;
        return;
    }
    bool done = false;
    if (rc == -EOPNOTSUPP)
        rc = vfe_vpci_reset_done(&v->vp, &done);
    poll_result(v, rc, done);
}

/* Reset the device; next(v, err) from the timer once status reads back 0. */
static int reset_then(struct vdpa_vf *v, void (*next)(struct vdpa_vf *, int))
{
    vdpa_posted_watch(v);   /* the status reads' answers are drained from the loop */
    int rc = vfe_vpci_reset(&v->vp);
    if (rc < 0)
        return rc;
    v->dnext = next;
    v->dpoll_left = DIRECT_RESET_TICKS;
    ev_timer_init(&v->dpoll, poll_cb, 0.001, 0.001);
    v->dpoll.data = v;
    ev_timer_start(v->loop, &v->dpoll);
    return 0;
}

void vdpa_direct_cancel(struct vdpa_vf *v)
{
    ev_timer_stop(v->loop, &v->dpoll);
    v->dnext = NULL;
    if (v->dpoll_reading)
        vfe_transport_cancel_reads(v->t, v);
    v->dpoll_reading = false;
}

static int program(struct vdpa_vf *v)
{
    struct vfe_virtio_pci *vp = &v->vp;
    uint64_t want = (v->dfeatures & v->dev_features & ~CTRL_FEATURES) | (1ull << VIRTIO_F_VERSION_1) |
                    (v->dev_features & (1ull << VIRTIO_F_ACCESS_PLATFORM));
    int rc = vfe_vpci_add_status(vp, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    if (rc == 0)
        rc = vfe_vpci_negotiate(vp, want);
    if (rc < 0) {
        LOG_E("%s: direct mode: features %#llx refused by the device: %s", v->t->bdf, (unsigned long long)want,
              strerror(-rc));
        return rc;
    }
    for (unsigned q = 0; q < v->nrings; q++) {
        if (!(v->dmask & (1ull << q)))
            continue;
        const struct vdpa_ring *r = &v->rings[q].dring;
        uint16_t max = 0;
        if ((rc = vfe_vpci_queue_max(vp, (uint16_t)q, &max)) < 0)
            return rc;
        if (r->size > max) {
            LOG_E("%s: direct mode: ring %u of %u entries, the device takes at most %u", v->t->bdf, q, r->size,
                  max);
            return -EINVAL;
        }
        if ((rc = vfe_vpci_queue_setup(vp, (uint16_t)q, r->size, r->desc, r->avail, r->used, (uint16_t)(q + 1))) < 0 ||
            (rc = vfe_vpci_queue_enable(vp, (uint16_t)q)) < 0)
            return rc;
    }
    if ((rc = vfe_vpci_set_config_vector(vp, 0)) < 0 || (rc = vfe_vpci_enable_bus_master(vp)) < 0)
        return rc;
    return vfe_vpci_add_status(vp, VIRTIO_CONFIG_S_DRIVER_OK);
}

static void start_reset(struct vdpa_vf *v, int err)
{
    if (!err)
        err = program(v);
    if (err) {
        LOG_E("%s: direct mode start failed: %s", v->t->bdf, strerror(-err));
        vfe_vpci_reset(&v->vp);
        v->state = VDPA_VF_STOPPED;
    } else {
        v->state = VDPA_VF_RUNNING;
        LOG_I("%s: running (direct mode, rings %#llx)", v->t->bdf, (unsigned long long)v->dmask);
    }
    vdpa_vf_finish(v, err);
}

int vdpa_direct_start(struct vdpa_vf *v, uint64_t features, const struct vdpa_ring *rings, unsigned nrings)
{
    uint64_t mask = 0;
    for (unsigned q = 0; q < nrings; q++) {
        if (!rings[q].ready)
            continue;
        if (rings[q].base) {
            LOG_E("%s: direct mode cannot start ring %u at index %u: virtio has no register for it (the guest "
                  "driver must reset the device)", v->t->bdf, q, rings[q].base);
            return -EOPNOTSUPP;
        }
        v->rings[q].dring = rings[q];
        mask |= 1ull << q;
    }
    v->dmask = mask;
    v->dfeatures = features;
    v->state = VDPA_VF_STARTING;
    int rc = reset_then(v, start_reset);
    if (rc < 0)
        v->state = VDPA_VF_STOPPED;
    return rc;
}

static void stop_reset(struct vdpa_vf *v, int err)
{
    if (err) {
        LOG_E("%s: direct mode: reset did not complete (%s): ring indices unknown", v->t->bdf, strerror(-err));
    } else {
        v->nsaved = 0;
        for (unsigned q = 0; q < VDPA_MAX_RINGS; q++) {
            if (!(v->dmask & (1ull << q)))
                continue;
            const uint8_t *p = v->has_guest ? v->guest.host(v->guest.ctx, v->rings[q].dring.used + 2, 2) : NULL;
            if (!p) {
                LOG_E("%s: direct mode: used ring %u at %#llx is not in guest memory", v->t->bdf, q,
                      (unsigned long long)v->rings[q].dring.used);
                err = -EFAULT;
                break;
            }
            v->saved_avail[q] = (uint16_t)(p[0] | p[1] << 8);
            v->nsaved = q + 1;
        }
        if (!err)
            LOG_I("%s: stopped (direct mode: device reset), %u rings saved from their used index", v->t->bdf,
                  v->nsaved);
    }
    v->state = VDPA_VF_STOPPED;
    if (v->log_active && v->log_mode == VDPA_LOG_SOFTWARE)
        vdpa_sw_final(v);
    vdpa_vf_finish(v, err);
}

int vdpa_direct_stop(struct vdpa_vf *v)
{
    v->state = VDPA_VF_STOPPING;
    int rc = reset_then(v, stop_reset);
    if (rc < 0)
        v->state = VDPA_VF_RUNNING;
    return rc;
}
