/* A VF's device half across a daemon restart (HA): export, adopt without
 * touching the device, and resubmit the admin step a crash interrupted. */
#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

#include <errno.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "drivers/bus/vfio/vfe_dma_apply.h"
#include "drivers/common/virtio_mi/vfe_ha_blob.h"
#include "lib/log/vfe_log.h"

#define VF_MAGIC 0x46565646u   /* "FVVF" */
#define VF_VERSION 1

struct vf_snap_map {
    uint64_t gpa, size, fd_offset;
} __attribute__((packed));

struct vf_snap {
    uint8_t head[VFE_HA_BLOB_HEAD];
    uint16_t vf_num, max_pairs, num_queues, nsaved;
    uint8_t mac[6], state, step, log_active, log_mapped, nmaps, log_mode;   /* log_mode 0 in old blobs: push;
                                                                            * VDPA_LOG_SOFTWARE: software */
    uint64_t dev_features, log_size;
    uint64_t kick_set, call_set;   /* bit q: ring q's eventfd is attached in the device */
    uint32_t resumed;
    uint16_t saved_avail[VDPA_MAX_RINGS];
    struct vf_snap_map maps[VDPA_MAX_REGIONS];
} __attribute__((packed));

_Static_assert(sizeof(struct vf_snap) <= VDPA_VF_SNAPSHOT_MAX, "VF snapshot bound");

void vdpa_vf_set_observer(struct vdpa_vf *v, void (*fn)(void *ctx), void *ctx)
{
    v->observer = fn;
    v->observer_ctx = ctx;
}

unsigned vdpa_vf_resumed(const struct vdpa_vf *v) { return v->resumed; }

unsigned vdpa_vf_saved(const struct vdpa_vf *v, uint16_t *idx)
{
    memcpy(idx, v->saved_avail, sizeof(uint16_t) * v->nsaved);
    return v->nsaved;
}
bool vdpa_vf_step_pending(const struct vdpa_vf *v) { return v->step != VDPA_STEP_NONE; }

int vdpa_vf_export(const struct vdpa_vf *v, void *buf, size_t cap, size_t *len)
{
    if (v->direct)
        return -EOPNOTSUPP;   /* resuming replays admin steps; a direct VF is reset by the next daemon */
    if (cap < sizeof(struct vf_snap))
        return -ENOSPC;
    struct vf_snap s;
    memset(&s, 0, sizeof(s));
    vfe_ha_blob_put_head(s.head, VF_MAGIC, VF_VERSION, sizeof(s));
    s.vf_num = v->vf_num;
    s.max_pairs = v->max_pairs;
    s.num_queues = v->num_queues;
    s.nsaved = (uint16_t)v->nsaved;
    memcpy(s.mac, v->mac, 6);
    s.state = (uint8_t)v->state;
    s.step = v->step;
    s.log_active = v->log_active;
    s.log_mapped = v->log_mapped;
    s.nmaps = (uint8_t)v->nmaps;
    s.log_mode = v->log_mode;
    s.dev_features = v->dev_features;
    s.log_size = v->log_size;
    for (unsigned q = 0; q < VDPA_MAX_RINGS; q++) {
        s.kick_set |= (uint64_t)v->kick_set[q] << q;
        s.call_set |= (uint64_t)v->call_set[q] << q;
    }
    s.resumed = v->resumed;
    memcpy(s.saved_avail, v->saved_avail, sizeof(s.saved_avail));
    for (unsigned i = 0; i < v->nmaps; i++)
        s.maps[i] = (struct vf_snap_map){v->maps[i].gpa, v->maps[i].size, v->maps[i].fd_offset};
    memcpy(buf, &s, sizeof(s));
    *len = sizeof(s);
    return 0;
}

static int check(const struct vf_snap *s, const char *bdf)
{
    const char *why = NULL;
    if (s->state > VDPA_VF_STOPPED)
        why = "state";
    else if (s->step >= VDPA_STEP_MAX)
        why = "step";
    else if (s->log_active > 1 || s->log_mapped > 1 ||
             (s->log_mode && s->log_mode != VFE_MIG_TRACK_PUSH_BITMAP && s->log_mode != VFE_MIG_TRACK_PULL_BITMAP &&
              s->log_mode != VDPA_LOG_SOFTWARE))
        why = "log flags";
    else if (s->nmaps > VDPA_MAX_REGIONS)
        why = "map count";
    else if (s->nsaved > VDPA_MAX_RINGS || s->num_queues == 0 || s->num_queues > 2 * VDPA_MAX_RINGS)
        why = "ring counts";
    for (unsigned i = 0; !why && i < s->nmaps; i++)
        if (!s->maps[i].size || s->maps[i].gpa + s->maps[i].size < s->maps[i].gpa)
            why = "a map";
    if (why)
        LOG_E("%s: VF snapshot refused: bad %s", bdf, why);
    return why ? -EINVAL : 0;
}

