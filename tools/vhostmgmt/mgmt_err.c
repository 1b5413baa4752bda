/* See mgmt_err.h. */
#include "tools/vhostmgmt/mgmt_err.h"

#include <stdarg.h>
#include <stdio.h>

int mgmt_failf(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}
