/*
 * sim/vfu server on its own, with the sim core replaced by recording stubs:
 * the server runs its libev loop in a child process, the parent is the
 * client (raw messages and the real vfe client).  Stub state lives in shared
 * memory so the parent can check what reached the "core".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "sim/sim.h"
#include "tests/unit/vfio_user/vfu_battery.h"
#include "tests/unit/vfio_user/vfu_raw.h"

/* ---- core stubs (run in the server child) ---- */

struct stub_state {
    int resets[2];
    int ndma[2];
    int irqs_attached[2];
    int ioev_assigned[2];
    uint64_t ioev_off;
    uint32_t ioev_size;
    uint64_t ioev_data;
    int raised;
    uint8_t dma_first_byte;
};
static struct stub_state *st;

static unsigned fidx(struct sim_fn *fn) { return fn->vf_num ? 1 : 0; }

uint64_t sim_bar_size(struct sim_fn *fn, unsigned bar)
{
    return bar == 0 ? SIM_BAR0_SIZE : bar == 1 ? SIM_BAR1_SIZE : 0;
}

int sim_cfg_access(struct sim_fn *fn, uint64_t off, void *buf, size_t len, bool write)
{
    if (off + len > sizeof(fn->cfg))
        abort();   /* the server must have checked */
    if (write)
        memcpy(fn->cfg + off, buf, len);
    else
        memcpy(buf, fn->cfg + off, len);
    return 0;
}

int sim_bar_access(struct sim_fn *fn, unsigned bar, uint64_t off, void *buf, size_t len, bool write)
{
    if (off + len > sim_bar_size(fn, bar))
        abort();
    if (!write)
        memset(buf, 0xee, len);
    return 0;
}

void sim_fn_reset(struct sim_fn *fn) { st->resets[fidx(fn)]++; }
int sim_msix_sync(struct sim_fn *fn) { return 0; }

int sim_dma_map(struct sim_fn *fn, uint64_t iova, uint64_t size, int fd, uint64_t offset, uint32_t prot)
{
    for (unsigned i = 0; i < fn->ndma; i++)
        if (iova < fn->dma[i].iova + fn->dma[i].size && fn->dma[i].iova < iova + size)
            return -EEXIST;
    if (fn->ndma == SIM_MAX_DMA_MAPS)
        return -ENOSPC;
    void *va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
    if (va == MAP_FAILED)
        return -errno;
    st->dma_first_byte = *(uint8_t *)va;
    fn->dma[fn->ndma++] = (struct sim_dma_map){ .iova = iova, .size = size, .va = va, .map_len = size, .prot = prot };
    st->ndma[fidx(fn)] = (int)fn->ndma;
    return 0;
}

int sim_dma_unmap(struct sim_fn *fn, uint64_t iova, uint64_t size)
{
    for (unsigned i = 0; i < fn->ndma; i++) {
        if (fn->dma[i].iova == iova && fn->dma[i].size == size) {
            munmap(fn->dma[i].va, fn->dma[i].map_len);
            fn->dma[i] = fn->dma[--fn->ndma];
            st->ndma[fidx(fn)] = (int)fn->ndma;
            return 0;
        }
    }
    return -ENOENT;
}

void sim_dma_unmap_all(struct sim_fn *fn)
{
    while (fn->ndma)
        sim_dma_unmap(fn, fn->dma[0].iova, fn->dma[0].size);
}

int sim_irq_set(struct sim_fn *fn, uint32_t start, uint32_t count, const int *fds)
{
    if (start + count > SIM_MSIX_VECTORS)
        abort();
    for (uint32_t i = 0; i < count; i++) {
        int *slot = &fn->irq_fds[start + i];
        if (*slot >= 0)
            close(*slot);
        *slot = fds[i] >= 0 ? dup(fds[i]) : -1;
    }
    int n = 0;
    for (unsigned i = 0; i < SIM_MSIX_VECTORS; i++)
        n += fn->irq_fds[i] >= 0;
    st->irqs_attached[fidx(fn)] = n;
    return 0;
}

