/*
 * vhostmgmt's parts on their own: BDF normalisation, both command syntaxes to
 * the same params (vfe's and the peer's exact request), every class of bad
 * input refused with its reason, the peer's request bytes, and JSON / repr
 * written exactly as the peer's Python CLI writes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/vhostmgmt/mgmt_bdf.h"
#include "tools/vhostmgmt/mgmt_cmd.h"
#include "tools/vhostmgmt/mgmt_peer.h"
#include "tools/vhostmgmt/mgmt_pyjson.h"

static void test_bdf(void **state)
{
    char out[MGMT_BDF_LEN];
    static const char *const good[][2] = {
        {"0000:3b:00.1", "0000:3b:00.1"}, {"af:00.3", "0000:af:00.3"}, {"AF:1F.7", "0000:af:1f.7"},
        {"00AB:Cd:0e.0", "00ab:cd:0e.0"}, {"ffff:ff:1f.7", "ffff:ff:1f.7"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(mgmt_bdf_normalise(good[i][0], out));
        assert_string_equal(out, good[i][1]);
    }
    static const char *const bad[] = {"", "3b:00.8", "3b:20.1", "0000:3b:00", "0000:3b:00.1x", "000:3b:00.1",
                                      "3b:0.1", "g0:00.1", "0000-3b:00.1", "0000:3b:00:1", "+3b:00.1",
                                      "0000:3b:00.12", "00000:3b:00.1", " 3b:00.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(mgmt_bdf_normalise(bad[i], out));
        assert_string_equal(out, "");
    }
    assert_false(mgmt_bdf_normalise(NULL, out));
}

/* Split a command line on spaces (tests use no quoting). */
static int words(char *line, char **w)
{
    int n = 0;
    for (char *t = strtok(line, " "); t && n < 31; t = strtok(NULL, " "))
        w[n++] = t;
    return n;
}

/* params of line (peer or vfe) as compact JSON with keys in order; "ERR:<message>" for a refusal. */
static char *params_of(const char *line, bool peer)
{
    char buf[1024], *w[32], err[256];
    snprintf(buf, sizeof(buf), "%s", line);
    struct mgmt_cmd c;
    int n = words(buf, w);
    if (mgmt_cmd_parse(n, w, &c, err, sizeof(err))) {
        char *r = malloc(300);
        snprintf(r, 300, "ERR:%s", err);
        return r;
    }
    if (c.help)
        return strdup("HELP");
    json_t *p = mgmt_cmd_params(&c, peer);
    char *t = p ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("NULL");
    json_decref(p);
    return t;
}

static void expect(const char *line, bool peer, const char *want)
{
    char *got = params_of(line, peer);
    if (strcmp(got, want))
        print_error("'%s' (%s): got %s, want %s\n", line, peer ? "peer" : "vfe", got, want);
    assert_string_equal(got, want);
    free(got);
}

