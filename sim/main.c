/* vfe-dpu-sim: a software DPU serving virtio-net functions over vfio-user. */
#include <signal.h>
#include <stdio.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"
#include "sim/core/sim_life.h"

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    LOG_N("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    static struct sim s;
    vfe_log_set_ident("vfe-dpu-sim");
    int rc = sim_parse_options(&s.opt, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    s.loop = EV_DEFAULT;
    ev_signal sig_term, sig_int;
    ev_signal_init(&sig_term, on_signal, SIGTERM);
    ev_signal_init(&sig_int, on_signal, SIGINT);
    ev_signal_start(s.loop, &sig_term);
    ev_signal_start(s.loop, &sig_int);
    rc = sim_start(&s);
    if (rc == 0) {
#ifdef HAVE_SYSTEMD
        /* systemd (Type=notify): the tree, ROOT/ready and every socket exist now */
        sd_notify(0, "READY=1");
#endif
        ev_run(s.loop, 0);
#ifdef HAVE_SYSTEMD
        sd_notify(0, "STOPPING=1");
#endif
    }
    sim_stop(&s);
    return rc == 0 ? 0 : 1;
}
