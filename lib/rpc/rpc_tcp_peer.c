/*
 * Who is at the other end of a loopback TCP connection.  TCP carries no
 * credentials, but on loopback the client's socket lives in this kernel: the
 * sock_diag netlink interface names the owner of the socket whose source is the
 * peer's address and port.  That owner's groups come from the user database
 * (the process's own group list is not visible from here).
 *
 * One netlink socket per lookup: lookups happen once per accepted TCP
 * connection (rare, bounded by the TCP connection limit), and a fresh socket
 * can never hand us a late answer meant for an earlier, timed-out lookup.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/rpc/rpc_internal.h"

#define DIAG_SEQ 0x76666531u   /* any value: the socket is ours alone */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Address bytes and port (network order) of an inet socket address. */
static const void *addr_of(const struct sockaddr_storage *ss, size_t *len, uint16_t *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        *len = sizeof(in->sin_addr);
        *port = in->sin_port;
        return &in->sin_addr;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    *len = sizeof(in6->sin6_addr);
    *port = in6->sin6_port;
    return &in6->sin6_addr;
}

int rpc_tcp_peer_name(int fd, char *out, size_t len)
{
    struct sockaddr_storage peer;
    socklen_t pl = sizeof(peer);
    char host[INET6_ADDRSTRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0) {
        int e = errno;
        snprintf(out, len, "TCP client (address unknown)");
        return -e;
    }
    size_t alen = 0;
    uint16_t port = 0;
    if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6) {
        snprintf(out, len, "TCP client (not inet)");
        return -EAFNOSUPPORT;
    }
    inet_ntop(peer.ss_family, addr_of(&peer, &alen, &port), host, sizeof(host));
    snprintf(out, len, "TCP client %s%s%s:%u", peer.ss_family == AF_INET6 ? "[" : "", host,
             peer.ss_family == AF_INET6 ? "]" : "", (unsigned)ntohs(port));
    return 0;
}

/* Does the kernel's answer describe exactly the socket asked about? */
static bool same_socket(const struct inet_diag_msg *m, const struct inet_diag_req_v2 *r)
{
    size_t alen = r->sdiag_family == AF_INET ? 4 : 16;
    return m->idiag_family == r->sdiag_family && m->id.idiag_sport == r->id.idiag_sport &&
           m->id.idiag_dport == r->id.idiag_dport && !memcmp(m->id.idiag_src, r->id.idiag_src, alen) &&
           !memcmp(m->id.idiag_dst, r->id.idiag_dst, alen);
}

/* Read the kernel's one answer to req within the deadline: 0 with *uid, or -errno. */
static int diag_answer(int nl, const struct inet_diag_req_v2 *req, int64_t deadline, uid_t *uid)
{
    union {
        struct nlmsghdr h;
        char buf[8192];
    } u;
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = nl, .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return -errno;
        if (pr == 0)
            return -ETIMEDOUT;
        struct sockaddr_nl from;
        struct iovec iov = {.iov_base = u.buf, .iov_len = sizeof(u.buf)};
        struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = recvmsg(nl, &mh, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        if (mh.msg_flags & MSG_TRUNC)
            return -EPROTO;
        if (mh.msg_namelen != sizeof(from) || from.nl_pid != 0)
            continue;   /* not from the kernel */
        for (size_t off = 0; off + sizeof(struct nlmsghdr) <= (size_t)n;) {
            struct nlmsghdr *h = (struct nlmsghdr *)(u.buf + off);
            if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > (size_t)n - off)
                return -EPROTO;
            off += NLMSG_ALIGN(h->nlmsg_len);
            if (h->nlmsg_seq != DIAG_SEQ)
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                    return -EPROTO;
                return e->error < 0 ? e->error : -EPROTO;   /* (no ACK was asked for) */
            }
            if (h->nlmsg_type == NLMSG_DONE)
                return -ENOENT;
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                return -EPROTO;
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            if (!same_socket(m, req))
                return -EPROTO;
            /* No inode: the client closed its socket (orphaned, or TIME_WAIT).
             * Its owner is then reported as root by some kernels: never
             * believe it. */
            if (m->idiag_inode == 0)
                return -ENOTCONN;
            *uid = m->idiag_uid;
            return 0;
        }
    }
}

