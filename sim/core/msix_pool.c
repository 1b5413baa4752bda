/*
 * Dynamic MSI-X of the VFs: each PF owns a pool of vectors
 * (DIR/<pf>/sriov_vf_total_msix) and each VF holds a count of them
 * (DIR/<vf>/sriov_vf_msix_count), as Linux exposes them.  The queues a VF
 * offers follow its vectors: one per queue (each data queue and the control
 * queue, as vfe programs them: queue q on vector q + 1) plus one for the
 * config interrupt, so
 *     queue pairs = min((vectors - 2) / 2, SIM_MAX_QPAIRS), 0 below 4 vectors.
 * A count changes only while the VF has no driver (no vfio-user client and
 * status 0), through a write of its file, the control socket, a reclaim of the
 * whole PF or a PF reset.  Writes of the files are seen through inotify, and
 * once more when a client connects, so a write made just before a connect is
 * always in force for that client.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <linux/pci_regs.h>

#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"
#include "sim/vfu/vfu_server.h"

#define VF_FILE "sriov_vf_msix_count"
#define PF_FILE "sriov_vf_total_msix"

/* Writes seen are applied MSIX_SETTLE_S later: a driver that
 * closed its vfio-user connection and then wrote the file (a release) must
 * find the sim already done with that connection's EOF. */
#define MSIX_SETTLE_S 0.02
#define MSIX_MAX_PENDING 64

struct msix_watch {
    int fd;          /* inotify, owned */
    ev_io w;
    ev_timer settle;
    char pending[MSIX_MAX_PENDING][16];   /* BDFs whose file changed */
    unsigned npending;
    bool overflow;   /* more than fit: look at every VF */
};

unsigned sim_msix_pairs(unsigned vectors)
{
    if (vectors < 4)
        return 0;
    unsigned p = (vectors - 2) / 2;
    return p > SIM_MAX_QPAIRS ? SIM_MAX_QPAIRS : p;
}

static bool vf_present(const struct sim_fn *vf)
{
    return vf && !vf->removed;
}

bool sim_msix_vf_in_use(const struct sim_fn *vf)
{
    const struct vfu_srv *srv = vf->vfu;
    return (srv && srv->csock >= 0) || vf->status != 0;
}

unsigned sim_msix_free(const struct sim_pf *pf)
{
    unsigned used = 0;
    /* up to total_vfs: VFs being added are counted before num_vfs grows */
    for (unsigned v = 0; v < pf->total_vfs && v < SIM_MAX_VFS; v++)
        if (vf_present(pf->vfs[v]))
            used += pf->vfs[v]->msix_count;
    return used >= pf->msix_total ? 0 : pf->msix_total - used;
}

static unsigned default_count(const struct sim_pf *pf)
{
    const struct sim_options *o = &pf->fn.sim->opt;
    unsigned even = o->total_vfs ? pf->msix_total / o->total_vfs : 0;
    unsigned today = 2 * o->max_qpairs + 2;
    return even < today ? even : today;
}

/* The device as a driver sees it after the change: MSI-X table size, queue
 * count in the common config, max_virtqueue_pairs in the net config. */
static void apply(struct sim_fn *vf, unsigned vectors)
{
    unsigned pairs = sim_msix_pairs(vectors);
    vf->msix_count = (uint16_t)vectors;
    vf->num_queues = (uint16_t)(pairs ? 2 * pairs + 1 : 0);   /* data queues and the control queue */
    vf->net_cfg.max_virtqueue_pairs = htole16((uint16_t)pairs);
    uint8_t *flags = vf->cfg + SIM_MSIX_CAP_OFF + PCI_MSIX_FLAGS;
    uint16_t f = (uint16_t)(flags[0] | flags[1] << 8);
    f = (uint16_t)((f & ~PCI_MSIX_FLAGS_QSIZE) | (vectors ? vectors - 1 : 0));
    flags[0] = (uint8_t)f;
    flags[1] = (uint8_t)(f >> 8);
    vf->config_generation++;
}

static void write_vf_file(struct sim_fn *vf)
{
    if (sim_tree_write_uint(vf->dir, VF_FILE, vf->msix_count) < 0)
        LOG_W("%s: cannot write %s: %m", vf->bdf, VF_FILE);
}

