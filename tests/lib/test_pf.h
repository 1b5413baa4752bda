/* Test helper: a sim PF with its admin queue up and the dialect probed, plus
 * blocking wrappers of the migration commands. */
#ifndef TEST_PF_H
#define TEST_PF_H

#include "drivers/common/virtio_mi/vfe_mig.h"
#include "tests/lib/sim_proc.h"

struct test_pf {
    struct vfe_transport *t;
    struct vfe_pf_iova *iova;   /* the PF's IOVA space: admin queue, dirty logs */
    struct vfe_virtio_pci vp;
    struct vfe_admin_vq *aq;
    struct vfe_mig mig;
};

/* Bring the PF up and probe its admin dialect.  0 or -errno. */
int test_pf_open(struct test_pf *p, const struct sim_proc *sp, const char *bdf);
void test_pf_close(struct test_pf *p);

/* Blocking forms of vfe_mig_*: 0 or -errno. */
int test_mig_set_state(struct test_pf *p, uint16_t vf, enum vfe_mig_state st);
int test_mig_get_state(struct test_pf *p, uint16_t vf, enum vfe_mig_state *st);
int test_mig_save(struct test_pf *p, uint16_t vf, struct vfe_dev_state *out);
int test_mig_restore(struct test_pf *p, uint16_t vf, const struct vfe_dev_state *s);
int test_mig_dirty_start(struct test_pf *p, uint16_t vf, const struct vfe_mig_dirty_cfg *c);
int test_mig_dirty_stop(struct test_pf *p, uint16_t vf);
/* Pull report of len bytes from offset; returns bytes or -errno. */
int test_mig_dirty_report(struct test_pf *p, uint16_t vf, uint32_t offset, void *buf, uint32_t len);

#endif
