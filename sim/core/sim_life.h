/* Whole-sim start and stop, used by main. */
#ifndef SIM_CORE_SIM_LIFE_H
#define SIM_CORE_SIM_LIFE_H

#include "sim/sim.h"

/* Takes ROOT.lock (-EBUSY: another sim serves the root), builds every PF and
 * its VFs, the tree and the sockets; writes ROOT/ready. */
int sim_start(struct sim *s);
/* Closes every socket and removes what sim_start() created (the tree, its
 * sockets, ROOT/ready, the root if it made it); nothing when sim_start()
 * did not get the root lock. */
void sim_stop(struct sim *s);

#endif
