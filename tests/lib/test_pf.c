#include "tests/lib/test_pf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/virtio_config.h>

int test_pf_open(struct test_pf *p, const struct sim_proc *sp, const char *bdf)
{
    memset(p, 0, sizeof(*p));
    int rc = vfe_transport_open(sp->root, bdf, &p->t);
    if (rc < 0)
        return rc;
    if (!(p->iova = vfe_pf_iova_create(p->t))) {
        rc = -errno;
        test_pf_close(p);
        return rc;
    }
    uint64_t want = 1ull << VFE_VIRTIO_F_VERSION_1 | 1ull << VFE_VIRTIO_F_ACCESS_PLATFORM |
                    1ull << VFE_VIRTIO_F_ADMIN_VQ;
    if ((rc = vfe_vpci_init(&p->vp, p->t)) < 0 || (rc = vfe_vpci_reset(&p->vp)) < 0 ||
        (rc = vfe_vpci_reset_wait(&p->vp, 2000)) < 0 ||
        (rc = vfe_vpci_add_status(&p->vp, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)) < 0 ||
        (rc = vfe_vpci_negotiate(&p->vp, want)) < 0 || (rc = vfe_vpci_msix_enable(&p->vp)) < 0 ||
        (rc = vfe_admin_open(&p->vp, EV_DEFAULT, p->iova, &p->aq)) < 0 ||
        (rc = vfe_vpci_add_status(&p->vp, VIRTIO_CONFIG_S_DRIVER_OK)) < 0 ||
        (rc = vfe_mig_probe_sync(&p->mig, p->aq)) < 0) {
        fprintf(stderr, "PF %s bring-up: %s\n", bdf, strerror(-rc));
        test_pf_close(p);
        return rc;
    }
    return 0;
}

void test_pf_close(struct test_pf *p)
{
    if (p->t && p->vp.t)
        vfe_vpci_reset(&p->vp);
    if (p->aq)
        vfe_admin_close(p->aq);
    vfe_pf_iova_destroy(p->iova);
    vfe_transport_close(p->t);
    memset(p, 0, sizeof(*p));
}

struct waiter {
    bool done;
    int err;
    enum vfe_mig_state st;
    uint32_t n;
};

static void done_cb(void *ctx, int err)
{
    struct waiter *w = ctx;
    w->err = err;
    w->done = true;
}

static void state_cb(void *ctx, int err, enum vfe_mig_state st)
{
    struct waiter *w = ctx;
    w->st = st;
    done_cb(ctx, err);
}

static void report_cb(void *ctx, int err, uint32_t n)
{
    struct waiter *w = ctx;
    w->n = n;
    done_cb(ctx, err);
}

static int finish(struct test_pf *p, struct waiter *w, int rc)
{
    if (rc < 0)
        return rc;
    vfe_admin_wait(p->aq, &w->done);
    return w->err;
}

int test_mig_set_state(struct test_pf *p, uint16_t vf, enum vfe_mig_state st)
{
    struct waiter w = {0};
    return finish(p, &w, vfe_mig_set_state(&p->mig, vf, st, done_cb, &w));
}

int test_mig_get_state(struct test_pf *p, uint16_t vf, enum vfe_mig_state *st)
{
    struct waiter w = {0};
    int rc = finish(p, &w, vfe_mig_get_state(&p->mig, vf, state_cb, &w));
    *st = w.st;
    return rc;
}

int test_mig_save(struct test_pf *p, uint16_t vf, struct vfe_dev_state *out)
{
    struct waiter w = {0};
    return finish(p, &w, vfe_mig_save_state(&p->mig, vf, out, done_cb, &w));
}

int test_mig_restore(struct test_pf *p, uint16_t vf, const struct vfe_dev_state *s)
{
    struct waiter w = {0};
    return finish(p, &w, vfe_mig_restore_state(&p->mig, vf, s, done_cb, &w));
}

int test_mig_dirty_start(struct test_pf *p, uint16_t vf, const struct vfe_mig_dirty_cfg *c)
{
    struct waiter w = {0};
    return finish(p, &w, vfe_mig_dirty_start(&p->mig, vf, c, done_cb, &w));
}

int test_mig_dirty_stop(struct test_pf *p, uint16_t vf)
{
    struct waiter w = {0};
    return finish(p, &w, vfe_mig_dirty_stop(&p->mig, vf, done_cb, &w));
}

int test_mig_dirty_report(struct test_pf *p, uint16_t vf, uint32_t offset, void *buf, uint32_t len)
{
    struct waiter w = {0};
    int rc = finish(p, &w, vfe_mig_dirty_report(&p->mig, vf, offset, buf, len, report_cb, &w));
    return rc < 0 ? rc : (int)w.n;
}
