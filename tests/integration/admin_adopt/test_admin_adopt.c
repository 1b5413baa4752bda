/*
 * HA: a PF's running admin queue, virtio-pci state and migration dialect are
 * taken over by a new owner without resetting or re-programming the PF, once
 * per command dialect, against the sim.  The transport stays connected in
 * this process (transport hand-over is tested elsewhere); the crash of the
 * admin queue's owner is vfe_admin_abandon(): the old queue's memory and
 * fds are dropped without a word to the device.
 *  - commands before (freeze, save, dirty start) and after (dirty stop, save,
 *    unfreeze) the adoption work; sim resets and client_disconnects stay 0;
 *  - the PF's status, features, MSI-X and admin queue config read back the
 *    same after the adoption;
 *  - export ONCE at bring-up, then many commands (the indices go round the
 *    ring), then commands in the device at the crash (sim fault admin_slow),
 *    one of them returned but never reaped: adopt from the bring-up blob;
 *    the returned one is done, the others are inherited, their slots stay
 *    quarantined until the device returns them (no two chains in the device
 *    share a slot), their answers are dropped with a log line, the dead
 *    owner's callbacks never run, new commands work; a second crash adopts
 *    from the same blob;
 *  - bad snapshots and bad ring memory (a private copy of the memfd with
 *    one defect) are refused with a log line saying why, and leave the
 *    queue adoptable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <endian.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"
#include "drivers/common/virtio_mi/vfe_mig_priv.h"
#include "tests/lib/check.h"
#include "tests/lib/test_pf.h"
#include "tests/lib/test_vf.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define SLOW_MS 150

/* ---- stderr capture: the refusals must say why ---- */
static int cap_fd = -1, saved_err = -1;

static void capture_start(void)
{
    fflush(stderr);
    cap_fd = memfd_create("log", 0);
    saved_err = dup(2);
    dup2(cap_fd, 2);
}

/* Restores stderr, echoes what was captured, true if it contains `want`. */
static bool capture_end(const char *want)
{
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    char buf[8192];
    ssize_t n = pread(cap_fd, buf, sizeof(buf) - 1, 0);
    close(cap_fd);
    buf[n > 0 ? n : 0] = 0;
    fputs(buf, stderr);
    return strstr(buf, want) != NULL;
}

/* adopt from blob (modified copy), expecting rc and a log line with why */
static void adopt_refused(struct test_pf *pf, const uint8_t *blob, size_t len, int memfd, int want_rc,
                          const char *why, const char *label)
{
    struct vfe_admin_vq *aq = NULL;
    capture_start();
    int rc = vfe_admin_adopt(&pf->vp, EV_DEFAULT, pf->iova, blob, len, memfd, &aq);
    bool logged = capture_end(why);
    CHECK(rc == want_rc, "%s: adopt returned %d, expected %d", label, rc, want_rc);
    CHECK(logged, "%s: no log line with \"%s\"", label, why);
    CHECK(aq == NULL, "%s: a queue was returned", label);
}

static long long ctr(const struct sim_proc *sp, const char *bdf, const char *f)
{
    return test_sim_counter(sp, bdf, f);
}

static void no_reset_no_disconnect(const struct sim_proc *sp, const char *label)
{
    const char *fns[] = {PF, VF1, VF2};
    for (unsigned i = 0; i < 3; i++) {
        CHECK(ctr(sp, fns[i], "resets") == 0, "%s: %s resets %lld", label, fns[i], ctr(sp, fns[i], "resets"));
        CHECK(ctr(sp, fns[i], "client_disconnects") == 0, "%s: %s client_disconnects %lld", label, fns[i],
              ctr(sp, fns[i], "client_disconnects"));
    }
}

/* What the dead owner leaves behind: blobs and a copy of the memfd. */
struct handover {
    uint8_t aq_blob[VFE_ADMIN_BLOB_MAX];
    size_t aq_len;
    uint8_t mig_blob[VFE_MIG_BLOB_LEN];
    size_t mig_len;
    int memfd;
};

