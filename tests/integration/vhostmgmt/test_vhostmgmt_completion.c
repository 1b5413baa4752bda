/*
 * The bash completion of vhostmgmt / vfe-vhost-cli, sourced in a real bash
 * against the sim and vfe-vhostd: subcommands, global options, the options
 * that go with the operation typed so far, BDFs of added PFs and VFs asked
 * from the daemon (through -s and through --tcp), PCI functions for add and
 * bind, a BDF typed half-way (bash breaks words at ':'), and silence (no
 * candidates, nothing on stderr, no wait) when the daemon is not there.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/vhostmgmt/mgmt_test.h"
#include "tests/lib/check.h"

#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"

static struct mt_daemon d;
static char out[16384], err[4096];

/* COMPREPLY for the command line typed so far (the cursor at its end), one per line, sorted. */
static int complete(const char *line)
{
    const char *script = "source \"$1\" || exit 9\n"
                         "COMP_LINE=$2; COMP_POINT=${#COMP_LINE}\n"
                         "_vhostmgmt\n"
                         "((${#COMPREPLY[@]})) && printf '%s\\n' \"${COMPREPLY[@]}\" | sort\n"
                         "exit 0\n";
    const char *argv[] = {"/bin/bash", "--norc", "--noprofile", "-c", script, "bash", getenv("VHOSTMGMT_COMPLETION"),
                          line, NULL};
    return mt_run(argv, NULL, out, sizeof(out), err, sizeof(err), 20000);
}

