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

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/pci_regs.h>
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

static void prog_cancel(struct vdpa_vf *v);

void vdpa_direct_cancel(struct vdpa_vf *v)
{
    prog_cancel(v);
    ev_timer_stop(v->loop, &v->dpoll);
    v->dnext = NULL;
    if (v->dpoll_reading)
        vfe_transport_cancel_reads(v->t, v);
    v->dpoll_reading = false;
}

/*
 * Programming a start, without a synchronous read: every register is written
 * (posted over vfio-user), and what the device must confirm is read with
 * asynchronous reads that follow the writes in order, so each read answers
 * for the state the writes before it left.  Four rounds:
 *   1. ACKNOWLEDGE|DRIVER, driver features, FEATURES_OK; read back status,
 *      the PCI command register and every ring's maximum size;
 *   2. checks; every ring's size, addresses and vector, the config vector;
 *      read back each ring's size and vector and the config vector;
 *   3. checks; enable the rings, bus master, DRIVER_OK; read back status;
 *   4. DRIVER_OK kept (and no NEEDS_RESET): running (the device took every
 *      write before it, as a synchronous start would leave it).
 * A round's reads all answered (or the transport timeout) moves on, from the
 * VF's drain: never inside vdpa_direct_start.  Kernel VFIO has no
 * asynchronous read: its reads (MMIO, no device round trip) are made in the
 * round itself.
 */
enum { RD_STATUS, RD_CMD, RD_CFGVEC, RD_RING };   /* ring q: RD_RING + 2q (size), + 1 (vector) */
#define PROG_READS (RD_RING + 2 * VDPA_MAX_RINGS)

struct dread {
    struct dprog *p;
    bool pending;
    uint16_t val;
};

struct dprog {
    struct vdpa_vf *v;
    unsigned round;
    unsigned pending;
    int err;
    uint8_t status;            /* written at the end of round 1 */
    ev_timer tmo;
    struct dread rd[PROG_READS];
};

static void prog_round(struct dprog *p);

static void prog_cancel(struct vdpa_vf *v)
{
    struct dprog *p = v->dprog;
    if (!p)
        return;
    ev_timer_stop(v->loop, &p->tmo);
    for (unsigned i = 0; i < PROG_READS; i++)
        if (p->rd[i].pending)
            vfe_transport_cancel_reads(v->t, &p->rd[i]);
    free(p);
    v->dprog = NULL;
}

static void read_in(void *ctx, int err, const void *data, size_t len)
{
    struct dread *r = ctx;
    struct dprog *p = r->p;
    r->pending = false;
    if (!err && (len == 1 || len == 2))
        r->val = len == 1 ? *(const uint8_t *)data : (uint16_t)(((const uint8_t *)data)[0] | ((const uint8_t *)data)[1] << 8);
    else if (!p->err)
        p->err = err ? err : -EPROTO;
    if (--p->pending == 0) {
        ev_timer_stop(p->v->loop, &p->tmo);
        prog_round(p);
    }
}

static void prog_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dprog *p = w->data;
    LOG_E("%s: direct mode: the device did not answer %u reads of the start within %d ms", p->v->t->bdf,
          p->pending, p->v->t->timeout_ms);
    for (unsigned i = 0; i < PROG_READS; i++)
        if (p->rd[i].pending)
            vfe_transport_cancel_reads(p->v->t, &p->rd[i]);
    memset(p->rd, 0, sizeof(p->rd));
    p->pending = 0;
    p->err = -ETIMEDOUT;
    prog_round(p);
}

/* Read len (1 or 2) bytes of region idx at off into slot i. */
static int prog_read(struct dprog *p, unsigned i, uint32_t idx, uint64_t off, size_t len)
{
    struct dread *r = &p->rd[i];
    r->p = p;
    int rc = vfe_transport_read_async(p->v->t, idx, off, len, read_in, r);
    if (rc == 0) {
        r->pending = true;
        p->pending++;
        return 0;
    }
    if (rc != -EOPNOTSUPP)
        return rc;
    uint8_t b[2] = {0, 0};
    rc = p->v->t->ops->region_read(p->v->t, idx, off, b, len);
    r->val = (uint16_t)(b[0] | b[1] << 8);
    return rc;
}

static int cc_read(struct dprog *p, unsigned i, uint32_t off, size_t len)
{
    const struct vfe_vpci_window *w = &p->v->vp.common;
    return prog_read(p, i, w->bar, (uint64_t)w->offset + off, len);
}

static int round1(struct dprog *p)
{
    struct vdpa_vf *v = p->v;
    struct vfe_virtio_pci *vp = &v->vp;
    uint64_t want = (v->dfeatures & v->dev_features & ~CTRL_FEATURES) | (1ull << VIRTIO_F_VERSION_1) |
                    (v->dev_features & (1ull << VIRTIO_F_ACCESS_PLATFORM));
    int rc;
    if (want & ~v->dev_features) {
        LOG_E("%s: direct mode: features %#llx not offered by the device", v->t->bdf,
              (unsigned long long)(want & ~v->dev_features));
        return -EINVAL;
    }
    /* after the reset the status is 0: nothing to read before adding bits */
    p->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
    if ((rc = vfe_vpci_set_status(vp, p->status)) < 0 || (rc = vfe_vpci_set_driver_features(vp, want)) < 0)
        return rc;
    p->status |= VIRTIO_CONFIG_S_FEATURES_OK;
    if ((rc = vfe_vpci_set_status(vp, p->status)) < 0 || (rc = cc_read(p, RD_STATUS, VFE_CC_STATUS, 1)) < 0 ||
        (rc = prog_read(p, RD_CMD, VFE_REGION_CONFIG, PCI_COMMAND, 2)) < 0)
        return rc;
    for (unsigned q = 0; q < v->nrings; q++) {
        if (!(v->dmask & (1ull << q)))
            continue;
        if ((rc = vfe_vpci_queue_select(vp, (uint16_t)q)) < 0 || (rc = cc_read(p, RD_RING + 2 * q, VFE_CC_Q_SIZE, 2)) < 0)
            return rc;
    }
    return 0;
}

