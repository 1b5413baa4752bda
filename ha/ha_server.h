/* vfe-vhostd-ha's server: the listening socket, the one client, the store.
 *
 * Ownership: struct ha_server owns its listener (and the socket file it
 * bound), the store (every deposited fd, see ha_store.h) and the current
 * client connection.  A connection is freed only at the end of the libev
 * callback that decided to close it (a closing flag marks it until then),
 * or by ha_server_close().
 *
 * A client that says no HELLO within hello_timeout seconds gets ERR ETIMEDOUT
 * and is closed: it cannot hold the one client slot without speaking.
 *
 * One client at a time: a second connection gets ERR EBUSY and is closed,
 * unless the current client has hung up (its queued requests are applied
 * first, then it is dropped and the new one is served).  A peer whose uid is
 * not this process's gets ERR EACCES and is closed.
 */
#ifndef HA_SERVER_H
#define HA_SERVER_H

#include <ev.h>
#include <stdint.h>

#include "ha/ha_store.h"
#include "lib/sock/vfe_unix_sock.h"

struct ha_conn;

struct ha_server {
    struct ev_loop *loop;
    struct vfe_listener listener;
    ev_io accept_w;
    struct ha_store store;
    struct ha_conn *client;
    ev_tstamp started;
    ev_tstamp hello_timeout;
    uint32_t accepted;
};

/* Bind path (mode 0600, SOCK_SEQPACKET) and start accepting; -errno from vfe_listener_open_type. */
int ha_server_open(struct ha_server *s, struct ev_loop *loop, const char *path, const struct vfe_ha_limits *lim,
                   ev_tstamp hello_timeout);
/* Drop the client, close every held fd, remove the socket file. */
void ha_server_close(struct ha_server *s);

#endif
