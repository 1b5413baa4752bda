/* The canonical spelling of a vhost-user socket path (see sock_path.h). */
#include "app/vfe-vdpa/sock_path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int vhostd_sock_path_canon(const char *path, char out[VHOSTD_SOCK_PATH_LEN], char *msg, size_t len)
{
    size_t n = strlen(path);
    if (n == 0 || path[n - 1] == '/' || n >= PATH_MAX) {
        snprintf(msg, len, "socket path '%.200s' must name a file in a directory", path);
        return -EINVAL;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!strcmp(base, ".") || !strcmp(base, "..")) {
        snprintf(msg, len, "socket path '%.200s' must name a file in a directory", path);
        return -EINVAL;
    }
    char dir[PATH_MAX], real[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    struct stat st;
    int e = 0;
    if (!realpath(dir, real) || stat(real, &st) < 0)
        e = errno;
    else if (!S_ISDIR(st.st_mode))
        e = ENOTDIR;
    if (e) {
        snprintf(msg, len, "directory of socket path '%.200s': %s", path, strerror(e));
        return -e;
    }
    int m = snprintf(out, VHOSTD_SOCK_PATH_LEN, "%s/%s", strcmp(real, "/") ? real : "", base);
    if (m < 0 || (size_t)m >= VHOSTD_SOCK_PATH_LEN) {
        snprintf(msg, len, "socket path '%.200s' is %zu characters once its directory is resolved; a unix socket "
                 "path has at most %zu", path, strlen(real) + 1 + strlen(base), (size_t)VFE_SUN_PATH_MAX);
        return -ENAMETOOLONG;
    }
    return 0;
}

bool vhostd_path_is_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return true;
    return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}
