/*
 * The last switchover per VF (drivers/vdpa/virtio/vdpa_timeline.h) as
 * `stats` and `vhostmgmt migration` show it, driven by the test front-end:
 *   - a start fills in the destination half, in order: connection, memory
 *     table, memory mapped, start begun, rings running;
 *   - QEMU's stop (GET_VRING_BASE per ring, no SET_VRING_ENABLE 0 before)
 *     fills in the source half, in order: first GET_VRING_BASE, device stop
 *     begun, device stopped, each ring answered in the order asked;
 *   - with 4 queue pairs every one of the 8 rings is there;
 *   - a front-end that disables its rings first shows the stop before the
 *     first GET_VRING_BASE (negative offsets); a new switchover replaces the
 *     last one;
 *   - vhostmgmt migration prints it, and refuses a bad address.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/lib/check.h"
#include "tests/lib/test_rpc.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define PF "0000:3b:00.0"
#define VF_A "0000:3b:00.1"
#define VF_B "0000:3b:00.2"

static struct sim_proc sp;
static pid_t vhostd = -1;
static char rpc[300], log_path[300];

static bool wait_running(const char *bdf, long rings)
{
    for (long end = check_now_ms() + 8000; check_now_ms() < end; usleep(5000)) {
        json_t *vf = test_rpc_vf_stats(rpc, bdf);
        bool ok = vf && !strcmp(json_string_value(json_object_get(vf, "state")) ?: "", "running") &&
                  json_integer_value(json_object_get(vf, "rings_running")) == rings;
        json_decref(vf);
        if (ok)
            return true;
    }
    fprintf(stderr, "%s: not running with %ld rings\n", bdf, rings);
    return false;
}

/* A half of the VF's timeline (the caller decrefs), NULL if none. */
static json_t *half(const char *bdf, const char *which)
{
    json_t *vf = test_rpc_vf_stats(rpc, bdf);
    json_t *h = json_object_get(json_object_get(vf, "migration"), which);
    h = json_is_object(h) ? json_incref(h) : NULL;
    json_decref(vf);
    return h;
}

static double ms(json_t *h, const char *key)
{
    json_t *v = json_object_get(h, key);
    return json_is_number(v) ? json_number_value(v) : -1e9;
}

static bool is_set(json_t *h, const char *key)
{
    return json_is_number(json_object_get(h, key));
}

/* Destination half after a start with `rings` rings. */
static void check_destination(const char *bdf, long rings)
{
    json_t *d = half(bdf, "destination");
    REQUIRE(d, out, "%s: no destination half after a start", bdf);
    double conn = ms(d, "connected_ms"), mem = ms(d, "mem_table_ms"), mapped = ms(d, "mem_mapped_ms"),
           begun = ms(d, "start_begun_ms"), run = ms(d, "rings_started_ms");
    CHECK(is_set(d, "connected_ms") && is_set(d, "mem_mapped_ms") && is_set(d, "start_begun_ms") &&
              is_set(d, "rings_started_ms"),
          "%s: destination events missing", bdf);
    CHECK(conn <= mem && mem == 0 && mem <= mapped && mapped <= begun && begun <= run,
          "%s: destination out of order: connected %.3f, mem %.3f, mapped %.3f, start %.3f, running %.3f", bdf, conn,
          mem, mapped, begun, run);
    CHECK(ms(d, "switchover_ms") == run && run < 2000, "%s: destination switchover %.3f ms", bdf, run);
    CHECK(json_integer_value(json_object_get(d, "rings")) == rings, "%s: destination runs %lld rings, want %ld", bdf,
          json_integer_value(json_object_get(d, "rings")), rings);
    json_decref(d);
out:;
}

/* QEMU at switchover: GET_VRING_BASE per ring, each reply awaited, no
 * SET_VRING_ENABLE 0 before. */
static bool qemu_stop(struct vfe_fe *fe, unsigned rings)
{
    for (uint32_t r = 0; r < rings; r++) {
        struct { uint32_t index, num; } st = {r, 0};
        if (vfe_fe_raw(fe, 11 /* GET_VRING_BASE */, 1, &st, sizeof(st), NULL, 0, &st, sizeof(st), 8000) != 8 ||
            st.index != r)
            return false;
    }
    return true;
}