void sim_irq_raise(struct sim_fn *fn, uint16_t vector)
{
    st->raised++;
    if (vector < SIM_MSIX_VECTORS && fn->irq_fds[vector] >= 0) {
        uint64_t one = 1;
        (void)!write(fn->irq_fds[vector], &one, 8);
    }
}

/* BAR0 memory of the VF; its doorbell pages hold 0x5a so the client's mapping can be checked */
int sim_doorbell_map_fd(struct sim_fn *fn)
{
    static int fd = -1;
    if (fd < 0) {
        fd = memfd_create("bar0", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, SIM_BAR0_SIZE) < 0)
            return -errno;
        uint8_t *m = mmap(NULL, SIM_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        memset(m + SIM_BAR0_NOTIFY, 0x5a, SIM_BAR0_SIZE - SIM_BAR0_NOTIFY);
        munmap(m, SIM_BAR0_SIZE);
    }
    return fd;
}

int sim_ioeventfd(struct sim_fn *fn, uint32_t region, uint64_t off, uint32_t size, uint64_t data, int fd)
{
    if (region != 0 || off < SIM_BAR0_NOTIFY || (off - SIM_BAR0_NOTIFY) % SIM_NOTIFY_MULT)
        return -EINVAL;
    st->ioev_off = off;
    st->ioev_size = size;
    st->ioev_data = data;
    st->ioev_assigned[fidx(fn)] += fd >= 0 ? 1 : -1;
    if (fd >= 0) {   /* signal it once, as a kick would */
        uint64_t one = 1;
        (void)!write(fd, &one, 8);
    }
    return 0;
}

/* ---- test harness ---- */

static char dir[64];
static char paths[2][128];
static pid_t child;

static void run_server(void)
{
    static struct sim s;
    static struct sim_fn fns[2];
    s.loop = ev_default_loop(0);
    for (unsigned i = 0; i < 2; i++) {
        struct sim_fn *fn = &fns[i];
        fn->sim = &s;
        fn->vf_num = i;
        fn->is_pf = i == 0;
        snprintf(fn->bdf, sizeof(fn->bdf), "0000:3b:00.%u", i);
        snprintf(fn->sock_path, sizeof(fn->sock_path), "%s", paths[i]);
        const uint8_t id[4] = { 0xf4, 0x1a, 0x41, 0x10 };
        memcpy(fn->cfg, id, 4);
        for (unsigned v = 0; v < SIM_MSIX_VECTORS; v++)
            fn->irq_fds[v] = -1;
        if (sim_vfu_listen(fn) < 0)
            _exit(2);
    }
    /* a path too long for sun_path still works */
    ev_run(s.loop, 0);
    _exit(0);
}

