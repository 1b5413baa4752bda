/* The test front-end's life: options, guest memory and eventfds, open / close. */
#include "tests/frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#define MIB (1ull << 20)

static uint64_t round_mib(uint64_t v)
{
    return (v + MIB - 1) & ~(MIB - 1);
}

static int check_opts(struct vfe_fe_opts *o)
{
    if (!o->pairs)
        o->pairs = 1;
    if (!o->ring_size)
        o->ring_size = 256;
    if (!o->timeout_ms)
        o->timeout_ms = 3000;
    if (!o->rx_buf_size)
        o->rx_buf_size = 2048;
    if (!o->features)
        o->features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF | 1ull << VIRTIO_NET_F_MAC |
                      (o->pairs > 1 ? 1ull << VIRTIO_NET_F_MQ : 0);
    if (!o->path || o->pairs > VFE_FE_MAX_PAIRS || o->ring_size > VFE_FE_MAX_RING ||
        (o->ring_size & (o->ring_size - 1)) || o->timeout_ms < 0 || o->rx_buf_size < 64 ||
        o->rx_buf_size > 65536 || o->gpa_base % VFE_FE_GPA_HIGH || o->gpa_base >= (1ull << 39))
        return -EINVAL;
    return 0;
}

/* Region 0 (GPA 0, all GPAs plus gpa_base): every ring (from FE_RING_BASE_GPA), then tx buffers.  Region 1 (GPA 1 GiB):
 * rx buffers, so that a frame's bytes and its ring sit in different regions. */
static int make_memory(struct vfe_fe *fe)
{
    const struct vfe_fe_opts *o = &fe->o;
    fe->ring_area_size = vfe_fe_ring_bytes(o->ring_size);
    fe->tx_base_gpa = o->gpa_base + FE_RING_BASE_GPA + 2ull * o->pairs * fe->ring_area_size;
    uint64_t r0 = round_mib(fe->tx_base_gpa - o->gpa_base + (uint64_t)o->pairs * o->ring_size * FE_TX_BUF);
    uint64_t r1 = round_mib((uint64_t)o->pairs * o->ring_size * o->rx_buf_size);
    if (o->region_size > r0)
        r0 = round_mib(o->region_size);
    if (o->region_size > r1)
        r1 = round_mib(o->region_size);
    if (r0 > VFE_FE_GPA_HIGH)
        return -E2BIG;
    int rc = fe_region_new(&fe->reg[0], o->gpa_base, r0);
    return rc < 0 ? rc : fe_region_new(&fe->reg[1], o->gpa_base + VFE_FE_GPA_HIGH, r1);
}

struct vfe_fe *vfe_fe_open(const struct vfe_fe_opts *o)
{
    struct vfe_fe *fe = calloc(1, sizeof(*fe));
    if (!fe) {
        errno = ENOMEM;
        return NULL;
    }
    fe->o = *o;
    fe->sock = fe->lsock = fe->backend = fe->log_fd = -1;
    for (unsigned i = 0; i < VFE_FE_MAX_REGIONS; i++)
        fe->reg[i].fd = -1;
    for (unsigned i = 0; i < FE_RINGS; i++)
        fe->q[i].kick = fe->q[i].call = -1;
    int rc = check_opts(&fe->o);
    if (rc == 0)
        rc = make_memory(fe);
    for (unsigned i = 0; i < 2 * fe->o.pairs && rc == 0; i++) {
        fe->q[i].kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        fe->q[i].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fe->q[i].kick < 0 || fe->q[i].call < 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = fe_connect(fe);
    if (rc == 0)
        rc = fe_negotiate(fe);
    if (rc < 0) {
        vfe_fe_close(fe);
        errno = -rc;
        return NULL;
    }
    return fe;
}

void vfe_fe_close(struct vfe_fe *fe)
{
    if (!fe)
        return;
    fe_drop_connection(fe);
    if (fe->lsock >= 0) {
        close(fe->lsock);
        unlink(fe->o.path);
    }
    for (unsigned i = 0; i < FE_RINGS; i++) {
        if (fe->q[i].kick >= 0)
            close(fe->q[i].kick);
        if (fe->q[i].call >= 0)
            close(fe->q[i].call);
    }
    for (unsigned i = 0; i < VFE_FE_MAX_REGIONS; i++)
        fe_region_free(&fe->reg[i]);
    fe_log_free(fe);
    free(fe);
}

uint64_t vfe_fe_features(const struct vfe_fe *fe) { return fe->features; }
uint64_t vfe_fe_protocol_features(const struct vfe_fe *fe) { return fe->proto; }
uint64_t vfe_fe_offered_features(const struct vfe_fe *fe) { return fe->offered; }
uint64_t vfe_fe_offered_protocol_features(const struct vfe_fe *fe) { return fe->proto_offered; }
unsigned vfe_fe_queue_num(const struct vfe_fe *fe) { return fe->queue_num; }
unsigned vfe_fe_max_mem_slots(const struct vfe_fe *fe) { return fe->max_mem_slots; }
unsigned vfe_fe_pairs(const struct vfe_fe *fe) { return fe->o.pairs; }
