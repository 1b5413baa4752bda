/*
 * lib/vhost (in vfe-vhost-testd, a back-end with a recording glue) against
 * the test front-end, as QEMU would drive it: negotiation, 1 and 8 queue
 * pairs, start / stop / restart at given indices, memory slots added and
 * removed, reconnect, bad requests; and a live session handed from one
 * process to another on the same connection without the front-end noticing.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include "lib/vhost/vhost_proto.h"
#include "tests/frontend/vfe_frontend.h"
#include "tests/lib/check.h"
#include "tests/lib/proc.h"

static char dir[64], sock[128], events[128];

static const char *testd(void)
{
    const char *b = getenv("VFE_VHOST_TESTD");
    return b ? b : "vfe-vhost-testd";
}

static pid_t start_testd(const char *pairs, const char *extra, const char *extra_arg, const char *out)
{
    const char *argv[] = {testd(), "--socket", sock, "--pairs", pairs, extra, extra_arg, NULL};
    pid_t pid = proc_spawn(argv, out);
    const char *ready[] = {"\"ready\"", NULL};
    if (!extra || strcmp(extra, "--adopt"))
        CHECK(file_wait(out, ready, 1, 5000), "vfe-vhost-testd did not start");
    return pid;
}

static int count(const char *a, const char *b)
{
    const char *n[] = {a, b, NULL};
    return file_count(events, n);
}

static void test_pairs(unsigned pairs)
{
    char np[8];
    snprintf(np, sizeof(np), "%u", pairs == 1 ? 8 : pairs);
    pid_t pid = start_testd(np, NULL, NULL, events);
    struct vfe_fe_opts o = {.path = sock, .pairs = pairs};
    struct vfe_fe *fe = vfe_fe_open(&o);
    REQUIRE(fe != NULL, out, "front-end open: %s", strerror(errno));
    CHECK(vfe_fe_features(fe) & (1ull << VIRTIO_F_VERSION_1), "VERSION_1 not negotiated");
    CHECK(vfe_fe_protocol_features(fe) & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK), "no REPLY_ACK");
    CHECK(vfe_fe_queue_num(fe) == (pairs == 1 ? 8 : pairs), "queue num %u", vfe_fe_queue_num(fe));
    CHECK(count("\"mem\"", "{\"gpa\":1073741824") == 1, "memory table with the region at 1 GiB");
    CHECK(vfe_fe_start(fe, NULL) == 0, "start");
    const char *st[] = {"ring_start", NULL};
    CHECK(file_wait(events, st, (int)(2 * pairs), 2000), "%d ring starts, want %u", count("ring_start", ""),
          2 * pairs);
    char used[64];
    snprintf(used, sizeof(used), "\"used\":%llu", (unsigned long long)vfe_fe_used_gpa(fe, 1));
    CHECK(count("\"ring\":1,", used) == 1, "ring 1 started with the wrong used ring address");

    uint16_t bases[16] = {0};
    CHECK(vfe_fe_stop(fe, bases) == 0, "stop");
    CHECK(count("ring_stop", "") == (int)(2 * pairs), "ring stops %d", count("ring_stop", ""));
    uint16_t want[16];
    for (unsigned i = 0; i < 2 * pairs; i++)
        want[i] = (uint16_t)(100 + 7 * i);
    CHECK(vfe_fe_start(fe, want) == 0, "restart at given indices");
    CHECK(count("ring_start", "\"base\":107") == 1, "ring 1 restarted at 107");
    CHECK(vfe_fe_stop(fe, bases) == 0 && !memcmp(bases, want, 2 * pairs * sizeof(uint16_t)),
          "GET_VRING_BASE gave other indices");

    /* a memory slot comes and goes */
    int extra = memfd_create("slot", MFD_CLOEXEC);
    CHECK(ftruncate(extra, 1 << 20) == 0, "memfd");
    void *xva = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, extra, 0);
    struct vhost_user_mem_reg mr = {0, {2ull << 30, 1 << 20, (uint64_t)(uintptr_t)xva, 0}};
    uint64_t ack = 9;
    uint32_t fl = VHOST_USER_VERSION | VHOST_USER_FLAG_NEED_REPLY;
    CHECK(vfe_fe_raw(fe, VHOST_USER_ADD_MEM_REG, fl, &mr, sizeof(mr), &extra, 1, &ack, 8, 2000) == 8 && ack == 0,
          "ADD_MEM_REG");
    CHECK(count("\"mem\"", "{\"gpa\":2147483648") == 1, "region at 2 GiB not seen");
    CHECK(vfe_fe_raw(fe, VHOST_USER_REM_MEM_REG, fl, &mr, sizeof(mr), NULL, 0, &ack, 8, 2000) == 8 && ack == 0,
          "REM_MEM_REG");
    munmap(xva, 1 << 20);
    close(extra);

    /* bad requests: refused, the session goes on */
    struct vhost_user_vring_state bad = {2 * 8 + 5, 256};
    CHECK(vfe_fe_raw(fe, VHOST_USER_SET_VRING_NUM, fl, &bad, 8, NULL, 0, &ack, 8, 2000) == 8 && ack == 1,
          "ring index out of range accepted");
    bad = (struct vhost_user_vring_state){0, 300};
    CHECK(vfe_fe_raw(fe, VHOST_USER_SET_VRING_NUM, fl, &bad, 8, NULL, 0, &ack, 8, 2000) == 8 && ack == 1,
          "ring size 300 accepted");

    /* reconnect and resume at the indices */
    CHECK(vfe_fe_reconnect(fe) == 0, "reconnect");
    CHECK(vfe_fe_start(fe, want) == 0, "start after reconnect");
    CHECK(count("\"disconnected\"", "") == 1 && count("\"connected\"", "") == 2,
          "connection events: %d disconnects, %d connects", count("\"disconnected\"", ""),
          count("\"connected\"", ""));
    CHECK(vfe_fe_stop(fe, bases) == 0 && !memcmp(bases, want, 2 * pairs * sizeof(uint16_t)),
          "indices after reconnect");
