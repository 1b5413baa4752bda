/*
 * lib/vhost against a raw front-end in the same process: negotiation, memory
 * table and translations, ring lifecycle seen by a recording glue, the
 * asynchronous GET_VRING_BASE, memory slots, the dirty log, every class of
 * malformed message, one front-end at a time, and snapshot/restore.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/vhost/vhost.h"
#include "lib/vhost/vhost_proto.h"
#include "tests/unit/vhost/vu_peer.h"

#define NEED_REPLY (VHOST_USER_VERSION | VHOST_USER_FLAG_NEED_REPLY)
#define REG 0x200000ull

struct rec {
    int connected, disconnected, mem_calls, starts, stops, resets, log_calls;
    unsigned nregions;
    uint64_t features;
    struct vhost_ring started[VHOST_MAX_RINGS];
    bool pending;
    struct vhost_pending p;
    uint16_t pending_ring;
    bool hold_log;               /* keep log changes waiting (else answered at once) */
    int log_waits;
    struct vhost_pending log_p;
    bool mem_hold;               /* memory table changes wait for the device (VHOST_MEM_WAIT) */
    int mem_waits;
    struct vhost_pending mem_p;
};

static void g_connected(void *c, struct vhost_dev *d) { ((struct rec *)c)->connected++; }
static void g_disconnected(void *c, struct vhost_dev *d) { ((struct rec *)c)->disconnected++; }
static int g_features(void *c, uint64_t f) { ((struct rec *)c)->features = f; return 0; }
static int g_mem(void *c, const struct vhost_region *r, unsigned n)
{
    struct rec *x = c;
    x->mem_calls++;
    x->nregions = n;
    return x->mem_hold ? VHOST_MEM_WAIT : 0;
}
static void g_mem_wait(void *c, struct vhost_pending p)
{
    struct rec *x = c;
    x->mem_waits++;
    x->mem_p = p;
}
static int g_start(void *c, uint16_t i, const struct vhost_ring *r)
{
    struct rec *x = c;
    x->starts++;
    x->started[i] = *r;
    return 0;
}
static void g_stop(void *c, uint16_t i) { ((struct rec *)c)->stops++; }
static void g_base(void *c, uint16_t i, struct vhost_pending p)
{
    struct rec *x = c;
    x->pending = true;
    x->p = p;
    x->pending_ring = i;
}
static int g_log(void *c, int fd, uint64_t off, uint64_t size, uint8_t *base) { ((struct rec *)c)->log_calls++; return 0; }
static void g_reset(void *c) { ((struct rec *)c)->resets++; }
static void g_log_wait(void *c, struct vhost_pending p)
{
    struct rec *x = c;
    x->log_waits++;
    x->log_p = p;
    if (!x->hold_log)
        vhost_log_done(p, 0);
}

static const struct vhost_ops ops = {
    .connected = g_connected, .disconnected = g_disconnected, .features = g_features, .mem_table = g_mem,
    .ring_start = g_start, .ring_stop = g_stop, .get_ring_base = g_base, .log_base = g_log, .reset = g_reset,
    .log_wait = g_log_wait, .mem_wait = g_mem_wait,
};

struct fx {
    struct ev_loop *loop;
    char path[108];
    struct rec rec;
    struct vhost_dev *d;
    struct vu_peer peer;
    int mem[2];
    uint8_t *va[2];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->loop = ev_loop_new(0);
    snprintf(f->path, sizeof(f->path), "/tmp/vfe-vhost-test-%d.sock", getpid());
    struct vhost_cfg cfg = {.path = f->path, .features = 1ull << 32 | 1ull << 15, .queue_pairs = 2, .ops = &ops,
                            .ctx = &f->rec, .name = "test"};
    int err;
    f->d = vhost_dev_create(f->loop, &cfg, &err);
    assert_non_null(f->d);
    assert_int_equal(vu_peer_connect(&f->peer, f->loop, f->path), 0);
    for (int i = 0; i < 2; i++) {
        f->mem[i] = memfd_create("vhost-test", MFD_CLOEXEC);
        assert_int_equal(ftruncate(f->mem[i], REG), 0);
        f->va[i] = mmap(NULL, REG, PROT_READ | PROT_WRITE, MAP_SHARED, f->mem[i], 0);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    vu_peer_close(&f->peer);
    vhost_dev_destroy(f->d);
    for (int i = 0; i < 2; i++) {
        munmap(f->va[i], REG);
        close(f->mem[i]);
    }
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/* regions: gpa 0 and gpa 1 GiB, front-end addresses = our mappings */
static struct vhost_user_mem_table table(struct fx *f)
{
    struct vhost_user_mem_table t = {.nregions = 2};
    t.regions[0] = (struct vhost_user_region){0, REG, (uint64_t)(uintptr_t)f->va[0], 0};
    t.regions[1] = (struct vhost_user_region){1ull << 30, REG, (uint64_t)(uintptr_t)f->va[1], 0};
    return t;
}

static void negotiate(struct fx *f)
{
    struct vu_peer *p = &f->peer;
    long long feat = vu_peer_call_u64(p, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0);
    assert_true(feat & (1ll << VHOST_USER_F_PROTOCOL_FEATURES));
    assert_true(feat & (1ll << VHOST_F_LOG_ALL));
    assert_true(feat & (1ll << 32));
    long long proto = vu_peer_call_u64(p, VHOST_USER_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
    assert_true(proto & (1 << VHOST_USER_PROTOCOL_F_REPLY_ACK));
    assert_true(proto & (1 << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS));
    uint64_t want = proto;
    assert_int_equal(vu_peer_send(p, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &want, 8, NULL, 0), 0);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_GET_QUEUE_NUM, 0, NULL, 0, NULL, 0), 2);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_OWNER, NEED_REPLY, NULL, 0, NULL, 0), 0);
    uint64_t f1 = 1ull << 32 | 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_FEATURES, NEED_REPLY, &f1, 8, NULL, 0), 0);
    assert_int_equal(f->rec.features, f1);
    struct vhost_user_mem_table t = table(f);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 2 * 32, f->mem, 2), 0);
    assert_int_equal(f->rec.nregions, 2);
}