static void test_both_syntaxes(void **state)
{
    /* vfe's syntax and the peer's, in any order, give the same request */
    static const char *const vf_add[] = {
        "vf -a 0000:af:00.3 -v /tmp/s -u vm1", "vf --add af:00.3 -v /tmp/s -u vm1", "vf -v /tmp/s AF:00.3 --add -u vm1",
        "vf -u vm1 --socket-file /tmp/s --vfdev af:00.3 -a", "vf --socket_file=/tmp/s --uuid=vm1 -a af:00.3",
        "vf -v/tmp/s -uvm1 -a af:00.3", "vf -v /tmp/s -u vm1 -a -- af:00.3",
    };
    for (size_t i = 0; i < sizeof(vf_add) / sizeof(vf_add[0]); i++)
        expect(vf_add[i], false,
               "{\"add\":true,\"vfdev\":\"0000:af:00.3\",\"socket_file\":\"/tmp/s\",\"uuid\":\"vm1\"}");
    expect("vf -a -- -v", false, "ERR:vf: '-v' is not a PCI address [DDDD:]BB:DD.F");
    expect("vf -a af:00.3 --", false, "{\"add\":true,\"vfdev\":\"0000:af:00.3\"}");
    expect("vf -a af:00.3 -v /tmp/s -u vm1 --socket_file=/x", false, "ERR:vf: '--socket_file=/x' is given twice");
    expect("vf --socket_file=/tmp/s --uuid=vm1 -a af:00.3", true,
           "{\"add\":true,\"vfdev\":\"0000:af:00.3\",\"socket_file\":\"/tmp/s\",\"uuid\":\"vm1\"}");
    /* the peer's CLI sends null for what is not given; vfe's leaves it out */
    expect("vf --add af:00.3", true, "{\"add\":true,\"vfdev\":\"0000:af:00.3\",\"socket_file\":null,\"uuid\":null}");
    expect("vf -a af:00.3", false, "{\"add\":true,\"vfdev\":\"0000:af:00.3\"}");
    expect("vf -a af:00.3 --direct", false, "{\"add\":true,\"vfdev\":\"0000:af:00.3\",\"direct\":true}");
    expect("vf -r 0000:AF:00.3", true, "{\"remove\":true,\"vfdev\":\"0000:af:00.3\"}");
    expect("vf af:00.3 --remove", false, "{\"remove\":true,\"vfdev\":\"0000:af:00.3\"}");
    expect("vf --list af:00.0", true, "{\"list\":true,\"mgmtpf\":\"0000:af:00.0\"}");
    expect("vf -l --mgmtpf af:00.0", true, "{\"list\":true,\"mgmtpf\":\"0000:af:00.0\"}");
    expect("vf --info af:00.3", true, "{\"info\":true,\"vfdev\":\"0000:af:00.3\"}");
    expect("vf -d af:00.3 -o 4 -b 1", true,
           "{\"vfdev\":\"0000:af:00.3\",\"debug\":true,\"test_operation\":4,\"size_mode\":1}");
    expect("vf --debug -o 6 af:00.3", true,
           "{\"vfdev\":\"0000:af:00.3\",\"debug\":true,\"test_operation\":6,\"size_mode\":2}");
    expect("vf -d af:00.3 -o 5 -m bit", true,
           "{\"vfdev\":\"0000:af:00.3\",\"debug\":true,\"test_operation\":5,\"size_mode\":1}");
    expect("mgmtpf -a af:00.0", true, "{\"add\":true,\"dev\":\"0000:af:00.0\"}");
    expect("mgmtpf af:00.0 --remove", true, "{\"remove\":true,\"dev\":\"0000:af:00.0\"}");
    expect("mgmtpf --list", true, "{\"list\":true}");
    expect("version", true, "NULL");
    expect("version", false, "{}");
    expect("stats AF:00.3", false, "{\"vfdev\":\"0000:af:00.3\"}");
    expect("migration", false, "{}");
    expect("bind af:00.3 --force", false, "{\"dev\":\"0000:af:00.3\",\"force\":true}");
    expect("bind af:00.3", false, "{\"dev\":\"0000:af:00.3\",\"force\":false}");
    /* -h anywhere after the subcommand, on every subcommand */
    for (size_t i = 0; i < mgmt_verb_count; i++) {
        char line[64];
        snprintf(line, sizeof(line), "%s -h", mgmt_verb_table[i].name);
        expect(line, false, "HELP");
        snprintf(line, sizeof(line), "%s --help", mgmt_verb_table[i].name);
        expect(line, true, "HELP");
    }
    expect("vf -a af:00.3 --help", false, "HELP");
}

static void test_msix_params(void **state)
{
    expect("vf -a af:00.3 --queues 4", false, "{\"add\":true,\"vfdev\":\"0000:af:00.3\",\"queues\":4}");
    expect("vf --msix=9 -a af:00.3", false, "{\"add\":true,\"vfdev\":\"0000:af:00.3\",\"msix\":9}");
    expect("vf -r af:00.3 --release-msix", false,
           "{\"remove\":true,\"vfdev\":\"0000:af:00.3\",\"release_msix\":true}");
    expect("vf -r af:00.3", false, "{\"remove\":true,\"vfdev\":\"0000:af:00.3\"}");
    expect("mgmtpf --reclaim-msix af:00.0", false, "{\"reclaim_msix\":true,\"dev\":\"0000:af:00.0\"}");
}

