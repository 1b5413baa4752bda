/* Start and stop of the whole sim: PFs, initial VFs, sockets, tree. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "lib/sock/vfe_unix_sock.h"
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
    rc = rc ?: sim_msix_pf_start(pf);
    rc = rc ?: sim_vfu_listen(fn);
    rc = rc ?: sim_pf_set_num_vfs(pf, vfs);
    rc = rc ?: sim_tree_watch_pf(pf);
    return rc;
}

/* Who holds the root: the pid in ROOT/ready, if it can be read. */
static void holder(const struct sim *s, char *out, size_t len)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/ready", s->opt.root);
    snprintf(out, len, "unknown pid");
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    int pid;
    if (fscanf(f, "%d", &pid) == 1 && pid > 0)
        snprintf(out, len, "pid %d", pid);
    fclose(f);
}

/* One sim per root: an flock on ROOT.lock, beside the root (never inside it,
 * so removing the tree cannot remove the lock).  The root is resolved first,
 * so two spellings of one directory share one lock. */
static int lock_root(struct sim *s)
{
    if (mkdir(s->opt.root, 0755) == 0)
        s->root_created = true;
    else if (errno != EEXIST) {
        LOG_E("cannot create --root %s: %m", s->opt.root);
        return -errno;
    }
    char real[PATH_MAX];
    if (!realpath(s->opt.root, real)) {
        int e = -errno;
        LOG_E("--root %s: %s", s->opt.root, strerror(-e));
        return e;
    }
    int rc = vfe_path_lock(real, &s->root_lock_fd);
    if (rc == -EBUSY) {
        char who[32];
        holder(s, who, sizeof(who));
        LOG_E("--root %s is served by another vfe-dpu-sim (%s, lock %s.lock held): not starting, "
              "that sim keeps running", s->opt.root, who, real);
    } else if (rc < 0) {
        LOG_E("--root %s: cannot take the lock %s.lock: %s", s->opt.root, real, strerror(-rc));
    }
    return rc;
}

int sim_start(struct sim *s)
{
    s->root_lock_fd = -1;
    int rc = lock_root(s);
    if (rc < 0) {
        if (s->root_created)
            rmdir(s->opt.root);
        s->root_created = false;
        return rc;
    }
    rc = sim_net_init(s);
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
    if (s->root_lock_fd < 0)
        return;   /* another sim holds the root: nothing here is ours */
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
        sim_vfu_close(&pf->fn);   /* its socket first: the directory must be empty */
        sim_tree_remove_fn(&pf->fn);
        sim_fn_destroy(&pf->fn);
        s->pfs[i] = NULL;
    }
    s->npfs = 0;
    sim_msix_fini(s);
    sim_net_fini(s);
    sim_tree_remove_root(s);
    close(s->root_lock_fd);   /* ROOT.lock itself stays: removing it would race a new sim */
    s->root_lock_fd = -1;
}
