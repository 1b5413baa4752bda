/* One client connection of vfe-vhostd-ha.
 *
 * Ownership: a connection owns its socket, the fds of a PUT still arriving
 * (closed if it never finishes) and the dup()s of a GET answer packet not
 * sent yet.  It frees itself at the end of its own libev callback once it
 * decided to close (a closing flag until then), setting srv->client to NULL;
 * the server frees it with ha_conn_destroy() only from outside its callbacks.
 *
 * Requests are applied in order; while an answer waits for the socket to
 * take it, no further request is read (so a GET streams a store that does
 * not change under it).  A failed send marks the peer dead: what it sent
 * completely is still applied, nothing more is answered.
 */
#ifndef HA_CONN_H
#define HA_CONN_H

#include <stdbool.h>
#include <sys/types.h>

#include "ha/ha_server.h"

/* Start serving fd (non-blocking, credentials already checked); NULL on ENOMEM. */
struct ha_conn *ha_conn_new(struct ha_server *s, int fd, pid_t pid);
void ha_conn_destroy(struct ha_conn *c);
/* Has the peer hung up?  If so, apply what it sent completely, free c, and say true. */
bool ha_conn_gone(struct ha_conn *c);
pid_t ha_conn_pid(const struct ha_conn *c);

#endif
