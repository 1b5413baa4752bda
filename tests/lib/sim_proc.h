/* Start and stop vfe-dpu-sim for a test: a fresh temp dir, wait for ROOT/ready,
 * stop by PID (SIGTERM, then SIGKILL after a bound). */
#ifndef TEST_SIM_PROC_H
#define TEST_SIM_PROC_H

#include <sys/types.h>

struct sim_proc {
    pid_t pid;
    char dir[256];     /* temp dir holding root/ and the log */
    char root[300];    /* dir/root: the sysfs-shaped tree */
    char ctl[340];     /* root/sim-ctl.sock */
};

/* argv: extra sim arguments after "--root ROOT", NULL-terminated, e.g.
 * {"--pf", "0000:3b:00.0", "--vfs", "4", NULL}.  0 or -1 (message on stderr). */
int sim_proc_start(struct sim_proc *sp, const char *const *args);
/* Path of function bdf's vfio-user socket into buf. */
const char *sim_proc_sock(const struct sim_proc *sp, const char *bdf, char *buf, size_t len);
/* Send one JSON line to the control socket, reply into buf (NUL-terminated). 0 or -1. */
int sim_proc_ctl(const struct sim_proc *sp, const char *json, char *reply, size_t len);
/* Stop the sim; returns its exit status (0 when it exited cleanly on SIGTERM). */
int sim_proc_stop(struct sim_proc *sp);
/* The sim is still running. */
int sim_proc_alive(const struct sim_proc *sp);

/* Guest memory for tests: a memfd of `size` bytes, mapped shared. */
struct guest_mem {
    int fd;
    size_t size;
    void *va;
};
int guest_mem_create(struct guest_mem *gm, size_t size);
void guest_mem_destroy(struct guest_mem *gm);

#endif
