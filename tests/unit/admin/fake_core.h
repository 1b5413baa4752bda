/* Stand-in for sim/core (and sim_net_resume) in the admin unit tests: DMA
 * over fn->dma[], counters for interrupts and resumes. */
#ifndef TEST_ADMIN_FAKE_CORE_H
#define TEST_ADMIN_FAKE_CORE_H

#include "sim/sim.h"

#define FAKE_MAX_VFS 8

struct fake_core {
    unsigned resumes[FAKE_MAX_VFS + 1];   /* sim_net_resume calls, by vf_num */
    unsigned irqs;                        /* sim_queue_interrupt calls */
    unsigned needs_reset;
    unsigned announces;                   /* sim_net_announce calls accepted */
    uint8_t announced[6];                 /* ... the last one's MAC and VF */
    unsigned announced_vf;
};

extern struct fake_core fake;

#endif
