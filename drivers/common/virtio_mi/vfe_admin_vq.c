/* Admin virtqueue command engine: slots, pipelining, timeouts, retries. */
#include "drivers/common/virtio_mi/vfe_admin_vq.h"
#include "drivers/common/virtio_mi/vfe_admin_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <unistd.h>

#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "lib/log/vfe_log.h"

static uint8_t *slot_cmd(struct vfe_admin_vq *aq, int i) { return aq->mem + aq->slots_off + (size_t)i * SLOT_STRIDE; }
static uint8_t *slot_res(struct vfe_admin_vq *aq, int i) { return slot_cmd(aq, i) + SLOT_CMD_AREA; }

static void flush_kick(struct vfe_admin_vq *aq)
{
    if (aq->need_kick) {
        aq->need_kick = false;
        aq->ops->kick(aq->priv);
    }
}

static int free_slot(struct vfe_admin_vq *aq)
{
    for (unsigned i = 0; i < aq->nslots; i++)
        if (aq->slot[i].state == SLOT_FREE)
            return (int)i;
    return -1;
}

static int start_chain(struct vfe_admin_vq *aq, struct vfe_admin_req *rq)
{
    int i = rq->slot;
    uint8_t *res = slot_res(aq, i);
    uint32_t wlen = rq->result_cap + (rq->nvidia ? NV_OVERHEAD : STD_OVERHEAD);
    memcpy(slot_cmd(aq, i), rq->cmd, rq->cmd_len);
    if (rq->nvidia)
        res[rq->result_cap] = NV_STATUS_UNSET;
    else
        memset(res, 0xff, STD_OVERHEAD);
    struct vfe_sg sg[2] = {
        { .iova = vfe_admin_slot_iova(aq, i, 0), .len = rq->cmd_len },
        { .iova = vfe_admin_slot_iova(aq, i, SLOT_CMD_AREA), .len = wlen },
    };
    aq->slot[i].wlen = wlen;
    int rc = aq->ops->add(aq->priv, sg, 1, 1, vfe_admin_slot_cookie(i));
    if (rc < 0) {
        LOG_E("admin vq: queueing a command failed: %d", rc);
        return rc;
    }
    rq->state = REQ_INFLIGHT;
    aq->need_kick = true;
    return 0;
}

/* Runs the callback and releases the request.  The slot stays BUSY during the
 * callback so that the result stays valid and nothing else takes it. */
static void finish(struct vfe_admin_vq *aq, struct vfe_admin_req *rq, int status, const uint8_t *res,
                   uint32_t res_len, bool quarantine)
{
    ev_timer_stop(aq->loop, &rq->tmo);
    ev_timer_stop(aq->loop, &rq->backoff);
    if (rq->state == REQ_PENDING)
        TAILQ_REMOVE(&aq->pending, rq, link);
    int i = rq->slot;
    if (i >= 0) {
        aq->slot[i].req = NULL;
        if (quarantine)
            aq->slot[i].state = SLOT_QUARANTINED;
    }
    aq->completed++;
    rq->cb(rq->ctx, status, res, res_len);
    if (i >= 0 && !quarantine)
        aq->slot[i].state = SLOT_FREE;
    free(rq);
}

static void dispatch_pending(struct vfe_admin_vq *aq)
{
    struct vfe_admin_req *rq;
    int i;
    while (!aq->closing && (rq = TAILQ_FIRST(&aq->pending)) && (i = free_slot(aq)) >= 0) {
        TAILQ_REMOVE(&aq->pending, rq, link);
        rq->state = REQ_NEW;
        rq->slot = i;
        aq->slot[i].state = SLOT_BUSY;
        aq->slot[i].req = rq;
        int rc = start_chain(aq, rq);
        if (rc < 0)
            finish(aq, rq, rc, NULL, 0, false);
    }
}

