/*
 * HA building block against the real vfe-dpu-sim (--pf 0000:3b:00.0 --vfs 3):
 * a child opens PF + VF 1, maps DMA (PF IOVA window, VM domain, plus one map
 * it never recorded), sets MSI-X eventfds and a doorbell ioeventfd, exports
 * everything over a socketpair and is SIGKILLed.  The parent adopts:
 *  1. config reads work, PF IOVA windows and domain maps are there without a
 *     device call, new maps/unmaps round-trip, the unrecorded leftover map is
 *     re-applied, an unmap the device lacks does not fail; the sim counts no
 *     reset and no client disconnect on PF or VF 1;
 *  2. VF 2: the child dies with a round trip in flight (sim SIGSTOPped, so
 *     the reply is still to come); its late reply is dropped by the resync;
 *     before that, bad blobs and fds are refused without touching the stream;
 *  3. VF 3: a predecessor that read half a reply: -EPROTO, fd still the caller's.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/bus/vfio/vfe_dma_apply.h"
#include "drivers/bus/vfio/vfe_dma_domain.h"
#include "drivers/bus/vfio/vfe_pf_iova.h"
#include "drivers/bus/vfio/vfe_transport.h"
#include "lib/sock/vfe_fd_pass.h"
#include "lib/vfio_user/vfu_msg.h"
#include "sim/sim.h"
#include "tests/lib/check.h"
#include "tests/lib/sim_proc.h"

#define PF_BDF  "0000:3b:00.0"
#define VF1_BDF "0000:3b:00.1"
#define VF2_BDF "0000:3b:00.2"
#define VF3_BDF "0000:3b:00.3"

#define GUEST_IOVA    0x10000000ull
#define GUEST_LEN     (1ull << 20)
#define LEFTOVER_IOVA 0x20000000ull
#define LEFTOVER_LEN  0x10000ull
#define ADMIN_LEN     8192ull

enum rec_kind { REC_PF = 1, REC_VF, REC_IOVA, REC_MEM, REC_DONE };

struct rec {
    uint32_t kind, len;
    uint8_t blob[VFE_TRANSPORT_BLOB_MAX + 1024];
    int fds[4];
    unsigned nfds;
};

static int rec_send(int sock, uint32_t kind, const void *blob, size_t len, const int *fds, unsigned nfds)
{
    struct rec r = {.kind = kind, .len = (uint32_t)len};
    if (len > sizeof(r.blob) || nfds > 4)
        return -1;
    memcpy(r.blob, blob, len);
    struct iovec iov = {&r, offsetof(struct rec, blob) + len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    VFE_FDS_CTL(ctl, 4);
    vfe_fds_attach(&mh, ctl.buf, CMSG_SPACE(sizeof(int) * nfds), fds, nfds);
    return sendmsg(sock, &mh, 0) < 0 ? -1 : 0;
}

static int rec_recv(int sock, struct rec *r)
{
    memset(r, 0, sizeof(*r));
    struct iovec iov = {r, offsetof(struct rec, fds)};
    VFE_FDS_CTL(ctl, 4);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
    struct pollfd p = {.fd = sock, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1)
        return -1;
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (n < (ssize_t)offsetof(struct rec, blob))
        return -1;
    r->nfds = vfe_fds_take(&mh, r->fds, 4, NULL);
    return 0;
}

static void rec_close(struct rec *r)
{
    for (unsigned i = 0; i < r->nfds; i++)
        close(r->fds[i]);
    r->nfds = 0;
}

struct counters { long long resets, disconnects, dma_maps; };

static int counters(const struct sim_proc *sp, const char *bdf, struct counters *c)
{
    char req[128], rep[8192];
    snprintf(req, sizeof(req), "{\"cmd\":\"counters\",\"bdf\":\"%s\"}", bdf);
    if (sim_proc_ctl(sp, req, rep, sizeof(rep)) < 0)
        return -1;
    json_t *j = json_loads(rep, 0, NULL);
    if (!j)
        return -1;
    c->resets = json_integer_value(json_object_get(j, "resets"));
    c->disconnects = json_integer_value(json_object_get(j, "client_disconnects"));
    c->dma_maps = json_integer_value(json_object_get(j, "dma_maps"));
    json_decref(j);
    return 0;
}

static int export_to(int sock, uint32_t kind, struct vfe_transport *t)
{
    uint8_t blob[VFE_TRANSPORT_BLOB_MAX];
    size_t len;
    int fds[2];
    unsigned nfds;
    int rc = vfe_transport_export(t, blob, sizeof(blob), &len, fds, 2, &nfds);
    return rc < 0 ? rc : rec_send(sock, kind, blob, len, fds, nfds);
}

/* The predecessor of part 1: sets everything up, exports, waits for SIGKILL. */
static void child_setup(const struct sim_proc *sp, int sock)
{
    struct vfe_transport *pf = NULL, *vf = NULL;
    struct guest_mem gm, adm;
    if (vfe_transport_open(sp->root, PF_BDF, &pf) || vfe_transport_open(sp->root, VF1_BDF, &vf) ||
        guest_mem_create(&gm, GUEST_LEN) || guest_mem_create(&adm, ADMIN_LEN))
        _exit(2);
    struct vfe_pf_iova *s = vfe_pf_iova_create(pf);
    uint64_t iova;
    if (!s || vfe_pf_iova_alloc(s, VFE_PF_IOVA_ADMIN, ADMIN_LEN, &iova) ||
        vfe_pf_iova_map(s, VFE_PF_IOVA_ADMIN, adm.fd, 0, VFE_DMA_READ | VFE_DMA_WRITE) ||
        vfe_pf_iova_alloc(s, 1, 4096, &iova))
        _exit(3);
    struct vfe_dma_domain *d = vfe_dma_domain_join("vm-a", vf);
    if (!d || vfe_dma_domain_map(d, &gm, GUEST_IOVA, GUEST_LEN, gm.fd, 0, VFE_DMA_READ | VFE_DMA_WRITE))
        _exit(4);
    int ev[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    int kick = eventfd(0, EFD_CLOEXEC);
    if (vf->ops->set_irqs(vf, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, ev) ||
        vf->ops->ioeventfd(vf, 0, SIM_BAR0_NOTIFY, 2, 0, kick))
        _exit(5);
    uint8_t blob[1024];
    size_t len;
    if (export_to(sock, REC_PF, pf) || export_to(sock, REC_VF, vf) ||
        vfe_pf_iova_export(s, blob, sizeof(blob), &len) || rec_send(sock, REC_IOVA, blob, len, NULL, 0))
        _exit(6);
    int mem[3] = {gm.fd, adm.fd, kick};
    if (rec_send(sock, REC_MEM, "", 0, mem, 3))
        _exit(7);
    /* the device map of a region whose record the crash will lose */
    if (vf->ops->dma_map(vf, LEFTOVER_IOVA, LEFTOVER_LEN, gm.fd, 0, VFE_DMA_READ))
        _exit(8);
    rec_send(sock, REC_DONE, "", 0, NULL, 0);
    for (;;)
        pause();
}

static pid_t spawn(const struct sim_proc *sp, int *sock, void (*fn)(const struct sim_proc *, int))
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        fn(sp, sv[1]);
        _exit(0);
    }
    close(sv[1]);
    *sock = sv[0];
    return pid;
}

