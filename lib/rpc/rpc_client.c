/* JSON-RPC client: one blocking call with a timeout (tools and tests). */
#include "lib/rpc/rpc.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fail(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return RPC_INTERNAL_ERROR;
}

static long ms_left(const struct timespec *t0, int timeout_ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return timeout_ms - ((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

static int send_all(int fd, const char *p, size_t n, const struct timespec *t0, int timeout_ms)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
        if (ms_left(t0, timeout_ms) <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* Read one reply line (the server ends every reply with '\n'; a reply may
 * also end at EOF).  NULL with *why set on failure. */
static json_t *read_reply(int fd, const struct timespec *t0, int timeout_ms, const char **why)
{
    size_t cap = 64 * 1024, got = 0;
    char *buf = malloc(cap);
    json_t *reply = NULL;
    json_error_t je;
    *why = "out of memory";
    while (buf) {
        long left = ms_left(t0, timeout_ms);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            *why = "no answer in time";
            break;
        }
        if (got == cap) {
            if (cap >= (size_t)RPC_MAX_REPLY + 1) {
                *why = "reply too large";
                break;
            }
            cap = cap * 2 > (size_t)RPC_MAX_REPLY + 1 ? (size_t)RPC_MAX_REPLY + 1 : cap * 2;
            char *b = realloc(buf, cap);
            if (!b) {
                *why = "out of memory";
                break;
            }
            buf = b;
        }
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *why = "connection closed without an answer";
            if (r == 0 && got)
                reply = json_loadb(buf, got, JSON_DISABLE_EOF_CHECK, &je);
            break;
        }
        bool line_end = memchr(buf + got, '\n', (size_t)r) != NULL;
        got += (size_t)r;
        if (line_end) {
            reply = json_loadb(buf, got, JSON_DISABLE_EOF_CHECK, &je);
            if (!reply)
                *why = "the answer is not JSON";
            break;
        }
    }
    free(buf);
    return reply;
}

int rpc_client_call(const char *path, const char *method, json_t *params, int timeout_ms, json_t **result,
                    char *msg, size_t msg_len)
{
    *result = NULL;
    msg[0] = '\0';
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return fail(msg, msg_len, "socket path too long: %s", path);
    strcpy(sa.sun_path, path);
    static unsigned long seq;
    json_t *req = json_pack("{s:s, s:s, s:o, s:I}", "jsonrpc", "2.0", "method", method, "params",
                            params ? json_incref(params) : json_object(), "id", (json_int_t)++seq);
    char *txt = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!txt)
        return fail(msg, msg_len, "cannot encode the request (out of memory?)");
    size_t n = strlen(txt);
    txt[n] = '\n';   /* replaces the NUL: one request line */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int rc = fail(msg, msg_len, "cannot reach vfe-vhostd at %s: %s (is it running? see -s)", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(txt);
        return rc;
    }
    int sent = send_all(fd, txt, n + 1, &t0, timeout_ms);
    free(txt);
    const char *why = "sending failed";
    json_t *reply = sent == 0 ? read_reply(fd, &t0, timeout_ms, &why) : NULL;
    int e = errno;
    close(fd);
    if (sent < 0)
        return fail(msg, msg_len, "sending to %s failed: %s", path, strerror(e));
    if (!reply)
        return fail(msg, msg_len, "no answer from vfe-vhostd at %s: %s", path, why);
    json_t *err = json_object_get(reply, "error");
    int code = 0;
    if (!json_is_object(reply) || (!json_is_object(err) && !json_object_get(reply, "result"))) {
        code = fail(msg, msg_len, "malformed answer from vfe-vhostd at %s", path);
    } else if (err) {
        code = (int)json_integer_value(json_object_get(err, "code"));
        snprintf(msg, msg_len, "%s", json_string_value(json_object_get(err, "message")) ?: "error");
        if (code >= 0)
            code = RPC_INTERNAL_ERROR;
    } else {
        *result = json_incref(json_object_get(reply, "result"));
    }
    json_decref(reply);
    return code;
}
