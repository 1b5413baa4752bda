/* Internals of the vfio-user client shared by its files (vfio_user_client.c:
 * connection and synchronous calls; vfio_user_posted.c: posted mode). */
#ifndef VFIO_USER_PRIV_H
#define VFIO_USER_PRIV_H

#include <sys/uio.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "lib/vfio_user/vfu_msg.h"

/* One request sent and not answered yet (posted mode), in send order.
 * What its reply must echo is kept with it. */
struct vfu_preq {
    uint16_t id, cmd;
    long sent_ms;
    uint32_t region, count;       /* REGION_WRITE / REGION_READ */
    uint64_t off;
    uint64_t addr, size;          /* DMA_UNMAP */
    vfe_read_cb cb;               /* asynchronous read: non-NULL */
    vfe_write_cb wcb;             /* a write whose caller waits for its outcome: non-NULL */
    void *ctx;
    bool cancelled;               /* a read or wcb write whose caller gave up: its reply is dropped */
    bool enoent_ok;               /* DMA_UNMAP: "not mapped" counts as done (vfe_dma_apply.h) */
};

/* An answered asynchronous read (or wcb write) waiting for the next drain. */
struct vfu_pdone {
    vfe_read_cb cb;
    vfe_write_cb wcb;
    void *ctx;
    int err;
    uint8_t *data;                /* malloc'd payload (count bytes), or NULL */
    size_t len;
};

struct vfu_client {
    struct vfe_transport t;
    int sock;                     /* owned: the connection */
    uint16_t next_id;
    bool broken;
    struct vfu_reader rd;         /* a partial message drain left (posted mode) */
    struct vfu_caps peer;
    uint32_t xfer_max;            /* bytes of data per REGION_READ/WRITE */
    uint32_t fds_max;             /* fds per message the server takes */
    uint32_t dev_flags, num_regions, num_irqs;
    struct {
        bool known;
        uint32_t flags;
        uint64_t size;
        int mmap_fd;              /* -1: nothing of it can be mapped */
        uint64_t mmap_offset;     /* file offset of the region's start */
        struct { uint64_t off, size; } areas[VFU_MAX_SPARSE_AREAS];
        unsigned nareas;
    } regions[VFIO_PCI_NUM_REGIONS];

    /* posted mode (vfio_user_posted.c); owned: pq, done (VFE_POSTED_MAX
     * entries each, allocated when posted mode first starts), epfd, evfd */
    bool posted;
    struct vfu_preq *pq;
    unsigned npq;
    struct vfu_pdone *done;
    unsigned ndone;
    int latched;                  /* first refused posted write, -errno */
    uint16_t latched_cmd;
    bool full_logged;             /* "stopped reading" said once per episode */
    bool in_drain;                /* replies absorbed elsewhere (a synchronous call) wake the watcher */
    int epfd;                     /* watch fd: epoll over sock and evfd, -1 until asked */
    int evfd;                     /* readable while done holds completions */
};

#define CL(t) ((struct vfu_client *)(t))

long vfu_now_ms(void);
/* Mark the connection broken (logged); rc returned. */
int vfu_broken(struct vfu_client *c, int rc, const char *why, uint16_t cmd);
void vfu_refuse_server_cmd(struct vfu_client *c, struct vfu_msg *m, int tmo);
/* [off, off+len) lies in region index: 0 or -errno (may ask REGION_INFO once). */
int vfu_check_range(struct vfe_transport *t, uint32_t index, uint64_t off, size_t len);

/* vfio_user_posted.c */
/* Send one request without waiting; r holds what the reply must echo.  0 or -errno. */
int vfu_posted_send(struct vfu_client *c, uint16_t cmd, const struct iovec *iov, unsigned niov, const int *fds,
                    unsigned nfds, const struct vfu_preq *r);
/* m is a reply: if it answers an outstanding posted request, it is consumed
 * (m freed) and true is returned. */
bool vfu_posted_absorb(struct vfu_client *c, struct vfu_msg *m);
/* The connection broke: every read outstanding completes with -ENOTCONN at the next drain. */
void vfu_posted_fail_all(struct vfu_client *c);
void vfu_posted_fini(struct vfu_client *c);
int vfu_posted_set(struct vfe_transport *t, bool on);
int vfu_posted_watch_fd(struct vfe_transport *t);
int vfu_posted_drain(struct vfe_transport *t);
void vfu_posted_state(struct vfe_transport *t, struct vfe_posted_state *st, bool take_error);
int vfu_posted_read_async(struct vfe_transport *t, uint32_t index, uint64_t off, size_t len, vfe_read_cb cb,
                          void *ctx);
void vfu_posted_cancel_reads(struct vfe_transport *t, void *ctx);

#endif
