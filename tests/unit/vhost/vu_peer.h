/* A raw vhost-user front-end for tests of lib/vhost in the same process: it
 * sends requests on a socket and steps the library's loop until the answer
 * (or the close) arrives. */
#ifndef TEST_VU_PEER_H
#define TEST_VU_PEER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/vhost/vhost_proto.h"

struct vu_peer {
    struct ev_loop *loop;
    int fd;
};

int vu_peer_connect(struct vu_peer *p, struct ev_loop *loop, const char *path);
void vu_peer_close(struct vu_peer *p);
/* Run the loop for up to ms (or until cond is true when given). */
void vu_peer_spin(struct vu_peer *p, int ms);
int vu_peer_send(struct vu_peer *p, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                 const int *fds, unsigned nfds);
/* Wait for one reply: its payload size, -ETIMEDOUT, or -EPIPE when closed. */
int vu_peer_reply(struct vu_peer *p, uint32_t req, void *buf, size_t cap, int ms);
/* send + wait for a u64 reply (REPLY_ACK or GET_*); -errno or the value. */
long long vu_peer_call_u64(struct vu_peer *p, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                           const int *fds, unsigned nfds);
/* The library closed the connection. */
bool vu_peer_closed(struct vu_peer *p, int ms);

#endif
