/*
 * Posted mode of the vfio-user client (vfio_user_posted.c) against a server
 * in the test whose replies the test sends, in any order, or withholds:
 * writes return before any reply, replies are drained in any order, a
 * refused write is latched, a malformed reply, a server that stops reading
 * does not block, asynchronous reads (and their cancel), a synchronous call
 * after posted ones, HA export/adopt with requests outstanding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "lib/vfio_user/vfu_msg.h"
#include "lib/vfio_user/vfu_sock.h"

#define BAR_SIZE 0x40000u
#define MAXQ 512

struct srv {
    char dir[128], path[200];
    int lsock, c;
    pthread_t thr;
    pthread_mutex_t mu;
    bool auto_reply;      /* answer everything in order (queued first) */
    bool paused;          /* do not read the socket */
    bool stop;
    struct vfu_msg q[MAXQ];   /* received, not answered */
    unsigned nq, received;
    uint8_t bar[BAR_SIZE];
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void send_reply(struct srv *s, const struct vfu_msg *m, uint32_t err, const void *p, size_t len)
{
    int rc = vfu_msg_send_simple(s->c, m->hdr.msg_id, m->hdr.cmd, VFU_F_TYPE_REPLY | (err ? VFU_F_ERROR : 0), err,
                                 err ? NULL : p, err ? 0 : len, NULL, 0, 2000);
    assert_int_equal(rc, 0);
}

/* The answer a device gives (with the mutex held). */
static void answer(struct srv *s, const struct vfu_msg *m)
{
    switch (m->hdr.cmd) {
    case VFU_CMD_VERSION: {
        struct vfu_caps caps;
        vfu_caps_ours(&caps);
        caps.max_data_xfer_size = 8192;
        size_t len;
        void *p = vfu_version_build(&caps, &len);
        send_reply(s, m, 0, p, len);
        free(p);
        break;
    }
    case VFU_CMD_DEVICE_GET_INFO: {
        struct vfu_device_info d = { 16, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, 9, 5 };
        send_reply(s, m, 0, &d, sizeof(d));
        break;
    }
    case VFU_CMD_DEVICE_GET_REGION_INFO: {
        struct vfu_region_info r;
        memcpy(&r, m->payload, sizeof(r));
        r.argsz = sizeof(r);
        r.size = r.index == VFE_REGION_CONFIG ? 256 : r.index == 0 ? BAR_SIZE : 0;
        r.flags = r.size ? 3 : 0;
        send_reply(s, m, 0, &r, sizeof(r));
        break;
    }
    case VFU_CMD_REGION_READ: {
        struct vfu_region_access a;
        memcpy(&a, m->payload, sizeof(a));
        uint8_t *buf = calloc(1, sizeof(a) + a.count);
        memcpy(buf, &a, sizeof(a));
        if (a.region == 0 && a.offset + a.count <= BAR_SIZE)
            memcpy(buf + sizeof(a), s->bar + a.offset, a.count);
        send_reply(s, m, 0, buf, sizeof(a) + a.count);
        free(buf);
        break;
    }
    case VFU_CMD_REGION_WRITE: {
        struct vfu_region_access a;
        memcpy(&a, m->payload, sizeof(a));
        if (a.region == 0 && a.offset + a.count <= BAR_SIZE)
            memcpy(s->bar + a.offset, m->payload + sizeof(a), a.count);
        send_reply(s, m, 0, &a, sizeof(a));
        break;
    }
    case VFU_CMD_DMA_UNMAP:
        send_reply(s, m, 0, m->payload, m->len);
        break;
    default:
        send_reply(s, m, 0, NULL, 0);
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    s->c = accept(s->lsock, NULL, NULL);
    if (s->c < 0)
        return NULL;
    fcntl(s->c, F_SETFL, fcntl(s->c, F_GETFL) | O_NONBLOCK);
    struct vfu_reader r;
    vfu_reader_init(&r);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop, paused = s->paused;
        if (s->auto_reply) {
            for (unsigned i = 0; i < s->nq; i++) {
                answer(s, &s->q[i]);
                vfu_msg_free(&s->q[i]);
            }
            s->nq = 0;
        }
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (paused) {
            usleep(1000);
            continue;
        }
        struct pollfd p = { .fd = s->c, .events = POLLIN };
        if (poll(&p, 1, 2) <= 0)
            continue;
        struct vfu_msg m;
        int rc = vfu_reader_feed(&r, s->c, &m);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        pthread_mutex_lock(&s->mu);
        s->received++;
        /* in order, as a device answers: nothing overtakes a queued request */
        bool now = s->auto_reply || (s->nq == 0 && (m.hdr.cmd == VFU_CMD_VERSION ||
                                                    m.hdr.cmd == VFU_CMD_DEVICE_GET_INFO ||
                                                    m.hdr.cmd == VFU_CMD_DEVICE_GET_REGION_INFO));
        if (now) {
            for (unsigned i = 0; i < s->nq; i++) {
                answer(s, &s->q[i]);
                vfu_msg_free(&s->q[i]);
            }
            s->nq = 0;
            answer(s, &m);
            vfu_msg_free(&m);
        } else {
            assert_true(s->nq < MAXQ);
            s->q[s->nq++] = m;
        }
        pthread_mutex_unlock(&s->mu);
    }
    vfu_reader_reset(&r);
    return NULL;
}

