/* vfe_admin_open: the admin queue of a virtio-pci PF on a real split ring. */
#include "drivers/common/virtio_mi/vfe_admin_vq.h"
#include "drivers/common/virtio_mi/vfe_admin_priv.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

#define ADMIN_QUEUE_SIZE_MAX 64


static int pci_add(void *priv, const struct vfe_sg *sg, unsigned out, unsigned in, void *cookie)
{
    struct admin_pci *p = priv;
    return vfe_vring_add(&p->vr, sg, out, in, cookie);
}

static void pci_kick(void *priv)
{
    struct admin_pci *p = priv;
    if (vfe_vring_publish(&p->vr)) {
        struct vfe_transport *t = p->vp->t;
        uint16_t v = htole16(p->qidx);
        int rc = p->have_db ? t->ops->region_write(t, p->db_region, p->db_off, &v, sizeof(v))
                            : vfe_vpci_queue_notify(p->vp, p->qidx);
        if (rc < 0)
            LOG_E("%s: admin queue notify failed: %d", p->vp->t->bdf, rc);
    }
}

static void *pci_get_used(void *priv, uint32_t *len)
{
    struct admin_pci *p = priv;
    return vfe_vring_get_used(&p->vr, len);
}

static void replies_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_pci *p = w->data;
    if (vfe_transport_drain(p->vp->t) < 0) {   /* broken: nothing more will come */
        ev_io_stop(loop, w);
        LOG_E("%s: PF connection lost: its admin queue doorbells are unanswered", p->vp->t->bdf);
    }
}

void vfe_admin_pci_post_device(struct admin_pci *p)
{
    struct vfe_transport *t = p->vp->t;
    /* read once here: a kick must not read the device (queue_notify_off) */
    p->have_db = vfe_vpci_queue_notify_addr(p->vp, p->qidx, &p->db_region, &p->db_off) == 0;
    if (vfe_transport_watch_fd(t) < 0)
        return;   /* kernel VFIO: a doorbell write does not wait on the device */
    int rc = vfe_transport_set_posted(t, true);
    if (rc < 0)
        LOG_W("%s: doorbell writes stay synchronous: %s", t->bdf, strerror(-rc));
}

void vfe_admin_pci_watch_replies(struct admin_pci *p, struct ev_loop *loop)
{
    struct vfe_transport *t = p->vp->t;
    int fd = vfe_transport_watch_fd(t);
    if (fd < 0 || !t->posted || p->loop)
        return;
    p->loop = loop;
    ev_io_init(&p->replies, replies_cb, fd, EV_READ);
    p->replies.data = p;
    ev_io_start(loop, &p->replies);
}

void vfe_admin_pci_post_writes(struct admin_pci *p, struct ev_loop *loop)
{
    vfe_admin_pci_post_device(p);
    vfe_admin_pci_watch_replies(p, loop);
}

static void stop_replies(struct admin_pci *p)
{
    if (p->loop)
        ev_io_stop(p->loop, &p->replies);
}

static void pci_fini(void *priv)
{
    struct admin_pci *p = priv;
    stop_replies(p);
    struct vfe_transport *t = p->vp->t;
    if (p->irq_attached) {
        int none = -1;
        t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, p->vec, 1, &none);
    }
    if (p->irq_fd >= 0)
        close(p->irq_fd);
    if (p->have_window)
        vfe_pf_iova_release(p->space, VFE_PF_IOVA_ADMIN);
    if (p->ring_ok)
        vfe_vring_fini(&p->vr);
    free(p);
}

static void pci_abandon(void *priv)
{
    struct admin_pci *p = priv;
    stop_replies(p);
    if (p->irq_fd >= 0)
        close(p->irq_fd);
    if (p->ring_ok)
        vfe_vring_fini(&p->vr);
    free(p);
}

const struct vfe_admin_ring_ops vfe_admin_pci_ops = {
    .add = pci_add, .kick = pci_kick, .get_used = pci_get_used, .fini = pci_fini, .abandon = pci_abandon,
};

static uint16_t pow2_floor(uint16_t v)
{
    uint16_t p = 1;
    while ((uint32_t)p * 2 <= v)
        p *= 2;
    return v ? p : 0;
}

