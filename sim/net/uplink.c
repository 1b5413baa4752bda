/* UDP uplink: a socket joining this sim's switch to another sim's, on
 * loopback or on a directly attached link (a veth between namespaces).
 * One Ethernet frame per datagram, no header. */
#include "sim/net/uplink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "sim/net/l2_switch.h"
#include "sim/net/sw_priv.h"

#define UPLINK_RX_BATCH 64

struct uplink {
    struct sim *s;
    int fd;
    ev_io w;
    struct sockaddr_in peer;
    struct uplink_stats st;
    uint8_t buf[SIM_MAX_FRAME + 1];
};

static struct uplink *up_of(struct sim *s)
{
    struct sw_state *sw = s->sw;
    return sw ? sw->up : NULL;
}

static int parse_port(const char *str, size_t len, uint16_t *port)
{
    char tmp[8];
    char *end;
    if (len == 0 || len >= sizeof(tmp))
        return -EINVAL;
    memcpy(tmp, str, len);
    tmp[len] = 0;
    errno = 0;
    unsigned long v = strtoul(tmp, &end, 10);
    if (errno || *end || v == 0 || v > 65535 || tmp[0] < '0' || tmp[0] > '9')
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/* "LPORT" or "LADDR:LPORT": the local end; LADDR is a numeric IPv4 address. */
static int parse_local(const char *str, size_t len, uint32_t *laddr_be, uint16_t *lport)
{
    const char *colon = memchr(str, ':', len);
    if (!colon) {
        *laddr_be = htonl(INADDR_LOOPBACK);
        return parse_port(str, len, lport);
    }
    char ip[INET_ADDRSTRLEN];
    size_t il = (size_t)(colon - str);
    if (il == 0 || il >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, str, il);
    ip[il] = 0;
    struct in_addr a;
    if (inet_pton(AF_INET, ip, &a) != 1)
        return -EINVAL;
    *laddr_be = a.s_addr;
    return parse_port(colon + 1, len - il - 1, lport);
}

static bool is_loopback(uint32_t addr_be)
{
    return (ntohl(addr_be) >> 24) == 127;
}

/* A unicast host address: not 0.0.0.0/8, multicast, reserved or broadcast. */
static bool is_unicast(uint32_t addr_be)
{
    uint32_t a = ntohl(addr_be);
    return (a >> 24) != 0 && a < 0xe0000000u;
}

int sim_uplink_parse(const char *spec, uint16_t *lport, uint32_t *local_addr_be, uint32_t *peer_addr_be,
                     uint16_t *rport)
{
    if (!spec || strncmp(spec, "udp:", 4) != 0) {
        LOG_E("uplink '%s': only udp:[LOCALADDR:]LOCALPORT,HOST:PORT is supported", spec ? spec : "");
        return -EINVAL;
    }
    const char *a = spec + 4;
    const char *comma = strchr(a, ',');
    const char *colon = comma ? strrchr(comma + 1, ':') : NULL;
    uint32_t laddr;
    if (!comma || !colon || colon == comma + 1 ||
        parse_local(a, (size_t)(comma - a), &laddr, lport) < 0 ||
        parse_port(colon + 1, strlen(colon + 1), rport) < 0) {
        LOG_E("uplink '%s': expected udp:[LOCALADDR:]LOCALPORT,HOST:PORT", spec);
        return -EINVAL;
    }
    char host[256];
    size_t hl = (size_t)(colon - comma - 1);
    if (hl >= sizeof(host)) {
        LOG_E("uplink '%s': host name too long", spec);
        return -EINVAL;
    }
    memcpy(host, comma + 1, hl);
    host[hl] = 0;

    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        LOG_E("uplink: cannot resolve '%s': %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    uint32_t addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr;
    freeaddrinfo(res);
    /* Without a local address both ends are on loopback.  With one (e.g. the
     * end of a veth pair between two network namespaces) the peer may be any
     * unicast address, and the socket never sends through a gateway
     * (SO_DONTROUTE): frames stay on the directly attached link. */
    if (is_loopback(laddr) ? !is_loopback(addr) : !is_unicast(addr) || !is_unicast(laddr)) {
        LOG_E("uplink: '%s' is not a %s address; refused", host,
              is_loopback(laddr) ? "loopback" : "unicast");
        return -EINVAL;
    }
    *local_addr_be = laddr;
    *peer_addr_be = addr;
    return 0;
}

static void rx_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct uplink *up = w->data;
    for (int i = 0; i < UPLINK_RX_BATCH; i++) {
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(up->fd, up->buf, sizeof(up->buf), MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&from, &fl);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                LOG_D("uplink: recv: %s", strerror(errno));
            return;
        }
        if (fl < sizeof(from) || from.sin_family != AF_INET ||
            from.sin_addr.s_addr != up->peer.sin_addr.s_addr || from.sin_port != up->peer.sin_port) {
            up->st.rx_drops++;
            LOG_D("uplink: datagram from an unexpected sender dropped");
            continue;
        }
        if (n < ETH_HDR_LEN || n > SIM_MAX_FRAME) {
            up->st.rx_drops++;
            LOG_D("uplink: datagram of %zd bytes dropped", n);
            continue;
        }
        up->st.rx_packets++;
        up->st.rx_bytes += (uint64_t)n;
        sim_sw_input(up->s, NULL, up->buf, (size_t)n, 0);
    }
}

