/*
 * vfe-vhostd --compat-tcp against the peer project's tools: every method in
 * the bytes the peer's CLI sends (one request per connection, no newline,
 * "socket_file":null,"uuid":null), with and without "jsonrpc"; reply fields,
 * types and codes exactly; short and upper-case BDFs; each debug operation
 * against VFs with running front-ends, checked on the device (the sim's
 * migration state) and on the traffic; bad input, half requests, silent
 * clients and too many of them while others are served; a non-loopback
 * address refused; a local user without access refused on TCP; the unix
 * socket's replies unchanged.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define PF "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define VF3 "0000:3b:00.3"
#define NIL_UUID "00000000-0000-0000-0000-000000000000"

static struct sim_proc sp;
static pid_t vhostd = -1;
static int port;
static char rpc[300], iface[300], log_path[300];

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read on fd until one whole JSON value is there (parsed), EOF or timeout; raw text in buf. */
static json_t *read_value(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    buf[0] = '\0';
    long end = check_now_ms() + timeout_ms;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = end - check_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return NULL;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            return NULL;
        n += (size_t)r;
        buf[n] = '\0';
        json_t *v = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
        if (v)
            return v;
    }
    return NULL;
}

/* One request on its own connection, as the peer's CLI does it: write, read one reply, close. */
static json_t *tcp_raw(const char *bytes, char *buf, size_t cap)
{
    int fd = tcp_connect();
    if (fd < 0 || write(fd, bytes, strlen(bytes)) != (ssize_t)strlen(bytes)) {
        if (fd >= 0)
            close(fd);
        snprintf(buf, cap, "connect/write failed: %s", strerror(errno));
        return NULL;
    }
    json_t *v = read_value(fd, buf, cap, 5000);
    close(fd);
    return v;
}

static char last[16384];   /* the last reply's text, for messages */

/* The peer CLI's exact bytes (Python's json.dumps: ", " and ": "), no newline. */
static json_t *peer(const char *method, const char *params)
{
    char req[2048];
    if (params)
        snprintf(req, sizeof(req), "{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"id\": 1, \"params\": %s}", method,
                 params);
    else
        snprintf(req, sizeof(req), "{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"id\": 1}", method);
    json_t *v = tcp_raw(req, last, sizeof(last));
    json_t *r = json_incref(json_object_get(v, "result"));
    json_decref(v);
    return r;
}

static json_int_t errno_of(json_t *r)
{
    json_t *e = json_object_get(r, "errno");
    return json_is_integer(e) ? json_integer_value(e) : 12345;
}

static bool is_status(json_t *r, json_int_t code, const char *text)
{
    return r && errno_of(r) == code && json_is_string(json_object_get(r, "errstr")) &&
           !strcmp(json_string_value(json_object_get(r, "errstr")), text);
}

static bool matches(const char *s, const char *re)
{
    regex_t rx;
    if (!s || regcomp(&rx, re, REG_EXTENDED | REG_NOSUB))
        return false;
    bool ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

static const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int start_daemon(void)
{
    snprintf(rpc, sizeof(rpc), "%.200s/vhostd.sock", sp.dir);
    snprintf(iface, sizeof(iface), "%.200s/vf-", sp.dir);
    snprintf(log_path, sizeof(log_path), "%.200s/vhostd.log", sp.dir);
    char tcp[32];
    port = proc_free_tcp_port();
    snprintf(tcp, sizeof(tcp), "127.0.0.1:%d", port);
    const char *argv[] = {vhostd_bin(), "--pci-root", sp.root, "--rpc", rpc, "--iface", iface, "--no-state",
                          "--compat-tcp", tcp, "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    return file_wait(log_path, ready, 1, 5000) ? 0 : -1;
}

static void test_version(void)
{
    json_t *r = peer("version", NULL);
    static const char *const keys[] = {"vfe-vhostd version", "vfe-vhostd build time", "vfe-vhostd-ha version",
                                       "vfe-vhostd-ha build time", NULL};
    for (int i = 0; keys[i]; i++)
        CHECK(json_is_string(json_object_get(r, keys[i])), "version: no string \"%s\": %s", keys[i], last);
    CHECK(is_status(r, 0, "Success") && json_object_size(r) == 6, "version: %s", last);
    CHECK(matches(str(r, "vfe-vhostd build time"), "^[A-Z][a-z]{2} [ 1-3][0-9] [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}$"),
          "build time as the peer writes it: %s", last);
    json_decref(r);
}

/* A user who may not use the unix socket (nobody) is refused on TCP too: the
 * peer's denial as the reply, then the connection closes, the request has no
 * effect (it would add the PF), a log line names the client's port; root is
 * still served. */
static void test_tcp_access(void)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0, done_access, "pipe");
    pid_t pid = fork();
    REQUIRE(pid >= 0, done_access, "fork");
    if (pid == 0) {
        close(fds[0]);
        char out[2048] = "";
        int fd = -1;
        if (setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0)
            fd = tcp_connect();
        const char *req = "{\"jsonrpc\": \"2.0\", \"method\": \"mgmtpf\", \"id\": 1, "
                          "\"params\": {\"add\": true, \"dev\": \"" PF "\"}}";
        struct sockaddr_in me;
        socklen_t ml = sizeof(me);
        if (fd >= 0 && write(fd, req, strlen(req)) == (ssize_t)strlen(req) &&
            getsockname(fd, (struct sockaddr *)&me, &ml) == 0) {
            char buf[1024];
            json_t *v = read_value(fd, buf, sizeof(buf), 5000);
            char c;
            bool eof = v && read(fd, &c, 1) == 0;   /* nothing after the reply, then the end */
            snprintf(out, sizeof(out), "%u %s %s", (unsigned)ntohs(me.sin_port), eof ? "eof" : "open", buf);
            json_decref(v);
        }
        _exit(write(fds[1], out, strlen(out)) >= 0 ? 0 : 1);
    }
    close(fds[1]);
    int st = proc_wait(pid, 8000);
    if (st == -1)
        proc_stop(pid, 1000);
    char got[2048] = "";
    ssize_t n = read(fds[0], got, sizeof(got) - 1);
    close(fds[0]);
    got[n > 0 ? n : 0] = '\0';
    unsigned cport = 0;
    char state[8] = "", reply[1024] = "";
    CHECK(st == 0 && sscanf(got, "%u %7s %1023[^\n]", &cport, state, reply) == 3, "nobody's client: %d: %s", st, got);
    CHECK(!strcmp(reply, "{\"jsonrpc\":\"2.0\",\"result\":{\"errno\":-13,\"errstr\":\"Permission denied\"},\"id\":null}"),
          "nobody refused in the peer's format: %s", reply);
    CHECK(!strcmp(state, "eof"), "connection closed after the refusal: %s", got);
    char line[128];
    snprintf(line, sizeof(line), "from TCP client 127.0.0.1:%u refused: access denied: uid 65534", cport);
    const char *needles[] = {line, NULL};
    CHECK(file_wait(log_path, needles, 1, 2000), "refusal logged with the client's port (%s)", line);
    json_t *r = peer("mgmtpf", "{\"list\": true}");
    CHECK(is_status(r, -1001, "PF device not found"), "nobody's mgmtpf add had no effect: %s", last);
    json_decref(r);
    r = peer("version", NULL);
    CHECK(proc_alive(vhostd) && is_status(r, 0, "Success"), "root still served: %s", last);
    json_decref(r);
    json_t *h = NULL;
    char msg[256];
    CHECK(rpc_client_call(rpc, "health", NULL, 2000, &h, msg, sizeof(msg)) == 0 &&
              json_integer_value(json_object_get(h, "tcp_refused")) == 1,
          "health counts the refusal: %s", msg);
    json_decref(h);
done_access:;
}

