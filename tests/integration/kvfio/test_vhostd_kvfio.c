/*
 * vfe-vhostd's kernel VFIO side, without /dev/vfio:
 *   - vf -a --direct on a VF whose PF is not added: served in direct mode,
 *     stats and vf -l say "mode": "direct", the state file keeps it and a
 *     restarted daemon brings it back in direct mode; --direct on a VF of a
 *     managed PF is refused;
 *   - bind on a fake sysfs tree (--pci-root TMP/bus/devices, --vfio-dir):
 *     refused while another driver holds the function (the message names it),
 *     done with --force (driver_override, unbind, drivers_probe written);
 *   - a function without vfio-user.sock goes to kernel VFIO: without an IOMMU
 *     group the add fails and says why, with a group node that is no VFIO
 *     device the add fails cleanly; the daemon serves on.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define FN  "0000:01:00.0"

static char rpc[300];

#define MGMT(out, ...) vhostmgmt_run(rpc, out, sizeof(out), NULL, __VA_ARGS__, NULL)

static pid_t daemon_spawn(const char *root, const char *dir, const char *log, const char *const *extra)
{
    char iface[300];
    snprintf(iface, sizeof(iface), "%.200s/vf-", dir);
    const char *argv[20] = {vhostd_bin(), "--pci-root", root, "--rpc", rpc, "--iface", iface};
    unsigned n = 7;
    for (unsigned i = 0; extra && extra[i] && n < 18; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return proc_spawn(argv, log);
}

static bool daemon_ready(const char *log)
{
    const char *ready[] = {"ready: RPC", NULL};
    return file_wait(log, ready, 1, 5000);
}

static void test_direct(struct sim_proc *sp)
{
    char log[600], out[4096], state[300], file[400];
    snprintf(rpc, sizeof(rpc), "%.150s/vhostd.sock", sp->dir);
    snprintf(log, sizeof(log), "%s/vhostd.log", sp->dir);
    snprintf(state, sizeof(state), "%.200s/state", sp->dir);
    const char *extra[] = {"--state-dir", state, NULL};
    pid_t pid = daemon_spawn(sp->root, sp->dir, log, extra);
    REQUIRE(daemon_ready(log), done, "vfe-vhostd did not start");
    CHECK(MGMT(out, "vf", "-a", VF1) == 1 && strstr(out, "add it first"), "VF of an unmanaged PF: %s", out);
    CHECK(MGMT(out, "vf", "-a", VF1, "--bogus") == 2, "vf -a --bogus accepted: %s", out);
    CHECK(MGMT(out, "vf", "-a", VF1, "--direct") == 0, "vf -a --direct: %s", out);
    CHECK(MGMT(out, "--json", "stats", VF1) == 0 && strstr(out, "\"mode\": \"direct\""), "stats: %s", out);
    CHECK(MGMT(out, "--json", "vf", "-l", PF) == 1, "vf -l of a PF that is not added: %s", out);
    snprintf(file, sizeof(file), "%s/provisioning.json", state);
    char st[4096];
    CHECK(file_read(file, st, sizeof(st)) == 0 && strstr(st, "\"mode\": \"direct\""), "state file: %s", st);

    /* the PF's bring-up would reset the VF under its direct driver */
    CHECK(MGMT(out, "mgmtpf", "-a", PF) == 1 && strstr(out, "direct mode"), "mgmtpf -a with a direct VF: %s", out);

    /* restart: the state file brings VF1 back in direct mode */
    CHECK(proc_stop(pid, 8000) == 0, "vfe-vhostd exit status");
    snprintf(log, sizeof(log), "%s/vhostd2.log", sp->dir);
    pid = daemon_spawn(sp->root, sp->dir, log, extra);
    REQUIRE(daemon_ready(log), done, "vfe-vhostd did not restart");
    long end = check_now_ms() + 5000;
    bool back = false;
    while (!back && check_now_ms() < end) {
        back = MGMT(out, "--json", "stats", VF1) == 0 && strstr(out, "\"mode\": \"direct\"");
        if (!back)
            usleep(50000);
    }
    CHECK(back, "VF1 not back in direct mode after a restart: %s", out);

    /* a managed PF's VF is driven through the admin queue, never directly */
    CHECK(MGMT(out, "vf", "-r", VF1) == 0, "vf -r VF1: %s", out);
    CHECK(MGMT(out, "mgmtpf", "-a", PF) == 0, "mgmtpf -a: %s", out);
    CHECK(MGMT(out, "vf", "-a", VF2, "--direct") == 1 && strstr(out, "managed"), "--direct on a managed PF: %s",
          out);
    CHECK(MGMT(out, "vf", "-a", VF2) == 0, "vf -a VF2: %s", out);
    CHECK(MGMT(out, "--json", "stats", VF2) == 0 && strstr(out, "\"mode\": \"admin\""), "stats VF2: %s", out);
