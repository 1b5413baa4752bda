/*
 * vhostmgmt against the sim and vfe-vhostd: provisioning in the peer CLI's
 * syntax (long options, any order, short and upper-case BDFs) and in vfe's,
 * -h on every subcommand, --version, the program under its second name
 * vfe-vhost-cli, bad input (exit 2, one line on stderr, nothing sent), commands
 * on stdin in both syntaxes, and --tcp against the daemon's --compat-tcp.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/integration/vhostmgmt/mgmt_test.h"
#include "tests/lib/check.h"
#include "vfe_version.h"

#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"

static struct mt_daemon d;
static char out[65536], err[8192];

/* vhostmgmt -s RPC args... (NULL-terminated); stdout in out, stderr in err. */
static int mgmt_in(const char *prog, const char *stdin_text, ...)
{
    const char *argv[40] = {prog, "-s", d.rpc};
    unsigned n = 3;
    va_list ap;
    va_start(ap, stdin_text);
    for (const char *a; (a = va_arg(ap, const char *)) && n < 39;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return mt_run(argv, stdin_text, out, sizeof(out), err, sizeof(err), 20000);
}

#define MGMT(...) mgmt_in(mt_vhostmgmt(), NULL, __VA_ARGS__, NULL)

/* The number of VFs the daemon serves (stats through the unix socket), -1 on failure. */
static int vf_count(void)
{
    if (MGMT("--json", "stats"))
        return -1;
    json_t *r = json_loads(out, 0, NULL);
    int n = r ? (int)json_array_size(json_object_get(r, "vfs")) : -1;
    json_decref(r);
    return n;
}

static void test_version_and_names(const char *alias)
{
    const char *v[] = {mt_vhostmgmt(), "--version", NULL};
    CHECK(mt_run(v, NULL, out, sizeof(out), err, sizeof(err), 5000) == 0 && !strcmp(out, "vhostmgmt (vfe) " VFE_VERSION "\n")
              && !err[0], "--version: '%s' '%s'", out, err);
    const char *va[] = {alias, "--version", NULL};
    CHECK(mt_run(va, NULL, out, sizeof(out), err, sizeof(err), 5000) == 0 &&
              !strcmp(out, "vfe-vhost-cli (vfe) " VFE_VERSION "\n"), "vfe-vhost-cli --version: '%s' '%s'", out, err);
    const char *h[] = {alias, "--help", NULL};
    CHECK(mt_run(h, NULL, out, sizeof(out), err, sizeof(err), 5000) == 0 && !strncmp(out, "Usage: vfe-vhost-cli ", 21) &&
              strstr(out, "Exit status") && !err[0], "vfe-vhost-cli --help: '%.200s' '%s'", out, err);
    CHECK(mgmt_in(alias, NULL, "vf", "--bogus", NULL) == 2 && !strncmp(err, "vfe-vhost-cli: vf: unknown option", 33),
          "messages under the second name: %s", err);
    /* the same program under both names: the same answer from the daemon */
    CHECK(mgmt_in(alias, NULL, "version", NULL) == 0 && strstr(out, "vfe-vhostd"), "vfe-vhost-cli version: %s %s", out,
          err);
}

static void test_help_everywhere(void)
{
    static const char *const verbs[] = {"mgmtpf", "vf", "bind", "stats", "migration", "health", "upgrade", "version"};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        char want[80];
        snprintf(want, sizeof(want), "Usage: vhostmgmt [GLOBAL OPTIONS] %s", verbs[i]);
        CHECK(MGMT(verbs[i], "-h") == 0 && !strncmp(out, want, strlen(want)) && !err[0], "%s -h: '%.100s' '%s'",
              verbs[i], out, err);
        CHECK(MGMT(verbs[i], "--help") == 0 && !strncmp(out, want, strlen(want)), "%s --help: %.100s", verbs[i], out);
    }
    /* -h wins over the rest of a command: nothing is sent */
    CHECK(MGMT("vf", "--add", VF2, "-h") == 0 && strstr(out, "--socket-file") && vf_count() == 0,
          "vf --add BDF -h: %.100s", out);
    const char *top[] = {mt_vhostmgmt(), "-h", NULL};
    CHECK(mt_run(top, NULL, out, sizeof(out), err, sizeof(err), 5000) == 0 && strstr(out, "--tcp") &&
              strstr(out, "--version"), "vhostmgmt -h: %.200s", out);
}