static void kill_child(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
}

static void check_untouched(const struct sim_proc *sp, const char *bdf)
{
    struct counters c = {-1, -1, -1};
    CHECK(counters(sp, bdf, &c) == 0 && c.resets == 0 && c.disconnects == 0,
          "%s: resets %lld client_disconnects %lld", bdf, c.resets, c.disconnects);
}

static void part1(const struct sim_proc *sp)
{
    int sock;
    pid_t pid = spawn(sp, &sock, child_setup);
    struct rec pfr, vfr, iovr, memr, done;
    REQUIRE(pid > 0, out0, "fork");
    bool got = rec_recv(sock, &pfr) == 0 && rec_recv(sock, &vfr) == 0 && rec_recv(sock, &iovr) == 0 &&
               rec_recv(sock, &memr) == 0 && rec_recv(sock, &done) == 0;
    kill_child(pid);
    close(sock);
    REQUIRE(got && done.kind == REC_DONE && memr.nfds == 3, out0, "child set-up (exit in log)");

    struct counters before, after;
    CHECK(counters(sp, VF1_BDF, &before) == 0 && before.dma_maps == 2, "VF 1 maps %lld", before.dma_maps);

    struct vfe_transport *pf = NULL, *vf = NULL;
    int rc = vfe_transport_adopt(sp->root, PF_BDF, pfr.blob, pfr.len, pfr.fds, pfr.nfds, &pf);
    REQUIRE(rc == 0, out1, "adopt PF: %d", rc);
    pfr.nfds = 0;
    rc = vfe_transport_adopt(sp->root, VF1_BDF, vfr.blob, vfr.len, vfr.fds, vfr.nfds, &vf);
    REQUIRE(rc == 0, out1, "adopt VF 1: %d", rc);
    vfr.nfds = 0;
    uint16_t id[2] = {0, 0};
    CHECK(vfe_cfg_read(vf, 0, id, 4) == 0 && id[0] == 0x1af4 && id[1] == 0x1041, "VF ids %04x:%04x", id[0], id[1]);
    CHECK(vfe_cfg_read(pf, 0, id, 2) == 0 && id[0] == 0x1af4, "PF vendor %04x", id[0]);

    /* PF IOVA: windows as recorded, no device call; then real round trips */
    struct counters pfc;
    struct vfe_pf_iova *s = vfe_pf_iova_import(pf, iovr.blob, iovr.len);
    REQUIRE(s, out1, "pf_iova import: %s", strerror(errno));
    uint64_t iova, len;
    bool mapped;
    CHECK(vfe_pf_iova_windows(s) == 2, "windows %u", vfe_pf_iova_windows(s));
    CHECK(vfe_pf_iova_window(s, VFE_PF_IOVA_ADMIN, &iova, &len, &mapped) == 0 && iova == VFE_PF_IOVA_BASE &&
          len == ADMIN_LEN && mapped, "admin window %#llx+%#llx %d", (unsigned long long)iova,
          (unsigned long long)len, mapped);
    CHECK(vfe_pf_iova_window(s, 1, &iova, &len, &mapped) == 0 && iova == VFE_PF_IOVA_BASE + ADMIN_LEN + 4096 &&
          len == 4096 && !mapped, "VF 1 window");
    CHECK(counters(sp, PF_BDF, &pfc) == 0 && pfc.dma_maps == 1, "PF maps after import %lld", pfc.dma_maps);
    CHECK(vfe_pf_iova_map(s, 1, memr.fds[1], 0, VFE_DMA_WRITE) == 0, "map VF 1 log window");
    CHECK(counters(sp, PF_BDF, &pfc) == 0 && pfc.dma_maps == 2, "PF maps %lld", pfc.dma_maps);
    CHECK(vfe_pf_iova_release(s, 1) == 0 && vfe_pf_iova_release(s, VFE_PF_IOVA_ADMIN) == 0, "release");
    CHECK(counters(sp, PF_BDF, &pfc) == 0 && pfc.dma_maps == 0, "PF maps after release %lld", pfc.dma_maps);
    vfe_pf_iova_destroy(s);

    /* the VM's domain: adopted, no replay */
    struct vfe_dma_domain *d = vfe_dma_domain_join_adopted("vm-a", vf);
    REQUIRE(d, out1, "join_adopted");
    int gfd = memr.fds[0];
    CHECK(vfe_dma_domain_adopt_map(d, &gfd, GUEST_IOVA, GUEST_LEN, gfd, 0, VFE_DMA_READ | VFE_DMA_WRITE) == 0,
          "adopt_map");
    CHECK(counters(sp, VF1_BDF, &after) == 0 && after.dma_maps == 2, "VF 1 maps after adopt %lld", after.dma_maps);
    /* the leftover: the device has it, the records do not; the sim refuses it as it stands ... */
    CHECK(vf->ops->dma_map(vf, LEFTOVER_IOVA, LEFTOVER_LEN, gfd, 0, VFE_DMA_READ) == -EEXIST, "sim: identical map");
    /* ... and re-applying it through the domain converges */
    rc = vfe_dma_domain_map(d, &gfd, LEFTOVER_IOVA, LEFTOVER_LEN, gfd, 0, VFE_DMA_READ);
    CHECK(rc == 0, "re-apply leftover map: %d", rc);
    CHECK(counters(sp, VF1_BDF, &after) == 0 && after.dma_maps == 2, "VF 1 maps %lld", after.dma_maps);
    vfe_dma_domain_unmap(d, &gfd, LEFTOVER_IOVA, LEFTOVER_LEN);
    CHECK(counters(sp, VF1_BDF, &after) == 0 && after.dma_maps == 1, "VF 1 maps after unmap %lld", after.dma_maps);
    CHECK(vf->ops->dma_unmap(vf, LEFTOVER_IOVA, LEFTOVER_LEN) == -ENOENT, "sim: unmap of an absent range");
    CHECK(vfe_dma_apply_unmap(vf, LEFTOVER_IOVA, LEFTOVER_LEN) == 0, "apply_unmap of an absent range");
    /* a fresh map and its unmap round-trip */
    CHECK(vfe_dma_domain_map(d, &gfd, 0x30000000, 0x1000, gfd, 0x1000, VFE_DMA_READ) == 0, "fresh map");
    CHECK(counters(sp, VF1_BDF, &after) == 0 && after.dma_maps == 2, "VF 1 maps %lld", after.dma_maps);
    vfe_dma_domain_unmap(d, &gfd, 0x30000000, 0x1000);
    vfe_dma_domain_unmap(d, &gfd, GUEST_IOVA, GUEST_LEN);
    CHECK(counters(sp, VF1_BDF, &after) == 0 && after.dma_maps == 0, "VF 1 maps at the end %lld", after.dma_maps);
    CHECK(vf->ops->ioeventfd(vf, 0, SIM_BAR0_NOTIFY, 2, 0, -1) == 0, "adopted ioeventfd removed");
    vfe_dma_domain_leave(d, vf);

    check_untouched(sp, PF_BDF);
    check_untouched(sp, VF1_BDF);
    vfe_transport_close(vf);
    vf = NULL;
    struct counters c;
    CHECK(counters(sp, VF1_BDF, &c) == 0 && c.disconnects == 1, "the counter counts: %lld", c.disconnects);
out1:
    vfe_transport_close(pf);
    vfe_transport_close(vf);
    rec_close(&pfr);
    rec_close(&vfr);
    rec_close(&memr);
out0:;
}

