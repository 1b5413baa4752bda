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

/* Blob layout, version 2 (offsets in bytes, little-endian).  Only what is
 * fixed from vfe_admin_open() on: everything that moves is read from the ring
 * memory on adopt.  Version 1 (indices and chains per slot) is not read. */
enum {
    B_QIDX = 8, B_QSIZE = 10, B_VEC = 12, B_NSLOTS = 14, B_IOVA = 16, B_MEMLEN = 24,
    B_AVAIL_OFF = 32, B_USED_OFF = 36, B_SLOTS_OFF = 40, B_RSVD = 44,
    B_HEAD_LEN = 48,
};
#define CHAIN_IDS 2     /* every admin command: command bytes + result area */

_Static_assert(B_HEAD_LEN == VFE_ADMIN_BLOB_MAX, "blob size");

static const char WHAT[] = "admin queue";

int vfe_admin_export(const struct vfe_admin_vq *aq, void *buf, size_t cap, size_t *len, int *memfd)
{
    if (!aq || !buf || !len || !memfd)
        return -EINVAL;
    if (aq->ops != &vfe_admin_pci_ops)
        return -ENOTSUP;
    const struct admin_pci *p = aq->priv;
    *len = B_HEAD_LEN;
    if (cap < B_HEAD_LEN)
        return -ENOSPC;
    uint8_t *b = buf;
    memset(b, 0, B_HEAD_LEN);
    vfe_ha_blob_put_head(b, VFE_ADMIN_BLOB_MAGIC, VFE_ADMIN_BLOB_VERSION, B_HEAD_LEN);
    vfe_put_le16(b + B_QIDX, p->qidx);
    vfe_put_le16(b + B_QSIZE, p->vr.size);
    vfe_put_le16(b + B_VEC, p->vec);
    vfe_put_le16(b + B_NSLOTS, (uint16_t)aq->nslots);
    vfe_put_le64(b + B_IOVA, aq->iova);
    vfe_put_le64(b + B_MEMLEN, aq->mem_len);
    vfe_put_le32(b + B_AVAIL_OFF, (uint32_t)(p->vr.avail_iova - aq->iova));
    vfe_put_le32(b + B_USED_OFF, (uint32_t)(p->vr.used_iova - aq->iova));
    vfe_put_le32(b + B_SLOTS_OFF, (uint32_t)aq->slots_off);
    *memfd = aq->memfd;
    return 0;
}

/* The blob, parsed and checked on its own (no device access yet), then the
 * chains found in the ring memory. */
struct aq_rec {
    uint16_t qidx, qsize, vec, nslots;
    uint64_t iova, mem_len;
    uint32_t avail_off, used_off, slots_off;
    uint16_t avail_idx, used_idx;   /* read from the memory */
    unsigned nchains;
    struct vfe_vring_chain chain[VFE_ADMIN_MAX_SLOTS];
    int chain_slot[VFE_ADMIN_MAX_SLOTS];
    uint8_t cmd[VFE_ADMIN_MAX_SLOTS][2];
};

#define REFUSE(rc, ...) do { LOG_W("admin queue snapshot refused: " __VA_ARGS__); return rc; } while (0)