/* Each is refused before anything is sent: exit 2, one line on stderr naming the problem, nothing on stdout. */
static void test_bad_input(void)
{
    char longsock[200], longuuid[100];
    memset(longsock, 'a', sizeof(longsock));
    longsock[0] = '/';
    longsock[150] = '\0';
    memset(longuuid, 'u', sizeof(longuuid));
    longuuid[80] = '\0';
    struct {
        const char *args[8];
        const char *says;
    } cases[] = {
        {{"vf", "--add", VF2, "--frob"}, "unknown option '--frob'"},
        {{"vf", "-a", VF2, "-v"}, "option '-v' needs an argument"},
        {{"vf", "--add", "3b:00.8"}, "'3b:00.8' is not a PCI address"},
        {{"vf", "--add", "0000:3b:00.2x"}, "is not a PCI address"},
        {{"vf", "-a", VF2, "-r"}, "conflicting operations '-a' and '-r'"},
        {{"mgmtpf", "--add", "--remove", MT_PF}, "conflicting operations"},
        {{"vf", "-a", VF2, "-v", longsock}, "the socket path is 150 bytes long"},
        {{"vf", "-a", VF2, "-u", longuuid}, "the VM id must be 1 to 63 bytes long"},
        {{"vf", "-r", VF2, "-u", "vm"}, "'-u' does not go with '-r'"},
        {{"vf", "--add"}, "which device?"},
        {{"frobnicate"}, "unknown command 'frobnicate'"},
        {{"version", "extra"}, "version takes no arguments"},
        {{"vf", "-d", VF1, "-o", "9"}, "'9' is not a test operation 1..6"},
        {{"--timeout", "0", "version"}, "--timeout '0'"},
        {{"--tcp", "127.0.0.1:0", "version"}, "the port must be a number"},
        {{"--tcp", d.tcp, "stats"}, "stats is not part of the peer's TCP interface"},
        {{"--tcp", d.tcp, "vf", "-a", VF2, "--direct"}, "--direct is not part of the peer's TCP interface"},
        {{"--nosuch", "version"}, "unknown option '--nosuch'"},
    };
    int before = vf_count();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const *a = cases[i].args;
        int rc = MGMT(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
        CHECK(rc == 2 && !out[0] && mt_lines(err) == 1 && !strncmp(err, "vhostmgmt: ", 11) && strstr(err, cases[i].says),
              "case %zu (%s %s ...): exit %d, stdout '%.100s', stderr '%s'", i, a[0], a[1] ? a[1] : "", rc, out, err);
    }
    CHECK(vf_count() == before, "a refused command changed the daemon: %d VFs, were %d", vf_count(), before);
}

static void test_provision_both_syntaxes(void)
{
    char sock1[400];
    snprintf(sock1, sizeof(sock1), "%.300s/peer-style.sock", d.sp.dir);
    /* the peer's syntax: long options, the device after them, short and upper-case BDFs */
    CHECK(MGMT("mgmtpf", "--add", "3B:00.0") == 0, "mgmtpf --add 3B:00.0: %s %s", out, err);
    CHECK(MGMT("vf", "-v", sock1, "-u", "vm-a", "3b:00.1", "--add") == 0, "vf -v S -u U BDF --add: %s %s", out, err);
    CHECK(access(sock1, F_OK) == 0, "the VF's socket is not at %s", sock1);
    CHECK(MGMT("--json", "vf", "--info", "3B:00.1") == 0 && strstr(out, "\"" VF1 "\"") && strstr(out, sock1) &&
              strstr(out, "vm-a"), "vf --info (upper case, short): %s %s", out, err);
    /* vfe's syntax keeps working, and both see the same VFs */
    CHECK(MGMT("vf", "-a", VF2) == 0, "vf -a: %s %s", out, err);
    CHECK(MGMT("--json", "vf", "--list", "3b:00.0") == 0 && strstr(out, VF1) && strstr(out, VF2),
          "vf --list short PF: %s %s", out, err);
    CHECK(MGMT("--json", "vf", "-l", "--mgmtpf", MT_PF) == 0 && strstr(out, VF1) && strstr(out, VF2),
          "vf -l --mgmtpf: %s %s", out, err);
    CHECK(MGMT("stats", "3b:00.2") == 0 && strstr(out, VF2), "stats short BDF: %s %s", out, err);
    CHECK(MGMT("migration", "3B:00.1") == 0 && strstr(out, VF1), "migration upper-case BDF: %s %s", out, err);
    CHECK(vf_count() == 2, "%d VFs", vf_count());
    /* an error of the daemon is exit 1 in both syntaxes */
    CHECK(MGMT("vf", "--add", "3b:00.1") == 1 && strstr(err, "already added"), "VF added twice: %s %s", out, err);
    CHECK(MGMT("vf", "--remove", "3b:00.7") == 1, "unknown VF: %s %s", out, err);
    /* the debug operation is sent (whether the daemon serves it on its unix socket is the daemon's business) */
    int rc = MGMT("vf", "--debug", "3b:00.1", "-o", "6");
    CHECK(rc == 0 || (rc == 1 && mt_lines(err) == 1 && strstr(err, "vhostmgmt: vf: ")), "vf --debug: %d %s %s", rc, out,
          err);
}