static void test_pf(void)
{
    json_t *r = peer("mgmtpf", "{\"list\": true}");
    CHECK(is_status(r, -1001, "PF device not found") && !json_object_get(r, "devices"), "mgmtpf -l, no PF: %s", last);
    json_decref(r);
    r = peer("mgmtpf", "{\"add\": true, \"dev\": \"3B:00.0\"}");   /* short and upper case */
    CHECK(is_status(r, 0, "Success") && json_object_size(r) == 2, "mgmtpf -a 3B:00.0: %s", last);
    json_decref(r);
    r = peer("mgmtpf", "{\"add\": true, \"dev\": \"" PF "\"}");
    CHECK(is_status(r, -1008, "PF device already add"), "mgmtpf -a twice: %s", last);
    json_decref(r);
    r = peer("mgmtpf", "{\"add\": true, \"dev\": \"0000:99:00.0\"}");
    CHECK(is_status(r, -1001, "PF device not found"), "mgmtpf -a of no function: %s", last);
    json_decref(r);
    r = peer("mgmtpf", "{\"remove\": true, \"dev\": \"0000:5e:00.0\"}");
    CHECK(is_status(r, -1001, "PF device not found"), "mgmtpf -r of a PF not added: %s", last);
    json_decref(r);
    r = peer("mgmtpf", "{\"list\": true}");
    json_t *devs = json_object_get(r, "devices");
    CHECK(is_status(r, 0, "Success") && json_array_size(devs) == 1 &&
              json_object_size(json_array_get(devs, 0)) == 1 && !strcmp(str(json_array_get(devs, 0), "pf") ?: "", PF),
          "mgmtpf -l: %s", last);
    json_decref(r);
    r = peer("vf", "{\"list\": true, \"mgmtpf\": \"3b:00.0\"}");
    CHECK(is_status(r, 0, "Success") && !json_object_get(r, "devices"), "vf -l of a PF without VFs: %s", last);
    json_decref(r);
    r = peer("vf", "{\"list\": true, \"mgmtpf\": \"0000:5e:00.0\"}");
    CHECK(is_status(r, -1001, "PF device not found"), "vf -l of a PF not added: %s", last);
    json_decref(r);
}

