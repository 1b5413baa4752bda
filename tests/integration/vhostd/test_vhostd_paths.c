/*
 * vfe-vhostd and the paths it holds:
 *   - a --pci-root that does not exist, an unknown --socket-group, an --iface
 *     prefix too long for a BDF: refused at start;
 *   - a second daemon on the same --rpc refuses to start, the first serves on;
 *   - a PF whose bring-up fails leaves the registry and can be added again;
 *   - vhost-user sockets are 0660 and in the --socket-group;
 *   - vf -a -v never takes a path that is the RPC socket, another VF's socket
 *     under another spelling, a socket somebody listens on, something that is
 *     not a socket, a path in the PCI tree or one too long for sun_path; every
 *     such path is left as it was;
 *   - a stale socket is replaced; a socket put over the VF's is not removed;
 *   - surprise removal of VF 1 leaves VF 3 addable (the scan goes past holes);
 *   - --client never creates nor removes QEMU's socket.
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define PF "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define VF3 "0000:3b:00.3"
#define VF4 "0000:3b:00.4"

static struct sim_proc sp;
static char rpc[300], iface[300];

#define MGMT(out, ...) vhostmgmt_run(rpc, out, sizeof(out), NULL, __VA_ARGS__, NULL)

/* dir/name into buf. */
static const char *in_dir(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", sp.dir, name);
    return buf;
}

