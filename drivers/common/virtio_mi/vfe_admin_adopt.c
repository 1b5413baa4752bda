/* Export a running PCI admin queue, and adopt it in a restarted process
 * without resetting the PF (contract in vfe_admin_vq.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/virtio_ring.h>

#include "drivers/common/virtio_mi/vfe_admin_priv.h"
#include "drivers/common/virtio_mi/vfe_ha_blob.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "lib/log/vfe_log.h"

/* Blob layout, version 1 (offsets in bytes, little-endian). */
enum {
    B_QIDX = 8, B_QSIZE = 10, B_VEC = 12, B_NSLOTS = 14, B_IOVA = 16, B_MEMLEN = 24,
    B_AVAIL_IDX = 32, B_LAST_USED = 34, B_AVAIL_OFF = 36, B_USED_OFF = 40, B_SLOTS_OFF = 44,
    B_HEAD_LEN = 48,
    /* per slot */
    S_STATE = 0, S_NIDS = 1, S_ID0 = 2, S_ID1 = 4, S_WLEN = 6, S_CMD0 = 10, S_CMD1 = 11, S_RSVD = 12,
    S_LEN = 16,
};
enum { BS_FREE = 0, BS_IN_DEVICE = 1 };
#define CHAIN_IDS 2     /* every admin command: command bytes + result area */

_Static_assert(B_HEAD_LEN + S_LEN * VFE_ADMIN_MAX_SLOTS == VFE_ADMIN_BLOB_MAX, "blob size");

static const char WHAT[] = "admin queue";

/* The slot's chain is in the device: a live command or a quarantined one. */
static bool in_device(const struct vfe_admin_vq *aq, unsigned i)
{
    const struct admin_slot *s = &aq->slot[i];
    return s->state == SLOT_QUARANTINED || (s->state == SLOT_BUSY && s->req && s->req->state == REQ_INFLIGHT);
}

int vfe_admin_export(const struct vfe_admin_vq *aq, void *buf, size_t cap, size_t *len, int *memfd)
{
    if (!aq || !buf || !len || !memfd)
        return -EINVAL;
    if (aq->ops != &vfe_admin_pci_ops)
        return -ENOTSUP;
    const struct admin_pci *p = aq->priv;
    size_t need = B_HEAD_LEN + (size_t)S_LEN * aq->nslots;
    *len = need;
    if (cap < need)
        return -ENOSPC;
    uint8_t *b = buf;
    memset(b, 0, need);
    vfe_ha_blob_put_head(b, VFE_ADMIN_BLOB_MAGIC, VFE_ADMIN_BLOB_VERSION, (uint16_t)need);
    vfe_put_le16(b + B_QIDX, p->qidx);
    vfe_put_le16(b + B_QSIZE, p->vr.size);
    vfe_put_le16(b + B_VEC, p->vec);
    vfe_put_le16(b + B_NSLOTS, (uint16_t)aq->nslots);
    vfe_put_le64(b + B_IOVA, aq->iova);
    vfe_put_le64(b + B_MEMLEN, aq->mem_len);
    vfe_put_le16(b + B_AVAIL_IDX, vfe_vring_avail_idx(&p->vr));
    vfe_put_le16(b + B_LAST_USED, p->vr.last_used);
    vfe_put_le32(b + B_AVAIL_OFF, (uint32_t)(p->vr.avail_iova - aq->iova));
    vfe_put_le32(b + B_USED_OFF, (uint32_t)(p->vr.used_iova - aq->iova));
    vfe_put_le32(b + B_SLOTS_OFF, (uint32_t)aq->slots_off);
    for (unsigned i = 0; i < aq->nslots; i++) {
        uint8_t *s = b + B_HEAD_LEN + S_LEN * i;
        if (!in_device(aq, i))
            continue;
        struct vfe_vring_chain c;
        if (vfe_vring_find_chain(&p->vr, vfe_admin_slot_cookie((int)i), &c) < 0 || c.n != CHAIN_IDS) {
            LOG_E("admin vq: export: slot %u is in the device but its chain is not in the ring", i);
            return -EIO;
        }
        const uint8_t *cmd = aq->mem + aq->slots_off + (size_t)i * SLOT_STRIDE;
        s[S_STATE] = BS_IN_DEVICE;
        s[S_NIDS] = CHAIN_IDS;
        vfe_put_le16(s + S_ID0, c.ids[0]);
        vfe_put_le16(s + S_ID1, c.ids[1]);
        vfe_put_le32(s + S_WLEN, aq->slot[i].wlen);
        s[S_CMD0] = cmd[0];
        s[S_CMD1] = cmd[1];
    }
    *memfd = aq->memfd;
    return 0;
}

