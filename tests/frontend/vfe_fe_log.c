/* Migration: the dirty page log (bitmap helpers, and the messages QEMU sends
 * to start and stop logging, vhost_migration_log / vhost_dev_set_log), and
 * the announcement QEMU asks for once the guest runs on the destination. */
#include "tests/frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

size_t vfe_fe_log_bytes(uint64_t top_gpa)
{
    uint64_t pages = (top_gpa + VFE_FE_LOG_PAGE - 1) / VFE_FE_LOG_PAGE;
    return (size_t)((pages + 63) / 64 * 8);
}

bool vfe_fe_log_test(const uint8_t *log, size_t n, uint64_t gpa)
{
    uint64_t page = gpa / VFE_FE_LOG_PAGE;
    return page / 8 < n && (log[page / 8] & (1u << (page % 8)));
}

void vfe_fe_log_mark(uint8_t *log, size_t n, uint64_t gpa, uint64_t len)
{
    if (!len)
        return;
    for (uint64_t page = gpa / VFE_FE_LOG_PAGE; page <= (gpa + len - 1) / VFE_FE_LOG_PAGE; page++)
        if (page / 8 < n)
            __atomic_fetch_or(&log[page / 8], (uint8_t)(1u << (page % 8)), __ATOMIC_RELAXED);
}

uint64_t vfe_fe_log_missing(const uint8_t *log, size_t n, uint64_t gpa, uint64_t len)
{
    uint64_t missing = 0;
    if (!len)
        return 0;
    for (uint64_t page = gpa / VFE_FE_LOG_PAGE; page <= (gpa + len - 1) / VFE_FE_LOG_PAGE; page++)
        missing += !vfe_fe_log_test(log, n, page * VFE_FE_LOG_PAGE);
    return missing;
}

uint64_t vfe_fe_log_count(const uint8_t *log, size_t n)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (uint64_t)__builtin_popcount(log[i]);
    return c;
}

size_t vfe_fe_log_exchange(uint8_t *log, uint8_t *out, size_t n)
{
    n &= ~(size_t)7;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = __atomic_exchange_n((uint64_t *)(void *)(log + i), 0, __ATOMIC_ACQ_REL);
        memcpy(out + i, &w, 8);
    }
    return n;
}

static void unmap_log(struct vfe_fe *fe)
{
    if (fe->log)
        munmap(fe->log, fe->log_size);
    if (fe->log_fd >= 0)
        close(fe->log_fd);
    fe->log = NULL;
    fe->log_fd = -1;
    fe->log_size = 0;
}

/* A log covering every region now, handed to the back-end; the old one (if
 * any) is dropped only once the back-end has the new one. */
int fe_log_resize(struct vfe_fe *fe)
{
    if (!(fe->proto & (1ull << VFE_FE_PF_LOG_SHMFD)))
        return -EOPNOTSUPP;
    size_t size = vfe_fe_log_bytes(fe_top_gpa(fe));
    int fd = memfd_create("vfe-frontend-log", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t *log = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ftruncate(fd, (off_t)size) < 0 || log == MAP_FAILED) {
        int e = -errno;
        if (log != MAP_FAILED)
            munmap(log, size);
        close(fd);
        return e;
    }
    struct vfe_fe_log_desc d = {size, 0};
    int rc = fe_send_msg(fe->sock, VFE_FE_SET_LOG_BASE, VFE_FE_VERSION, &d, sizeof(d), &fd, 1, fe->o.timeout_ms);
    uint64_t v = 0;
    if (rc == 0)
        rc = fe_read_reply(fe, VFE_FE_SET_LOG_BASE, &v, sizeof(v));
    /* the reply carries no payload (DPDK) or a u64 status */
    if (rc > 0)
        rc = rc == 8 && v == 0 ? 0 : rc == 8 ? -EIO : -EPROTO;
    if (rc < 0) {
        munmap(log, size);
        close(fd);
        return rc;
    }
    /* the old log's bits count too; the back-end may already be setting bits
     * in the new one, so they are added, never copied over */
    for (size_t i = 0; fe->log && i < fe->log_size && i < size; i++)
        if (fe->log[i])
            __atomic_fetch_or(&log[i], fe->log[i], __ATOMIC_RELAXED);
    unmap_log(fe);
    fe->log = log;
    fe->log_fd = fd;
    fe->log_size = size;
    return 0;
}

static int set_logging(struct vfe_fe *fe, bool on)
{
    uint64_t f = on ? fe->features | (1ull << VFE_FE_F_LOG_ALL) : fe->features & ~(1ull << VFE_FE_F_LOG_ALL);
    int rc = fe_set_features(fe, f);
    for (unsigned i = 0; i < FE_RINGS && rc == 0; i++)
        if (fe->q[i].started)
            rc = fe_set_ring_addr(fe, i, on);
    return rc;
}

int vfe_fe_log_start(struct vfe_fe *fe)
{
    if (fe->sock < 0)
        return -ENOTCONN;
    if (!(fe->offered & (1ull << VFE_FE_F_LOG_ALL)))
        return -EOPNOTSUPP;
    int rc = fe_log_resize(fe);
    if (rc == 0)
        rc = set_logging(fe, true);
    if (rc == 0)
        fe->logging = true;
    return rc;
}

int vfe_fe_log_stop(struct vfe_fe *fe)
{
    if (fe->sock < 0)
        return -ENOTCONN;
    int rc = set_logging(fe, false);
    if (rc == 0)
        fe->logging = false;
    return rc;
}

size_t vfe_fe_log_size(const struct vfe_fe *fe)
{
    return fe->log_size;
}

long vfe_fe_log_take(struct vfe_fe *fe, uint8_t *out, size_t cap)
{
    if (!fe->log)
        return -ENOENT;
    return (long)vfe_fe_log_exchange(fe->log, out, fe->log_size < cap ? fe->log_size : cap);
}

int vfe_fe_send_rarp(struct vfe_fe *fe, const uint8_t mac[6])
{
    if (!(fe->proto & (1ull << VFE_FE_PF_RARP)))
        return -EOPNOTSUPP;
    uint64_t v = 0;
    memcpy(&v, mac, 6);
    return fe_set_u64(fe, VFE_FE_SEND_RARP, v, false);
}

void fe_log_free(struct vfe_fe *fe)
{
    unmap_log(fe);
}
