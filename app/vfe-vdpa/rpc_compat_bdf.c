/* PCI addresses as the peer's tools write them (short, upper case) to vfe's canonical form. */
#include "app/vfe-vdpa/rpc_compat.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* n hex digits at s (and nothing shorter); the value, or -1. */
static long hex_field(const char *s, size_t n)
{
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return -1;
        v = v * 16 + (isdigit((unsigned char)s[i]) ? s[i] - '0' : tolower((unsigned char)s[i]) - 'a' + 10);
    }
    return v;
}

int vhostd_bdf_normalise(const char *in, char out[VHOSTD_BDF_LEN])
{
    if (!in)
        return -EINVAL;
    size_t len = strlen(in);
    long dom = 0;
    if (len == 12) {          /* DDDD:BB:DD.F */
        if (in[4] != ':' || (dom = hex_field(in, 4)) < 0)
            return -EINVAL;
        in += 5;
        len -= 5;
    }
    if (len != 7 || in[2] != ':' || in[5] != '.')   /* BB:DD.F */
        return -EINVAL;
    long bus = hex_field(in, 2), dev = hex_field(in + 3, 2), fn = hex_field(in + 6, 1);
    if (bus < 0 || dev < 0 || dev > 0x1f || fn < 0 || fn > 7)
        return -EINVAL;
    snprintf(out, VHOSTD_BDF_LEN, "%04x:%02x:%02x.%x", (unsigned)dom & 0xffff, (unsigned)bus & 0xff,
             (unsigned)dev & 0x1f, (unsigned)fn & 7);
    return 0;
}