static int crash(struct test_pf *pf, struct handover *h)
{
    int fd = -1;
    h->memfd = -1;
    int rc = vfe_admin_export(pf->aq, h->aq_blob, sizeof(h->aq_blob), &h->aq_len, &fd);
    if (rc == 0)
        rc = vfe_mig_export(&pf->mig, h->mig_blob, sizeof(h->mig_blob), &h->mig_len);
    if (rc < 0)
        return rc;
    h->memfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    vfe_admin_abandon(pf->aq);
    vfe_mig_abandon(&pf->mig);
    pf->aq = NULL;
    memset(&pf->mig, 0, sizeof(pf->mig));
    return h->memfd < 0 ? -errno : 0;
}

/* ---- the queue memory as a dead owner could have left it ---- */
/* v2 blob offsets the tests read */
enum { B_QSIZE = 10, B_NSLOTS = 14, B_IOVA = 16, B_MEMLEN = 24, B_AVAIL_OFF = 32, B_USED_OFF = 36,
       B_SLOTS_OFF = 40, B_RSVD = 44 };
#define SLOT_STRIDE_T (4096u + VFE_ADMIN_RESULT_MAX + 4096u)   /* command area + result area */

struct ring_view {
    uint8_t *mem;
    size_t len;
    uint16_t qsize, nslots;
    uint64_t iova;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint32_t slots_off;
};

static int ring_map(const uint8_t *blob, int memfd, int prot, struct ring_view *v)
{
    v->len = vfe_get_le64(blob + B_MEMLEN);
    v->mem = mmap(NULL, v->len, prot, MAP_SHARED, memfd, 0);
    if (v->mem == MAP_FAILED)
        return -errno;
    v->qsize = vfe_get_le16(blob + B_QSIZE);
    v->nslots = vfe_get_le16(blob + B_NSLOTS);
    v->iova = vfe_get_le64(blob + B_IOVA);
    v->slots_off = vfe_get_le32(blob + B_SLOTS_OFF);
    v->desc = (void *)v->mem;
    v->avail = (void *)(v->mem + vfe_get_le32(blob + B_AVAIL_OFF));
    v->used = (void *)(v->mem + vfe_get_le32(blob + B_USED_OFF));
    return 0;
}

static uint16_t used_idx(const struct ring_view *v)
{
    return le16toh(__atomic_load_n(&v->used->idx, __ATOMIC_ACQUIRE));
}

static uint16_t avail_idx(const struct ring_view *v)
{
    return le16toh(__atomic_load_n(&v->avail->idx, __ATOMIC_ACQUIRE));
}

static uint64_t slot_iova(const struct ring_view *v, unsigned i, size_t off)
{
    return v->iova + v->slots_off + (uint64_t)i * SLOT_STRIDE_T + off;
}

/* The slot each chain the device holds (used..avail) points into, -1 if none;
 * returns how many chains, *dup set when two share a slot. */
static unsigned chains_in_device(const struct ring_view *v, bool *dup)
{
    bool seen[VFE_ADMIN_MAX_SLOTS] = {false};
    uint16_t u = used_idx(v), a = avail_idx(v), n = (uint16_t)(a - u);
    *dup = false;
    for (uint16_t k = 0; k < n && k < v->qsize; k++) {
        uint16_t h = le16toh(v->avail->ring[(uint16_t)(u + k) & (v->qsize - 1)]);
        uint64_t addr = le64toh(v->desc[h % v->qsize].addr);
        uint64_t i = (addr - slot_iova(v, 0, 0)) / SLOT_STRIDE_T;
        if (i >= VFE_ADMIN_MAX_SLOTS || seen[i])
            *dup = true;
        else
            seen[i] = true;
    }
    return n;
}

/* Put one command chain in slot `slot` at descriptors d, d+1 and publish it
 * (avail entry at the current avail index). */