/* Every field of a VF, with the peer's types. */
static void check_device(json_t *dev, const char *bdf, const char *uuid, const char *sock, bool configured)
{
    static const char *const keys[] = {"vf", "probed", "msix_num", "queue_num", "queue_size", "device_feature",
                                       "mtu", "mac", "vm_uuid", "socket_file", "configured", NULL};
    for (int i = 0; keys[i]; i++)
        CHECK(json_object_get(dev, keys[i]), "%s: no \"%s\": %s", bdf, keys[i], last);
    CHECK(json_object_size(dev) == 11, "%s: %zu fields: %s", bdf, json_object_size(dev), last);
    CHECK(!strcmp(str(dev, "vf") ?: "", bdf) && json_is_true(json_object_get(dev, "probed")), "%s: vf/probed", bdf);
    static const char *const nums[] = {"msix_num", "queue_num", "queue_size", "mtu", NULL};
    for (int i = 0; nums[i]; i++)
        CHECK(matches(str(dev, nums[i]), "^[1-9][0-9]*$"), "%s: \"%s\" not a decimal string: %s", bdf, nums[i], last);
    CHECK(!strcmp(str(dev, "mtu") ?: "", "9000") && !strcmp(str(dev, "queue_num") ?: "", "3"),
          "%s: mtu 9000 and 3 queues (1 pair + control) from the device: %s", bdf, last);
    CHECK(matches(str(dev, "mac"), "^([0-9A-F]{2}:){5}[0-9A-F]{2}$"), "%s: mac upper case: %s", bdf, last);
    CHECK(!strcmp(str(dev, "vm_uuid") ?: "", uuid), "%s: vm_uuid %s: %s", bdf, uuid, last);
    CHECK(!strcmp(str(dev, "socket_file") ?: "", sock), "%s: socket_file %s: %s", bdf, sock, last);
    CHECK(json_is_boolean(json_object_get(dev, "configured")) &&
              json_is_true(json_object_get(dev, "configured")) == configured, "%s: configured %d: %s", bdf,
          configured, last);
    json_t *f = json_object_get(dev, "device_feature");
    CHECK(json_is_object(f) && matches(str(f, "value"), "^0x[0-9a-f]+$"), "%s: device_feature: %s", bdf, last);
    unsigned long long v = strtoull(str(f, "value") ?: "0", NULL, 16);
    CHECK(!configured || (v & (1ull << 32)), "%s: negotiated features of a running VF lack VERSION_1: %s", bdf, last);
    const char *key;
    json_t *name;
    unsigned bits = 0;
    json_object_foreach(f, key, name) {
        if (!strcmp(key, "value"))
            continue;
        bits++;
        unsigned b = (unsigned)atoi(key);
        char want[8];
        snprintf(want, sizeof(want), "%5u", b);
        CHECK(!strcmp(key, want) && b < 64 && (v & (1ull << b)) && json_is_string(name), "%s: feature key '%s'", bdf,
              key);
    }
    CHECK(bits == (unsigned)__builtin_popcountll(v), "%s: %u named bits for 0x%llx", bdf, bits, v);
    if (v & (1ull << 32))
        CHECK(!strcmp(str(f, "   32") ?: "", "VIRTIO_F_VERSION_1"), "%s: bit 32's name: %s", bdf, last);
}

static void test_vf(void)
{
    char sock1[400], sock2[400], req[1024];
    snprintf(sock1, sizeof(sock1), "%s" VF1, iface);
    snprintf(sock2, sizeof(sock2), "%.300s/other-vf2.sock", sp.dir);
    json_t *r = peer("vf", "{\"add\": true, \"vfdev\": \"3b:00.1\", \"socket_file\": null, \"uuid\": null}");
    CHECK(is_status(r, 0, "Success") && json_object_size(r) == 2, "vf -a 3b:00.1: %s", last);
    json_decref(r);
    struct stat st;
    CHECK(stat(sock1, &st) == 0 && S_ISSOCK(st.st_mode), "socket_file null: the --iface prefix %s", sock1);
    snprintf(req, sizeof(req), "{\"add\": true, \"vfdev\": \"0000:3B:00.2\", \"socket_file\": \"%s\", \"uuid\": "
             "\"9b7a3c1e-0000-4000-8000-000000000002\"}", sock2);
    r = peer("vf", req);
    CHECK(is_status(r, 0, "Success"), "vf -a with -v and -u: %s", last);
    json_decref(r);
    r = peer("vf", "{\"add\": true, \"vfdev\": \"" VF1 "\", \"socket_file\": null, \"uuid\": null}");
    CHECK(is_status(r, -1014, "VF device already add"), "vf -a twice: %s", last);
    json_decref(r);
    snprintf(req, sizeof(req), "{\"add\": true, \"vfdev\": \"3b:00.3\", \"socket_file\": \"%s\", \"uuid\": null}",
             sock1);
    r = peer("vf", req);
    CHECK(is_status(r, -1038, "Vhost socket file already exists"), "socket of another VF: %s", last);
    json_decref(r);
    r = peer("vf", "{\"add\": true, \"vfdev\": \"3b:00.3\", \"socket_file\": \"rel.sock\", \"uuid\": null}");
    CHECK(is_status(r, -1030, "Can't access vhost socket path"), "relative socket path: %s", last);
    json_decref(r);
    r = peer("vf", "{\"add\": true, \"vfdev\": \"3b:00.3\", \"socket_file\": \"/nonexistent-dir/x.sock\", "
                   "\"uuid\": null}");
    CHECK(is_status(r, -1030, "Can't access vhost socket path"), "socket in a missing directory: %s", last);
    json_decref(r);
    r = peer("vf", "{\"add\": true, \"vfdev\": \"3b:07.7\", \"socket_file\": null, \"uuid\": null}");
    CHECK(is_status(r, -1003, "VF device not found"), "vf -a of no function: %s", last);
    json_decref(r);
    r = peer("vf", "{\"info\": true, \"vfdev\": \"3B:00.1\"}");
    CHECK(is_status(r, 0, "Success") && json_object_size(r) == 3, "vf -i: %s", last);
    check_device(json_object_get(r, "device"), VF1, NIL_UUID, sock1, false);
    json_decref(r);
    r = peer("vf", "{\"info\": true, \"vfdev\": \"3b:00.5\"}");
    CHECK(is_status(r, -1003, "VF device not found") && !json_object_get(r, "device"), "vf -i unknown: %s", last);
    json_decref(r);
    r = peer("vf", "{\"list\": true, \"mgmtpf\": \"3b:00.0\"}");
    json_t *devs = json_object_get(r, "devices");
    CHECK(is_status(r, 0, "Success") && json_array_size(devs) == 2, "vf -l: %s", last);
    for (size_t i = 0; i < json_array_size(devs); i++) {
        json_t *d = json_array_get(devs, i);
        bool one = !strcmp(str(d, "vf") ?: "", VF1);
        check_device(d, one ? VF1 : VF2, one ? NIL_UUID : "9b7a3c1e-0000-4000-8000-000000000002", one ? sock1 : sock2,
                     false);
    }
    json_decref(r);
    r = peer("mgmtpf", "{\"remove\": true, \"dev\": \"" PF "\"}");
    CHECK(is_status(r, -1013, "Please remove all VF devices before remove PF"), "mgmtpf -r with VFs: %s", last);
    json_decref(r);
}