/* Ring i in region 1 at offset i * 64 KiB: size 256. */
static void setup_ring(struct fx *f, uint32_t i, uint16_t base, int kick)
{
    struct vu_peer *p = &f->peer;
    struct vhost_user_vring_state s = {i, 256};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_NUM, NEED_REPLY, &s, 8, NULL, 0), 0);
    s.num = base;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_BASE, NEED_REPLY, &s, 8, NULL, 0), 0);
    uint64_t q = (uint64_t)(uintptr_t)f->va[1] + i * 0x10000;
    struct vhost_user_vring_addr a = {i, 0, q, q + 0x2000, q + 0x1000, 0};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0), 0);
    uint64_t idx = i;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_KICK, NEED_REPLY, &idx, 8, &kick, 1), 0);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_CALL, NEED_REPLY, &idx, 8, &kick, 1), 0);
}

static void test_negotiate_and_memory(void **state)
{
    struct fx *f = *state;
    negotiate(f);
    assert_int_equal(f->rec.connected, 1);
    uint64_t gpa;
    assert_int_equal(vhost_qva_to_gpa(f->d, (uint64_t)(uintptr_t)f->va[1] + 0x1234, 16, &gpa), 0);
    assert_int_equal(gpa, (1ull << 30) + 0x1234);
    assert_int_equal(vhost_qva_to_gpa(f->d, (uint64_t)(uintptr_t)f->va[1] + REG - 8, 16, &gpa), -EFAULT);
    uint8_t *h = vhost_gpa_to_host(f->d, (1ull << 30) + 100, 4);
    assert_non_null(h);
    memcpy(h, "abcd", 4);
    assert_memory_equal(f->va[1] + 100, "abcd", 4);   /* the same memory */
    assert_null(vhost_gpa_to_host(f->d, REG, 1));        /* the hole between regions */
    uint64_t qva;
    assert_int_equal(vhost_gpa_to_qva(f->d, 0x10, 8, &qva), 0);
    assert_int_equal(qva, (uint64_t)(uintptr_t)f->va[0] + 0x10);
}

static void test_rings_and_async_base(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    int kick = eventfd(0, EFD_CLOEXEC);
    setup_ring(f, 0, 5, kick);
    assert_int_equal(f->rec.starts, 0);   /* not enabled yet (PROTOCOL_FEATURES) */
    struct vhost_user_vring_state en = {0, 1};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ENABLE, NEED_REPLY, &en, 8, NULL, 0), 0);
    assert_int_equal(f->rec.starts, 1);
    const struct vhost_ring *r = &f->rec.started[0];
    assert_int_equal(r->num, 256);
    assert_int_equal(r->base, 5);
    assert_int_equal(r->desc, 1ull << 30);
    assert_int_equal(r->avail, (1ull << 30) + 0x1000);
    assert_int_equal(r->used, (1ull << 30) + 0x2000);

    /* a running ring may change its log flag, not its addresses */
    uint64_t q = (uint64_t)(uintptr_t)f->va[1];
    struct vhost_user_vring_addr a = {0, 1, q, q + 0x2000, q + 0x1000, 0x1234};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0), 0);
    a.desc += 0x100;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0), 1);
    assert_int_equal(f->rec.starts, 1);

    /* GET_VRING_BASE waits for the glue; nothing else is read meanwhile */
    en.num = 0;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ENABLE, NEED_REPLY, &en, 8, NULL, 0), 0);
    assert_int_equal(f->rec.stops, 1);
    struct vhost_user_vring_state s = {0, 0};
    assert_int_equal(vu_peer_send(p, VHOST_USER_GET_VRING_BASE, 0, &s, 8, NULL, 0), 0);
    assert_int_equal(vu_peer_send(p, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0), 0);
    struct vhost_user_vring_state rep;
    assert_int_equal(vu_peer_reply(p, VHOST_USER_GET_VRING_BASE, &rep, sizeof(rep), 100), -ETIMEDOUT);
    assert_true(f->rec.pending);
    assert_int_equal(f->rec.pending_ring, 0);
    vhost_ring_base_done(f->rec.p, 77);
    assert_int_equal(vu_peer_reply(p, VHOST_USER_GET_VRING_BASE, &rep, sizeof(rep), 1000), 8);
    assert_int_equal(rep.index, 0);
    assert_int_equal(rep.num, 77);
    uint64_t feat;
    assert_int_equal(vu_peer_reply(p, VHOST_USER_GET_FEATURES, &feat, 8, 1000), 8);
    vhost_ring_base_done(f->rec.p, 1);   /* a second completion is ignored */
    close(kick);
}

