/*
 * vfe-vhostd's vf_batch (app/vfe-vdpa/vf_batch.h), against a sim PF with 256 VFs:
 *  - a bad op (BDF, type, unknown key, a VF or socket twice, too many ops)
 *    refuses the whole batch and nothing is applied, nothing written;
 *  - per-op errors (no such function, socket path in use, the PF itself,
 *    a VF not added) fail alone, the good ops of the batch are applied;
 *  - 256 adds in one batch while a second client calls `version`: every
 *    call answered within a generous bound (the 10 ms goal is the bench's),
 *    the provisioning file written once with all 256 records; 256 removes;
 *  - a client that disconnects right after sending its batch: the batch
 *    completes, the daemon serves on;
 *  - vhostmgmt script mode sends consecutive `vf -a` lines as vf_batch calls
 *    (counted in the daemon's log), keeps per-line errors and exit status;
 *  - stop_on_error with VF 2's device not answering: the adds after it ran
 *    in parallel and are undone (VF 1 added only, one socket, one record);
 *  - SIGTERM mid-batch: exit 0, the file holds exactly the VFs applied.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/integration/vhostd/vhostd_proc.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"
#include "tests/lib/test_rpc.h"

#define PF "0000:3b:00.0"
#define NVF 256
#define LATENCY_BOUND_MS 200

static char work[256], rpc[300], iface[300], state[300], state_file[340], log_path[320];
static pid_t vhostd = -1;

static const char *vf_bdf(unsigned n, char out[16])
{
    unsigned rid = 0x3b00 + n;
    snprintf(out, 16, "0000:%02x:%02x.%x", rid >> 8, (rid >> 3) & 0x1f, rid & 7);
    return out;
}

/* A call: 0 or the error code with msg. */
static int call(const char *method, json_t *params, json_t **res, char *msg, size_t len)
{
    return test_rpc_ask(rpc, method, params, 60000, res, msg, len);
}

static json_int_t health_int(const char *key, const char *sub)
{
    json_t *h = NULL;
    char msg[256];
    if (call("health", NULL, &h, msg, sizeof(msg)))
        return -1;
    json_t *o = sub ? json_object_get(h, sub) : h;
    json_int_t v = json_integer_value(json_object_get(o, key));
    json_decref(h);
    return v;
}

static json_t *add_op(unsigned n)
{
    char b[16];
    return json_pack("{s:b, s:s}", "add", 1, "vfdev", vf_bdf(n, b));
}

static json_t *ops_of(unsigned first, unsigned count, bool remove)
{
    json_t *a = json_array();
    char b[16];
    for (unsigned i = first; i < first + count; i++)
        json_array_append_new(a, json_pack("{s:b, s:s}", remove ? "remove" : "add", 1, "vfdev", vf_bdf(i, b)));
    return json_pack("{s:o}", "ops", a);
}

/* ---- validation refuses the whole batch ---- */

static void expect_refused(const char *name, json_t *params, const char *needle)
{
    json_int_t writes = health_int("writes", "state");
    char msg[600];
    int rc = call("vf_batch", params, NULL, msg, sizeof(msg));
    CHECK(rc == RPC_INVALID_PARAMS, "%s: code %d (%s), want %d", name, rc, msg, RPC_INVALID_PARAMS);
    CHECK(strstr(msg, needle), "%s: message '%s' does not say '%s'", name, msg, needle);
    CHECK(health_int("vfs", NULL) == 0, "%s: VFs were added by a refused batch", name);
    CHECK(health_int("writes", "state") == writes, "%s: the state file was written", name);
}