/* The unix socket keeps vfe's own replies: no errno/errstr, JSON-RPC errors. */
static void test_unix_unchanged(void)
{
    json_t *res = NULL, *p = json_pack("{s:b, s:s}", "info", 1, "vfdev", VF1);
    char msg[256];
    int rc = rpc_client_call(rpc, "vf", p, 3000, &res, msg, sizeof(msg));
    CHECK(rc == 0 && json_is_string(json_object_get(res, "state")) && !json_object_get(res, "errno") &&
              !json_object_get(res, "device") && json_is_integer(json_object_get(res, "queue_num")),
          "unix vf info is vfe's format: rc %d %s", rc, msg);
    json_decref(res);
    json_decref(p);
    p = json_pack("{s:b, s:s}", "info", 1, "vfdev", "0000:3b:00.6");
    rc = rpc_client_call(rpc, "vf", p, 3000, &res, msg, sizeof(msg));
    CHECK(rc == RPC_NOT_FOUND, "unix: an unknown VF is a JSON-RPC error: rc %d %s", rc, msg);
    json_decref(p);
    p = json_pack("{s:b, s:s}", "info", 1, "vfdev", "3B:00.1");   /* the peer's short form there too */
    rc = rpc_client_call(rpc, "vf", p, 3000, &res, msg, sizeof(msg));
    CHECK(rc == 0 && !strcmp(str(res, "vf") ?: "", VF1), "unix: a short upper-case BDF: rc %d %s", rc, msg);
    json_decref(res);
    json_decref(p);
    p = json_pack("{s:b, s:s}", "info", 1, "vfdev", "3b:00.8");
    rc = rpc_client_call(rpc, "vf", p, 3000, &res, msg, sizeof(msg));
    CHECK(rc == RPC_INVALID_PARAMS, "unix: function 8: rc %d %s", rc, msg);
    json_decref(p);
    p = json_pack("{s:b}", "list", 1);
    rc = rpc_client_call(rpc, "mgmtpf", p, 3000, &res, msg, sizeof(msg));
    CHECK(rc == 0 && json_is_string(json_object_get(json_array_get(json_object_get(res, "devices"), 0), "state")) &&
              !json_object_get(res, "errno"), "unix mgmtpf list: rc %d", rc);
    json_decref(res);
    json_decref(p);
    rc = rpc_client_call(rpc, "stats", NULL, 3000, &res, msg, sizeof(msg));
    CHECK(rc == 0, "unix stats: %s", msg);
    json_decref(res);
}

/* Framing and envelope: without "jsonrpc", without "id", with a newline, two on one connection. */
static void test_framing(void)
{
    char buf[4096];
    json_t *v = tcp_raw("{\"method\":\"version\",\"id\":7}", buf, sizeof(buf));
    CHECK(json_integer_value(json_object_get(v, "id")) == 7 && errno_of(json_object_get(v, "result")) == 0,
          "no jsonrpc member: %s", buf);
    json_decref(v);
    v = tcp_raw("{\"method\":\"mgmtpf\",\"params\":{\"list\":true}}\n", buf, sizeof(buf));
    CHECK(json_is_null(json_object_get(v, "id")) && errno_of(json_object_get(v, "result")) == 0,
          "no id, trailing newline: answered with id null: %s", buf);
    json_decref(v);
    v = tcp_raw("{\"jsonrpc\":\"1.0\",\"method\":\"version\",\"id\":3}", buf, sizeof(buf));
    CHECK(json_integer_value(json_object_get(json_object_get(v, "error"), "code")) == RPC_INVALID_REQUEST,
          "a wrong jsonrpc version is refused: %s", buf);
    json_decref(v);
    int fd = tcp_connect();
    const char *two = "{\"method\":\"version\",\"id\":1}{\"method\":\"version\",\"id\":2}";
    CHECK(fd >= 0 && write(fd, two, strlen(two)) == (ssize_t)strlen(two), "write two");
    json_t *a = read_value(fd, buf, sizeof(buf), 3000);
    char *nl = strchr(buf, '\n');
    json_t *b = nl && nl[1] ? json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL) : read_value(fd, buf, sizeof(buf), 3000);
    CHECK(json_integer_value(json_object_get(a, "id")) == 1 && json_integer_value(json_object_get(b, "id")) == 2,
          "two requests on one connection: %s", buf);
    json_decref(a);
    json_decref(b);
    close(fd);
}

/* vfe's own methods are not on the TCP socket (no access control there). */
static void test_tcp_methods(void)
{
    char buf[4096];
    static const char *const hidden[] = {"stats", "health", "upgrade", "bind", NULL};
    for (int i = 0; hidden[i]; i++) {
        char req[128];
        snprintf(req, sizeof(req), "{\"method\":\"%s\",\"params\":{},\"id\":1}", hidden[i]);
        json_t *v = tcp_raw(req, buf, sizeof(buf));
        CHECK(json_integer_value(json_object_get(json_object_get(v, "error"), "code")) == RPC_METHOD_NOT_FOUND,
              "%s over TCP: %s", hidden[i], buf);
        json_decref(v);
    }
}