static void test_mem_slots_and_log(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    int extra = memfd_create("extra", MFD_CLOEXEC);
    assert_int_equal(ftruncate(extra, REG), 0);
    void *xva = mmap(NULL, REG, PROT_READ | PROT_WRITE, MAP_SHARED, extra, 0);
    struct vhost_user_mem_reg mr = {0, {2ull << 30, REG, (uint64_t)(uintptr_t)xva, 0}};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &mr, sizeof(mr), &extra, 1), 0);
    assert_int_equal(f->rec.nregions, 3);
    /* a multiqueue front-end adds the same region once per queue pair: accepted,
     * the table does not change, and it goes with the last REM_MEM_REG */
    int calls = f->rec.mem_calls;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &mr, sizeof(mr), &extra, 1), 0);
    assert_int_equal(f->rec.mem_calls, calls);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_REM_MEM_REG, NEED_REPLY, &mr, sizeof(mr), NULL, 0), 0);
    assert_int_equal(f->rec.mem_calls, calls);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_REM_MEM_REG, NEED_REPLY, &mr, sizeof(mr), NULL, 0), 0);
    assert_int_equal(f->rec.nregions, 2);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_REM_MEM_REG, NEED_REPLY, &mr, sizeof(mr), NULL, 0), 1);
    /* the same ranges in another file, or an overlapping range, conflict */
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &mr, sizeof(mr), &extra, 1), 0);
    int other = memfd_create("other", MFD_CLOEXEC);
    assert_int_equal(ftruncate(other, REG), 0);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &mr, sizeof(mr), &other, 1), 1);
    close(other);
    struct vhost_user_mem_reg half = mr;
    half.region.size = REG / 2;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &half, sizeof(half), &extra, 1), 1);
    assert_int_equal(f->rec.nregions, 3);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_REM_MEM_REG, NEED_REPLY, &mr, sizeof(mr), NULL, 0), 0);
    assert_int_equal(f->rec.nregions, 2);
    /* SET_MEM_TABLE with the table there is already: nothing changes */
    calls = f->rec.mem_calls;
    struct vhost_user_mem_table t = table(f);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 2 * sizeof(t.regions[0]),
                                      f->mem, 2), 0);
    assert_int_equal(f->rec.mem_calls, calls);

    /* the log must cover 1 GiB + 2 MiB of guest memory: 32832 bytes */
    int logfd = memfd_create("log", MFD_CLOEXEC);
    assert_int_equal(ftruncate(logfd, 65536), 0);
    struct vhost_user_log l = {4096, 0};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_LOG_BASE, 0, &l, sizeof(l), &logfd, 1), 1);
    l.mmap_size = 65536;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_LOG_BASE, 0, &l, sizeof(l), &logfd, 1), 0);
    assert_int_equal(f->rec.log_calls, 1);
    uint64_t size;
    assert_non_null(vhost_log(f->d, &size));
    assert_int_equal(size, 65536);
    l.mmap_size = 1ull << 20;   /* beyond the fd */
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_LOG_BASE, 0, &l, sizeof(l), &logfd, 1), 1);
    /* one region listed twice in one table is refused */
    t.regions[1] = t.regions[0];
    int twice[2] = {f->mem[0], f->mem[0]};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 2 * sizeof(t.regions[0]),
                                      twice, 2), 1);
    munmap(xva, REG);
    close(extra);
    close(logfd);
}

/* Turning logging on (or a new log) is answered only once the glue says the
 * device logs; nothing else is read meanwhile. */
static void test_log_reply_waits_for_device(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    f->rec.hold_log = true;
    int logfd = memfd_create("log", MFD_CLOEXEC);
    assert_int_equal(ftruncate(logfd, 65536), 0);
    struct vhost_user_log l = {65536, 0};
    assert_int_equal(vu_peer_send(p, VHOST_USER_SET_LOG_BASE, 0, &l, sizeof(l), &logfd, 1), 0);
    uint64_t v;
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_LOG_BASE, &v, 8, 100), -ETIMEDOUT);
    assert_int_equal(f->rec.log_waits, 1);
    vhost_log_done(f->rec.log_p, 0);
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_LOG_BASE, &v, 8, 1000), 8);
    assert_int_equal(v, 0);

    uint64_t feat = 1ull << 32 | 1ull << VHOST_USER_F_PROTOCOL_FEATURES | 1ull << VHOST_F_LOG_ALL;
    assert_int_equal(vu_peer_send(p, VHOST_USER_SET_FEATURES, NEED_REPLY, &feat, 8, NULL, 0), 0);
    assert_int_equal(vu_peer_send(p, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0), 0);
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_FEATURES, &v, 8, 100), -ETIMEDOUT);
    assert_int_equal(f->rec.log_waits, 2);
    vhost_log_done(f->rec.p, 0);          /* a token of another request changes nothing */
    vhost_log_done(f->rec.log_p, -EIO);   /* the device could not start: the front-end hears it */
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_FEATURES, &v, 8, 1000), 8);
    assert_int_equal(v, 1);
    assert_int_equal(vu_peer_reply(p, VHOST_USER_GET_FEATURES, &v, 8, 1000), 8);
    vhost_log_done(f->rec.log_p, 0);      /* answered already: ignored */
    /* logging stays on, a feature change that keeps it does not wait again */
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_FEATURES, NEED_REPLY, &feat, 8, NULL, 0), 0);
    feat &= ~(1ull << VHOST_F_LOG_ALL);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_FEATURES, NEED_REPLY, &feat, 8, NULL, 0), 0);
    assert_int_equal(f->rec.log_waits, 2);
    close(logfd);
}

