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

int vfu_sock_listen(const char *path)
{
    struct sockaddr_un sa;
    int dirfd;
    int rc = fill_addr(path, &sa, &dirfd);
    if (rc < 0)
        return rc;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) {
        rc = -errno;
        goto out;
    }
    unlink(path);
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 4) < 0) {
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