/* The predecessor of part 2: exports, reads once (config region info now cached),
 * then starts a REGION_READ whose reply it never gets. */
static void child_inflight(const struct sim_proc *sp, int sock)
{
    struct vfe_transport *t = NULL;
    uint16_t vendor;
    if (vfe_transport_open(sp->root, VF2_BDF, &t) || vfe_cfg_read(t, 0, &vendor, 2) || export_to(sock, REC_VF, t))
        _exit(2);
    char go;
    if (read(sock, &go, 1) != 1)
        _exit(3);
    uint8_t cfg[4096];
    t->timeout_ms = 60000;
    vfe_cfg_read(t, 0, cfg, sizeof(cfg));
    _exit(4);
}

static void refusals(const struct sim_proc *sp, const struct rec *r)
{
    struct vfe_transport *t = NULL;
    uint8_t b[sizeof(r->blob)];
    int fd = r->fds[0], two[2] = {fd, fd};
    memset(b, 0x5a, sizeof(b));
    CHECK(vfe_transport_adopt(sp->root, VF2_BDF, b, r->len, &fd, 1, &t) == -EPROTO, "garbage blob");
    CHECK(vfe_transport_adopt(sp->root, VF2_BDF, r->blob, r->len - 1, &fd, 1, &t) == -EPROTO, "short blob");
    memcpy(b, r->blob, r->len);
    b[4]++;   /* version */
    CHECK(vfe_transport_adopt(sp->root, VF2_BDF, b, r->len, &fd, 1, &t) == -EPROTO, "newer version");
    CHECK(vfe_transport_adopt(sp->root, VF2_BDF, r->blob, r->len, &fd, 0, &t) == -EINVAL, "no fd");
    CHECK(vfe_transport_adopt(sp->root, VF2_BDF, r->blob, r->len, two, 2, &t) == -EINVAL, "two fds");
    CHECK(vfe_transport_adopt(sp->root, VF1_BDF, r->blob, r->len, &fd, 1, &t) == -EINVAL, "other function");
    CHECK(vfe_transport_adopt(sp->root, "0000:3b:00.2/..", r->blob, r->len, &fd, 1, &t) == -EINVAL, "bad bdf");
    int mfd = memfd_create("not-a-socket", MFD_CLOEXEC);
    CHECK(vfe_transport_adopt(sp->root, VF2_BDF, r->blob, r->len, &mfd, 1, &t) == -EINVAL, "memfd as socket");
    close(mfd);
    memcpy(b, r->blob, r->len);
    memset(b + 48, 0, 4);   /* xfer_max, after the 16-byte head and the 32-byte bdf */
    CHECK(vfe_transport_adopt(sp->root, VF2_BDF, b, r->len, &fd, 1, &t) == -EINVAL, "xfer_max 0");
    CHECK(t == NULL, "nothing built");
    CHECK(fcntl(fd, F_GETFD) >= 0, "fd still the caller's");
}