/* A memory table change the device has not let go of the old memory for
 * (VHOST_MEM_WAIT) is answered only at vhost_mem_done; nothing else is read
 * meanwhile; a failure reaches the front-end. */
static void test_mem_reply_waits_for_unmaps(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    f->rec.mem_hold = true;
    struct vhost_user_mem_table t = table(f);
    t.nregions = 1;   /* region 1 goes */
    assert_int_equal(vu_peer_send(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 32, f->mem, 1), 0);
    assert_int_equal(vu_peer_send(p, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0), 0);
    uint64_t v;
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_MEM_TABLE, &v, 8, 100), -ETIMEDOUT);
    assert_int_equal(f->rec.mem_waits, 1);
    assert_int_equal(f->rec.nregions, 1);
    vhost_log_done(f->rec.mem_p, 0);   /* not a log request: changes nothing */
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_MEM_TABLE, &v, 8, 100), -ETIMEDOUT);
    vhost_mem_done(f->rec.mem_p, 0);
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_MEM_TABLE, &v, 8, 1000), 8);
    assert_int_equal(v, 0);
    assert_int_equal(vu_peer_reply(p, VHOST_USER_GET_FEATURES, &v, 8, 1000), 8);
    vhost_mem_done(f->rec.mem_p, -EIO);   /* answered already: ignored */
    /* the device did not confirm: the front-end hears a failure */
    t = table(f);
    assert_int_equal(vu_peer_send(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 64, f->mem, 2), 0);
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_MEM_TABLE, &v, 8, 100), -ETIMEDOUT);
    assert_int_equal(f->rec.mem_waits, 2);
    vhost_mem_done(f->rec.mem_p, -ETIMEDOUT);
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_MEM_TABLE, &v, 8, 1000), 8);
    assert_int_equal(v, 1);
    /* no wait asked: answered at once */
    f->rec.mem_hold = false;
    t.nregions = 1;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 32, f->mem, 1), 0);
    assert_int_equal(f->rec.mem_waits, 2);
}

/* A reply that cannot be sent closes the connection from the loop, never
 * inside the glue's call. */
static void test_broken_reply_closes_later(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    struct vhost_user_vring_state s = {0, 0};
    assert_int_equal(vu_peer_send(p, VHOST_USER_GET_VRING_BASE, 0, &s, 8, NULL, 0), 0);
    vu_peer_spin(p, 20);
    assert_true(f->rec.pending);
    close(p->fd);   /* the front-end goes away without its answer */
    p->fd = -1;
    int before = f->rec.disconnected;
    vhost_ring_base_done(f->rec.p, 5);
    assert_int_equal(f->rec.disconnected, before);
    for (int i = 0; i < 50 && f->rec.disconnected == before; i++)
        ev_run(f->loop, EVRUN_NOWAIT);
    assert_int_equal(f->rec.disconnected, before + 1);
    assert_false(vhost_connected(f->d));
    assert_int_equal(vu_peer_connect(p, f->loop, f->path), 0);
    assert_true(vu_peer_call_u64(p, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0) > 0);
}

/* Bad messages that get a failure reply; the session goes on. */
static void test_bad_replied(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    struct vhost_user_vring_state s = {99, 256};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_NUM, NEED_REPLY, &s, 8, NULL, 0), 1);
    s = (struct vhost_user_vring_state){0, 100};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_NUM, NEED_REPLY, &s, 8, NULL, 0), 1);
    s.num = 65536;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_NUM, NEED_REPLY, &s, 8, NULL, 0), 1);
    s.num = 256;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_NUM, NEED_REPLY, &s, 8, NULL, 0), 0);
    struct vhost_user_vring_addr a = {0, 0, 0x1000, 0x3000, 0x2000, 0};   /* not front-end addresses */
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0), 1);
    uint64_t q = (uint64_t)(uintptr_t)f->va[0] + REG - 0x100;   /* runs off the region */
    a = (struct vhost_user_vring_addr){0, 0, q, q, q, 0};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0), 1);
    struct vhost_user_mem_table t = table(f);
    t.regions[1].gpa = 0x1000;   /* overlaps region 0 */
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 2 * 32, f->mem, 2), 1);
    t = table(f);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 2 * 32, f->mem, 1), 1);
    t.regions[0].mmap_offset = REG;   /* beyond its fd */
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &t, 8 + 2 * 32, f->mem, 2), 1);
    uint64_t bad = 1ull << 40;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_FEATURES, NEED_REPLY, &bad, 8, NULL, 0), 1);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_PROTOCOL_FEATURES, NEED_REPLY, &bad, 8, NULL, 0), 1);
    assert_int_equal(vu_peer_call_u64(p, 99, NEED_REPLY, NULL, 0, NULL, 0), 1);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_IOTLB_MSG, NEED_REPLY, NULL, 0, NULL, 0), 1);
    s = (struct vhost_user_vring_state){0, 2};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ENABLE, NEED_REPLY, &s, 8, NULL, 0), 1);
    uint64_t mtu = 10;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_NET_SET_MTU, NEED_REPLY, &mtu, 8, NULL, 0), 1);
    /* still serving */
    assert_true(vu_peer_call_u64(p, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0) > 0);
}