/* The fd of the front-end region that backs map m (same range, same offset). */
static const struct vdpa_region *region_of(const struct vf_snap_map *m, const struct vdpa_region *r, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (r[i].gpa == m->gpa && r[i].size == m->size && r[i].fd_offset == m->fd_offset)
            return &r[i];
    return NULL;
}

struct vdpa_vf *vdpa_vf_adopt(struct ev_loop *loop, const struct vdpa_pf_ref *pf, struct vfe_transport *t,
                              const char *dma_domain, const void *blob, size_t len, const struct vdpa_region *regions,
                              unsigned nregions, const struct vfe_virtio_pci *vp_read,
                              const struct vfe_vpci_state *st_read, int *err)
{
    uint16_t version;
    struct vf_snap s;
    if ((*err = vfe_ha_blob_check_head(blob, len, VF_MAGIC, VF_VERSION, "VF snapshot", &version)) < 0)
        return NULL;
    if (len != sizeof(s)) {
        LOG_E("%s: VF snapshot of %zu bytes, version %u has %zu", t->bdf, len, version, sizeof(s));
        *err = -EINVAL;
        return NULL;
    }
    memcpy(&s, blob, sizeof(s));
    if ((*err = check(&s, t->bdf)) < 0)
        return NULL;
    struct vdpa_vf *v = calloc(1, sizeof(*v));
    if (!v || vdpa_vf_alloc_rings(v, s.num_queues) < 0) {
        free(v);
        *err = -ENOMEM;
        return NULL;
    }
    v->loop = loop;
    v->pf = *pf;
    v->vf_num = s.vf_num;
    v->t = t;
    ev_timer_init(&v->defer, vdpa_vf_defer_cb, 0., 0.);
    v->defer.data = v;
    struct vfe_vpci_state st;
    int rc = 0;
    if (vp_read && st_read && vp_read->t == t) {   /* read on a worker before (vdpa_session_adopt_in) */
        v->vp = *vp_read;
        st = *st_read;
    } else {
        rc = vfe_vpci_adopt(&v->vp, t, &st);
    }
    if (rc == 0 && st.device_features != s.dev_features) {
        LOG_E("%s: the device offers %#llx, the snapshot says %#llx: not the same device", t->bdf,
              (unsigned long long)st.device_features, (unsigned long long)s.dev_features);
        rc = -EPROTO;
    }
    struct stat fst[VDPA_MAX_REGIONS];
    const struct vdpa_region *backing[VDPA_MAX_REGIONS];
    for (unsigned i = 0; rc == 0 && i < s.nmaps; i++) {
        backing[i] = region_of(&s.maps[i], regions, nregions);
        if (!backing[i] || fstat(backing[i]->fd, &fst[i]) < 0) {
            LOG_E("%s: DMA map [%#llx, +%#llx) has no region in the session: cannot be taken over", t->bdf,
                  (unsigned long long)s.maps[i].gpa, (unsigned long long)s.maps[i].size);
            rc = -EPROTO;
        }
    }
    if (rc == 0 && !(v->dom = vfe_dma_domain_join_adopted(dma_domain, t)))
        rc = -errno;
    if (rc == 0 && s.nmaps)
        rc = vdpa_vf_maps_alloc(v);
    for (unsigned i = 0; rc == 0 && i < s.nmaps; i++) {
        const struct vf_snap_map *m = &s.maps[i];
        rc = vfe_dma_domain_adopt_map(v->dom, v, m->gpa, m->size, backing[i]->fd, m->fd_offset,
                                      VFE_DMA_READ | VFE_DMA_WRITE);
        if (rc == 0)
            v->maps[v->nmaps++] = (struct vdpa_map){m->gpa, m->size, m->fd_offset, fst[i].st_dev, fst[i].st_ino};
    }
    /* A VF that does no DMA now gets its maps again: the record may be older
     * than an unmap its predecessor did (an identical map the device holds is
     * replaced by itself).  A running VF's maps are as recorded: every change
     * while it runs comes from a message, deposited before it is applied. */
    bool remap = (s.state == VDPA_VF_IDLE || s.state == VDPA_VF_STOPPED) && s.step == VDPA_STEP_NONE && s.nmaps;
    /* posted (this runs on the loop): a refusal is latched and fails the VF's next start */
    if (rc == 0 && remap)
        rc = vdpa_posted_watch(v);
    for (unsigned i = 0; rc == 0 && remap && i < s.nmaps; i++)
        rc = vfe_dma_apply_map(t, s.maps[i].gpa, s.maps[i].size, backing[i]->fd, s.maps[i].fd_offset,
                               VFE_DMA_READ | VFE_DMA_WRITE);
    if (rc < 0) {
        vdpa_posted_unwatch(v);
        vfe_dma_domain_forget(v->dom, t);   /* never unmap: the device keeps them until its reset */
        free(v->rings);
        free(v->maps);
        free(v);
        *err = rc;
        return NULL;
    }
    memcpy(v->mac, s.mac, 6);
    v->dev_features = s.dev_features;
    v->log_size = s.log_size;
    v->max_pairs = s.max_pairs;
    v->num_queues = s.num_queues;
    v->state = (enum vdpa_vf_state)s.state;
    v->step = s.step;
    v->log_active = s.log_active;
    v->log_mapped = s.log_mapped;
    v->log_mode = s.log_mode ? s.log_mode : VFE_MIG_TRACK_PUSH_BITMAP;
    v->nsaved = s.nsaved;
    memcpy(v->saved_avail, s.saved_avail, sizeof(v->saved_avail));
    for (unsigned q = 0; q < VDPA_MAX_RINGS; q++) {
        v->kick_set[q] = (s.kick_set >> q) & 1;
        v->call_set[q] = (s.call_set >> q) & 1;
    }
    v->resumed = s.resumed + 1;
    LOG_N("%s: VF taken over as it runs (%s%s), no reset", t->bdf, vdpa_vf_state_name(v->state),
          v->step ? ", an admin step is resubmitted" : "");
    *err = 0;
    return v;
}