static int setup(void **state)
{
    (void)state;
    st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    snprintf(dir, sizeof(dir), "/tmp/vfu-srv-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(paths[0], sizeof(paths[0]), "%s/pf.sock", dir);
    snprintf(paths[1], sizeof(paths[1]), "%s/vf.sock", dir);
    child = fork();
    if (child == 0)
        run_server();
    for (int i = 0; i < 200; i++) {
        struct stat sb;
        if (stat(paths[0], &sb) == 0 && stat(paths[1], &sb) == 0)
            return 0;
        usleep(10000);
    }
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    unlink(paths[0]);
    unlink(paths[1]);
    rmdir(dir);
    return 0;
}

static bool alive(void)
{
    return waitpid(child, NULL, WNOHANG) == 0;
}

/* Wait (bounded) for the server child to notice a disconnect. */
static void wait_for(int *p, int want)
{
    for (int i = 0; i < 200 && __atomic_load_n(p, __ATOMIC_SEQ_CST) != want; i++)
        usleep(5000);
    assert_int_equal(*p, want);
}

/* A VF's BAR0 info: without room for the capability the reply says how much
 * it needs and carries no fd; with room, the sparse area and the fd. */
static void test_region_info_caps(void **state)
{
    (void)state;
    int s = raw_connect_version(paths[1]);
    assert_true(s >= 0);
    struct vfu_region_info ri = {.argsz = sizeof(ri), .index = 0};
    struct vfu_msg m;
    assert_int_equal(raw_call(s, VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0, &m, 2000), 0);
    struct vfu_region_info got;
    assert_int_equal(m.len, sizeof(got));
    memcpy(&got, m.payload, sizeof(got));
    assert_int_equal(got.argsz, sizeof(got) + 32);
    assert_int_equal(m.nfds, 0);
    assert_false(got.flags & VFIO_REGION_INFO_FLAG_MMAP);
    vfu_msg_free(&m);

    ri.argsz = sizeof(ri) + 32;
    assert_int_equal(raw_call(s, VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0, &m, 2000), 0);
    assert_int_equal(m.len, sizeof(got) + 32);
    assert_int_equal(m.nfds, 1);
    memcpy(&got, m.payload, sizeof(got));
    assert_true(got.flags & VFIO_REGION_INFO_FLAG_MMAP);
    struct vfio_region_info_cap_sparse_mmap sm;
    struct vfio_region_sparse_mmap_area a;
    memcpy(&sm, m.payload + got.cap_offset, sizeof(sm));
    memcpy(&a, m.payload + got.cap_offset + sizeof(sm), sizeof(a));
    assert_int_equal(sm.header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
    assert_int_equal(sm.nr_areas, 1);
    assert_int_equal(a.offset, SIM_BAR0_NOTIFY);
    assert_int_equal(a.offset + a.size, SIM_BAR0_SIZE);
    close(m.fds[0]);
    vfu_msg_free(&m);

    /* the PF's BAR0 is not mappable */
    int p = raw_connect_version(paths[0]);
    ri.argsz = 256;
    assert_int_equal(raw_call(p, VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0, &m, 2000), 0);
    assert_int_equal(m.len, sizeof(got));
    assert_int_equal(m.nfds, 0);
    vfu_msg_free(&m);
    close(p);
    close(s);
    assert_true(alive());
}

static void test_bad_input(void **state)
{
    (void)state;
    assert_int_equal(vfu_bad_input_battery(paths[0], SIM_MSIX_VECTORS), 0);
    assert_true(alive());
    assert_int_equal(vfu_check_fresh_client(paths[1], 0x1af4, 0x1041), 0);
    assert_int_equal(vfu_check_fresh_client(paths[0], 0x1af4, 0x1041), 0);
    /* the other function was never disturbed */
    assert_int_equal(st->ndma[1], 0);
    assert_int_equal(st->ndma[0], 0);
    assert_true(alive());
}

static void test_client_against_server(void **state)
{
    (void)state;
    struct vfe_transport *t;
    assert_int_equal(vfe_vfio_user_open(paths[1], "0000:3b:00.1", &t), 0);
    int resets = st->resets[1];

    uint16_t id[2];
    assert_int_equal(vfe_cfg_read(t, 0, id, 4), 0);
    assert_int_equal(id[0], 0x1af4);
    assert_int_equal(id[1], 0x1041);
    const uint8_t w[2] = { 0x06, 0x00 };
    assert_int_equal(vfe_cfg_write(t, 4, w, 2), 0);
    uint8_t back[2];
    assert_int_equal(vfe_cfg_read(t, 4, back, 2), 0);
    assert_memory_equal(back, w, 2);

    struct vfe_region_info ri;
    assert_int_equal(t->ops->region_info(t, 0, &ri), 0);
    assert_int_equal(ri.size, SIM_BAR0_SIZE);
    assert_int_equal(ri.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                                   VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS);
    /* the doorbell pages are mappable, the registers before them are not */
    int dbfd;
    uint64_t dboff;
    assert_int_equal(t->ops->region_mmap_fd(t, 0, SIM_BAR0_NOTIFY + 4096, 4096, &dbfd, &dboff), 0);
    uint8_t *db = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, dbfd, (off_t)dboff);
    assert_true(db != MAP_FAILED);
    assert_int_equal(db[0], 0x5a);
    munmap(db, 4096);
    assert_int_equal(t->ops->region_mmap_fd(t, 0, 0, 4096, &dbfd, &dboff), -ENOENT);
    assert_int_equal(t->ops->region_mmap_fd(t, 0, SIM_BAR0_SIZE - 4096, 8192, &dbfd, &dboff), -ENOENT);
    assert_int_equal(t->ops->region_mmap_fd(t, 1, 0, 4096, &dbfd, &dboff), -ENOENT);
    assert_int_equal(t->ops->region_info(t, 1, &ri), 0);
    assert_int_equal(ri.size, SIM_BAR1_SIZE);
    assert_int_equal(t->ops->region_info(t, 2, &ri), 0);
    assert_int_equal(ri.size, 0);
    assert_int_equal(ri.flags, 0);
    assert_int_equal(t->ops->region_info(t, VFE_REGION_CONFIG, &ri), 0);
    assert_int_equal(ri.size, 4096);

    /* a BAR read bigger than one message's worth is split and reassembled */
    uint8_t *bar = malloc(SIM_BAR0_SIZE);
    assert_int_equal(t->ops->region_read(t, 0, 0, bar, SIM_BAR0_SIZE), 0);
    for (size_t i = 0; i < SIM_BAR0_SIZE; i += 4093)
        assert_int_equal(bar[i], 0xee);
    free(bar);

    int mfd = memfd_create("g", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 0x4000), 0);
    assert_int_equal(pwrite(mfd, "\x77", 1, 0x1000), 1);
    assert_int_equal(t->ops->dma_map(t, 0x40000000, 0x2000, mfd, 0x1000, VFE_DMA_READ | VFE_DMA_WRITE), 0);
    assert_int_equal(st->ndma[1], 1);
    assert_int_equal(st->dma_first_byte, 0x77);
    assert_int_equal(t->ops->dma_map(t, 0x40001000, 0x1000, mfd, 0, VFE_DMA_READ), -EEXIST);

    int e[3] = { eventfd(0, EFD_CLOEXEC), -1, eventfd(0, EFD_CLOEXEC) };
    assert_int_equal(t->ops->set_irqs(t, VFIO_PCI_MSIX_IRQ_INDEX, 1, 3, e), 0);
    assert_int_equal(st->irqs_attached[1], 2);

    int kick = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(t->ops->ioeventfd(t, 0, SIM_BAR0_NOTIFY + 2 * SIM_NOTIFY_MULT, 2, 2, kick), 0);
    assert_int_equal(st->ioev_off, SIM_BAR0_NOTIFY + 2 * SIM_NOTIFY_MULT);
    assert_int_equal(st->ioev_size, 2);
    assert_int_equal(st->ioev_data, 2);
    uint64_t v = 0;
    assert_int_equal(read(kick, &v, 8), 8);   /* the server got the very same eventfd */
    assert_int_equal(v, 1);
    assert_int_equal(t->ops->ioeventfd(t, 0, 0x10, 2, 0, kick), -EINVAL);
    assert_int_equal(t->ops->ioeventfd(t, 0, SIM_BAR0_NOTIFY + 2 * SIM_NOTIFY_MULT, 2, 2, -1), 0);
    assert_int_equal(st->ioev_assigned[1], 0);

    assert_int_equal(t->ops->reset(t), 0);
    assert_int_equal(st->resets[1], resets + 1);
    assert_int_equal(t->ops->dma_unmap(t, 0x40000000, 0x2000), 0);
    assert_int_equal(st->ndma[1], 0);
    assert_int_equal(t->ops->dma_map(t, 0x40000000, 0x2000, mfd, 0x1000, VFE_DMA_READ), 0);

    /* a kick left registered (and one registered twice) is removed on disconnect */
    assert_int_equal(t->ops->ioeventfd(t, 0, SIM_BAR0_NOTIFY + 3 * SIM_NOTIFY_MULT, 2, 3, kick), 0);
    assert_int_equal(t->ops->ioeventfd(t, 0, SIM_BAR0_NOTIFY + 4 * SIM_NOTIFY_MULT, 2, 4, kick), 0);
    assert_int_equal(st->ioev_assigned[1], 2);

    /* disconnect: the server resets, unmaps, drops kicks and detaches */
    vfe_transport_close(t);
    wait_for(&st->ioev_assigned[1], 0);
    wait_for(&st->ndma[1], 0);
    wait_for(&st->irqs_attached[1], 0);
    wait_for(&st->resets[1], resets + 2);
    close(e[0]);
    close(e[2]);
    close(kick);
    close(mfd);
    assert_true(alive());
}

