/*
 * The daemon's registry on its own (no RPC), against the sim: PFs and VFs are
 * added, looked up, enumerated as plain records and removed; socket paths are
 * one per VF whatever their spelling; callbacks never run inside the call that
 * starts them; a drain removes every VF.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "app/vfe-vdpa/registry.h"
#include "lib/log/vfe_log.h"
#include "tests/lib/check.h"
#include "tests/lib/sim_proc.h"

#define PF "0000:3b:00.0"

static struct sim_proc sp;
static struct ev_loop *loop;

struct outcome {
    bool done;
    int err;
    unsigned calls;
};

static void pf_added(void *ctx, const struct vhostd_pf *pf, int err)
{
    struct outcome *o = ctx;
    o->done = true;
    o->err = err;
    o->calls++;
}

static void removed(void *ctx)
{
    struct outcome *o = ctx;
    o->done = true;
    o->calls++;
}

static void drained(void *ctx)
{
    removed(ctx);
}

static void vf_added(void *ctx, const char *bdf, struct vhostd_vf *vf, int err, const char *msg)
{
    struct outcome *o = ctx;
    o->done = true;
    o->err = err;
    o->calls++;
    if (err)
        fprintf(stderr, "add %s: %s\n", bdf, msg);
}

/* Run the loop until o->done (bounded). */
static bool run_until(struct outcome *o, double seconds)
{
    ev_tstamp end = ev_time() + seconds;
    while (!o->done && ev_time() < end)
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT), usleep(1000);
    return o->done;
}

static void test_pfs(struct vhostd_registry *r)
{
    char msg[512];
    struct outcome o = {0};
    CHECK(vhostd_reg_add_pf(r, PF, pf_added, &o, msg, sizeof(msg)) == 0, "add PF: %s", msg);
    CHECK(!o.done, "the PF callback ran inside the call that added it");
    CHECK(vhostd_reg_add_pf(r, PF, pf_added, &o, msg, sizeof(msg)) == -EEXIST, "PF added twice");
    CHECK(vhostd_reg_remove_pf(r, PF, msg, sizeof(msg)) == -EBUSY && strstr(msg, "starting"),
          "a starting PF was removed: %s", msg);
    CHECK(run_until(&o, 5) && o.err == 0 && o.calls == 1, "PF bring-up: err %d, %u calls", o.err, o.calls);
    CHECK(vhostd_reg_add_pf(r, "0000:3b:00.1", pf_added, &o, msg, sizeof(msg)) == -EINVAL && strstr(msg, "is a VF"),
          "a VF added as a PF: %s", msg);
    CHECK(vhostd_reg_add_pf(r, "0000:3c:00.0", pf_added, &o, msg, sizeof(msg)) == -ENOENT, "unknown PF: %s", msg);
    unsigned cur = 0, n = 0;
    for (struct vhostd_pf *pf; (pf = vhostd_reg_next_pf(r, &cur));)
        n++;
    CHECK(n == 1 && vhostd_reg_find_pf(r, PF) && vhostd_pf_vfs_present(vhostd_reg_find_pf(r, PF)) == 4,
          "%u PFs listed", n);
}

