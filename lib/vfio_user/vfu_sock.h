/* Unix stream sockets for vfio-user (paths of any length). */
#ifndef VFU_SOCK_H
#define VFU_SOCK_H

#include <stdbool.h>

/* Non-blocking listening socket at path (an old socket file is replaced).  fd or -errno. */
int vfu_sock_listen(const char *path);
/* Connected socket to path.  fd or -errno. */
int vfu_sock_connect(const char *path, bool nonblock);

#endif