static int round2(struct dprog *p)
{
    struct vdpa_vf *v = p->v;
    if (!(p->rd[RD_STATUS].val & VIRTIO_CONFIG_S_FEATURES_OK)) {
        LOG_E("%s: direct mode: the device refused features %#llx", v->t->bdf, (unsigned long long)v->dfeatures);
        return -EIO;
    }
    int rc;
    for (unsigned q = 0; q < v->nrings; q++) {
        if (!(v->dmask & (1ull << q)))
            continue;
        const struct vdpa_ring *r = &v->rings[q].dring;
        uint16_t max = p->rd[RD_RING + 2 * q].val;
        if (max == 0 || r->size > max) {
            LOG_E("%s: direct mode: ring %u of %u entries, the device takes at most %u", v->t->bdf, q, r->size, max);
            return max ? -EINVAL : -ENOENT;
        }
        if ((rc = vfe_vpci_queue_write(&v->vp, (uint16_t)q, r->size, r->desc, r->avail, r->used, (uint16_t)(q + 1))) < 0 ||
            (rc = cc_read(p, RD_RING + 2 * q, VFE_CC_Q_SIZE, 2)) < 0 ||
            (rc = cc_read(p, RD_RING + 2 * q + 1, VFE_CC_Q_MSIX, 2)) < 0)
            return rc;
    }
    if ((rc = vfe_vpci_config_vector_write(&v->vp, 0)) < 0)
        return rc;
    return cc_read(p, RD_CFGVEC, VFE_CC_MSIX, 2);
}

static int round3(struct dprog *p)
{
    struct vdpa_vf *v = p->v;
    int rc;
    for (unsigned q = 0; q < v->nrings; q++) {
        if (!(v->dmask & (1ull << q)))
            continue;
        if (p->rd[RD_RING + 2 * q].val != v->rings[q].dring.size) {
            LOG_E("%s: direct mode: ring %u: the device kept size %u instead of %u", v->t->bdf, q,
                  p->rd[RD_RING + 2 * q].val, v->rings[q].dring.size);
            return -EIO;
        }
        if (p->rd[RD_RING + 2 * q + 1].val == VFE_VIRTIO_MSI_NO_VECTOR) {
            LOG_E("%s: direct mode: ring %u: MSI-X vector %u refused", v->t->bdf, q, q + 1);
            return -ENOSPC;
        }
    }
    if (p->rd[RD_CFGVEC].val == VFE_VIRTIO_MSI_NO_VECTOR) {
        LOG_E("%s: direct mode: config MSI-X vector 0 refused", v->t->bdf);
        return -ENOSPC;
    }
    for (unsigned q = 0; q < v->nrings; q++)
        if ((v->dmask & (1ull << q)) && (rc = vfe_vpci_queue_enable(&v->vp, (uint16_t)q)) < 0)
            return rc;
    uint16_t cmd = htole16((uint16_t)(p->rd[RD_CMD].val | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
    if ((rc = vfe_cfg_write(v->t, PCI_COMMAND, &cmd, sizeof(cmd))) < 0)
        return rc;
    p->status |= VIRTIO_CONFIG_S_DRIVER_OK;
    if ((rc = vfe_vpci_set_status(&v->vp, p->status)) < 0)
        return rc;
    return cc_read(p, RD_STATUS, VFE_CC_STATUS, 1);
}

/* DRIVER_OK taken: the device runs the rings once this read is answered. */
static int round4(struct dprog *p)
{
    uint16_t st = p->rd[RD_STATUS].val;
    if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) || (st & VIRTIO_CONFIG_S_NEEDS_RESET)) {
        LOG_E("%s: direct mode: status %#x after DRIVER_OK", p->v->t->bdf, st);
        return -EIO;
    }
    return 0;
}

static void start_done(struct vdpa_vf *v, int err)
{
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

/* Run rounds until one waits for the device, fails, or the last is done. */
static void prog_round(struct dprog *p)
{
    struct vdpa_vf *v = p->v;
    int err = p->err;
    static int (*const rounds[])(struct dprog *) = {round1, round2, round3, round4};
    while (!err && p->pending == 0 && p->round < sizeof(rounds) / sizeof(rounds[0]))
        err = rounds[p->round++](p);
    if (!err && p->pending) {
        ev_timer_set(&p->tmo, v->t->timeout_ms / 1000.0, 0);
        ev_timer_start(v->loop, &p->tmo);
        return;
    }
    prog_cancel(v);   /* reads outstanding after an error are forgotten */
    start_done(v, err);
}

static void start_reset(struct vdpa_vf *v, int err)
{
    if (err) {
        start_done(v, err);
        return;
    }
    struct dprog *p = calloc(1, sizeof(*p));
    if (!p) {
        start_done(v, -ENOMEM);
        return;
    }
    p->v = v;
    ev_init(&p->tmo, prog_timeout);
    p->tmo.data = p;
    v->dprog = p;
    prog_round(p);
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