static void put_chain(struct ring_view *v, uint16_t d, unsigned slot)
{
    v->desc[d] = (struct vring_desc){.addr = htole64(slot_iova(v, slot, 0)), .len = htole32(2),
                                     .flags = htole16(VRING_DESC_F_NEXT), .next = htole16(d + 1)};
    v->desc[d + 1] = (struct vring_desc){.addr = htole64(slot_iova(v, slot, 4096)), .len = htole32(64),
                                         .flags = htole16(VRING_DESC_F_WRITE)};
    uint16_t a = avail_idx(v);
    v->avail->ring[a & (v->qsize - 1)] = htole16(d);
    v->avail->idx = htole16(a + 1);
}

/* A private copy of the queue memory (the live one stays untouched). */
static int mem_copy(const struct handover *h, struct ring_view *v)
{
    struct ring_view live;
    int rc = ring_map(h->aq_blob, h->memfd, PROT_READ, &live);
    if (rc < 0)
        return rc;
    int fd = memfd_create("aq-copy", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)live.len) < 0 || ring_map(h->aq_blob, fd, PROT_READ | PROT_WRITE, v) < 0) {
        munmap(live.mem, live.len);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    memcpy(v->mem, live.mem, live.len);
    munmap(live.mem, live.len);
    return fd;
}

enum ring_defect { RD_AHEAD, RD_OUTSIDE, RD_TWO_SLOTS, RD_HEAD_BEYOND, RD_FLAGS, RD_LENGTH, RD_SLOT_TWICE,
                   RD_BEYOND_SLOTS, RD_SHORT };

static void bad_rings(struct test_pf *pf, const struct handover *h, const char *d)
{
    static const struct { enum ring_defect what; const char *name, *why; } cases[] = {
        {RD_AHEAD, "avail far ahead", "entries ahead of used index"},
        {RD_OUTSIDE, "descriptor into the ring", "outside the command slots"},
        {RD_TWO_SLOTS, "chain across two slots", "outside the command slots or into two"},
        {RD_BEYOND_SLOTS, "slot beyond the count", "outside the command slots"},
        {RD_HEAD_BEYOND, "head beyond the ring", "beyond the ring"},
        {RD_FLAGS, "readable result", "has flags"},
        {RD_LENGTH, "empty result area", "lengths"},
        {RD_SLOT_TWICE, "two chains in a slot", "named by two chains"},
        {RD_SHORT, "memfd too small", "memfd of"},
    };
    for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct ring_view v;
        int fd = mem_copy(h, &v);
        CHECK(fd >= 0, "%s: copy of the queue memory", d);
        if (fd < 0)
            return;
        uint16_t u = used_idx(&v);
        CHECK(avail_idx(&v) == u, "%s: the queue is not idle (avail %u used %u)", d, avail_idx(&v), u);
        switch (cases[c].what) {
        case RD_AHEAD:
            v.avail->idx = htole16((uint16_t)(u + v.nslots + 1));
            break;
        case RD_OUTSIDE:
            put_chain(&v, 0, 0);
            v.desc[0].addr = htole64(v.iova);
            break;
        case RD_TWO_SLOTS:
            put_chain(&v, 0, 0);
            v.desc[1].addr = htole64(slot_iova(&v, 1, 4096));
            break;
        case RD_BEYOND_SLOTS:
            put_chain(&v, 0, v.nslots);
            break;
        case RD_HEAD_BEYOND:
            put_chain(&v, 0, 0);
            v.avail->ring[u & (v.qsize - 1)] = htole16(v.qsize);
            break;
        case RD_FLAGS:
            put_chain(&v, 0, 0);
            v.desc[1].flags = 0;
            break;
        case RD_LENGTH:
            put_chain(&v, 0, 0);
            v.desc[1].len = 0;
            break;
        case RD_SLOT_TWICE:
            put_chain(&v, 0, 1);
            put_chain(&v, 2, 1);
            break;
        case RD_SHORT:
            CHECK(ftruncate(fd, (off_t)(v.len - 4096)) == 0, "%s: truncate", d);
            break;
        }
        munmap(v.mem, v.len);
        char label[80];
        snprintf(label, sizeof(label), "%s ring: %s", d, cases[c].name);
        adopt_refused(pf, h->aq_blob, h->aq_len, fd, -EPROTO, cases[c].why, label);
        close(fd);
    }
}

