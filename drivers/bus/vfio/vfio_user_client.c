/*
 * vfio-user client: the vfe_transport ops over one unix socket.
 *
 * Synchronous calls: one command waited for, its reply matched by msg_id and
 * command, bounded by t->timeout_ms; replies to posted requests
 * (vfio_user_posted.c) met on the way are absorbed.  A timeout or any
 * framing/protocol violation leaves the stream in an unknown state, so the
 * connection is then considered broken and every later call fails with
 * -ENOTCONN.
 */
#include "drivers/bus/vfio/vfe_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers/bus/vfio/transport_blob.h"
#include "drivers/bus/vfio/vfio_user_priv.h"
#include "lib/log/vfe_log.h"
#include "lib/vfio_user/vfu_msg.h"
#include "lib/vfio_user/vfu_sock.h"


long vfu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}
#define now_ms vfu_now_ms

int vfu_broken(struct vfu_client *c, int rc, const char *why, uint16_t cmd)
{
    LOG_E("vfio-user %s: %s %s: %s, connection dropped", c->t.bdf, vfu_cmd_name(cmd), why,
          strerror(-rc));
    c->broken = true;
    vfu_posted_fail_all(c);
    return rc;
}


/* A command from the server: we share mappable memory only, so none is expected. */
void vfu_refuse_server_cmd(struct vfu_client *c, struct vfu_msg *m, int tmo)
{
    LOG_W("vfio-user %s: unexpected server command %u, refused", c->t.bdf, m->hdr.cmd);
    if (!(m->hdr.flags & VFU_F_NO_REPLY))
        vfu_msg_send_simple(c->sock, m->hdr.msg_id, m->hdr.cmd, VFU_F_TYPE_REPLY | VFU_F_ERROR, ENOSYS, NULL, 0,
                            NULL, 0, tmo);
}

/*
 * One round trip.  On success *reply holds the reply payload (the caller frees
 * it) and *fd_out the one fd the reply may carry (-1 if none; with fd_out NULL
 * a reply fd is unexpected and closed).  An error reply gives -errno of the
 * reply and keeps the connection.
 */
static int vfu_call_fd(struct vfu_client *c, uint16_t cmd, const struct iovec *iov, unsigned niov,
                       const int *fds, unsigned nfds, struct vfu_msg *reply, int *fd_out)
{
    memset(reply, 0, sizeof(*reply));
    if (fd_out)
        *fd_out = -1;
    if (c->broken)
        return -ENOTCONN;
    int tmo = vfe_transport_timeout_ms(&c->t);
    long deadline = now_ms() + tmo;
    uint16_t id = c->next_id++;
    struct vfu_hdr h = { .msg_id = id, .cmd = cmd, .flags = VFU_F_TYPE_CMD };

    int rc = vfu_msg_send(c->sock, &h, iov, niov, fds, nfds, tmo);
    if (rc < 0)
        return vfu_broken(c, rc, "send", cmd);

    for (;;) {
        long left = deadline - now_ms();
        struct vfu_msg m;
        rc = vfu_msg_recv_whole(&c->rd, c->sock, &m, left > 0 ? (int)left : 0);
        if (rc < 0)
            return vfu_broken(c, rc, "no reply", cmd);

        uint32_t type = m.hdr.flags & VFU_F_TYPE_MASK;
        if (type == VFU_F_TYPE_CMD) {
            vfu_refuse_server_cmd(c, &m, tmo);
            vfu_msg_free(&m);
            continue;
        }
        if (type == VFU_F_TYPE_REPLY && m.hdr.msg_id != id && vfu_posted_absorb(c, &m))
            continue;   /* a posted request's reply came first */
        if (type != VFU_F_TYPE_REPLY || m.hdr.msg_id != id || m.hdr.cmd != cmd) {
            LOG_E("vfio-user %s: reply type %u id %u cmd %u does not match request id %u",
                  c->t.bdf, type, m.hdr.msg_id, m.hdr.cmd, id);
            vfu_msg_free(&m);
            return vfu_broken(c, -EPROTO, "bad reply", cmd);
        }
        if (fd_out && m.nfds == 1 && !m.fds_dropped) {
            *fd_out = m.fds[0];
            m.nfds = 0;
        } else if (m.nfds || m.fds_dropped) {
            LOG_W("vfio-user %s: %s reply carried %u unexpected fds, closed", c->t.bdf,
                  vfu_cmd_name(cmd), m.nfds);
            vfu_msg_close_fds(&m);
        }
        if (m.hdr.flags & VFU_F_ERROR) {
            uint32_t e = m.hdr.error;
            vfu_msg_free(&m);
            if (fd_out && *fd_out >= 0) {
                close(*fd_out);
                *fd_out = -1;
            }
            if (e == 0 || e > 4095)
                e = EIO;
            LOG_D("vfio-user %s: %s -> error %u", c->t.bdf, vfu_cmd_name(cmd), e);
            return -(int)e;
        }
        *reply = m;
        return 0;
    }
}

