/* The canonical spelling of a vhost-user socket path, so that one socket has
 * one name however the operator wrote it (W/./vf-x, W//vf-x, a symlinked
 * directory).  Pure path work: nothing is created, probed or removed here. */
#ifndef VFE_VHOSTD_SOCK_PATH_H
#define VFE_VHOSTD_SOCK_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/sock/vfe_unix_sock.h"

#define VHOSTD_SOCK_PATH_LEN (VFE_SUN_PATH_MAX + 1)

/* realpath() of the directory of path, '/', its base name, into out.
 * 0, or -errno with a sentence in msg:
 *   -EINVAL        empty, ends in '/', or the base name is "." or ".."
 *   -ENOENT        the directory does not exist
 *   -ENOTDIR       the directory is not one
 *   -ENAMETOOLONG  the canonical path does not fit sun_path (never truncated)
 *   other          realpath's errno (-EACCES ...) */
int vhostd_sock_path_canon(const char *path, char out[VHOSTD_SOCK_PATH_LEN], char *msg, size_t len);

/* path lies in dir or below it (both canonical). */
bool vhostd_path_is_under(const char *path, const char *dir);

#endif
