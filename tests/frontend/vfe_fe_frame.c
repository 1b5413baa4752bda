/* Test frames that carry their own seed, so a receiver can check every
 * byte without knowing which frame it got. */
#include "tests/frontend/vfe_frontend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SEED_OFF 14u
#define BODY_OFF 18u

static uint8_t pattern_byte(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return (uint8_t)*x;
}

static uint32_t pattern_start(uint32_t seed)
{
    return seed * 2654435761u + 1;   /* never 0: xorshift would stay at 0 */
}

void vfe_fe_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6], uint32_t seed)
{
    uint8_t hdr[BODY_OFF] = {0};
    memcpy(hdr, dst, 6);
    memcpy(hdr + 6, src, 6);
    hdr[12] = 0x88;
    hdr[13] = 0xb5;
    hdr[SEED_OFF] = (uint8_t)(seed >> 24);
    hdr[SEED_OFF + 1] = (uint8_t)(seed >> 16);
    hdr[SEED_OFF + 2] = (uint8_t)(seed >> 8);
    hdr[SEED_OFF + 3] = (uint8_t)seed;
    memcpy(f, hdr, len < BODY_OFF ? len : BODY_OFF);
    uint32_t x = pattern_start(seed);
    for (size_t i = BODY_OFF; i < len; i++)
        f[i] = pattern_byte(&x);
}

int64_t vfe_fe_frame_seed(const uint8_t *f, size_t len)
{
    if (len < BODY_OFF || f[12] != 0x88 || f[13] != 0xb5)
        return -1;
    uint32_t seed = (uint32_t)f[SEED_OFF] << 24 | (uint32_t)f[SEED_OFF + 1] << 16 |
                    (uint32_t)f[SEED_OFF + 2] << 8 | f[SEED_OFF + 3];
    uint32_t x = pattern_start(seed);
    for (size_t i = BODY_OFF; i < len; i++)
        if (f[i] != pattern_byte(&x))
            return -1;
    return seed;
}

long vfe_fe_frame_diff(const void *a, size_t alen, const void *b, size_t blen)
{
    const uint8_t *pa = a, *pb = b;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        if (pa[i] != pb[i])
            return (long)i;
    return alen == blen ? -1 : (long)n;
}

int vfe_fe_parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    char tail;
    if (!s || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)v[i];
    return 0;
}

unsigned vfe_fe_flow(struct vfe_fe *from, struct vfe_fe *to, const uint8_t from_mac[6], const uint8_t to_mac[6],
                     unsigned n, uint32_t seed, uint32_t size_offset)
{
    uint8_t out[1500], in[1600];
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = 60 + (i * 97 + size_offset) % 1400;
        vfe_fe_frame(out, len, to_mac, from_mac, seed + i);
        int src = vfe_fe_send(from, 0, out, len), rrc = src ? 0 : vfe_fe_recv(to, 0, in, sizeof(in), 3000);
        if (!src && rrc == (int)len && !memcmp(in, out, len)) {
            ok++;
            continue;
        }
        fprintf(stderr, "frame %u of %zu bytes: send %d, receive %d%s\n", i, len, src, rrc,
                rrc == (int)len ? " (other bytes)" : "");
        break;
    }
    return ok;
}
