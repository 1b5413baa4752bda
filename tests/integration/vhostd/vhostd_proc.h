/* Helpers of the vfe-vhostd tests: the binaries, vhostmgmt runs. */
#ifndef TEST_VHOSTD_PROC_H
#define TEST_VHOSTD_PROC_H

#include <stdarg.h>
#include <stddef.h>

/* $VFE_VHOSTD / $VFE_VHOSTMGMT, else the name in $PATH. */
const char *vhostd_bin(void);
const char *vhostmgmt_bin(void);

/* Run vhostmgmt -s rpc with args (NULL-terminated, each passed as one shell
 * word: no quoting is done), stdin_text on its stdin if not NULL.  Its exit
 * status; stdout and stderr in out. */
int vhostmgmt_run(const char *rpc, char *out, size_t len, const char *stdin_text, ...);
int vhostmgmt_vrun(const char *rpc, char *out, size_t len, const char *stdin_text, va_list ap);

#endif