static void test_vfs(struct vhostd_registry *r)
{
    char msg[512], path[400], other[400];
    snprintf(path, sizeof(path), "%s/vf2.sock", sp.dir);
    struct outcome a1 = {0}, a2 = {0}, none = {0};
    CHECK(vhostd_reg_add_vf(r, "0000:3b:00.1", NULL, NULL, vf_added, &a1, msg, sizeof(msg)) == 0, "add VF 1: %s",
          msg);
    CHECK(vhostd_reg_add_vf(r, "0000:3b:00.2", path, "vm-a", vf_added, &a2, msg, sizeof(msg)) == 0, "add VF 2: %s",
          msg);
    CHECK(!a1.done && !a2.done, "an add's callback ran inside the call that added it");
    /* while being added, a VF holds its BDF and socket path and is not served yet */
    CHECK(vhostd_reg_find_vf(r, "0000:3b:00.1") == NULL && vhostd_reg_find_adding(r, "0000:3b:00.1"),
          "a VF being added is listed as served");
    CHECK(vhostd_reg_add_vf(r, "0000:3b:00.1", NULL, NULL, vf_added, &none, msg, sizeof(msg)) == -EBUSY &&
              strstr(msg, "being added"), "a VF being added was added again: %s", msg);
    CHECK(vhostd_reg_remove_vf(r, "0000:3b:00.1", removed, &none, msg, sizeof(msg)) == -EBUSY &&
              strstr(msg, "being added"), "a VF being added was removed: %s", msg);
    CHECK(run_until(&a1, 10) && run_until(&a2, 10) && a1.err == 0 && a2.err == 0 && a1.calls == 1 && a2.calls == 1,
          "adds: %d %d", a1.err, a2.err);
    CHECK(!none.done, "a refused add or removal called back");
    snprintf(other, sizeof(other), "%s/./vf2.sock", sp.dir);
    CHECK(vhostd_reg_add_vf(r, "0000:3b:00.3", other, NULL, vf_added, &none, msg, sizeof(msg)) == -EEXIST &&
              strstr(msg, "VF 0000:3b:00.2"), "one socket, two spellings: %s", msg);
    CHECK(vhostd_reg_add_vf(r, "0000:3b:00.3", r->opt->rpc_path, NULL, vf_added, &none, msg, sizeof(msg)) == -EEXIST &&
              strstr(msg, "RPC socket"), "the RPC socket as a VF's: %s", msg);
    CHECK(vhostd_reg_add_vf(r, "0000:3b:00.1", NULL, NULL, vf_added, &none, msg, sizeof(msg)) == -EEXIST,
          "VF added twice");
    CHECK(vhostd_reg_pf_vfs_in_use(r, vhostd_reg_find_pf(r, PF)) == 2, "VFs in use");
    CHECK(vhostd_reg_remove_pf(r, PF, msg, sizeof(msg)) == -EBUSY, "a PF with VFs was removed");
    /* the records are plain data: enough to provision each VF again */
    unsigned cur = 0, n = 0;
    for (struct vhostd_vf *vf; (vf = vhostd_reg_next_vf(r, &cur, PF));) {
        n++;
        if (!strcmp(vf->rec.bdf, "0000:3b:00.2"))
            CHECK(!strcmp(vf->rec.socket, path) && !strcmp(vf->rec.uuid, "vm-a") && vf->rec.vf_num == 2 &&
                      !strcmp(vf->rec.pf, PF), "record of VF 2: %s %s %u %s", vf->rec.socket, vf->rec.uuid,
                  vf->rec.vf_num, vf->rec.pf);
    }
    CHECK(n == 2, "%u VFs listed", n);
    /* removal: answered later, the VF stays known (busy) until it is gone */
    struct outcome o = {0};
    CHECK(vhostd_reg_remove_vf(r, "0000:3b:00.2", removed, &o, msg, sizeof(msg)) == 0, "remove: %s", msg);
    CHECK(!o.done, "the removal callback ran inside the call that removed the VF");
    CHECK(vhostd_reg_find_vf(r, "0000:3b:00.2") == NULL, "a VF being removed is still served");
    CHECK(vhostd_reg_add_vf(r, "0000:3b:00.2", NULL, NULL, vf_added, &none, msg, sizeof(msg)) == -EBUSY,
          "a VF being removed was added again: %s", msg);
    CHECK(vhostd_reg_remove_vf(r, "0000:3b:00.2", removed, &o, msg, sizeof(msg)) == -EALREADY, "removed twice");
    CHECK(run_until(&o, 5) && o.calls == 1, "removal not completed");
    struct stat st;
    CHECK(lstat(path, &st) < 0, "the removed VF's socket is still there");
    CHECK(vhostd_reg_remove_vf(r, "0000:3b:00.2", removed, &o, msg, sizeof(msg)) == -ENOENT, "unknown VF");
    /* shutdown */
    struct outcome d = {0};
    CHECK(vhostd_reg_drain(r, drained, &d) == 1 && !d.done, "drain");
    CHECK(run_until(&d, 5) && d.calls == 1, "drain not completed");
    cur = 0;
    CHECK(vhostd_reg_next_vf(r, &cur, NULL) == NULL, "VFs left after the drain");
    CHECK(vhostd_reg_drain(r, drained, &d) == 0, "an empty registry has nothing to drain");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    vfe_log_set_level(getenv("VFE_TEST_DEBUG") ? LOG_DEBUG : LOG_WARNING);
    const char *args[] = {"--pf", PF, "--vfs", "4", "--total-vfs", "4", "--log-level", "warning", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    loop = ev_default_loop(0);
    char rpc[400], iface[400], msg[512];
    snprintf(rpc, sizeof(rpc), "%s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%s/vf-", sp.dir);
    struct vhostd_options opt = {.pci_root = sp.root, .rpc_path = rpc, .iface_prefix = iface};
    static struct vhostd_registry r;
    CHECK(vhostd_reg_init(&r, loop, &opt, msg, sizeof(msg)) == 0, "init: %s", msg);
    struct vhostd_options bad = opt;
    bad.pci_root = "/nonexistent/tree";
    static struct vhostd_registry rb;
    CHECK(vhostd_reg_init(&rb, loop, &bad, msg, sizeof(msg)) == -ENOENT && strstr(msg, "--pci-root"),
          "a missing PCI tree: %s", msg);
    test_pfs(&r);
    test_vfs(&r);
    vhostd_reg_close(&r);
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("registry");
}