static struct srv *cur;   /* the running server: a failed test's teardown stops it (socket, temp dir) */

static struct srv *srv_start(void)
{
    struct srv *s = calloc(1, sizeof(*s));
    cur = s;
    pthread_mutex_init(&s->mu, NULL);
    s->c = -1;
    for (unsigned i = 0; i < BAR_SIZE; i++)
        s->bar[i] = (uint8_t)(i * 7);
    snprintf(s->dir, sizeof(s->dir), "/tmp/vfu-posted-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/vfio-user.sock", s->dir);
    s->lsock = vfu_sock_listen(s->path);
    assert_true(s->lsock >= 0);
    fcntl(s->lsock, F_SETFL, fcntl(s->lsock, F_GETFL) & ~O_NONBLOCK);
    pthread_create(&s->thr, NULL, srv_main, s);
    return s;
}

static void srv_stop(struct srv *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    shutdown(s->lsock, SHUT_RDWR);
    pthread_join(s->thr, NULL);
    for (unsigned i = 0; i < s->nq; i++)
        vfu_msg_free(&s->q[i]);
    if (s->c >= 0)
        close(s->c);
    close(s->lsock);
    unlink(s->path);
    rmdir(s->dir);
    pthread_mutex_destroy(&s->mu);
    free(s);
    cur = NULL;
}

static int teardown(void **state)
{
    (void)state;
    if (cur)
        srv_stop(cur);
    return 0;
}

/* Wait until the server holds n unanswered requests. */
static void srv_wait_queued(struct srv *s, unsigned n)
{
    long end = now_ms() + 3000;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        unsigned got = s->nq;
        pthread_mutex_unlock(&s->mu);
        if (got >= n)
            return;
        assert_true(now_ms() < end);
        usleep(1000);
    }
}

/* Answer queued request i (err: an error reply; raw: exactly these payload bytes). */
static void srv_reply(struct srv *s, unsigned i, uint32_t err)
{
    pthread_mutex_lock(&s->mu);
    assert_true(i < s->nq);
    if (err)
        send_reply(s, &s->q[i], err, NULL, 0);
    else
        answer(s, &s->q[i]);
    vfu_msg_free(&s->q[i]);
    memmove(&s->q[i], &s->q[i + 1], (s->nq - i - 1) * sizeof(s->q[0]));
    s->nq--;
    pthread_mutex_unlock(&s->mu);
}

static void srv_set(struct srv *s, bool *flag, bool on)
{
    pthread_mutex_lock(&s->mu);
    *flag = on;
    pthread_mutex_unlock(&s->mu);
}