static void bad_blobs(struct test_pf *pf, const struct handover *h, const char *d)
{
    uint8_t b[VFE_ADMIN_BLOB_MAX];
    char label[64];
#define MUTATE(what) (memcpy(b, h->aq_blob, h->aq_len), snprintf(label, sizeof(label), "%s %s", d, what))
    MUTATE("magic");
    b[0] ^= 0xff;
    adopt_refused(pf, b, h->aq_len, h->memfd, -EINVAL, "magic", label);
    MUTATE("newer version");
    vfe_put_le16(b + 4, VFE_ADMIN_BLOB_VERSION + 1);
    adopt_refused(pf, b, h->aq_len, h->memfd, -EPROTO, "newer", label);
    MUTATE("truncated");
    adopt_refused(pf, b, h->aq_len - 1, h->memfd, -EINVAL, "length field", label);
    MUTATE("slot count");
    vfe_put_le16(b + 14, VFE_ADMIN_MAX_SLOTS + 1);
    adopt_refused(pf, b, h->aq_len, h->memfd, -EINVAL, "slots", label);
    MUTATE("vector mismatch");
    vfe_put_le16(b + 12, (uint16_t)(vfe_get_le16(b + 12) + 1));
    adopt_refused(pf, b, h->aq_len, h->memfd, -EPROTO, "MSI-X vector", label);
    MUTATE("address mismatch");
    vfe_put_le64(b + 16, vfe_get_le64(b + 16) + 4096);
    adopt_refused(pf, b, h->aq_len, h->memfd, -EPROTO, "descriptor address", label);
    MUTATE("queue index mismatch");
    vfe_put_le16(b + 8, (uint16_t)(vfe_get_le16(b + 8) + 1));
    adopt_refused(pf, b, h->aq_len, h->memfd, -EPROTO, "admin queue is", label);
    MUTATE("old version 1");
    vfe_put_le16(b + 4, 1);
    adopt_refused(pf, b, h->aq_len, h->memfd, -EPROTO, "no longer read", label);
    MUTATE("reserved");
    b[B_RSVD] = 1;
    adopt_refused(pf, b, h->aq_len, h->memfd, -EINVAL, "reserved", label);
    MUTATE("layout");
    vfe_put_le32(b + B_USED_OFF, vfe_get_le32(b + B_USED_OFF) + 4);
    adopt_refused(pf, b, h->aq_len, h->memfd, -EINVAL, "layout", label);

    /* a memfd that is not the queue's */
    int other = memfd_create("other", MFD_CLOEXEC);
    CHECK(other >= 0 && ftruncate(other, 4096) == 0, "other memfd");
    snprintf(label, sizeof(label), "%s wrong memfd", d);
    adopt_refused(pf, h->aq_blob, h->aq_len, other, -EPROTO, "memfd of 4096 bytes", label);
    close(other);
    bad_rings(pf, h, d);

    /* a space without the admin window */
    struct vfe_pf_iova *empty = vfe_pf_iova_create(pf->t);
    CHECK(empty != NULL, "empty space");
    if (empty) {
        struct vfe_admin_vq *aq = NULL;
        capture_start();
        int rc = vfe_admin_adopt(&pf->vp, EV_DEFAULT, empty, h->aq_blob, h->aq_len, h->memfd, &aq);
        CHECK(capture_end("no admin window"), "%s: no log line for the missing window", d);
        CHECK(rc == -ENOENT && aq == NULL, "%s: adopt without the window returned %d", d, rc);
        vfe_pf_iova_destroy(empty);
    }

    /* migration dialect blobs */
    uint8_t mb[VFE_MIG_BLOB_LEN];
    struct vfe_mig m = {0};
    struct vfe_admin_vq *fake_aq = (struct vfe_admin_vq *)(uintptr_t)1;   /* never used on refusal */
    memcpy(mb, h->mig_blob, sizeof(mb));
    mb[1] ^= 0x55;
    capture_start();
    CHECK(vfe_mig_adopt(&m, fake_aq, mb, sizeof(mb)) == -EINVAL, "%s: mig bad magic accepted", d);
    CHECK(capture_end("magic"), "%s: mig magic not logged", d);
    memcpy(mb, h->mig_blob, sizeof(mb));
    vfe_put_le16(mb + 4, VFE_MIG_BLOB_VERSION + 1);
    capture_start();
    CHECK(vfe_mig_adopt(&m, fake_aq, mb, sizeof(mb)) == -EPROTO, "%s: mig newer version accepted", d);
    CHECK(capture_end("newer"), "%s: mig version not logged", d);
    memcpy(mb, h->mig_blob, sizeof(mb));
    mb[8] = 7;
    capture_start();
    CHECK(vfe_mig_adopt(&m, fake_aq, mb, sizeof(mb)) == -EINVAL, "%s: mig dialect 7 accepted", d);
    CHECK(capture_end("dialect 7 unknown"), "%s: mig dialect not logged", d);
    CHECK(m.ops == NULL, "%s: a refused mig blob changed m", d);
#undef MUTATE
}

