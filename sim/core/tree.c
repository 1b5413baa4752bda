/* The sysfs-shaped tree under --root: one directory per function, the
 * SR-IOV files of each PF, and the sriov_numvfs watch. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"

static int write_file(const char *dir, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int write_file(const char *dir, const char *name, const char *fmt, ...)
{
    char path[700], tmp[720];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        int err = -errno;
        unlink(tmp);
        return err;
    }
    return 0;
}

int sim_tree_write_uint(const char *dir, const char *name, unsigned v)
{
    return write_file(dir, name, "%u\n", v);
}

static int link_at(const char *dir, const char *name, const char *target)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
    return symlink(target, path) < 0 ? -errno : 0;
}

int sim_tree_write_fn(struct sim_fn *fn)
{
    if (mkdir(fn->dir, 0755) < 0 && errno != EEXIST) {
        LOG_E("%s: cannot create %s: %m", fn->bdf, fn->dir);
        return -errno;
    }
    int rc = write_file(fn->dir, "vendor", "0x%04x\n", SIM_VENDOR_ID);
    rc = rc ?: write_file(fn->dir, "device", "0x%04x\n", SIM_DEVICE_ID_NET);
    rc = rc ?: write_file(fn->dir, "class", "0x020000\n");
    if (!fn->is_pf) {
        char target[40];
        snprintf(target, sizeof(target), "../%s", fn->pf->bdf);
        rc = rc ?: link_at(fn->dir, "physfn", target);
    }
    if (rc < 0)
        LOG_E("%s: cannot write its tree: %s", fn->bdf, strerror(-rc));
    return rc;
}

int sim_tree_write_pf_links(struct sim_pf *pf)
{
    const char *dir = pf->fn.dir;
    int rc = write_file(dir, "sriov_totalvfs", "%u\n", pf->total_vfs);
    /* rewrite sriov_numvfs only when it says something else: a write by the
     * operator that just happened must not be replaced by the old value */
    char path[700], cur[32] = "", want[32];
    snprintf(path, sizeof(path), "%s/sriov_numvfs", dir);
    snprintf(want, sizeof(want), "%u\n", pf->num_vfs);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(cur, sizeof(cur), f))
            cur[0] = '\0';
        fclose(f);
    }
    if (rc == 0 && strcmp(cur, want))
        rc = write_file(dir, "sriov_numvfs", "%s", want);
    for (unsigned v = 0; v < pf->total_vfs && rc == 0; v++) {
        char name[32], target[40];
        snprintf(name, sizeof(name), "virtfn%u", v);
        struct sim_fn *vf = v < pf->num_vfs ? pf->vfs[v] : NULL;
        if (vf && !vf->removed) {
            snprintf(target, sizeof(target), "../%s", vf->bdf);
            rc = link_at(dir, name, target);
        } else {
            snprintf(path, sizeof(path), "%s/%s", dir, name);
            unlink(path);
        }
    }
    return rc;
}

/* The socket is not here: its listener removes it (only if still its own)
 * and must be closed first. */
static const char *const fn_files[] = {"vendor", "device", "class", "physfn", "sriov_totalvfs",
                                       "sriov_numvfs", "sriov_vf_total_msix", "sriov_vf_msix_count"};

void sim_tree_remove_fn(struct sim_fn *fn)
{
    char path[700];
    for (size_t i = 0; i < sizeof(fn_files) / sizeof(fn_files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fn->dir, fn_files[i]);
        unlink(path);
    }
    if (fn->is_pf) {
        struct sim_pf *pf = (struct sim_pf *)fn;
        for (unsigned v = 0; v < pf->total_vfs; v++) {
            snprintf(path, sizeof(path), "%s/virtfn%u", fn->dir, v);
            unlink(path);
        }
    }
    if (rmdir(fn->dir) < 0 && errno != ENOENT)
        LOG_W("%s: %s not removed: %m", fn->bdf, fn->dir);
}

/* Polled, not watched with ev_stat: a rewrite of the same size within the
 * same second leaves every field ev_stat compares unchanged. */
static void numvfs_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sim_pf *pf = w->data;
    char path[700], buf[32] = "";
    snprintf(path, sizeof(path), "%s/sriov_numvfs", pf->fn.dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;   /* being rewritten: the next poll has the value */
    buf[n] = '\0';
    char *end;
    unsigned long want = strtoul(buf, &end, 10);
    while (*end == '\n' || *end == ' ')
        end++;
    if (*end || end == buf || buf[0] == '-' || want > pf->total_vfs) {
        LOG_W("%s: sriov_numvfs: invalid value '%.*s' (0..%u)", pf->fn.bdf, (int)strcspn(buf, "\n"), buf,
              pf->total_vfs);
        write_file(pf->fn.dir, "sriov_numvfs", "%u\n", pf->num_vfs);
        return;
    }
    if (want == pf->num_vfs)
        return;
    int rc = sim_pf_set_num_vfs(pf, (unsigned)want);
    if (rc < 0)
        LOG_E("%s: setting %lu VFs failed: %s", pf->fn.bdf, want, strerror(-rc));
}

int sim_tree_watch_pf(struct sim_pf *pf)
{
    ev_timer_init(&pf->numvfs_poll, numvfs_cb, 0.1, 0.1);
    pf->numvfs_poll.data = pf;
    ev_timer_start(pf->fn.sim->loop, &pf->numvfs_poll);
    return 0;
}

void sim_tree_unwatch_pf(struct sim_pf *pf)
{
    ev_timer_stop(pf->fn.sim->loop, &pf->numvfs_poll);
}

int sim_tree_mark_ready(struct sim *s)
{
    int rc = write_file(s->opt.root, "ready", "%d\n", (int)getpid());
    s->ready_written = rc == 0;
    return rc;
}

void sim_tree_remove_root(struct sim *s)
{
    char path[700];
    if (s->ready_written) {
        snprintf(path, sizeof(path), "%s/ready", s->opt.root);
        unlink(path);
        s->ready_written = false;
    }
    if (s->root_created)
        rmdir(s->opt.root);   /* only when empty: it may hold files that are not ours */
}
