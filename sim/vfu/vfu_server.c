/*
 * vfio-user server of vfe-dpu-sim: one listening socket per function, one
 * client at a time, libev watchers on the sim loop.  Commands are decoded in
 * vfu_handlers.c; this file owns sockets, framing and the connection life.
 */
#include "sim/vfu/vfu_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"

#define VFU_SEND_TIMEOUT_MS  500   /* a client that does not read its replies is dropped */
#define VFU_MSGS_PER_WAKEUP  32    /* fairness between functions on one loop */

static void client_drop(struct vfu_srv *s, const char *why)
{
    if (s->csock < 0)
        return;
    struct sim_fn *fn = s->fn;
    LOG_I("vfio-user %s: client gone (%s)", fn->bdf, why);
    fn->ctr.client_disconnects++;
    ev_io_stop(fn->sim->loop, &s->cwatch);
    if (s->holding)
        vfu_msg_free(&s->held);
    s->holding = false;
    close(s->csock);
    s->csock = -1;
    vfu_reader_reset(&s->rd);
    s->versioned = false;

    /* The device stops first, then loses its kicks, memory and interrupts. */
    sim_fn_reset(fn);
    for (unsigned i = 0; i < s->nioev; i++)
        sim_ioeventfd(fn, s->ioev[i].region, s->ioev[i].off, s->ioev[i].size, s->ioev[i].data, -1);
    s->nioev = 0;
    sim_dma_unmap_all(fn);
    int none[SIM_MSIX_VECTORS];
    for (unsigned i = 0; i < SIM_MSIX_VECTORS; i++)
        none[i] = -1;
    sim_irq_set(fn, 0, SIM_MSIX_VECTORS, none);
}

static int send_reply(struct vfu_srv *s, const struct vfu_msg *m, int rc, struct vfu_reply *rep)
{
    if (rc < 0) {
        uint32_t e = (uint32_t)-rc;
        return vfu_msg_send_simple(s->csock, m->hdr.msg_id, m->hdr.cmd,
                                   VFU_F_TYPE_REPLY | VFU_F_ERROR, e, NULL, 0, NULL, 0,
                                   VFU_SEND_TIMEOUT_MS);
    }
    return vfu_msg_send_simple(s->csock, m->hdr.msg_id, m->hdr.cmd, VFU_F_TYPE_REPLY, 0,
                               vfu_reply_buf(rep), rep->len, rep->fd >= 0 ? &rep->fd : NULL,
                               rep->fd >= 0 ? 1 : 0, VFU_SEND_TIMEOUT_MS);
}

/* One whole message.  0, or -errno when the connection must be dropped. */
static int handle_msg(struct vfu_srv *s, struct vfu_msg *m)
{
    struct sim_fn *fn = s->fn;
    uint32_t type = m->hdr.flags & VFU_F_TYPE_MASK;
    if (type != VFU_F_TYPE_CMD) {
        /* We never send commands, so no reply is awaited. */
        LOG_W("vfio-user %s: unexpected message type %u (cmd %u), ignored", fn->bdf, type,
              m->hdr.cmd);
        return 0;
    }

    struct vfu_reply rep = { .len = 0, .fd = -1 };
    int rc;
    if (m->fds_dropped) {
        LOG_W("vfio-user %s: %s with more than %u fds, refused", fn->bdf,
              vfu_cmd_name(m->hdr.cmd), VFU_MAX_MSG_FDS);
        rc = -EINVAL;
    } else if (!s->versioned && m->hdr.cmd != VFU_CMD_VERSION) {
        LOG_W("vfio-user %s: %s before VERSION, refused", fn->bdf, vfu_cmd_name(m->hdr.cmd));
        rc = -EINVAL;
    } else {
        rc = vfu_srv_handle(s, m, &rep);
    }
    if (rc < 0 && rc != -ENOSYS)
        LOG_D("vfio-user %s: %s failed: %s", fn->bdf, vfu_cmd_name(m->hdr.cmd), strerror(-rc));

    int src = 0;
    if (!(m->hdr.flags & VFU_F_NO_REPLY))
        src = send_reply(s, m, rc, &rep);
    free(rep.big);
    if (src < 0)
        LOG_W("vfio-user %s: reply to %s not sent: %s", fn->bdf, vfu_cmd_name(m->hdr.cmd),
              strerror(-src));
    return src;
}