out:
    vfe_fe_close(fe);
    CHECK(proc_alive(pid), "vfe-vhost-testd died");
    CHECK(proc_stop(pid, 3000) == 0, "vfe-vhost-testd exit status");
}

static void test_handoff(void)
{
    char hsock[128], ev_b[128];
    snprintf(hsock, sizeof(hsock), "%s/handoff.sock", dir);
    snprintf(ev_b, sizeof(ev_b), "%s/events-b", dir);
    pid_t a = start_testd("2", "--handoff", hsock, events);
    struct vfe_fe_opts o = {.path = sock, .pairs = 2};
    struct vfe_fe *fe = vfe_fe_open(&o);
    pid_t b = -1;
    REQUIRE(fe != NULL, out, "front-end open");
    uint16_t want[4] = {3, 4, 5, 6}, got[4] = {0};
    CHECK(vfe_fe_start(fe, want) == 0, "start");
    b = start_testd("2", "--adopt", hsock, ev_b);
    const char *waiting[] = {"adopt_waiting", NULL}, *adopted[] = {"\"adopted\",\"ok\":true", NULL};
    REQUIRE(file_wait(ev_b, waiting, 1, 5000), out, "adopter not waiting");
    kill(a, SIGUSR1);
    CHECK(proc_wait(a, 5000) == 0, "first back-end did not hand off and exit");
    a = -1;
    CHECK(file_wait(ev_b, adopted, 1, 5000), "session not adopted");
    const char *starts[] = {"ring_start", NULL};
    CHECK(file_count(ev_b, starts) == 4, "adopter saw %d running rings", file_count(ev_b, starts));
    /* the front-end goes on on the same socket: stop, restart */
    CHECK(vfe_fe_stop(fe, got) == 0 && !memcmp(got, want, sizeof(want)), "indices from the adopter");
    const char *bases[] = {"get_base", NULL};
    CHECK(file_count(ev_b, bases) == 4, "the adopter did not answer GET_VRING_BASE");
    CHECK(vfe_fe_start(fe, want) == 0, "restart on the adopted session");
    CHECK(file_wait(ev_b, starts, 8, 2000), "rings not restarted by the adopter");
out:
    vfe_fe_close(fe);
    if (a > 0)
        proc_stop(a, 2000);
    if (b > 0)
        CHECK(proc_stop(b, 3000) == 0, "adopter exit status");
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/vfe-vhost-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock, sizeof(sock), "%s/vhost.sock", dir);
    snprintf(events, sizeof(events), "%s/events", dir);
    test_pairs(1);
    test_pairs(8);
    test_handoff();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (!check_failures && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_result("vhost_frontend");
}