static struct vfe_transport *open_posted(struct srv *s)
{
    struct vfe_transport *t;
    assert_int_equal(vfe_vfio_user_open(s->path, "0000:3b:00.1", &t), 0);
    struct vfe_region_info ri;   /* known before posting: a check_range needs no round trip */
    assert_int_equal(t->ops->region_info(t, 0, &ri), 0);
    assert_int_equal(vfe_transport_set_posted(t, true), 0);
    assert_true(vfe_transport_watch_fd(t) >= 0);
    return t;
}

/* Drain until nothing is outstanding (or 2 s). */
static void drain_all(struct vfe_transport *t)
{
    long end = now_ms() + 2000;
    struct vfe_posted_state st;
    for (;;) {
        struct pollfd p = { .fd = vfe_transport_watch_fd(t), .events = POLLIN };
        poll(&p, 1, 10);
        vfe_transport_drain(t);
        vfe_transport_posted_state(t, &st, false);
        if (!st.outstanding && !st.reads)
            return;
        assert_true(now_ms() < end);
    }
}

/* Seven messages: a DMA map is preceded by the unmap of its range (a leftover of a crash goes first). */
static void post_six(struct vfe_transport *t, int efd)
{
    uint32_t v = 0x11223344;
    assert_int_equal(t->ops->region_write(t, 0, 0x100, &v, 4), 0);
    assert_int_equal(t->ops->dma_map(t, 0x100000, 0x1000, efd, 0, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(t->ops->dma_unmap(t, 0x100000, 0x1000), 0);
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, &efd), 0);
    assert_int_equal(t->ops->ioeventfd(t, 0, 0x200, 2, 1, efd), 0);
    assert_int_equal(t->ops->reset(t), 0);
}

static void test_posted_writes_any_order(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    int efd = eventfd(0, EFD_CLOEXEC);
    long t0 = now_ms();
    post_six(t, efd);   /* none is answered: each returned once sent */
    assert_true(now_ms() - t0 < 500);
    srv_wait_queued(s, 7);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.outstanding, 7);
    assert_int_equal(st.error, 0);
    assert_true(st.oldest_ms >= 0);
    /* nothing to read: drain returns at once */
    assert_int_equal(vfe_transport_drain(t), 0);
    /* replies in another order than the requests */
    unsigned order[7] = { 6, 2, 3, 0, 1, 1, 0 };
    for (unsigned i = 0; i < 7; i++)
        srv_reply(s, order[i] < 7 - i ? order[i] : 0, 0);
    drain_all(t);
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.error, 0);
    uint32_t v;
    assert_int_equal(vfe_transport_set_posted(t, false), 0);
    srv_set(s, &s->auto_reply, true);
    assert_int_equal(t->ops->region_read(t, 0, 0x100, &v, 4), 0);
    assert_int_equal(v, 0x11223344);   /* the posted write reached the device */
    close(efd);
    vfe_transport_close(t);
    srv_stop(s);
}

static void test_error_latched(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(t->ops->dma_map(t, 0x100000, 0x1000, efd, 0, VFE_DMA_READ), 0);
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, &efd), 0);
    assert_int_equal(t->ops->dma_map(t, 0x200000, 0x1000, efd, 0, VFE_DMA_READ), 0);
    srv_wait_queued(s, 5);     /* unmap, map, irqs, unmap, map */
    srv_reply(s, 2, 0);        /* SET_IRQS fine */
    srv_reply(s, 0, ENOENT);   /* the unmap before the first map: "not mapped" is fine */
    srv_reply(s, 0, EINVAL);   /* the first DMA_MAP refused */
    srv_reply(s, 0, 0);
    srv_reply(s, 0, ENOSPC);   /* the second too: the first error stays */
    drain_all(t);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, true);
    assert_int_equal(st.error, -EINVAL);
    assert_string_equal(st.error_op, "DMA_MAP");
    vfe_transport_posted_state(t, &st, false);   /* taken */
    assert_int_equal(st.error, 0);
    /* the connection stands */
    uint32_t v = 5;
    assert_int_equal(t->ops->region_write(t, 0, 0, &v, 4), 0);
    srv_wait_queued(s, 1);
    srv_reply(s, 0, 0);
    drain_all(t);
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.error, 0);
    close(efd);
    vfe_transport_close(t);
    srv_stop(s);
}

