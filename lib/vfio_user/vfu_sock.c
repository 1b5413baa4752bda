/* Unix socket helpers that also work for paths longer than sun_path. */
#include "lib/vfio_user/vfu_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Fill sa for path.  A path too long for sun_path is reached through
 * /proc/self/fd/<dirfd>/<name>; *dirfd is then an O_PATH fd the caller closes
 * after bind/connect (else -1).
 */
static int fill_addr(const char *path, struct sockaddr_un *sa, int *dirfd)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    *dirfd = -1;
    size_t len = strlen(path);
    if (len == 0)
        return -EINVAL;
    if (len < sizeof(sa->sun_path)) {
        memcpy(sa->sun_path, path, len + 1);
        return 0;
    }
    const char *slash = strrchr(path, '/');
    if (!slash || strlen(slash + 1) == 0 || strlen(slash + 1) > 60)
        return -ENAMETOOLONG;
    char dir[4096];
    size_t dl = (size_t)(slash - path);
    if (dl == 0 || dl >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", fd, slash + 1);
    if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
        close(fd);
        return -ENAMETOOLONG;
    }
    *dirfd = fd;
    return 0;
}

/* The path bind and unlink go through: path itself when it fits sun_path, else
 * /proc/self/fd/<dirfd>/<name> (dirfd then stays open for the listener). */
static int short_path(const char *path, char *out, size_t cap, int *dirfd)
{
    struct sockaddr_un sa;
    int rc = fill_addr(path, &sa, dirfd);
    if (rc < 0)
        return rc;
    if (strlen(sa.sun_path) >= cap) {
        if (*dirfd >= 0)
            close(*dirfd);
        *dirfd = -1;
        return -ENAMETOOLONG;
    }
    strcpy(out, sa.sun_path);
    return 0;
}

int vfu_listener_open(struct vfu_listener *v, const char *path, int backlog)
{
    char p[sizeof(((struct sockaddr_un *)0)->sun_path)];
    v->l.fd = -1;
    int rc = short_path(path, p, sizeof(p), &v->dirfd);
    if (rc < 0)
        return rc;
    rc = vfe_listener_open(&v->l, p, 0600, (gid_t)-1, backlog);
    if (rc < 0 && v->dirfd >= 0) {
        close(v->dirfd);
        v->dirfd = -1;
    }
    return rc;
}

void vfu_listener_close(struct vfu_listener *v)
{
    vfe_listener_close(&v->l);
    if (v->dirfd >= 0)
        close(v->dirfd);
    v->dirfd = -1;
}

int vfu_sock_listen(const char *path)
{
    struct vfu_listener v;
    int rc = vfu_listener_open(&v, path, 4);
    if (rc < 0)
        return rc;
    if (v.dirfd >= 0)
        close(v.dirfd);
    return v.l.fd;   /* the socket file is the caller's now */
}

int vfu_sock_connect(const char *path, bool nonblock)
{
    struct sockaddr_un sa;
    int dirfd;
    int rc = fill_addr(path, &sa, &dirfd);
    if (rc < 0)
        return rc;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (s < 0) {
        rc = -errno;
        goto out;
    }
    /* A unix connect to a listening socket completes at once even when non-blocking
     * (EAGAIN only when the backlog is full). */
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        close(s);
        goto out;
    }
    rc = s;
out:
    if (dirfd >= 0)
        close(dirfd);
    return rc;
}