static void client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct vfu_srv *s = w->data;
    (void)loop;
    (void)revents;
    for (unsigned i = 0; i < VFU_MSGS_PER_WAKEUP && s->csock >= 0; i++) {
        struct vfu_msg m;
        int rc = vfu_reader_feed(&s->rd, s->csock, &m);
        if (rc == 0)
            return;
        if (rc < 0) {
            if (rc == -ECONNRESET) {
                client_drop(s, "disconnected");
            } else {
                LOG_W("vfio-user %s: bad stream: %s, closing", s->fn->bdf,
                      rc == -EMSGSIZE ? "message size field out of range"
                      : rc == -EPROTO ? "peer closed mid-message" : strerror(-rc));
                client_drop(s, "protocol error");
            }
            return;
        }
        if (s->fn->vfu_stall_at && m.hdr.cmd == s->fn->vfu_stall_at) {
            LOG_N("fault: %s holds its %s request, its requests not read", s->fn->bdf, vfu_cmd_name(m.hdr.cmd));
            s->fn->vfu_stall_at = 0;
            s->held = m;
            s->holding = true;
            sim_vfu_stall(s->fn, true);
            return;
        }
        rc = handle_msg(s, &m);
        vfu_msg_free(&m);   /* closes every fd a handler did not take */
        if (rc < 0) {
            client_drop(s, "send failed");
            return;
        }
    }
}

void sim_vfu_stall(struct sim_fn *fn, bool on)
{
    struct vfu_srv *s = fn->vfu;
    fn->vfu_stalled = on;
    if (!s || s->csock < 0)
        return;   /* a client that connects later is not read either */
    struct ev_loop *loop = fn->sim->loop;
    if (on) {
        ev_io_stop(loop, &s->cwatch);
        return;
    }
    if (s->holding) {
        s->holding = false;
        int rc = handle_msg(s, &s->held);
        vfu_msg_free(&s->held);
        if (rc < 0) {
            client_drop(s, "send failed");
            return;
        }
    }
    if (!ev_is_active(&s->cwatch)) {
        ev_io_start(loop, &s->cwatch);
        ev_feed_event(loop, &s->cwatch, EV_READ);
    }
}

void sim_vfu_stall_at(struct sim_fn *fn, uint16_t cmd)
{
    fn->vfu_stall_at = cmd;
}

static void on_accept(struct sim_acceptor *a, int c)
{
    struct vfu_srv *s = a->data;
    struct ev_loop *loop = s->fn->sim->loop;
    if (s->csock >= 0 && !s->fn->vfu_stalled) {
        /* The current client may have just closed with its EOF not yet seen
         * (both watchers fire in one loop iteration): look before refusing. */
        client_cb(loop, &s->cwatch, EV_READ);
    }
    if (s->csock >= 0) {
        sim_acceptor_log_refused(a, "one client is already connected");
        close(c);
        return;
    }
    if (s->fn->removed) {
        sim_acceptor_log_refused(a, "function removed");
        close(c);
        return;
    }
    if (sim_msix_sync(s->fn) < 0) {
        sim_acceptor_log_refused(a, "no MSI-X vectors for a queue pair (sriov_vf_msix_count < 4)");
        close(c);
        return;
    }
    s->csock = c;
    vfu_reader_init(&s->rd);
    s->versioned = false;
    vfu_caps_default(&s->peer);
    ev_io_init(&s->cwatch, client_cb, c, EV_READ);
    s->cwatch.data = s;
    if (!s->fn->vfu_stalled)
        ev_io_start(loop, &s->cwatch);
    LOG_I("vfio-user %s: client connected", s->fn->bdf);
}

int sim_vfu_listen(struct sim_fn *fn)
{
    if (fn->vfu)
        return -EALREADY;
    struct vfu_srv *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->fn = fn;
    s->csock = -1;
    vfu_reader_init(&s->rd);
    int rc = vfu_listener_open(&s->lis, fn->sock_path, 4);
    if (rc < 0) {
        LOG_E("vfio-user %s: cannot listen on %s: %s", fn->bdf, fn->sock_path,
              rc == -EEXIST        ? "it exists and is not a socket (left alone)"
              : rc == -EADDRINUSE  ? "another process serves that socket (left alone)"
              : strerror(-rc));
        free(s);
        return rc;
    }
    char what[48];
    snprintf(what, sizeof(what), "vfio-user %s", fn->bdf);
    sim_acceptor_start(&s->acc, fn->sim->loop, s->lis.l.fd, what, on_accept, s);
    fn->vfu = s;
    LOG_D("vfio-user %s: listening on %s", fn->bdf, fn->sock_path);
    return 0;
}

void sim_vfu_close(struct sim_fn *fn)
{
    struct vfu_srv *s = fn->vfu;
    if (!s)
        return;
    client_drop(s, "server closing");
    sim_acceptor_stop(&s->acc);
    vfu_listener_close(&s->lis);   /* removes the socket only if it is still ours */
    fn->vfu = NULL;
    free(s);
}
