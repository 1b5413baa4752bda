/* The connection: connect to the back-end's socket (retrying until the
 * timeout, it may not be listening yet) or listen and accept it. */
#include "tests/frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (!path || !*path)
        return -EINVAL;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return 0;
}

static int listen_on(struct vfe_fe *fe, const struct sockaddr_un *sa)
{
    unlink(fe->o.path);
    fe->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fe->lsock < 0)
        return -errno;
    if (bind(fe->lsock, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fe->lsock, 1) < 0) {
        int e = -errno;
        close(fe->lsock);
        fe->lsock = -1;
        return e;
    }
    return 0;
}

int fe_connect(struct vfe_fe *fe)
{
    struct sockaddr_un sa;
    int rc = fill_addr(&sa, fe->o.path);
    if (rc < 0)
        return rc;
    fe_drop_connection(fe);
    long end = fe_now_ms() + fe->o.timeout_ms;
    if (fe->o.server) {
        if (fe->lsock < 0 && (rc = listen_on(fe, &sa)) < 0)
            return rc;
        for (;;) {
            long left = end - fe_now_ms();
            struct pollfd p = {.fd = fe->lsock, .events = POLLIN};
            int pr = poll(&p, 1, left > 0 ? (int)left : 0);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0)
                return -ETIMEDOUT;
            fe->sock = accept4(fe->lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            return fe->sock < 0 ? -errno : 0;
        }
    }
    for (;;) {
        /* non-blocking: a full backlog gives EAGAIN instead of a wait without end */
        fe->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fe->sock < 0)
            return -errno;
        if (connect(fe->sock, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return 0;
        int e = errno;
        close(fe->sock);
        fe->sock = -1;
        if (fe_now_ms() >= end)
            return -e;
        usleep(20000);
    }
}

void fe_drop_connection(struct vfe_fe *fe)
{
    if (fe->sock >= 0)
        close(fe->sock);
    fe->sock = -1;
    fe_backend_close(fe);
    for (unsigned i = 0; i < FE_RINGS; i++)
        fe->q[i].started = false;
}

void vfe_fe_disconnect(struct vfe_fe *fe)
{
    fe_drop_connection(fe);
}

bool vfe_fe_connected(const struct vfe_fe *fe)
{
    return fe->sock >= 0;
}