static void test_malformed_reply(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    uint32_t v = 1;
    assert_int_equal(t->ops->region_write(t, 0, 0x10, &v, 4), 0);
    srv_wait_queued(s, 1);
    /* a REGION_WRITE reply that echoes another offset: that request failed (-EPROTO), the stream is whole */
    pthread_mutex_lock(&s->mu);
    struct vfu_region_access a = { .offset = 0x14, .region = 0, .count = 4 };
    send_reply(s, &s->q[0], 0, &a, sizeof(a));
    vfu_msg_free(&s->q[0]);
    s->nq = 0;
    pthread_mutex_unlock(&s->mu);
    drain_all(t);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, true);
    assert_int_equal(st.error, -EPROTO);
    /* a reply to no request at all: the connection breaks */
    assert_int_equal(t->ops->region_write(t, 0, 0x10, &v, 4), 0);
    srv_wait_queued(s, 1);
    pthread_mutex_lock(&s->mu);
    s->q[0].hdr.msg_id ^= 0x5555;
    send_reply(s, &s->q[0], 0, &a, sizeof(a));
    vfu_msg_free(&s->q[0]);
    s->nq = 0;
    pthread_mutex_unlock(&s->mu);
    long end = now_ms() + 2000;
    int rc = 0;
    while (rc == 0 && now_ms() < end) {
        struct pollfd p = { .fd = vfe_transport_watch_fd(t), .events = POLLIN };
        poll(&p, 1, 10);
        rc = vfe_transport_drain(t);
    }
    assert_int_equal(rc, -ENOTCONN);
    assert_int_equal(t->ops->region_write(t, 0, 0x10, &v, 4), -ENOTCONN);
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.outstanding, 0);
    assert_true(st.error != 0);   /* the lost request counts as refused */
    vfe_transport_close(t);
    srv_stop(s);
}

struct rd { int calls, err; uint8_t data[16]; size_t len; };

static void on_read(void *ctx, int err, const void *data, size_t len)
{
    struct rd *r = ctx;
    r->calls++;
    r->err = err;
    r->len = len;
    if (!err)
        memcpy(r->data, data, len < sizeof(r->data) ? len : sizeof(r->data));
}

static void test_server_not_reading(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    srv_set(s, &s->paused, true);
    usleep(50 * 1000);   /* a read the server thread had begun is over */
    static uint8_t chunk[8192];
    unsigned sent = 0;
    int rc = 0;
    long worst = 0;
    for (unsigned i = 0; i < 4 * VFE_POSTED_MAX && rc == 0; i++) {
        long t0 = now_ms();
        rc = t->ops->region_write(t, 0, (i % 16) * sizeof(chunk), chunk, sizeof(chunk));
        long d = now_ms() - t0;
        worst = d > worst ? d : worst;
        if (rc == 0)
            sent++;
    }
    assert_int_equal(rc, -ENOBUFS);   /* the device stopped reading: said after one short wait */
    assert_true(sent > 0 && sent <= VFE_POSTED_MAX);
    assert_true(worst >= VFE_POSTED_ROOM_MS - 20 && worst < VFE_POSTED_ROOM_MS + 100);
    /* then at once, the episode has begun: a write and a read */
    long t1 = now_ms();
    assert_int_equal(t->ops->region_write(t, 0, 0, chunk, 16), -ENOBUFS);
    assert_true(now_ms() - t1 < 50);
    /* reads are refused the same way, without waiting */
    long t0 = now_ms();
    struct rd never = {0};
    assert_int_equal(vfe_transport_read_async(t, 0, 0, 8, on_read, &never), -ENOBUFS);
    assert_true(now_ms() - t0 < 50);
    /* the device reads again: everything is acknowledged, posting works again */
    srv_set(s, &s->auto_reply, true);
    srv_set(s, &s->paused, false);
    drain_all(t);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.error, 0);
    assert_int_equal(t->ops->region_write(t, 0, 0, chunk, 16), 0);
    drain_all(t);
    vfe_transport_close(t);
    srv_stop(s);
}