int sim_msix_set(struct sim_fn *vf, unsigned vectors, char *why, size_t len)
{
    struct sim_pf *pf = (struct sim_pf *)vf->pf;
    if (vf->is_pf) {
        snprintf(why, len, "%s is a PF: its vectors are not from the pool", vf->bdf);
        return -EINVAL;
    }
    if (vectors > SIM_VF_MAX_MSIX) {
        snprintf(why, len, "%s: %u vectors, at most %u per VF", vf->bdf, vectors, SIM_VF_MAX_MSIX);
        return -ERANGE;
    }
    if (vectors == vf->msix_count)
        return 0;
    if (sim_msix_vf_in_use(vf)) {
        snprintf(why, len, "%s has a driver (vfio-user client or status set): its vectors cannot change",
                 vf->bdf);
        return -EBUSY;
    }
    unsigned avail = sim_msix_free(pf) + vf->msix_count;
    if (vectors > avail) {
        snprintf(why, len, "%s: %u vectors asked, %u free in the pool of %s (the VF holds %u)", vf->bdf, vectors,
                 sim_msix_free(pf), pf->fn.bdf, vf->msix_count);
        return -ENOSPC;
    }
    LOG_N("%s: %u MSI-X vectors (was %u): %u queue pairs; %u free in %s", vf->bdf, vectors, vf->msix_count,
          sim_msix_pairs(vectors), avail - vectors, pf->fn.bdf);
    apply(vf, vectors);
    write_vf_file(vf);
    return 0;
}

/* -1: unreadable; -2: not a count. */
static long read_vf_file(const struct sim_fn *vf, char *raw, size_t len)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", vf->dir, VF_FILE);
    raw[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, raw, len - 1);
    close(fd);
    if (n <= 0)
        return -1;   /* being rewritten: the next event has the value */
    raw[n] = '\0';
    raw[strcspn(raw, "\n")] = '\0';
    char *end;
    unsigned long v = strtoul(raw, &end, 10);
    if (!raw[0] || *end || raw[0] == '-' || raw[0] == ' ' || v > 0xffff)
        return -2;
    return (long)v;
}

static void sync_file(struct sim_fn *vf)
{
    char raw[32], why[300];
    long v = read_vf_file(vf, raw, sizeof(raw));
    if (v == -1 || v == vf->msix_count)
        return;
    if (v == -2) {
        LOG_W("%s: %s: invalid value '%s' (0..%u)", vf->bdf, VF_FILE, raw, SIM_VF_MAX_MSIX);
        write_vf_file(vf);
        return;
    }
    if (sim_msix_set(vf, (unsigned)v, why, sizeof(why)) < 0) {
        LOG_W("%s: write of %s refused: %s", vf->bdf, VF_FILE, why);
        write_vf_file(vf);
    }
}

int sim_msix_sync(struct sim_fn *vf)
{
    if (vf->is_pf || vf->removed)
        return 0;
    sync_file(vf);
    if (!sim_msix_pairs(vf->msix_count)) {
        LOG_W("%s: %u MSI-X vectors: no queue pair (4 vectors at least): no driver can use it", vf->bdf,
              vf->msix_count);
        return -ENOSPC;
    }
    return 0;
}

static struct sim_fn *vf_by_wd(struct sim *s, int wd)
{
    for (unsigned i = 0; i < s->npfs; i++)
        for (unsigned v = 0; v < s->pfs[i]->total_vfs && v < SIM_MAX_VFS; v++) {
            struct sim_fn *vf = s->pfs[i]->vfs[v];
            if (vf && vf->msix_wd == wd)
                return vf;
        }
    return NULL;
}

static void settle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct sim *s = t->data;
    struct msix_watch *m = s->msix;
    if (m->overflow) {
        for (unsigned i = 0; i < s->npfs; i++)
            for (unsigned v = 0; v < s->pfs[i]->num_vfs; v++)
                if (vf_present(s->pfs[i]->vfs[v]))
                    sync_file(s->pfs[i]->vfs[v]);
    } else {
        for (unsigned i = 0; i < m->npending; i++) {
            struct sim_fn *vf = sim_find_fn(s, m->pending[i]);   /* it may be gone by now */
            if (vf && !vf->is_pf && !vf->removed)
                sync_file(vf);
        }
    }
    m->npending = 0;
    m->overflow = false;
}

