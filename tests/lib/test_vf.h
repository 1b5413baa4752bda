/* Test helper: one sim VF driven by guest_net, with its own guest memory. */
#ifndef TEST_VF_H
#define TEST_VF_H

#include <stddef.h>
#include <stdint.h>

#include "tests/lib/guest/guest_net.h"
#include "tests/lib/sim_proc.h"
#include "tests/frontend/vfe_frontend.h"   /* vfe_fe_frame(): seeded test frames */

struct test_vf {
    char bdf[16];
    struct vfe_transport *t;
    struct guest_mem gm;
    struct guest_net *g;
    uint8_t mac[6];
};

#define TEST_VF_IOVA 0x40000000ull

/* Open bdf of the sim through the transport and bring it up.  0 or -1. */
int test_vf_open(struct test_vf *v, const struct sim_proc *sp, const char *bdf,
                 const struct guest_net_opts *o);
void test_vf_close(struct test_vf *v);

/* One numeric field of the sim's counters for bdf, or -1. */
long long test_sim_counter(const struct sim_proc *sp, const char *bdf, const char *field);

#endif
