/* The test front-end: guest memory, rings, start/stop/reconnect, frames, dirty log. */
#include "tests/vu_frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

/* Region 0 (GPA 0): rings, then tx buffers.  Region 1 (GPA 1 GiB): rx buffers. */
#define RING_SLOT 0x10000u

uint8_t *fe_host(struct vfe_fe *fe, uint64_t gpa)
{
    for (int i = 0; i < 2; i++)
        if (gpa >= fe->reg[i].gpa && gpa - fe->reg[i].gpa < fe->reg[i].size)
            return fe->reg[i].va + (gpa - fe->reg[i].gpa);
    return NULL;
}

uint64_t fe_tx_buf_gpa(const struct vfe_fe *fe, unsigned pair, unsigned slot)
{
    return (uint64_t)FE_RINGS * RING_SLOT + ((uint64_t)pair * fe->o.ring_size + slot) * FE_TX_BUF;
}

uint64_t fe_rx_buf_gpa(const struct vfe_fe *fe, unsigned pair, unsigned slot)
{
    return FE_GPA1 + ((uint64_t)pair * fe->o.ring_size + slot) * FE_RX_BUF;
}

static int region_new(struct fe_region *r, uint64_t gpa, uint64_t size)
{
    r->gpa = gpa;
    r->size = size;
    r->fd = memfd_create("vfe-frontend", MFD_CLOEXEC);
    if (r->fd < 0 || ftruncate(r->fd, (off_t)size) < 0)
        return -errno;
    r->va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    return r->va == MAP_FAILED ? -errno : 0;
}

