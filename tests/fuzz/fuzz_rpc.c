/*
 * libFuzzer target: arbitrary bytes sent to lib/rpc's server on a unix
 * socket (framing, JSON, batches, dispatch, replies), or, when the first
 * byte is odd, on its lenient loopback TCP listener with a method table of
 * its own, where "bdf" runs vfe-vhostd's peer-format PCI address decoder
 * (app/vfe-vdpa/rpc_compat_bdf.c) and checks what it accepts.  The socket
 * lives in a private temp dir, removed with it when the process exits
 * (normally or on a sanitizer report).
 */
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log/vfe_log.h"
#include "app/vfe-vdpa/rpc_compat.h"
#include "lib/rpc/rpc.h"

static struct ev_loop *loop;
static struct rpc_server *srv;
static char dir[64], path[108];
static struct rpc_call *later;
static int tcp_port;

/* What the decoder accepts is canonical: 12 characters, lower-case hex, and decoded again unchanged. */
static int m_bdf(void *ctx, json_t *params, struct rpc_call *c)
{
    char out[VHOSTD_BDF_LEN], again[VHOSTD_BDF_LEN];
    const char *in = json_string_value(json_object_get(params, "dev"));
    if (vhostd_bdf_normalise(in, out) == 0) {
        if (strlen(out) != 12 || vhostd_bdf_normalise(out, again) != 0 || strcmp(out, again))
            abort();
        for (int i = 0; i < 12; i++)
            if (out[i] >= 'A' && out[i] <= 'Z')
                abort();
    }
    rpc_call_result(c, json_string(in ? out : ""));
    return 0;
}

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
        rpc_register_tcp(srv, "bdf", m_bdf, NULL);
        rpc_register_tcp(srv, "async", m_async, NULL);
        struct rpc_tcp_opts to = {.lenient = true};
        for (int i = 0; i < 50 && !tcp_port; i++) {
            char spec[32];
            int port = 20000 + (getpid() * 7 + i * 131) % 40000;
            snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
            if (rpc_server_listen_tcp_opts(srv, spec, &to) == 0)
                tcp_port = port;
        }
    }
    bool tcp = size && (data[0] & 1) && tcp_port;
    int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tcp_port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || (tcp ? connect(fd, (struct sockaddr *)&sin, sizeof(sin)) : connect(fd, (struct sockaddr *)&sa,
                                                                                      sizeof(sa))) < 0)
        abort();
    if (tcp) {   /* the first byte chose the transport */
        data++;
        size--;
        struct linger lg = {.l_onoff = 1, .l_linger = 0};   /* reset on close: no TIME_WAIT per run */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
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
