/*
 * vfe-bench-sim: frames per second VF1 -> VF2 through vfe-dpu-sim's switch.
 *
 * Starts a sim (one PF, two VFs), brings both VFs up with the project's own
 * virtio-pci driver and split-ring code over vfio-user, then for each frame
 * size keeps VF1's TX ring full of frames addressed to VF2's MAC and VF2's RX
 * ring full of buffers, for a few seconds.  Both rings are polled (no
 * interrupts); TX kicks go through an ioeventfd.  Prints one JSON object.
 * Not a test: the numbers depend on the machine.
 *
 *   vfe-bench-sim [--seconds N] [--sizes 64,1500]
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "drivers/bus/vfio/vfe_transport.h"
#include "drivers/common/virtio/vfe_virtio_pci.h"
#include "drivers/common/virtio/vfe_vring.h"
#include "tests/lib/sim_proc.h"

#define PF_BDF   "0000:3b:00.0"
#define QSIZE    256
#define BUF_SIZE 2048
#define HDR_LEN  12
#define MEM_SIZE (8u << 20)
#define MEM_IOVA 0x10000000ull
#define MAX_SIZES 8

struct bvf {
    const char *bdf;
    struct vfe_transport *t;
    struct vfe_virtio_pci vp;
    struct guest_mem gm;
    struct vfe_vring rx, tx;
    int kick_fd[2];          /* ioeventfd per queue, -1: doorbell region write */
    uint8_t mac[6];
    uint64_t bufs_iova;      /* QSIZE rx buffers then QSIZE tx buffers */
    uint8_t *bufs;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "vfe-bench-sim: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
    return rc < 0 ? rc : -rc;
}

static void kick(struct bvf *v, unsigned q)
{
    uint64_t one = 1;
    if (v->kick_fd[q] >= 0) {
        if (write(v->kick_fd[q], &one, sizeof(one)) != sizeof(one))
            perror("kick");
    } else {
        vfe_vpci_queue_notify(&v->vp, (uint16_t)q);
    }
}

static int setup_queue(struct bvf *v, unsigned q, struct vfe_vring *vr, size_t ring_off)
{
    int rc = vfe_vring_init(vr, QSIZE, (uint8_t *)v->gm.va + ring_off, MEM_IOVA + ring_off, false);
    if (rc < 0)
        return fail("vring init", rc);
    rc = vfe_vpci_queue_setup(&v->vp, (uint16_t)q, QSIZE, vr->desc_iova, vr->avail_iova, vr->used_iova,
                              VFE_VIRTIO_MSI_NO_VECTOR);
    if (rc < 0)
        return fail("queue setup", rc);
    rc = vfe_vpci_queue_enable(&v->vp, (uint16_t)q);
    if (rc < 0)
        return fail("queue enable", rc);
    uint32_t region;
    uint64_t off;
    v->kick_fd[q] = -1;
    if (vfe_vpci_queue_notify_addr(&v->vp, (uint16_t)q, &region, &off) == 0) {
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd >= 0 && v->t->ops->ioeventfd &&
            v->t->ops->ioeventfd(v->t, region, off, 2, q, efd) == 0)
            v->kick_fd[q] = efd;
        else if (efd >= 0)
            close(efd);
    }
    return 0;
}

