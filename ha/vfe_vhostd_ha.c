/* vfe-vhostd-ha: holds the fds and state snapshots vfe-vhostd deposits, so the daemon can crash and resume. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "ha/ha_server.h"
#include "lib/log/vfe_log.h"
#include "vfe_version.h"

#define DEFAULT_SOCKET "/run/vfe-vhostd/ha.sock"
/* fds kept free for the fds of a PUT still arriving, the dup()s of one GET packet, the listener, a client, logging */
#define FD_RESERVE (VFE_HA_MAX_RECORD_FDS + VFE_HA_MAX_FDS + 64)

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vfe-vhostd-ha [options]\n"
            "Holds the fds and state snapshots vfe-vhostd deposits, so that the daemon can\n"
            "crash or be restarted without resetting devices or guests (docs/ha.md).\n"
            "  --socket PATH        unix socket to serve (default " DEFAULT_SOCKET ", mode 0600)\n"
            "  --max-records N      records held at most (default 16400: 16 PFs and 16384 VFs)\n"
            "  --max-bytes N        blob and key bytes held at most (default 256 MiB)\n"
            "  --hello-timeout SEC  close a client that sends no HELLO within SEC seconds\n"
            "                       (default 5, 1 to 600)\n"
            "  --log-level LEVEL    err, warning, info, debug (default info)\n"
            "  -h, --help           this text\n"
            "  --version            print the version (one line) and exit\n");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !*s || *end || *s == '-' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The fd limit: raise the soft limit to the hard one; hold at most that minus a reserve. */
static uint32_t fd_budget(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t cur = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
    if (cur <= FD_RESERVE)
        return 0;
    cur -= FD_RESERVE;
    return cur > UINT32_MAX ? UINT32_MAX : (uint32_t)cur;
}

/* The socket's directory (created 0700 if missing) and the one-instance lock beside the socket. */
static int lock_socket_path(const char *path, int *lock_fd)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            LOG_E("--socket %s: cannot create %s: %s", path, dir, strerror(errno));
            return -1;
        }
    }
    int rc = vfe_path_lock(path, lock_fd);
    if (rc == -EBUSY)
        LOG_E("another vfe-vhostd-ha serves %s (it holds %s.lock): not starting", path, path);
    else if (rc < 0)
        LOG_E("--socket %s: cannot lock %s.lock: %s", path, path, strerror(-rc));
    return rc;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    LOG_N("signal %d: stopping; every held fd is closed", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"max-records", required_argument, NULL, 'r'},
        {"max-bytes", required_argument, NULL, 'b'}, {"log-level", required_argument, NULL, 'l'},
        {"hello-timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},           {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *path = DEFAULT_SOCKET;
    uint64_t max_records = 16400, max_bytes = 256ull << 20, hello_timeout = 5;
    int level = LOG_INFO;
    vfe_log_set_ident("vfe-vhostd-ha");
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 's': path = optarg; break;
        case 'r':
            if (parse_u64(optarg, 1, 1u << 20, &max_records) < 0) {
                fprintf(stderr, "vfe-vhostd-ha: --max-records: a number from 1 to %u\n", 1u << 20);
                return 2;
            }
            break;
        case 'b':
            if (parse_u64(optarg, 1, 1ull << 40, &max_bytes) < 0) {
                fprintf(stderr, "vfe-vhostd-ha: --max-bytes: a number from 1 to 2^40\n");
                return 2;
            }
            break;
        case 't':
            if (parse_u64(optarg, 1, 600, &hello_timeout) < 0) {
                fprintf(stderr, "vfe-vhostd-ha: --hello-timeout: seconds from 1 to 600\n");
                return 2;
            }
            break;
        case 'l':
            if ((level = vfe_log_parse_level(optarg)) < 0) {
                fprintf(stderr, "vfe-vhostd-ha: --log-level: err, warning, info or debug\n");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("vfe-vhostd-ha (vfe) %s\n", VFE_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vfe-vhostd-ha: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!*path || strlen(path) > VFE_SUN_PATH_MAX) {
        fprintf(stderr, "vfe-vhostd-ha: --socket: 1 to %zu bytes\n", (size_t)VFE_SUN_PATH_MAX);
        return 2;
    }
    vfe_log_set_level(level);
    signal(SIGPIPE, SIG_IGN);
    struct vfe_ha_limits lim = {.max_records = (uint32_t)max_records, .max_fds = fd_budget(),
                                .max_record_fds = VFE_HA_MAX_RECORD_FDS, .max_blob = VFE_HA_BLOB_MAX,
                                .max_bytes = max_bytes};
    if (lim.max_fds == 0) {
        LOG_E("RLIMIT_NOFILE leaves no room for held fds");
        return 1;
    }
    int lock_fd = -1;
    if (lock_socket_path(path, &lock_fd) < 0)
        return 1;
    struct ev_loop *loop = EV_DEFAULT;
    /* Watched before the socket exists: a SIGTERM right after it appears must still close it cleanly. */
    ev_signal st, si;
    ev_signal_init(&st, on_signal, SIGTERM);
    ev_signal_init(&si, on_signal, SIGINT);
    ev_signal_start(loop, &st);
    ev_signal_start(loop, &si);
    static struct ha_server srv;
    int rc = ha_server_open(&srv, loop, path, &lim, (ev_tstamp)hello_timeout);
    if (rc < 0) {
        LOG_E("--socket %s: %s%s", path, strerror(-rc),
              rc == -EEXIST ? " (not a socket: left alone)" : rc == -EADDRINUSE ? " (somebody serves it)" : "");
        close(lock_fd);
        return 1;
    }
    LOG_N("ready: %s, protocol %u.%u, at most %u records, %u fds, %llu bytes", path, VFE_HA_MAJOR, VFE_HA_MINOR,
          lim.max_records, lim.max_fds, (unsigned long long)lim.max_bytes);
#ifdef HAVE_SYSTEMD
    sd_notify(0, "READY=1");
#endif
    ev_run(loop, 0);
    ha_server_close(&srv);
    close(lock_fd);   /* the lock file stays: removing it would race with a starting instance */
    return 0;
}
