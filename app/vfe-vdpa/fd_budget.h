/* The daemon's file descriptor budget: every VF holds descriptors (its
 * vfio-user or VFIO device, its vhost-user listener, and with a front-end
 * the connection plus one kick and one call eventfd per ring). */
#ifndef VFE_VHOSTD_FD_BUDGET_H
#define VFE_VHOSTD_FD_BUDGET_H

/* Measured (docs/scale.md, bench/provision.py): a provisioned VF without a
 * front-end holds 3 (vfio-user connection, vhost-user listener, a memfd). */
#define VHOSTD_FDS_PER_IDLE_VF 3
/* With a front-end: connection, per ring kick + call (2 rings), config call,
 * the posted-reply watch (an epoll and an eventfd, docs/device-calls.md), slack. */
#define VHOSTD_FDS_PER_ACTIVE_VF (VHOSTD_FDS_PER_IDLE_VF + 1 + 2 * 2 + 1 + 2 + 2)
#define VHOSTD_FDS_RESERVED 64   /* RPC clients, HA link, state file, logs */

/* Raise the soft RLIMIT_NOFILE to the hard one (at start, before any fd is
 * opened in bulk) and log what it allows.  Returns the soft limit in effect. */
unsigned long vhostd_fd_budget_raise(void);
/* How many VFs a limit of nofile descriptors serves (fds_per_vf each). */
unsigned vhostd_fd_budget_vfs(unsigned long nofile, unsigned fds_per_vf);

#endif
