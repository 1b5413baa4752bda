/* Child processes for tests: started with output to a file, stopped by PID. */
#ifndef TEST_PROC_H
#define TEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* argv[0] is looked up in $PATH or given as a path; stdout and stderr go to out. */
pid_t proc_spawn(const char *const *argv, const char *out);
/* SIGTERM, then SIGKILL after timeout_ms; exit status (128+sig if killed). */
int proc_stop(pid_t pid, int timeout_ms);
/* Wait for the child to exit by itself; its status or -1 on timeout. */
int proc_wait(pid_t pid, int timeout_ms);
bool proc_alive(pid_t pid);
/* A loopback TCP port for a daemon a test starts: below the kernel's ephemeral
 * range (so no outgoing connection can hold it meanwhile), spread by pid and
 * seen free by a probe bind (not reserved: another test may still take it).
 * 0 if none found. */
int proc_free_tcp_port(void);
/* rm -rf a test's temp dir, unless VFE_TEST_KEEP is set (kept for a look after a failure). */
void proc_remove_workdir(const char *dir);
/* Open file descriptors of pid (from /proc), -1 on error. */
int proc_fd_count(pid_t pid);
/* CPU time (user + system) pid has used, in milliseconds; -1 on error. */
long proc_cpu_ms(pid_t pid);
/* Lines of file containing every one of the NULL-terminated needles. */
int file_count(const char *path, const char *const *needles);
/* Whole (small) file into buf, NUL-terminated: 0, or -1 (buf "") if it cannot be opened. */
int file_read(const char *path, char *buf, size_t len);
/* text as the whole file: 0 or -1. */
int file_write(const char *path, const char *text);
/* Wait until file_count() >= n. */
bool file_wait(const char *path, const char *const *needles, int n, int timeout_ms);

#endif