static void test_bad_input(void)
{
    char buf[4096];
    static const struct {
        const char *method, *params;
    } bad[] = {
        {"vf", "{\"info\": true, \"vfdev\": 5}"},
        {"vf", "{\"info\": \"yes\", \"vfdev\": \"3b:00.1\"}"},
        {"vf", "{\"info\": true}"},
        {"vf", "{\"add\": true, \"socket_file\": null, \"uuid\": null}"},
        {"vf", "{\"add\": true, \"vfdev\": \"3b:00.4\", \"socket_file\": 7, \"uuid\": null}"},
        {"vf", "{\"add\": true, \"vfdev\": \"3b:00.4\", \"socket_file\": null, \"uuid\": []}"},
        {"vf", "{\"add\": true, \"info\": true, \"vfdev\": \"3b:00.1\"}"},
        {"vf", "{\"list\": true}"},
        {"vf", "{}"},
        {"mgmtpf", "{}"},
        {"mgmtpf", "{\"add\": true}"},
        {"mgmtpf", "{\"remove\": 1, \"dev\": \"3b:00.0\"}"},
        {"vf", "{\"debug\": true, \"vfdev\": \"3b:00.1\"}"},
        {"vf", "{\"debug\": true, \"vfdev\": \"3b:00.1\", \"test_operation\": 7}"},
        {"vf", "{\"debug\": true, \"vfdev\": \"3b:00.1\", \"test_operation\": \"1\"}"},
        {"vf", "{\"debug\": true, \"vfdev\": \"3b:00.1\", \"test_operation\": 4, \"test_mode\": 3}"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = peer(bad[i].method, bad[i].params);
        char want[64];
        snprintf(want, sizeof(want), "Invalid %s parameters in RPC message", strcmp(bad[i].method, "vf") ? "pf" : "vf");
        CHECK(is_status(r, -EINVAL, "Invalid argument") && !strcmp(str(r, "Error") ?: "", want), "%s %s: %s",
              bad[i].method, bad[i].params, last);
        json_decref(r);
    }
    static const char *const bdfs[] = {"3b:00", "0000:3b:00.8", "0000:3b:20.0", "g0:00.1", "+3b:00.1", " 3b:00.1",
                                       "00000:3b:00.1", "3b:0.1", "0000-3b:00.1", "3b:00.1 ", "", NULL};
    for (int i = 0; bdfs[i]; i++) {
        char params[128];
        snprintf(params, sizeof(params), "{\"info\": true, \"vfdev\": \"%s\"}", bdfs[i]);
        json_t *r = peer("vf", params);
        CHECK(is_status(r, -EINVAL, "Invalid argument"), "BDF '%s': %s", bdfs[i], last);
        json_decref(r);
    }
    json_t *v = tcp_raw("this is not json", buf, sizeof(buf));
    CHECK(json_integer_value(json_object_get(json_object_get(v, "error"), "code")) == RPC_PARSE_ERROR,
          "not JSON: %s", buf);
    json_decref(v);
    v = tcp_raw("[]", buf, sizeof(buf));
    CHECK(json_integer_value(json_object_get(json_object_get(v, "error"), "code")) == RPC_INVALID_REQUEST,
          "empty array: %s", buf);
    json_decref(v);
    v = tcp_raw("[1]", buf, sizeof(buf));
    CHECK(json_integer_value(json_object_get(json_object_get(json_array_get(v, 0), "error"), "code")) ==
              RPC_INVALID_REQUEST, "array of a number: %s", buf);
    json_decref(v);
    v = tcp_raw("{\"method\":\"frobnicate\",\"id\":1}", buf, sizeof(buf));
    CHECK(json_integer_value(json_object_get(json_object_get(v, "error"), "code")) == RPC_METHOD_NOT_FOUND,
          "unknown method: %s", buf);
    json_decref(v);
    v = tcp_raw("{\"method\":\"vf\",\"params\":[1,2],\"id\":1}", buf, sizeof(buf));
    CHECK(json_object_get(v, "result") && errno_of(json_object_get(v, "result")) == -EINVAL, "params array: %s", buf);
    json_decref(v);
    size_t huge = 80 * 1024;
    char *big = malloc(huge + 64);
    snprintf(big, huge + 64, "{\"method\":\"version\",\"params\":{\"x\":\"");
    memset(big + strlen(big), 'a', huge);
    big[huge + 20] = '\0';
    int fd = tcp_connect();
    CHECK(fd >= 0 && write(fd, big, strlen(big)) > 0, "write a huge request");
    v = read_value(fd, buf, sizeof(buf), 3000);
    CHECK(json_integer_value(json_object_get(json_object_get(v, "error"), "code")) == RPC_INVALID_REQUEST &&
              strstr(buf, "too large"), "huge request: %s", buf);
    json_decref(v);
    close(fd);
    free(big);
    fd = tcp_connect();   /* half a request, then gone */
    CHECK(fd >= 0 && write(fd, "{\"method\":\"vf\",\"par", 19) == 19, "half a request");
    close(fd);
    json_t *r = peer("version", NULL);
    CHECK(proc_alive(vhostd) && is_status(r, 0, "Success"), "served after bad input: %s", last);
    json_decref(r);
}

/* Clients that send nothing or trickle half a request: the others are served
 * meanwhile, they are closed after the TCP bound, and at most 16 TCP clients
 * at once cannot lock the unix socket out. */
static void test_slow_clients(void)
{
    int silent = tcp_connect(), trickle = tcp_connect();
    CHECK(silent >= 0 && trickle >= 0 && write(trickle, "{", 1) == 1, "slow clients connect");
    long t0 = check_now_ms();
    json_t *r = peer("version", NULL);
    CHECK(is_status(r, 0, "Success") && check_now_ms() - t0 < 1000, "served while two clients stall: %s", last);
    json_decref(r);
    int more[16], n = 0;
    for (; n < 16; n++)
        if ((more[n] = tcp_connect()) < 0)
            break;
    char buf[1024];
    json_t *v = read_value(more[n - 1], buf, sizeof(buf), 2000);   /* 18 TCP clients: the last ones are refused */
    CHECK(v && strstr(buf, "too many clients"), "the 17th TCP client is refused: %s", buf);
    json_decref(v);
    json_t *res = NULL;
    char msg[256];
    CHECK(rpc_client_call(rpc, "health", NULL, 2000, &res, msg, sizeof(msg)) == 0,
          "the unix socket is served while TCP is full: %s", msg);
    json_decref(res);
    for (int i = 0; i < n; i++)
        close(more[i]);
    /* the trickler sends a byte a second: bytes of an unfinished request do not keep it */
    bool silent_closed = false, trickle_closed = false;
    long end = check_now_ms() + 14000;
    while (check_now_ms() < end && !(silent_closed && trickle_closed)) {
        if (!trickle_closed && write(trickle, " ", 1) != 1)
            trickle_closed = true;
        struct pollfd p[2] = {{.fd = silent, .events = POLLIN}, {.fd = trickle, .events = POLLIN}};
        poll(p, 2, 1000);
        char c;
        if (!silent_closed && (p[0].revents & (POLLIN | POLLHUP)) && read(silent, &c, 1) <= 0)
            silent_closed = true;
        if (!trickle_closed && (p[1].revents & (POLLIN | POLLHUP)) && read(trickle, &c, 1) <= 0)
            trickle_closed = true;
    }
    long took = check_now_ms() - t0;
    CHECK(silent_closed && trickle_closed && took >= 9000, "silent and trickling clients closed after %ld ms (%d %d)",
          took, silent_closed, trickle_closed);
    close(silent);
    close(trickle);
}

/* ---- debug operations ---- */

static const uint8_t mac_a[6] = {0x02, 0xaa, 0, 0, 0, 1}, mac_b[6] = {0x02, 0xbb, 0, 0, 0, 2};

static const char *sim_mig_state(const char *bdf, char *buf, size_t len)
{
    char req[128];
    snprintf(req, sizeof(req), "{\"cmd\":\"counters\",\"bdf\":\"%s\"}", bdf);
    if (sim_proc_ctl(&sp, req, buf, len) < 0)
        return "?";
    json_t *v = json_loads(buf, 0, NULL);
    static char st[32];
    snprintf(st, sizeof(st), "%s", str(v, "mig_state") ?: "?");
    json_decref(v);
    return st;
}

/* One frame a -> b: 1 arrived intact, 0 not within ms. */
static int one_frame(struct vfe_fe *a, struct vfe_fe *b, uint32_t seed, int ms)
{
    uint8_t out[200], in[300];
    vfe_fe_frame(out, 100, mac_b, mac_a, seed);
    if (vfe_fe_send(a, 0, out, 100) < 0)
        return -1;
    return vfe_fe_recv(b, 0, in, sizeof(in), ms) == 100 && !memcmp(in, out, 100);
}

static json_t *debug_op(const char *bdf, int op)
{
    char p[256];
    snprintf(p, sizeof(p), "{\"vfdev\": \"%s\", \"debug\": true, \"test_operation\": %d, \"size_mode\": 1}", bdf, op);
    return peer("vf", p);
}

static bool debug_ok(json_t *r, const char *bdf)
{
    return is_status(r, 0, "Success") && !strcmp(str(r, "Success") ?: "", bdf);
}

static bool debug_failed(json_t *r, const char *text, json_int_t code)
{
    return r && errno_of(r) == code && !strcmp(str(r, "Error") ?: "", text);
}

static void test_debug(void)
{
    char sa[400], sb[400], buf[4096];
    snprintf(sa, sizeof(sa), "%s" VF1, iface);
    snprintf(sb, sizeof(sb), "%.300s/other-vf2.sock", sp.dir);
    json_t *r = debug_op(VF1, 1);
    CHECK(debug_failed(r, "Fail to debug VF device", -ENOTCONN), "debug without a session: %s", last);
    json_decref(r);
    struct vfe_fe_opts oa = {.path = sa}, ob = {.path = sb};
    struct vfe_fe *a = vfe_fe_open(&oa), *b = vfe_fe_open(&ob);
    REQUIRE(a && b && vfe_fe_start(a, NULL) == 0 && vfe_fe_start(b, NULL) == 0, out, "front-ends did not start");
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[60], in[100];
    for (int i = 0; i < 2; i++) {   /* the sim's switch learns both MACs */
        vfe_fe_frame(f, 60, bcast, i ? mac_b : mac_a, (uint32_t)i);
        vfe_fe_send(i ? b : a, 0, f, 60);
        vfe_fe_recv(i ? a : b, 0, in, sizeof(in), 1000);
    }
    long until = check_now_ms() + 3000;
    bool configured = false;
    while (!configured && check_now_ms() < until) {
        r = peer("vf", "{\"info\": true, \"vfdev\": \"" VF1 "\"}");
        configured = json_is_true(json_object_get(json_object_get(r, "device"), "configured"));
        if (configured)
            check_device(json_object_get(r, "device"), VF1, NIL_UUID, sa, true);
        json_decref(r);
        usleep(20000);
    }
    CHECK(configured, "vf -i of a running VF: configured: %s", last);
    CHECK(one_frame(a, b, 100, 2000) == 1, "frames flow before any debug operation");

    r = debug_op("3b:00.1", 2);
    CHECK(debug_ok(r, VF1) && !json_object_get(r, "device"), "quiesce: %s", last);
    json_decref(r);
    CHECK(!strcmp(sim_mig_state(VF1, buf, sizeof(buf)), "quiesced"), "the device is quiesced: %s", buf);
    CHECK(one_frame(a, b, 101, 300) == 0, "no frame through a quiesced VF");
    r = debug_op(VF1, 6);
    CHECK(debug_ok(r, VF1) && !strcmp(str(json_object_get(r, "device"), "lm_status") ?: "", "2") &&
              !strcmp(str(json_object_get(r, "device"), "vf") ?: "", VF1), "lm status after quiesce: %s", last);
    json_decref(r);
    r = debug_op(VF1, 1);
    CHECK(debug_ok(r, VF1), "running: %s", last);
    json_decref(r);
    CHECK(!strcmp(sim_mig_state(VF1, buf, sizeof(buf)), "running"), "the device runs again: %s", buf);
    CHECK(vfe_fe_recv(b, 0, in, sizeof(in), 2000) == 100, "the frame held while quiesced arrives after running");
    CHECK(one_frame(a, b, 102, 2000) == 1, "frames flow after running");

    r = debug_op(VF1, 3);
    CHECK(debug_ok(r, VF1), "freeze: %s", last);
    json_decref(r);
    CHECK(!strcmp(sim_mig_state(VF1, buf, sizeof(buf)), "freezed"), "the device is frozen: %s", buf);
    CHECK(one_frame(a, b, 103, 300) == 0, "no frame through a frozen VF");
    r = debug_op(VF1, 6);
    CHECK(debug_ok(r, VF1) && !strcmp(str(json_object_get(r, "device"), "lm_status") ?: "", "3"),
          "lm status after freeze: %s", last);
    json_decref(r);
    r = debug_op(VF1, 1);
    json_decref(r);
    CHECK(vfe_fe_recv(b, 0, in, sizeof(in), 2000) == 100 && one_frame(a, b, 104, 2000) == 1,
          "frames flow after freeze and running");

    r = debug_op(VF1, 5);
    CHECK(debug_failed(r, "Fail to debug VF device", -EINVAL), "stop logging before a start: %s", last);
    json_decref(r);
    r = peer("vf", "{\"vfdev\": \"" VF1 "\", \"debug\": true, \"test_operation\": 4, \"test_mode\": 2}");
    CHECK(debug_failed(r, "Fail to debug VF device", -EOPNOTSUPP), "bytemap logging: %s", last);
    json_decref(r);
    r = debug_op(VF1, 4);
    CHECK(debug_ok(r, VF1), "start logging: %s", last);
    json_decref(r);
    char ctl[128];
    snprintf(ctl, sizeof(ctl), "{\"cmd\":\"counters\",\"bdf\":\"%s\"}", VF1);
    sim_proc_ctl(&sp, ctl, buf, sizeof(buf));
    CHECK(!strstr(buf, "\"dirty_mode\":0"), "the device tracks dirty pages: %s", buf);
    r = debug_op(VF1, 4);
    CHECK(debug_failed(r, "Fail to debug VF device", -EALREADY), "start logging twice: %s", last);
    json_decref(r);
    CHECK(one_frame(a, b, 105, 2000) == 1, "frames flow while logging");
    r = debug_op(VF1, 5);
    CHECK(debug_ok(r, VF1), "stop logging: %s", last);
    json_decref(r);
    sim_proc_ctl(&sp, ctl, buf, sizeof(buf));
    CHECK(strstr(buf, "\"dirty_mode\":0"), "the device no longer tracks: %s", buf);

    /* a migration's tracking (QEMU's SET_LOG_BASE + LOG_ALL) excludes debug operations */
    CHECK(vfe_fe_log_start(a) == 0, "front-end log start");
    long stop_at = check_now_ms() + 3000;
    bool tracking = false;
    while (!tracking && check_now_ms() < stop_at) {
        sim_proc_ctl(&sp, ctl, buf, sizeof(buf));
        tracking = !strstr(buf, "\"dirty_mode\":0");
        usleep(10000);
    }
    CHECK(tracking, "the migration's tracking is on: %s", buf);
    r = debug_op(VF1, 2);
    CHECK(debug_failed(r, "Fail to debug VF device", -EBUSY), "quiesce during a migration: %s", last);
    json_decref(r);
    r = debug_op(VF1, 4);
    CHECK(debug_failed(r, "Fail to debug VF device", -EBUSY), "start logging during a migration: %s", last);
    json_decref(r);
    CHECK(!strcmp(sim_mig_state(VF1, buf, sizeof(buf)), "running"), "a refused operation changes nothing: %s", buf);
    CHECK(vfe_fe_log_stop(a) == 0, "front-end log stop");
    stop_at = check_now_ms() + 3000;   /* the device stops tracking after the front-end's message: wait for it */
    while (tracking && check_now_ms() < stop_at) {
        json_t *res = NULL, *p = json_pack("{s:s}", "vfdev", VF1);
        char msg[128];
        if (rpc_client_call(rpc, "stats", p, 2000, &res, msg, sizeof(msg)) == 0)
            tracking = !json_is_false(json_object_get(json_array_get(json_object_get(res, "vfs"), 0),
                                                      "dirty_tracking"));
        json_decref(res);
        json_decref(p);
        if (tracking)
            usleep(10000);
    }
    CHECK(!tracking, "the migration's tracking stopped");

    /* asynchronous: while the device takes 1 s to answer, others are served and
     * a second debug operation on the VF is refused (one at a time) */
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"admin_delay\",\"ms\":1000}", buf, sizeof(buf)) == 0,
          "admin_delay fault: %s", buf);
    int slow = tcp_connect();
    const char *req6 = "{\"jsonrpc\": \"2.0\", \"method\": \"vf\", \"id\": 1, \"params\": {\"vfdev\": \"" VF1
                       "\", \"debug\": true, \"test_operation\": 6, \"size_mode\": 1}}";
    long t0 = check_now_ms();
    CHECK(slow >= 0 && write(slow, req6, strlen(req6)) == (ssize_t)strlen(req6), "send a slow debug operation");
    usleep(100000);
    r = peer("version", NULL);
    CHECK(is_status(r, 0, "Success") && check_now_ms() - t0 < 700, "served while a debug operation waits: %s", last);
    json_decref(r);
    r = debug_op(VF1, 2);
    CHECK(debug_failed(r, "Fail to debug VF device", -EBUSY), "a second debug operation meanwhile: %s", last);
    json_decref(r);
    json_t *v = read_value(slow, buf, sizeof(buf), 5000);
    r = json_object_get(v, "result");
    CHECK(debug_ok(r, VF1) && check_now_ms() - t0 >= 900, "the slow one answered after %ld ms: %s",
          check_now_ms() - t0, buf);
    json_decref(v);
    close(slow);
    sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"clear\"}", buf, sizeof(buf));
    CHECK(!strcmp(sim_mig_state(VF1, buf, sizeof(buf)), "running"), "a refused quiesce changed nothing: %s", buf);
    /* the device refuses (every retry): the peer's failure reply with the errno */
    sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"admin_fail\",\"status\":5}", buf, sizeof(buf));
    r = debug_op(VF1, 3);
    CHECK(r && errno_of(r) < 0 && errno_of(r) > -1000 && !strcmp(str(r, "Error") ?: "", "Fail to debug VF device"),
          "a failed admin command: %s", last);
    json_decref(r);
    sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"clear\"}", buf, sizeof(buf));
    CHECK(!strcmp(sim_mig_state(VF1, buf, sizeof(buf)), "running"), "a failed freeze changed nothing: %s", buf);
    CHECK(one_frame(a, b, 106, 2000) == 1, "frames flow after the failures");

    r = debug_op("3b:00.6", 2);
    CHECK(debug_failed(r, "Fail to find VF device", -1003), "debug of an unknown VF: %s", last);
    json_decref(r);
    static const char *const warned[] = {"debug operation 2 (quiesced) on VF " VF1, NULL};
    CHECK(file_count(log_path, warned) >= 1, "debug operations are logged");
