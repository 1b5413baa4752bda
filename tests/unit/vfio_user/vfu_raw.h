/* Raw vfio-user client for tests: send hand-made (also malformed) messages. */
#ifndef TEST_VFU_RAW_H
#define TEST_VFU_RAW_H

#include <stddef.h>
#include <stdint.h>

#include "lib/vfio_user/vfu_msg.h"

/* Blocking connected socket, or -1. */
int raw_connect(const char *path);
/* Connect and negotiate, retrying for up to 1 s while the server still
 * holds a previous client.  Socket or -1. */
int raw_connect_version(const char *path);
/* VERSION with our caps; 0 when the server accepted it. */
int raw_version(int sock);
/* Send a command and wait for one message.  0 (reply in *rep, caller frees),
 * -ETIMEDOUT, -ECONNRESET when the server closed, other -errno. */
int raw_call(int sock, uint16_t cmd, const void *p, size_t len, const int *fds, unsigned nfds,
             struct vfu_msg *rep, int timeout_ms);
/* Outcome of one command: 0 success reply, errno of an error reply,
 * -ECONNRESET if the server closed, -ETIMEDOUT if nothing came. */
int raw_status(int sock, uint16_t cmd, const void *p, size_t len, const int *fds, unsigned nfds);
/* Send raw bytes (with fds on the first byte); 0 or -errno. */
int raw_send_bytes(int sock, const void *p, size_t len, const int *fds, unsigned nfds);
/* Wait until the peer closes the socket (read returns 0) within timeout_ms: 0, else -1. */
int raw_wait_closed(int sock, int timeout_ms);
/* REGION_READ; 0 or errno / -errno as raw_status. */
int raw_region_read(int sock, uint32_t region, uint64_t off, void *buf, uint32_t count);

#endif
