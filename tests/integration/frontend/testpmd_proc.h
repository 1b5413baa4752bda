/* DPDK testpmd as a vhost-user back-end for tests: started by PID with its
 * stdin on a pipe (interactive mode ends when stdin closes), stopped by PID. */
#ifndef TESTPMD_PROC_H
#define TESTPMD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct testpmd {
    pid_t pid;
    int stdin_fd;
    char prefix[64];    /* --file-prefix, so parallel instances do not meet */
};

/* The testpmd binary ($VFE_TESTPMD or dpdk-testpmd in $PATH), NULL if none. */
const char *testpmd_binary(void);

/* net_vhost0 on sock with queues pairs, io forwarding on one forwarding
 * lcore; client: testpmd connects to sock (our front-end listens).  Output
 * goes to log.  Without client, waits up to timeout_ms for the socket. */
int testpmd_start(struct testpmd *t, const char *sock, unsigned queues, bool client, const char *log,
                  int timeout_ms);
/* "quit" on stdin, then SIGTERM, then SIGKILL; exit status.  Removes the
 * instance's DPDK runtime dir. */
int testpmd_stop(struct testpmd *t);

/* DPDK's runtime dir of an EAL started with --file-prefix=prefix by this
 * user (/var/run/dpdk/PREFIX for root, else $XDG_RUNTIME_DIR or /tmp), into buf. */
const char *testpmd_runtime_dir(const char *prefix, char *buf, size_t len);
/* Remove that dir once its EAL has exited (it stays empty with --no-shconf);
 * 0, or -errno (-ENOENT if it was not there). */
int testpmd_remove_runtime_dir(const char *prefix);

#endif