int vfe_admin_open_device(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                          struct vfe_admin_vq **out)
{
    if (!vp || !vp->t || !loop || !space || !out)
        return -EINVAL;
    struct vfe_transport *t = vp->t;
    uint16_t qidx, num, qmax;
    int rc = vfe_vpci_admin_queue(vp, &qidx, &num);
    if (rc < 0)
        return rc;
    if (num == 0) {
        LOG_E("%s: device has no admin queue", t->bdf);
        return -ENOTSUP;
    }
    rc = vfe_vpci_queue_max(vp, qidx, &qmax);
    if (rc < 0)
        return rc;
    uint16_t size = pow2_floor(qmax < ADMIN_QUEUE_SIZE_MAX ? qmax : ADMIN_QUEUE_SIZE_MAX);
    if (size < 2) {
        LOG_E("%s: admin queue %u has size %u", t->bdf, qidx, qmax);
        return -ENODEV;
    }
    uint32_t vec = (uint32_t)qidx + 1;
    if (vec >= vp->msix_vectors) {
        LOG_E("%s: admin queue vector %u beyond %u MSI-X vectors", t->bdf, vec, vp->msix_vectors);
        return -ENOTSUP;
    }

    struct admin_pci *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->vp = vp;
    p->qidx = qidx;
    p->vec = (uint16_t)vec;
    p->irq_fd = -1;
    p->space = space;
    unsigned nslots = size / 2 < VFE_ADMIN_MAX_SLOTS ? size / 2 : VFE_ADMIN_MAX_SLOTS;
    size_t ring_bytes = vfe_vring_mem_size(size);
    uint64_t iova;
    rc = vfe_pf_iova_alloc(space, VFE_PF_IOVA_ADMIN, vfe_admin_mem_size(ring_bytes, nslots), &iova);
    if (rc < 0) {
        LOG_E("%s: no IOVA window for the admin queue: %s", t->bdf, strerror(-rc));
        free(p);
        return rc;
    }
    p->have_window = true;
    struct vfe_admin_cfg cfg = {
        .loop = loop, .iova = iova, .ring_bytes = ring_bytes, .nslots = nslots,
        .ops = &vfe_admin_pci_ops, .ops_priv = p,
    };
    struct vfe_admin_vq *aq;
    rc = vfe_admin_create(&cfg, &aq);
    if (rc < 0) {
        vfe_pf_iova_release(space, VFE_PF_IOVA_ADMIN);
        free(p);
        return rc;
    }
    int memfd;
    void *mem;
    vfe_admin_mem(aq, &memfd, &mem, NULL);
    rc = vfe_pf_iova_map(space, VFE_PF_IOVA_ADMIN, memfd, 0, VFE_DMA_READ | VFE_DMA_WRITE);
    if (rc < 0)
        goto fail;
    rc = vfe_vring_init(&p->vr, size, mem, iova, false);
    if (rc < 0)
        goto fail;
    p->ring_ok = true;
    vfe_vring_enable_cb(&p->vr, true);
    rc = vfe_vpci_queue_setup(vp, qidx, size, p->vr.desc_iova, p->vr.avail_iova, p->vr.used_iova, p->vec);
    if (rc < 0) {
        LOG_E("%s: admin queue %u setup: %d", t->bdf, qidx, rc);
        goto fail;
    }
    p->irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->irq_fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, p->vec, 1, &p->irq_fd);
    if (rc < 0) {
        LOG_E("%s: attaching MSI-X vector %u: %d", t->bdf, p->vec, rc);
        goto fail;
    }
    p->irq_attached = true;
    rc = vfe_vpci_queue_enable(vp, qidx);
    if (rc < 0) {
        LOG_E("%s: enabling admin queue %u: %d", t->bdf, qidx, rc);
        goto fail;
    }
    LOG_I("%s: admin queue %u size %u, %u slots, vector %u, iova 0x%lx", t->bdf, qidx, size, nslots, p->vec,
          (unsigned long)iova);
    vfe_admin_pci_post_device(p);
    *out = aq;
    return 0;
fail:
    vfe_admin_close(aq);   /* nothing of the loop's was started: safe off the loop */
    return rc;
}

void vfe_admin_open_watch(struct vfe_admin_vq *aq)
{
    struct admin_pci *p = aq->priv;
    vfe_admin_set_irq_fd(aq, p->irq_fd);
    vfe_admin_pci_watch_replies(p, aq->loop);
}

int vfe_admin_open(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                   struct vfe_admin_vq **out)
{
    int rc = vfe_admin_open_device(vp, loop, space, out);
    if (rc == 0)
        vfe_admin_open_watch(*out);
    return rc;
}
