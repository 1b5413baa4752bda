/* The peer's TCP control interface, client side (see mgmt_peer.h). */
#include "tools/vhostmgmt/mgmt_peer.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tools/vhostmgmt/mgmt_err.h"
#include "tools/vhostmgmt/mgmt_pyjson.h"

int mgmt_peer_addr(const char *spec, char *host, size_t host_len, char *port, size_t port_len, char *msg,
                   size_t msg_len)
{
    const char *p = spec, *colon;
    size_t hn;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close || close[1] != ':')
            return mgmt_failf(msg, msg_len, "--tcp '%.60s': an IPv6 address is written [ADDR]:PORT", spec);
        p++;
        hn = (size_t)(close - p);
        colon = close + 1;
    } else {
        colon = strrchr(p, ':');
        hn = colon ? (size_t)(colon - p) : 0;
    }
    if (colon && hn == 0)
        return mgmt_failf(msg, msg_len, "--tcp '%.60s': the address before ':' is empty", spec);
    if (hn >= host_len)
        return mgmt_failf(msg, msg_len, "--tcp: the address is longer than %zu bytes", host_len - 1);
    if (colon) {
        memcpy(host, p, hn);
        host[hn] = '\0';
    } else {
        snprintf(host, host_len, "127.0.0.1");
    }
    const char *ps = colon ? colon + 1 : spec;
    char *end;
    long n = strtol(ps, &end, 10);
    if (!*ps || *end || n < 1 || n > 65535 || strspn(ps, "0123456789") != strlen(ps))
        return mgmt_failf(msg, msg_len, "--tcp '%.60s': the port must be a number 1..65535 ([ADDR:]PORT)", spec);
    snprintf(port, port_len, "%ld", n);
    return 0;
}

char *mgmt_peer_request(const char *method, const json_t *params, unsigned id)
{
    json_t *req = json_pack("{s:s, s:s, s:I}", "jsonrpc", "2.0", "method", method, "id", (json_int_t)id);
    if (req && params && json_object_size(params))
        json_object_set(req, "params", (json_t *)params);
    char *txt = req ? mgmt_py_dumps(req) : NULL;
    json_decref(req);
    return txt;
}

static long ms_left(const struct timespec *t0, int timeout_ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return timeout_ms - ((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Wait for events on fd until the deadline: 1 ready, 0 time-out, -1 error. */
static int wait_fd(int fd, short events, const struct timespec *t0, int timeout_ms)
{
    for (;;) {
        long left = ms_left(t0, timeout_ms);
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

/* A connected non-blocking socket to host:port, or -1 with msg. */
static int connect_to(const char *host, const char *port, const struct timespec *t0, int timeout_ms, char *msg,
                      size_t msg_len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    int gr = getaddrinfo(host, port, &hints, &ai);
    if (gr)
        return mgmt_failf(msg, msg_len, "cannot resolve %s: %s", host, gai_strerror(gr));
    int err = 0, fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            err = errno;
            if (err == EINPROGRESS) {
                socklen_t sl = sizeof(err);
                int w = wait_fd(fd, POLLOUT, t0, timeout_ms);
                if (w <= 0)
                    err = w == 0 ? ETIMEDOUT : errno;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
                    err = errno;
            }
            if (err) {
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return mgmt_failf(msg, msg_len, "cannot connect to %s:%s: %s (is the daemon listening there?)", host, port,
                    strerror(err));
    return fd;
}

static int send_all(int fd, const char *p, size_t n, const struct timespec *t0, int timeout_ms)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            int r = wait_fd(fd, POLLOUT, t0, timeout_ms);
            if (r <= 0) {
                if (r == 0)
                    errno = ETIMEDOUT;
                return -1;
            }
            continue;
        }
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read until the bytes so far make one JSON value. */
static json_t *read_value(int fd, const struct timespec *t0, int timeout_ms, const char **why)
{
    size_t cap = 4096, got = 0;
    char *buf = malloc(cap);
    json_t *v = NULL;
    json_error_t je;
    *why = "out of memory";
    while (buf) {
        int r = wait_fd(fd, POLLIN, t0, timeout_ms);
        if (r <= 0) {
            *why = r == 0 ? "no complete answer in time" : "poll failed";
            break;
        }
        if (got == cap) {
            if (cap >= MGMT_PEER_MAX_REPLY) {
                *why = "the answer is too large";
                break;
            }
            char *b = realloc(buf, cap * 2);
            if (!b)
                break;
            buf = b;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            *why = got ? "the answer is not JSON" : "the connection closed without an answer";
            break;
        }
        got += (size_t)n;
        /* a value cut short fails to parse: read on (JSON_DISABLE_EOF_CHECK: a newline may follow it) */
        v = json_loadb(buf, got, JSON_DISABLE_EOF_CHECK, &je);
        if (v)
            break;
    }
    free(buf);
    return v;
}

int mgmt_peer_connect(struct mgmt_peer_conn *c, const char *spec, int timeout_ms, char *msg, size_t msg_len)
{
    char host[256], port[8];
    c->fd = -1;
    c->timeout_ms = timeout_ms;
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    if (mgmt_peer_addr(spec, host, sizeof(host), port, sizeof(port), msg, msg_len))
        return -1;
    snprintf(c->where, sizeof(c->where), "%s:%s", host, port);
    c->fd = connect_to(host, port, &c->start, timeout_ms, msg, msg_len);
    return c->fd < 0 ? -1 : 0;
}

int mgmt_peer_call(struct mgmt_peer_conn *c, const char *method, const json_t *params, unsigned id, json_t **reply,
                   char *msg, size_t msg_len)
{
    *reply = NULL;
    char *req = mgmt_peer_request(method, params, id);
    int rc;
    if (!req) {
        rc = mgmt_failf(msg, msg_len, "cannot encode the request (out of memory?)");
    } else if (send_all(c->fd, req, strlen(req), &c->start, c->timeout_ms)) {
        rc = mgmt_failf(msg, msg_len, "sending to %s failed: %s", c->where, strerror(errno));
    } else {
        const char *why;
        *reply = read_value(c->fd, &c->start, c->timeout_ms, &why);
        rc = *reply ? 0 : mgmt_failf(msg, msg_len, "no answer from %s: %s", c->where, why);
    }
    free(req);
    close(c->fd);
    c->fd = -1;
    return rc;
}
