/*
 * A vhost-user front-end nobody here wrote: DPDK's virtio_user (in
 * dpdk-testpmd, Debian package dpdk-dev).
 *  1. against lib/vhost (vfe-vhost-testd): negotiates and reaches running rings;
 *  2. against vfe-vhostd: testpmd sends frames (txonly) through VF1 and the
 *     test front-end on VF2 receives them.
 * Skipped (77) when dpdk-testpmd is not installed.  DPDK runs without
 * hugepages (--no-huge: its memory is memfd-backed and shareable).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/frontend/testpmd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/frontend/vfe_frontend.h"

static const char *bin(const char *env, const char *dflt)
{
    const char *b = getenv(env);
    return b ? b : dflt;
}

/* testpmd with a virtio_user port on sock; commands fed on stdin by a shell.
 * Its EAL file prefix goes into prefix (see testpmd_exited()). */
static pid_t testpmd(const char *sock, const char *fwd, int seconds, const char *out, char *prefix, size_t plen)
{
    static unsigned seq;
    char vdev[300], script[700];
    snprintf(prefix, plen, "vfe-peer-%d-%u", (int)getpid(), seq++);
    snprintf(vdev, sizeof(vdev), "net_virtio_user0,path=%s,queues=1", sock);
    snprintf(script, sizeof(script),
             "(echo start; sleep %d; echo stop; echo quit) | exec dpdk-testpmd -l 0-1 --no-pci --no-huge -m 512 "
             "--no-shconf --file-prefix %s --vdev %s -- -i --forward-mode=%s --total-num-mbufs=4096 --txpkts=256",
             seconds, prefix, vdev, fwd);
    const char *argv[] = {"sh", "-c", script, NULL};
    return proc_spawn(argv, out);
}

/* Wait for testpmd to quit (stop it if it does not), then remove the DPDK
 * runtime dir its EAL created: nothing of this test stays in /run/dpdk. */
static void testpmd_exited(pid_t t, const char *prefix, const char *log)
{
    int st = proc_wait(t, 30000);
    if (st < 0)
        st = proc_stop(t, 3000);
    CHECK(st == 0, "testpmd exit status (see %s)", log);
    char rundir[512];
    int rc = testpmd_remove_runtime_dir(prefix);
    CHECK(rc == 0, "DPDK runtime dir %s: %s", testpmd_runtime_dir(prefix, rundir, sizeof(rundir)), strerror(-rc));
}

static void test_lib_vhost(const char *dir)
{
    char sock[300], ev[300], tp[300];
    snprintf(sock, sizeof(sock), "%s/testd.sock", dir);
    snprintf(ev, sizeof(ev), "%s/testd.events", dir);
    snprintf(tp, sizeof(tp), "%s/testpmd1.log", dir);
    const char *argv[] = {bin("VFE_VHOST_TESTD", "vfe-vhost-testd"), "--socket", sock, NULL};
    pid_t d = proc_spawn(argv, ev);
    const char *ready[] = {"\"ready\"", NULL};
    CHECK(file_wait(ev, ready, 1, 5000), "vfe-vhost-testd did not start");
    char prefix[64];
    pid_t t = testpmd(sock, "io", 2, tp, prefix, sizeof(prefix));
    const char *st[] = {"ring_start", NULL}, *ok[] = {"\"status\":15", NULL};
    CHECK(file_wait(ev, st, 2, 20000), "DPDK virtio_user did not start both rings (see %s)", tp);
    CHECK(file_wait(ev, ok, 1, 5000), "DPDK virtio_user did not reach DRIVER_OK");
    testpmd_exited(t, prefix, tp);
    CHECK(proc_alive(d), "vfe-vhost-testd died");
    proc_stop(d, 3000);
}

static void test_through_vf(const char *dir)
{
    struct sim_proc sp;
    const char *args[] = {"--pf", "0000:3b:00.0", "--vfs", "2", NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return;
    }
    char rpc[100], iface[300], log[300], tp[300];
    snprintf(rpc, sizeof(rpc), "%.80s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%s/vf-", sp.dir);
    snprintf(log, sizeof(log), "%s/vhostd.log", sp.dir);
    snprintf(tp, sizeof(tp), "%s/testpmd2.log", dir);
    const char *argv[] = {bin("VFE_VHOSTD", "vfe-vhostd"), "--pci-root", sp.root, "--rpc", rpc, "--iface", iface, "--no-state", NULL};
    pid_t d = proc_spawn(argv, log);
    const char *ready[] = {"ready: RPC", NULL};
    struct vfe_fe *fe = NULL;
    REQUIRE(file_wait(log, ready, 1, 5000), out, "vfe-vhostd did not start");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s -s %s mgmtpf -a 0000:3b:00.0 && %s -s %s vf -a 0000:3b:00.1 && %s -s %s vf -a "
             "0000:3b:00.2 >/dev/null", bin("VFE_VHOSTMGMT", "vhostmgmt"), rpc, bin("VFE_VHOSTMGMT", "vhostmgmt"),
             rpc, bin("VFE_VHOSTMGMT", "vhostmgmt"), rpc);
    REQUIRE(system(cmd) == 0, out, "provisioning");
    char s2[400], s1[400];
    snprintf(s1, sizeof(s1), "%s0000:3b:00.1", iface);
    snprintf(s2, sizeof(s2), "%s0000:3b:00.2", iface);
    struct vfe_fe_opts o = {.path = s2};
    fe = vfe_fe_open(&o);
    REQUIRE(fe && vfe_fe_start(fe, NULL) == 0, out, "front-end on VF2");
    char prefix[64];
    pid_t t = testpmd(s1, "txonly", 3, tp, prefix, sizeof(prefix));
    /* txonly frames go to an address nobody owns: the switch floods them to VF2 */
    unsigned got = 0;
    uint8_t buf[2048];
    long end = check_now_ms() + 20000;
    while (got < 100 && check_now_ms() < end) {
        int n = vfe_fe_recv(fe, 0, buf, sizeof(buf), 200);
        if (n == 256)
            got++;
    }
    CHECK(got >= 100, "only %u frames of 256 bytes from DPDK's virtio_user arrived through the VFs (see %s)",
          got, tp);
    testpmd_exited(t, prefix, tp);
    CHECK(proc_alive(d), "vfe-vhostd died");
out:
    vfe_fe_close(fe);
    CHECK(proc_stop(d, 8000) == 0, "vfe-vhostd exit status");
    sim_proc_stop(&sp);
}

int main(void)
{
    if (system("command -v dpdk-testpmd >/dev/null 2>&1") != 0) {
        fprintf(stderr, "dpdk-testpmd not installed (Debian package dpdk-dev): skipped\n");
        return 77;
    }
    char dir[] = "/tmp/vfe-dpdk-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    test_lib_vhost(dir);
    test_through_vf(dir);
    int rc = check_result("dpdk_peer");
    if (!rc) {
        char cmd[100];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return rc;
}
