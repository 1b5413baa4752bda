/* Inside of the admin queue engine, shared by the command core
 * (vfe_admin_vq.c) and the PCI ring with its export/adopt (vfe_admin_pci.c,
 * vfe_admin_adopt.c).  Nothing outside drivers/common/virtio_mi includes it. */
#ifndef VFE_ADMIN_PRIV_H
#define VFE_ADMIN_PRIV_H

#include <sys/queue.h>

#include "drivers/common/virtio_mi/vfe_admin_vq.h"
#include "drivers/common/virtio_mi/vfe_admin_wire.h"

#define PAGE 4096u
#define SLOT_CMD_AREA PAGE
#define SLOT_RES_AREA (VFE_ADMIN_RESULT_MAX + PAGE)   /* result + status/header */
#define SLOT_STRIDE (SLOT_CMD_AREA + SLOT_RES_AREA)
#define NV_OVERHEAD 1u
#define STD_OVERHEAD ((uint32_t)sizeof(struct vfe_adm_std_res))
/* Left in the status byte before submission: an answer that never wrote it
 * reads as a failure the driver must not retry. */
#define NV_STATUS_UNSET (VFE_NV_ST_FAULT | VFE_NV_ST_NO_RETRY)

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_QUARANTINED };
enum req_state { REQ_NEW, REQ_PENDING, REQ_INFLIGHT, REQ_BACKOFF };

struct vfe_admin_req {
    struct vfe_admin_vq *aq;
    TAILQ_ENTRY(vfe_admin_req) link;
    enum req_state state;
    int slot;
    bool nvidia;
    uint32_t flags, cmd_len, result_cap;
    unsigned retries;
    ev_timer tmo, backoff;
    vfe_admin_cb cb;
    void *ctx;
    uint8_t cmd[];
};

struct admin_slot {
    enum slot_state state;
    struct vfe_admin_req *req;   /* NULL while quarantined or during the callback */
    uint32_t wlen;               /* writable bytes offered to the device */
    bool inherited;              /* quarantined: a command of the previous owner (adopt) */
    char what[8];                /* inherited: "cc/oo" of the command, for the log */
};

struct vfe_admin_vq {
    struct ev_loop *loop;
    const struct vfe_admin_ring_ops *ops;
    void *priv;
    int memfd;
    uint8_t *mem;
    size_t mem_len, slots_off;
    uint64_t iova;
    unsigned nslots;
    struct admin_slot slot[VFE_ADMIN_MAX_SLOTS];
    TAILQ_HEAD(, vfe_admin_req) pending;
    uint32_t timeout_ms;
    bool need_kick, closing;
    int irq_fd;
    ev_io irq_w;
    uint64_t completed, timeouts, retries, bad_answers;
};

static inline uint64_t vfe_admin_slot_iova(const struct vfe_admin_vq *aq, int i, size_t off)
{
    return aq->iova + aq->slots_off + (size_t)i * SLOT_STRIDE + off;
}
static inline void *vfe_admin_slot_cookie(int i) { return (void *)(uintptr_t)(i + 1); }

/* The PCI ring under an opened or adopted queue (ops_priv of vfe_admin_pci_ops). */
struct admin_pci {
    struct vfe_virtio_pci *vp;
    struct vfe_vring vr;
    uint16_t qidx, vec;
    int irq_fd;
    struct vfe_pf_iova *space;
    bool have_window, ring_ok, irq_attached;
    bool have_db;                /* the doorbell's address is known: a kick is one write */
    uint32_t db_region;
    uint64_t db_off;
    struct ev_loop *loop;
    ev_io replies;               /* the PF transport's posted-write replies (doorbells) */
};
extern const struct vfe_admin_ring_ops vfe_admin_pci_ops;
/* From the queue's enable on, the PF's writes (doorbells) are posted and
 * their replies drained from the loop: the loop never waits on the PF. */
void vfe_admin_pci_post_writes(struct admin_pci *p, struct ev_loop *loop);
/* Its two halves: the doorbell address read and posted mode (the transport's
 * owner, any thread), the reply watcher (the loop). */
void vfe_admin_pci_post_device(struct admin_pci *p);
void vfe_admin_pci_watch_replies(struct admin_pci *p, struct ev_loop *loop);

/* vfe_admin_create on an existing memfd of cfg's size (dup'd; the caller
 * keeps its fd): nothing in it is cleared. */
int vfe_admin_create_on(const struct vfe_admin_cfg *cfg, int memfd, struct vfe_admin_vq **out);

#endif
