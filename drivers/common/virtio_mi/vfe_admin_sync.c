/* Blocking helpers over the asynchronous admin queue, for tools and tests. */
#include "drivers/common/virtio_mi/vfe_admin_vq.h"

#include <errno.h>
#include <string.h>

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    /* only wakes ev_run so the wait loop polls even without an interrupt */
}

void vfe_admin_wait(struct vfe_admin_vq *aq, const bool *done)
{
    struct ev_loop *loop = vfe_admin_loop(aq);
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.001, 0.001);
    ev_timer_start(loop, &tick);
    while (!*done) {
        vfe_admin_poll(aq);
        if (*done)
            break;
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &tick);
}

struct sync_ctx {
    bool done;
    int status;
    uint8_t *buf;
    uint32_t cap, len;
};

static void sync_cb(void *ctx, int status, const uint8_t *result, uint32_t result_len)
{
    struct sync_ctx *s = ctx;
    s->status = status;
    s->len = result_len < s->cap ? result_len : s->cap;
    if (s->len && result)
        memcpy(s->buf, result, s->len);
    else
        s->len = 0;
    s->done = true;
}

int vfe_admin_exec_sync(struct vfe_admin_vq *aq, const void *cmd, uint32_t cmd_len, void *result,
                        uint32_t result_cap, uint32_t *result_len, int timeout_ms)
{
    if (!aq || (result_cap && !result) || timeout_ms < 0)
        return -EINVAL;
    struct sync_ctx s = { .buf = result, .cap = result_cap };
    struct vfe_admin_opts o = { .timeout_ms = (uint32_t)timeout_ms };
    int rc = vfe_admin_submit_opts(aq, cmd, cmd_len, result_cap, &o, sync_cb, &s);
    if (rc < 0)
        return rc;
    vfe_admin_wait(aq, &s.done);
    if (result_len)
        *result_len = s.len;
    return s.status;
}
