/* A scripted vhost-user back-end on a thread, for unit tests of the test
 * front-end: it records every request and answers the way it is told.
 * Written against the spec's wire format, not against the front-end's code. */
#ifndef FAKE_BACKEND_H
#define FAKE_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define FAKE_MAX_MSGS 512

struct fake_msg {
    uint32_t request, flags, size;
    unsigned nfds;
    uint8_t payload[128];
};

struct fake_backend {
    /* set before fake_start */
    char path[108];
    uint64_t features, protocol_features;
    uint32_t nack_request;      /* answer 1 to this request's NEED_REPLY */
    uint32_t silent_request;    /* never answer this one */
    uint32_t bad_reply_request; /* answer this one with a wrong request id */
    bool close_on_unknown;      /* requests above 40 end the connection */
    unsigned queue_num;         /* GET_QUEUE_NUM's answer, 0 = 4 */
    /* kept by the thread */
    pthread_t thread;
    int lsock, sock, backend_fd;
    uint64_t status;
    pthread_mutex_t lock;
    struct fake_msg msgs[FAKE_MAX_MSGS];
    unsigned nmsgs;
    bool stop;
};

int fake_start(struct fake_backend *f, const char *path);
void fake_stop(struct fake_backend *f);
/* Wait until n requests were recorded (bounded); the count. */
unsigned fake_wait(struct fake_backend *f, unsigned n, int timeout_ms);
/* The i-th recorded request (copied), false past the end. */
bool fake_msg(struct fake_backend *f, unsigned i, struct fake_msg *m);
/* Index of the first request of type req at or after from, or -1. */
int fake_find(struct fake_backend *f, uint32_t req, unsigned from);

#endif
