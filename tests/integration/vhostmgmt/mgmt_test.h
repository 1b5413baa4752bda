/* Helpers of the vhostmgmt tests: run a program with its stdout and stderr
 * apart, and the sim with vfe-vhostd (unix RPC and --compat-tcp) in a temp dir. */
#ifndef TEST_MGMT_TEST_H
#define TEST_MGMT_TEST_H

#include <stddef.h>
#include <sys/types.h>

#include "tests/lib/sim_proc.h"

#define MT_PF "0000:3b:00.0"

/* $VFE_VHOSTMGMT (the build's vhostmgmt). */
const char *mt_vhostmgmt(void);

/*
 * Run argv (argv[0] a path) with stdin_text on its stdin (NULL: empty), its
 * stdout into out and stderr into err (NUL-terminated, cut to fit).  Killed by
 * PID after timeout_ms.  Its exit status, 128+signal if killed, -1 if it could
 * not be started.
 */
int mt_run(const char *const *argv, const char *stdin_text, char *out, size_t out_len, char *err, size_t err_len,
           int timeout_ms);

/* The lines of text ('\n'-terminated ones; a tail without one counts too). */
unsigned mt_lines(const char *text);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int mt_free_port(void);

struct mt_daemon {
    struct sim_proc sp;      /* PF MT_PF with 4 VFs; sp.root is the PCI tree */
    pid_t pid;               /* vfe-vhostd */
    char rpc[300];           /* its unix RPC socket */
    char iface[300];         /* its --iface prefix */
    char tcp[32];            /* its --compat-tcp 127.0.0.1:PORT */
    char log[400];
};

/* 0 when both run and the daemon is ready; -1 (message on stderr, all stopped). */
int mt_daemon_start(struct mt_daemon *d);
/* Stop both by PID, remove the temp dir; the daemon's exit status (0: clean). */
int mt_daemon_stop(struct mt_daemon *d);

#endif
