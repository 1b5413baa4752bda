/* vfe-vhostd: vDPA acceleration service for virtio-net VFs. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "app/vfe-vdpa/vhostd.h"
#include "lib/log/vfe_log.h"

static unsigned removals_left;

static void removal_done(void *ctx)
{
    if (--removals_left == 0)
        ev_break(ctx, EVBREAK_ALL);
}

static void shutdown_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    LOG_W("%u VF(s) did not stop within the shutdown bound", removals_left);
    ev_break(loop, EVBREAK_ALL);
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
    signal(SIGPIPE, SIG_IGN);
    d.loop = EV_DEFAULT;
    d.started_at = ev_now(d.loop);
    int err;
    d.rpc = rpc_server_create(d.loop, d.opt.rpc_path, NULL, &err);
    if (!d.rpc) {
        LOG_E("RPC socket %s: %s", d.opt.rpc_path, strerror(-err));
        return 1;
    }
    if (d.opt.compat_tcp && (err = rpc_server_listen_tcp(d.rpc, d.opt.compat_tcp)) < 0) {
        LOG_E("--compat-tcp %s: %s", d.opt.compat_tcp, strerror(-err));
        rpc_server_destroy(d.rpc);
        return 1;
    }
    vhostd_rpc_register(&d);
    ev_signal st, si;
    ev_signal_init(&st, on_signal, SIGTERM);
    ev_signal_init(&si, on_signal, SIGINT);
    ev_signal_start(d.loop, &st);
    ev_signal_start(d.loop, &si);
    LOG_N("ready: RPC on %s, PCI tree %s%s", d.opt.rpc_path, d.opt.pci_root,
          d.opt.client ? ", vhost-user client mode" : "");
#ifdef HAVE_SYSTEMD
    sd_notify(0, "READY=1");
#endif
    ev_run(d.loop, 0);
#ifdef HAVE_SYSTEMD
    sd_notify(0, "STOPPING=1");
#endif
    /* stop every VF's device before the process goes (bounded) */
    rpc_server_destroy(d.rpc);
    for (unsigned i = 0; i < VHOSTD_MAX_MANAGED_VFS; i++)
        if (d.vfs[i] && vhostd_vf_remove(&d, d.vfs[i], removal_done, d.loop) == 0)
            removals_left++;
    if (removals_left) {
        ev_timer bound;
        ev_timer_init(&bound, shutdown_timeout, 5., 0.);
        ev_timer_start(d.loop, &bound);
        ev_run(d.loop, 0);
    }
    for (unsigned i = 0; i < VHOSTD_MAX_PFS; i++)
        vhostd_pf_close(d.pfs[i]);
    return 0;
}
