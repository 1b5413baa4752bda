/* Internals of the test front-end. */
#ifndef VFE_FRONTEND_PRIV_H
#define VFE_FRONTEND_PRIV_H

#include "drivers/common/virtio/vfe_vring.h"
#include "lib/vhost/vhost_proto.h"
#include "tests/vu_frontend/vfe_frontend.h"

#define FE_RINGS (2 * VFE_FE_MAX_PAIRS)
#define FE_RX_BUF 2048u
#define FE_TX_BUF 10240u
#define FE_GPA1 0x40000000ull    /* second region: a hole below it */

struct fe_region {
    int fd;
    uint8_t *va;
    uint64_t gpa, size;
};

struct vfe_fe {
    struct vfe_fe_opts o;
    int sock, lsock, backend[2];
    uint64_t offered, features, proto_offered, proto;
    unsigned queue_num;
    struct fe_region reg[2];
    struct vfe_vring rings[FE_RINGS];
    bool rings_init;
    uint64_t ring_gpa[FE_RINGS];
    int kick[FE_RINGS], call[FE_RINGS];
    uint64_t calls[FE_RINGS];
    unsigned tx_next[VFE_FE_MAX_PAIRS];
    int log_fd;
    uint8_t *log;
    uint64_t log_size;
    unsigned backend_counts[8];
};

/* vfe_frontend_msg.c */
int fe_send(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
            unsigned nfds);
int fe_request(struct vfe_fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
               unsigned nfds);
int fe_get_u64(struct vfe_fe *fe, uint32_t req, uint64_t *v);
int fe_read_reply(struct vfe_fe *fe, uint32_t req, void *buf, size_t cap, int timeout_ms);
void fe_serve_backend(struct vfe_fe *fe);
int fe_negotiate(struct vfe_fe *fe);
int fe_connect(struct vfe_fe *fe);

/* layout */
uint8_t *fe_host(struct vfe_fe *fe, uint64_t gpa);
uint64_t fe_rx_buf_gpa(const struct vfe_fe *fe, unsigned pair, unsigned slot);
uint64_t fe_tx_buf_gpa(const struct vfe_fe *fe, unsigned pair, unsigned slot);

#endif