static void *resume_later(void *arg)
{
    struct srv *s = arg;
    usleep(60 * 1000);
    srv_set(s, &s->paused, false);
    return NULL;
}

/* A burst larger than the socket takes at once, the device reading again
 * 60 ms later: every write goes out (the short wait), none is refused. */
static void test_burst_slow_reader(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    srv_set(s, &s->auto_reply, true);
    srv_set(s, &s->paused, true);
    usleep(50 * 1000);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, resume_later, s), 0);
    static uint8_t chunk[8192];
    unsigned sent = 0;
    for (unsigned i = 0; i < VFE_POSTED_MAX / 2; i++)
        sent += t->ops->region_write(t, 0, (i % 16) * sizeof(chunk), chunk, sizeof(chunk)) == 0;
    pthread_join(th, NULL);
    assert_int_equal(sent, VFE_POSTED_MAX / 2);
    drain_all(t);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.error, 0);
    vfe_transport_close(t);
    srv_stop(s);
}

/* A read callback that cancels another ctx's reads (a VF closing the
 * stats of a neighbour, say): the cancelled one never runs, even when its
 * answer came in the same drain. */
struct canceller {
    struct rd r;
    struct vfe_transport *t;
    void *victim;
};

static void on_read_cancel(void *ctx, int err, const void *data, size_t len)
{
    struct canceller *k = ctx;
    on_read(&k->r, err, data, len);
    vfe_transport_cancel_reads(k->t, k->victim);
}

static void test_cancel_from_callback(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    srv_set(s, &s->auto_reply, true);
    struct rd b = {0};
    struct canceller a = {.t = t, .victim = &b};
    assert_int_equal(vfe_transport_read_async(t, 0, 0, 8, on_read_cancel, &a), 0);
    assert_int_equal(vfe_transport_read_async(t, 0, 8, 8, on_read, &b), 0);
    usleep(100 * 1000);   /* both answers are in the socket: one drain takes them */
    assert_int_equal(vfe_transport_drain(t), 0);
    assert_int_equal(a.r.calls, 1);
    assert_int_equal(b.calls, 0);
    drain_all(t);
    assert_int_equal(b.calls, 0);
    vfe_transport_close(t);
    srv_stop(s);
}

static void test_async_read(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    struct rd a = {0}, b = {0};
    assert_int_equal(vfe_transport_read_async(t, 0, 0x20, 8, on_read, &a), 0);
    assert_int_equal(vfe_transport_read_async(t, 0, 0x40, 8, on_read, &b), 0);
    assert_int_equal(vfe_transport_read_async(t, 0, 0, 9000, on_read, &a), -EMSGSIZE);   /* > max_data_xfer */
    assert_int_equal(vfe_transport_read_async(t, 0, BAR_SIZE - 4, 8, on_read, &a), -EINVAL);   /* past the BAR */
    assert_int_equal(a.calls, 0);
    srv_wait_queued(s, 2);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.reads, 2);
    assert_int_equal(st.outstanding, 0);
    vfe_transport_cancel_reads(t, &b);   /* b's answer is dropped */
    srv_reply(s, 1, 0);
    srv_reply(s, 0, 0);
    drain_all(t);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.len, 8);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(a.data[i], (uint8_t)((0x20 + i) * 7));
    assert_int_equal(b.calls, 0);
    /* an error reply reaches the callback */
    assert_int_equal(vfe_transport_read_async(t, 0, 0x20, 8, on_read, &a), 0);
    srv_wait_queued(s, 1);
    srv_reply(s, 0, EIO);
    drain_all(t);
    assert_int_equal(a.calls, 2);
    assert_int_equal(a.err, -EIO);
    vfe_transport_close(t);
    srv_stop(s);
}

struct wr { int calls, err; };