/* Framing errors close the connection; the socket takes a new front-end. */
static void expect_close(struct fx *f, uint32_t req, uint32_t flags, const void *pl, uint32_t size,
                         const int *fds, unsigned nfds)
{
    vu_peer_send(&f->peer, req, flags, pl, size, fds, nfds);
    assert_true(vu_peer_closed(&f->peer, 1000));
    vu_peer_close(&f->peer);
    assert_int_equal(vu_peer_connect(&f->peer, f->loop, f->path), 0);
    assert_true(vu_peer_call_u64(&f->peer, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0) > 0);
}

static void test_bad_closed(void **state)
{
    struct fx *f = *state;
    uint64_t v = 0;
    int two[2] = {f->mem[0], f->mem[1]};
    expect_close(f, VHOST_USER_GET_FEATURES, 2, NULL, 0, NULL, 0);                 /* version 2 */
    expect_close(f, VHOST_USER_SET_FEATURES, 0, &v, 4, NULL, 0);                   /* short payload */
    expect_close(f, VHOST_USER_SET_VRING_KICK, 0, &v, 8, two, 2);                  /* two fds */
    expect_close(f, VHOST_USER_SET_LOG_BASE, 0, &v, 8, NULL, 0);                   /* no fd, short */
    expect_close(f, VHOST_USER_SET_VRING_NUM, 0, &(struct vhost_user_vring_state){70, 8}, 8, NULL, 0);
    expect_close(f, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY, NULL, 0, NULL, 0);
    expect_close(f, 99, 0, NULL, 0, NULL, 0);                                      /* unknown, no reply asked */
    /* a header announcing a huge payload */
    struct vhost_user_hdr h = {VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 1u << 20};
    assert_int_equal(write(f->peer.fd, &h, sizeof(h)), (ssize_t)sizeof(h));
    assert_true(vu_peer_closed(&f->peer, 1000));
    assert_true(f->rec.disconnected >= 8);
}

/* The dev holds exactly 2 x queue_pairs rings (2 here): every ring request
 * for the first index past them is refused, none reaches a ring, and the
 * accessor has no ring there. */
static void test_ring_bounds(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    const uint32_t past = 4;
    assert_non_null(vhost_get_ring(f->d, 3));
    assert_null(vhost_get_ring(f->d, past));
    assert_null(vhost_get_ring(f->d, VHOST_MAX_RINGS - 1));
    struct vhost_user_vring_state s = {past, 256};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_NUM, NEED_REPLY, &s, 8, NULL, 0), 1);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_BASE, NEED_REPLY, &s, 8, NULL, 0), 1);
    s.num = 1;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ENABLE, NEED_REPLY, &s, 8, NULL, 0), 1);
    uint64_t q = (uint64_t)(uintptr_t)f->va[1];
    struct vhost_user_vring_addr a = {past, 0, q, q + 0x2000, q + 0x1000, 0};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0), 1);
    int efd = eventfd(0, EFD_CLOEXEC);
    uint64_t idx = past;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_KICK, NEED_REPLY, &idx, 8, &efd, 1), 1);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_CALL, NEED_REPLY, &idx, 8, &efd, 1), 1);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ERR, NEED_REPLY, &idx, 8, &efd, 1), 1);
    close(efd);
    assert_int_equal(f->rec.starts, 0);
    /* still serving; the last ring is usable */
    s = (struct vhost_user_vring_state){3, 256};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_NUM, NEED_REPLY, &s, 8, NULL, 0), 0);
    assert_int_equal(vhost_get_ring(f->d, 3)->num, 256);
    /* GET_VRING_BASE cannot be answered with a failure: the connection closes */
    s = (struct vhost_user_vring_state){past, 0};
    vu_peer_send(p, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &s, 8, NULL, 0);
    assert_true(vu_peer_closed(p, 1000));
    assert_false(f->rec.pending);
}

#ifdef __SANITIZE_ADDRESS__
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

/* Heap a provisioned VF's vhost-user side costs: sized by its queue pairs,
 * and the 4 KiB message buffer only once a front-end connects (issue 13:
 * 4096 VFs at <= 64 MB).  Before, every dev was 12.8 KiB whatever its rings. */
static void test_dev_heap_size(void **state)
{
    (void)state;
#ifdef TEST_ASAN
    skip();   /* the sanitizer's allocator does not report through mallinfo2 */
#endif
    struct ev_loop *loop = ev_loop_new(0);
    char path[108];
    snprintf(path, sizeof(path), "/tmp/vfe-vhost-heap-%d.sock", getpid());
    struct rec rec = {0};
    struct vhost_cfg cfg = {.path = path, .features = 1ull << 32, .queue_pairs = 1, .ops = &ops, .ctx = &rec,
                            .name = "heap"};
    int err;
    size_t before = mallinfo2().uordblks;
    struct vhost_dev *d = vhost_dev_create(loop, &cfg, &err);
    assert_non_null(d);
    size_t one_pair = mallinfo2().uordblks - before;
    assert_true(one_pair < 4096);
    struct vu_peer peer;
    assert_int_equal(vu_peer_connect(&peer, loop, path), 0);
    assert_true(vu_peer_call_u64(&peer, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0) > 0);
    assert_true(mallinfo2().uordblks - before >= one_pair + VHOST_USER_MAX_PAYLOAD);
    vu_peer_close(&peer);
    vhost_dev_destroy(d);
    cfg.queue_pairs = VHOST_MAX_QUEUE_PAIRS;
    before = mallinfo2().uordblks;
    d = vhost_dev_create(loop, &cfg, &err);
    assert_non_null(d);
    assert_true(mallinfo2().uordblks - before >= one_pair + (VHOST_MAX_RINGS - 2) * sizeof(struct vhost_ring));
    assert_non_null(vhost_get_ring(d, VHOST_MAX_RINGS - 1));
    vhost_dev_destroy(d);
    ev_loop_destroy(loop);
}

