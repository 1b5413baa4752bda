/* File descriptors passed over unix sockets (SCM_RIGHTS): the one way every
 * protocol here (vhost-user, vfio-user, HA) attaches and collects them.
 *
 * Ownership: vfe_fds_attach() only refers to the caller's fds (the kernel dups
 * them on send).  vfe_fds_take() hands every received fd either to `out` (the
 * caller owns it from then on) or closes it: none is left open unaccounted for. */
#ifndef VFE_FD_PASS_H
#define VFE_FD_PASS_H

#include <stddef.h>
#include <sys/socket.h>

/* Control buffer for up to N fds, aligned for struct cmsghdr. */
#define VFE_FDS_CTL(name, n) union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int) * (n))]; } name

/* Attach nfds fds to mh using ctl (ctl_len >= CMSG_SPACE(nfds * sizeof(int))).
 * nfds 0 leaves mh without control data. */
void vfe_fds_attach(struct msghdr *mh, void *ctl, size_t ctl_len, const int *fds, unsigned nfds);

/* Collect the fds of every SCM_RIGHTS message in a received mh: the first
 * `room` go to out, the rest are closed and counted in *dropped (may be
 * NULL).  Returns how many went to out. */
unsigned vfe_fds_take(struct msghdr *mh, int *out, unsigned room, unsigned *dropped);

#endif