/* The daemon with --pci-root, --rpc rpc_path, --iface and extra args (NULL-terminated). */
static pid_t daemon_spawn(const char *rpc_path, const char *log, const char *const *extra)
{
    const char *argv[24] = {vhostd_bin(), "--pci-root", sp.root, "--rpc", rpc_path, "--iface", iface, "--no-state"};
    unsigned n = 8;
    for (unsigned i = 0; extra && extra[i] && n < 22; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return proc_spawn(argv, log);
}

static bool daemon_ready(const char *log)
{
    const char *ready[] = {"ready: RPC", NULL};
    return file_wait(log, ready, 1, 5000);
}

static bool log_has(const char *log, const char *needle)
{
    const char *n[] = {needle, NULL};
    return file_count(log, n) > 0;
}

/* The inode at path (not followed), 0 if there is nothing. */
static ino_t ino_of(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? st.st_ino : 0;
}

static int unix_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -1;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* A socket the test listens on (as QEMU would with server=on); its fd. */
static int listen_at(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || unix_addr(&sa, path) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 4) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A socket file nobody listens on: what a crashed process leaves. */
static int stale_at(const char *path)
{
    int fd = listen_at(path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static bool connects(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && unix_addr(&sa, path) == 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A group other than ours that we may give files to; -1 if there is none. */
static gid_t other_group(char *name, size_t len, gid_t also_not)
{
    gid_t found = (gid_t)-1;
    if (geteuid() == 0) {
        setgrent();
        for (struct group *g; found == (gid_t)-1 && (g = getgrent());)
            if (g->gr_gid != getegid() && g->gr_gid != also_not) {
                snprintf(name, len, "%s", g->gr_name);
                found = g->gr_gid;
            }
        endgrent();
        return found;
    }
    gid_t groups[64];
    int n = getgroups(64, groups);
    for (int i = 0; i < n; i++) {
        struct group *g = groups[i] != getegid() && groups[i] != also_not ? getgrgid(groups[i]) : NULL;
        if (g) {
            snprintf(name, len, "%s", g->gr_name);
            return g->gr_gid;
        }
    }
    return (gid_t)-1;
}

/* Bad command lines fail at start with a message naming the option, and do not linger. */
static void test_bad_start(void)
{
    char bad_rpc[600], log[600], missing[600];
    char longp[200];
    memset(longp, 'p', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    char long_iface[400];
    snprintf(long_iface, sizeof(long_iface), "%s/%.100s", sp.dir, longp);
    in_dir(bad_rpc, sizeof(bad_rpc), "bad.sock");
    in_dir(missing, sizeof(missing), "no-such-tree");
    static const struct { const char *opt, *needle; } cases[] = {
        {"--pci-root", "--pci-root"}, {"--socket-group", "--socket-group"}, {"--iface", "--iface"},
        {"--rpc-group", "--rpc-group"},
    };
    for (unsigned i = 0; i < 4; i++) {
        const char *val = i == 0 ? missing : i == 1 || i == 3 ? "no-such-group-vfe" : long_iface;
        const char *argv[] = {vhostd_bin(), "--pci-root", i == 0 ? missing : sp.root, "--rpc", bad_rpc, "--iface",
                              i == 2 ? long_iface : iface, i == 1 || i == 3 ? cases[i].opt : NULL, val, NULL};
        snprintf(log, sizeof(log), "%s/bad-start-%u.log", sp.dir, i);
        pid_t pid = proc_spawn(argv, log);
        int st = proc_wait(pid, 3000);
        CHECK(st == 2 && log_has(log, cases[i].needle), "%s %.40s: exit %d, message %s", cases[i].opt, val, st,
              log_has(log, cases[i].needle) ? "present" : "missing");
        if (st < 0)
            proc_stop(pid, 2000);
    }
    CHECK(ino_of(bad_rpc) == 0, "a daemon refused at start left its RPC socket behind");
}

/* A second daemon on the same --rpc must not orphan the first. */
static void test_second_daemon(pid_t first)
{
    char log[600], out[1024];
    ino_t before = ino_of(rpc);
    snprintf(log, sizeof(log), "%s/second.log", sp.dir);
    pid_t pid = daemon_spawn(rpc, log, NULL);
    int st = proc_wait(pid, 3000);
    CHECK(st == 1 && log_has(log, "another vfe-vhostd"), "second daemon on one --rpc: exit %d, message %s", st,
          log_has(log, "another vfe-vhostd") ? "present" : "missing");
    if (st < 0)
        proc_stop(pid, 2000);
    CHECK(proc_alive(first) && ino_of(rpc) == before, "the first daemon lost its RPC socket");
    CHECK(MGMT(out, "version") == 0, "the first daemon does not answer after the second tried: %s", out);
}

/* A PF whose bring-up fails is answered, forgotten and closed (from the loop,
 * not inside the admin completion that failed it): adding it again works. */
static void test_pf_failure(void)
{
    char out[1024], reply[256];
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"admin_fail\",\"status\":1}", reply,
                       sizeof(reply)) == 0, "admin_fail: %s", reply);
    CHECK(MGMT(out, "mgmtpf", "-a", PF) == 1 && strstr(out, "bring-up failed"), "failing PF: %s", out);
    CHECK(MGMT(out, "mgmtpf", "-l") == 0 && !strstr(out, PF), "a failed PF stayed registered: %s", out);
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"clear\"}", reply, sizeof(reply)) == 0,
          "clear: %s", reply);
}

/* Sockets get 0660 and the --socket-group, whatever the umask. */
static void check_perm(const char *path, gid_t group)
{
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode), "no socket at %s", path);
    CHECK((st.st_mode & 07777) == 0660, "%s has mode %o, want 660", path, (unsigned)(st.st_mode & 07777));
    CHECK(group == (gid_t)-1 || st.st_gid == group, "%s has group %u, want %u", path, (unsigned)st.st_gid,
          (unsigned)group);
}

/* vf -a -v PATH is refused, with want in the message, and PATH stays as it was. */
static void refused(const char *path, const char *want)
{
    char out[1024];
    ino_t before = ino_of(path);
    int rc = MGMT(out, "vf", "-a", VF2, "-v", path);
    CHECK(rc == 1 && strstr(out, want), "vf -a -v %s: exit %d, want '%s' in: %s", path, rc, want, out);
    CHECK(ino_of(path) == before, "%s was replaced or removed", path);
    if (rc == 0)
        MGMT(out, "vf", "-r", VF2);   /* keep the next case independent of this failure */
}