/* The blob, parsed and checked on its own (no device access yet). */
struct aq_rec {
    uint16_t qidx, qsize, vec, nslots, avail_idx, last_used;
    uint64_t iova, mem_len;
    uint32_t avail_off, used_off, slots_off;
    unsigned nchains;
    struct vfe_vring_chain chain[VFE_ADMIN_MAX_SLOTS];
    int chain_slot[VFE_ADMIN_MAX_SLOTS];
    uint8_t cmd[VFE_ADMIN_MAX_SLOTS][2];
};

#define REFUSE(rc, ...) do { LOG_W("admin queue snapshot refused: " __VA_ARGS__); return rc; } while (0)

static int parse_slot(struct aq_rec *r, unsigned i, const uint8_t *s)
{
    if (vfe_get_le32(s + S_RSVD) != 0)
        REFUSE(-EINVAL, "slot %u: reserved bytes set", i);
    if (s[S_STATE] == BS_FREE)
        return 0;
    if (s[S_STATE] != BS_IN_DEVICE)
        REFUSE(-EINVAL, "slot %u: state %u unknown", i, s[S_STATE]);
    if (s[S_NIDS] != CHAIN_IDS)
        REFUSE(-EINVAL, "slot %u: chain of %u descriptors, admin chains have %u", i, s[S_NIDS], CHAIN_IDS);
    uint32_t wlen = vfe_get_le32(s + S_WLEN);
    if (wlen == 0 || wlen > SLOT_RES_AREA)
        REFUSE(-EINVAL, "slot %u: result area of %u bytes (1..%u)", i, wlen, SLOT_RES_AREA);
    struct vfe_vring_chain *c = &r->chain[r->nchains];
    c->cookie = vfe_admin_slot_cookie((int)i);
    c->n = CHAIN_IDS;
    c->ids[0] = vfe_get_le16(s + S_ID0);
    c->ids[1] = vfe_get_le16(s + S_ID1);
    c->in_bytes = wlen;
    r->cmd[r->nchains][0] = s[S_CMD0];
    r->cmd[r->nchains][1] = s[S_CMD1];
    r->chain_slot[r->nchains++] = (int)i;
    return 0;
}

static int parse_blob(const void *blob, size_t len, struct aq_rec *r)
{
    uint16_t version;
    int rc = vfe_ha_blob_check_head(blob, len, VFE_ADMIN_BLOB_MAGIC, VFE_ADMIN_BLOB_VERSION, WHAT, &version);
    if (rc < 0)
        return rc;
    const uint8_t *b = blob;
    if (len < B_HEAD_LEN)
        REFUSE(-EINVAL, "%zu bytes, the head alone has %u", len, B_HEAD_LEN);
    memset(r, 0, sizeof(*r));
    r->qidx = vfe_get_le16(b + B_QIDX);
    r->qsize = vfe_get_le16(b + B_QSIZE);
    r->vec = vfe_get_le16(b + B_VEC);
    r->nslots = vfe_get_le16(b + B_NSLOTS);
    r->iova = vfe_get_le64(b + B_IOVA);
    r->mem_len = vfe_get_le64(b + B_MEMLEN);
    r->avail_idx = vfe_get_le16(b + B_AVAIL_IDX);
    r->last_used = vfe_get_le16(b + B_LAST_USED);
    r->avail_off = vfe_get_le32(b + B_AVAIL_OFF);
    r->used_off = vfe_get_le32(b + B_USED_OFF);
    r->slots_off = vfe_get_le32(b + B_SLOTS_OFF);
    if (r->qsize < 2 || r->qsize > 32768 || (r->qsize & (r->qsize - 1)))
        REFUSE(-EINVAL, "queue size %u is not a power of two in 2..32768", r->qsize);
    if (r->nslots == 0 || r->nslots > VFE_ADMIN_MAX_SLOTS || r->nslots > r->qsize / 2)
        REFUSE(-EINVAL, "%u slots (1..%u, at most half of the %u entries)", r->nslots, VFE_ADMIN_MAX_SLOTS,
               r->qsize);
    if (len != B_HEAD_LEN + (size_t)S_LEN * r->nslots)
        REFUSE(-EINVAL, "%zu bytes for %u slots, expected %zu", len, r->nslots,
               B_HEAD_LEN + (size_t)S_LEN * r->nslots);
    if (r->iova == 0 || (r->iova & (PAGE - 1)))
        REFUSE(-EINVAL, "IOVA %#" PRIx64 " is 0 or not page aligned", r->iova);
    /* the layout is a function of the size: the same one vfe_admin_open makes */
    size_t ring_bytes = vfe_vring_mem_size(r->qsize);
    size_t want_slots = (ring_bytes + PAGE - 1) & ~(size_t)(PAGE - 1);
    uint32_t want_avail = 16u * r->qsize;
    uint32_t want_used = (uint32_t)(((size_t)want_avail + 6 + 2u * r->qsize + 3) & ~(size_t)3);
    if (r->avail_off != want_avail || r->used_off != want_used || r->slots_off != want_slots)
        REFUSE(-EINVAL, "layout avail %#x used %#x slots %#x, a ring of %u has %#x %#x %#zx", r->avail_off,
               r->used_off, r->slots_off, r->qsize, want_avail, want_used, want_slots);
    if (r->mem_len != vfe_admin_mem_size(ring_bytes, r->nslots))
        REFUSE(-EINVAL, "memory of %" PRIu64 " bytes, %u slots on a ring of %u take %zu", r->mem_len, r->nslots,
               r->qsize, vfe_admin_mem_size(ring_bytes, r->nslots));
    if (r->iova + r->mem_len < r->iova)
        REFUSE(-EINVAL, "IOVA range wraps");
    for (unsigned i = 0; i < r->nslots; i++)
        if ((rc = parse_slot(r, i, b + B_HEAD_LEN + S_LEN * i)) < 0)
            return rc;
    return 0;
}