static void test_one_frontend_at_a_time(void **state)
{
    struct fx *f = *state;
    struct vu_peer second;
    assert_int_equal(vu_peer_connect(&second, f->loop, f->path), 0);
    assert_true(vu_peer_closed(&second, 1000));
    vu_peer_close(&second);
    assert_true(vu_peer_call_u64(&f->peer, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0) > 0);
}

static void test_snapshot_restore(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    int kick = eventfd(0, EFD_CLOEXEC);
    setup_ring(f, 1, 9, kick);
    struct vhost_user_vring_state en = {1, 1};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_SET_VRING_ENABLE, NEED_REPLY, &en, 8, NULL, 0), 0);
    /* a second queue pair's device holds region 0 too: the snapshot keeps the count */
    struct vhost_user_mem_reg again = {0, {0, REG, (uint64_t)(uintptr_t)f->va[0], 0}};
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &again, sizeof(again), f->mem, 1), 0);
    uint8_t blob[8192];
    size_t len;
    int fds[64];
    unsigned nfds;
    assert_int_equal(vhost_snapshot(f->d, blob, sizeof(blob), &len, fds, 64, &nfds), 0);
    assert_true(nfds >= 1 + 2 + 2);   /* socket, regions, kick, call */
    int mine[64];
    for (unsigned i = 0; i < nfds; i++)
        mine[i] = dup(fds[i]);

    /* a corrupted blob is refused and the fds stay ours */
    struct rec rec2 = {0};
    char path2[120];
    snprintf(path2, sizeof(path2), "%s.2", f->path);
    struct vhost_cfg cfg = {.path = path2, .features = 1ull << 32 | 1ull << 15, .queue_pairs = 2, .ops = &ops,
                            .ctx = &rec2, .name = "restored"};
    int err;
    uint8_t bad[8192];
    memcpy(bad, blob, len);
    bad[0] ^= 1;
    assert_null(vhost_dev_restore(f->loop, &cfg, bad, len, mine, nfds, &err));
    assert_null(vhost_dev_restore(f->loop, &cfg, blob, len - 1, mine, nfds, &err));
    assert_null(vhost_dev_restore(f->loop, &cfg, blob, len, mine, 1, &err));

    /* a snapshot of another version is refused with its own errno */
    memcpy(bad, blob, len);
    bad[4] = 99;
    assert_null(vhost_dev_restore(f->loop, &cfg, bad, len, mine, nfds, &err));
    assert_int_equal(err, -EPROTONOSUPPORT);

    struct vhost_dev *d2 = vhost_dev_restore(f->loop, &cfg, blob, len, mine, nfds, &err);
    assert_non_null(d2);
    /* restore runs no callback: the glue reads the session from the accessors */
    assert_int_equal(rec2.connected + rec2.starts + rec2.mem_calls, 0);
    assert_true(vhost_connected(d2));
    const struct vhost_region *regs;
    assert_int_equal(vhost_regions(d2, &regs), 2);
    const struct vhost_ring *r1 = vhost_get_ring(d2, 1);
    assert_true(r1->started);
    assert_int_equal(r1->base, 9);
    assert_int_equal(r1->desc, (1ull << 30) + 0x10000);
    /* the old owner dies (no close seen by the front-end), which keeps talking on its socket to the new one */
    vhost_dev_abandon(f->d);
    f->d = d2;
    vhost_dev_resume(d2);
    struct vhost_user_vring_state s = {1, 0};
    assert_int_equal(vu_peer_send(p, VHOST_USER_GET_VRING_BASE, 0, &s, 8, NULL, 0), 0);
    vu_peer_spin(p, 20);
    assert_true(rec2.pending);
    vhost_ring_base_done(rec2.p, 42);
    struct vhost_user_vring_state rep;
    assert_int_equal(vu_peer_reply(p, VHOST_USER_GET_VRING_BASE, &rep, sizeof(rep), 1000), 8);
    assert_int_equal(rep.num, 42);
    /* the restored session still counts both holders of region 0 */
    int calls = rec2.mem_calls;
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_REM_MEM_REG, NEED_REPLY, &again, sizeof(again), NULL, 0), 0);
    assert_int_equal(rec2.mem_calls, calls);
    assert_int_equal(vu_peer_call_u64(p, VHOST_USER_REM_MEM_REG, NEED_REPLY, &again, sizeof(again), NULL, 0), 0);
    assert_int_equal(rec2.mem_calls, calls + 1);
    assert_int_equal(rec2.nregions, 1);
    close(kick);
}

/* A message is taken off the socket only once whole: a header alone stays
 * there (a successor would find the message from its first byte), and the
 * message is handled once its payload arrives. */