static void backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vfe_admin_req *rq = w->data;
    struct vfe_admin_vq *aq = rq->aq;
    int rc = start_chain(aq, rq);
    if (rc < 0) {
        finish(aq, rq, rc, NULL, 0, false);
        dispatch_pending(aq);
    }
    flush_kick(aq);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct vfe_admin_req *rq = w->data;
    struct vfe_admin_vq *aq = rq->aq;
    aq->timeouts++;
    bool in_device = rq->state == REQ_INFLIGHT;
    LOG_W("admin vq: command 0x%02x/0x%02x timed out%s", rq->cmd[0], rq->cmd_len > 1 ? rq->cmd[1] : 0,
          in_device ? ", slot quarantined until the device returns it" : "");
    finish(aq, rq, -ETIMEDOUT, NULL, 0, in_device);
    dispatch_pending(aq);
    flush_kick(aq);
}

static bool nv_should_retry(const struct vfe_admin_req *rq, int status)
{
    return rq->nvidia && status > 0 && !(status & VFE_NV_ST_NO_RETRY) && !(rq->flags & VFE_ADMIN_F_NO_RETRY) &&
           rq->retries < VFE_ADMIN_NV_RETRIES;
}

static void bad_answer(struct vfe_admin_vq *aq, const char *what, uintptr_t cookie, uint32_t len, const char *action)
{
    aq->bad_answers++;
    LOG_W("admin vq: device returned %s (cookie %lu, len %u), %s", what, (unsigned long)cookie, len, action);
}

static void on_used(struct vfe_admin_vq *aq, void *cookie, uint32_t len)
{
    uintptr_t c = (uintptr_t)cookie;
    if (c == 0 || c > aq->nslots) {
        bad_answer(aq, "an unknown chain", c, len, "ignored");
        return;
    }
    struct admin_slot *s = &aq->slot[c - 1];
    if (s->state == SLOT_QUARANTINED) {
        if (s->inherited)
            LOG_N("admin vq: answer (len %u) to command %s left by the previous owner dropped, slot %lu released",
                  len, s->what, (unsigned long)(c - 1));
        else
            LOG_N("admin vq: late answer to a timed-out command, slot %lu released", (unsigned long)(c - 1));
        s->state = SLOT_FREE;
        s->inherited = false;
        return;
    }
    struct vfe_admin_req *rq = s->req;
    if (s->state != SLOT_BUSY || !rq || rq->state != REQ_INFLIGHT) {
        bad_answer(aq, "a chain it does not own", c, len, "ignored");
        return;
    }
    const uint8_t *res = slot_res(aq, rq->slot);
    int status;
    uint32_t rlen;
    if (len > s->wlen) {
        bad_answer(aq, "a length beyond the result area", c, len, "command failed");
        finish(aq, rq, -EIO, NULL, 0, false);
        return;
    }
    if (rq->nvidia) {
        if (len < NV_OVERHEAD) {
            bad_answer(aq, "no status byte", c, len, "command failed");
            finish(aq, rq, -EIO, NULL, 0, false);
            return;
        }
        status = res[rq->result_cap];
        rlen = len - NV_OVERHEAD;
    } else {
        if (len < STD_OVERHEAD) {
            bad_answer(aq, "no status header", c, len, "command failed");
            finish(aq, rq, -EIO, NULL, 0, false);
            return;
        }
        status = (int)(vfe_get_le16(res) | (uint32_t)vfe_get_le16(res + 2) << 16);
        if (status < 0)
            status = INT32_MAX;          /* qualifier with bit 15 set: still a failure */
        res += STD_OVERHEAD;
        rlen = len - STD_OVERHEAD;
    }
    if (nv_should_retry(rq, status)) {
        rq->retries++;
        aq->retries++;
        rq->state = REQ_BACKOFF;
        double after = (VFE_ADMIN_RETRY_BACKOFF_MS << (rq->retries - 1)) / 1000.0;
        LOG_I("admin vq: nvidia command %u/%u status 0x%02x, retry %u in %.0f ms", rq->cmd[0], rq->cmd[1],
              status, rq->retries, after * 1000);
        ev_timer_set(&rq->backoff, after, 0);
        ev_now_update(aq->loop);
        ev_timer_start(aq->loop, &rq->backoff);
        return;
    }
    finish(aq, rq, status, res, rlen, false);
}