/* The device holds the queue exactly as the blob says. */
static int check_device(struct vfe_virtio_pci *vp, const struct aq_rec *r)
{
    const char *bdf = vp->t->bdf;
    uint16_t qidx, num;
    int rc = vfe_vpci_admin_queue(vp, &qidx, &num);
    if (rc < 0) {
        LOG_W("%s: admin queue snapshot refused: the device reports no admin queue (%d)", bdf, rc);
        return rc == -ENOENT || rc == -ENOTSUP ? -EPROTO : rc;
    }
    if (qidx != r->qidx) {
        LOG_W("%s: admin queue snapshot refused: queue %u, the device's admin queue is %u", bdf, r->qidx, qidx);
        return -EPROTO;
    }
    if (r->vec >= vp->msix_vectors) {
        LOG_W("%s: admin queue snapshot refused: vector %u beyond %u MSI-X vectors", bdf, r->vec,
              vp->msix_vectors);
        return -EPROTO;
    }
    struct vfe_vpci_queue_cfg q;
    if ((rc = vfe_vpci_queue_read(vp, qidx, &q)) < 0) {
        LOG_W("%s: admin queue snapshot: reading queue %u back: %d", bdf, qidx, rc);
        return rc;
    }
    const char *diff = !q.enabled ? "not enabled"
                       : q.size != r->qsize ? "size"
                       : q.desc != r->iova ? "descriptor address"
                       : q.avail != r->iova + r->avail_off ? "avail address"
                       : q.used != r->iova + r->used_off ? "used address"
                       : q.msix_vector != r->vec ? "MSI-X vector" : NULL;
    if (diff) {
        LOG_W("%s: admin queue snapshot refused: queue %u in the device differs (%s): size %u enabled %u "
              "desc %#" PRIx64 " avail %#" PRIx64 " used %#" PRIx64 " vector %u; snapshot: size %u desc %#" PRIx64
              " vector %u", bdf, qidx, diff, q.size, q.enabled, q.desc, q.avail, q.used, q.msix_vector, r->qsize,
              r->iova, r->vec);
        return -EPROTO;
    }
    return 0;
}

