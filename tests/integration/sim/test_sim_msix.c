/*
 * The sim's dynamic MSI-X: the PF's pool (sriov_vf_total_msix), each VF's
 * share (sriov_vf_msix_count) written as a file or through the control
 * socket, refusals (pool exhausted, VF with a driver, bad values), reclaim
 * refused while a VF is enabled, a VF without vectors refusing clients, and
 * the default spread again after a PF reset.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "tests/lib/proc.h"
#include "tests/lib/sim_proc.h"

#define PF  "0000:3b:00.0"
#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"

static const struct sim_proc *g_sp;

static void path_of(const char *bdf, const char *file, char *out, size_t len)
{
    snprintf(out, len, "%s/%s/%s", g_sp->root, bdf, file);
}

static int read_count(const char *bdf, const char *file)
{
    char path[600], buf[64];
    path_of(bdf, file, path, sizeof(path));
    if (file_read(path, buf, sizeof(buf)) < 0)
        return -1;
    return atoi(buf);
}

static void write_count(const char *bdf, const char *text)
{
    char path[600];
    path_of(bdf, "sriov_vf_msix_count", path, sizeof(path));
    CHECK(file_write(path, text) == 0, "write %s to %s", text, path);
}

/* Wait up to 3 s for the file to read `want`. */
static bool wait_count(const char *bdf, int want)
{
    long end = check_now_ms() + 3000;
    while (check_now_ms() < end) {
        if (read_count(bdf, "sriov_vf_msix_count") == want)
            return true;
        usleep(20000);
    }
    return false;
}

/* The sim's view through the control socket: "vectors" of a VF, "free" of a PF. */
static int ctl_int(const char *req, const char *key)
{
    char reply[4096], pat[64];
    if (sim_proc_ctl(g_sp, req, reply, sizeof(reply)) < 0 || !strstr(reply, "\"ok\":true"))
        return -1;
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(reply, pat);
    return p ? atoi(p + strlen(pat)) : -1;
}

static int vf_vectors(const char *bdf)
{
    char req[128];
    snprintf(req, sizeof(req), "{\"cmd\":\"msix\",\"bdf\":\"%s\"}", bdf);
    return ctl_int(req, "vectors");
}

static int pool_free(void)
{
    return ctl_int("{\"cmd\":\"msix\",\"bdf\":\"" PF "\"}", "free");
}

static int connect_vf(const char *bdf)
{
    char path[600];
    sim_proc_sock(g_sp, bdf, path, sizeof(path));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path))
        return -1;
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The sim closed the connection (refused the client) within 2 s. */
static bool closed_by_peer(int fd)
{
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char b;
    return read(fd, &b, 1) == 0;
}

/* The sim took the client: the control socket reports the VF in use. */
static bool wait_in_use(const char *bdf, bool want)
{
    char req[128], reply[4096];
    snprintf(req, sizeof(req), "{\"cmd\":\"msix\",\"bdf\":\"%s\"}", bdf);
    long end = check_now_ms() + 3000;
    while (check_now_ms() < end) {
        if (sim_proc_ctl(g_sp, req, reply, sizeof(reply)) == 0 &&
            (strstr(reply, "\"in_use\":true") != NULL) == want)
            return true;
        usleep(20000);
    }
    return false;
}