static int parse_blob(const void *blob, size_t len, struct aq_rec *r)
{
    uint16_t version;
    int rc = vfe_ha_blob_check_head(blob, len, VFE_ADMIN_BLOB_MAGIC, VFE_ADMIN_BLOB_VERSION, WHAT, &version);
    if (rc < 0)
        return rc;
    if (version != VFE_ADMIN_BLOB_VERSION)
        REFUSE(-EPROTO, "version %u (indices and chains in the blob) is no longer read, only %u", version,
               VFE_ADMIN_BLOB_VERSION);
    const uint8_t *b = blob;
    if (len != B_HEAD_LEN)
        REFUSE(-EINVAL, "%zu bytes, version %u has %u", len, version, B_HEAD_LEN);
    memset(r, 0, sizeof(*r));
    r->qidx = vfe_get_le16(b + B_QIDX);
    r->qsize = vfe_get_le16(b + B_QSIZE);
    r->vec = vfe_get_le16(b + B_VEC);
    r->nslots = vfe_get_le16(b + B_NSLOTS);
    r->iova = vfe_get_le64(b + B_IOVA);
    r->mem_len = vfe_get_le64(b + B_MEMLEN);
    r->avail_off = vfe_get_le32(b + B_AVAIL_OFF);
    r->used_off = vfe_get_le32(b + B_USED_OFF);
    r->slots_off = vfe_get_le32(b + B_SLOTS_OFF);
    if (vfe_get_le32(b + B_RSVD) != 0)
        REFUSE(-EINVAL, "reserved bytes set");
    if (r->qsize < 2 || r->qsize > 32768 || (r->qsize & (r->qsize - 1)))
        REFUSE(-EINVAL, "queue size %u is not a power of two in 2..32768", r->qsize);
    if (r->nslots == 0 || r->nslots > VFE_ADMIN_MAX_SLOTS || r->nslots > r->qsize / 2)
        REFUSE(-EINVAL, "%u slots (1..%u, at most half of the %u entries)", r->nslots, VFE_ADMIN_MAX_SLOTS,
               r->qsize);
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
        return -EPROTO;
    }
    return 0;
}

/* The slot whose area `off` (0: command, SLOT_CMD_AREA: result) starts at
 * iova, or -1. */
static int slot_at(const struct vfe_admin_vq *aq, uint64_t iova, size_t off)
{
    uint64_t base = aq->iova + aq->slots_off + off;
    if (iova < base || (iova - base) % SLOT_STRIDE)
        return -1;
    uint64_t i = (iova - base) / SLOT_STRIDE;
    return i < aq->nslots ? (int)i : -1;
}

#define BAD_RING(...) do { LOG_W("%s: admin queue snapshot refused: " __VA_ARGS__); return -EPROTO; } while (0)

/* Everything the dead owner published and the device has not returned yet
 * (used index .. avail index in the memory) becomes an inherited chain; each
 * must be an admin command chain in a slot of its own. */