static void on_dma(void *ctx, int err)
{
    struct wr *w = ctx;
    w->calls++;
    w->err = err;
}

/* A DMA map or unmap whose outcome the caller waits for: its own result (not
 * latched) from a later drain, never inside the call; cancel silences it; a
 * broken connection answers -ENOTCONN; not posted: -EOPNOTSUPP. */
static void test_dma_completion(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    int efd = eventfd(0, EFD_CLOEXEC);
    struct wr m1 = {0}, m2 = {0}, u1 = {0}, gone = {0};
    assert_int_equal(vfe_transport_dma_map_async(t, 0x100000, 0x1000, efd, 0, VFE_DMA_READ, on_dma, &m1), 0);
    assert_int_equal(vfe_transport_dma_map_async(t, 0x200000, 0x1000, efd, 0, VFE_DMA_READ, on_dma, &m2), 0);
    assert_int_equal(vfe_transport_dma_unmap_async(t, 0x300000, 0x1000, on_dma, &u1), 0);
    assert_int_equal(vfe_transport_dma_map_async(t, 0x400000, 0x1000, efd, 0, VFE_DMA_READ, on_dma, &gone), 0);
    assert_int_equal(vfe_transport_dma_map_async(t, 0x500000, 0x1000, efd, 0, VFE_DMA_READ, NULL, NULL), -EINVAL);
    assert_int_equal(vfe_transport_dma_map_async(t, 0x500000, 0, efd, 0, VFE_DMA_READ, on_dma, &gone), -EINVAL);
    vfe_transport_cancel_reads(t, &gone);
    srv_wait_queued(s, 7);   /* unmap+map, unmap+map, unmap, unmap+map */
    assert_int_equal(m1.calls + m2.calls + u1.calls, 0);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.outstanding, 7);   /* writes, not reads */
    assert_int_equal(st.reads, 0);
    srv_reply(s, 0, 0);
    srv_reply(s, 0, 0);        /* m1 done */
    srv_reply(s, 0, ENOENT);
    srv_reply(s, 0, EEXIST);   /* m2 refused */
    srv_reply(s, 0, ENOENT);   /* u1: "not mapped" counts as done */
    srv_reply(s, 0, 0);
    srv_reply(s, 0, EIO);      /* the cancelled one refused: nobody hears */
    assert_int_equal(m1.calls + m2.calls + u1.calls, 0);   /* answers wait for a drain */
    drain_all(t);
    assert_int_equal(m1.calls, 1);
    assert_int_equal(m1.err, 0);
    assert_int_equal(m2.calls, 1);
    assert_int_equal(m2.err, -EEXIST);
    assert_int_equal(u1.calls, 1);
    assert_int_equal(u1.err, 0);
    assert_int_equal(gone.calls, 0);
    vfe_transport_posted_state(t, &st, true);
    assert_int_equal(st.error, 0);   /* the callers heard: nothing latched */

    /* the connection breaks with one outstanding: -ENOTCONN from the next drain */
    struct wr lost = {0};
    assert_int_equal(vfe_transport_dma_unmap_async(t, 0x100000, 0x1000, on_dma, &lost), 0);
    srv_wait_queued(s, 1);
    pthread_mutex_lock(&s->mu);
    shutdown(s->c, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
    long end = now_ms() + 2000;
    while (!lost.calls && now_ms() < end) {
        struct pollfd p = { .fd = vfe_transport_watch_fd(t), .events = POLLIN };
        poll(&p, 1, 10);
        vfe_transport_drain(t);
    }
    assert_int_equal(lost.calls, 1);
    assert_int_equal(lost.err, -ENOTCONN);

    assert_int_equal(vfe_transport_set_posted(t, false), 0);
    assert_int_equal(vfe_transport_dma_map_async(t, 0x100000, 0x1000, efd, 0, VFE_DMA_READ, on_dma, &m1),
                     -EOPNOTSUPP);
    close(efd);
    vfe_transport_close(t);
    srv_stop(s);
}