static int vf_up(struct sim_proc *sp, struct bvf *v)
{
    int rc = vfe_transport_open(sp->root, v->bdf, &v->t);
    if (rc < 0)
        return fail("transport open", rc);
    if ((rc = vfe_vpci_init(&v->vp, v->t)) < 0)
        return fail("virtio-pci init", rc);
    if ((rc = vfe_vpci_reset_wait(&v->vp, 2000)) < 0)
        return fail("reset", rc);
    vfe_vpci_add_status(&v->vp, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    uint64_t dev = 0;
    if ((rc = vfe_vpci_get_features(&v->vp, &dev)) < 0)
        return fail("features", rc);
    uint64_t want = (1ull << VFE_VIRTIO_F_VERSION_1) | (1ull << VFE_VIRTIO_F_ACCESS_PLATFORM) |
                    (1ull << VIRTIO_NET_F_MAC);
    if ((rc = vfe_vpci_negotiate(&v->vp, dev & want)) < 0)
        return fail("negotiate", rc);
    if ((rc = vfe_vpci_read_device_cfg(&v->vp, 0, v->mac, 6)) < 0)
        return fail("read mac", rc);

    if (guest_mem_create(&v->gm, MEM_SIZE) < 0)
        return fail("guest memory", -ENOMEM);
    rc = v->t->ops->dma_map(v->t, MEM_IOVA, MEM_SIZE, v->gm.fd, 0, VFE_DMA_READ | VFE_DMA_WRITE);
    if (rc < 0)
        return fail("dma map", rc);
    size_t rs = (vfe_vring_mem_size(QSIZE) + 4095) & ~(size_t)4095;
    if (setup_queue(v, 0, &v->rx, 0) < 0 || setup_queue(v, 1, &v->tx, rs) < 0)
        return -1;
    v->bufs_iova = MEM_IOVA + 2 * rs;
    v->bufs = (uint8_t *)v->gm.va + 2 * rs;
    if ((rc = vfe_vpci_add_status(&v->vp, VIRTIO_CONFIG_S_DRIVER_OK)) < 0)
        return fail("driver ok", rc);
    return 0;
}

static void vf_down(struct bvf *v)
{
    if (v->t) {
        vfe_vpci_reset(&v->vp);
        vfe_transport_close(v->t);
    }
    for (int q = 0; q < 2; q++)
        if (v->kick_fd[q] > 0)
            close(v->kick_fd[q]);
    if (v->gm.va)
        guest_mem_destroy(&v->gm);
}

static int rx_add(struct bvf *v, uintptr_t i)
{
    struct vfe_sg sg = { v->bufs_iova + i * BUF_SIZE, BUF_SIZE };
    return vfe_vring_add(&v->rx, &sg, 0, 1, (void *)(i + 1));
}

static int tx_add(struct bvf *v, uintptr_t i, uint32_t frame_len)
{
    struct vfe_sg sg = { v->bufs_iova + (QSIZE + i) * BUF_SIZE, HDR_LEN + frame_len };
    return vfe_vring_add(&v->tx, &sg, 1, 0, (void *)(i + 1));
}

struct result {
    unsigned size;
    double secs;
    uint64_t sent, received;
};

static void run_size(struct bvf *a, struct bvf *b, unsigned size, double secs, struct result *r)
{
    for (uintptr_t i = 0; i < QSIZE; i++) {
        uint8_t *p = a->bufs + (QSIZE + i) * BUF_SIZE;
        memset(p, 0, HDR_LEN);
        memcpy(p + HDR_LEN, b->mac, 6);
        memcpy(p + HDR_LEN + 6, a->mac, 6);
        p[HDR_LEN + 12] = 0x88;   /* local experimental ethertype */
        p[HDR_LEN + 13] = 0xb5;
        for (unsigned k = 14; k < size; k++)
            p[HDR_LEN + k] = (uint8_t)(k + i);
    }
    /* a free list of tx buffers: the cookies coming back */
    uintptr_t free_tx[QSIZE];
    unsigned nfree = 0;
    for (uintptr_t i = 0; i < QSIZE; i++)
        free_tx[nfree++] = i;
    static bool rx_filled;   /* rx buffers go back into the ring as they complete */
    if (!rx_filled) {
        for (uintptr_t i = 0; i < QSIZE && rx_add(b, i) == 0; i++)
            ;
        rx_filled = true;
        if (vfe_vring_publish(&b->rx))
            kick(b, 0);
    }

    memset(r, 0, sizeof(*r));
    r->size = size;
    double t0 = now_s(), end = t0 + secs;
    unsigned iter = 0;
    for (;;) {
        if ((++iter & 63) == 0 && now_s() >= end)
            break;
        uint32_t len;
        void *c;
        while ((c = vfe_vring_get_used(&a->tx, &len)) != NULL)
            free_tx[nfree++] = (uintptr_t)c - 1;
        unsigned added = 0;
        while (nfree && tx_add(a, free_tx[nfree - 1], size) == 0) {
            nfree--;
            added++;
        }
        r->sent += added;
        if (added && vfe_vring_publish(&a->tx))
            kick(a, 1);
        unsigned got = 0;
        while ((c = vfe_vring_get_used(&b->rx, &len)) != NULL) {
            if (len == HDR_LEN + size)
                r->received++;
            rx_add(b, (uintptr_t)c - 1);
            got++;
        }
        if (got && vfe_vring_publish(&b->rx))
            kick(b, 0);
    }
    /* let the last frames drain */
    double drain_end = now_s() + 0.2;
    while (now_s() < drain_end) {
        uint32_t len;
        void *c;
        while ((c = vfe_vring_get_used(&b->rx, &len)) != NULL) {
            if (len == HDR_LEN + size)
                r->received++;
            rx_add(b, (uintptr_t)c - 1);
        }
        if (vfe_vring_publish(&b->rx))
            kick(b, 0);
        while ((c = vfe_vring_get_used(&a->tx, &len)) != NULL)
            ;
    }
    r->secs = now_s() - t0 - 0.2;
}

static void ctl_counters(struct sim_proc *sp, const char *bdf, char *out, size_t len)
{
    char req[128];
    snprintf(req, sizeof(req), "{\"cmd\":\"counters\",\"bdf\":\"%s\"}", bdf);
    if (sim_proc_ctl(sp, req, out, len) < 0)
        snprintf(out, len, "null");
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = 0;
}

int main(int argc, char **argv)
{
    double secs = 3;
    unsigned sizes[MAX_SIZES] = { 64, 1500 }, nsizes = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            secs = atof(argv[++i]);
            if (secs <= 0 || secs > 60)
                secs = 3;
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *tok = strtok(argv[++i], ","); tok && nsizes < MAX_SIZES; tok = strtok(NULL, ",")) {
                unsigned s = (unsigned)atoi(tok);
                if (s >= 60 && s <= BUF_SIZE - HDR_LEN)
                    sizes[nsizes++] = s;
            }
        } else {
            fprintf(stderr, "usage: %s [--seconds N] [--sizes 64,1500]\n", argv[0]);
            return 2;
        }
    }
    if (!nsizes)
        return 2;

    struct sim_proc sp;
    const char *args[] = { "--pf", PF_BDF, "--vfs", "2", "--qpairs", "1", "--log-level", "err", NULL };
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    struct bvf a = { .bdf = "0000:3b:00.1", .kick_fd = { -1, -1 } };
    struct bvf b = { .bdf = "0000:3b:00.2", .kick_fd = { -1, -1 } };
    int rc = 1;
    struct result res[MAX_SIZES];
    if (vf_up(&sp, &a) < 0 || vf_up(&sp, &b) < 0)
        goto out;
    for (unsigned i = 0; i < nsizes; i++)
        run_size(&a, &b, sizes[i], secs, &res[i]);

    char ca[1024], cb[1024];
    ctl_counters(&sp, a.bdf, ca, sizeof(ca));
    ctl_counters(&sp, b.bdf, cb, sizeof(cb));
    printf("{\"bench\":\"sim_datapath\",\"path\":\"VF1->VF2\",\"seconds_per_size\":%.1f,"
           "\"ioeventfd\":%s,\"results\":[", secs, a.kick_fd[1] >= 0 ? "true" : "false");
    for (unsigned i = 0; i < nsizes; i++) {
        double s = res[i].secs > 0 ? res[i].secs : 1;
        printf("%s{\"frame_bytes\":%u,\"tx_frames\":%" PRIu64 ",\"rx_frames\":%" PRIu64
               ",\"rx_fps\":%.0f,\"rx_mbit_s\":%.1f,\"loss\":%.4f}",
               i ? "," : "", res[i].size, res[i].sent, res[i].received, res[i].received / s,
               res[i].received * res[i].size * 8.0 / s / 1e6,
               res[i].sent ? 1.0 - (double)res[i].received / (double)res[i].sent : 0.0);
    }
    printf("],\"sim_counters\":{\"vf1\":%s,\"vf2\":%s}}\n", ca, cb);
    rc = 0;
out:
    vf_down(&a);
    vf_down(&b);
    sim_proc_stop(&sp);
    return rc;
}
