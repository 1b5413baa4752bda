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
 *  - a command in flight at the crash (sim fault admin_slow): its slot stays
 *    quarantined until the device returns it, its answer is dropped, new
 *    commands use the other slots meanwhile;
 *  - bad snapshots are refused with a log line saying why, and leave the
 *    queue adoptable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/virtio_config.h>

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
    pf->aq = NULL;
    memset(&pf->mig, 0, sizeof(pf->mig));
    return h->memfd < 0 ? -errno : 0;
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
    MUTATE("ring moved on");
    vfe_put_le16(b + 32, (uint16_t)(vfe_get_le16(b + 32) - 1));
    vfe_put_le16(b + 34, (uint16_t)(vfe_get_le16(b + 34) - 1));
    adopt_refused(pf, b, h->aq_len, h->memfd, -EPROTO, "moved on", label);

    /* a memfd that is not the queue's */
    int other = memfd_create("other", MFD_CLOEXEC);
    CHECK(other >= 0 && ftruncate(other, 4096) == 0, "other memfd");
    snprintf(label, sizeof(label), "%s wrong memfd", d);
    adopt_refused(pf, h->aq_blob, h->aq_len, other, -EINVAL, "memfd of 4096 bytes", label);
    close(other);

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

static void run_in_flight(const char *d, enum vfe_mig_dialect want)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "2", "--admin-dialect", d, NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "%s: sim did not start", d);
        return;
    }
    struct test_pf pf = {0};
    struct handover h = {.memfd = -1};
    struct cmd_done old = {0}, c[VFE_ADMIN_MAX_SLOTS + 1];
    memset(c, 0, sizeof(c));
    char reply[512], json[128];
    REQUIRE(test_pf_open(&pf, &sp, PF) == 0, out, "%s: PF bring-up", d);
    snprintf(json, sizeof(json), "{\"cmd\":\"fault\",\"type\":\"admin_slow\",\"ms\":%d}", SLOW_MS);
    REQUIRE(sim_proc_ctl(&sp, json, reply, sizeof(reply)) == 0 && strstr(reply, "true"), out,
            "%s: admin_slow fault: %s", d, reply);

    /* the old owner's last command: quiesce VF2, in the device when it dies */
    struct vfe_admin_stats st;
    REQUIRE(vfe_mig_set_state(&pf.mig, 2, VFE_MIG_QUIESCED, mig_cb, &old) == 0,
            out, "%s: submit", d);
    vfe_admin_get_stats(pf.aq, &st);
    CHECK(st.in_flight == 1, "%s: %u in flight before the crash", d, st.in_flight);
    REQUIRE(crash(&pf, &h) == 0, out, "%s: export and abandon", d);
    unsigned nslots = vfe_get_le16(h.aq_blob + 14);

    REQUIRE(vfe_admin_adopt(&pf.vp, EV_DEFAULT, pf.iova, h.aq_blob, h.aq_len, h.memfd, &pf.aq) == 0, out,
            "%s: admin adopt with a command in flight", d);
    REQUIRE(vfe_mig_adopt(&pf.mig, pf.aq, h.mig_blob, h.mig_len) == 0, out, "%s: mig adopt", d);
    vfe_admin_set_timeout(pf.aq, 20 * SLOW_MS * (nslots + 2));
    vfe_admin_get_stats(pf.aq, &st);
    CHECK(st.quarantined == 1 && st.inherited == 1, "%s: after adopt quarantined %u inherited %u", d,
          st.quarantined, st.inherited);

    /* one command more than free slots: the inherited slot is not taken */
    for (unsigned i = 0; i < nslots; i++)
        CHECK(submit_probe(pf.aq, want, &c[i]) == 0, "%s: submit %u", d, i);
    vfe_admin_get_stats(pf.aq, &st);
    CHECK(st.in_flight == nslots - 1 && st.pending == 1 && st.inherited == 1,
          "%s: %u slots: in flight %u pending %u inherited %u", d, nslots, st.in_flight, st.pending, st.inherited);
    /* the old command completes first (the sim runs them in order), then the rest */
    capture_start();
    vfe_admin_wait(pf.aq, &c[0].done);
    CHECK(capture_end("left by the previous owner dropped"), "%s: the dropped late answer was not logged", d);
    vfe_admin_get_stats(pf.aq, &st);
    CHECK(st.inherited == 0 && st.quarantined == 0, "%s: inherited slot not released by its late answer", d);
    for (unsigned i = 0; i < nslots; i++)
        vfe_admin_wait(pf.aq, &c[i].done);
    CHECK(all_done(c, nslots), "%s: not all new commands completed", d);
    for (unsigned i = 0; i < nslots; i++)
        CHECK(c[i].status == 0, "%s: new command %u status %d", d, i, c[i].status);
    CHECK(!old.done, "%s: the dead owner's callback ran", d);
    vfe_admin_get_stats(pf.aq, &st);
    CHECK(st.bad_answers == 0 && st.timeouts == 0, "%s: bad answers %llu timeouts %llu", d,
          (unsigned long long)st.bad_answers, (unsigned long long)st.timeouts);
    /* the old command did take effect: VF2 is quiesced, and can be frozen */
    sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"clear\"}", reply, sizeof(reply));
    CHECK(test_mig_set_state(&pf, 2, VFE_MIG_FREEZED) == 0, "%s: freeze VF2 after adopt", d);
    CHECK(test_mig_set_state(&pf, 2, VFE_MIG_RUNNING) == 0, "%s: resume VF2", d);
    no_reset_no_disconnect(&sp, d);
out:
    if (h.memfd >= 0)
        close(h.memfd);
    test_pf_close(&pf);
    CHECK(sim_proc_stop(&sp) == 0, "%s: sim exit status", d);
}

int main(void)
{
    run_dialect("nvidia", VFE_MIG_DIALECT_NVIDIA);
    run_dialect("virtio", VFE_MIG_DIALECT_VIRTIO);
    run_in_flight("nvidia", VFE_MIG_DIALECT_NVIDIA);
    run_in_flight("virtio", VFE_MIG_DIALECT_VIRTIO);
    return check_result("admin_adopt");
}