static void test_validation(void)
{
    expect_refused("bad BDF", json_pack("{s:[o, {s:b, s:s}, o]}", "ops", add_op(1), "add", 1, "vfdev", "3b:zz.1",
                                        add_op(2)),
                   "ops[1]: \"vfdev\" must be a PCI address");
    expect_refused("duplicate VF", json_pack("{s:[o, o, {s:b, s:s}]}", "ops", add_op(1), add_op(2), "add", 1,
                                             "vfdev", "3b:00.1"),
                   "ops[2]: VF 0000:3b:00.1 is also in ops[0]");
    char s[340];
    snprintf(s, sizeof(s), "%s/same.sock", work);
    expect_refused("duplicate socket", json_pack("{s:[{s:b, s:s, s:s}, {s:b, s:s, s:s}]}", "ops", "add", 1, "vfdev",
                                                 "3b:00.1", "socket_file", s, "add", 1, "vfdev", "3b:00.2",
                                                 "socket_file", s),
                   "ops[1]: socket_file");
    expect_refused("wrong types", json_pack("{s:[i, {s:b, s:s, s:s}, {s:s, s:s}, {s:b, s:s, s:i}]}", "ops", 7, "add",
                                            1, "vfdev", "3b:00.1", "direct", "yes", "add", "true", "vfdev",
                                            "3b:00.2", "add", 1, "vfdev", "3b:00.3", "socket_file", 5),
                   "ops[0]: not an object; ops[1]: \"direct\" must be true or false");
    expect_refused("unknown key", json_pack("{s:[{s:b, s:s, s:s}]}", "ops", "remove", 1, "vfdev", "3b:00.1",
                                            "socket_file", "/x"),
                   "\"socket_file\" is not a key of a remove op");
    expect_refused("relative socket", json_pack("{s:[{s:b, s:s, s:s}]}", "ops", "add", 1, "vfdev", "3b:00.1",
                                                "socket_file", "vf.sock"),
                   "must be an absolute path");
    expect_refused("add and remove", json_pack("{s:[{s:b, s:b, s:s}]}", "ops", "add", 1, "remove", 1, "vfdev",
                                               "3b:00.1"),
                   "exactly one of");
    expect_refused("ops not an array", json_pack("{s:s}", "ops", "all"), "\"ops\"");
    expect_refused("empty", json_pack("{s:[]}", "ops"), "\"ops\"");
    expect_refused("no ops", json_pack("{s:[]}", "vfs"), "not a parameter of vf_batch");
    /* one over the limit: short ops so the request stays under the RPC size limit */
    json_t *a = json_array();
    for (unsigned i = 0; i < 1025; i++)
        json_array_append_new(a, json_pack("{s:b, s:s}", "add", 1, "vfdev", "3b:00.1"));
    expect_refused("1025 ops", json_pack("{s:o}", "ops", a), "at most 1024 per batch");
}

/* ---- per-op errors ---- */