int vfe_admin_poll(struct vfe_admin_vq *aq)
{
    if (!aq || aq->closing)
        return 0;
    int n = 0;
    uint32_t len;
    void *cookie;
    while ((cookie = aq->ops->get_used(aq->priv, &len)) != NULL) {
        n++;
        on_used(aq, cookie, len);
    }
    dispatch_pending(aq);
    flush_kick(aq);
    return n;
}

static void irq_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct vfe_admin_vq *aq = w->data;
    uint64_t cnt;
    if (read(aq->irq_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
        LOG_W("admin vq: reading the interrupt eventfd: %m");
    vfe_admin_poll(aq);
}

void vfe_admin_set_irq_fd(struct vfe_admin_vq *aq, int fd)
{
    if (aq->irq_fd >= 0)
        ev_io_stop(aq->loop, &aq->irq_w);
    aq->irq_fd = fd;
    if (fd >= 0) {
        ev_io_init(&aq->irq_w, irq_cb, fd, EV_READ);
        aq->irq_w.data = aq;
        ev_io_start(aq->loop, &aq->irq_w);
    }
}

static bool is_nvidia(const uint8_t *cmd)
{
    return cmd[0] == VFE_NV_CLASS_MIG || cmd[0] == VFE_NV_CLASS_DIRTY;
}

int vfe_admin_submit_opts(struct vfe_admin_vq *aq, const void *cmd, uint32_t cmd_len, uint32_t result_cap,
                          const struct vfe_admin_opts *opts, vfe_admin_cb cb, void *ctx)
{
    if (!aq || !cmd || !cb || cmd_len == 0)
        return -EINVAL;
    if (aq->closing)
        return -ESHUTDOWN;
    bool nv = is_nvidia(cmd);
    if (cmd_len < (nv ? 2u : (uint32_t)sizeof(struct vfe_adm_std_cmd)))
        return -EINVAL;
    if (cmd_len > VFE_ADMIN_CMD_MAX || result_cap > VFE_ADMIN_RESULT_MAX)
        return -E2BIG;
    struct vfe_admin_req *rq = calloc(1, sizeof(*rq) + cmd_len);
    if (!rq)
        return -ENOMEM;
    rq->aq = aq;
    rq->slot = -1;
    rq->nvidia = nv;
    rq->flags = opts ? opts->flags : 0;
    rq->cmd_len = cmd_len;
    rq->result_cap = result_cap;
    rq->cb = cb;
    rq->ctx = ctx;
    memcpy(rq->cmd, cmd, cmd_len);
    uint32_t tmo = opts && opts->timeout_ms ? opts->timeout_ms : aq->timeout_ms;
    ev_timer_init(&rq->tmo, timeout_cb, tmo / 1000.0, 0);
    rq->tmo.data = rq;
    ev_timer_init(&rq->backoff, backoff_cb, 0, 0);
    rq->backoff.data = rq;

    int i = TAILQ_EMPTY(&aq->pending) ? free_slot(aq) : -1;
    if (i >= 0) {
        rq->slot = i;
        aq->slot[i].state = SLOT_BUSY;
        aq->slot[i].req = rq;
        int rc = start_chain(aq, rq);
        if (rc < 0) {
            aq->slot[i].state = SLOT_FREE;
            aq->slot[i].req = NULL;
            free(rq);
            return rc;
        }
    } else {
        rq->state = REQ_PENDING;
        TAILQ_INSERT_TAIL(&aq->pending, rq, link);
    }
    /* the caller may not have run the loop for a while: a stale ev_now()
     * would put the deadline in the past */
    ev_now_update(aq->loop);
    ev_timer_start(aq->loop, &rq->tmo);
    flush_kick(aq);
    return 0;
}

int vfe_admin_submit(struct vfe_admin_vq *aq, const void *cmd, uint32_t cmd_len, uint32_t result_cap,
                     vfe_admin_cb cb, void *ctx)
{
    return vfe_admin_submit_opts(aq, cmd, cmd_len, result_cap, NULL, cb, ctx);
}

size_t vfe_admin_mem_size(size_t ring_bytes, unsigned nslots)
{
    return ((ring_bytes + PAGE - 1) & ~(size_t)(PAGE - 1)) + (size_t)nslots * SLOT_STRIDE;
}

static int cfg_ok(const struct vfe_admin_cfg *cfg)
{
    return cfg && cfg->loop && cfg->ops && cfg->ops->add && cfg->ops->kick && cfg->ops->get_used &&
           cfg->nslots > 0 && cfg->nslots <= VFE_ADMIN_MAX_SLOTS && !(cfg->iova & (PAGE - 1));
}

static struct vfe_admin_vq *engine_new(const struct vfe_admin_cfg *cfg)
{
    struct vfe_admin_vq *aq = calloc(1, sizeof(*aq));
    if (!aq)
        return NULL;
    aq->loop = cfg->loop;
    aq->ops = cfg->ops;
    aq->priv = cfg->ops_priv;
    aq->iova = cfg->iova;
    aq->nslots = cfg->nslots;
    aq->timeout_ms = VFE_ADMIN_DEFAULT_TIMEOUT_MS;
    aq->irq_fd = -1;
    aq->memfd = -1;
    TAILQ_INIT(&aq->pending);
    aq->slots_off = (cfg->ring_bytes + PAGE - 1) & ~(size_t)(PAGE - 1);
    aq->mem_len = vfe_admin_mem_size(cfg->ring_bytes, aq->nslots);
    return aq;
}

static int engine_map(struct vfe_admin_vq *aq)
{
    aq->mem = mmap(NULL, aq->mem_len, PROT_READ | PROT_WRITE, MAP_SHARED, aq->memfd, 0);
    if (aq->mem == MAP_FAILED) {
        int rc = -errno;
        LOG_E("admin vq: mapping the queue memory (%zu bytes): %m", aq->mem_len);
        close(aq->memfd);
        free(aq);
        return rc;
    }
    return 0;
}

int vfe_admin_create(const struct vfe_admin_cfg *cfg, struct vfe_admin_vq **out)
{
    if (!cfg_ok(cfg) || !out)
        return -EINVAL;
    struct vfe_admin_vq *aq = engine_new(cfg);
    if (!aq)
        return -ENOMEM;
    aq->memfd = memfd_create("vfe-admin-vq", MFD_CLOEXEC);
    if (aq->memfd < 0 || ftruncate(aq->memfd, (off_t)aq->mem_len) < 0) {
        int rc = -errno;
        LOG_E("admin vq: memfd of %zu bytes: %m", aq->mem_len);
        if (aq->memfd >= 0)
            close(aq->memfd);
        free(aq);
        return rc;
    }
    int rc = engine_map(aq);
    if (rc < 0)
        return rc;
    *out = aq;
    return 0;
}

int vfe_admin_create_on(const struct vfe_admin_cfg *cfg, int memfd, struct vfe_admin_vq **out)
{
    if (!cfg_ok(cfg) || !out || memfd < 0)
        return -EINVAL;
    struct vfe_admin_vq *aq = engine_new(cfg);
    if (!aq)
        return -ENOMEM;
    aq->memfd = fcntl(memfd, F_DUPFD_CLOEXEC, 0);
    if (aq->memfd < 0) {
        int rc = -errno;
        free(aq);
        return rc;
    }
    int rc = engine_map(aq);
    if (rc < 0)
        return rc;
    *out = aq;
    return 0;
}

/* Drop every request without its callback: the owner is gone (tests of a crash). */
static void drop_requests(struct vfe_admin_vq *aq)
{
    for (unsigned i = 0; i < aq->nslots; i++) {
        struct vfe_admin_req *rq = aq->slot[i].req;
        if (aq->slot[i].state == SLOT_BUSY && rq) {
            ev_timer_stop(aq->loop, &rq->tmo);
            ev_timer_stop(aq->loop, &rq->backoff);
            free(rq);
        }
    }
    struct vfe_admin_req *rq;
    while ((rq = TAILQ_FIRST(&aq->pending)) != NULL) {
        TAILQ_REMOVE(&aq->pending, rq, link);
        ev_timer_stop(aq->loop, &rq->tmo);
        free(rq);
    }
}

void vfe_admin_abandon(struct vfe_admin_vq *aq)
{
    if (!aq)
        return;
    vfe_admin_set_irq_fd(aq, -1);
    drop_requests(aq);
    if (aq->ops->abandon)
        aq->ops->abandon(aq->priv);
    munmap(aq->mem, aq->mem_len);
    close(aq->memfd);
    free(aq);
}

void vfe_admin_close(struct vfe_admin_vq *aq)
{
    if (!aq)
        return;
    aq->closing = true;
    vfe_admin_set_irq_fd(aq, -1);
    for (unsigned i = 0; i < aq->nslots; i++)
        if (aq->slot[i].state == SLOT_BUSY && aq->slot[i].req)
            finish(aq, aq->slot[i].req, -ECANCELED, NULL, 0, false);
    struct vfe_admin_req *rq;
    while ((rq = TAILQ_FIRST(&aq->pending)) != NULL)
        finish(aq, rq, -ECANCELED, NULL, 0, false);
    if (aq->ops->fini)
        aq->ops->fini(aq->priv);
    munmap(aq->mem, aq->mem_len);
    close(aq->memfd);
    free(aq);
}

void vfe_admin_mem(const struct vfe_admin_vq *aq, int *fd, void **mem, size_t *len)
{
    if (fd)
        *fd = aq->memfd;
    if (mem)
        *mem = aq->mem;
    if (len)
        *len = aq->mem_len;
}

void *vfe_admin_dma_ptr(const struct vfe_admin_vq *aq, uint64_t iova, uint64_t len)
{
    if (iova < aq->iova || len > aq->mem_len || iova - aq->iova > aq->mem_len - len)
        return NULL;
    return aq->mem + (iova - aq->iova);
}

void vfe_admin_set_timeout(struct vfe_admin_vq *aq, uint32_t timeout_ms)
{
    aq->timeout_ms = timeout_ms ? timeout_ms : VFE_ADMIN_DEFAULT_TIMEOUT_MS;
}

struct ev_loop *vfe_admin_loop(const struct vfe_admin_vq *aq)
{
    return aq->loop;
}

void vfe_admin_get_stats(const struct vfe_admin_vq *aq, struct vfe_admin_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < aq->nslots; i++) {
        const struct admin_slot *s = &aq->slot[i];
        if (s->state == SLOT_QUARANTINED) {
            st->quarantined++;
            st->inherited += s->inherited;
        }
        else if (s->state == SLOT_BUSY && s->req && s->req->state == REQ_INFLIGHT)
            st->in_flight++;
        else if (s->state == SLOT_BUSY && s->req && s->req->state == REQ_BACKOFF)
            st->backoff++;
    }
    const struct vfe_admin_req *rq;
    TAILQ_FOREACH(rq, &aq->pending, link)
        st->pending++;
    st->completed = aq->completed;
    st->timeouts = aq->timeouts;
    st->retries = aq->retries;
    st->bad_answers = aq->bad_answers;
}
