/* Stand-in for sim/core in the net unit tests: DMA over fn->dma[] with a
 * record of every device write, interrupt and NEEDS_RESET counters. */
#ifndef TEST_SIM_NET_FAKE_CORE_H
#define TEST_SIM_NET_FAKE_CORE_H

#include "sim/sim.h"

#define FAKE_MAX_FNS 8
#define FAKE_MAX_WRITES 4096

struct fake_write {
    struct sim_fn *fn;
    uint64_t iova, len;
};

struct fake_core {
    unsigned irqs[FAKE_MAX_FNS][SIM_MAX_QUEUES];
    unsigned needs_reset[FAKE_MAX_FNS];
    struct fake_write writes[FAKE_MAX_WRITES];
    unsigned nwrites;
    struct sim_fn *fns[FAKE_MAX_FNS];  /* index used by the counters */
};

extern struct fake_core fake;

void fake_reset(void);
/* Counter slot of fn (registered in fake.fns). */
int fake_slot(const struct sim_fn *fn);
/* [iova, iova+len) of fn was written by the device through sim_dma_write. */
int fake_written(const struct sim_fn *fn, uint64_t iova, uint64_t len);

#endif
