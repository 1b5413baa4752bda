/* One error message into the caller's buffer, for the parsers of vhostmgmt. */
#ifndef MGMT_ERR_H
#define MGMT_ERR_H

#include <stddef.h>

/* Formats the message into err[len] (truncated) and returns -1. */
int mgmt_failf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