static bool same_state(const struct vfe_vpci_state *a, const struct vfe_vpci_state *b)
{
    return a->status == b->status && a->device_features == b->device_features &&
           a->driver_features == b->driver_features && a->config_vector == b->config_vector &&
           a->msix_enabled == b->msix_enabled && a->msix_masked == b->msix_masked;
}

static void run_dialect(const char *d, enum vfe_mig_dialect want)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "2", "--admin-dialect", d, NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "%s: sim did not start", d);
        return;
    }
    struct test_pf pf = {0};
    struct handover h = {.memfd = -1};
    static struct vfe_dev_state s1, s2;
    memset(&s1, 0, sizeof(s1));
    memset(&s2, 0, sizeof(s2));
    REQUIRE(test_pf_open(&pf, &sp, PF) == 0, out, "%s: PF bring-up", d);
    REQUIRE(pf.mig.dialect == want, out, "%s: dialect %d", d, pf.mig.dialect);

    /* before the crash: freeze VF1 and save it, start tracking on VF2 */
    struct vfe_mig_dirty_cfg cfg = {.mode = VFE_MIG_TRACK_PULL_BITMAP, .page_size = 4096,
                                    .range_addr = TEST_VF_IOVA, .range_len = 16u << 20};
    CHECK(test_mig_set_state(&pf, 1, VFE_MIG_QUIESCED) == 0, "%s: quiesce VF1", d);
    CHECK(test_mig_set_state(&pf, 1, VFE_MIG_FREEZED) == 0, "%s: freeze VF1", d);
    CHECK(test_mig_save(&pf, 1, &s1) == 0, "%s: save VF1", d);
    CHECK(test_mig_dirty_start(&pf, 2, &cfg) == 0, "%s: dirty start VF2", d);

    struct vfe_vpci_state before, after;
    struct vfe_vpci_queue_cfg qb, qa;
    uint16_t aqi, aqn;
    REQUIRE(vfe_vpci_adopt(&pf.vp, pf.t, &before) == 0 && vfe_vpci_admin_queue(&pf.vp, &aqi, &aqn) == 0 &&
            vfe_vpci_queue_read(&pf.vp, aqi, &qb) == 0, out, "%s: read the PF back", d);
    CHECK(before.status & VIRTIO_CONFIG_S_DRIVER_OK, "%s: PF not running (status %#x)", d, before.status);
    CHECK(qb.enabled == 1, "%s: admin queue not enabled", d);

    REQUIRE(crash(&pf, &h) == 0, out, "%s: export and abandon", d);
    bad_blobs(&pf, &h, d);

    /* the new owner: device state read back as it is, queue and dialect adopted */
    REQUIRE(vfe_vpci_adopt(&pf.vp, pf.t, &after) == 0, out, "%s: vpci adopt", d);
    CHECK(same_state(&before, &after), "%s: PF state changed: status %#x->%#x features %#llx->%#llx", d,
          before.status, after.status, (unsigned long long)before.driver_features,
          (unsigned long long)after.driver_features);
    REQUIRE(vfe_admin_adopt(&pf.vp, EV_DEFAULT, pf.iova, h.aq_blob, h.aq_len, h.memfd, &pf.aq) == 0, out,
            "%s: admin adopt", d);
    REQUIRE(vfe_mig_adopt(&pf.mig, pf.aq, h.mig_blob, h.mig_len) == 0 && pf.mig.dialect == want, out,
            "%s: mig adopt", d);
    CHECK(vfe_vpci_queue_read(&pf.vp, aqi, &qa) == 0 && memcmp(&qa, &qb, sizeof(qa)) == 0,
          "%s: admin queue config changed by the adoption", d);

    /* after: the commands go on where they were */
    CHECK(test_mig_dirty_stop(&pf, 2) == 0, "%s: dirty stop VF2 after adopt", d);
    CHECK(test_mig_save(&pf, 1, &s2) == 0, "%s: save VF1 after adopt", d);
    CHECK(s1.has_common && memcmp(&s1, &s2, sizeof(s1)) == 0, "%s: VF1 state differs after adopt", d);
    CHECK(test_mig_set_state(&pf, 1, VFE_MIG_RUNNING) == 0, "%s: resume VF1", d);
    no_reset_no_disconnect(&sp, d);