static void part2(struct sim_proc *sp)
{
    int sock;
    struct rec r = {0};
    struct vfe_transport *t = NULL;
    pid_t pid = spawn(sp, &sock, child_inflight);
    REQUIRE(pid > 0, out, "fork");
    if (rec_recv(sock, &r) < 0 || r.nfds != 1) {
        CHECK(0, "child export");
        kill_child(pid);
        close(sock);
        goto out;
    }
    kill(sp->pid, SIGSTOP);
    CHECK(write(sock, "g", 1) == 1, "go");
    usleep(300 * 1000);   /* the child's request is in the socket, the sim does not answer */
    kill_child(pid);
    close(sock);
    kill(sp->pid, SIGCONT);
    struct pollfd p = {.fd = r.fds[0], .events = POLLIN};
    CHECK(poll(&p, 1, 5000) == 1, "the dead child's reply arrives");

    refusals(sp, &r);
    int rc = vfe_transport_adopt(sp->root, VF2_BDF, r.blob, r.len, r.fds, 1, &t);
    REQUIRE(rc == 0, out, "adopt after a round trip in flight: %d", rc);
    r.nfds = 0;
    for (int i = 0; i < 3; i++) {
        uint16_t id[2] = {0, 0};
        CHECK(vfe_cfg_read(t, 0, id, 4) == 0 && id[0] == 0x1af4 && id[1] == 0x1041, "ids %04x:%04x", id[0], id[1]);
    }
    check_untouched(sp, VF2_BDF);
out:
    vfe_transport_close(t);
    rec_close(&r);
}

