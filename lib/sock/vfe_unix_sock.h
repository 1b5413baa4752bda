/* Unix listening sockets that never take over a path that is not theirs.
 *
 * Ownership: a struct vfe_listener owns its fd and, while it exists, the
 * socket file it bound.  vfe_listener_close() removes that file only if the
 * inode at the path is still the one this listener created, so a socket that
 * somebody else put there later is left alone.
 *
 * vfe_listener_open() binds PATH:
 *   - nothing at PATH: bind.
 *   - a socket nobody listens on (connect gives ECONNREFUSED): provably stale,
 *     removed and replaced.
 *   - anything else is refused and left untouched:
 *       -EEXIST        PATH is not a socket (a file, a directory, a link)
 *       -EADDRINUSE    a process accepts connections on it
 *       -EACCES/-EPERM  cannot tell (no permission to connect): not provably stale
 *       -ENAMETOOLONG  PATH does not fit sun_path (never truncated)
 * mode is applied with fchmodat after bind (0 keeps 0600); gid, if not
 * (gid_t)-1, becomes the socket's group.  The fd is non-blocking and
 * close-on-exec.  Errors are negative errno values; errno is not used.
 *
 * vfe_path_lock() takes an exclusive flock on "PATH.lock" (created 0600 if
 * missing, never deleted): one process per PATH.  -EBUSY when another process
 * holds it; the caller owns *fd and keeps it open for its whole life.
 */
#ifndef VFE_UNIX_SOCK_H
#define VFE_UNIX_SOCK_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#define VFE_SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

struct vfe_listener {
    int fd;
    dev_t dev;
    ino_t ino;
    char path[VFE_SUN_PATH_MAX + 1];
};

int vfe_listener_open(struct vfe_listener *l, const char *path, mode_t mode, gid_t gid, int backlog);
/* The same with another socket type (SOCK_SEQPACKET); the stale probe still
 * connects with SOCK_STREAM: a live listener of another type answers
 * EPROTOTYPE, which counts as in use. */
int vfe_listener_open_type(struct vfe_listener *l, const char *path, int type, mode_t mode, gid_t gid,
                           int backlog);
void vfe_listener_close(struct vfe_listener *l);

/* Is PATH a socket somebody accepts connections on?  Never modifies PATH. */
bool vfe_unix_path_in_use(const char *path);

int vfe_path_lock(const char *path, int *fd);

/* Resolve the group name or number NAME; -ENOENT if unknown. */
int vfe_group_id(const char *name, gid_t *gid);

#endif