static void test_partial_message(void **state)
{
    struct fx *f = *state;
    struct vu_peer *p = &f->peer;
    negotiate(f);
    struct vhost_user_hdr h = {VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION | NEED_REPLY, 8};
    assert_int_equal(write(p->fd, &h, sizeof(h)), (ssize_t)sizeof(h));
    uint64_t ack = 1;
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_VRING_NUM, &ack, sizeof(ack), 30), -ETIMEDOUT);
    assert_int_equal(vhost_get_ring(f->d, 0)->num, 0);   /* nothing handled: the header waits on the socket */
    assert_true(vhost_connected(f->d));
    struct vhost_user_vring_state st = {0, 64};
    assert_int_equal(write(p->fd, &st, sizeof(st)), (ssize_t)sizeof(st));
    assert_int_equal(vu_peer_reply(p, VHOST_USER_SET_VRING_NUM, &ack, sizeof(ack), 1000), 8);
    assert_int_equal(ack, 0);
    assert_int_equal(vhost_get_ring(f->d, 0)->num, 64);
}

/* ---- crash points (HA): a snapshot taken at a persist point, the owner
 * abandoned, the session restored from it ---- */

struct saved {
    uint8_t blob[16384];
    size_t len;
    int fds[VHOST_SNAPSHOT_MAX_FDS];
    unsigned nfds;
    bool taken;
};

static struct {
    int want_state;            /* take the snapshot at this persist state (-1: none) */
    uint32_t want_req;         /* ... while this request is current */
    struct saved s;
    bool reply_by_ha;          /* persist_reply keeps the reply instead of the library sending it */
    uint8_t reply[128];
    size_t reply_len;
    int replies_kept;
} crash;

/* The current message's request, from the snapshot's point of view. */
static void take(struct vhost_dev *d)
{
    struct saved *sv = &crash.s;
    for (unsigned i = 0; i < sv->nfds; i++)
        close(sv->fds[i]);
    int fds[VHOST_SNAPSHOT_MAX_FDS];
    assert_int_equal(vhost_snapshot(d, sv->blob, sizeof(sv->blob), &sv->len, fds, VHOST_SNAPSHOT_MAX_FDS, &sv->nfds), 0);
    for (unsigned i = 0; i < sv->nfds; i++)
        sv->fds[i] = dup(fds[i]);
    sv->taken = true;
}

static int last_state;
static void g_persist(void *c, struct vhost_dev *d)
{
    uint32_t req;
    last_state = vhost_ha_point(d, &req);
    if (!crash.s.taken && last_state == crash.want_state && req == crash.want_req)
        take(d);
}

static bool g_persist_reply(void *c, struct vhost_dev *d, const void *reply, size_t len)
{
    if (!crash.reply_by_ha)
        return false;
    memcpy(crash.reply, reply, len);
    crash.reply_len = len;
    crash.replies_kept++;
    g_persist(c, d);
    return true;
}

static const struct vhost_ops ops_ha = {
    .connected = g_connected, .disconnected = g_disconnected, .features = g_features, .mem_table = g_mem,
    .ring_start = g_start, .ring_stop = g_stop, .get_ring_base = g_base, .log_base = g_log, .reset = g_reset,
    .log_wait = g_log_wait, .persist = g_persist, .persist_reply = g_persist_reply,
};

/* A dev like the fixture's but with the persist hooks, connected to a new peer. */
static struct vhost_dev *ha_dev(struct fx *f, struct rec *r, const char *path, struct vu_peer *peer)
{
    struct vhost_cfg cfg = {.path = path, .features = 1ull << 32 | 1ull << 15, .queue_pairs = 2, .ops = &ops_ha,
                            .ctx = r, .name = "ha"};
    int err;
    struct vhost_dev *d = vhost_dev_create(f->loop, &cfg, &err);
    assert_non_null(d);
    assert_int_equal(vu_peer_connect(peer, f->loop, path), 0);
    return d;
}

static struct vhost_dev *restore_saved(struct fx *f, struct rec *r, const char *path)
{
    struct vhost_cfg cfg = {.path = path, .features = 1ull << 32 | 1ull << 15, .queue_pairs = 2, .ops = &ops_ha,
                            .ctx = r, .name = "restored"};
    int err;
    struct vhost_dev *d = vhost_dev_restore(f->loop, &cfg, crash.s.blob, crash.s.len, crash.s.fds, crash.s.nfds, &err);
    assert_non_null(d);
    crash.s.nfds = 0;   /* the restored dev owns them */
    crash.s.taken = false;
    vhost_dev_resume(d);
    return d;
}

static void crash_reset(int state, uint32_t req)
{
    for (unsigned i = 0; i < crash.s.nfds; i++)
        close(crash.s.fds[i]);
    memset(&crash, 0, sizeof(crash));
    crash.want_state = state;
    crash.want_req = req;
}

/* Killed after depositing RECEIVED: the successor handles the message again;
 * killed while PAUSED: it waits for the glue again and answers once; with
 * persist_reply the reply goes out only through the HA process. */