/* path into sa (0) or -1 if it does not fit. */
static int sun_of(struct sockaddr_un *sa, const char *path)
{
    size_t n = strlen(path);
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    if (n >= sizeof(sa->sun_path))
        return -1;
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

static int listen_at(const char *path)
{
    struct sockaddr_un sa;
    int fd = sun_of(&sa, path) < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static json_t *result_of(json_t *res, unsigned i) { return json_array_get(json_object_get(res, "results"), i); }

static void expect_op(json_t *res, unsigned i, bool ok, int code, const char *needle)
{
    json_t *r = result_of(res, i);
    const char *m = json_string_value(json_object_get(r, "message"));
    CHECK(json_is_true(json_object_get(r, "ok")) == ok, "ops[%u]: ok %d, want %d (%s)", i,
          json_is_true(json_object_get(r, "ok")), ok, m ? m : "");
    if (!ok) {
        CHECK(json_integer_value(json_object_get(r, "code")) == code, "ops[%u]: code %lld, want %d", i,
              (long long)json_integer_value(json_object_get(r, "code")), code);
        CHECK(m && strstr(m, needle), "ops[%u]: message '%s' does not say '%s'", i, m ? m : "", needle);
    }
}

static void test_per_op_errors(void)
{
    char busy[340], msg[600], b1[16], b2[16], b3[16], b4[16], b5[16];
    json_t *res = NULL;
    snprintf(busy, sizeof(busy), "%s/taken.sock", work);
    int lfd = listen_at(busy);
    REQUIRE(lfd >= 0, out, "listen on %s", busy);
    json_int_t writes = health_int("writes", "state");
    int rc = call("vf_batch",
                  json_pack("{s:[{s:b, s:s}, {s:b, s:s}, {s:b, s:s, s:s}, {s:b, s:s}, {s:b, s:s, s:s}, {s:b, s:s},"
                            "{s:b, s:s}]}", "ops",
                            "add", 1, "vfdev", vf_bdf(1, b1),
                            "add", 1, "vfdev", "0000:5e:00.1",
                            "add", 1, "vfdev", vf_bdf(2, b2), "socket_file", busy,
                            "add", 1, "vfdev", PF,
                            "add", 1, "vfdev", vf_bdf(3, b3), "uuid", "vm-1",
                            "remove", 1, "vfdev", vf_bdf(5, b5),
                            "add", 1, "vfdev", vf_bdf(4, b4)),
                  &res, msg, sizeof(msg));
    REQUIRE(rc == 0, out, "per-op errors: the batch itself failed: %d %s", rc, msg);
    CHECK(json_integer_value(json_object_get(res, "ok")) == 3 && json_integer_value(json_object_get(res, "failed"))
          == 4, "per-op errors: ok/failed %lld/%lld, want 3/4",
          (long long)json_integer_value(json_object_get(res, "ok")),
          (long long)json_integer_value(json_object_get(res, "failed")));
    CHECK(json_array_size(json_object_get(res, "results")) == 7, "per-op errors: not one result per op");
    expect_op(res, 0, true, 0, NULL);
    expect_op(res, 1, false, RPC_NOT_FOUND, "no PCI function 0000:5e:00.1");
    expect_op(res, 2, false, RPC_EXISTS, "in use by another process");
    expect_op(res, 3, false, RPC_EXISTS, "is a managed PF");
    expect_op(res, 4, true, 0, NULL);
    expect_op(res, 5, false, RPC_NOT_FOUND, "is not added");
    expect_op(res, 6, true, 0, NULL);
    CHECK(health_int("vfs", NULL) == 3, "per-op errors: %lld VFs, want 3", (long long)health_int("vfs", NULL));
    CHECK(health_int("writes", "state") == writes + 1, "per-op errors: %lld state writes, want 1",
          (long long)(health_int("writes", "state") - writes));
    struct stat st;
    CHECK(lstat(busy, &st) == 0 && S_ISSOCK(st.st_mode), "the socket somebody listens on was touched");
    json_decref(res);
    res = NULL;
    rc = call("vf_batch", ops_of(1, 4, true), &res, msg, sizeof(msg));
    CHECK(rc == 0 && json_integer_value(json_object_get(res, "ok")) == 3, "remove of the three: %d %s", rc, msg);
    expect_op(res, 1, false, RPC_NOT_FOUND, "is not added");
    CHECK(health_int("vfs", NULL) == 0, "VFs left after the remove batch");
out:
    json_decref(res);
    if (lfd >= 0)
        close(lfd);
    unlink(busy);
}

/* ---- a big batch while another client is served ---- */

/* Send a call on a fresh connection; the fd (the reply is read by read_reply) or -1. */
static int send_call(const char *method, json_t *params)
{
    json_t *req = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", 1, "method", method, "params", params);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct sockaddr_un sa;
    int fd = sun_of(&sa, rpc) < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM, 0);
    size_t n = text ? strlen(text) : 0;
    if (fd < 0 || !text || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(fd, text, n) != (ssize_t)n ||
        write(fd, "\n", 1) != 1) {
        free(text);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    free(text);
    return fd;
}

/* The reply's result if it arrived whole within ms, else NULL. */
static json_t *read_reply(int fd, int ms)
{
    static char buf[1 << 20];
    size_t got = 0;
    long end = check_now_ms() + ms;
    while (got < sizeof(buf) - 1 && check_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - check_now_ms())) <= 0)
            break;
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (buf[got - 1] == '\n')
            break;
    }
    buf[got] = '\0';
    json_t *reply = json_loads(buf, 0, NULL);
    json_t *res = json_incref(json_object_get(reply, "result"));
    if (!res)
        fprintf(stderr, "reply: %.300s\n", buf);
    json_decref(reply);
    return res;
}

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static unsigned count_vf_records(void)
{
    static char text[1 << 20];
    file_read(state_file, text, sizeof(text));
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, "\"socket\"")); p++)
        n++;
    return n;
}

