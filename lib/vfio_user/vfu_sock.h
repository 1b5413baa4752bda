/* Unix stream sockets for vfio-user (paths of any length).
 *
 * A path longer than sun_path is reached through /proc/self/fd/<dirfd>/<name>,
 * with an O_PATH fd on its directory.
 *
 * Listening never takes over a path that is not the caller's: the rules of
 * vfe_listener_open() (lib/sock/vfe_unix_sock.h) apply, i.e. only a provably
 * stale socket is replaced; -EEXIST for a path that is not a socket,
 * -EADDRINUSE for a socket somebody accepts on, -ENAMETOOLONG for a final
 * component longer than 60 bytes.  Errors are negative errno values.
 */
#ifndef VFU_SOCK_H
#define VFU_SOCK_H

#include <stdbool.h>

#include "lib/sock/vfe_unix_sock.h"

/* Owns its listening fd (l.fd), the socket file it bound and, for a long
 * path, dirfd.  vfu_listener_close() removes the socket file only while it is
 * still the inode this listener created. */
struct vfu_listener {
    struct vfe_listener l;
    int dirfd;               /* -1, or the O_PATH fd l.path goes through */
};

/* Non-blocking, close-on-exec listening socket at path, mode 0600. */
int vfu_listener_open(struct vfu_listener *v, const char *path, int backlog);
void vfu_listener_close(struct vfu_listener *v);

/* Listening socket at path with the same refusals; the caller owns the fd and
 * the socket file (and unlinks it).  fd or -errno. */
int vfu_sock_listen(const char *path);
/* Connected socket to path.  fd or -errno. */
int vfu_sock_connect(const char *path, bool nonblock);

#endif