static void test_sync_after_posted(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    uint32_t v = 0xabcd0001;
    struct rd a = {0};
    assert_int_equal(t->ops->region_write(t, 0, 0x300, &v, 4), 0);
    assert_int_equal(vfe_transport_read_async(t, 0, 0x300, 4, on_read, &a), 0);
    v = 0xabcd0002;
    assert_int_equal(t->ops->region_write(t, 0, 0x304, &v, 4), 0);
    srv_wait_queued(s, 3);
    /* a synchronous read absorbs the three replies before its own */
    srv_set(s, &s->auto_reply, true);
    uint32_t got[2];
    assert_int_equal(t->ops->region_read(t, 0, 0x300, got, 8), 0);
    assert_int_equal(got[0], 0xabcd0001);
    assert_int_equal(got[1], 0xabcd0002);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t, &st, false);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(st.reads, 0);
    /* the absorbed read's callback did not run inside the synchronous call: the next drain runs it */
    assert_int_equal(a.calls, 0);
    struct pollfd p = { .fd = vfe_transport_watch_fd(t), .events = POLLIN };
    assert_int_equal(poll(&p, 1, 1000), 1);
    assert_int_equal(vfe_transport_drain(t), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, 0);
    assert_memory_equal(a.data, &got[0], 4);
    /* a posted write alone absorbed by a synchronous call wakes the watcher too (a start waits on it) */
    p.revents = 0;
    assert_int_equal(poll(&p, 1, 0), 0);
    assert_int_equal(t->ops->region_write(t, 0, 0x308, &v, 4), 0);
    assert_int_equal(t->ops->region_read(t, 0, 0x308, got, 4), 0);
    assert_int_equal(got[0], v);
    assert_int_equal(poll(&p, 1, 1000), 1);
    assert_int_equal(vfe_transport_drain(t), 0);
    vfe_transport_close(t);
    srv_stop(s);
}

static void test_adopt_with_outstanding(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct vfe_transport *t = open_posted(s);
    int efd = eventfd(0, EFD_CLOEXEC);
    post_six(t, efd);
    srv_wait_queued(s, 7);
    uint8_t blob[VFE_TRANSPORT_BLOB_MAX];
    size_t len;
    int fds[4];
    unsigned nfds;
    assert_int_equal(vfe_transport_export(t, blob, sizeof(blob), &len, fds, 4, &nfds), 0);
    assert_int_equal(nfds, 1);
    int fd = dup(fds[0]);
    vfe_transport_close(t);   /* the predecessor dies with seven requests unanswered */
    srv_set(s, &s->auto_reply, true);   /* they are answered now: the adopter drops them */
    struct vfe_transport *t2;
    assert_int_equal(vfe_vfio_user_adopt("0000:3b:00.1", blob, len, &fd, 1, &t2), 0);
    uint32_t v;
    assert_int_equal(t2->ops->region_read(t2, 0, 0x100, &v, 4), 0);
    assert_int_equal(v, 0x11223344);
    assert_int_equal(vfe_transport_set_posted(t2, true), 0);
    assert_int_equal(t2->ops->region_write(t2, 0, 0x100, &v, 4), 0);
    drain_all(t2);
    struct vfe_posted_state st;
    vfe_transport_posted_state(t2, &st, false);
    assert_int_equal(st.error, 0);
    close(efd);
    vfe_transport_close(t2);
    srv_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_posted_writes_any_order, teardown),
        cmocka_unit_test_teardown(test_error_latched, teardown),
        cmocka_unit_test_teardown(test_malformed_reply, teardown),
        cmocka_unit_test_teardown(test_server_not_reading, teardown),
        cmocka_unit_test_teardown(test_burst_slow_reader, teardown),
        cmocka_unit_test_teardown(test_cancel_from_callback, teardown),
        cmocka_unit_test_teardown(test_async_read, teardown),
        cmocka_unit_test_teardown(test_dma_completion, teardown),
        cmocka_unit_test_teardown(test_sync_after_posted, teardown),
        cmocka_unit_test_teardown(test_adopt_with_outstanding, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