static int check_window(struct vfe_virtio_pci *vp, struct vfe_pf_iova *space, const struct aq_rec *r, int memfd)
{
    uint64_t wiova, wlen;
    bool mapped = false;
    if (vfe_pf_iova_window(space, VFE_PF_IOVA_ADMIN, &wiova, &wlen, &mapped) < 0) {
        LOG_W("%s: admin queue snapshot refused: the PF's IOVA space holds no admin window", vp->t->bdf);
        return -ENOENT;
    }
    if (wiova != r->iova || wlen < r->mem_len || !mapped) {
        LOG_W("%s: admin queue snapshot refused: admin window %#" PRIx64 "+%#" PRIx64 "%s, snapshot says %#" PRIx64
              "+%#" PRIx64, vp->t->bdf, wiova, wlen, mapped ? "" : " (unmapped)", r->iova, r->mem_len);
        return -EPROTO;
    }
    struct stat st;
    if (fstat(memfd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != r->mem_len) {
        LOG_W("%s: admin queue snapshot refused: memfd of %lld bytes, snapshot says %" PRIu64, vp->t->bdf,
              (long long)st.st_size, r->mem_len);
        return -EINVAL;
    }
    return 0;
}

/* Each inherited chain in the ring memory points at its own slot: the blob
 * and the memfd belong together. */
static int check_chains(struct vfe_admin_vq *aq, const struct admin_pci *p, const struct aq_rec *r)
{
    for (unsigned k = 0; k < r->nchains; k++) {
        int i = r->chain_slot[k];
        const struct vring_desc *d0 = &p->vr.desc[r->chain[k].ids[0]], *d1 = &p->vr.desc[r->chain[k].ids[1]];
        uint16_t f0 = le16toh(d0->flags), f1 = le16toh(d1->flags);
        if (le64toh(d0->addr) != vfe_admin_slot_iova(aq, i, 0) ||
            le64toh(d1->addr) != vfe_admin_slot_iova(aq, i, SLOT_CMD_AREA) || !(f0 & VRING_DESC_F_NEXT) ||
            le16toh(d0->next) != r->chain[k].ids[1] || (f0 & VRING_DESC_F_WRITE) || !(f1 & VRING_DESC_F_WRITE) ||
            le32toh(d1->len) != r->chain[k].in_bytes) {
            LOG_W("%s: admin queue snapshot refused: slot %d's descriptors %u,%u in the ring do not describe "
                  "that slot", p->vp->t->bdf, i, r->chain[k].ids[0], r->chain[k].ids[1]);
            return -EPROTO;
        }
    }
    return 0;
}

int vfe_admin_adopt(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                    const void *blob, size_t len, int memfd, struct vfe_admin_vq **out)
{
    if (!vp || !vp->t || !loop || !space || !blob || memfd < 0 || !out)
        return -EINVAL;
    struct aq_rec *r = malloc(sizeof(*r));
    if (!r)
        return -ENOMEM;
    int rc = parse_blob(blob, len, r);
    if (rc == 0)
        rc = check_device(vp, r);
    if (rc == 0)
        rc = check_window(vp, space, r, memfd);
    if (rc < 0) {
        free(r);
        return rc;
    }
    struct admin_pci *p = calloc(1, sizeof(*p));
    if (!p) {
        free(r);
        return -ENOMEM;
    }
    p->vp = vp;
    p->qidx = r->qidx;
    p->vec = r->vec;
    p->irq_fd = -1;
    p->space = space;
    struct vfe_admin_cfg cfg = {
        .loop = loop, .iova = r->iova, .ring_bytes = vfe_vring_mem_size(r->qsize), .nslots = r->nslots,
        .ops = &vfe_admin_pci_ops, .ops_priv = p,
    };
    struct vfe_admin_vq *aq;
    if ((rc = vfe_admin_create_on(&cfg, memfd, &aq)) < 0) {
        free(p);
        free(r);
        return rc;
    }
    uint16_t mem_avail = 0;
    rc = vfe_vring_adopt(&p->vr, r->qsize, aq->mem, r->iova, false, r->last_used, r->chain, r->nchains);
    if (rc == 0) {
        p->ring_ok = true;
        mem_avail = vfe_vring_avail_idx(&p->vr);
        if (mem_avail != r->avail_idx) {
            LOG_W("%s: admin queue snapshot refused: ring avail index %u, snapshot says %u (the ring moved on "
                  "after the export)", vp->t->bdf, mem_avail, r->avail_idx);
            rc = -EPROTO;
        }
    } else if (rc == -EPROTO) {
        LOG_W("%s: admin queue snapshot refused: the ring moved on after the export (its chains in flight do "
              "not match the ring's indices)", vp->t->bdf);
    } else if (rc != -ENOMEM) {
        LOG_W("%s: admin queue snapshot refused: its chains do not fit the ring (%d)", vp->t->bdf, rc);
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = check_chains(aq, p, r);
    if (rc < 0)
        goto fail;
    for (unsigned k = 0; k < r->nchains; k++) {
        struct admin_slot *s = &aq->slot[r->chain_slot[k]];
        s->state = SLOT_QUARANTINED;
        s->inherited = true;
        s->wlen = r->chain[k].in_bytes;
        snprintf(s->what, sizeof(s->what), "%02x/%02x", r->cmd[k][0], r->cmd[k][1]);
    }
    vfe_vring_enable_cb(&p->vr, true);
    p->irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->irq_fd < 0) {
        rc = -errno;
        goto fail;
    }
    struct vfe_transport *t = vp->t;
    if ((rc = t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, p->vec, 1, &p->irq_fd)) < 0) {
        LOG_E("%s: adopted admin queue: attaching MSI-X vector %u: %d", t->bdf, p->vec, rc);
        goto fail;
    }
    p->irq_attached = true;
    p->have_window = true;
    vfe_admin_set_irq_fd(aq, p->irq_fd);
    LOG_I("%s: admin queue %u adopted: size %u, %u slots (%u still in the device), vector %u, iova %#" PRIx64
          ", avail %u used %u", t->bdf, r->qidx, r->qsize, r->nslots, r->nchains, p->vec, r->iova, mem_avail,
          r->last_used);
    free(r);
    vfe_admin_poll(aq);
    *out = aq;
    return 0;
fail:
    free(r);
    vfe_admin_abandon(aq);
    return rc;
}