static void test_stdin(void)
{
    const char *script = "# both syntaxes in one script\n"
                         "mgmtpf --list\n"
                         "vf --info 3b:00.1\n"
                         "vf -i " VF2 "\n"
                         "vf -l 3B:00.0   # short, upper case\n";
    CHECK(mgmt_in(mt_vhostmgmt(), script, NULL) == 0 && strstr(out, MT_PF) && strstr(out, VF1) && strstr(out, VF2),
          "script: %s %s", out, err);
    CHECK(mgmt_in(mt_vhostmgmt(), "version\nvf --add\nversion\n", NULL) == 2 && strstr(err, "line 2 failed") &&
              strstr(err, "which device?"), "a bad line stops the script: %s", err);
    CHECK(mgmt_in(mt_vhostmgmt(), "vf -h\n", NULL) == 0 && strstr(out, "Usage: vhostmgmt [GLOBAL OPTIONS] vf"),
          "-h in a script: %s %s", out, err);
}

/* The daemon's --compat-tcp through --tcp (its reply formats are the compat work's; checked here: the
 * request reaches it and the answer is printed as the peer's CLI prints it, after the params echo). */
static void test_tcp_to_daemon(void)
{
#define ECHO_LIST "{'list': True, 'mgmtpf': '" MT_PF "'}\n{\n"

    CHECK(MGMT("--tcp", d.tcp, "version") == 0 && out[0] == '{' && strstr(out, "\n  \""), "--tcp version: %s %s", out,
          err);
    CHECK(MGMT("--tcp", d.tcp, "vf", "--list", "3b:00.0") == 0 &&
              !strncmp(out, ECHO_LIST, strlen(ECHO_LIST)) && strstr(out, VF1) && strstr(out, VF2),
          "--tcp vf --list: %s %s", out, err);
    char tcp_eq[48];
    snprintf(tcp_eq, sizeof(tcp_eq), "--tcp=%s", d.tcp);
    CHECK(MGMT(tcp_eq, "--json", "vf", "--info", "3b:00.1") == 0 && out[0] == '{' && strstr(out, VF1),
          "--tcp=ADDR --json vf --info: %s %s", out, err);
}

static void test_cleanup(void)
{
    CHECK(MGMT("vf", "--remove", "3b:00.1") == 0 && MGMT("vf", "3b:00.2", "-r") == 0, "vf removes: %s %s", out, err);
    CHECK(MGMT("mgmtpf", MT_PF, "--remove") == 0, "mgmtpf remove: %s %s", out, err);
    CHECK(vf_count() == 0, "%d VFs left", vf_count());
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (mt_daemon_start(&d))
        return 1;
    char alias[400];
    snprintf(alias, sizeof(alias), "%.300s/vfe-vhost-cli", d.sp.dir);
    char real[4096];
    CHECK(realpath(mt_vhostmgmt(), real) && symlink(real, alias) == 0, "symlink %s", alias);
    test_version_and_names(alias);
    test_help_everywhere();
    test_bad_input();
    test_provision_both_syntaxes();
    test_stdin();
    test_tcp_to_daemon();
    test_cleanup();
    unlink(alias);
    CHECK(mt_daemon_stop(&d) == 0, "vfe-vhostd exit status");
    return check_result("vhostmgmt_cli");
}