out:
    vfe_fe_close(a);
    vfe_fe_close(b);
}

static void test_remove(void)
{
    json_t *r = peer("vf", "{\"remove\": true, \"vfdev\": \"3B:00.1\"}");
    CHECK(is_status(r, 0, "Success") && json_object_size(r) == 2, "vf -r: %s", last);
    json_decref(r);
    r = peer("vf", "{\"remove\": true, \"vfdev\": \"3b:00.1\"}");
    CHECK(is_status(r, -1003, "VF device not found"), "vf -r twice: %s", last);
    json_decref(r);
    r = peer("vf", "{\"remove\": true, \"vfdev\": \"3b:00.2\"}");
    json_decref(r);
    r = peer("mgmtpf", "{\"remove\": true, \"dev\": \"3b:00.0\"}");
    CHECK(is_status(r, 0, "Success"), "mgmtpf -r: %s", last);
    json_decref(r);
}

/* With --ha and no HA process: the HA fields say so, in the peer's words. */
static void test_version_ha_down(void)
{
    char lp[400], r2[400], ha[400], tcp[32];
    snprintf(lp, sizeof(lp), "%.300s/ha-down.log", sp.dir);
    snprintf(r2, sizeof(r2), "%.300s/ha-down.sock", sp.dir);
    snprintf(ha, sizeof(ha), "%.300s/no-ha-here.sock", sp.dir);
    int port2 = proc_free_tcp_port();
    snprintf(tcp, sizeof(tcp), "127.0.0.1:%d", port2);
    const char *argv[] = {vhostd_bin(), "--pci-root", sp.root, "--rpc", r2, "--no-state", "--ha", ha, "--compat-tcp",
                          tcp, NULL};
    pid_t p = proc_spawn(argv, lp);
    const char *ready[] = {"ready: RPC", NULL};
    CHECK(file_wait(lp, ready, 1, 5000), "second daemon with --ha did not start");
    int port1 = port;
    port = port2;
    json_t *r = peer("version", NULL);
    port = port1;
    CHECK(is_status(r, 0, "Success") &&
              !strcmp(str(r, "vfe-vhostd-ha version") ?: "", "Not Known Due to HA Disconnected") &&
              !strcmp(str(r, "vfe-vhostd-ha build time") ?: "", "Not Known Due to HA Disconnected"),
          "version with the HA process down: %s", last);
    json_decref(r);
    CHECK(proc_stop(p, 5000) == 0, "second daemon exit status");
}