done:
    if (pid > 0)
        CHECK(proc_stop(pid, 8000) == 0, "vfe-vhostd exit status");
}

static char root[256];

static void at(char *p, size_t n, const char *rel)
{
    snprintf(p, n, "%s/%s", root, rel);
}

static void mkd(const char *rel)
{
    char p[600];
    at(p, sizeof(p), rel);
    CHECK(mkdir(p, 0755) == 0, "mkdir %s", p);
}

static void touch(const char *rel)
{
    char p[600];
    at(p, sizeof(p), rel);
    CHECK(file_write(p, "") == 0, "create %s", p);
}

static void lnk(const char *target, const char *rel)
{
    char p[600], t[600];
    at(p, sizeof(p), rel);
    at(t, sizeof(t), target);
    CHECK(symlink(t, p) == 0, "symlink %s", p);
}

static void test_bind_and_kernel(void)
{
    snprintf(root, sizeof(root), "/tmp/vfe-kvfio-XXXXXX");
    REQUIRE(mkdtemp(root) != NULL, out0, "temp dir");
    mkd("bus");
    mkd("bus/devices");
    mkd("bus/drivers");
    mkd("bus/drivers/vfio-pci");
    mkd("bus/drivers/virtio-pci");
    touch("bus/drivers/virtio-pci/unbind");
    touch("bus/drivers_probe");
    mkd("groups");
    mkd("groups/5");
    mkd("groups/5/devices");
    mkd("dev");
    mkd("bus/devices/" FN);
    touch("bus/devices/" FN "/driver_override");
    lnk("bus/drivers/virtio-pci", "bus/devices/" FN "/driver");
    lnk("groups/5", "bus/devices/" FN "/iommu_group");
    lnk("bus/devices/" FN, "groups/5/devices/" FN);
    mkd("bus/devices/0000:01:00.1");   /* no iommu_group */

    char devs[400], vdir[400], log[600], out[4096], buf[128], p[600];
    snprintf(devs, sizeof(devs), "%s/bus/devices", root);
    snprintf(vdir, sizeof(vdir), "%s/dev", root);
    snprintf(rpc, sizeof(rpc), "%.150s/vhostd.sock", root);
    snprintf(log, sizeof(log), "%s/vhostd.log", root);
    const char *extra[] = {"--vfio-dir", vdir, "--no-state", NULL};
    pid_t pid = daemon_spawn(devs, root, log, extra);
    REQUIRE(daemon_ready(log), done, "vfe-vhostd did not start on the fake tree");

    CHECK(MGMT(out, "bind", "0000:01:00.0x") == 2, "bind with a bad BDF: %s", out);
    CHECK(MGMT(out, "bind", FN) == 1 && strstr(out, "bound to virtio-pci"), "bind while virtio-pci has it: %s", out);
    at(p, sizeof(p), "bus/drivers_probe");
    CHECK(file_read(p, buf, sizeof(buf)) == 0 && !buf[0], "drivers_probe written by a refused bind: %s", buf);
    CHECK(MGMT(out, "bind", "0000:01:00.1") == 1 && strstr(out, "no IOMMU group"), "bind without IOMMU: %s", out);
    touch("dev/5");
    CHECK(MGMT(out, "bind", FN, "--force") == 0 && strstr(out, "bound to vfio-pci"), "bind --force: %s", out);
    at(p, sizeof(p), "bus/devices/" FN "/driver_override");
    CHECK(file_read(p, buf, sizeof(buf)) == 0 && !strcmp(buf, "vfio-pci"), "driver_override: %s", buf);
    at(p, sizeof(p), "bus/drivers_probe");
    CHECK(file_read(p, buf, sizeof(buf)) == 0 && !strcmp(buf, FN), "drivers_probe: %s", buf);

    /* kernel VFIO selection: no group link, then a group node that is no VFIO device */
    CHECK(MGMT(out, "vf", "-a", "0000:01:00.1") == 1 && strstr(out, "No such device"), "vf -a without IOMMU: %s",
          out);
    CHECK(MGMT(out, "vf", "-a", FN) == 1 && strstr(out, "cannot open"), "vf -a on a fake group node: %s", out);
    const char *why[] = {"no iommu_group: the IOMMU is off", NULL};
    CHECK(file_count(log, why) >= 1, "the log does not say why kernel VFIO failed");
    CHECK(MGMT(out, "version") == 0, "the daemon stopped serving: %s", out);
done:
    if (pid > 0)
        CHECK(proc_stop(pid, 8000) == 0, "vfe-vhostd exit status");
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0, "cleanup");
out0:
    return;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct sim_proc sp;
    const char *args[] = {"--pf", PF, "--vfs", "2", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    test_direct(&sp);
    CHECK(sim_proc_alive(&sp), "sim died");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    test_bind_and_kernel();
    return check_result("vhostd_kvfio");
}
