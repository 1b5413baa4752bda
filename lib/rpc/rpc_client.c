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

int rpc_client_call(const char *path, const char *method, json_t *params, int timeout_ms, json_t **result,
                    char *msg, size_t msg_len)
{
    *result = NULL;
    msg[0] = '\0';
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return fail(msg, msg_len, "socket path too long: %s", path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int rc = fail(msg, msg_len, "cannot reach vfe-vhostd at %s: %s (is it running? see -s)", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    static unsigned long seq;
    json_t *req = json_pack("{s:s, s:s, s:O, s:I}", "jsonrpc", "2.0", "method", method, "params",
                            params ? params : json_object(), "id", (json_int_t)++seq);
    char *txt = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    size_t n = strlen(txt);
    txt[n] = '\n';
    bool sent = send(fd, txt, n + 1, MSG_NOSIGNAL) == (ssize_t)(n + 1);
    free(txt);
    if (!sent) {
        close(fd);
        return fail(msg, msg_len, "sending to %s failed: %s", path, strerror(errno));
    }
    char *buf = malloc(RPC_MAX_REQUEST);
    size_t got = 0;
    json_t *reply = NULL;
    json_error_t je;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!reply && got < RPC_MAX_REQUEST) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t r = read(fd, buf + got, RPC_MAX_REQUEST - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        reply = json_loadb(buf, got, JSON_DISABLE_EOF_CHECK, &je);
    }
    free(buf);
    close(fd);
    if (!reply)
        return fail(msg, msg_len, "no answer from vfe-vhostd at %s", path);
    json_t *err = json_object_get(reply, "error");
    int code = 0;
    if (err) {
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