out:
    if (h.memfd >= 0)
        close(h.memfd);
    test_pf_close(&pf);
    CHECK(sim_proc_stop(&sp) == 0, "%s: sim exit status", d);
}

/* ---- a command in flight when the owner dies ---- */
struct cmd_done {
    bool done;
    int status;
};

static void cmd_cb(void *ctx, int status, const uint8_t *res, uint32_t len)
{
    struct cmd_done *c = ctx;
    c->status = status;
    c->done = true;
}

static void mig_cb(void *ctx, int err)
{
    cmd_cb(ctx, err, NULL, 0);
}

/* A harmless command of the dialect: nvidia IDENTITY or virtio LIST_QUERY. */
static int submit_probe(struct vfe_admin_vq *aq, enum vfe_mig_dialect d, struct cmd_done *c)
{
    if (d == VFE_MIG_DIALECT_NVIDIA) {
        uint8_t cmd[2] = {VFE_NV_CLASS_MIG, VFE_NV_MIG_IDENTITY};
        return vfe_admin_submit(aq, cmd, sizeof(cmd), 64, cmd_cb, c);
    }
    uint8_t cmd[sizeof(struct vfe_adm_std_cmd)];
    size_t n = vfe_mig_std_hdr(cmd, VFE_ADM_LIST_QUERY, 0);
    return vfe_admin_submit(aq, cmd, (uint32_t)n, 32, cmd_cb, c);
}

static bool all_done(const struct cmd_done *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!c[i].done)
            return false;
    return true;
}

/* The slow commands the dying owner leaves behind; their callbacks must never run. */
#define DEAD_CMDS 4

static bool dead_ran(const struct cmd_done *dead, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (dead[i].done)
            return true;
    return false;
}

/*
 * The blob is exported ONCE, right after bring-up; then the owner runs many
 * commands, leaves some in the device (admin_slow) and one returned but not
 * reaped, and dies.  The successor adopts from that old blob.
 */