/* Source half after a stop of `rings` rings; stop_first: the device stopped
 * before the first GET_VRING_BASE. */
static void check_source(const char *bdf, unsigned rings, bool stop_first)
{
    json_t *s = half(bdf, "source");
    REQUIRE(s, out, "%s: no source half after a stop", bdf);
    double begun = ms(s, "stop_begun_ms"), stopped = ms(s, "stopped_ms"), first = ms(s, "first_answer_ms"),
           last = ms(s, "last_answer_ms");
    CHECK(is_set(s, "stop_begun_ms") && is_set(s, "stopped_ms") && is_set(s, "first_answer_ms") &&
              is_set(s, "last_answer_ms"),
          "%s: source events missing", bdf);
    CHECK(ms(s, "first_get_vring_base_ms") == 0 && begun <= stopped && stopped <= first && first <= last,
          "%s: source out of order: stop %.3f, stopped %.3f, first answer %.3f, last %.3f", bdf, begun, stopped,
          first, last);
    CHECK(stop_first ? begun < 0 : begun >= 0, "%s: stop began at %.3f ms, %s the first GET_VRING_BASE", bdf, begun,
          stop_first ? "want before" : "want after");
    CHECK(json_integer_value(json_object_get(s, "rings_asked")) == rings &&
              json_integer_value(json_object_get(s, "rings_answered")) == rings,
          "%s: %lld rings asked, %lld answered, want %u", bdf, json_integer_value(json_object_get(s, "rings_asked")),
          json_integer_value(json_object_get(s, "rings_answered")), rings);
    CHECK(ms(s, "switchover_ms") == last && last < 2000, "%s: source switchover %.3f ms", bdf, last);
    json_t *ans = json_object_get(s, "answered");
    double prev = -1e9;
    bool ordered = json_array_size(ans) == rings;
    for (unsigned i = 0; i < json_array_size(ans) && ordered; i++) {
        json_t *a = json_array_get(ans, i);
        ordered = json_integer_value(json_object_get(a, "ring")) == i && ms(a, "ms") >= prev && ms(a, "ms") >= first;
        prev = ms(a, "ms");
    }
    CHECK(ordered, "%s: per-ring answers missing or not in the order asked", bdf);
    json_decref(s);
out:;
}

