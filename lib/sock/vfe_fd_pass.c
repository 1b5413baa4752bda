/* File descriptors passed over unix sockets (see vfe_fd_pass.h). */
#include "lib/sock/vfe_fd_pass.h"

#include <string.h>
#include <unistd.h>

void vfe_fds_attach(struct msghdr *mh, void *ctl, size_t ctl_len, const int *fds, unsigned nfds)
{
    if (nfds == 0)
        return;
    memset(ctl, 0, ctl_len);
    mh->msg_control = ctl;
    mh->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
}

unsigned vfe_fds_take(struct msghdr *mh, int *out, unsigned room, unsigned *dropped)
{
    unsigned got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (got < room) {
                out[got++] = fd;
            } else {
                close(fd);
                if (dropped)
                    (*dropped)++;
            }
        }
    }
    return got;
}