static void note_pending(struct sim *s, const struct sim_fn *vf)
{
    struct msix_watch *m = s->msix;
    unsigned i = 0;
    while (i < m->npending && strcmp(m->pending[i], vf->bdf))
        i++;
    if (i == m->npending) {
        if (m->npending < MSIX_MAX_PENDING)
            snprintf(m->pending[m->npending++], sizeof(m->pending[0]), "%s", vf->bdf);
        else
            m->overflow = true;
    }
    if (!ev_is_active(&m->settle)) {
        ev_timer_set(&m->settle, MSIX_SETTLE_S, 0.);
        ev_timer_start(s->loop, &m->settle);
    }
}

static void inotify_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sim *s = w->data;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(w->fd, buf, sizeof(buf));
    if (n <= 0)
        return;
    for (char *p = buf; p < buf + n;) {
        const struct inotify_event *ev = (const struct inotify_event *)p;
        p += sizeof(*ev) + ev->len;
        if (ev->len && !strcmp(ev->name, VF_FILE)) {
            struct sim_fn *vf = vf_by_wd(s, ev->wd);
            if (vf && !vf->removed)
                note_pending(s, vf);
        }
    }
}

static struct msix_watch *watch_get(struct sim *s)
{
    if (s->msix)
        return s->msix;
    struct msix_watch *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (m->fd < 0) {
        LOG_W("MSI-X: inotify unavailable (%m): writes of %s apply when a client connects", VF_FILE);
        free(m);
        return NULL;
    }
    ev_io_init(&m->w, inotify_cb, m->fd, EV_READ);
    m->w.data = s;
    ev_io_start(s->loop, &m->w);
    ev_timer_init(&m->settle, settle_cb, MSIX_SETTLE_S, 0.);
    m->settle.data = s;
    s->msix = m;
    return m;
}

void sim_msix_fini(struct sim *s)
{
    struct msix_watch *m = s->msix;
    if (!m)
        return;
    ev_io_stop(s->loop, &m->w);
    ev_timer_stop(s->loop, &m->settle);
    close(m->fd);
    free(m);
    s->msix = NULL;
}

int sim_msix_pf_start(struct sim_pf *pf)
{
    const struct sim_options *o = &pf->fn.sim->opt;
    pf->msix_total = o->msix_pool ? o->msix_pool : o->total_vfs * (2 * o->max_qpairs + 2);
    pf->fn.msix_count = SIM_MSIX_VECTORS;
    int rc = sim_tree_write_uint(pf->fn.dir, PF_FILE, pf->msix_total);
    if (rc < 0)
        LOG_E("%s: cannot write %s: %s", pf->fn.bdf, PF_FILE, strerror(-rc));
    return rc;
}

void sim_msix_vf_added(struct sim_fn *vf)
{
    struct sim_pf *pf = (struct sim_pf *)vf->pf;
    unsigned want = default_count(pf), avail = sim_msix_free(pf);
    vf->msix_count = 0;   /* not counted as used yet */
    apply(vf, want < avail ? want : avail);
    write_vf_file(vf);
    vf->msix_wd = -1;
    struct msix_watch *m = watch_get(vf->sim);
    if (m && (vf->msix_wd = inotify_add_watch(m->fd, vf->dir, IN_CLOSE_WRITE | IN_MOVED_TO)) < 0) {
        static bool warned;   /* thousands of VFs past the watch limit: one line */
        if (!warned)
            LOG_W("%s: cannot watch %s (%m): its %s writes apply when a client connects (further such VFs not "
                  "logged)", vf->bdf, vf->dir, VF_FILE);
        warned = true;
    }
}

void sim_msix_vf_removed(struct sim_fn *vf)
{
    struct msix_watch *m = vf->sim->msix;
    if (m && vf->msix_wd >= 0)
        inotify_rm_watch(m->fd, vf->msix_wd);
    vf->msix_wd = -1;
}

