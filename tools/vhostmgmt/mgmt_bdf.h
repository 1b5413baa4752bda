/* PCI addresses as an operator types them, in the one form the daemon takes. */
#ifndef VHOSTMGMT_BDF_H
#define VHOSTMGMT_BDF_H

#include <stdbool.h>
#include <stddef.h>

#define MGMT_BDF_LEN 13   /* "dddd:bb:dd.f" and its NUL */

/* "DDDD:BB:DD.F" or "BB:DD.F" (hex, either case; device < 0x20, function < 8)
 * into out as "dddd:bb:dd.f" (domain 0000 when left out, lower case).
 * false (out "") for anything else. */
bool mgmt_bdf_normalise(const char *in, char out[MGMT_BDF_LEN]);

#endif