int sim_uplink_open(struct sim *s, const char *spec)
{
    struct sw_state *sw = s->sw;
    uint16_t lport, rport;
    uint32_t laddr, peer;
    if (!sw)
        return -EINVAL;
    int rc = sim_uplink_parse(spec, &lport, &laddr, &peer, &rport);
    if (rc < 0)
        return rc;
    struct uplink *up = calloc(1, sizeof(*up));
    if (!up)
        return -ENOMEM;
    up->s = s;
    up->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (up->fd < 0) {
        rc = -errno;
        free(up);
        return rc;
    }
    struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = htons(lport),
                                 .sin_addr.s_addr = laddr };
    char lip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &laddr, lip, sizeof(lip));
    int one = 1;
    if ((!is_loopback(laddr) && setsockopt(up->fd, SOL_SOCKET, SO_DONTROUTE, &one, sizeof(one)) < 0) ||
        bind(up->fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
        rc = -errno;
        LOG_E("uplink: bind %s:%u: %s", lip, lport, strerror(errno));
        close(up->fd);
        free(up);
        return rc;
    }
    up->peer.sin_family = AF_INET;
    up->peer.sin_port = htons(rport);
    up->peer.sin_addr.s_addr = peer;
    ev_io_init(&up->w, rx_cb, up->fd, EV_READ);
    up->w.data = up;
    if (s->loop)
        ev_io_start(s->loop, &up->w);
    sw->up = up;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &peer, ip, sizeof(ip));
    LOG_I("uplink: udp %s:%u <-> %s:%u", lip, lport, ip, rport);
    return 0;
}

void sim_uplink_close(struct sim *s)
{
    struct sw_state *sw = s->sw;
    struct uplink *up = sw ? sw->up : NULL;
    if (!up)
        return;
    if (s->loop)
        ev_io_stop(s->loop, &up->w);
    close(up->fd);
    free(up);
    sw->up = NULL;
}

bool sim_uplink_present(struct sim *s)
{
    return up_of(s) != NULL;
}

void sim_uplink_send(struct sim *s, const uint8_t *frame, size_t len)
{
    struct uplink *up = up_of(s);
    if (!up)
        return;
    ssize_t n = sendto(up->fd, frame, len, MSG_DONTWAIT, (struct sockaddr *)&up->peer, sizeof(up->peer));
    if (n != (ssize_t)len) {
        up->st.tx_drops++;   /* peer not up (ECONNREFUSED) or socket full */
        return;
    }
    up->st.tx_packets++;
    up->st.tx_bytes += len;
}

const struct uplink_stats *sim_uplink_get_stats(struct sim *s)
{
    struct uplink *up = up_of(s);
    return up ? &up->st : NULL;
}
