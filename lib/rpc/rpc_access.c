/* Who may call the server, and who may always get a connection. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "lib/rpc/rpc_internal.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

bool rpc_access_privileged(const struct rpc_peer *p, uid_t sock_owner)
{
    return p->uid == 0 || p->uid == sock_owner;
}

bool rpc_access_allowed(const struct rpc_peer *p, uid_t sock_owner, gid_t sock_gid)
{
    if (rpc_access_privileged(p, sock_owner) || p->gid == sock_gid)
        return true;
    for (size_t i = 0; i < p->ngroups; i++)
        if (p->groups[i] == sock_gid)
            return true;
    return false;
}

bool rpc_admit(bool privileged, unsigned nconns, unsigned max_conns)
{
    unsigned limit = privileged ? max_conns : max_conns - RPC_RESERVED_CONNS(max_conns);
    return nconns < limit;
}

int rpc_peer_get(int fd, struct rpc_peer *p, gid_t **groups_buf)
{
    struct ucred cr;
    socklen_t l = sizeof(cr);
    *groups_buf = NULL;
    p->groups = NULL;
    p->ngroups = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
        return -errno;
    p->pid = cr.pid;
    p->uid = cr.uid;
    p->gid = cr.gid;
    /* the kernel says how much room the list needs (ERANGE): at most two tries
     * unless the peer's groups change in between */
    socklen_t len = 16 * sizeof(gid_t);
    for (int tries = 0; tries < 3; tries++) {
        gid_t *buf = malloc(len ? len : sizeof(gid_t));
        if (!buf)
            return -ENOMEM;
        socklen_t got = len;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, &got) == 0) {
            *groups_buf = buf;
            p->groups = buf;
            p->ngroups = got / sizeof(gid_t);
            return 0;
        }
        int e = errno;
        free(buf);
        if (e == ENOPROTOOPT)
            return 0;   /* kernel < 4.13: primary group only */
        if (e != ERANGE || got <= len)
            return -e;
        len = got;
    }
    return -EAGAIN;
}