int vdpa_vf_resume(struct vdpa_vf *v, uint64_t features, const struct vdpa_ring *rings, unsigned nrings,
                   vdpa_done_cb done, vdpa_stop_cb stopped, void *ctx)
{
    enum vdpa_step step = (enum vdpa_step)v->step;
    if (step == VDPA_STEP_NONE)
        return -EALREADY;
    bool is_stop = step >= VDPA_STEP_STOP_QUIESCE && step <= VDPA_STEP_STOP_SAVE;
    v->done_cb = is_stop ? NULL : done;
    v->stop_cb = is_stop ? stopped : NULL;
    v->op_ctx = ctx;
    LOG_N("%s: resubmitting admin step %u of the operation a restart interrupted", v->t->bdf, step);
    int rc = -EINVAL;
    uint64_t iova, len;
    bool mapped;
    switch (step) {
    case VDPA_STEP_START_FREEZE:
    case VDPA_STEP_START_RESTORE:
    case VDPA_STEP_START_RUN:
        if (nrings == 0 || nrings > v->num_queues || nrings > VDPA_MAX_RINGS)
            break;
        vdpa_vf_build_start_state(v, features, rings, nrings);
        v->state = VDPA_VF_STARTING;
        rc = 0;
        if (step == VDPA_STEP_START_FREEZE)
            rc = vfe_mig_set_state(v->pf.mig, v->vf_num, VFE_MIG_FREEZED, vdpa_vf_start_frozen, v);
        else if (step == VDPA_STEP_START_RESTORE)
            vdpa_vf_start_frozen(v, 0);   /* submits the restore (or fails later, from the loop) */
        else
            vdpa_vf_start_restored(v, 0);
        break;
    case VDPA_STEP_STOP_QUIESCE:
        v->state = VDPA_VF_STOPPING;
        rc = vfe_mig_set_state(v->pf.mig, v->vf_num, VFE_MIG_QUIESCED, vdpa_vf_stop_quiesced, v);
        break;
    case VDPA_STEP_STOP_FREEZE:
        v->state = VDPA_VF_STOPPING;
        vdpa_vf_stop_quiesced(v, 0);
        rc = 0;
        break;
    case VDPA_STEP_STOP_SAVE:
        v->state = VDPA_VF_STOPPING;
        vdpa_vf_stop_frozen(v, 0);
        rc = 0;
        break;
    case VDPA_STEP_LOG_START:
        if (vfe_pf_iova_window(v->pf.iova, v->vf_num, &iova, &len, &mapped) < 0 || !mapped)
            break;   /* the window never got mapped: the caller starts tracking again */
        v->log_mapped = true;
        rc = vdpa_vf_log_submit(v, iova, v->log_size);
        break;
    case VDPA_STEP_LOG_STOP:
        rc = vfe_mig_dirty_stop(v->pf.mig, v->vf_num, vdpa_vf_log_stopped, v);
        break;
    default:
        break;
    }
    if (rc < 0) {
        v->done_cb = NULL;
        v->stop_cb = NULL;
        v->step = VDPA_STEP_NONE;
    }
    return rc;
}

void vdpa_vf_abandon(struct vdpa_vf *v)
{
    if (!v)
        return;
    ev_timer_stop(v->loop, &v->defer);
    ev_timer_stop(v->loop, &v->log_map_t);
    vfe_pf_iova_cancel(v->pf.iova, v->vf_num);   /* a log window's map in flight: the successor's */
    vdpa_direct_cancel(v);
    vdpa_vf_facts_cancel(v);
    for (unsigned q = 0; q < v->nrings; q++)
        if (ev_is_active(&v->rings[q].kick_relay)) {   /* our dups of kick fds: the successor relays with its own */
            ev_io_stop(v->loop, &v->rings[q].kick_relay);
            close(v->rings[q].kick_relay.fd);
        }
    vdpa_sw_release(v);
    vdpa_pull_release(v);   /* the timers and our mapping of the log: no device call */
    vfe_dma_domain_forget(v->dom, v->t);
    vdpa_posted_unwatch(v);
    free(v->brings);
    free(v->rings);
    free(v->maps);
    free(v);
}
