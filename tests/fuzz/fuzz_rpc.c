/*
 * libFuzzer target: arbitrary bytes sent to lib/rpc's server on a unix
 * socket (framing, JSON, batches, dispatch, replies).  The socket lives in a
 * private temp dir, removed with it when the process exits (normally or on a
 * sanitizer report).
 */
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "lib/rpc/rpc.h"

static struct ev_loop *loop;
static struct rpc_server *srv;
static char dir[64], path[108];
static struct rpc_call *later;

static int m_echo(void *ctx, json_t *params, struct rpc_call *c)
{
    rpc_call_result(c, json_incref(params));
    return 0;
}

static int m_async(void *ctx, json_t *params, struct rpc_call *c)
{
    if (later)
        rpc_call_error(later, RPC_BUSY, "replaced");
    later = c;
    return RPC_PENDING;
}

static int m_silent(void *ctx, json_t *params, struct rpc_call *c)
{
    return 0;   /* a buggy method that forgets to answer */
}

void __sanitizer_set_death_callback(void (*cb)(void));

static void cleanup(void)
{
    static bool done;
    if (done || !srv)
        return;
    done = true;
    rpc_server_destroy(srv);   /* removes its own socket */
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop) {
        loop = ev_loop_new(0);
        vfe_log_set_level(0);
        snprintf(dir, sizeof(dir), "/tmp/vfe-fuzz-rpc-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        snprintf(path, sizeof(path), "%s/rpc.sock", dir);
        int err;
        srv = rpc_server_create(loop, path, NULL, &err);
        if (!srv)
            abort();
        atexit(cleanup);
        __sanitizer_set_death_callback(cleanup);
        rpc_register(srv, "echo", m_echo, NULL);
        rpc_register(srv, "async", m_async, NULL);
        rpc_register(srv, "silent", m_silent, NULL);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off > 65536 ? 65536 : size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
        ev_run(loop, EVRUN_NOWAIT);
    }
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 4; i++)
        ev_run(loop, EVRUN_NOWAIT);
    if (later && (size & 1)) {
        rpc_call_result(later, json_string("late"));   /* after the client may be gone */
        later = NULL;
    }
    char sink[4096];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
        ;
    close(fd);
    for (int i = 0; i < 2; i++)
        ev_run(loop, EVRUN_NOWAIT);
    return 0;
}
