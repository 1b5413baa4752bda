/* RLIMIT_NOFILE at start (see fd_budget.h). */
#include "app/vfe-vdpa/fd_budget.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "app/vfe-vdpa/registry.h"
#include "lib/log/vfe_log.h"

unsigned vhostd_fd_budget_vfs(unsigned long nofile, unsigned fds_per_vf)
{
    if (nofile <= VHOSTD_FDS_RESERVED || !fds_per_vf)
        return 0;
    unsigned long n = (nofile - VHOSTD_FDS_RESERVED) / fds_per_vf;
    return n > VHOSTD_MAX_MANAGED_VFS ? VHOSTD_MAX_MANAGED_VFS : (unsigned)n;
}

unsigned long vhostd_fd_budget_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        LOG_W("RLIMIT_NOFILE: %s", strerror(errno));
        return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = rl.rlim_max;
        else
            LOG_W("RLIMIT_NOFILE: cannot raise %llu to %llu: %s", (unsigned long long)rl.rlim_cur,
                  (unsigned long long)rl.rlim_max, strerror(errno));
    }
    unsigned long n = rl.rlim_cur == RLIM_INFINITY ? (unsigned long)1 << 30 : (unsigned long)rl.rlim_cur;
    unsigned idle = vhostd_fd_budget_vfs(n, VHOSTD_FDS_PER_IDLE_VF),
             active = vhostd_fd_budget_vfs(n, VHOSTD_FDS_PER_ACTIVE_VF);
    if (active < VHOSTD_MAX_MANAGED_VFS)
        LOG_N("%lu file descriptors: enough for %u VFs without a guest, %u with one (single queue pair); "
              "the daemon manages up to %d (raise LimitNOFILE)", n, idle, active, VHOSTD_MAX_MANAGED_VFS);
    else
        LOG_N("%lu file descriptors: enough for %d VFs, with guests", n, VHOSTD_MAX_MANAGED_VFS);
    return n;
}