static void test_big_batch(void)
{
    json_int_t writes = health_int("writes", "state");
    long t0 = check_now_ms();
    int fd = send_call("vf_batch", ops_of(1, NVF, false));
    REQUIRE(fd >= 0, out, "send the batch");
    long worst = 0, sum = 0;
    unsigned calls = 0, mid = 0, mid_saved = 0;
    char msg[256];
    while (!readable(fd) && check_now_ms() - t0 < 60000) {
        long t = check_now_ms();
        json_t *v = NULL;
        int rc = call("version", NULL, &v, msg, sizeof(msg));
        long dt = check_now_ms() - t;
        CHECK(rc == 0, "version during the batch: %d %s", rc, msg);
        json_decref(v);
        worst = dt > worst ? dt : worst;
        sum += dt;
        calls++;
        json_t *h = NULL;
        if (call("health", NULL, &h, msg, sizeof(msg)) == 0) {
            json_int_t vfs = json_integer_value(json_object_get(h, "vfs"));
            bool half = vfs > 0 && vfs < NVF;   /* the batch was seen half done: it runs in chunks */
            mid += half;
            mid_saved += half && json_is_true(json_object_get(json_object_get(h, "state"), "saved"));
        }
        json_decref(h);
    }
    json_t *res = read_reply(fd, 60000);
    long total = check_now_ms() - t0;
    close(fd);
    fprintf(stderr, "batch of %d adds: %ld ms; %u version calls meanwhile, max %ld ms, mean %.2f ms; "
            "%u health calls saw it half done\n", NVF, total, calls, worst, calls ? (double)sum / calls : 0., mid);
    REQUIRE(res, out, "no answer to the batch");
    CHECK(json_integer_value(json_object_get(res, "ok")) == NVF, "batch: %lld of %d added",
          (long long)json_integer_value(json_object_get(res, "ok")), NVF);
    json_decref(res);
    CHECK(calls >= 3, "only %u version calls were answered while the batch ran", calls);
    CHECK(mid >= 1, "no call was answered while the batch was half done: it did not run in chunks");
    CHECK(mid_saved == 0, "health said saved while the batch held the write of %u applied adds", mid_saved);
    CHECK(worst < LATENCY_BOUND_MS, "version took %ld ms during the batch (bound %d)", worst, LATENCY_BOUND_MS);
    CHECK(health_int("vfs", NULL) == NVF, "health: %lld VFs", (long long)health_int("vfs", NULL));
    CHECK(health_int("writes", "state") == writes + 1, "%lld state writes for one batch, want 1",
          (long long)(health_int("writes", "state") - writes));
    CHECK(count_vf_records() == NVF, "the state file has %u VF records, want %d", count_vf_records(), NVF);
    writes = health_int("writes", "state");
    res = NULL;
    int rc = call("vf_batch", ops_of(1, NVF, true), &res, msg, sizeof(msg));
    CHECK(rc == 0 && json_integer_value(json_object_get(res, "ok")) == NVF, "remove batch: %d %s", rc, msg);
    json_decref(res);
    CHECK(health_int("vfs", NULL) == 0, "VFs left after the remove batch");
    CHECK(health_int("writes", "state") == writes + 1, "%lld state writes for the remove batch, want 1",
          (long long)(health_int("writes", "state") - writes));
    CHECK(count_vf_records() == 0, "the state file still has %u VF records", count_vf_records());
out:;
}

/* ---- the client goes away mid-batch ---- */