static int vfu_call(struct vfu_client *c, uint16_t cmd, const struct iovec *iov, unsigned niov,
                    const int *fds, unsigned nfds, struct vfu_msg *reply)
{
    return vfu_call_fd(c, cmd, iov, niov, fds, nfds, reply, NULL);
}

/* Round trip whose reply must carry exactly `len` bytes (copied to out if non-NULL). */
static int vfu_call_fixed(struct vfu_client *c, uint16_t cmd, const void *req, size_t req_len,
                          const int *fds, unsigned nfds, void *out, size_t len)
{
    struct iovec iov = { .iov_base = (void *)req, .iov_len = req_len };
    struct vfu_msg m;
    int rc = vfu_call(c, cmd, &iov, req_len ? 1 : 0, fds, nfds, &m);
    if (rc < 0)
        return rc;
    if (m.len != len) {
        LOG_E("vfio-user %s: %s reply of %zu bytes, expected %zu", c->t.bdf, vfu_cmd_name(cmd),
              m.len, len);
        vfu_msg_free(&m);
        return -EPROTO;
    }
    if (out && len)
        memcpy(out, m.payload, len);
    vfu_msg_free(&m);
    return 0;
}

/* A write whose reply carries nothing: posted in posted mode, else a round trip. */
static int vfu_write_fixed(struct vfu_client *c, uint16_t cmd, const void *req, size_t req_len, const int *fds,
                           unsigned nfds)
{
    if (c->posted) {
        struct iovec iov = { .iov_base = (void *)req, .iov_len = req_len };
        struct vfu_preq r = { 0 };
        return vfu_posted_send(c, cmd, &iov, req_len ? 1 : 0, fds, nfds, &r);
    }
    return vfu_call_fixed(c, cmd, req, req_len, fds, nfds, NULL, 0);
}

/* The sparse-mmap areas named in a region info reply's capability chain; the
 * chain comes from the server, so every offset is checked. */
static int parse_sparse(struct vfe_transport *t, const uint8_t *p, size_t len, uint32_t first, uint64_t region_size,
                        struct vfu_client *c, uint32_t index)
{
    unsigned hops = 0;
    for (uint32_t off = first; off; hops++) {
        struct vfio_info_cap_header h;
        if (hops > 16 || off < sizeof(struct vfu_region_info) || off > len || len - off < sizeof(h))
            goto bad;
        memcpy(&h, p + off, sizeof(h));
        if (h.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
            struct vfio_region_info_cap_sparse_mmap sm;
            if (len - off < sizeof(sm))
                goto bad;
            memcpy(&sm, p + off, sizeof(sm));
            if (sm.nr_areas > VFU_MAX_SPARSE_AREAS ||
                len - off - sizeof(sm) < (size_t)sm.nr_areas * sizeof(struct vfio_region_sparse_mmap_area))
                goto bad;
            for (uint32_t i = 0; i < sm.nr_areas; i++) {
                struct vfio_region_sparse_mmap_area a;
                memcpy(&a, p + off + sizeof(sm) + i * sizeof(a), sizeof(a));
                if (!a.size || a.offset > region_size || a.size > region_size - a.offset)
                    goto bad;
                c->regions[index].areas[i].off = a.offset;
                c->regions[index].areas[i].size = a.size;
            }
            c->regions[index].nareas = sm.nr_areas;
        }
        if (h.next && h.next <= off)
            goto bad;   /* the chain only moves forward: no loops */
        off = h.next;
    }
    return 0;
bad:
    LOG_E("vfio-user %s: region %u: malformed capability chain", t->bdf, index);
    c->regions[index].nareas = 0;
    return -EPROTO;
}

static int cl_region_info(struct vfe_transport *t, uint32_t index, struct vfe_region_info *info)
{
    struct vfu_client *c = CL(t);
    if (index >= c->num_regions)
        return -EINVAL;
    if (index < VFIO_PCI_NUM_REGIONS && c->regions[index].known) {
        *info = (struct vfe_region_info){ .index = index, .flags = c->regions[index].flags,
                                          .size = c->regions[index].size };
        return 0;
    }
    struct vfu_region_info req = { .argsz = VFU_REGION_INFO_ROOM, .index = index }, rep;
    struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
    struct vfu_msg m;
    int fd;
    int rc = vfu_call_fd(c, VFU_CMD_DEVICE_GET_REGION_INFO, &iov, 1, NULL, 0, &m, &fd);
    if (rc < 0)
        return rc;
    if (m.len < sizeof(rep) || m.len > VFU_REGION_INFO_ROOM) {
        LOG_E("vfio-user %s: region info reply of %zu bytes", t->bdf, m.len);
        rc = -EPROTO;
        goto out;
    }
    memcpy(&rep, m.payload, sizeof(rep));
    if (rep.index != index || rep.argsz < sizeof(rep) || rep.argsz > m.len) {
        LOG_E("vfio-user %s: region info for %u answered index %u argsz %u in %zu bytes", t->bdf, index,
              rep.index, rep.argsz, m.len);
        rc = -EPROTO;
        goto out;
    }
    if (index < VFIO_PCI_NUM_REGIONS) {
        c->regions[index].known = true;
        c->regions[index].flags = rep.flags;
        c->regions[index].size = rep.size;
        c->regions[index].nareas = 0;
        if ((rep.flags & VFIO_REGION_INFO_FLAG_MMAP) && fd >= 0 &&
            parse_sparse(t, m.payload, rep.argsz, (rep.flags & VFIO_REGION_INFO_FLAG_CAPS) ? rep.cap_offset : 0,
                         rep.size, c, index) == 0) {
            if (!c->regions[index].nareas) {   /* no sparse list: the whole region */
                c->regions[index].areas[0].off = 0;
                c->regions[index].areas[0].size = rep.size;
                c->regions[index].nareas = 1;
            }
            c->regions[index].mmap_fd = fd;
            c->regions[index].mmap_offset = rep.offset;
            fd = -1;
        }
    }
    *info = (struct vfe_region_info){ .index = index, .flags = rep.flags, .size = rep.size };
out:
    if (fd >= 0)
        close(fd);
    vfu_msg_free(&m);
    return rc;
}

