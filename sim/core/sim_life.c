/* Start and stop of the whole sim: PFs, initial VFs, sockets, tree. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"
#include "sim/core/sim_life.h"

static int pf_start(struct sim *s, const char *bdf, unsigned vfs)
{
    struct sim_fn *fn = sim_fn_create(s, NULL, 0, bdf);
    if (!fn)
        return -ENOMEM;
    struct sim_pf *pf = (struct sim_pf *)fn;
    s->pfs[s->npfs++] = pf;
    pf->total_vfs = s->opt.total_vfs;
    sim_pci_cfg_build(fn);
    int rc = sim_tree_write_fn(fn);
    rc = rc ?: sim_tree_write_pf_links(pf);
    rc = rc ?: sim_vfu_listen(fn);
    rc = rc ?: sim_pf_set_num_vfs(pf, vfs);
    rc = rc ?: sim_tree_watch_pf(pf);
    return rc;
}

int sim_start(struct sim *s)
{
    if (mkdir(s->opt.root, 0755) < 0 && errno != EEXIST) {
        LOG_E("cannot create --root %s: %m", s->opt.root);
        return -errno;
    }
    int rc = sim_net_init(s);
    if (rc < 0) {
        LOG_E("network setup failed: %s", strerror(-rc));
        return rc;
    }
    for (unsigned i = 0; i < s->opt.npfs && rc == 0; i++)
        rc = pf_start(s, s->opt.pfs[i].bdf, s->opt.pfs[i].vfs);
    rc = rc ?: sim_ctl_open(s);
    rc = rc ?: sim_tree_mark_ready(s);
    if (rc == 0)
        LOG_N("ready: %u PF(s) under %s", s->npfs, s->opt.root);
    return rc;
}

void sim_stop(struct sim *s)
{
    sim_ctl_close(s);
    for (unsigned i = s->npfs; i-- > 0;) {
        struct sim_pf *pf = s->pfs[i];
        sim_tree_unwatch_pf(pf);
        sim_pf_set_num_vfs(pf, 0);
        for (unsigned v = 0; v < SIM_MAX_VFS; v++)
            if (pf->vfs[v]) {   /* removed VFs stay allocated until here */
                sim_fn_destroy(pf->vfs[v]);
                pf->vfs[v] = NULL;
            }
        sim_tree_remove_fn(&pf->fn);
        sim_fn_destroy(&pf->fn);
        s->pfs[i] = NULL;
    }
    s->npfs = 0;
    sim_net_fini(s);
    sim_tree_remove_root(s);
}
