/*
 * Dynamic MSI-X per VF through vfe-vhostd and vhostmgmt, against the sim
 * (pool of 20 vectors, 3 VFs of 5 each by default, one pair each):
 *  - mgmtpf -l shows the pool; --reclaim-msix is refused while a VF is served
 *    and empties every VF once none is;
 *  - vf -a --queues 4 sizes a VF (10 vectors) before it is opened: a front-end
 *    with 4 pairs runs frames on every pair; one with 5 pairs is refused by
 *    the front-end itself (GET_QUEUE_NUM), and a front-end that asks for a
 *    ring past the VF's pairs is refused by the daemon with a log line and a
 *    closed connection, not a hang;
 *  - an exhausted pool: a clear error saying how many vectors are free;
 *  - kill -9 and restart: the size persisted in provisioning.json is written
 *    back (after the VF's count was changed behind the daemon's back) and the
 *    VF serves 4 pairs again;
 *  - vf -r --release-msix returns the vectors to the pool;
 *  - vf_batch sizes a VF as vf -a does ("queues"), a bad size refuses the batch;
 *  - with --ha: a kill -9 while a sized VF carries frames on 3 pairs, and the
 *    restarted daemon takes it over: same size, no write of its count (the
 *    sim would refuse it and log so), frames on every pair on the same
 *    connection.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/frontend/vfe_frontend.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "lib/rpc/rpc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define PF "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define VF3 "0000:3b:00.3"

static char work[256], state[300], state_file[340], rpc[300], iface[300], log_path[320], ha_sock[320];
static const char *pci;
static pid_t vhostd = -1, ha = -1;
static unsigned starts;
static bool with_ha;
static const char *g_sim_dir;

static int mgmt(char *out, size_t len, ...)
{
    va_list ap;
    va_start(ap, len);
    int rc = vhostmgmt_vrun(rpc, out, len, NULL, ap);
    va_end(ap);
    return rc;
}

static int start_daemon(void)
{
    snprintf(log_path, sizeof(log_path), "%s/vhostd-%u.log", work, ++starts);
    const char *argv[] = {vhostd_bin(), "--pci-root", pci, "--rpc", rpc, "--iface", iface, "--state-dir", state,
                          "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", with_ha ? "--ha" : NULL,
                          ha_sock, NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    return vhostd > 0 && file_wait(log_path, ready, 1, 5000) ? 0 : -1;
}

/* Wait until `vhostmgmt --json CMD...` prints every needle. */
static bool wait_output(int ms, const char *const *needles, const char *verb, const char *a1, const char *a2)
{
    char out[16384];
    long end = check_now_ms() + ms;
    do {
        bool ok = mgmt(out, sizeof(out), "--json", verb, a1, a2, NULL) == 0;
        for (unsigned i = 0; ok && needles[i]; i++)
            ok = strstr(out, needles[i]) != NULL;
        if (ok)
            return true;
        usleep(50000);
    } while (check_now_ms() < end);
    fprintf(stderr, "last output of %s %s %s: %s\n", verb, a1 ? a1 : "", a2 ? a2 : "", out);
    return false;
}

static int vf_count(const char *bdf)
{
    char path[600], buf[32];
    snprintf(path, sizeof(path), "%s/%s/sriov_vf_msix_count", pci, bdf);
    return file_read(path, buf, sizeof(buf)) == 0 ? atoi(buf) : -1;
}

static bool wait_count(const char *bdf, int want)
{
    long end = check_now_ms() + 3000;
    while (vf_count(bdf) != want && check_now_ms() < end)
        usleep(20000);
    return vf_count(bdf) == want;
}

static void sock_of(const char *bdf, char *out, size_t len)
{
    snprintf(out, len, "%s%s", iface, bdf);
}

static const uint8_t ma[6] = {0x02, 0xaa, 0, 0, 0, 1}, mb[6] = {0x02, 0xbb, 0, 0, 0, 2};

/* 20 frames on each of a's pairs, all received by b on its pair 0. */
static void send_every_pair(struct vfe_fe *a, struct vfe_fe *b, unsigned pairs, const char *what)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[1600], in[2100];
    vfe_fe_frame(f, 60, bcast, mb, 1);   /* the switch learns b */
    vfe_fe_send(b, 0, f, 60);
    vfe_fe_recv(a, 0, in, sizeof(in), 1000);
    for (unsigned p = 0; p < pairs; p++) {
        unsigned ok = 0;
        for (unsigned i = 0; i < 20; i++) {
            size_t len = 60 + (p * 131 + i * 67) % 1400;
            vfe_fe_frame(f, len, mb, ma, 100 * p + i);
            if (vfe_fe_send(a, p, f, len) == 0 && vfe_fe_recv(b, 0, in, sizeof(in), 3000) == (int)len &&
                !memcmp(in, f, len))
                ok++;
        }
        CHECK(ok == 20, "%s: pair %u: %u of 20 frames arrived", what, p, ok);
    }
}