struct vfe_fe *vfe_fe_open(const struct vfe_fe_opts *o)
{
    struct vfe_fe *fe = calloc(1, sizeof(*fe));
    if (!fe) {
        errno = ENOMEM;
        return NULL;
    }
    fe->o = *o;
    if (!fe->o.pairs)
        fe->o.pairs = 1;
    if (!fe->o.ring_size)
        fe->o.ring_size = 256;
    if (!fe->o.timeout_ms)
        fe->o.timeout_ms = 3000;
    if (!fe->o.features)
        fe->o.features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF | 1ull << VIRTIO_NET_F_MAC |
                         (fe->o.pairs > 1 ? 1ull << VIRTIO_NET_F_MQ : 0);
    fe->sock = fe->lsock = fe->backend[0] = fe->backend[1] = fe->log_fd = -1;
    for (int i = 0; i < FE_RINGS; i++)
        fe->kick[i] = fe->call[i] = -1;
    int rc = -EINVAL;
    uint64_t rx_bytes = (uint64_t)fe->o.pairs * fe->o.ring_size * FE_RX_BUF;
    uint64_t r0 = (uint64_t)FE_RINGS * RING_SLOT + (uint64_t)fe->o.pairs * fe->o.ring_size * FE_TX_BUF;
    if (fe->o.pairs > VFE_FE_MAX_PAIRS || (fe->o.ring_size & (fe->o.ring_size - 1)) ||
        vfe_vring_mem_size(fe->o.ring_size) > RING_SLOT)
        goto fail;
    if ((rc = region_new(&fe->reg[0], 0, (r0 + 0xfffff) & ~0xfffffull)) < 0 ||
        (rc = region_new(&fe->reg[1], FE_GPA1, (rx_bytes + 0xfffff) & ~0xfffffull)) < 0)
        goto fail;
    for (int i = 0; i < FE_RINGS; i++) {
        fe->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        fe->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    if ((rc = fe_connect(fe)) < 0 || (rc = fe_negotiate(fe)) < 0)
        goto fail;
    return fe;
fail:
    vfe_fe_close(fe);
    errno = -rc;
    return NULL;
}

void vfe_fe_close(struct vfe_fe *fe)
{
    if (!fe)
        return;
    int fds[] = {fe->sock, fe->lsock, fe->backend[0], fe->backend[1], fe->log_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (fe->lsock >= 0)
        unlink(fe->o.path);
    for (int i = 0; i < FE_RINGS; i++) {
        if (fe->kick[i] >= 0)
            close(fe->kick[i]);
        if (fe->call[i] >= 0)
            close(fe->call[i]);
        if (fe->rings_init)
            vfe_vring_fini(&fe->rings[i]);
    }
    for (int i = 0; i < 2; i++) {
        if (fe->reg[i].va && fe->reg[i].va != MAP_FAILED)
            munmap(fe->reg[i].va, fe->reg[i].size);
        if (fe->reg[i].fd > 0)
            close(fe->reg[i].fd);
    }
    if (fe->log)
        munmap(fe->log, fe->log_size);
    free(fe);
}

uint64_t vfe_fe_features(const struct vfe_fe *fe) { return fe->features; }
uint64_t vfe_fe_protocol_features(const struct vfe_fe *fe) { return fe->proto; }
unsigned vfe_fe_queue_num(const struct vfe_fe *fe) { return fe->queue_num; }

static void post_rx(struct vfe_fe *fe, unsigned pair, unsigned slot)
{
    struct vfe_sg sg = {fe_rx_buf_gpa(fe, pair, slot), FE_RX_BUF};
    vfe_vring_add(&fe->rings[2 * pair], &sg, 0, 1, (void *)(uintptr_t)(slot + 1));
}

static void rings_init(struct vfe_fe *fe)
{
    for (unsigned i = 0; i < 2 * fe->o.pairs; i++) {
        fe->ring_gpa[i] = (uint64_t)i * RING_SLOT;
        vfe_vring_init(&fe->rings[i], fe->o.ring_size, fe_host(fe, fe->ring_gpa[i]), fe->ring_gpa[i], false);
    }
    for (unsigned p = 0; p < fe->o.pairs; p++) {
        for (unsigned s = 0; s < fe->o.ring_size; s++)
            post_rx(fe, p, s);
        vfe_vring_publish(&fe->rings[2 * p]);
    }
    fe->rings_init = true;
}

static uint64_t qva(struct vfe_fe *fe, uint64_t gpa)
{
    return (uint64_t)(uintptr_t)fe_host(fe, gpa);
}

int vfe_fe_start(struct vfe_fe *fe, const uint16_t *bases)
{
    if (!fe->rings_init)
        rings_init(fe);
    int rc = 0;
    for (uint32_t i = 0; i < 2 * fe->o.pairs && rc == 0; i++) {
        struct vfe_vring *r = &fe->rings[i];
        struct vhost_user_vring_state st = {i, fe->o.ring_size};
        struct vhost_user_vring_addr a = {i, 0, qva(fe, r->desc_iova), qva(fe, r->used_iova),
                                          qva(fe, r->avail_iova), 0};
        uint64_t idx = i;
        rc = fe_request(fe, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0);
        st.num = bases ? bases[i] : 0;
        rc = rc ?: fe_request(fe, VHOST_USER_SET_VRING_BASE, &st, sizeof(st), NULL, 0);
        rc = rc ?: fe_request(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
        rc = rc ?: fe_request(fe, VHOST_USER_SET_VRING_KICK, &idx, 8, &fe->kick[i], 1);
        rc = rc ?: fe_request(fe, VHOST_USER_SET_VRING_CALL, &idx, 8, &fe->call[i], 1);
    }
    for (uint32_t i = 0; i < 2 * fe->o.pairs && rc == 0; i++) {
        struct vhost_user_vring_state en = {i, 1};
        if (fe->offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
            rc = fe_request(fe, VHOST_USER_SET_VRING_ENABLE, &en, sizeof(en), NULL, 0);
    }
    if (rc == 0 && (fe->proto & (1ull << VHOST_USER_PROTOCOL_F_STATUS))) {
        uint64_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                      VIRTIO_CONFIG_S_DRIVER_OK;
        rc = fe_request(fe, VHOST_USER_SET_STATUS, &st, 8, NULL, 0);
    }
    /* buffers posted before the start: tell the device */
    for (unsigned p = 0; p < fe->o.pairs && rc == 0; p++) {
        uint64_t one = 1;
        if (write(fe->kick[2 * p], &one, 8) != 8)
            rc = -errno;
    }
    return rc;
}

int vfe_fe_stop(struct vfe_fe *fe, uint16_t *bases)
{
    int rc = 0;
    for (uint32_t i = 0; i < 2 * fe->o.pairs && rc == 0; i++) {
        struct vhost_user_vring_state en = {i, 0};
        if (fe->offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
            rc = fe_request(fe, VHOST_USER_SET_VRING_ENABLE, &en, sizeof(en), NULL, 0);
    }
    for (uint32_t i = 0; i < 2 * fe->o.pairs && rc == 0; i++) {
        struct vhost_user_vring_state st = {i, 0};
        rc = fe_send(fe->sock, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &st, sizeof(st), NULL, 0);
        if (rc == 0) {
            rc = fe_read_reply(fe, VHOST_USER_GET_VRING_BASE, &st, sizeof(st), fe->o.timeout_ms);
            rc = rc < 0 ? rc : (rc != sizeof(st) || st.index != i) ? -EPROTO : 0;
        }
        if (rc == 0 && bases)
            bases[i] = (uint16_t)st.num;
    }
    return rc;
}

int vfe_fe_reconnect(struct vfe_fe *fe)
{
    if (fe->sock >= 0)
        close(fe->sock);
    fe->sock = -1;
    int rc = fe_connect(fe);
    return rc < 0 ? rc : fe_negotiate(fe);
}

int vfe_fe_send(struct vfe_fe *fe, unsigned pair, const void *frame, size_t len)
{
    if (pair >= fe->o.pairs || len + VFE_FE_HDR_LEN > FE_TX_BUF || !fe->rings_init)
        return -EINVAL;
    struct vfe_vring *r = &fe->rings[2 * pair + 1];
    uint32_t ul;
    while (vfe_vring_get_used(r, &ul))
        ;
    unsigned slot = fe->tx_next[pair]++ % fe->o.ring_size;
    uint64_t gpa = fe_tx_buf_gpa(fe, pair, slot);
    uint8_t *p = fe_host(fe, gpa);
    memset(p, 0, VFE_FE_HDR_LEN);
    memcpy(p + VFE_FE_HDR_LEN, frame, len);
    struct vfe_sg sg = {gpa, (uint32_t)(VFE_FE_HDR_LEN + len)};
    int rc = vfe_vring_add(r, &sg, 1, 0, (void *)(uintptr_t)(slot + 1));
    if (rc < 0)
        return rc;
    vfe_vring_publish(r);
    uint64_t one = 1;
    return write(fe->kick[2 * pair + 1], &one, 8) == 8 ? 0 : -errno;
}

void vfe_fe_used_indices(struct vfe_fe *fe, uint16_t *bases)
{
    for (unsigned i = 0; i < 2 * fe->o.pairs; i++)
        bases[i] = fe->rings_init ? __atomic_load_n(&fe->rings[i].used->idx, __ATOMIC_ACQUIRE) : 0;
}

static void count_calls(struct vfe_fe *fe, unsigned ring)
{
    uint64_t n;
    if (read(fe->call[ring], &n, 8) == 8)
        fe->calls[ring] += n;
}

uint64_t vfe_fe_calls(struct vfe_fe *fe, unsigned ring)
{
    if (ring >= FE_RINGS)
        return 0;
    count_calls(fe, ring);
    return fe->calls[ring];
}

/* Next used rx buffer of a pair, waiting up to the deadline. */
static void *next_rx(struct vfe_fe *fe, unsigned pair, uint32_t *len, long end)
{
    struct vfe_vring *r = &fe->rings[2 * pair];
    void *c;
    while (!(c = vfe_vring_get_used(r, len))) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long now = ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
        if (now >= end)
            return NULL;
        struct pollfd p = {.fd = fe->call[2 * pair], .events = POLLIN};
        poll(&p, 1, 5);
        count_calls(fe, 2 * pair);
        fe_serve_backend(fe);
    }
    return c;
}

int vfe_fe_recv(struct vfe_fe *fe, unsigned pair, void *buf, size_t cap, int timeout_ms)
{
    if (pair >= fe->o.pairs || !fe->rings_init)
        return -EINVAL;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long end = ts.tv_sec * 1000L + ts.tv_nsec / 1000000L + timeout_ms;
    uint32_t len;
    void *c = next_rx(fe, pair, &len, end);
    if (!c)
        return -ETIMEDOUT;
    unsigned slot = (unsigned)(uintptr_t)c - 1;
    const uint8_t *b = fe_host(fe, fe_rx_buf_gpa(fe, pair, slot));
    struct virtio_net_hdr_v1 h;
    memcpy(&h, b, sizeof(h));
    unsigned nbufs = (fe->features & (1ull << VIRTIO_NET_F_MRG_RXBUF)) ? h.num_buffers : 1;
    size_t got = 0;
    bool fits = true;
    int rc = 0;
    for (unsigned k = 0; k < nbufs; k++) {
        if (k) {
            if (!(c = next_rx(fe, pair, &len, end))) {
                rc = -EPROTO;
                break;
            }
            slot = (unsigned)(uintptr_t)c - 1;
            b = fe_host(fe, fe_rx_buf_gpa(fe, pair, slot));
        }
        size_t skip = k == 0 ? VFE_FE_HDR_LEN : 0;
        size_t n = len > skip ? len - skip : 0;
        if (len > FE_RX_BUF || got + n > cap)
            fits = false;
        else
            memcpy((uint8_t *)buf + got, b + skip, n);
        got += n;
        post_rx(fe, pair, slot);
    }
    vfe_vring_publish(&fe->rings[2 * pair]);
    uint64_t one = 1;
    if (write(fe->kick[2 * pair], &one, 8) != 8)
        return -errno;
    if (rc < 0)
        return rc;
    return fits ? (int)got : -EMSGSIZE;
}

int vfe_fe_log_start(struct vfe_fe *fe)
{
    uint64_t top = fe->reg[1].gpa + fe->reg[1].size;
    uint64_t size = (top / 4096 + 63) / 64 * 8;
    if (!fe->log) {
        fe->log_fd = memfd_create("vfe-frontend-log", MFD_CLOEXEC);
        if (fe->log_fd < 0 || ftruncate(fe->log_fd, (off_t)size) < 0)
            return -errno;
        fe->log = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fe->log_fd, 0);
        if (fe->log == MAP_FAILED) {
            fe->log = NULL;
            return -errno;
        }
        fe->log_size = size;
    }
    struct vhost_user_log l = {size, 0};
    int rc = fe_send(fe->sock, VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, &l, sizeof(l), &fe->log_fd, 1);
    uint64_t v = 1;
    if (rc == 0)
        rc = fe_read_reply(fe, VHOST_USER_SET_LOG_BASE, &v, 8, fe->o.timeout_ms);
    if (rc < 0)
        return rc;
    if (v != 0)
        return -EIO;
    uint64_t f = fe->features | 1ull << 26;
    rc = fe_request(fe, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0);
    if (rc == 0)
        fe->features = f;
    return rc;
}

int vfe_fe_log_stop(struct vfe_fe *fe)
{
    uint64_t f = fe->features & ~(1ull << 26);
    int rc = fe_request(fe, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0);
    if (rc == 0)
        fe->features = f;
    return rc;
}

long vfe_fe_log_take(struct vfe_fe *fe, uint8_t *out, size_t cap)
{
    if (!fe->log)
        return -ENOENT;
    size_t n = fe->log_size < cap ? fe->log_size : cap;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t w = __atomic_exchange_n((uint64_t *)(fe->log + i), 0, __ATOMIC_ACQ_REL);
        memcpy(out + i, &w, 8);
    }
    return (long)n;
}

uint64_t vfe_fe_gpa_of(const struct vfe_fe *fe, const void *p)
{
    for (int i = 0; i < 2; i++) {
        const uint8_t *b = fe->reg[i].va;
        if ((const uint8_t *)p >= b && (const uint8_t *)p < b + fe->reg[i].size)
            return fe->reg[i].gpa + (uint64_t)((const uint8_t *)p - b);
    }
    return UINT64_MAX;
}

int vfe_fe_rx_area(const struct vfe_fe *fe, unsigned pair, uint64_t *gpa, uint64_t *len)
{
    if (pair >= fe->o.pairs)
        return -EINVAL;
    *gpa = fe_rx_buf_gpa(fe, pair, 0);
    *len = (uint64_t)fe->o.ring_size * FE_RX_BUF;
    return 0;
}

uint64_t vfe_fe_used_gpa(const struct vfe_fe *fe, unsigned ring)
{
    return ring < FE_RINGS ? fe->rings[ring].used_iova : 0;
}

void vfe_fe_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6], uint32_t seed)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 14; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f[i] = (uint8_t)x;
    }
}