/* The owner of this kernel's TCP socket whose source is src and destination dst. */
static int diag_owner(const struct sockaddr_storage *src, const struct sockaddr_storage *dst, unsigned timeout_ms,
                      uid_t *uid)
{
    struct {
        struct nlmsghdr h;
        struct inet_diag_req_v2 r;
    } req = {
        .h = {.nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST,
              .nlmsg_seq = DIAG_SEQ},
        .r = {.sdiag_family = (uint8_t)src->ss_family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0u,
              .id.idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}},
    };
    size_t alen;
    const void *a = addr_of(src, &alen, &req.r.id.idiag_sport);
    memcpy(req.r.id.idiag_src, a, alen);
    a = addr_of(dst, &alen, &req.r.id.idiag_dport);
    memcpy(req.r.id.idiag_dst, a, alen);

    int64_t deadline = mono_ms() + timeout_ms;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -errno;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    int rc;
    if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) != (ssize_t)sizeof(req))
        rc = -errno;
    else
        rc = diag_answer(nl, &req.r, deadline, uid);
    close(nl);
    return rc == -EINTR ? -ETIMEDOUT : rc;
}

int rpc_tcp_peer_uid(int fd, unsigned timeout_ms, uid_t *uid)
{
    struct sockaddr_storage local, peer;
    socklen_t ll = sizeof(local), pl = sizeof(peer);
    if (getsockname(fd, (struct sockaddr *)&local, &ll) < 0 || getpeername(fd, (struct sockaddr *)&peer, &pl) < 0)
        return -errno;
    if ((local.ss_family != AF_INET && local.ss_family != AF_INET6) || peer.ss_family != local.ss_family)
        return -EAFNOSUPPORT;
    /* the client's socket: source = the peer's address, destination = ours */
    return diag_owner(&peer, &local, timeout_ms, uid);
}

int rpc_tcp_peer_selfcheck(int listen_fd, unsigned timeout_ms)
{
    struct sockaddr_storage local, none;
    socklen_t ll = sizeof(local);
    if (getsockname(listen_fd, (struct sockaddr *)&local, &ll) < 0)
        return -errno;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6)
        return -EAFNOSUPPORT;
    memset(&none, 0, sizeof(none));
    none.ss_family = local.ss_family;
    uid_t uid;
    int rc = diag_owner(&local, &none, timeout_ms, &uid);   /* a listener: destination 0:0 */
    return rc == 0 && uid != geteuid() ? -EPROTO : rc;
}

int rpc_user_groups(uid_t uid, gid_t *gid, gid_t **groups, size_t *ngroups)
{
    *groups = NULL;
    *ngroups = 0;
    long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t bl = sz > 0 ? (size_t)sz : 4096;
    char *buf = NULL;
    struct passwd pw, *res = NULL;
    int e;
    for (;;) {   /* grow on ERANGE, up to 1 MiB */
        char *nb = realloc(buf, bl);
        if (!nb) {
            free(buf);
            return -ENOMEM;
        }
        buf = nb;
        e = getpwuid_r(uid, &pw, buf, bl, &res);
        if (e != ERANGE || bl >= (1u << 20))
            break;
        bl *= 2;
    }
    if (e || !res) {
        free(buf);
        return e ? -e : -ENOENT;
    }
    *gid = pw.pw_gid;
    int n = 16;
    gid_t *g = NULL;
    for (int tries = 0; tries < 4; tries++) {
        gid_t *ng = realloc(g, (size_t)n * sizeof(gid_t));
        if (!ng) {
            free(g);
            free(buf);
            return -ENOMEM;
        }
        g = ng;
        int want = n;
        if (getgrouplist(pw.pw_name, pw.pw_gid, g, &want) >= 0) {
            free(buf);
            *groups = g;
            *ngroups = (size_t)want;
            return 0;
        }
        n = want > n ? want : n * 2;   /* it says how many there are */
    }
    free(g);
    free(buf);
    return -EAGAIN;
}