static void expect(const char *line, const char *want)
{
    int rc = complete(line);
    CHECK(rc == 0 && !strcmp(out, want) && !err[0], "'%s':\n got  [%s] (exit %d, stderr '%s')\n want [%s]", line, out,
          rc, err, want);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (mt_daemon_start(&d))
        return 1;
    const char *setup[][6] = {
        {"mgmtpf", "-a", MT_PF}, {"vf", "-a", VF1}, {"vf", "-a", VF2},
    };
    for (size_t i = 0; i < 3; i++) {
        const char *argv[] = {mt_vhostmgmt(), "-s", d.rpc, setup[i][0], setup[i][1], setup[i][2], NULL};
        CHECK(mt_run(argv, NULL, out, sizeof(out), err, sizeof(err), 20000) == 0, "%s %s: %s", setup[i][0],
              setup[i][1], err);
    }
    setenv("VFE_PCI_DEVICES", d.sp.root, 1);
    char line[1024], alias[400], real[4096];
    const char *m = mt_vhostmgmt();
#define LINE(...) (snprintf(line, sizeof(line), __VA_ARGS__), line)

    expect(LINE("%s ", m), "bind\nhealth\nmgmtpf\nmigration\nstats\nupgrade\nversion\nvf\n");
    expect(LINE("%s m", m), "mgmtpf\nmigration\n");
    expect(LINE("%s --t", m), "--tcp\n--timeout\n");
    expect(LINE("%s -s %s v", m, d.rpc), "version\nvf\n");
    /* operations, then the options that go with the one typed */
    expect(LINE("%s -s %s vf -", m, d.rpc), "--add\n--debug\n--help\n--info\n--list\n--remove\n-a\n-d\n-h\n-i\n-l\n-r\n");
    expect(LINE("%s -s %s vf -a %s -", m, d.rpc, VF1),
           "--direct\n--help\n--msix\n--queues\n--socket-file\n--uuid\n--vfdev\n-h\n-u\n-v\n");
    expect(LINE("%s -s %s vf --add -v /tmp/x %s --", m, d.rpc, VF1),
           "--direct\n--help\n--msix\n--queues\n--socket-file\n--uuid\n--vfdev\n");
    expect(LINE("%s -s %s vf --add -v /tmp/x %s -", m, d.rpc, VF1),
           "--direct\n--help\n--msix\n--queues\n--socket-file\n--uuid\n--vfdev\n-h\n-u\n");
    expect(LINE("%s -s %s vf -a %s --queues ", m, d.rpc, VF1), "");
    expect(LINE("%s -s %s vf -r %s -", m, d.rpc, VF1), "--help\n--release-msix\n--vfdev\n-h\n");
    expect(LINE("%s -s %s vf -d %s -o ", m, d.rpc, VF1), "1\n2\n3\n4\n5\n6\n");
    expect(LINE("%s -s %s mgmtpf -", m, d.rpc), "--add\n--help\n--list\n--reclaim-msix\n--remove\n-a\n-h\n-l\n-r\n");
    expect(LINE("%s -s %s mgmtpf --reclaim-msix ", m, d.rpc), MT_PF "\n");
    /* BDFs from the daemon: PFs for vf -l and mgmtpf -r, VFs for vf -r/-i/-d, stats and migration */
    expect(LINE("%s -s %s vf -l ", m, d.rpc), MT_PF "\n");
    expect(LINE("%s --socket %s mgmtpf --remove ", m, d.rpc), MT_PF "\n");
    expect(LINE("%s -s %s vf -r ", m, d.rpc), VF1 "\n" VF2 "\n");
    expect(LINE("%s -s %s vf --info ", m, d.rpc), VF1 "\n" VF2 "\n");
    expect(LINE("%s -s %s vf -d ", m, d.rpc), VF1 "\n" VF2 "\n");
    expect(LINE("%s -s %s stats ", m, d.rpc), VF1 "\n" VF2 "\n");
    expect(LINE("%s -s %s migration ", m, d.rpc), VF1 "\n" VF2 "\n");
    expect(LINE("%s -s %s vf --list --mgmtpf ", m, d.rpc), MT_PF "\n");
    expect(LINE("%s -s %s vf -r %s ", m, d.rpc, VF1), "");   /* the device is there already */
    /* half a BDF: bash replaces the part after the last ':', so that is what the candidates hold */
    expect(LINE("%s -s %s vf -r 0000:3b:00.", m, d.rpc), "00.1\n00.2\n");
    expect(LINE("%s -s %s vf -r 0000:3b:00.2", m, d.rpc), "00.2\n");
    /* the same through the peer's interface (--tcp to the daemon's --compat-tcp) */
    expect(LINE("%s --tcp %s vf -l ", m, d.tcp), MT_PF "\n");
    expect(LINE("%s --tcp %s vf -i ", m, d.tcp), VF1 "\n" VF2 "\n");
    /* PCI functions for add and bind (here the sim's tree) */
    const char *pci = MT_PF "\n" VF1 "\n" VF2 "\n0000:3b:00.3\n0000:3b:00.4\n";
    expect(LINE("%s -s %s bind ", m, d.rpc), pci);
    expect(LINE("%s -s %s mgmtpf -a ", m, d.rpc), pci);
    expect(LINE("%s -s %s vf -a 0000:3b:00.", m, d.rpc), "00.0\n00.1\n00.2\n00.3\n00.4\n");
    expect(LINE("%s -s %s bind %s -", m, d.rpc, VF1), "--force\n--help\n-f\n-h\n");
    /* under its second name */
    snprintf(alias, sizeof(alias), "%.300s/vfe-vhost-cli", d.sp.dir);
    CHECK(realpath(m, real) && symlink(real, alias) == 0, "symlink %s", alias);
    expect(LINE("%s -s %s vf -i ", alias, d.rpc), VF1 "\n" VF2 "\n");
    unlink(alias);
    /* no daemon there: no candidates, no message, no wait */
    char gone[400];
    snprintf(gone, sizeof(gone), "%.300s/nobody.sock", d.sp.dir);
    long t0 = check_now_ms();
    expect(LINE("%s -s %s vf -r ", m, gone), "");
    expect(LINE("%s --tcp 127.0.0.1:%d vf -r ", m, mt_free_port()), "");
    CHECK(check_now_ms() - t0 < 4000, "completion without a daemon took %ld ms", check_now_ms() - t0);
    /* the file registers both names */
    const char *argv[] = {"/bin/bash", "--norc", "-c", "source \"$1\"; complete -p vhostmgmt vfe-vhost-cli", "bash",
                          getenv("VHOSTMGMT_COMPLETION"), NULL};
    CHECK(mt_run(argv, NULL, out, sizeof(out), err, sizeof(err), 5000) == 0 &&
              strstr(out, "complete -F _vhostmgmt vhostmgmt") && strstr(out, "complete -F _vhostmgmt vfe-vhost-cli"),
          "complete -p: %s %s", out, err);

    CHECK(mt_daemon_stop(&d) == 0, "vfe-vhostd exit status");
    return check_result("vhostmgmt_completion");
}
