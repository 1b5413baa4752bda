/* Control socket: counters, function list and fault injection, one JSON
 * object per line in each direction. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "lib/vfio_user/vfu_proto.h"
#include "lib/sock/vfe_unix_sock.h"
#include "sim/core/core_priv.h"
#include "sim/core/sim_acceptor.h"
#include "sim/net/l2_switch.h"

#define CTL_LINE_MAX 4096
/* Connections served at once; one more is told so and closed at once. */
#define CTL_MAX_CONNS 32

struct ctl_conn {
    struct sim *s;
    unsigned slot;               /* index in ctl->conns */
    ev_io w;
    char buf[CTL_LINE_MAX];
    size_t len;
};

struct ctl {
    struct vfe_listener lis;     /* owns the socket file at lis.path */
    struct sim_acceptor acc;
    struct ctl_conn *conns[CTL_MAX_CONNS];   /* owned; NULL slots are free */
    unsigned nconns;
};

static json_t *err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *err(const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static const char *const mig_names[] = {"init", "running", "quiesced", "freezed"};

static json_t *fn_json(struct sim_fn *fn)
{
    uint64_t dma_bytes = 0;
    for (unsigned i = 0; i < fn->ndma; i++)
        dma_bytes += fn->dma[i].size;
    return json_pack("{s:s, s:b, s:i, s:i, s:s, s:b, s:b, s:b, s:b, s:i, s:i, s:I}", "bdf", fn->bdf, "pf", fn->is_pf,
                     "vf", fn->vf_num, "status", fn->status, "mig_state",
                     mig_names[fn->mig_state & 3], "removed", fn->removed, "dma_stalled",
                     fn->dma_stalled, "vfu_stalled", fn->vfu_stalled, "stopped", fn->stopped, "dirty_mode", fn->dirty.mode, "dma_maps",
                     fn->ndma, "dma_bytes", (json_int_t)dma_bytes);
}

static json_t *cmd_counters(struct sim *s, struct sim_fn *fn)
{
    const struct sim_counters *c = &fn->ctr;
    json_t *r = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", 1, "bdf", fn->bdf,
                          "rx_packets", (json_int_t)c->rx_packets, "rx_bytes", (json_int_t)c->rx_bytes,
                          "rx_drops", (json_int_t)c->rx_drops, "tx_packets", (json_int_t)c->tx_packets,
                          "tx_bytes", (json_int_t)c->tx_bytes, "tx_drops", (json_int_t)c->tx_drops,
                          "dirty_pages_marked", (json_int_t)c->dirty_pages_marked);
    json_object_set_new(r, "mapped_doorbell_kicks", json_integer((json_int_t)c->mapped_doorbell_kicks));
    json_object_set_new(r, "resets", json_integer((json_int_t)c->resets));
    json_object_set_new(r, "client_disconnects", json_integer((json_int_t)c->client_disconnects));
    json_object_set_new(r, "driver_features", json_integer((json_int_t)fn->driver_features));
    json_object_update_new(r, fn_json(fn));
    return r;
}

static json_t *cmd_list(struct sim *s)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < s->npfs; i++) {
        struct sim_pf *pf = s->pfs[i];
        json_array_append_new(a, fn_json(&pf->fn));
        for (unsigned v = 0; v < pf->num_vfs; v++)
            if (pf->vfs[v])
                json_array_append_new(a, fn_json(pf->vfs[v]));
    }
    return json_pack("{s:b, s:o}", "ok", 1, "functions", a);
}

/* The switch's counters; with "mac" also where the switch sends that MAC now
 * ("port": a BDF, "uplink", or null when unknown or aged out). */
static json_t *cmd_switch(struct sim *s, json_t *req)
{
    const struct sw_stats *st = sim_sw_get_stats(s);
    if (!st)
        return err("switch: no switch");
    json_t *r = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i}", "ok", 1, "frames_in",
                          (json_int_t)st->frames_in, "unicast", (json_int_t)st->unicast, "flooded",
                          (json_int_t)st->flooded, "filtered", (json_int_t)st->filtered, "runts",
                          (json_int_t)st->runts, "learned", (json_int_t)st->learned, "aged", (json_int_t)st->aged,
                          "announces", (json_int_t)st->announces, "entries", (int)sim_sw_entries(s), "aging",
                          (int)(s->opt.fdb_aging ? s->opt.fdb_aging : SW_AGING_DEFAULT));
    json_t *jm = json_object_get(req, "mac");
    if (jm) {
        unsigned b[6];
        char tail;
        const char *m = json_string_value(jm);
        if (!m || sscanf(m, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6) {
            json_decref(r);
            return err("switch: \"mac\" must be xx:xx:xx:xx:xx:xx");
        }
        uint8_t mac[6];
        for (int i = 0; i < 6; i++)
            mac[i] = (uint8_t)b[i];
        struct sim_fn *port = NULL;
        if (!sim_sw_lookup(s, mac, &port))
            json_object_set_new(r, "port", json_null());
        else
            json_object_set_new(r, "port", json_string(port ? port->bdf : "uplink"));
        /* the lookup may have aged the entry out: counters after it */
        json_object_set_new(r, "aged", json_integer((json_int_t)st->aged));
        json_object_set_new(r, "entries", json_integer((json_int_t)sim_sw_entries(s)));
    }
    return r;
}

