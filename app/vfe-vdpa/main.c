/* vfe-vhostd: vDPA acceleration service for virtio-net VFs. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "app/vfe-vdpa/fd_budget.h"
#include "app/vfe-vdpa/rpc_compat.h"
#include "app/vfe-vdpa/vhostd.h"
#include "app/vfe-vdpa/vf_batch.h"
#include "lib/log/vfe_log.h"

static void drained(void *ctx)
{
    ev_break(ctx, EVBREAK_ALL);
}

static void shutdown_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    LOG_W("some VFs did not stop within the shutdown bound");
    ev_break(loop, EVBREAK_ALL);
}

/* One daemon per RPC path: a second one must not take the socket over and
 * orphan the first.  The lock sits beside the socket, in its directory. */
static int lock_rpc_path(struct vhostd *d)
{
    char dir[VFE_SUN_PATH_MAX + 1];
    snprintf(dir, sizeof(dir), "%s", d->opt.rpc_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
            LOG_E("--rpc %s: cannot create %s: %s", d->opt.rpc_path, dir, strerror(errno));
            return -1;
        }
    }
    int rc = vfe_path_lock(d->opt.rpc_path, &d->lock_fd);
    if (rc == -EBUSY)
        LOG_E("another vfe-vhostd serves %s (it holds %s.lock): not starting", d->opt.rpc_path, d->opt.rpc_path);
    else if (rc < 0)
        LOG_E("--rpc %s: cannot lock %s.lock: %s", d->opt.rpc_path, d->opt.rpc_path, strerror(-rc));
    return rc;
}

/* Every HA take-over ended: the link and the persisted provisioning start
 * (the restore never touches what was taken over: it is in the registry). */
static void adoptions_done(void *ctx)
{
    struct vhostd *d = ctx;
    vhostd_ha_link_start(&d->ha);
    vhostd_prov_start(&d->prov, d->loop, &d->reg);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    LOG_N("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    static struct vhostd d;
    vfe_log_set_ident("vfe-vhostd");
    int rc = vhostd_parse_options(&d.opt, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    vfe_log_set_level(d.opt.log_level);
    d.argv = argv;
    if (!realpath("/proc/self/exe", d.exe))
        snprintf(d.exe, sizeof(d.exe), "%s", argv[0]);
    signal(SIGPIPE, SIG_IGN);
    vhostd_fd_budget_raise();
    d.lock_fd = -1;
    if (lock_rpc_path(&d) < 0)
        return 1;
    char msg[512];
    if ((rc = vhostd_prov_open(&d.prov, d.opt.state_dir, msg, sizeof(msg))) < 0) {
        LOG_E("%s", msg);
        return rc == -EINVAL || rc == -EPROTONOSUPPORT ? 2 : 1;
    }
    d.loop = EV_DEFAULT;
    d.started_at = ev_now(d.loop);
    int err;
    struct rpc_server_opts ro = {.mode = 0660, .gid = d.opt.rpc_group_set ? d.opt.rpc_gid : (gid_t)-1};
    d.rpc = rpc_server_create(d.loop, d.opt.rpc_path, &ro, &err);
    if (!d.rpc) {
        LOG_E("RPC socket %s: %s", d.opt.rpc_path, strerror(-err));
        return 1;
    }
    /* the peer's tools: its methods and formats only (rpc_compat.h), loopback only */
    struct rpc_tcp_opts to = {.lenient = true};
    if (d.opt.compat_tcp && (err = rpc_server_listen_tcp_opts(d.rpc, d.opt.compat_tcp, &to)) < 0) {
        LOG_E("--compat-tcp %s: %s", d.opt.compat_tcp,
              err == -EADDRNOTAVAIL ? "not a loopback address (only loopback is served)" : strerror(-err));
        rpc_server_destroy(d.rpc);
        return 1;
    }
    if (vhostd_reg_init(&d.reg, d.loop, &d.opt, msg, sizeof(msg)) < 0) {
        LOG_E("%s", msg);
        rpc_server_destroy(d.rpc);
        return 1;
    }
    vhostd_rpc_register(&d);
    vhostd_compat_register(&d);
    if (d.opt.ha_path) {
        /* before anything is provisioned: what the HA process holds is taken over, not reset; the device
         * calls run as jobs while the loop serves RPC; the link and the restore follow (adoptions_done) */
        vhostd_ha_fetch(&d.ha, d.loop, d.opt.ha_path, &d.reg);
        vhostd_ha_adopt(&d.ha, adoptions_done, &d);
    } else {
        vhostd_prov_start(&d.prov, d.loop, &d.reg);
    }
    ev_signal st, si;
    ev_signal_init(&st, on_signal, SIGTERM);
    ev_signal_init(&si, on_signal, SIGINT);
    ev_signal_start(d.loop, &st);
    ev_signal_start(d.loop, &si);
    LOG_N("ready: RPC on %s, PCI tree %s, state %s, HA %s%s%s%s%s", d.opt.rpc_path, d.opt.pci_root,
          d.opt.state_dir ? d.opt.state_dir : "off", d.opt.ha_path ? d.opt.ha_path : "off",
          d.opt.client ? ", vhost-user client mode" : "", d.opt.socket_group ? ", socket group " : "",
          d.opt.socket_group ? d.opt.socket_group : "",
          d.opt.ha_path && vhostd_ha_adopting(&d.ha) ? ", take-over running (state restored after it)" : "");
#ifdef HAVE_SYSTEMD
    sd_notify(0, "READY=1");
#endif
    ev_run(d.loop, 0);
#ifdef HAVE_SYSTEMD
    sd_notify(0, "STOPPING=1");
#endif
    rpc_server_destroy(d.rpc);
    vhostd_batch_stop_all(&d);    /* no further op of a running vf_batch; its file write happens now */
    vhostd_prov_close(&d.prov);   /* no more applying; the drain below is not a removal by the operator */
    if (d.opt.ha_path) {
        /* a planned crash: the devices run on, the sessions stay open (the HA process holds them) */
        vhostd_ha_handover(&d.ha);
        vhostd_reg_abandon(&d.reg);
        vhostd_ha_close(&d.ha);
        close(d.lock_fd);
        if (d.upgrade) {
            LOG_N("upgrade: handing over to %s", d.exe);
            execv(d.exe, d.argv);
            LOG_E("upgrade: exec %s: %s (the next start takes the devices over)", d.exe, strerror(errno));
            return 1;
        }
        LOG_N("handed over to vfe-vhostd-ha: the next vfe-vhostd takes every device and session over");
        return 0;
    }
    /* stop every VF's device before the process goes (bounded) */
    if (vhostd_reg_drain(&d.reg, drained, d.loop) > 0) {
        ev_timer bound;
        ev_timer_init(&bound, shutdown_timeout, 5., 0.);
        ev_timer_start(d.loop, &bound);
        ev_run(d.loop, 0);
    }
    vhostd_reg_close(&d.reg);
    close(d.lock_fd);   /* the lock file stays: removing it would race with a starting daemon */
    return 0;
}
