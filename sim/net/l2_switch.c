/* L2 switch: MAC learning table (bounded, oldest replaced, entries age out)
 * and forwarding. */
#include "sim/net/l2_switch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log/vfe_log.h"
#include "sim/net/net_dev.h"
#include "sim/net/sw_priv.h"
#include "sim/net/uplink.h"

#define SW_BUCKETS 1024   /* power of two */
#define SW_NONE    0xffff

struct sw_entry {
    uint8_t mac[6];
    bool used;
    uint16_t next;             /* bucket chain */
    struct sim_fn *port;       /* NULL = uplink */
    ev_tstamp seen;            /* loop time the MAC was last seen as a source */
};

struct sw_table {
    struct sw_entry e[SW_MAC_TABLE_SIZE];
    uint16_t bucket[SW_BUCKETS];
    unsigned next_slot;        /* FIFO replacement cursor */
};

static unsigned mac_hash(const uint8_t mac[6])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 6; i++) {
        h ^= mac[i];
        h *= 16777619u;
    }
    return (h ^ (h >> 16)) & (SW_BUCKETS - 1);
}

static struct sw_state *sw_of(struct sim *s)
{
    return s->sw;
}

int sim_sw_create(struct sim *s)
{
    struct sw_state *sw = calloc(1, sizeof(*sw));
    if (!sw)
        return -ENOMEM;
    sw->tab = calloc(1, sizeof(*sw->tab));
    if (!sw->tab) {
        free(sw);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < SW_BUCKETS; i++)
        sw->tab->bucket[i] = SW_NONE;
    s->sw = sw;
    return 0;
}

void sim_sw_destroy(struct sim *s)
{
    struct sw_state *sw = sw_of(s);
    if (!sw)
        return;
    free(sw->tab);
    free(sw);
    s->sw = NULL;
}

static ev_tstamp now_of(struct sim *s)
{
    return s->loop ? ev_now(s->loop) : 0.;
}

static double aging_of(const struct sim *s)
{
    return s->opt.fdb_aging ? (double)s->opt.fdb_aging : (double)SW_AGING_DEFAULT;
}

static struct sw_entry *find(struct sw_table *t, const uint8_t mac[6])
{
    for (uint16_t i = t->bucket[mac_hash(mac)]; i != SW_NONE; i = t->e[i].next)
        if (memcmp(t->e[i].mac, mac, 6) == 0)
            return &t->e[i];
    return NULL;
}

static void unlink_slot(struct sw_table *t, uint16_t slot)
{
    uint16_t *pp = &t->bucket[mac_hash(t->e[slot].mac)];
    while (*pp != SW_NONE) {
        if (*pp == slot) {
            *pp = t->e[slot].next;
            break;
        }
        pp = &t->e[*pp].next;
    }
    t->e[slot].used = false;
}

static void learn(struct sw_state *sw, const uint8_t mac[6], struct sim_fn *port, ev_tstamp now)
{
    struct sw_table *t = sw->tab;
    struct sw_entry *x = find(t, mac);
    if (x) {
        if (x->port != port)
            sw->stats.learned++;   /* a MAC that moved (migration) follows at once */
        x->port = port;
        x->seen = now;
        return;
    }
    uint16_t slot = (uint16_t)(t->next_slot++ % SW_MAC_TABLE_SIZE);
    if (t->e[slot].used)
        unlink_slot(t, slot);
    x = &t->e[slot];
    memcpy(x->mac, mac, 6);
    x->port = port;
    x->seen = now;
    x->used = true;
    unsigned b = mac_hash(mac);
    x->next = t->bucket[b];
    t->bucket[b] = slot;
    sw->stats.learned++;
}

int sim_sw_lookup(struct sim *s, const uint8_t mac[6], struct sim_fn **port)
{
    struct sw_state *sw = sw_of(s);
    struct sw_entry *x = sw ? find(sw->tab, mac) : NULL;
    if (!x)
        return 0;
    if (now_of(s) - x->seen > aging_of(s)) {
        unlink_slot(sw->tab, (uint16_t)(x - sw->tab->e));
        sw->stats.aged++;
        return 0;
    }
    *port = x->port;
    return 1;
}

unsigned sim_sw_entries(struct sim *s)
{
    struct sw_state *sw = sw_of(s);
    unsigned n = 0;
    for (unsigned i = 0; sw && i < SW_MAC_TABLE_SIZE; i++)
        n += sw->tab->e[i].used;
    return n;
}

