/* Whole-sim start and stop, used by main. */
#ifndef SIM_CORE_SIM_LIFE_H
#define SIM_CORE_SIM_LIFE_H

#include "sim/sim.h"

/* Builds every PF and its VFs, the tree and the sockets; writes ROOT/ready. */
int sim_start(struct sim *s);
/* Closes every socket and removes the tree. */
void sim_stop(struct sim *s);

#endif
