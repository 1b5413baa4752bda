/* Unix listening sockets that never take over a path that is not theirs (see vfe_unix_sock.h). */
#include "lib/sock/vfe_unix_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    if (n > VFE_SUN_PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

/* 0: nobody listens (stale); -EADDRINUSE: somebody does; other: cannot tell. */
static int probe(const struct sockaddr_un *sa)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return -errno;
    int rc = connect(s, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? -EADDRINUSE : -errno;
    close(s);
    if (rc == -ECONNREFUSED)
        return 0;
    if (rc == -EAGAIN || rc == -EINPROGRESS)
        return -EADDRINUSE;   /* a listener with a full backlog */
    if (rc == -EPROTOTYPE)
        return -EADDRINUSE;   /* somebody listens with another socket type (e.g. SOCK_SEQPACKET) */
    return rc;
}

bool vfe_unix_path_in_use(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    if (fill_addr(&sa, path) < 0 || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return false;
    return probe(&sa) == -EADDRINUSE;
}

int vfe_listener_open(struct vfe_listener *l, const char *path, mode_t mode, gid_t gid, int backlog)
{
    return vfe_listener_open_type(l, path, SOCK_STREAM, mode, gid, backlog);
}

int vfe_listener_open_type(struct vfe_listener *l, const char *path, int type, mode_t mode, gid_t gid,
                           int backlog)
{
    struct sockaddr_un sa;
    struct stat st;
    l->fd = -1;
    int rc = fill_addr(&sa, path);
    if (rc < 0)
        return rc;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        if ((rc = probe(&sa)) < 0)
            return rc;
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
    } else if (errno != ENOENT) {
        return -errno;
    }
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* bind creates the file with the umask's mode: keep it closed until fchmodat */
    mode_t old = umask(0177);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
    umask(old);
    if (rc == 0 && lstat(path, &st) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    snprintf(l->path, sizeof(l->path), "%s", path);
    l->fd = fd;
    if ((gid != (gid_t)-1 && lchown(path, (uid_t)-1, gid) < 0) || chmod(path, mode ? mode : 0600) < 0 ||
        listen(fd, backlog) < 0) {
        rc = -errno;
        vfe_listener_close(l);
        return rc;
    }
    return 0;
}

void vfe_listener_close(struct vfe_listener *l)
{
    if (l->fd < 0)
        return;
    struct stat st;
    if (lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->path);
    close(l->fd);
    l->fd = -1;
}

int vfe_path_lock(const char *path, int *fd)
{
    char lock[PATH_MAX];   /* a lock file is not a socket: sun_path does not bound it */
    int n = snprintf(lock, sizeof(lock), "%s.lock", path);
    if (n < 0 || (size_t)n >= sizeof(lock))
        return -ENAMETOOLONG;
    int f = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f < 0)
        return -errno;
    if (flock(f, LOCK_EX | LOCK_NB) < 0) {
        int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(f);
        return e;
    }
    *fd = f;
    return 0;
}

int vfe_group_id(const char *name, gid_t *gid)
{
    char *end;
    unsigned long v = strtoul(name, &end, 10);
    if (*name && !*end) {
        *gid = (gid_t)v;
        return 0;
    }
    struct group *g = getgrnam(name);
    if (!g)
        return -ENOENT;
    *gid = g->gr_gid;
    return 0;
}