static void run_export_once(const char *d, enum vfe_mig_dialect want)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "2", "--admin-dialect", d, NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "%s: sim did not start", d);
        return;
    }
    struct test_pf pf = {0};
    struct handover h = {.memfd = -1};
    struct ring_view v = {.mem = MAP_FAILED};
    struct cmd_done dead[DEAD_CMDS], c[VFE_ADMIN_MAX_SLOTS];
    memset(dead, 0, sizeof(dead));
    char reply[512], json[128];
    REQUIRE(test_pf_open(&pf, &sp, PF) == 0, out, "%s: PF bring-up", d);
    /* the one export, at bring-up: blobs and a copy of the memfd are deposited */
    int fd = -1;
    REQUIRE(vfe_admin_export(pf.aq, h.aq_blob, sizeof(h.aq_blob), &h.aq_len, &fd) == 0 &&
            vfe_mig_export(&pf.mig, h.mig_blob, sizeof(h.mig_blob), &h.mig_len) == 0, out, "%s: export", d);
    REQUIRE((h.memfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0, out, "%s: dup memfd", d);
    REQUIRE(ring_map(h.aq_blob, h.memfd, PROT_READ, &v) == 0, out, "%s: map the ring", d);
    unsigned nslots = v.nslots;

    /* many commands, all completed: the ring indices go round the ring several times */
    unsigned rounds = (3u * v.qsize) / nslots + 1;
    for (unsigned r = 0; r < rounds; r++) {
        memset(c, 0, sizeof(c));
        for (unsigned i = 0; i < nslots; i++)
            CHECK(submit_probe(pf.aq, want, &c[i]) == 0, "%s: round %u submit %u", d, r, i);
        for (unsigned i = 0; i < nslots; i++)
            vfe_admin_wait(pf.aq, &c[i].done);
        CHECK(all_done(c, nslots), "%s: round %u not completed", d, r);
    }
    CHECK(used_idx(&v) > 3u * v.qsize, "%s: used index %u did not go round a ring of %u", d,
          used_idx(&v), v.qsize);
    uint8_t again[VFE_ADMIN_BLOB_MAX];
    size_t again_len = 0;
    CHECK(vfe_admin_export(pf.aq, again, sizeof(again), &again_len, &fd) == 0 && again_len == h.aq_len &&
          memcmp(again, h.aq_blob, h.aq_len) == 0, "%s: a later export differs from the one at bring-up", d);

    /* slow device: DEAD_CMDS in the device, the last quiesces VF2 */
    snprintf(json, sizeof(json), "{\"cmd\":\"fault\",\"type\":\"admin_slow\",\"ms\":%d}", SLOW_MS);
    REQUIRE(sim_proc_ctl(&sp, json, reply, sizeof(reply)) == 0 && strstr(reply, "true"), out,
            "%s: admin_slow fault: %s", d, reply);
    uint16_t u0 = used_idx(&v);
    for (unsigned i = 0; i + 1 < DEAD_CMDS; i++)
        CHECK(submit_probe(pf.aq, want, &dead[i]) == 0, "%s: dead submit %u", d, i);
    REQUIRE(vfe_mig_set_state(&pf.mig, 2, VFE_MIG_QUIESCED, mig_cb, &dead[DEAD_CMDS - 1]) == 0, out,
            "%s: submit quiesce", d);
    /* the device returns the first; the owner dies before reaping it (the loop does not run) */
    for (unsigned t = 0; t < 1000 && used_idx(&v) == u0; t++)
        usleep(5000);
    REQUIRE(used_idx(&v) != u0, out, "%s: the device returned nothing", d);
    vfe_admin_abandon(pf.aq);
    vfe_mig_abandon(&pf.mig);
    pf.aq = NULL;
    memset(&pf.mig, 0, sizeof(pf.mig));

    /* the successor adopts from the blob of the bring-up */
    struct vfe_admin_stats st;
    REQUIRE(vfe_admin_adopt(&pf.vp, EV_DEFAULT, pf.iova, h.aq_blob, h.aq_len, h.memfd, &pf.aq) == 0, out,
            "%s: admin adopt from the bring-up blob", d);
    REQUIRE(vfe_mig_adopt(&pf.mig, pf.aq, h.mig_blob, h.mig_len) == 0, out, "%s: mig adopt", d);
    vfe_admin_set_timeout(pf.aq, 20 * SLOW_MS * (nslots + DEAD_CMDS));
    vfe_admin_get_stats(pf.aq, &st);
    unsigned inh = st.inherited;
    CHECK(inh >= 1 && inh <= DEAD_CMDS - 1 && st.quarantined == inh && st.in_flight == 0,
          "%s: after adopt inherited %u quarantined %u in flight %u (1..%u inherited)", d, inh, st.quarantined,
          st.in_flight, DEAD_CMDS - 1);

    /* as many new commands as slots: the inherited slots are not taken */
    memset(c, 0, sizeof(c));
    for (unsigned i = 0; i < nslots; i++)
        CHECK(submit_probe(pf.aq, want, &c[i]) == 0, "%s: submit %u", d, i);
    vfe_admin_get_stats(pf.aq, &st);
    CHECK(st.in_flight == nslots - st.inherited && st.pending == st.inherited,
          "%s: %u slots: in flight %u pending %u inherited %u", d, nslots, st.in_flight, st.pending, st.inherited);
    bool dup = false;
    unsigned in_dev = chains_in_device(&v, &dup);
    CHECK(!dup && in_dev <= nslots, "%s: %u chains in the device, two in one slot: %d", d, in_dev, dup);
    capture_start();
    for (unsigned i = 0; i < nslots; i++)
        vfe_admin_wait(pf.aq, &c[i].done);
    CHECK(capture_end("left by the previous owner dropped"), "%s: the dropped late answers were not logged", d);
    CHECK(all_done(c, nslots), "%s: not all new commands completed", d);
    for (unsigned i = 0; i < nslots; i++)
        CHECK(c[i].status == 0, "%s: new command %u status %d", d, i, c[i].status);
    vfe_admin_get_stats(pf.aq, &st);
    CHECK(st.inherited == 0 && st.quarantined == 0, "%s: inherited slots not released (%u)", d, st.inherited);
    CHECK(st.bad_answers == 0 && st.timeouts == 0, "%s: bad answers %llu timeouts %llu", d,
          (unsigned long long)st.bad_answers, (unsigned long long)st.timeouts);
    CHECK(!dead_ran(dead, DEAD_CMDS), "%s: a callback of the dead owner ran", d);

    /* the inherited quiesce did take effect: VF2 can be frozen */
    sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"clear\"}", reply, sizeof(reply));
    CHECK(test_mig_set_state(&pf, 2, VFE_MIG_FREEZED) == 0, "%s: freeze VF2 after adopt", d);
    CHECK(test_mig_set_state(&pf, 2, VFE_MIG_RUNNING) == 0, "%s: resume VF2", d);
    /* the adopted queue exports the same blob: a second crash adopts from it too */
    CHECK(vfe_admin_export(pf.aq, again, sizeof(again), &again_len, &fd) == 0 && again_len == h.aq_len &&
          memcmp(again, h.aq_blob, h.aq_len) == 0, "%s: the adopted queue exports another blob", d);
    vfe_admin_abandon(pf.aq);
    vfe_mig_abandon(&pf.mig);
    pf.aq = NULL;
    REQUIRE(vfe_admin_adopt(&pf.vp, EV_DEFAULT, pf.iova, h.aq_blob, h.aq_len, h.memfd, &pf.aq) == 0, out,
            "%s: second adopt", d);
    REQUIRE(vfe_mig_adopt(&pf.mig, pf.aq, h.mig_blob, h.mig_len) == 0, out, "%s: second mig adopt", d);
    memset(c, 0, sizeof(c));
    CHECK(submit_probe(pf.aq, want, &c[0]) == 0, "%s: submit after the second adopt", d);
    vfe_admin_wait(pf.aq, &c[0].done);
    CHECK(c[0].status == 0, "%s: command after the second adopt: %d", d, c[0].status);
    CHECK(!dead_ran(dead, DEAD_CMDS), "%s: a callback of the dead owner ran", d);
    no_reset_no_disconnect(&sp, d);
out:
    if (v.mem != MAP_FAILED)
        munmap(v.mem, v.len);
    if (h.memfd >= 0)
        close(h.memfd);
    test_pf_close(&pf);
    CHECK(sim_proc_stop(&sp) == 0, "%s: sim exit status", d);
}

int main(void)
{
    run_dialect("nvidia", VFE_MIG_DIALECT_NVIDIA);
    run_dialect("virtio", VFE_MIG_DIALECT_VIRTIO);
    run_export_once("nvidia", VFE_MIG_DIALECT_NVIDIA);
    run_export_once("virtio", VFE_MIG_DIALECT_VIRTIO);
    return check_result("admin_adopt");
}
