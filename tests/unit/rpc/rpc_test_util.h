/* Helpers of the lib/rpc tests: a server on this thread's loop, clients on
 * other threads or in raw sockets, temp dirs under /tmp removed at the end. */
#ifndef RPC_TEST_UTIL_H
#define RPC_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/rpc/rpc.h"

/* mkdir /tmp/vfe-rpc-<tag>-<pid> (0755) and put "<dir>/rpc.sock" in path. */
void rt_dir(char *path, size_t len, const char *tag);
/* Remove what rt_dir made (the socket must already be gone). */
void rt_dir_remove(const char *path);

/* A connected blocking client socket, or -1. */
int rt_connect(const char *path);
/* s also listens on a loopback TCP port (tried from seed on; with opts): the
 * port, or -1 (the last error in *err). */
int rt_listen_tcp(struct rpc_server *s, unsigned seed, const struct rpc_tcp_opts *opts, int *err);
/* A blocking client connected to 127.0.0.1:port, or -1. */
int rt_tcp_connect(int port);
/* Write all of buf; false on error. */
bool rt_write(int fd, const char *buf, size_t len);

/* Run the loop (non-blocking steps, 1 ms apart) for up to ms or until done(arg). */
void rt_spin(struct ev_loop *loop, int ms, bool (*done)(void *arg), void *arg);
double rt_now_ms(void);

/* rpc_client_call on another thread while this one runs the loop. */
struct rt_call {
    const char *path, *method;
    json_t *params;             /* borrowed */
    int timeout_ms;
    int rc;
    json_t *result;
    char msg[512];
    double ms;                  /* how long the call took */
    bool done;
};
void rt_call_start(struct rt_call *c);
/* Spin the loop until the call is done (or max_ms), join the thread. */
void rt_call_finish(struct ev_loop *loop, struct rt_call *c, int max_ms);
/* Both in one. */
int rt_call(struct ev_loop *loop, struct rt_call *c, const char *path, const char *method, json_t *params);

#endif