static void test_client_gone(void)
{
    int fd = send_call("vf_batch", ops_of(1, NVF, false));
    REQUIRE(fd >= 0, out, "send the batch");
    usleep(20000);
    close(fd);
    long end = check_now_ms() + 60000;
    while (health_int("vfs", NULL) != NVF && check_now_ms() < end)
        usleep(50000);
    CHECK(health_int("vfs", NULL) == NVF, "after the client left: %lld VFs, want %d",
          (long long)health_int("vfs", NULL), NVF);
    const char *done[] = {"vf_batch: 256 ops, 0 failed", NULL};
    CHECK(file_wait(log_path, done, 1, 10000), "the batch did not complete");
    CHECK(count_vf_records() == NVF, "the state file has %u VF records, want %d", count_vf_records(), NVF);
    char msg[256];
    json_t *res = NULL;
    int rc = call("vf_batch", ops_of(1, NVF, true), &res, msg, sizeof(msg));
    CHECK(rc == 0 && json_integer_value(json_object_get(res, "ok")) == NVF, "remove batch: %d %s", rc, msg);
    json_decref(res);
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
out:;
}

/* ---- vhostmgmt script mode ---- */

/* vhostmgmt [opt] -s rpc < script: its exit status, stdout+stderr in out. */
static int script(const char *opt, const char *text, char *out, size_t len)
{
    char file[340], cmd[1200];
    snprintf(file, sizeof(file), "%s/script.txt", work);
    if (file_write(file, text) < 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "%s -s %s %s < %s > %s.out 2>&1", vhostmgmt_bin(), rpc, opt, file, file);
    int st = system(cmd);
    snprintf(cmd, sizeof(cmd), "%s.out", file);
    file_read(cmd, out, len);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int batch_calls(void)
{
    const char *needle[] = {"vf_batch: ", " ops, ", NULL};
    return file_count(log_path, needle);
}

static bool added(unsigned n)
{
    char b[16];
    json_t *r = NULL;
    char msg[256];
    int rc = call("vf", json_pack("{s:b, s:s}", "info", 1, "vfdev", vf_bdf(n, b)), &r, msg, sizeof(msg));
    json_decref(r);
    return rc == 0;
}

static void remove_all(void)
{
    json_t *a = json_array();
    char b[16];
    for (unsigned i = 1; i <= NVF; i++)
        if (added(i))
            json_array_append_new(a, json_pack("{s:b, s:s}", "remove", 1, "vfdev", vf_bdf(i, b)));
    char msg[256];
    if (json_array_size(a))
        CHECK(call("vf_batch", json_pack("{s:o}", "ops", a), NULL, msg, sizeof(msg)) == 0, "cleanup: %s", msg);
    else
        json_decref(a);
}

static void test_script_mode(void)
{
    static char text[16384], out[1 << 18];
    char b[16], b2[16], b3[16];
    size_t used = 0;
    for (unsigned i = 1; i <= 200; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "vf -a %s%s\n", vf_bdf(i, b),
                                 i % 50 ? "" : "   # a comment\n\n");
    int calls = batch_calls();
    int st = script("", text, out, sizeof(out));
    CHECK(st == 0, "script of 200 adds: exit %d: %.400s", st, out);
    unsigned shown = 0;
    for (const char *p = out; (p = strstr(p, "socket_file")); p++)
        shown++;
    CHECK(shown == 200, "script of 200 adds printed %u VFs", shown);
    CHECK(health_int("vfs", NULL) == 200, "script of 200 adds: %lld VFs", (long long)health_int("vfs", NULL));
    CHECK(batch_calls() - calls == 2, "script of 200 adds: %d vf_batch calls, want 2 (128 + 72)",
          batch_calls() - calls);
    remove_all();

    /* without --keep-going: stops at the first failed line, the lines after it are not applied */
    snprintf(text, sizeof(text), "vf -a %s\nvf -a 0000:5e:00.1\nvf -a %s\n", vf_bdf(1, b), vf_bdf(2, b2));
    st = script("", text, out, sizeof(out));
    CHECK(st == 1 && strstr(out, "no PCI function 0000:5e:00.1") && strstr(out, "line 2 failed") &&
          !strstr(out, "line 3"), "failing line 2: exit %d: %.400s", st, out);
    CHECK(added(1) && !added(2), "failing line 2: VF1 added %d (want 1), VF2 added %d (want 0)", added(1), added(2));
    remove_all();

    /* --keep-going: every line runs, each failure reported with its line number; a VF twice fails as added */
    snprintf(text, sizeof(text), "vf -a %s\nvf -a 0000:5e:00.1\nvf -a %s\nvf -a %s\n", vf_bdf(1, b),
             vf_bdf(2, b2), vf_bdf(2, b3));
    st = script("--keep-going", text, out, sizeof(out));
    CHECK(st == 1 && strstr(out, "line 2 failed") && strstr(out, "line 4 failed") && !strstr(out, "line 3 failed")
          && strstr(out, "is already added"), "--keep-going: exit %d: %.500s", st, out);
    CHECK(added(1) && added(2), "--keep-going: the good lines were not applied");
    remove_all();

    /* a usage error: the lines before it applied, exit 2, nothing after it */
    snprintf(text, sizeof(text), "vf -a %s\nvf -a 3b:zz.1\nvf -a %s\n", vf_bdf(1, b), vf_bdf(2, b2));
    st = script("", text, out, sizeof(out));
    CHECK(st == 2 && strstr(out, "line 2 failed") && added(1) && !added(2), "usage error on line 2: exit %d: %.400s",
          st, out);
    remove_all();
}

/* ---- stop_on_error: the adds still run in parallel; those after a failed one are undone ---- */

static const struct sim_proc *simp;

static int vf_stall(unsigned n, bool on)
{
    char req[200], rep[200], b[16];
    snprintf(req, sizeof(req), "{\"cmd\":\"fault\",\"type\":\"vfu_stall\",\"bdf\":\"%s\",\"on\":%s}",
             vf_bdf(n, b), on ? "true" : "false");
    return sim_proc_ctl(simp, req, rep, sizeof(rep)) == 0 && strstr(rep, "\"ok\"") && !strstr(rep, "error") ? 0
                                                                                                         : -1;
}

static unsigned vf_sockets(void)
{
    char path[400], b[16];
    unsigned n = 0;
    struct stat st;
    for (unsigned i = 1; i <= 8; i++) {
        snprintf(path, sizeof(path), "%s%s", iface, vf_bdf(i, b));
        n += lstat(path, &st) == 0;
    }
    return n;
}

/* VF 2's device does not answer its bring-up (2 s bound); VFs 3..8, started
 * right after it, are up long before: stop_on_error undoes them, so the
 * outcome is a line-by-line run's (VF 1 added, nothing after VF 2). */
static void test_stop_on_error_undo(void)
{
    char msg[600];
    json_t *res = NULL;
    json_int_t writes = health_int("writes", "state");
    unsigned records = count_vf_records();
    REQUIRE(vf_stall(2, true) == 0, out, "vfu_stall on VF 2");
    json_t *params = ops_of(1, 8, false);
    json_object_set_new(params, "stop_on_error", json_true());
    int rc = call("vf_batch", params, &res, msg, sizeof(msg));
    CHECK(vf_stall(2, false) == 0, "vfu_stall off on VF 2");
    REQUIRE(rc == 0, out, "stop_on_error batch: %d %s", rc, msg);
    CHECK(json_integer_value(json_object_get(res, "ok")) == 1 && json_integer_value(json_object_get(res, "failed"))
          == 7, "stop_on_error: ok/failed %lld/%lld, want 1/7",
          (long long)json_integer_value(json_object_get(res, "ok")),
          (long long)json_integer_value(json_object_get(res, "failed")));
    expect_op(res, 0, true, 0, NULL);
    expect_op(res, 1, false, RPC_TIMEOUT, "did not answer");
    for (unsigned i = 2; i < 8; i++)
        expect_op(res, i, false, RPC_DEVICE_ERROR, "ops[1] failed before it");
    unsigned undone = 0;
    char *text = json_dumps(res, 0);
    for (const char *q = text; q && (q = strstr(q, "add was undone")); q++)
        undone++;
    free(text);
    CHECK(undone == 6, "%u of the 6 adds after the failed one were undone: they did not run in parallel", undone);
    CHECK(added(1) && !added(2) && !added(3) && !added(8), "stop_on_error: VF1 %d VF2 %d VF3 %d VF8 %d (want 1 0 0 0)",
          added(1), added(2), added(3), added(8));
    CHECK(vf_sockets() == 1, "%u vhost-user sockets of VFs 1..8 are left, want VF 1's", vf_sockets());
    CHECK(health_int("writes", "state") == writes + 1 && count_vf_records() == records + 1,
          "stop_on_error: %lld state writes (want 1), %u records (want %u)",
          (long long)(health_int("writes", "state") - writes), count_vf_records(), records + 1);
out:
    json_decref(res);
    remove_all();
}

/* ---- SIGTERM mid-batch: a clean exit, the file holds exactly what was applied ---- */

static void test_stop_mid_batch(void)
{
    int fd = send_call("vf_batch", ops_of(1, NVF, false));
    REQUIRE(fd >= 0, out, "send the batch");
    long end = check_now_ms() + 20000;
    while (health_int("vfs", NULL) < 8 && check_now_ms() < end)
        usleep(2000);
    kill(vhostd, SIGTERM);
    int st = proc_wait(vhostd, 15000);
    CHECK(st == 0, "vfe-vhostd exit status %d after SIGTERM mid-batch", st);
    if (st < 0)
        proc_stop(vhostd, 1000);
    vhostd = -1;
    close(fd);
    static char text[1 << 22];
    file_read(log_path, text, sizeof(text));
    const char *line = NULL;   /* the last batch's line */
    for (const char *p = text; (p = strstr(p, "vf_batch: 256 ops, ")); p++)
        line = p;
    unsigned failed = 0;
    CHECK(line && sscanf(line, "vf_batch: 256 ops, %u failed", &failed) == 1 && failed > 0 && failed < NVF,
          "no line telling how much of the batch was stopped");
    CHECK(count_vf_records() == NVF - failed, "the state file has %u VF records, the batch applied %u",
          count_vf_records(), NVF - failed);
out:;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct sim_proc sp = {0};
    const char *sim_args[] = {"--pf", PF, "--vfs", "256", "--total-vfs", "256", "--log-level", "warning", NULL};
    snprintf(work, sizeof(work), "%s/vfe-batch-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(work))
        return 1;
    snprintf(rpc, sizeof(rpc), "%s/vhostd.sock", work);
    snprintf(iface, sizeof(iface), "%s/vf-", work);
    snprintf(state, sizeof(state), "%s/state", work);
    snprintf(state_file, sizeof(state_file), "%s/provisioning.json", state);
    snprintf(log_path, sizeof(log_path), "%s/vhostd.log", work);
    REQUIRE(sim_proc_start(&sp, sim_args) == 0, done, "sim start");
    const char *argv[] = {vhostd_bin(), "--pci-root", sp.root, "--rpc", rpc, "--iface", iface, "--state-dir", state,
                          "--log-level", getenv("VFE_TEST_DEBUG") ? "debug" : "notice", NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    REQUIRE(vhostd > 0 && file_wait(log_path, ready, 1, 5000), done, "vfe-vhostd did not start");
    char msg[256];
    REQUIRE(call("mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", PF), NULL, msg, sizeof(msg)) == 0, done,
            "mgmtpf add: %s", msg);
    test_validation();
    test_per_op_errors();
    test_big_batch();
    test_client_gone();
    test_script_mode();
    simp = &sp;
    test_stop_on_error_undo();
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
    test_stop_mid_batch();
done:
    if (vhostd > 0)
        CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    if (sp.pid > 0)
        sim_proc_stop(&sp);
    proc_remove_workdir(work);
    return check_result("vhostd_batch");
}