static void part3(const struct sim_proc *sp)
{
    struct vfe_transport *t = NULL, *t2 = NULL;
    REQUIRE(vfe_transport_open(sp->root, VF3_BDF, &t) == 0, out, "open VF 3");
    uint8_t blob[VFE_TRANSPORT_BLOB_MAX];
    size_t len;
    int fds[1];
    unsigned nfds;
    REQUIRE(vfe_transport_export(t, blob, sizeof(blob), &len, fds, 1, &nfds) == 0 && nfds == 1, out, "export");
    int fd = dup(fds[0]);
    struct vfu_region_info req = {.argsz = sizeof(req), .index = VFE_REGION_CONFIG};
    CHECK(vfu_msg_send_simple(fd, 0x4242, VFU_CMD_DEVICE_GET_REGION_INFO, VFU_F_TYPE_CMD, 0, &req, sizeof(req),
                              NULL, 0, 1000) == 0, "raw request");
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 2000) == 1, "reply");
    usleep(100 * 1000);
    uint8_t half[10];
    CHECK(recv(fd, half, sizeof(half), MSG_DONTWAIT) == sizeof(half), "read part of the reply");
    int rc = vfe_transport_adopt(sp->root, VF3_BDF, blob, len, &fd, 1, &t2);
    CHECK(rc == -EPROTO && !t2, "adopt of a torn stream: %d", rc);
    CHECK(fcntl(fd, F_GETFD) >= 0, "fd still the caller's");
    close(fd);
    CHECK(vfe_transport_export(t, blob, 0, &len, fds, 1, &nfds) == -ENOSPC, "export into no room");
out:
    vfe_transport_close(t);
    vfe_transport_close(t2);
}

int main(void)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF_BDF, "--vfs", "3", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    part1(&sp);
    part2(&sp);
    part3(&sp);
    CHECK(sim_proc_alive(&sp), "sim alive at the end");
    int st = sim_proc_stop(&sp);
    CHECK(st == 0, "sim exit status %d", st);
    return check_result("transport_adopt");
}