static json_t *cmd_fault(struct sim *s, json_t *req)
{
    const char *type = json_string_value(json_object_get(req, "type"));
    const char *bdf = json_string_value(json_object_get(req, "bdf"));
    json_t *jn = json_object_get(req, "ms");
    if (!type)
        return err("fault: \"type\" missing");
    if (!strcmp(type, "clear")) {
        memset(&s->fault, 0, sizeof(s->fault));
        for (unsigned i = 0; i < s->npfs; i++) {
            s->pfs[i]->fn.vfu_stall_at = 0;
            if (s->pfs[i]->fn.vfu_stalled)
                sim_vfu_stall(&s->pfs[i]->fn, false);
            for (unsigned v = 0; v < s->pfs[i]->num_vfs; v++) {
                if (s->pfs[i]->vfs[v])
                    s->pfs[i]->vfs[v]->vfu_stall_at = 0;
                if (s->pfs[i]->vfs[v] && s->pfs[i]->vfs[v]->vfu_stalled)
                    sim_vfu_stall(s->pfs[i]->vfs[v], false);
                if (s->pfs[i]->vfs[v] && s->pfs[i]->vfs[v]->dma_stalled) {
                    s->pfs[i]->vfs[v]->dma_stalled = false;
                    sim_net_resume(s->pfs[i]->vfs[v]);
                }
            }
        }
        LOG_N("faults cleared");
        return json_pack("{s:b}", "ok", 1);
    }
    /* admin command delays: completion only, or the command's effect too */
    unsigned *delay = !strcmp(type, "admin_delay") ? &s->fault.admin_delay_ms
                      : !strcmp(type, "admin_slow") ? &s->fault.admin_slow_ms : NULL;
    if (delay) {
        if (!json_is_integer(jn) || json_integer_value(jn) < 0 || json_integer_value(jn) > 600000)
            return err("%s: \"ms\" must be 0..600000", type);
        *delay = (unsigned)json_integer_value(jn);
        LOG_N("fault: admin commands %s %u ms late", delay == &s->fault.admin_slow_ms ? "take effect" : "complete",
              *delay);
        return json_pack("{s:b}", "ok", 1);
    }
    if (!strcmp(type, "admin_fail")) {
        json_t *st = json_object_get(req, "status"), *cnt = json_object_get(req, "count");
        if (!json_is_integer(st) || json_integer_value(st) <= 0 || json_integer_value(st) > 0xffff)
            return err("admin_fail: \"status\" must be 1..65535");
        if (cnt && (!json_is_integer(cnt) || json_integer_value(cnt) < 0))
            return err("admin_fail: \"count\" must be >= 0");
        s->fault.admin_fail_status = (int)json_integer_value(st);
        s->fault.admin_fail_count = cnt ? (unsigned)json_integer_value(cnt) : 0;
        LOG_N("fault: admin commands fail with status %d", s->fault.admin_fail_status);
        return json_pack("{s:b}", "ok", 1);
    }
    if (!bdf)
        return err("fault %s: \"bdf\" missing", type);
    struct sim_fn *fn = sim_find_fn(s, bdf);
    if (!fn)
        return err("no function %s", bdf);
    if (!strcmp(type, "dma_stall")) {
        json_t *on = json_object_get(req, "on");
        fn->dma_stalled = on ? json_is_true(on) : true;
        LOG_N("fault: %s DMA %s", fn->bdf, fn->dma_stalled ? "stalled" : "resumed");
        if (!fn->dma_stalled)
            sim_net_resume(fn);
        return json_pack("{s:b}", "ok", 1);
    }
    if (!strcmp(type, "vfu_stall")) {
        json_t *on = json_object_get(req, "on");
        if (on && !json_is_boolean(on))
            return err("vfu_stall: \"on\" must be true or false");
        json_t *at = json_object_get(req, "at");
        if (at) {
            /* only the command the tests need: the first DMA_MAP of a bring-up */
            if (!json_is_string(at) || strcmp(json_string_value(at), "dma_map") || on)
                return err("vfu_stall: \"at\" takes \"dma_map\" (without \"on\")");
            sim_vfu_stall_at(fn, VFU_CMD_DMA_MAP);
            LOG_N("fault: %s vfio-user requests not read from its next DMA_MAP on", fn->bdf);
            return json_pack("{s:b}", "ok", 1);
        }
        sim_vfu_stall(fn, on ? json_is_true(on) : true);
        LOG_N("fault: %s vfio-user requests %s", fn->bdf, fn->vfu_stalled ? "not read" : "read again");
        return json_pack("{s:b}", "ok", 1);
    }
    if (!strcmp(type, "remove")) {
        if (sim_fn_remove(fn) < 0)
            return err("%s cannot be removed (a PF, or already gone)", bdf);
        return json_pack("{s:b}", "ok", 1);
    }
    if (!strcmp(type, "pf_reset")) {
        if (!fn->is_pf)
            return err("%s is not a PF", bdf);
        LOG_N("fault: PF %s reset", fn->bdf);
        sim_fn_reset(fn);
        sim_msix_pf_reset((struct sim_pf *)fn);
        return json_pack("{s:b}", "ok", 1);
    }
    return err("unknown fault type '%s'", type);
}