static void test_bad_input(void **state)
{
    static const char *const cases[][2] = {
        {"", "no command"},
        {"frob", "unknown command 'frob'"},
        {"vf", "vf: one of -a, -r, -l, -i or -d is needed"},
        {"mgmtpf", "mgmtpf: one of -a, -r, -l or --reclaim-msix is needed"},
        {"vf -a af:00.3 -r", "vf: conflicting operations '-a' and '-r'"},
        {"vf --add --info af:00.3", "vf: conflicting operations '--add' and '--info'"},
        {"vf -a af:00.3 -x", "vf: unknown option '-x'"},
        {"vf -a af:00.3 --sock", "vf: unknown option '--sock'"},
        {"vf -ar af:00.3", "vf: unknown option '-ar'"},
        {"vf -a", "vf -a: which device? (a PCI address [DDDD:]BB:DD.F)"},
        {"vf -a af:00.3 -v", "vf: option '-v' needs an argument"},
        {"vf -a af:00.3 -u", "vf: option '-u' needs an argument"},
        {"vf -a 3b:00.8", "vf: '3b:00.8' is not a PCI address [DDDD:]BB:DD.F"},
        {"vf -a 0000:3b:00.1 0000:3b:00.2", "vf: unexpected '0000:3b:00.2' (the device is '0000:3b:00.1')"},
        {"vf -r af:00.3 -v /tmp/s", "vf: '-v' does not go with '-r'"},
        {"vf -i af:00.3 --direct", "vf: '--direct' does not go with '-i'"},
        {"vf -a af:00.3 -o 1", "vf: '-o' does not go with '-a'"},
        {"vf -l --vfdev af:00.3", "vf: '--vfdev' does not go with '-l'"},
        {"vf -d af:00.3", "vf -d: the test operation (-o 1..6) is needed"},
        {"vf -d af:00.3 -o 7", "vf: -o: '7' is not a test operation 1..6"},
        {"vf -d af:00.3 -o 1x", "vf: -o: '1x' is not a test operation 1..6"},
        {"vf -d af:00.3 -o 4 -b 3", "vf: -b: '3' is not a size mode (1 or bit, 2 or byte)"},
        {"vf -a af:00.3 --direct=yes", "vf: option '--direct=yes' takes no argument"},
        {"vf -a af:00.3 --direct --direct", "vf: '--direct' is given twice"},
        {"vf -a af:00.3 --vfdev af:00.4", "vf: the device is given twice ('af:00.3' and 'af:00.4')"},
        {"mgmtpf -l af:00.0", "mgmtpf -l takes no device ('af:00.0')"},
        {"version now", "version takes no arguments ('now')"},
        {"health -x", "health: unknown option '-x'"},
        {"stats a b", "stats: 'a' is not a PCI address [DDDD:]BB:DD.F"},
        {"stats 3b:00.1 3b:00.2", "stats: unexpected '3b:00.2' (the device is '3b:00.1')"},
        {"bind", "bind : which device? (a PCI address [DDDD:]BB:DD.F)"},
        /* dynamic MSI-X */
        {"vf -a af:00.3 --queues 2 --msix 5", "vf: '--queues' and '--msix': one of them, not both"},
        {"vf -a af:00.3 --queues 0", "vf: --queues: '0' is not a number 1..1023"},
        {"vf -a af:00.3 --queues x", "vf: --queues: 'x' is not a number 1..1023"},
        {"vf -a af:00.3 --msix 3", "vf: --msix: '3' is not a number 4..2048"},
        {"vf -a af:00.3 --msix 2049", "vf: --msix: '2049' is not a number 4..2048"},
        {"vf -a af:00.3 --queues", "vf: option '--queues' needs an argument"},
        {"vf -r af:00.3 --queues 2", "vf: '--queues' does not go with '-r'"},
        {"vf -a af:00.3 --release-msix", "vf: '--release-msix' does not go with '-a'"},
        {"mgmtpf --reclaim-msix", "mgmtpf --reclaim-msix: which device? (a PCI address [DDDD:]BB:DD.F)"},
        {"mgmtpf -a af:00.0 --reclaim-msix af:00.0", "mgmtpf: conflicting operations '-a' and '--reclaim-msix'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[300];
        snprintf(want, sizeof(want), "ERR:%s", cases[i][1]);
        expect(cases[i][0], false, want);
    }
    /* too long strings: a socket path that does not fit sun_path, a VM id longer than the daemon keeps */
    char line[600], sock[200], uuid[100];
    memset(sock, 'a', sizeof(sock));
    sock[0] = '/';
    sock[MGMT_SOCKET_MAX + 1] = '\0';
    snprintf(line, sizeof(line), "vf -a af:00.3 -v %s", sock);
    expect(line, false, "ERR:vf: -v: the socket path is 108 bytes long, at most 107 fit in a unix socket address");
    sock[MGMT_SOCKET_MAX] = '\0';
    snprintf(line, sizeof(line), "vf -a af:00.3 -v %s", sock);
    char *ok = params_of(line, false);
    assert_non_null(strstr(ok, "\"socket_file\""));
    free(ok);
    memset(uuid, 'u', sizeof(uuid));
    uuid[MGMT_UUID_MAX + 1] = '\0';
    snprintf(line, sizeof(line), "vf -a af:00.3 -u %s", uuid);
    expect(line, false, "ERR:vf: -u: the VM id must be 1 to 63 bytes long");
    memset(line, 'b', 500);
    memcpy(line, "vf -a ", 6);
    line[500] = '\0';
    char *r = params_of(line, false);
    assert_non_null(strstr(r, "' is not a PCI address"));
    assert_true(strlen(r) < 120);   /* the message quotes a bounded part of the word */
    free(r);
    /* an empty argument and a control character, as a script could pass them */
    struct mgmt_cmd c;
    char err[256];
    char *w1[] = {"vf", "-a", "af:00.3", "-v", ""};
    assert_int_equal(mgmt_cmd_parse(5, w1, &c, err, sizeof(err)), -1);
    assert_string_equal(err, "vf: -v: the socket path is empty");
    char *w2[] = {"vf", "-a", "af:00.3", "-u", "vm\n1"};
    assert_int_equal(mgmt_cmd_parse(5, w2, &c, err, sizeof(err)), -1);
    assert_string_equal(err, "vf: -u: the VM id has a control character");
}

static void test_peer_request(void **state)
{
    json_t *p = json_pack("{s:b, s:s, s:n, s:n}", "add", 1, "vfdev", "0000:af:00.3", "socket_file", "uuid");
    char *t = mgmt_peer_request("vf", p, 1);
    assert_string_equal(t, "{\"jsonrpc\": \"2.0\", \"method\": \"vf\", \"id\": 1, \"params\": {\"add\": true, "
                           "\"vfdev\": \"0000:af:00.3\", \"socket_file\": null, \"uuid\": null}}");
    free(t);
    json_decref(p);
    t = mgmt_peer_request("version", NULL, 7);
    assert_string_equal(t, "{\"jsonrpc\": \"2.0\", \"method\": \"version\", \"id\": 7}");
    free(t);
    p = json_object();
    t = mgmt_peer_request("version", p, 2);   /* empty params are left out, as Python's "if params" does */
    assert_string_equal(t, "{\"jsonrpc\": \"2.0\", \"method\": \"version\", \"id\": 2}");
    free(t);
    json_decref(p);

    char host[64], port[8], msg[160];
    assert_int_equal(mgmt_peer_addr("127.0.0.1:12190", host, sizeof(host), port, sizeof(port), msg, sizeof(msg)), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "12190");
    assert_int_equal(mgmt_peer_addr("4000", host, sizeof(host), port, sizeof(port), msg, sizeof(msg)), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "4000");
    assert_int_equal(mgmt_peer_addr("[::1]:80", host, sizeof(host), port, sizeof(port), msg, sizeof(msg)), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(mgmt_peer_addr("localhost:9", host, sizeof(host), port, sizeof(port), msg, sizeof(msg)), 0);
    assert_string_equal(host, "localhost");
    static const char *const bad[] = {"", ":80", "host:", "host:0", "host:65536", "host:8x", "[::1]80", "[::1",
                                      "127.0.0.1:-1", "127.0.0.1: 80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mgmt_peer_addr(bad[i], host, sizeof(host), port, sizeof(port), msg, sizeof(msg)), -1);
    char longhost[400];
    memset(longhost, 'h', sizeof(longhost));
    strcpy(longhost + 300, ":80");
    assert_int_equal(mgmt_peer_addr(longhost, host, sizeof(host), port, sizeof(port), msg, sizeof(msg)), -1);
}

static void test_pyjson(void **state)
{
    json_t *v = json_loads("{\"device\": {\"vf\": \"0000:af:00.3\", \"probed\": true, \"msix_num\": \"3\", "
                           "\"device_feature\": {\"value\": \"0x1\", \"00000\": \"VIRTIO_NET_F_CSUM\"}, \"list\": [], "
                           "\"o\": {}, \"n\": null, \"f\": false, \"a\": [1, -2, 1.5, 0.1, 1e-05, 1e16, 100.0, 2.5e-300]}, "
                           "\"errno\": 0, \"errstr\": \"Success\"}", JSON_PRESERVE_ORDER, NULL);
    assert_non_null(v);
    char *t = mgmt_py_dumps_indent(v);
    assert_string_equal(t,
        "{\n"
        "  \"device\": {\n"
        "    \"vf\": \"0000:af:00.3\",\n"
        "    \"probed\": true,\n"
        "    \"msix_num\": \"3\",\n"
        "    \"device_feature\": {\n"
        "      \"value\": \"0x1\",\n"
        "      \"00000\": \"VIRTIO_NET_F_CSUM\"\n"
        "    },\n"
        "    \"list\": [],\n"
        "    \"o\": {},\n"
        "    \"n\": null,\n"
        "    \"f\": false,\n"
        "    \"a\": [\n"
        "      1,\n"
        "      -2,\n"
        "      1.5,\n"
        "      0.1,\n"
        "      1e-05,\n"
        "      1e+16,\n"
        "      100.0,\n"
        "      2.5e-300\n"
        "    ]\n"
        "  },\n"
        "  \"errno\": 0,\n"
        "  \"errstr\": \"Success\"\n"
        "}");
    free(t);
    json_decref(v);
    /* strings as Python escapes them with ensure_ascii */
    v = json_pack("{s:s}", "k", "a\"b\\c\n\t\x01\x7f\xc3\xa9\xf0\x9f\x98\x80/");
    t = mgmt_py_dumps(v);
    assert_string_equal(t, "{\"k\": \"a\\\"b\\\\c\\n\\t\\u0001\\u007f\\u00e9\\ud83d\\ude00/\"}");
    free(t);
    json_decref(v);
    /* repr of the params echo */
    v = json_pack("{s:b, s:s, s:n, s:i, s:b}", "add", 1, "vfdev", "0000:af:00.3", "uuid", "test_operation", 4, "x", 0);
    t = mgmt_py_repr(v);
    assert_string_equal(t, "{'add': True, 'vfdev': '0000:af:00.3', 'uuid': None, 'test_operation': 4, 'x': False}");
    free(t);
    json_decref(v);
    v = json_pack("{s:s, s:s, s:s}", "a", "it's", "b", "say \"x\" it's", "c", "back\\slash\x01\xc3\xa9");
    t = mgmt_py_repr(v);
    assert_string_equal(t, "{'a': \"it's\", 'b': 'say \"x\" it\\'s', 'c': 'back\\\\slash\\x01\xc3\xa9'}");
    free(t);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bdf),          cmocka_unit_test(test_both_syntaxes), cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_msix_params),
        cmocka_unit_test(test_peer_request), cmocka_unit_test(test_pyjson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