/* A non-loopback --compat-tcp is refused at start (exit 2, a clear reason). */
static void test_non_loopback(void)
{
    static const char *const addrs[] = {"0.0.0.0:12190", "10.1.2.3:12190", "192.168.0.1:1", "127.0.0.1:0",
                                        "127.0.0.1:70000", "localhost:12190", ":12190", NULL};
    for (int i = 0; addrs[i]; i++) {
        char lp[400], r2[400];
        snprintf(lp, sizeof(lp), "%.300s/refused.log", sp.dir);
        snprintf(r2, sizeof(r2), "%.300s/other.sock", sp.dir);
        const char *argv[] = {vhostd_bin(), "--pci-root", sp.root, "--rpc", r2, "--no-state", "--compat-tcp", addrs[i],
                              NULL};
        pid_t p = proc_spawn(argv, lp);
        int st = proc_wait(p, 5000);
        if (st == -1)
            proc_stop(p, 3000);   /* it started: the check below fails, the process goes */
        char text[1024] = "";
        file_read(lp, text, sizeof(text));
        CHECK(st == 2 && strstr(text, "--compat-tcp"), "--compat-tcp %s: exit %d: %s", addrs[i], st, text);
        if (i < 3)
            CHECK(strstr(text, "not a loopback address"), "--compat-tcp %s: reason: %s", addrs[i], text);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *args[] = {"--pf", PF, "--vfs", "4", "--qpairs", "1", "--mtu", "9000", "--log-level",
                          getenv("VFE_TEST_DEBUG") ? "debug" : "info", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    REQUIRE(start_daemon() == 0, done, "vfe-vhostd did not start");
    test_version();
    test_tcp_access();
    test_pf();
    test_vf();
    test_unix_unchanged();
    test_framing();
    test_tcp_methods();
    test_bad_input();
    test_debug();
    test_remove();
    test_slow_clients();
    test_non_loopback();
    test_version_ha_down();
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
done:
    CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("compat");
}