/* vhostmgmt with args; exit status, output in out. */
static int mgmt(char *out, size_t len, const char *a1, const char *a2, const char *a3)
{
    char path[320];
    snprintf(path, sizeof(path), "%.200s/mgmt.out", sp.dir);
    const char *argv[] = {getenv("VFE_VHOSTMGMT") ?: "vhostmgmt", "-s", rpc, a1, a2, a3, NULL};
    pid_t p = proc_spawn(argv, path);
    int rc = p > 0 ? proc_wait(p, 10000) : -1;
    file_read(path, out, len);
    return rc;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *args[] = {"--pf", PF, "--vfs", "2", "--log-level", "info", NULL};
    if (sim_proc_start(&sp, args) < 0)
        return 1;
    snprintf(rpc, sizeof(rpc), "%.200s/vhostd.sock", sp.dir);
    snprintf(log_path, sizeof(log_path), "%.200s/vhostd.log", sp.dir);
    char iface[300], sa[320], sb[320], out[8192];
    snprintf(iface, sizeof(iface), "%.200s/vf-", sp.dir);
    const char *argv[] = {getenv("VFE_VHOSTD") ?: "vfe-vhostd", "--pci-root", sp.root, "--rpc", rpc, "--iface", iface,
                          "--log-level", "info", "--no-state", NULL};
    vhostd = proc_spawn(argv, log_path);
    const char *ready[] = {"ready: RPC", NULL};
    struct vfe_fe *a = NULL, *b = NULL;
    REQUIRE(file_wait(log_path, ready, 1, 5000), done, "vfe-vhostd did not start");
    REQUIRE(test_rpc_call(rpc, "mgmtpf", json_pack("{s:b, s:s}", "add", 1, "dev", PF), NULL) == 0 &&
                test_rpc_call(rpc, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_A), NULL) == 0 &&
                test_rpc_call(rpc, "vf", json_pack("{s:b, s:s}", "add", 1, "vfdev", VF_B), NULL) == 0, done, "provisioning");
    json_t *none = half(VF_A, "source"), *none_d = half(VF_A, "destination");
    CHECK(!none && !none_d, "a VF that never ran has a switchover");
    json_decref(none);
    json_decref(none_d);
    snprintf(sa, sizeof(sa), "%s%s", iface, VF_A);
    snprintf(sb, sizeof(sb), "%s%s", iface, VF_B);

    /* one queue pair: start, then QEMU's stop */
    struct vfe_fe_opts oa = {.path = sa};
    a = vfe_fe_open(&oa);
    REQUIRE(a && vfe_fe_start(a, NULL) == 0 && wait_running(VF_A, 2), done, "front-end a");
    check_destination(VF_A, 2);
    json_t *s0 = half(VF_A, "source");
    CHECK(!s0, "a source half before any GET_VRING_BASE");
    json_decref(s0);
    REQUIRE(qemu_stop(a, 2), done, "GET_VRING_BASE on both rings");
    check_source(VF_A, 2, false);
    CHECK(mgmt(out, sizeof(out), "migration", VF_A, NULL) == 0 && strstr(out, VF_A) &&
              strstr(out, "first GET_VRING_BASE") && strstr(out, "device stopped") &&
              strstr(out, "ring 1 GET_VRING_BASE answered") && strstr(out, "rings running"),
          "vhostmgmt migration: %s", out);
    fprintf(stderr, "vhostmgmt migration %s:\n%s", VF_A, out);
    json_t *j = mgmt(out, sizeof(out), "--json", "migration", VF_A) == 0 ? json_loads(out, 0, NULL) : NULL;
    json_t *jm = json_object_get(json_array_get(json_object_get(j, "vfs"), 0), "migration");
    CHECK(json_is_number(json_object_get(json_object_get(jm, "source"), "switchover_ms")) &&
              json_is_number(json_object_get(json_object_get(jm, "destination"), "switchover_ms")),
          "vhostmgmt --json migration: %s", out);
    json_decref(j);
    CHECK(mgmt(out, sizeof(out), "migration", "0000:3b:00.7", NULL) != 0, "vhostmgmt migration of an unknown VF: %s",
          out);
    CHECK(mgmt(out, sizeof(out), "migration", "3b:00.9", NULL) == 2 && strstr(out, "not a PCI address"),
          "vhostmgmt migration with a bad address: %s", out);

    /* four queue pairs: every ring in both halves */
    struct vfe_fe_opts ob = {.path = sb, .pairs = 4};
    b = vfe_fe_open(&ob);
    REQUIRE(b && vfe_fe_start(b, NULL) == 0 && wait_running(VF_B, 8), done, "front-end b, 4 pairs");
    check_destination(VF_B, 8);
    REQUIRE(qemu_stop(b, 8), done, "GET_VRING_BASE on 8 rings");
    check_source(VF_B, 8, false);

    /* a second switchover on a: restarted where it stopped, then stopped as
     * the test front-end does (rings disabled first): the new one replaces the last */
    uint16_t used[2];
    vfe_fe_used_indices(a, used);
    json_t *old = half(VF_A, "source");
    double old_age = ms(old, "age_ms");
    json_decref(old);
    usleep(100000);
    REQUIRE(vfe_fe_reconnect(a) == 0 && vfe_fe_start(a, used) == 0 && wait_running(VF_A, 2), done, "a restarted");
    check_destination(VF_A, 2);
    REQUIRE(vfe_fe_stop(a, NULL) == 0, done, "a stopped");
    check_source(VF_A, 2, true);
    json_t *s1 = half(VF_A, "source");
    CHECK(ms(s1, "age_ms") < old_age, "the last switchover was not replaced (age %.1f ms, was %.1f)",
          ms(s1, "age_ms"), old_age);
    json_decref(s1);
    CHECK(proc_alive(vhostd), "vfe-vhostd died");
done:
    vfe_fe_close(a);
    vfe_fe_close(b);
    CHECK(proc_stop(vhostd, 8000) == 0, "vfe-vhostd exit status");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("migration_timeline");
}
