#include "tests/lib/test_vf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int test_vf_open(struct test_vf *v, const struct sim_proc *sp, const char *bdf,
                 const struct guest_net_opts *o)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->bdf, sizeof(v->bdf), "%s", bdf);
    int rc = vfe_transport_open(sp->root, bdf, &v->t);
    if (rc < 0) {
        fprintf(stderr, "%s: transport open: %s\n", bdf, strerror(-rc));
        return -1;
    }
    if (guest_mem_create(&v->gm, guest_net_mem_needed(o)) < 0) {
        fprintf(stderr, "%s: guest memory\n", bdf);
        return -1;
    }
    v->g = guest_net_open(v->t, &v->gm, TEST_VF_IOVA, o);
    if (!v->g) {
        perror("guest_net_open");
        return -1;
    }
    guest_net_mac(v->g, v->mac);
    return 0;
}

void test_vf_close(struct test_vf *v)
{
    if (v->g)
        guest_net_close(v->g);
    vfe_transport_close(v->t);
    if (v->gm.va)
        guest_mem_destroy(&v->gm);
    memset(v, 0, sizeof(*v));
}

long long test_sim_counter(const struct sim_proc *sp, const char *bdf, const char *field)
{
    char req[128], reply[4096], key[64];
    snprintf(req, sizeof(req), "{\"cmd\":\"counters\",\"bdf\":\"%s\"}", bdf);
    if (sim_proc_ctl(sp, req, reply, sizeof(reply)) < 0)
        return -1;
    snprintf(key, sizeof(key), "\"%s\":", field);
    const char *p = strstr(reply, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}