static void test_crash_points(void **state)
{
    struct fx *f = *state;
    char path[120];
    snprintf(path, sizeof(path), "%s.ha", f->path);
    struct rec r1 = {0}, r2 = {0};
    struct vu_peer peer;
    struct vhost_dev *d = ha_dev(f, &r1, path, &peer);
    uint64_t f1 = 1ull << 32 | 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
    long long proto = vu_peer_call_u64(&peer, VHOST_USER_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0);
    uint64_t want = (uint64_t)proto;
    assert_int_equal(vu_peer_send(&peer, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &want, 8, NULL, 0), 0);
    assert_int_equal(vu_peer_call_u64(&peer, VHOST_USER_SET_FEATURES, NEED_REPLY, &f1, 8, NULL, 0), 0);

    /* 1. RECEIVED: an ADD_MEM_REG read (and deposited with its fd), then the owner dies */
    crash_reset(1, VHOST_USER_ADD_MEM_REG);
    struct vhost_user_mem_reg mr = {0, {0, REG, (uint64_t)(uintptr_t)f->va[0], 0}};
    assert_int_equal(vu_peer_call_u64(&peer, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &mr, sizeof(mr), f->mem, 1), 0);
    assert_true(crash.s.taken);
    vhost_dev_abandon(d);
    d = restore_saved(f, &r2, path);
    /* the successor never saw the region: it adds it from the deposited message and answers */
    const struct vhost_region *regs;
    assert_int_equal(vhost_regions(d, &regs), 0);
    uint64_t ack = 99;
    assert_int_equal(vu_peer_reply(&peer, VHOST_USER_ADD_MEM_REG, &ack, sizeof(ack), 1000), 8);
    assert_int_equal(ack, 0);
    assert_int_equal(vhost_regions(d, &regs), 1);
    assert_int_equal(regs[0].refs, 1);

    /* 2. PAUSED: GET_VRING_BASE waits for the glue; the owner dies; the successor asks its glue again */
    int kick = eventfd(0, EFD_CLOEXEC);
    struct vhost_user_vring_state s = {0, 256};
    assert_int_equal(vu_peer_call_u64(&peer, VHOST_USER_SET_VRING_NUM, NEED_REPLY, &s, 8, NULL, 0), 0);
    uint64_t q = (uint64_t)(uintptr_t)f->va[0];
    struct vhost_user_vring_addr a = {0, 0, q, q + 0x2000, q + 0x1000, 0};
    assert_int_equal(vu_peer_call_u64(&peer, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0), 0);
    uint64_t idx = 0;
    assert_int_equal(vu_peer_call_u64(&peer, VHOST_USER_SET_VRING_KICK, NEED_REPLY, &idx, 8, &kick, 1), 0);
    crash_reset(2, VHOST_USER_GET_VRING_BASE);
    s.num = 0;
    assert_int_equal(vu_peer_send(&peer, VHOST_USER_GET_VRING_BASE, 0, &s, 8, NULL, 0), 0);
    vu_peer_spin(&peer, 50);
    assert_true(r2.pending && crash.s.taken);
    vhost_dev_abandon(d);
    struct rec r3 = {0};
    d = restore_saved(f, &r3, path);
    vu_peer_spin(&peer, 50);
    assert_true(r3.pending);   /* asked again */
    vhost_ring_base_done(r3.p, 77);
    struct vhost_user_vring_state rep;
    assert_int_equal(vu_peer_reply(&peer, VHOST_USER_GET_VRING_BASE, &rep, sizeof(rep), 1000), 8);
    assert_int_equal(rep.num, 77);
    assert_int_equal(vu_peer_reply(&peer, VHOST_USER_GET_VRING_BASE, &rep, sizeof(rep), 100), -ETIMEDOUT);

    /* 3. HANDLED without persist_reply: a successor sends the owed reply */
    crash_reset(3, VHOST_USER_GET_QUEUE_NUM);
    assert_int_equal(vu_peer_call_u64(&peer, VHOST_USER_GET_QUEUE_NUM, 0, NULL, 0, NULL, 0), 2);
    assert_true(crash.s.taken);
    vhost_dev_abandon(d);
    struct rec r4 = {0};
    d = restore_saved(f, &r4, path);
    uint64_t qn = 0;
    assert_int_equal(vu_peer_reply(&peer, VHOST_USER_GET_QUEUE_NUM, &qn, sizeof(qn), 1000), 8);
    assert_int_equal(qn, 2);

    /* 4. persist_reply: the library never writes the reply itself */
    crash_reset(-1, 0);
    crash.reply_by_ha = true;
    assert_int_equal(vu_peer_send(&peer, VHOST_USER_GET_QUEUE_NUM, 0, NULL, 0, NULL, 0), 0);
    assert_int_equal(vu_peer_reply(&peer, VHOST_USER_GET_QUEUE_NUM, &qn, sizeof(qn), 100), -ETIMEDOUT);
    assert_int_equal(crash.replies_kept, 1);
    assert_int_equal(last_state, 0);   /* deposited as done: a successor would not answer again */
    /* the HA process writes it on its copy of the connection */
    int conn = -1;
    int fds[VHOST_SNAPSHOT_MAX_FDS];
    unsigned n;
    uint8_t blob[16384];
    size_t len;
    assert_int_equal(vhost_snapshot(d, blob, sizeof(blob), &len, fds, VHOST_SNAPSHOT_MAX_FDS, &n), 0);
    conn = fds[0];
    assert_int_equal(write(conn, crash.reply, crash.reply_len), (ssize_t)crash.reply_len);
    assert_int_equal(vu_peer_reply(&peer, VHOST_USER_GET_QUEUE_NUM, &qn, sizeof(qn), 1000), 8);
    assert_int_equal(qn, 2);
    crash.reply_by_ha = false;

    vu_peer_close(&peer);
    vhost_dev_destroy(d);
    crash_reset(-1, 0);
    close(kick);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_negotiate_and_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rings_and_async_base, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_slots_and_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_reply_waits_for_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_reply_waits_for_unmaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_reply_closes_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_replied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_frontend_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_bounds, setup, teardown),
        cmocka_unit_test(test_dev_heap_size),
        cmocka_unit_test_setup_teardown(test_snapshot_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_message, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