/* Front-end a (VF1, `pairs` pairs) sends on each pair to b (VF2, 1 pair). */
static void frames_on_every_pair(unsigned pairs, const char *what)
{
    char sa[340], sb[340];
    sock_of(VF1, sa, sizeof(sa));
    sock_of(VF2, sb, sizeof(sb));
    struct vfe_fe_opts oa = {.path = sa, .pairs = pairs}, ob = {.path = sb, .pairs = 1};
    struct vfe_fe *a = vfe_fe_open(&oa), *b = vfe_fe_open(&ob);
    REQUIRE(a && b, out, "%s: front-ends did not connect", what);
    CHECK(vfe_fe_queue_num(a) == pairs, "%s: GET_QUEUE_NUM %u, want %u", what, vfe_fe_queue_num(a), pairs);
    REQUIRE(vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, out, "%s: start", what);
    char running[40];
    snprintf(running, sizeof(running), "\"rings_running\": %u", 2 * pairs);
    const char *ra[] = {running, NULL}, *rb[] = {"\"rings_running\": 2", NULL};
    CHECK(wait_output(5000, ra, "stats", VF1, NULL) && wait_output(5000, rb, "stats", VF2, NULL),
          "%s: rings not running", what);
    send_every_pair(a, b, pairs, what);
out:
    vfe_fe_close(a);
    vfe_fe_close(b);
}

/* A front-end that ignores GET_QUEUE_NUM and sets up ring `ring`: the daemon
 * must close the connection (not hang) and say why. */
static void ring_past_the_pairs(unsigned ring)
{
    char path[340];
    sock_of(VF1, path, sizeof(path));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    REQUIRE(strlen(path) < sizeof(a.sun_path), out0, "socket path too long");
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, out, "connect %s", path);
    /* header: request, flags (version 1), size; then the payload */
    uint32_t owner[3] = {3 /* SET_OWNER */, 1, 0};
    uint32_t num[5] = {8 /* SET_VRING_NUM */, 1, 8, ring, 256};
    CHECK(write(fd, owner, sizeof(owner)) == (ssize_t)sizeof(owner) && write(fd, num, sizeof(num)) == (ssize_t)sizeof(num),
          "write to the daemon");
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char b[64];
    ssize_t n;
    while ((n = read(fd, b, sizeof(b))) > 0)
        ;
    CHECK(n == 0, "ring %u past the VF's pairs: the connection was not closed (read %zd)", ring, n);
    char why[80];
    snprintf(why, sizeof(why), "ring %u refused: the device has 4 queue pairs", ring);
    const char *needle[] = {why, "more queues than this VF offers", NULL};
    CHECK(file_wait(log_path, needle, 1, 3000), "no log line '%s'", why);
out:
    if (fd >= 0)
        close(fd);
out0:;
}

/* --ha: a sized VF taken over by a restarted daemon keeps its size and its traffic. */
static void test_ha_takeover(void)
{
    char out[16384], sa[340], sb[340];
    struct vfe_fe *a = NULL, *b = NULL;
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF1, "--queues", "3", NULL) == 0, "vf -a --queues 3: %s", out);
    CHECK(vf_count(VF1) == 8, "VF1 count %d, want 8", vf_count(VF1));
    sock_of(VF1, sa, sizeof(sa));
    sock_of(VF2, sb, sizeof(sb));
    struct vfe_fe_opts oa = {.path = sa, .pairs = 3}, ob = {.path = sb, .pairs = 1};
    a = vfe_fe_open(&oa);
    b = vfe_fe_open(&ob);
    REQUIRE(a && b && vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, out, "HA: front-ends");
    const char *ra[] = {"\"rings_running\": 6", NULL};
    CHECK(wait_output(5000, ra, "stats", VF1, NULL), "HA: 6 rings running");
    send_every_pair(a, b, 3, "HA, before");
    kill(vhostd, SIGKILL);
    proc_wait(vhostd, 5000);
    vhostd = -1;
    REQUIRE(start_daemon() == 0, out, "HA: restart");
    const char *took[] = {"took over 1 PFs and 3 VFs without a reset", NULL};
    CHECK(file_wait(log_path, took, 1, 5000), "HA: no take-over (%s)", log_path);
    const char *same[] = {"\"msix_vectors\": 8", "\"msix_queue_pairs\": 3", "\"queue_pairs\": 3", NULL};
    CHECK(wait_output(3000, same, "stats", VF1, NULL), "HA: size after the take-over");
    CHECK(vf_count(VF1) == 8, "HA: VF1 count %d after the take-over", vf_count(VF1));
    send_every_pair(a, b, 3, "HA, after the take-over");
    char sim_log[400];
    snprintf(sim_log, sizeof(sim_log), "%s/sim.log", g_sim_dir);
    const char *refused[] = {"sriov_vf_msix_count refused", NULL};
    CHECK(file_count(sim_log, refused) == 0, "HA: the restarted daemon tried to resize a VF in use");
    char file[8192];
    file_read(state_file, file, sizeof(file));
    CHECK(strstr(file, "\"msix\": 8"), "HA: state file after the take-over: %s", file);