void sim_sw_forget_port(struct sim *s, struct sim_fn *fn)
{
    struct sw_state *sw = sw_of(s);
    if (!sw)
        return;
    for (uint16_t i = 0; i < SW_MAC_TABLE_SIZE; i++)
        if (sw->tab->e[i].used && sw->tab->e[i].port == fn)
            unlink_slot(sw->tab, i);
}

const struct sw_stats *sim_sw_get_stats(struct sim *s)
{
    struct sw_state *sw = sw_of(s);
    return sw ? &sw->stats : NULL;
}

/* Calls cb for every function of the sim (PFs and their VFs). */
#define FOR_EACH_FN(s, f, body)                                          \
    for (unsigned _p = 0; _p < (s)->npfs && _p < SIM_MAX_PFS; _p++) {    \
        struct sim_pf *_pf = (s)->pfs[_p];                               \
        if (!_pf)                                                        \
            continue;                                                    \
        struct sim_fn *f = &_pf->fn;                                     \
        body;                                                            \
        for (unsigned _v = 0; _v < _pf->num_vfs && _v < SIM_MAX_VFS; _v++) { \
            f = _pf->vfs[_v];                                            \
            if (f) {                                                     \
                body;                                                    \
            }                                                            \
        }                                                                \
    }

static struct sim_fn *owner_of_mac(struct sim *s, const uint8_t mac[6])
{
    static const uint8_t zero[6];
    if (memcmp(mac, zero, 6) == 0)
        return NULL;
    FOR_EACH_FN(s, f, if (memcmp(f->net_cfg.mac, mac, 6) == 0) return f);
    return NULL;
}

static void send_to(struct sim *s, struct sim_fn *port, const uint8_t *frame, size_t len,
                    unsigned pair)
{
    if (port)
        sim_net_deliver(port, frame, len, pair);
    else
        sim_uplink_send(s, frame, len);
}

void sim_sw_input(struct sim *s, struct sim_fn *src, const uint8_t *frame, size_t len, unsigned pair)
{
    struct sw_state *sw = sw_of(s);
    if (!sw)
        return;
    sw->stats.frames_in++;
    if (len < ETH_HDR_LEN || len > SIM_MAX_FRAME) {
        sw->stats.runts++;
        return;
    }
    const uint8_t *dst = frame, *smac = frame + 6;
    if (!src)
        pair = sim_net_l2_hash(frame, len);   /* uplink frames: spread by addresses */
    if (!(smac[0] & 1))
        learn(sw, smac, src, now_of(s));

    if (!(dst[0] & 1)) {
        struct sim_fn *port;
        bool known = sim_sw_lookup(s, dst, &port);
        if (!known) {
            port = owner_of_mac(s, dst);
            known = port != NULL;
        }
        if (known) {
            if (port == src) {
                sw->stats.filtered++;
                return;
            }
            sw->stats.unicast++;
            send_to(s, port, frame, len, pair);
            return;
        }
    }
    sw->stats.flooded++;
    FOR_EACH_FN(s, f, if (f != src) sim_net_deliver(f, frame, len, pair));
    if (src && sim_uplink_present(s))
        sim_uplink_send(s, frame, len);
}

void sim_sw_rarp_frame(uint8_t out[SW_RARP_FRAME_LEN], const uint8_t mac[6])
{
    memset(out, 0, SW_RARP_FRAME_LEN);
    memset(out, 0xff, 6);                       /* broadcast */
    memcpy(out + 6, mac, 6);
    out[12] = SW_ETH_P_RARP >> 8;
    out[13] = SW_ETH_P_RARP & 0xff;
    uint8_t *a = out + ETH_HDR_LEN;             /* RFC 903: ARP layout, opcode 3 */
    a[1] = 1;                                   /* hardware: Ethernet */
    a[2] = 0x08;                                /* protocol: IPv4 */
    a[4] = 6;
    a[5] = 4;
    a[7] = 3;                                   /* request reverse */
    memcpy(a + 8, mac, 6);                      /* sender hardware address */
    memcpy(a + 18, mac, 6);                     /* target hardware address; IPs stay 0 */
}

int sim_sw_announce(struct sim *s, struct sim_fn *vf, const uint8_t mac[6])
{
    static const uint8_t zero[6];
    struct sw_state *sw = sw_of(s);
    if (!sw || !vf || (mac[0] & 1) || !memcmp(mac, zero, 6))
        return -EINVAL;
    uint8_t f[SW_RARP_FRAME_LEN];
    sim_sw_rarp_frame(f, mac);
    sw->stats.announces++;
    sim_sw_input(s, vf, f, sizeof(f), 0);
    return 0;
}
