/* PCI address normalisation (see mgmt_bdf.h). */
#include "tools/vhostmgmt/mgmt_bdf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* n hex digits at *p, advancing it; -1 if any of them is not one. */
static long hex_field(const char **p, unsigned n)
{
    long v = 0;
    for (unsigned i = 0; i < n; i++, (*p)++) {
        int c = (unsigned char)**p;
        if (!isxdigit(c))
            return -1;
        v = v * 16 + (isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
    }
    return v;
}

bool mgmt_bdf_normalise(const char *in, char out[MGMT_BDF_LEN])
{
    out[0] = '\0';
    size_t len = in ? strlen(in) : 0;
    if (len != 12 && len != 7)
        return false;
    const char *p = in;
    long dom = 0;
    if (len == 12) {
        dom = hex_field(&p, 4);
        if (dom < 0 || *p++ != ':')
            return false;
    }
    long bus = hex_field(&p, 2);
    if (bus < 0 || *p++ != ':')
        return false;
    long dev = hex_field(&p, 2);
    if (dev < 0 || dev >= 32 || *p++ != '.')
        return false;
    long fn = hex_field(&p, 1);
    if (fn < 0 || fn >= 8 || *p)
        return false;
    snprintf(out, MGMT_BDF_LEN, "%04hx:%02hhx:%02hhx.%c", (unsigned short)dom, (unsigned char)bus, (unsigned char)dev,
             (char)('0' + fn));
    return true;
}