out:
    vfe_fe_close(a);
    vfe_fe_close(b);
}

/* Bad params straight over the RPC socket: refused as bad params, nothing written. */
static void bad_params(void)
{
    static const char *const bad[] = {
        "{\"add\":true,\"vfdev\":\"" VF3 "\",\"queues\":0}",
        "{\"add\":true,\"vfdev\":\"" VF3 "\",\"queues\":\"2\"}",
        "{\"add\":true,\"vfdev\":\"" VF3 "\",\"queues\":1024}",
        "{\"add\":true,\"vfdev\":\"" VF3 "\",\"msix\":2}",
        "{\"add\":true,\"vfdev\":\"" VF3 "\",\"msix\":2049}",
        "{\"add\":true,\"vfdev\":\"" VF3 "\",\"msix\":5.5}",
        "{\"add\":true,\"vfdev\":\"" VF3 "\",\"msix\":5,\"queues\":2}",
        "{\"remove\":true,\"vfdev\":\"" VF3 "\",\"release_msix\":1}",
    };
    int before = vf_count(VF3);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *p = json_loads(bad[i], 0, NULL), *res = NULL;
        char msg[300] = "";
        int rc = rpc_client_call(rpc, "vf", p, 5000, &res, msg, sizeof(msg));
        CHECK(rc == RPC_INVALID_PARAMS, "vf %s: code %d (%s), want bad params", bad[i], rc, msg);
        json_decref(p);
        json_decref(res);
    }
    CHECK(vf_count(VF3) == before, "a refused request changed VF3's count");
    json_t *p = json_pack("{s:b, s:s}", "reclaim_msix", 1, "dev", "zz"), *res = NULL;
    char msg[300] = "";
    CHECK(rpc_client_call(rpc, "mgmtpf", p, 5000, &res, msg, sizeof(msg)) == RPC_INVALID_PARAMS,
          "reclaim_msix with a bad BDF: %s", msg);
    json_decref(p);
    json_decref(res);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct sim_proc sp = {0};
    const char *sim_args[] = {"--pf", PF, "--vfs", "3", "--total-vfs", "4", "--qpairs", "2", "--msix-pool", "20",
                              "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    snprintf(work, sizeof(work), "%s/vfe-msix-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(work))
        return 1;
    snprintf(state, sizeof(state), "%s/state", work);
    snprintf(state_file, sizeof(state_file), "%s/provisioning.json", state);
    snprintf(rpc, sizeof(rpc), "%s/vhostd.sock", work);
    snprintf(iface, sizeof(iface), "%s/vf-", work);
    char out[16384];
    REQUIRE(sim_proc_start(&sp, sim_args) == 0, done, "sim start");
    pci = sp.root;
    g_sim_dir = sp.dir;
    REQUIRE(start_daemon() == 0, done, "vfe-vhostd did not start");
    REQUIRE(mgmt(out, sizeof(out), "mgmtpf", "-a", PF, NULL) == 0, done, "mgmtpf -a: %s", out);
    const char *pool0[] = {"\"msix_total\": 20", "\"msix_free\": 5", NULL};
    CHECK(wait_output(3000, pool0, "mgmtpf", "-l", NULL), "mgmtpf -l: the pool");

    /* reclaim refused while a VF is served, then done */
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF1, NULL) == 0, "vf -a: %s", out);
    CHECK(mgmt(out, sizeof(out), "mgmtpf", "--reclaim-msix", PF, NULL) != 0 && strstr(out, "served") &&
              strstr(out, VF1),
          "reclaim with VF1 served: %s", out);
    CHECK(vf_count(VF1) == 5 && vf_count(VF2) == 5, "a refused reclaim changed counts");
    CHECK(mgmt(out, sizeof(out), "vf", "-r", VF1, NULL) == 0, "vf -r: %s", out);
    CHECK(vf_count(VF1) == 5, "vf -r without --release-msix keeps the vectors");
    CHECK(mgmt(out, sizeof(out), "--json", "mgmtpf", "--reclaim-msix", PF, NULL) == 0 &&
              strstr(out, "\"msix_free\": 20"),
          "reclaim: %s", out);
    CHECK(wait_count(VF1, 0) && wait_count(VF2, 0) && wait_count(VF3, 0), "reclaim: every VF at 0");

    bad_params();
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF1, NULL) != 0 && strstr(out, "has 0 MSI-X vectors") &&
              strstr(out, "--queues"),
          "vf -a of a VF without vectors: %s", out);

    /* sized VFs: VF1 4 pairs (10), VF2 1 pair (4): 6 free */
    CHECK(mgmt(out, sizeof(out), "--json", "vf", "-a", VF1, "--queues", "4", NULL) == 0 &&
              strstr(out, "\"msix_vectors\": 10"),
          "vf -a --queues 4: %s", out);
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF2, "--msix", "4", NULL) == 0, "vf -a --msix 4: %s", out);
    CHECK(vf_count(VF1) == 10 && vf_count(VF2) == 4, "counts %d %d", vf_count(VF1), vf_count(VF2));
    const char *info[] = {"\"msix_vectors\": 10", "\"msix_queue_pairs\": 4", NULL};
    CHECK(wait_output(3000, info, "vf", "-i", VF1), "vf -i VF1");
    const char *st[] = {"\"msix_vectors\": 10", "\"queue_pairs\": 4", NULL};
    CHECK(wait_output(3000, st, "stats", VF1, NULL), "stats VF1");
    frames_on_every_pair(4, "4 assigned pairs");

    /* more pairs than assigned */
    char sa[340];
    sock_of(VF1, sa, sizeof(sa));
    struct vfe_fe_opts o5 = {.path = sa, .pairs = 5};
    struct vfe_fe *f5 = vfe_fe_open(&o5);
    CHECK(!f5, "a front-end with 5 pairs on a 4-pair VF was accepted");
    vfe_fe_close(f5);
    ring_past_the_pairs(8);
    ring_past_the_pairs(9);

    /* exhausted: 20 - 10 - 4 = 6 free, VF3 holds 0 after the reclaim */
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF3, "--queues", "8", NULL) != 0 && strstr(out, "6 free") &&
              strstr(out, "needs 18"),
          "exhausted pool: %s", out);
    CHECK(vf_count(VF3) == 0, "a refused size wrote the count");
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF1, "--queues", "2", NULL) != 0 && strstr(out, "already added"),
          "resizing a served VF: %s", out);
    CHECK(vf_count(VF1) == 10, "a served VF was resized");
    CHECK(mgmt(out, sizeof(out), "vf", "-a", VF3, "--msix", "5", NULL) == 0, "vf -a VF3 --msix 5: %s", out);
    const char *pool1[] = {"\"msix_free\": 1", NULL};
    CHECK(wait_output(3000, pool1, "mgmtpf", "-l", NULL), "mgmtpf -l: 1 free");

    /* kill -9; the count changes behind the daemon's back; the restart writes it back */
    char file[8192];
    file_read(state_file, file, sizeof(file));
    CHECK(strstr(file, "\"msix\": 10") && strstr(file, "\"msix\": 4"), "state file: %s", file);
    kill(vhostd, SIGKILL);
    proc_wait(vhostd, 5000);
    vhostd = -1;
    char req[128], reply[4096];
    snprintf(req, sizeof(req), "{\"cmd\":\"msix\",\"bdf\":\"%s\"}", VF1);
    long end = check_now_ms() + 3000;
    while (check_now_ms() < end && !(sim_proc_ctl(&sp, req, reply, sizeof(reply)) == 0 &&
                                     strstr(reply, "\"in_use\":false")))
        usleep(20000);
    snprintf(req, sizeof(req), "{\"cmd\":\"msix\",\"bdf\":\"%s\",\"vectors\":5}", VF1);
    CHECK(sim_proc_ctl(&sp, req, reply, sizeof(reply)) == 0 && strstr(reply, "\"ok\":true"), "VF1 to 5: %s", reply);
    REQUIRE(start_daemon() == 0, done, "restart after kill -9");
    const char *back[] = {"\"msix_vectors\": 10", "\"msix_queue_pairs\": 4", NULL};
    CHECK(wait_output(5000, back, "vf", "-i", VF1), "VF1 sized again after the restart");
    CHECK(vf_count(VF1) == 10, "VF1 count %d after restart", vf_count(VF1));
    frames_on_every_pair(4, "after restart");

    /* release */
    CHECK(mgmt(out, sizeof(out), "vf", "-r", VF1, "--release-msix", NULL) == 0, "vf -r --release-msix: %s", out);
    CHECK(wait_count(VF1, 0), "VF1's vectors released (count %d)", vf_count(VF1));
    const char *pool2[] = {"\"msix_free\": 11", NULL};
    CHECK(wait_output(3000, pool2, "mgmtpf", "-l", NULL), "mgmtpf -l: 11 free after the release");
    const char *released[] = {"MSI-X vectors back in its PF's pool", NULL};
    CHECK(file_count(log_path, released) == 1, "release not logged");
    /* vf_batch sizes as `vf -a` does; a bad size refuses the whole batch */
    json_t *bp = json_loads("{\"ops\":[{\"add\":true,\"vfdev\":\"" VF1 "\",\"queues\":0}]}", 0, NULL), *br = NULL;
    char bmsg[300] = "";
    CHECK(rpc_client_call(rpc, "vf_batch", bp, 5000, &br, bmsg, sizeof(bmsg)) == RPC_INVALID_PARAMS &&
          strstr(bmsg, "\"queues\" must be"), "vf_batch with queues 0: %s", bmsg);
    json_decref(bp);
    json_decref(br);
    br = NULL;
    bp = json_loads("{\"ops\":[{\"add\":true,\"vfdev\":\"" VF1 "\",\"queues\":2}]}", 0, NULL);
    CHECK(rpc_client_call(rpc, "vf_batch", bp, 10000, &br, bmsg, sizeof(bmsg)) == 0 &&
          json_integer_value(json_object_get(br, "ok")) == 1, "vf_batch add of VF1 with 2 queues: %s", bmsg);
    json_decref(bp);
    json_decref(br);
    CHECK(vf_count(VF1) == 6, "VF1 count %d after a vf_batch add with 2 queues, want 6", vf_count(VF1));
    const char *two_pairs[] = {"\"msix_vectors\": 6", "\"msix_queue_pairs\": 2", NULL};
    CHECK(wait_output(3000, two_pairs, "vf", "-i", VF1), "vf -i: VF1 sized by the batch");
    CHECK(mgmt(out, sizeof(out), "vf", "-r", VF1, "--release-msix", NULL) == 0 && wait_count(VF1, 0),
          "vf -r --release-msix after the batch: %s", out);
    /* bad params straight over RPC are covered by vhostmgmt's parser and the daemon's checks */
    CHECK(mgmt(out, sizeof(out), "mgmtpf", "--reclaim-msix", "0000:3b:00.7", NULL) != 0, "reclaim of a non-PF: %s",
          out);
    CHECK(proc_alive(vhostd), "vfe-vhostd died");

    /* the same daemon state under --ha */
    CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    vhostd = -1;
    snprintf(ha_sock, sizeof(ha_sock), "%s/ha.sock", work);
    char ha_log[340];
    snprintf(ha_log, sizeof(ha_log), "%s/ha.log", work);
    const char *ha_argv[] = {getenv("VFE_VHOSTD_HA") ? getenv("VFE_VHOSTD_HA") : "vfe-vhostd-ha", "--socket", ha_sock,
                             NULL};
    ha = proc_spawn(ha_argv, ha_log);
    const char *ha_ready[] = {"ready: ", NULL};
    REQUIRE(ha > 0 && file_wait(ha_log, ha_ready, 1, 5000), done, "vfe-vhostd-ha did not start");
    with_ha = true;
    REQUIRE(start_daemon() == 0, done, "vfe-vhostd --ha did not start");
    const char *two[] = {VF2, VF3, NULL};
    CHECK(wait_output(5000, two, "vf", "-l", PF), "VFs 2 and 3 back under --ha");
    test_ha_takeover();
    CHECK(proc_alive(vhostd), "vfe-vhostd --ha died");
done:
    if (vhostd > 0)
        CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    if (ha > 0)
        proc_stop(ha, 3000);
    if (sp.pid > 0)
        sim_proc_stop(&sp);
    proc_remove_workdir(work);
    return check_result("vhostd_msix");
}