/* The payload size a command expects (REGION_WRITE: head plus `extra` data bytes). */
static size_t exact_len(uint16_t cmd, size_t extra)
{
    switch (cmd) {
    case VFU_CMD_DMA_MAP: return sizeof(struct vfu_dma_map);
    case VFU_CMD_DMA_UNMAP: return sizeof(struct vfu_dma_unmap);
    case VFU_CMD_DEVICE_GET_INFO: return sizeof(struct vfu_device_info);
    case VFU_CMD_DEVICE_GET_REGION_INFO: return sizeof(struct vfu_region_info);
    case VFU_CMD_DEVICE_GET_IRQ_INFO: return sizeof(struct vfu_irq_info);
    case VFU_CMD_DEVICE_SET_IRQS: return sizeof(struct vfu_irq_set);
    case VFU_CMD_REGION_READ: return sizeof(struct vfu_region_access);
    case VFU_CMD_REGION_WRITE: return sizeof(struct vfu_region_access) + extra;
    case VFU_CMD_VFE_IOEVENTFD: return sizeof(struct vfu_vfe_ioeventfd);
    default: return 0;
    }
}

/* Random payloads with valid framing: every one gets a reply, nothing reaches
 * the stubs out of range (they abort), the connection survives. */
static void test_random_payloads(void **state)
{
    (void)state;
    int s = raw_connect_version(paths[0]);
    assert_true(s >= 0);
    int mfd = memfd_create("r", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 0x10000), 0);
    int ev = eventfd(0, EFD_CLOEXEC);
    const uint16_t cmds[] = { 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, VFU_CMD_VFE_IOEVENTFD };
    unsigned seed = 12345;
    for (int i = 0; i < 3000; i++) {
        uint8_t p[48];
        uint16_t cmd = cmds[rand_r(&seed) % (sizeof(cmds) / sizeof(cmds[0]))];
        size_t len = (size_t)(rand_r(&seed) % (sizeof(p) + 1));
        if (rand_r(&seed) % 4)
            len = exact_len(cmd, (size_t)(rand_r(&seed) % 8));
        for (size_t k = 0; k < len; k++)
            p[k] = (uint8_t)rand_r(&seed);
        /* bias the fields that matter towards plausible values */
        if (len >= 16 && rand_r(&seed) % 2) {
            uint32_t small = (uint32_t)(rand_r(&seed) % 40);
            memcpy(p + 8 + 4 * (rand_r(&seed) % 2), &small, 4);
        }
        if (len >= 4 && rand_r(&seed) % 2) {
            uint32_t argsz = (uint32_t)len;
            memcpy(p, &argsz, 4);
        }
        if (cmd == VFU_CMD_REGION_WRITE && len >= 16 && rand_r(&seed) % 2) {
            uint32_t count = (uint32_t)(len - 16), region = rand_r(&seed) % 2 ? 7 : rand_r(&seed) % 3;
            uint64_t off = (uint64_t)(rand_r(&seed) % 8192);
            memcpy(p, &off, 8);
            memcpy(p + 8, &region, 4);
            memcpy(p + 12, &count, 4);
        }
        int fds[2] = { rand_r(&seed) % 2 ? mfd : ev, ev };
        unsigned nfds = rand_r(&seed) % 2 ? 0 : (unsigned)(rand_r(&seed) % 3);
        int rc = raw_status(s, cmd, p, len, fds, nfds);
        if (rc < 0)
            fail_msg("iteration %d cmd %u len %zu nfds %u: %d", i, cmd, len, nfds, rc);
    }
    close(s);
    close(mfd);
    close(ev);
    assert_true(alive());
    assert_int_equal(vfu_check_fresh_client(paths[0], 0x1af4, 0x1041), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_region_info_caps),
        cmocka_unit_test(test_client_against_server),
        cmocka_unit_test(test_random_payloads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