static int cl_region_mmap_fd(struct vfe_transport *t, uint32_t index, uint64_t off, uint64_t len, int *fd,
                             uint64_t *file_off)
{
    struct vfu_client *c = CL(t);
    struct vfe_region_info info;
    int rc = index < VFIO_PCI_NUM_REGIONS ? cl_region_info(t, index, &info) : -EINVAL;
    if (rc < 0)
        return rc;
    for (unsigned i = 0; c->regions[index].mmap_fd >= 0 && i < c->regions[index].nareas; i++) {
        uint64_t a = c->regions[index].areas[i].off, n = c->regions[index].areas[i].size;
        if (off >= a && len <= n && off - a <= n - len) {
            *fd = c->regions[index].mmap_fd;
            *file_off = c->regions[index].mmap_offset + off;
            return 0;
        }
    }
    return -ENOENT;
}

/* [off, off+len) must lie in the region. */
int vfu_check_range(struct vfe_transport *t, uint32_t index, uint64_t off, size_t len)
{
    struct vfe_region_info info;
    int rc = cl_region_info(t, index, &info);
    if (rc < 0)
        return rc;
    if (off > info.size || len > info.size - off)
        return -EINVAL;
    return 0;
}

static int cl_region_read(struct vfe_transport *t, uint32_t index, uint64_t off, void *buf, size_t len)
{
    struct vfu_client *c = CL(t);
    int rc = vfu_check_range(t, index, off, len);
    if (rc < 0)
        return rc;
    uint8_t *p = buf;
    while (len) {
        uint32_t n = len > c->xfer_max ? c->xfer_max : (uint32_t)len;
        struct vfu_region_access req = { .offset = off, .region = index, .count = n };
        struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
        struct vfu_msg m;
        rc = vfu_call(c, VFU_CMD_REGION_READ, &iov, 1, NULL, 0, &m);
        if (rc < 0)
            return rc;
        struct vfu_region_access rep;
        if (m.len != sizeof(rep) + n) {
            LOG_E("vfio-user %s: REGION_READ reply of %zu bytes for %u", t->bdf, m.len, n);
            vfu_msg_free(&m);
            return -EPROTO;
        }
        memcpy(&rep, m.payload, sizeof(rep));
        if (rep.offset != off || rep.region != index || rep.count != n) {
            LOG_E("vfio-user %s: REGION_READ reply does not match the request", t->bdf);
            vfu_msg_free(&m);
            return -EPROTO;
        }
        memcpy(p, m.payload + sizeof(rep), n);
        vfu_msg_free(&m);
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int cl_region_write(struct vfe_transport *t, uint32_t index, uint64_t off, const void *buf,
                           size_t len)
{
    struct vfu_client *c = CL(t);
    int rc = vfu_check_range(t, index, off, len);
    if (rc < 0)
        return rc;
    const uint8_t *p = buf;
    while (len) {
        uint32_t n = len > c->xfer_max ? c->xfer_max : (uint32_t)len;
        struct vfu_region_access req = { .offset = off, .region = index, .count = n }, rep;
        struct iovec iov[2] = { { &req, sizeof(req) }, { (void *)p, n } };
        struct vfu_msg m;
        if (c->posted) {
            struct vfu_preq r = { .region = index, .off = off, .count = n };
            if ((rc = vfu_posted_send(c, VFU_CMD_REGION_WRITE, iov, 2, NULL, 0, &r)) < 0)
                return rc;
            p += n;
            off += n;
            len -= n;
            continue;
        }
        rc = vfu_call(c, VFU_CMD_REGION_WRITE, iov, 2, NULL, 0, &m);
        if (rc < 0)
            return rc;
        if (m.len != sizeof(rep)) {
            LOG_E("vfio-user %s: REGION_WRITE reply of %zu bytes", t->bdf, m.len);
            vfu_msg_free(&m);
            return -EPROTO;
        }
        memcpy(&rep, m.payload, sizeof(rep));
        vfu_msg_free(&m);
        if (rep.offset != off || rep.region != index || rep.count != n) {
            LOG_E("vfio-user %s: REGION_WRITE reply does not match the request", t->bdf);
            return -EPROTO;
        }
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int dma_map_req(int fd, uint64_t iova, uint64_t len, uint64_t offset, uint32_t prot, struct vfu_dma_map *req)
{
    if (fd < 0 || len == 0 || !prot || (prot & ~(VFE_DMA_READ | VFE_DMA_WRITE)))
        return -EINVAL;
    if (iova + len < iova || offset + len < offset)
        return -EINVAL;
    *req = (struct vfu_dma_map){
        .argsz = sizeof(*req),
        .flags = ((prot & VFE_DMA_READ) ? VFU_DMA_F_READ : 0) | ((prot & VFE_DMA_WRITE) ? VFU_DMA_F_WRITE : 0),
        .offset = offset, .addr = iova, .size = len,
    };
    return 0;
}

/* Posted: "not mapped" counts as done (vfe_dma_apply.h); cb NULL: a refusal is latched. */
static int posted_unmap(struct vfu_client *c, uint64_t iova, uint64_t len, vfe_write_cb cb, void *ctx)
{
    struct vfu_dma_unmap u = { .argsz = sizeof(u), .addr = iova, .size = len };
    struct iovec iov = { &u, sizeof(u) };
    struct vfu_preq r = { .addr = iova, .size = len, .enoent_ok = true, .wcb = cb, .ctx = ctx };
    return vfu_posted_send(c, VFU_CMD_DMA_UNMAP, &iov, 1, NULL, 0, &r);
}

/* Posted: what vfe_dma_apply_map makes of an -EEXIST it cannot see now: an
 * identical range a crashed predecessor left goes first. */
static int posted_map(struct vfu_client *c, const struct vfu_dma_map *req, int fd, vfe_write_cb cb, void *ctx)
{
    int rc = posted_unmap(c, req->addr, req->size, NULL, NULL);
    if (rc < 0)
        return rc;
    struct iovec iov = { .iov_base = (void *)req, .iov_len = sizeof(*req) };
    struct vfu_preq r = { .wcb = cb, .ctx = ctx };
    return vfu_posted_send(c, VFU_CMD_DMA_MAP, &iov, 1, &fd, 1, &r);
}

static int cl_dma_map(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset,
                      uint32_t prot)
{
    struct vfu_dma_map req;
    int rc = dma_map_req(fd, iova, len, offset, prot, &req);
    if (rc < 0)
        return rc;
    struct vfu_client *c = CL(t);
    if (c->posted)
        return posted_map(c, &req, fd, NULL, NULL);
    return vfu_call_fixed(c, VFU_CMD_DMA_MAP, &req, sizeof(req), &fd, 1, NULL, 0);
}

static int cl_dma_map_async(struct vfe_transport *t, uint64_t iova, uint64_t len, int fd, uint64_t offset,
                            uint32_t prot, vfe_write_cb cb, void *ctx)
{
    struct vfu_dma_map req;
    struct vfu_client *c = CL(t);
    if (!c->posted)
        return -EOPNOTSUPP;
    int rc = cb ? dma_map_req(fd, iova, len, offset, prot, &req) : -EINVAL;
    return rc < 0 ? rc : posted_map(c, &req, fd, cb, ctx);
}

static int cl_dma_unmap_async(struct vfe_transport *t, uint64_t iova, uint64_t len, vfe_write_cb cb, void *ctx)
{
    struct vfu_client *c = CL(t);
    if (!c->posted)
        return -EOPNOTSUPP;
    return cb ? posted_unmap(c, iova, len, cb, ctx) : -EINVAL;
}

static int cl_dma_unmap(struct vfe_transport *t, uint64_t iova, uint64_t len)
{
    struct vfu_client *c = CL(t);
    struct vfu_dma_unmap req = { .argsz = sizeof(req), .addr = iova, .size = len }, rep;
    struct iovec iov = { &req, sizeof(req) };
    struct vfu_msg m;
    if (c->posted)
        return posted_unmap(c, iova, len, NULL, NULL);
    int rc = vfu_call(c, VFU_CMD_DMA_UNMAP, &iov, 1, NULL, 0, &m);
    if (rc < 0)
        return rc;
    /* The spec has the server echo the entry; an empty reply is tolerated. */
    if (m.len != 0) {
        if (m.len != sizeof(rep)) {
            vfu_msg_free(&m);
            return -EPROTO;
        }
        memcpy(&rep, m.payload, sizeof(rep));
        if (rep.addr != iova || rep.size != len) {
            vfu_msg_free(&m);
            return -EPROTO;
        }
    }
    vfu_msg_free(&m);
    return 0;
}

static int send_irq_set(struct vfu_client *c, uint32_t flags, uint32_t index, uint32_t start,
                        uint32_t count, const int *fds, unsigned nfds)
{
    struct vfu_irq_set req = { .argsz = sizeof(req), .flags = flags, .index = index,
                               .start = start, .count = count };
    return vfu_write_fixed(c, VFU_CMD_DEVICE_SET_IRQS, &req, sizeof(req), fds, nfds);
}

/*
 * count == 0 (start 0): DATA_NONE|TRIGGER, which disables every vector of the index.
 * Otherwise the range is cut into runs: runs of valid fds are assigned with
 * DATA_EVENTFD|TRIGGER (at most fds_max per message); runs of -1 are sent as
 * DATA_EVENTFD|TRIGGER with no fds, which the spec defines as de-assigning
 * those vectors.  (DATA_NONE with count > 0 would mean "trigger" in VFIO.)
 */
static int cl_set_irqs(struct vfe_transport *t, uint32_t irq_index, uint32_t start, uint32_t count,
                       const int *fds)
{
    struct vfu_client *c = CL(t);
    const uint32_t ev = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    if (count == 0) {
        if (start != 0)
            return -EINVAL;
        return send_irq_set(c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, irq_index, 0, 0,
                            NULL, 0);
    }
    if (start + count < start)
        return -EINVAL;
    uint32_t i = 0;
    while (i < count) {
        bool assign = fds && fds[i] >= 0;
        uint32_t j = i + 1;
        while (j < count && (fds && fds[j] >= 0) == assign && (!assign || j - i < c->fds_max))
            j++;
        int rc = assign ? send_irq_set(c, ev, irq_index, start + i, j - i, &fds[i], j - i)
                        : send_irq_set(c, ev, irq_index, start + i, j - i, NULL, 0);
        if (rc < 0)
            return rc;
        i = j;
    }
    return 0;
}

static int cl_ioeventfd(struct vfe_transport *t, uint32_t region, uint64_t off, uint32_t size,
                        uint64_t data, int fd)
{
    struct vfu_client *c = CL(t);
    if (!c->peer.vfe_ioeventfd)
        return -EOPNOTSUPP;
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return -EINVAL;
    struct vfu_vfe_ioeventfd req = {
        .argsz = sizeof(req), .flags = size | VFE_IOEVENTFD_DATAMATCH,
        .region = region, .offset = off, .data = data,
    };
    if (fd < 0)
        req.flags |= VFE_IOEVENTFD_DEASSIGN;
    return vfu_write_fixed(c, VFU_CMD_VFE_IOEVENTFD, &req, sizeof(req), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

static int cl_reset(struct vfe_transport *t)
{
    return vfu_write_fixed(CL(t), VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0);
}

/* The socket stays owned by the transport; the HA peer gets a copy via SCM_RIGHTS. */
static int cl_export_fds(struct vfe_transport *t, int *fds, int max)
{
    struct vfu_client *c = CL(t);
    if (c->broken)
        return -ENOTCONN;
    if (max < 1)
        return -ENOSPC;
    fds[0] = c->sock;
    return 1;
}

/* vfio-user body of a transport blob, version 1 (see vfe_transport.h). */
struct vfu_adopt_blob {
    struct vfe_transport_blob_hdr h;
    char bdf[32];                  /* NUL-terminated, the function it was exported for */
    uint32_t xfer_max, fds_max;    /* as negotiated */
    uint32_t peer_max_msg_fds, peer_max_data_xfer;
    uint64_t peer_pgsizes;
    uint32_t flags;                /* VFU_ADOPT_F_* */
    uint32_t dev_flags, num_regions, num_irqs;
    uint16_t next_id;
    uint16_t reserved[3];          /* 0 */
};
#define VFU_ADOPT_F_IOEVENTFD 1u
#define VFU_ADOPT_F_ALL       VFU_ADOPT_F_IOEVENTFD

_Static_assert(sizeof(struct vfu_adopt_blob) <= VFE_TRANSPORT_BLOB_MAX, "blob too large");

static int cl_export_state(struct vfe_transport *t, void *buf, size_t cap, size_t *len, int *fds,
                           unsigned max_fds, unsigned *nfds)
{
    struct vfu_client *c = CL(t);
    if (c->broken)
        return -ENOTCONN;
    if (cap < sizeof(struct vfu_adopt_blob) || max_fds < 1)
        return -ENOSPC;
    struct vfu_adopt_blob b = {
        .h = { .magic = VFE_TRANSPORT_BLOB_MAGIC, .version = VFE_TRANSPORT_BLOB_VERSION,
               .kind = VFE_TRANSPORT_KIND_VFIO_USER, .len = sizeof(b), .nfds = 1 },
        .xfer_max = c->xfer_max, .fds_max = c->fds_max,
        .peer_max_msg_fds = c->peer.max_msg_fds, .peer_max_data_xfer = c->peer.max_data_xfer_size,
        .peer_pgsizes = c->peer.pgsizes, .flags = c->peer.vfe_ioeventfd ? VFU_ADOPT_F_IOEVENTFD : 0,
        .dev_flags = c->dev_flags, .num_regions = c->num_regions, .num_irqs = c->num_irqs,
        .next_id = c->next_id,
    };
    snprintf(b.bdf, sizeof(b.bdf), "%s", c->t.bdf);
    memcpy(buf, &b, sizeof(b));
    *len = sizeof(b);
    fds[0] = c->sock;
    *nfds = 1;
    return 0;
}

static void cl_close(struct vfe_transport *t)
{
    struct vfu_client *c = CL(t);
    vfu_reader_reset(&c->rd);
    vfu_posted_fini(c);
    if (c->sock >= 0)
        close(c->sock);
    for (unsigned i = 0; i < VFIO_PCI_NUM_REGIONS; i++)
        if (c->regions[i].mmap_fd >= 0)
            close(c->regions[i].mmap_fd);
    free(c);
}

static const struct vfe_transport_ops vfu_client_ops = {
    .region_info = cl_region_info,
    .region_mmap_fd = cl_region_mmap_fd,
    .region_read = cl_region_read,
    .region_write = cl_region_write,
    .dma_map = cl_dma_map,
    .dma_unmap = cl_dma_unmap,
    .set_irqs = cl_set_irqs,
    .ioeventfd = cl_ioeventfd,
    .reset = cl_reset,
    .export_fds = cl_export_fds,
    .export_state = cl_export_state,
    .close = cl_close,
    .set_posted = vfu_posted_set,
    .watch_fd = vfu_posted_watch_fd,
    .drain = vfu_posted_drain,
    .posted_state = vfu_posted_state,
    .region_read_async = vfu_posted_read_async,
    .cancel_reads = vfu_posted_cancel_reads,
    .dma_map_async = cl_dma_map_async,
    .dma_unmap_async = cl_dma_unmap_async,
};

/* Device info as DEVICE_GET_INFO must have answered for a usable function. */
static bool dev_info_usable(uint32_t flags, uint32_t num_regions, uint32_t num_irqs)
{
    return (flags & VFIO_DEVICE_FLAGS_PCI) && num_regions > VFIO_PCI_CONFIG_REGION_INDEX && num_regions <= 64 &&
           num_irqs > VFIO_PCI_MSIX_IRQ_INDEX && num_irqs <= 64;
}

static int negotiate(struct vfu_client *c)
{
    struct vfu_caps ours;
    vfu_caps_ours(&ours);
    size_t len;
    void *req = vfu_version_build(&ours, &len);
    if (!req)
        return -ENOMEM;
    struct iovec iov = { req, len };
    struct vfu_msg m;
    int rc = vfu_call(c, VFU_CMD_VERSION, &iov, 1, NULL, 0, &m);
    free(req);
    if (rc < 0)
        return rc;
    uint16_t major, minor;
    rc = vfu_version_parse(m.payload, m.len, &major, &minor, &c->peer);
    vfu_msg_free(&m);
    if (rc < 0 || major != VFU_PROTO_MAJOR || minor > VFU_PROTO_MINOR) {
        LOG_E("vfio-user %s: bad VERSION reply (%d, %u.%u)", c->t.bdf, rc, major, minor);
        return -EPROTO;
    }
    c->xfer_max = c->peer.max_data_xfer_size < VFU_MAX_DATA_XFER ? c->peer.max_data_xfer_size
                                                                   : VFU_MAX_DATA_XFER;
    c->fds_max = c->peer.max_msg_fds < VFU_MAX_MSG_FDS ? c->peer.max_msg_fds : VFU_MAX_MSG_FDS;
    if (c->fds_max == 0)
        c->fds_max = 1;   /* DMA_MAP needs one; a server taking none could not work */

    struct vfu_device_info di = { .argsz = sizeof(di) };
    rc = vfu_call_fixed(c, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0, &di, sizeof(di));
    if (rc < 0)
        return rc;
    if (!dev_info_usable(di.flags, di.num_regions, di.num_irqs)) {
        LOG_E("vfio-user %s: unusable device info flags %#x regions %u irqs %u", c->t.bdf, di.flags,
              di.num_regions, di.num_irqs);
        return -EPROTO;
    }
    c->dev_flags = di.flags;
    c->num_regions = di.num_regions;
    c->num_irqs = di.num_irqs;
    return 0;
}

static struct vfu_client *client_new(const char *bdf)
{
    struct vfu_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->t.ops = &vfu_client_ops;
    c->t.timeout_ms = VFE_TRANSPORT_TIMEOUT_MS;
    snprintf(c->t.bdf, sizeof(c->t.bdf), "%s", bdf ? bdf : "?");
    vfu_reader_init(&c->rd);
    c->sock = -1;
    c->epfd = c->evfd = -1;
    for (unsigned i = 0; i < VFIO_PCI_NUM_REGIONS; i++)
        c->regions[i].mmap_fd = -1;
    return c;
}

int vfe_vfio_user_open(const char *sock_path, const char *bdf, struct vfe_transport **out)
{
    struct vfu_client *c = client_new(bdf);
    if (!c)
        return -ENOMEM;
    c->sock = vfu_sock_connect(sock_path, true);
    if (c->sock < 0) {
        int rc = c->sock;
        LOG_W("vfio-user %s: connect %s: %s", c->t.bdf, sock_path, strerror(-rc));
        free(c);
        return rc;
    }
    int rc = negotiate(c);
    if (rc < 0) {
        cl_close(&c->t);
        return rc;
    }
    LOG_D("vfio-user %s: connected (max_data_xfer %u, max_msg_fds %u, ioeventfd %s)", c->t.bdf,
          c->xfer_max, c->fds_max, c->peer.vfe_ioeventfd ? "yes" : "no");
    *out = &c->t;
    return 0;
}

/* Every field of a vfio-user blob, checked before anything is used. */
static int blob_check(const char *bdf, const struct vfu_adopt_blob *b)
{
    const char *why = NULL;
    if (memchr(b->bdf, 0, sizeof(b->bdf)) == NULL)
        why = "bdf not terminated";
    else if (strcmp(b->bdf, bdf))
        why = "exported for another function";
    else if (b->h.nfds != 1)
        why = "fd count is not 1";
    else if (b->xfer_max == 0 || b->xfer_max > VFU_MAX_DATA_XFER || b->xfer_max > b->peer_max_data_xfer)
        why = "max data transfer out of range";
    else if (b->fds_max == 0 || b->fds_max > VFU_MAX_MSG_FDS ||
             (b->peer_max_msg_fds && b->fds_max > b->peer_max_msg_fds))
        why = "max fds per message out of range";
    else if (b->peer_pgsizes == 0 || !(b->peer_pgsizes & 4096))
        why = "page sizes without 4 KiB";
    else if (b->flags & ~VFU_ADOPT_F_ALL)
        why = "unknown flags";
    else if (!dev_info_usable(b->dev_flags, b->num_regions, b->num_irqs))
        why = "device info out of range";
    else if (b->reserved[0] || b->reserved[1] || b->reserved[2])
        why = "reserved fields set";
    if (why) {
        LOG_E("vfio-user %s: adopt refused: blob %s", bdf, why);
        return -EINVAL;
    }
    return 0;
}

/* The fd must be a connected unix stream socket. */
static int sock_check(const char *bdf, int fd)
{
    int type = 0, domain = 0;
    socklen_t l1 = sizeof(type), l2 = sizeof(domain);
    struct sockaddr_storage peer;
    socklen_t pl = sizeof(peer);
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l2) < 0 || type != SOCK_STREAM || domain != AF_UNIX ||
        getpeername(fd, (struct sockaddr *)&peer, &pl) < 0) {
        LOG_E("vfio-user %s: adopt refused: fd %d is not a connected unix stream socket", bdf, fd);
        return -EINVAL;
    }
    return 0;
}

static bool probe_reply_ok(const struct vfu_msg *m)
{
    struct vfu_region_info rep;
    if ((m->hdr.flags & VFU_F_ERROR) || m->len < sizeof(rep))
        return false;
    memcpy(&rep, m->payload, sizeof(rep));
    return rep.index == VFE_REGION_CONFIG;
}

static bool hdr_is_reply(const struct vfu_hdr *h)
{
    return (h->flags & VFU_F_TYPE_MASK) == VFU_F_TYPE_REPLY && !(h->flags & ~(VFU_F_TYPE_MASK | VFU_F_ERROR)) &&
           strcmp(vfu_cmd_name(h->cmd), "unknown") != 0 && h->size >= sizeof(*h) && h->size <= VFU_MAX_MSG_SIZE;
}

/* Look at the next header before reading the message: bytes from the middle
 * of a message must not make us swallow the probe replies behind them.
 * 0 (well-formed reply header), -EPROTO, or -errno of the wait. */
static int peek_header(struct vfu_client *c, long deadline)
{
    for (;;) {
        struct vfu_hdr h;
        ssize_t n = recv(c->sock, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);
        if (n == (ssize_t)sizeof(h)) {
            if (hdr_is_reply(&h))
                return 0;
            LOG_E("vfio-user %s: adopt: header flags %#x cmd %u id %u size %u is not a reply: the predecessor "
                  "died inside a message", c->t.bdf, h.flags, h.cmd, h.msg_id, h.size);
            return -EPROTO;
        }
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        long left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = { .fd = c->sock, .events = POLLIN };
        if (poll(&p, 1, n > 0 ? (left < 10 ? (int)left : 10) : (int)left) < 0 && errno != EINTR)
            return -errno;
    }
}

/*
 * Two probes a, b = a + 1 (REGION_INFO of config space, read-only) go out
 * back to back.  The server answers in order, so everything before a's reply
 * belongs to the predecessor and is dropped; the stream is in step once b's
 * reply directly follows a's.  Should a stale reply carry a's id and command,
 * the real a follows it instead of b and the match starts over.
 */
static int resync(struct vfu_client *c)
{
    uint16_t a;
    if (getrandom(&a, sizeof(a), GRND_NONBLOCK) != sizeof(a))
        a = (uint16_t)(c->next_id + 0x8000u);
    uint16_t b = (uint16_t)(a + 1);
    int tmo = vfe_transport_timeout_ms(&c->t);
    long deadline = now_ms() + tmo;
    struct vfu_region_info req = { .argsz = VFU_REGION_INFO_ROOM, .index = VFE_REGION_CONFIG };
    for (uint16_t id = a;; id = b) {
        struct vfu_hdr h = { .msg_id = id, .cmd = VFU_CMD_DEVICE_GET_REGION_INFO, .flags = VFU_F_TYPE_CMD };
        struct iovec iov = { &req, sizeof(req) };
        int rc = vfu_msg_send(c->sock, &h, &iov, 1, NULL, 0, tmo);
        if (rc < 0) {
            LOG_E("vfio-user %s: adopt: sending probe: %s", c->t.bdf, strerror(-rc));
            return rc;
        }
        if (id == b)
            break;
    }
    bool seen_a = false;
    unsigned dropped = 0;
    for (;;) {
        struct vfu_msg m;
        int rc = peek_header(c, deadline);
        if (rc == -EPROTO)
            return rc;
        if (rc == 0) {
            long left = deadline - now_ms();
            rc = vfu_msg_recv(&c->rd, c->sock, &m, left > 0 ? (int)left : 0);
        }
        if (rc == -EMSGSIZE || rc == -EPROTO) {
            LOG_E("vfio-user %s: adopt: stream out of step (%s): the predecessor died inside a message",
                  c->t.bdf, strerror(-rc));
            return -EPROTO;
        }
        if (rc < 0) {
            LOG_E("vfio-user %s: adopt: waiting for the probe reply: %s", c->t.bdf, strerror(-rc));
            return rc;
        }
        bool is_probe = m.hdr.cmd == VFU_CMD_DEVICE_GET_REGION_INFO && probe_reply_ok(&m);
        if (is_probe && seen_a && m.hdr.msg_id == b) {
            vfu_msg_free(&m);
            break;
        }
        if (seen_a) {   /* the last "a" was not followed by b: it was the predecessor's */
            LOG_W("vfio-user %s: adopt: dropped the predecessor's reply id %u, the probe's id", c->t.bdf, a);
            dropped++;
        }
        seen_a = is_probe && m.hdr.msg_id == a;
        if (!seen_a) {
            LOG_W("vfio-user %s: adopt: dropped the predecessor's reply id %u to %s%s", c->t.bdf, m.hdr.msg_id,
                  vfu_cmd_name(m.hdr.cmd), (m.hdr.flags & VFU_F_ERROR) ? " (error)" : "");
            dropped++;
        }
        vfu_msg_free(&m);
    }
    c->next_id = (uint16_t)(b + 1);
    LOG_I("vfio-user %s: adopted, stream in step (%u stale replies dropped)", c->t.bdf, dropped);
    return 0;
}

int vfe_vfio_user_adopt(const char *bdf, const void *blob, size_t len, const int *fds, unsigned nfds,
                        struct vfe_transport **out)
{
    struct vfu_adopt_blob b;
    if (!bdf || !blob || !out || (nfds && !fds))
        return -EINVAL;
    if (len != sizeof(b)) {
        LOG_E("vfio-user %s: adopt refused: blob of %zu bytes, version 1 has %zu", bdf, len, sizeof(b));
        return -EPROTO;
    }
    memcpy(&b, blob, sizeof(b));
    if (b.h.magic != VFE_TRANSPORT_BLOB_MAGIC || b.h.version != VFE_TRANSPORT_BLOB_VERSION ||
        b.h.kind != VFE_TRANSPORT_KIND_VFIO_USER || b.h.len != len) {
        LOG_E("vfio-user %s: adopt refused: not a vfio-user blob of version %u", bdf, VFE_TRANSPORT_BLOB_VERSION);
        return -EPROTO;
    }
    if (nfds != b.h.nfds) {
        LOG_E("vfio-user %s: adopt refused: %u fds given, the blob has %u", bdf, nfds, b.h.nfds);
        return -EINVAL;
    }
    int rc = blob_check(bdf, &b);
    if (rc == 0)
        rc = sock_check(bdf, fds[0]);
    if (rc < 0)
        return rc;
    int fl = fcntl(fds[0], F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    struct vfu_client *c = client_new(bdf);
    if (!c)
        return -ENOMEM;
    c->sock = fds[0];
    c->xfer_max = b.xfer_max;
    c->fds_max = b.fds_max;
    c->peer.max_msg_fds = b.peer_max_msg_fds;
    c->peer.max_data_xfer_size = b.peer_max_data_xfer;
    c->peer.pgsizes = b.peer_pgsizes;
    c->peer.vfe_ioeventfd = b.flags & VFU_ADOPT_F_IOEVENTFD;
    c->dev_flags = b.dev_flags;
    c->num_regions = b.num_regions;
    c->num_irqs = b.num_irqs;
    c->next_id = b.next_id;
    rc = resync(c);
    if (rc < 0) {
        c->sock = -1;   /* still the caller's */
        cl_close(&c->t);
        return rc;
    }
    fcntl(c->sock, F_SETFD, FD_CLOEXEC);
    *out = &c->t;
    return 0;
}