static json_t *handle(struct sim *s, const char *line)
{
    json_error_t je;
    json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, &je);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        return err("not a JSON object: %s", je.text);
    }
    json_t *res;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (!cmd) {
        res = err("\"cmd\" missing");
    } else if (!strcmp(cmd, "list")) {
        res = cmd_list(s);
    } else if (!strcmp(cmd, "counters")) {
        const char *bdf = json_string_value(json_object_get(req, "bdf"));
        struct sim_fn *fn = bdf ? sim_find_fn(s, bdf) : NULL;
        res = fn ? cmd_counters(s, fn) : err("counters: unknown or missing \"bdf\" %s", bdf ? bdf : "");
    } else if (!strcmp(cmd, "fault")) {
        res = cmd_fault(s, req);
    } else if (!strcmp(cmd, "switch")) {
        res = cmd_switch(s, req);
    } else if (!strcmp(cmd, "msix")) {
        char why[300] = "";
        res = sim_msix_ctl(s, req, why, sizeof(why));
        if (!res)
            res = err("%s", why);
    } else {
        res = err("unknown cmd '%s' (list, counters, switch, msix, fault)", cmd);
    }
    json_decref(req);
    return res;
}

static void conn_close(struct ctl_conn *c)
{
    struct ctl *ctl = c->s->ctl;
    ev_io_stop(c->s->loop, &c->w);
    close(c->w.fd);
    ctl->conns[c->slot] = NULL;
    ctl->nconns--;
    free(c);
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ctl_conn *c = w->data;
    ssize_t n = read(w->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len))) {
        *nl = '\0';
        json_t *res = handle(c->s, c->buf);
        char *out = json_dumps(res, JSON_COMPACT);
        json_decref(res);
        if (out) {
            size_t ol = strlen(out);
            out[ol] = '\n';   /* replaces the NUL; written with its length */
            if (write(w->fd, out, ol + 1) != (ssize_t)(ol + 1))
                LOG_D("control socket: short reply write");
            free(out);
        }
        size_t used = (size_t)(nl - c->buf) + 1;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
    if (c->len == sizeof(c->buf) - 1) {
        LOG_W("control socket: request longer than %d bytes, connection closed", CTL_LINE_MAX);
        conn_close(c);
    }
}

static void on_accept(struct sim_acceptor *a, int fd)
{
    struct sim *s = a->data;
    struct ctl *ctl = s->ctl;
    if (ctl->nconns >= CTL_MAX_CONNS) {
        static const char busy[] = "{\"ok\":false,\"error\":\"busy: too many control connections\"}\n";
        if (write(fd, busy, sizeof(busy) - 1) < 0)
            LOG_D("control socket: busy reply not sent: %m");
        close(fd);
        char why[64];
        snprintf(why, sizeof(why), "already %d connections", CTL_MAX_CONNS);
        sim_acceptor_log_refused(a, why);
        return;
    }
    struct ctl_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        sim_acceptor_log_refused(a, "out of memory");
        return;
    }
    c->s = s;
    for (c->slot = 0; ctl->conns[c->slot]; c->slot++)
        ;
    ctl->conns[c->slot] = c;
    ctl->nconns++;
    ev_io_init(&c->w, conn_cb, fd, EV_READ);
    c->w.data = c;
    ev_io_start(s->loop, &c->w);
}

int sim_ctl_open(struct sim *s)
{
    struct ctl *ctl = calloc(1, sizeof(*ctl));
    if (!ctl)
        return -ENOMEM;
    char path[700];
    if (s->opt.ctl_path)
        snprintf(path, sizeof(path), "%s", s->opt.ctl_path);
    else
        snprintf(path, sizeof(path), "%s/sim-ctl.sock", s->opt.root);
    int rc = vfe_listener_open(&ctl->lis, path, 0600, (gid_t)-1, 16);
    if (rc < 0) {
        LOG_E("control socket %s: %s", path,
              rc == -EEXIST        ? "exists and is not a socket (left alone)"
              : rc == -EADDRINUSE  ? "another process serves it (left alone)"
              : rc == -ENAMETOOLONG ? "path too long for a unix socket"
              : strerror(-rc));
        free(ctl);
        return rc;
    }
    s->ctl = ctl;
    sim_acceptor_start(&ctl->acc, s->loop, ctl->lis.fd, "control socket", on_accept, s);
    return 0;
}

void sim_ctl_close(struct sim *s)
{
    struct ctl *ctl = s->ctl;
    if (!ctl)
        return;
    sim_acceptor_stop(&ctl->acc);
    for (unsigned i = 0; i < CTL_MAX_CONNS; i++)
        if (ctl->conns[i])
            conn_close(ctl->conns[i]);
    vfe_listener_close(&ctl->lis);   /* removes the socket only if it is still ours */
    free(ctl);
    s->ctl = NULL;
}