int sim_msix_reclaim(struct sim_pf *pf, char *why, size_t len)
{
    for (unsigned v = 0; v < pf->num_vfs; v++) {
        struct sim_fn *vf = pf->vfs[v];
        if (vf_present(vf) && vf->msix_count && sim_msix_vf_in_use(vf)) {
            snprintf(why, len, "%s: VF %s is enabled: reclaim only while no VF has a driver", pf->fn.bdf, vf->bdf);
            return -EBUSY;
        }
    }
    for (unsigned v = 0; v < pf->num_vfs; v++) {
        struct sim_fn *vf = pf->vfs[v];
        if (vf_present(vf) && vf->msix_count) {
            apply(vf, 0);
            write_vf_file(vf);
        }
    }
    LOG_N("%s: MSI-X reclaimed: %u of %u vectors free", pf->fn.bdf, sim_msix_free(pf), pf->msix_total);
    return 0;
}

void sim_msix_pf_reset(struct sim_pf *pf)
{
    /* the default spread again, for every VF without a driver */
    for (unsigned v = 0; v < pf->num_vfs; v++) {
        struct sim_fn *vf = pf->vfs[v];
        if (vf_present(vf) && !sim_msix_vf_in_use(vf))
            apply(vf, 0);
    }
    unsigned want = default_count(pf);
    for (unsigned v = 0; v < pf->num_vfs; v++) {
        struct sim_fn *vf = pf->vfs[v];
        if (!vf_present(vf) || sim_msix_vf_in_use(vf))
            continue;
        unsigned avail = sim_msix_free(pf);
        apply(vf, want < avail ? want : avail);
        write_vf_file(vf);
    }
    LOG_N("%s: MSI-X back to the default spread: %u of %u vectors free", pf->fn.bdf, sim_msix_free(pf),
          pf->msix_total);
}

json_t *sim_msix_ctl(struct sim *s, json_t *req, char *why, size_t len)
{
    const char *bdf = json_string_value(json_object_get(req, "bdf"));
    struct sim_fn *fn = bdf ? sim_find_fn(s, bdf) : NULL;
    if (!fn) {
        snprintf(why, len, "msix: unknown or missing \"bdf\" %s", bdf ? bdf : "");
        return NULL;
    }
    json_t *jv = json_object_get(req, "vectors"), *jr = json_object_get(req, "reclaim");
    if (jv) {
        if (!json_is_integer(jv) || json_integer_value(jv) < 0 || json_integer_value(jv) > 0xffff) {
            snprintf(why, len, "msix: \"vectors\" must be 0..%u", SIM_VF_MAX_MSIX);
            return NULL;
        }
        if (sim_msix_set(fn, (unsigned)json_integer_value(jv), why, len) < 0)
            return NULL;
    } else if (jr && json_is_true(jr)) {
        if (!fn->is_pf) {
            snprintf(why, len, "msix: reclaim needs a PF, %s is a VF", fn->bdf);
            return NULL;
        }
        if (sim_msix_reclaim((struct sim_pf *)fn, why, len) < 0)
            return NULL;
    } else if (jr && !json_is_boolean(jr)) {
        snprintf(why, len, "msix: \"reclaim\" must be true or false");
        return NULL;
    }
    struct sim_pf *pf = (struct sim_pf *)fn->pf;
    if (!fn->is_pf)
        return json_pack("{s:b, s:s, s:i, s:i, s:b}", "ok", 1, "bdf", fn->bdf, "vectors", fn->msix_count,
                         "queue_pairs", sim_msix_pairs(fn->msix_count), "in_use", sim_msix_vf_in_use(fn));
    json_t *vfs = json_array();
    for (unsigned v = 0; v < pf->num_vfs; v++) {
        struct sim_fn *vf = pf->vfs[v];
        if (vf_present(vf))
            json_array_append_new(vfs, json_pack("{s:s, s:i, s:i}", "bdf", vf->bdf, "vectors", vf->msix_count,
                                                 "queue_pairs", sim_msix_pairs(vf->msix_count)));
    }
    return json_pack("{s:b, s:s, s:i, s:i, s:o}", "ok", 1, "bdf", pf->fn.bdf, "total", pf->msix_total, "free",
                     sim_msix_free(pf), "vfs", vfs);
}