static void test_refused_paths(void)
{
    char p[12][600], vf1[600], busy_path[600], longdir[600], out[1024];
    snprintf(vf1, sizeof(vf1), "%s%s", iface, VF1);
    int busy = listen_at(in_dir(busy_path, sizeof(busy_path), "busy.sock"));
    REQUIRE(busy >= 0, out, "cannot listen on %s", busy_path);
    FILE *f = fopen(in_dir(p[0], sizeof(p[0]), "plain"), "w");
    if (f)
        fclose(f);
    mkdir(in_dir(p[1], sizeof(p[1]), "adir"), 0700);
    CHECK(symlink(".", in_dir(p[2], sizeof(p[2]), "lnk")) == 0, "symlink");
    /* a directory whose canonical path leaves no room in sun_path, behind a short link */
    char name[100];
    memset(name, 'd', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    mkdir(in_dir(longdir, sizeof(longdir), name), 0700);
    CHECK(symlink(longdir, in_dir(p[3], sizeof(p[3]), "s")) == 0, "symlink");

    snprintf(p[4], sizeof(p[4]), "%s.lock", rpc);
    refused(p[4], "not a socket");
    refused(busy_path, "in use");
    CHECK(connects(busy_path), "the listening socket %s stopped working", busy_path);
    snprintf(p[5], sizeof(p[5]), "%s/./vf-%s", sp.dir, VF1);
    refused(p[5], "already used by VF " VF1);
    snprintf(p[6], sizeof(p[6]), "%s//lnk/vf-%s", sp.dir, VF1);
    refused(p[6], "already used by VF " VF1);
    CHECK(connects(vf1), "VF 1's socket stopped working");
    refused(in_dir(p[7], sizeof(p[7]), "plain"), "not a socket");
    refused(in_dir(p[8], sizeof(p[8]), "adir"), "not a socket");
    refused(in_dir(p[9], sizeof(p[9]), "missing/x.sock"), "No such file or directory");
    refused(sp.ctl, "PCI tree");
    sim_proc_sock(&sp, VF3, p[10], sizeof(p[10]));
    refused(p[10], "PCI tree");
    snprintf(p[11], sizeof(p[11]), "%s/s/x.sock", sp.dir);
    refused(p[11], "at most 107");
    CHECK(ino_of(in_dir(out, sizeof(out), "s/x.sock")) == 0, "a socket was bound under a truncated name");
    refused(rpc, "RPC socket");
    CHECK(MGMT(out, "version") == 0, "the daemon's RPC socket was taken: %s", out);
out:
    if (busy >= 0)
        close(busy);
}

/* A stale socket is taken; one somebody put over the VF's later is not removed with the VF. */
static void test_stale_and_foreign(gid_t group)
{
    char path[600], out[1024];
    in_dir(path, sizeof(path), "stale.sock");
    REQUIRE(stale_at(path) == 0, out, "cannot leave a stale socket at %s", path);
    CHECK(MGMT(out, "vf", "-a", VF2, "-v", path, "-u", "vm-2") == 0, "a stale socket was not replaced: %s", out);
    CHECK(connects(path), "the daemon does not listen on %s", path);
    check_perm(path, group);
    unlink(path);
    int mine = listen_at(path);
    ino_t ino = ino_of(path);
    CHECK(mine >= 0 && MGMT(out, "vf", "-r", VF2) == 0, "vf -r: %s", out);
    CHECK(ino_of(path) == ino, "removing the VF removed a socket that was not the daemon's");
    if (mine >= 0)
        close(mine);
    unlink(path);
out:;
}

/* QEMU's socket (server=on) in client mode: connected to, never created nor removed. */
static void test_client_mode(void)
{
    char log[600], qemu[600], absent[600], out[1024];
    snprintf(log, sizeof(log), "%s/client.log", sp.dir);
    const char *extra[] = {"--client", NULL};
    pid_t pid = daemon_spawn(rpc, log, extra);
    int fd = listen_at(in_dir(qemu, sizeof(qemu), "qemu3.sock"));
    ino_t ino = ino_of(qemu);
    REQUIRE(daemon_ready(log) && fd >= 0, out, "client-mode daemon did not start");
    CHECK(MGMT(out, "mgmtpf", "-a", PF) == 0, "mgmtpf -a after a surprise removal: %s", out);
    /* VF 1 was removed by surprise: VF 3 is still VF 3 of the PF */
    CHECK(MGMT(out, "vf", "-a", VF3, "-v", qemu) == 0, "vf -a of VF 3 after VF 1 went away: %s", out);
    struct pollfd pfd = {fd, POLLIN, 0};
    CHECK(poll(&pfd, 1, 3000) == 1, "the daemon did not connect to QEMU's socket");
    int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(MGMT(out, "vf", "-a", VF1) == 1 && strstr(out, "no PCI function"), "a removed VF: %s", out);
    CHECK(MGMT(out, "vf", "-a", VF2, "-v", in_dir(absent, sizeof(absent), "absent.sock")) == 0,
          "vf -a with QEMU not started yet: %s", out);
    usleep(300 * 1000);   /* a few reconnect attempts */
    CHECK(ino_of(absent) == 0, "client mode created %s", absent);
    CHECK(MGMT(out, "vf", "-a", VF4, "-v", rpc) == 1 && strstr(out, "RPC socket"), "client to the RPC socket: %s",
          out);
    CHECK(MGMT(out, "vf", "-r", VF3) == 0 && MGMT(out, "vf", "-r", VF2) == 0, "vf -r: %s", out);
    CHECK(ino_of(qemu) == ino && ino_of(absent) == 0, "client mode removed or created QEMU's socket");
    CHECK(proc_stop(pid, 8000) == 0, "client-mode daemon exit status");
    pid = -1;
    CHECK(ino_of(qemu) == ino, "QEMU's socket went with the daemon");
    if (conn >= 0)
        close(conn);
out:
    if (pid > 0)
        proc_stop(pid, 8000);
    if (fd >= 0)
        close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *args[] = {"--pf", PF, "--vfs", "4", "--total-vfs", "4", "--log-level", "info", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    snprintf(rpc, sizeof(rpc), "%.150s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%.150s/vf-", sp.dir);
    char log[600], out[2048], gname[64] = "", vf1[600];
    snprintf(log, sizeof(log), "%s/vhostd.log", sp.dir);
    snprintf(vf1, sizeof(vf1), "%s%s", iface, VF1);
    test_bad_start();

    /* the vhost-user sockets' group (QEMU's) and the RPC socket's (operators') are separate */
    gid_t group = other_group(gname, sizeof(gname), (gid_t)-1);
    char rname[64] = "";
    gid_t rgroup = group != (gid_t)-1 ? other_group(rname, sizeof(rname), group) : (gid_t)-1;
    const char *extra[] = {group != (gid_t)-1 ? "--socket-group" : NULL, gname,
                           rgroup != (gid_t)-1 ? "--rpc-group" : NULL, rname, NULL};
    umask(022);   /* the daemon inherits it: its sockets must not */
    pid_t pid = daemon_spawn(rpc, log, extra);
    REQUIRE(daemon_ready(log), done, "vfe-vhostd did not start");
    test_second_daemon(pid);
    test_pf_failure();
    CHECK(MGMT(out, "mgmtpf", "-a", PF) == 0, "mgmtpf -a: %s", out);
    CHECK(MGMT(out, "vf", "-a", VF1) == 0, "vf -a 1: %s", out);
    check_perm(vf1, group);
    check_perm(rpc, rgroup != (gid_t)-1 ? rgroup : getegid());   /* never the vhost-user sockets' group */
    test_refused_paths();
    test_stale_and_foreign(group);
    CHECK(proc_alive(pid), "vfe-vhostd died");
    CHECK(proc_stop(pid, 8000) == 0, "vfe-vhostd exit status");
    pid = -1;
    CHECK(ino_of(vf1) == 0, "the daemon left its own socket %s behind", vf1);

    char reply[512];
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"remove\",\"bdf\":\"" VF1 "\"}", reply,
                       sizeof(reply)) == 0 && strstr(reply, "\"ok\":true"), "surprise removal of VF 1: %s", reply);
    test_client_mode();
done:
    if (pid > 0)
        proc_stop(pid, 8000);
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("vhostd_paths");
}
