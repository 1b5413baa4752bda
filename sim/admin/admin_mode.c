/* Run state of a VF as the admin commands see it: nvidia migration states
 * and virtio device modes. */
#include <stdio.h>

#include "lib/log/vfe_log.h"
#include "sim/admin/admin_priv.h"

const char *sim_adm_mig_name(enum sim_mig_state st)
{
    switch (st) {
    case SIM_MIG_INIT: return "INIT";
    case SIM_MIG_RUNNING: return "RUNNING";
    case SIM_MIG_QUIESCED: return "QUIESCED";
    case SIM_MIG_FREEZED: return "FREEZED";
    }
    return "?";
}

static void set_state(struct sim_fn *vf, enum sim_mig_state to)
{
    enum sim_mig_state from = vf->mig_state;
    if (from == to)
        return;
    LOG_I("vf %s: mig state %s -> %s", vf->bdf, sim_adm_mig_name(from), sim_adm_mig_name(to));
    vf->mig_state = to;
}

/* Any state may move among RUNNING, QUIESCED and FREEZED; INIT (fresh or
 * reset VF, not yet under admin control) may go to any of them; nothing
 * goes back to INIT except a device reset. */
enum adm_err sim_adm_mig_modify(struct sim_fn *vf, unsigned to, char *why, size_t why_len)
{
    if (to != SIM_MIG_RUNNING && to != SIM_MIG_QUIESCED && to != SIM_MIG_FREEZED) {
        snprintf(why, why_len, "mig state %s -> %u: not a target state", sim_adm_mig_name(vf->mig_state), to);
        return ADM_EINVAL;
    }
    set_state(vf, (enum sim_mig_state)to);
    if (to == SIM_MIG_RUNNING)
        sim_net_resume(vf);   /* kicks may have been missed meanwhile */
    return ADM_OK;
}

enum adm_err sim_adm_mode_set(struct sim_fn *vf, uint8_t flags, char *why, size_t why_len)
{
    if (flags & ~(SIM_ADM_MODE_STOPPED | SIM_ADM_MODE_FROZEN)) {
        snprintf(why, why_len, "mode flags 0x%x have unknown bits", flags);
        return ADM_EINVAL;
    }
    bool was_stopped = vf->stopped;
    if (flags & SIM_ADM_MODE_FROZEN) {
        vf->stopped = true;
        set_state(vf, SIM_MIG_FREEZED);
    } else if (flags & SIM_ADM_MODE_STOPPED) {
        vf->stopped = true;
        if (vf->mig_state == SIM_MIG_FREEZED)
            set_state(vf, SIM_MIG_QUIESCED);
    } else {
        vf->stopped = false;
        set_state(vf, SIM_MIG_RUNNING);
    }
    if (was_stopped != vf->stopped)
        LOG_I("vf %s: %s", vf->bdf, vf->stopped ? "stopped" : "running");
    if (!vf->stopped)
        sim_net_resume(vf);
    return ADM_OK;
}
