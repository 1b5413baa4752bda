/* Internals of the test front-end, shared by its .c files. */
#ifndef VFE_FRONTEND_PRIV_H
#define VFE_FRONTEND_PRIV_H

#include "tests/frontend/vfe_fe_proto.h"
#include "tests/frontend/vfe_fe_ring.h"
#include "tests/frontend/vfe_frontend.h"

#define FE_RINGS (2 * VFE_FE_MAX_PAIRS)
#define FE_TX_BUF 10240u           /* header + the largest frame */
#define FE_BACKEND_LOG 64

struct fe_region {
    int fd;
    uint8_t *va;
    uint64_t gpa, size;
    bool in_use;
};

struct fe_queue {
    struct vfe_fe_ring ring;
    bool laid_out, started;
    uint64_t area_gpa;
    int kick, call;
    uint64_t calls, kicks, kicks_suppressed;
    volatile uint16_t *notifier;   /* host notifier page from the back-end, as QEMU maps it */
    size_t notifier_size;
    uint64_t notifier_kicks;
};

struct fe_pair_stats {
    uint64_t tx_frames, tx_bytes, tx_done, rx_frames, rx_bytes, rx_buffers, rx_errors;
};

/* Rings start one page into region 0: QEMU's virtio devices take a ring
 * address of 0 for "no ring" (a real guest never puts one there), and in
 * direct mode over kernel VFIO the device sees these GPAs as IOVAs. */
#define FE_RING_BASE_GPA 0x1000ull

struct vfe_fe {
    struct vfe_fe_opts o;
    int sock, lsock, backend;
    uint64_t offered, features, proto_offered, proto;
    unsigned queue_num, max_mem_slots;
    uint64_t status;
    struct fe_region reg[VFE_FE_MAX_REGIONS];
    uint64_t ring_area_size, tx_base_gpa;
    struct fe_queue q[FE_RINGS];
    struct fe_pair_stats st[VFE_FE_MAX_PAIRS];
    int log_fd;
    uint8_t *log;
    uint64_t log_size;
    bool logging;
    unsigned backend_counts[VFE_FE_B_MAX_REQ];
    struct vfe_fe_backend_msg backend_log[FE_BACKEND_LOG];
    unsigned backend_total;
};

long fe_now_ms(void);

/* vfe_fe_msg.c: the wire */
int fe_send_msg(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
                unsigned nfds, int timeout_ms);
/* One message: payload size, fds received closed unless fds_out; -ETIMEDOUT,
 * -EPIPE on EOF, -EMSGSIZE if it did not fit (the rest is read and dropped),
 * -EPROTO for a size no message has. */
int fe_recv_msg(int fd, struct vfe_fe_msg_hdr *h, void *payload, size_t cap, int *fds_out, unsigned *nfds,
                long end_ms);

/* vfe_fe_conn.c */
int fe_connect(struct vfe_fe *fe);
void fe_drop_connection(struct vfe_fe *fe);

/* vfe_fe_request.c: requests with QEMU's reply rules */
int fe_request(struct vfe_fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
               unsigned nfds, bool want_ack);
int fe_get_u64(struct vfe_fe *fe, uint32_t req, uint64_t *v);
int fe_read_reply(struct vfe_fe *fe, uint32_t req, void *buf, size_t cap);
int fe_set_u64(struct vfe_fe *fe, uint32_t req, uint64_t v, bool want_ack);

/* vfe_fe_negotiate.c */
int fe_negotiate(struct vfe_fe *fe);
int fe_set_features(struct vfe_fe *fe, uint64_t features);
int fe_add_status(struct vfe_fe *fe, uint64_t bits);

/* vfe_fe_mem.c */
int fe_region_new(struct fe_region *r, uint64_t gpa, uint64_t size);
void fe_region_free(struct fe_region *r);
int fe_send_memory(struct vfe_fe *fe);
uint64_t fe_top_gpa(const struct vfe_fe *fe);

/* vfe_fe_queue.c */
int fe_set_ring_addr(struct vfe_fe *fe, unsigned ring, bool log);
void fe_count_calls(struct vfe_fe *fe, unsigned ring);
int fe_kick(struct vfe_fe *fe, unsigned ring);

/* vfe_fe_backend.c */
void fe_backend_serve(struct vfe_fe *fe);
void fe_backend_close(struct vfe_fe *fe);
void fe_notifier_drop(struct vfe_fe *fe, unsigned ring);

/* vfe_fe_log.c */
int fe_log_resize(struct vfe_fe *fe);
void fe_log_free(struct vfe_fe *fe);

#endif