int main(void)
{
    struct sim_proc sp;
    /* pool 20 over 4 possible VFs: 5 each (1 queue pair), 10 free with 2 VFs */
    const char *args[] = {"--pf", PF, "--vfs", "2", "--total-vfs", "4", "--qpairs", "4", "--msix-pool", "20", NULL};
    if (sim_proc_start(&sp, args) < 0) {
        CHECK(0, "sim did not start");
        return check_result("sim_msix");
    }
    g_sp = &sp;
    char reply[4096];

    CHECK(read_count(PF, "sriov_vf_total_msix") == 20, "PF pool file");
    CHECK(read_count(VF1, "sriov_vf_msix_count") == 5 && read_count(VF2, "sriov_vf_msix_count") == 5,
          "default spread: 5 each");
    CHECK(pool_free() == 10, "free %d, want 10", pool_free());
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"msix\",\"bdf\":\"" VF1 "\"}", reply, sizeof(reply)) == 0 &&
              strstr(reply, "\"queue_pairs\":1"),
          "5 vectors give 1 queue pair: %s", reply);

    /* assign through the file */
    write_count(VF1, "10\n");
    long end = check_now_ms() + 3000;
    while (vf_vectors(VF1) != 10 && check_now_ms() < end)
        usleep(20000);
    CHECK(vf_vectors(VF1) == 10, "VF1 vectors %d after writing 10", vf_vectors(VF1));
    CHECK(pool_free() == 5, "free %d, want 5", pool_free());
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"msix\",\"bdf\":\"" VF1 "\"}", reply, sizeof(reply)) == 0 &&
              strstr(reply, "\"queue_pairs\":4"),
          "10 vectors give 4 queue pairs: %s", reply);

    /* exhausted: 5 free + 5 held = 10 < 12; the file shows the real count again */
    write_count(VF2, "12\n");
    usleep(200000);
    CHECK(wait_count(VF2, 5) && vf_vectors(VF2) == 5, "VF2 over the pool must stay at 5");
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"msix\",\"bdf\":\"" VF2 "\",\"vectors\":12}", reply, sizeof(reply)) == 0 &&
              strstr(reply, "\"ok\":false") && strstr(reply, "5 free"),
          "exhausted pool: clear error with the free count: %s", reply);

    /* bad values */
    const char *bad[] = {"abc\n", "-1\n", "35\n", "7x\n"};
    for (size_t i = 0; i < 4; i++) {
        write_count(VF2, bad[i]);
        CHECK(wait_count(VF2, 5), "after bad value '%s' the file reads the real count", bad[i]);
    }
    const char *bad_ctl[] = {"{\"cmd\":\"msix\"}", "{\"cmd\":\"msix\",\"bdf\":\"0000:00:00.0\"}",
                             "{\"cmd\":\"msix\",\"bdf\":\"" VF1 "\",\"vectors\":-1}",
                             "{\"cmd\":\"msix\",\"bdf\":\"" VF1 "\",\"vectors\":\"x\"}",
                             "{\"cmd\":\"msix\",\"bdf\":\"" PF "\",\"vectors\":3}",
                             "{\"cmd\":\"msix\",\"bdf\":\"" VF1 "\",\"reclaim\":true}",
                             "{\"cmd\":\"msix\",\"bdf\":\"" PF "\",\"reclaim\":1}"};
    for (size_t i = 0; i < sizeof(bad_ctl) / sizeof(bad_ctl[0]); i++)
        CHECK(sim_proc_ctl(&sp, bad_ctl[i], reply, sizeof(reply)) == 0 && strstr(reply, "\"ok\":false"),
              "bad request %s: %s", bad_ctl[i], reply);

    /* a VF with a driver: its count is fixed, and the PF cannot reclaim */
    int c1 = connect_vf(VF1);
    CHECK(c1 >= 0 && wait_in_use(VF1, true), "client on VF1");
    write_count(VF1, "3\n");
    usleep(200000);
    CHECK(wait_count(VF1, 10) && vf_vectors(VF1) == 10, "write while enabled must be refused");
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"msix\",\"bdf\":\"" PF "\",\"reclaim\":true}", reply, sizeof(reply)) == 0 &&
              strstr(reply, "\"ok\":false") && strstr(reply, VF1),
          "reclaim with VF1 enabled: %s", reply);
    CHECK(vf_vectors(VF2) == 5, "a refused reclaim changes nothing");
    if (c1 >= 0)
        close(c1);
    CHECK(wait_in_use(VF1, false), "VF1 free again");

    /* the count survives the client: still 9 */
    CHECK(vf_vectors(VF1) == 10, "vectors persist across a reconnect");

    /* reclaim: everything back in the pool */
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"msix\",\"bdf\":\"" PF "\",\"reclaim\":true}", reply, sizeof(reply)) == 0 &&
              strstr(reply, "\"free\":20"),
          "reclaim: %s", reply);
    CHECK(wait_count(VF1, 0) && wait_count(VF2, 0), "files read 0 after reclaim");

    /* no vectors, no driver: the client is refused */
    int c2 = connect_vf(VF2);
    CHECK(c2 >= 0 && closed_by_peer(c2), "VF2 with 0 vectors must refuse its client");
    if (c2 >= 0)
        close(c2);

    /* a write just before a connect is in force for that client */
    write_count(VF2, "20\n");
    c2 = connect_vf(VF2);
    CHECK(c2 >= 0 && wait_in_use(VF2, true), "VF2 with 20 vectors takes its client");
    CHECK(vf_vectors(VF2) == 20 && pool_free() == 0, "VF2 holds the whole pool");
    if (c2 >= 0)
        close(c2);
    CHECK(wait_in_use(VF2, false), "VF2 free again");

    /* new VFs get what is left (nothing here) */
    char path[600];
    path_of(PF, "sriov_numvfs", path, sizeof(path));
    file_write(path, "3\n");
    CHECK(wait_count("0000:3b:00.3", 0), "VF3 created with an empty pool has 0 vectors");

    /* PF reset: the default spread again */
    CHECK(sim_proc_ctl(&sp, "{\"cmd\":\"fault\",\"type\":\"pf_reset\",\"bdf\":\"" PF "\"}", reply, sizeof(reply)) ==
                  0 && strstr(reply, "\"ok\":true"),
          "pf_reset: %s", reply);
    CHECK(wait_count(VF1, 5) && wait_count(VF2, 5) && wait_count("0000:3b:00.3", 5), "PF reset: 5 each");
    CHECK(pool_free() == 5, "free %d after reset, want 5", pool_free());

    /* fewer VFs: their vectors go back */
    file_write(path, "1\n");
    end = check_now_ms() + 3000;
    while (pool_free() != 15 && check_now_ms() < end)
        usleep(20000);
    CHECK(pool_free() == 15, "free %d after 2 VFs went away, want 15", pool_free());

    CHECK(sim_proc_alive(&sp), "sim died");
    CHECK(sim_proc_stop(&sp) == 0, "sim exit status");
    return check_result("sim_msix");
}