static int scan_ring(const struct vfe_admin_vq *aq, const char *bdf, struct aq_rec *r)
{
    const struct vring_desc *desc = (const void *)aq->mem;
    const struct vring_avail *avail = (const void *)(aq->mem + r->avail_off);
    struct vring_used *used = (void *)(aq->mem + r->used_off);
    uint16_t mask = (uint16_t)(r->qsize - 1);
    r->avail_idx = le16toh(__atomic_load_n(&avail->idx, __ATOMIC_ACQUIRE));
    r->used_idx = le16toh(__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE));
    uint16_t n = (uint16_t)(r->avail_idx - r->used_idx);
    if (n > r->nslots)
        BAD_RING("avail index %u is %u entries ahead of used index %u, at most %u commands can be in the "
                 "device", bdf, r->avail_idx, n, r->used_idx, r->nslots);
    bool slot_taken[VFE_ADMIN_MAX_SLOTS] = {false};
    for (uint16_t k = 0; k < n; k++) {
        uint16_t pos = (uint16_t)(r->used_idx + k);
        uint16_t h = le16toh(avail->ring[pos & mask]);
        if (h >= r->qsize)
            BAD_RING("avail entry %u names descriptor %u beyond the ring of %u", bdf, pos, h, r->qsize);
        const struct vring_desc *d0 = &desc[h];
        uint16_t f0 = le16toh(d0->flags), d1i = le16toh(d0->next);
        if (f0 != VRING_DESC_F_NEXT || d1i >= r->qsize || d1i == h)
            BAD_RING("avail entry %u: descriptor %u (flags %#x next %u) does not start a command chain", bdf,
                     pos, h, f0, d1i);
        const struct vring_desc *d1 = &desc[d1i];
        uint16_t f1 = le16toh(d1->flags);
        uint32_t l0 = le32toh(d0->len), l1 = le32toh(d1->len);
        int i = slot_at(aq, le64toh(d0->addr), 0);
        if (i < 0 || slot_at(aq, le64toh(d1->addr), SLOT_CMD_AREA) != i)
            BAD_RING("avail entry %u: descriptors %u,%u (%#" PRIx64 ", %#" PRIx64 ") point outside the command "
                     "slots or into two", bdf, pos, h, d1i, (uint64_t)le64toh(d0->addr),
                     (uint64_t)le64toh(d1->addr));
        if (f1 != VRING_DESC_F_WRITE || l0 == 0 || l0 > SLOT_CMD_AREA || l1 == 0 || l1 > SLOT_RES_AREA)
            BAD_RING("avail entry %u: slot %d's chain %u,%u has flags %#x/%#x, lengths %u/%u (1..%u/1..%u)",
                     bdf, pos, i, h, d1i, f0, f1, l0, l1, SLOT_CMD_AREA, SLOT_RES_AREA);
        if (slot_taken[i])
            BAD_RING("avail entry %u: slot %d is named by two chains in the device", bdf, pos, i);
        for (unsigned c = 0; c < r->nchains; c++)
            for (unsigned j = 0; j < CHAIN_IDS; j++)
                if (r->chain[c].ids[j] == h || r->chain[c].ids[j] == d1i)
                    BAD_RING("avail entry %u: descriptors %u,%u shared with another chain", bdf, pos, h, d1i);
        slot_taken[i] = true;
        struct vfe_vring_chain *c = &r->chain[r->nchains];
        c->cookie = vfe_admin_slot_cookie(i);
        c->n = CHAIN_IDS;
        c->ids[0] = h;
        c->ids[1] = d1i;
        c->in_bytes = l1;
        const uint8_t *cmd = aq->mem + aq->slots_off + (size_t)i * SLOT_STRIDE;
        r->cmd[r->nchains][0] = cmd[0];
        r->cmd[r->nchains][1] = cmd[1];
        r->chain_slot[r->nchains++] = i;
    }
    return 0;
}

int vfe_admin_adopt_device(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
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
    if ((rc = scan_ring(aq, vp->t->bdf, r)) < 0)
        goto fail;
    /* chains the device returned are done, whether or not the owner reaped them */
    rc = vfe_vring_adopt(&p->vr, r->qsize, aq->mem, r->iova, false, r->used_idx, r->chain, r->nchains);
    if (rc < 0) {
        LOG_W("%s: admin queue snapshot refused: the ring's chains cannot be taken over (%d)", vp->t->bdf, rc);
        if (rc != -ENOMEM)
            rc = -EPROTO;
        goto fail;
    }
    p->ring_ok = true;
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
    LOG_I("%s: admin queue %u adopted: size %u, %u slots (%u still in the device), vector %u, iova %#" PRIx64
          ", avail %u used %u", t->bdf, r->qidx, r->qsize, r->nslots, r->nchains, p->vec, r->iova, r->avail_idx,
          r->used_idx);
    free(r);
    vfe_admin_pci_post_device(p);   /* no watcher yet: the loop's half starts them */
    *out = aq;
    return 0;
fail:
    free(r);
    vfe_admin_abandon(aq);   /* nothing of the loop's was started: safe off the loop */
    return rc;
}

void vfe_admin_adopt_watch(struct vfe_admin_vq *aq)
{
    vfe_admin_open_watch(aq);
    vfe_admin_poll(aq);   /* completions the device wrote before the new eventfd was attached */
}

int vfe_admin_adopt(struct vfe_virtio_pci *vp, struct ev_loop *loop, struct vfe_pf_iova *space,
                    const void *blob, size_t len, int memfd, struct vfe_admin_vq **out)
{
    int rc = vfe_admin_adopt_device(vp, loop, space, blob, len, memfd, out);
    if (rc == 0)
        vfe_admin_adopt_watch(*out);
    return rc;
}
