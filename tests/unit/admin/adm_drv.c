#include "adm_drv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <cmocka.h>

struct sim S;
struct sim_pf PF;
struct sim_fn *VF[NVF + 1];

static uint8_t *pf_va, *pf_ro_va;
static uint64_t pf_next;
static uint16_t avail_shadow, desc_next;

#define AQ_DESC  (PF_IOVA)
#define AQ_AVAIL (PF_IOVA + 0x4000)
#define AQ_USED  (PF_IOVA + 0x5000)
#define BUF_BASE 0x10000u

uint8_t *pf_mem(uint64_t iova)
{
    assert_true(iova >= PF_IOVA && iova < PF_IOVA + PF_MEM);
    return pf_va + (iova - PF_IOVA);
}

uint64_t pf_alloc(size_t len)
{
    if (pf_next + len > PF_MEM)
        pf_next = BUF_BASE;   /* tests finish with a buffer before reusing it */
    uint64_t iova = PF_IOVA + pf_next;
    pf_next += (len + 63) & ~(size_t)63;
    return iova;
}

static const uint64_t VF_FEATURES = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC) |
                                    (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_MQ) |
                                    (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_NET_F_STATUS);

void vf_configure(unsigned n, unsigned seed)
{
    struct sim_fn *fn = VF[n];
    fn->driver_features = VF_FEATURES & ~(1ull << VIRTIO_RING_F_EVENT_IDX);
    fn->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                 VIRTIO_CONFIG_S_DRIVER_OK;
    fn->msix_config = 0;
    fn->mig_state = SIM_MIG_RUNNING;
    fn->rx_mode = 1;
    fn->active_pairs = 2;
    fn->net_cfg.mac[5] = (uint8_t)(0x40 + seed);
    fn->net_cfg.status = 1;
    for (unsigned q = 0; q < VF_QUEUES; q++) {
        struct sim_queue *sq = &fn->queues[q];
        sq->size = (uint16_t)(64u << (q % 3));
        sq->msix_vector = (uint16_t)(q + 1);
        sq->enabled = q != 3;
        sq->desc = 0x80000000ull + 0x100000ull * seed + 0x10000ull * q;
        sq->avail = sq->desc + 0x4000;
        sq->used = sq->desc + 0x8000;
        sq->last_avail = (uint16_t)(1000 * seed + 17 * q + 1);
        sq->used_idx = (uint16_t)(1000 * seed + 13 * q);
    }
}

static void vf_init(unsigned n)
{
    struct sim_fn *fn = calloc(1, sizeof(*fn));
    assert_non_null(fn);
    fn->sim = &S;
    fn->pf = &PF.fn;
    fn->vf_num = n;
    snprintf(fn->bdf, sizeof(fn->bdf), "0000:3b:00.%u", n);
    fn->device_features = VF_FEATURES;
    fn->num_queues = VF_QUEUES;
    fn->net_cfg.max_virtqueue_pairs = 2;
    fn->net_cfg.mtu = 1500;
    fn->net_cfg.mac[0] = 0x02;
    fn->net_cfg.mac[1] = 0xfe;
    fn->net_cfg.mac[5] = (uint8_t)n;
    fn->msix_config = 0xffff;
    fn->active_pairs = 1;
    for (unsigned q = 0; q < SIM_MAX_QUEUES; q++) {
        fn->queues[q].index = (uint16_t)q;
        fn->queues[q].fn = fn;
        fn->queues[q].size = SIM_QUEUE_MAX_SIZE;
        fn->queues[q].msix_vector = 0xffff;
        fn->queues[q].kick_fd = -1;
    }
    PF.vfs[n - 1] = fn;
    VF[n] = fn;
}

int adm_setup(void **state)
{
    memset(&S, 0, sizeof(S));
    memset(&PF, 0, sizeof(PF));
    memset(&fake, 0, sizeof(fake));
    S.loop = ev_loop_new(EVFLAG_AUTO);
    S.npfs = 1;
    S.pfs[0] = &PF;
    pf_va = mmap(NULL, PF_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pf_ro_va = mmap(NULL, PF_RO_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(pf_va != MAP_FAILED && pf_ro_va != MAP_FAILED);
    pf_next = BUF_BASE;
    avail_shadow = desc_next = 0;

    struct sim_fn *pf = &PF.fn;
    pf->sim = &S;
    pf->pf = pf;
    pf->is_pf = true;
    snprintf(pf->bdf, sizeof(pf->bdf), "0000:3b:00.0");
    pf->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                 VIRTIO_CONFIG_S_DRIVER_OK;
    pf->driver_features = 1ull << VIRTIO_F_VERSION_1;
    pf->num_queues = 2;
    pf->admin_queue_index = AQ_INDEX;
    pf->dma[0] = (struct sim_dma_map){ .iova = PF_IOVA, .size = PF_MEM, .va = pf_va, .map_len = PF_MEM, .prot = 3 };
    pf->dma[1] = (struct sim_dma_map){ .iova = PF_RO_IOVA, .size = PF_RO_MEM, .va = pf_ro_va,
                                       .map_len = PF_RO_MEM, .prot = 1 };
    pf->ndma = 2;
    struct sim_queue *q = &pf->queues[AQ_INDEX];
    q->index = AQ_INDEX;
    q->fn = pf;
    q->size = AQ_SIZE;
    q->enabled = true;
    q->kick_fd = -1;
    q->desc = AQ_DESC;
    q->avail = AQ_AVAIL;
    q->used = AQ_USED;
    PF.total_vfs = PF.num_vfs = NVF;
    for (unsigned n = 1; n <= NVF; n++)
        vf_init(n);
    sim_admin_fn_init(pf);
    assert_non_null(pf->admin_priv);
    return 0;
}

int adm_teardown(void **state)
{
    sim_admin_fn_fini(&PF.fn);
    assert_null(PF.fn.admin_priv);
    for (unsigned n = 1; n <= NVF; n++) {
        free(VF[n]->dirty.pull_bitmap);
        free(VF[n]);
        VF[n] = NULL;
    }
    munmap(pf_va, PF_MEM);
    munmap(pf_ro_va, PF_RO_MEM);
    ev_loop_destroy(S.loop);
    return 0;
}

static void set_desc(uint16_t idx, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
    memcpy(pf_mem(AQ_DESC + 16ull * idx), &d, sizeof(d));
}

uint16_t adm_post(const void *cmd, size_t len, size_t res_len, uint64_t *res_iova)
{
    uint16_t d0 = desc_next++ % AQ_SIZE, d1 = desc_next++ % AQ_SIZE;
    uint64_t c = pf_alloc(len ? len : 1);
    if (len)                         /* cmd may be NULL for an empty command */
        memcpy(pf_mem(c), cmd, len);
    if (res_len) {
        uint64_t r = pf_alloc(res_len);
        memset(pf_mem(r), 0xee, res_len);
        set_desc(d0, c, (uint32_t)len, VRING_DESC_F_NEXT, d1);
        set_desc(d1, r, (uint32_t)res_len, VRING_DESC_F_WRITE, 0);
        if (res_iova)
            *res_iova = r;
    } else {
        set_desc(d0, c, (uint32_t)len, 0, 0);
        if (res_iova)
            *res_iova = 0;
    }
    uint16_t *ring = (uint16_t *)pf_mem(AQ_AVAIL + 4);
    ring[avail_shadow % AQ_SIZE] = d0;
    avail_shadow++;
    __atomic_store_n((uint16_t *)pf_mem(AQ_AVAIL + 2), avail_shadow, __ATOMIC_RELEASE);
    return d0;
}

void adm_notify(void)
{
    sim_admin_queue_notify(&PF.fn);
}

uint16_t adm_used_idx(void)
{
    return __atomic_load_n((uint16_t *)pf_mem(AQ_USED + 2), __ATOMIC_ACQUIRE);
}

void adm_used(unsigned i, uint32_t *id, uint32_t *len)
{
    uint32_t *e = (uint32_t *)pf_mem(AQ_USED + 4 + 8ull * (i % AQ_SIZE));
    *id = e[0];
    *len = e[1];
}

uint32_t adm_exec(const void *cmd, size_t len, size_t res_len, uint8_t **res)
{
    uint64_t r;
    uint16_t before = adm_used_idx();
    uint16_t head = adm_post(cmd, len, res_len, &r);
    adm_notify();
    assert_int_equal(adm_used_idx(), (uint16_t)(before + 1));
    uint32_t id, ulen;
    adm_used(before, &id, &ulen);
    assert_int_equal(id, head);
    if (res)
        *res = res_len ? pf_mem(r) : NULL;
    return ulen;
}

long nv_exec(uint8_t cls, uint8_t cmd, const void *data, size_t dlen, size_t res_room,
             uint8_t *status, uint8_t **res)
{
    uint8_t buf[VFE_ADM_MAX_CMD + 64];
    uint8_t *r;
    assert_true(dlen + 2 <= sizeof(buf));
    buf[0] = cls;
    buf[1] = cmd;
    if (dlen)
        memcpy(buf + 2, data, dlen);
    uint32_t used = adm_exec(buf, dlen + 2, res_room + 1, &r);
    if (used == 0)
        return -1;
    assert_true(used <= res_room + 1);
    *status = r[res_room];
    if (res)
        *res = r;
    return (long)used - 1;
}

long std_exec(uint16_t op, uint16_t group, uint64_t member, const void *data, size_t dlen,
              size_t res_room, uint16_t *st, uint16_t *sq, uint8_t **res)
{
    uint8_t buf[VFE_ADM_MAX_CMD + 64];
    struct vfe_adm_std_cmd h = { .opcode = op, .group_type = group, .group_member_id = member };
    uint8_t *r;
    assert_true(sizeof(h) + dlen <= sizeof(buf));
    memcpy(buf, &h, sizeof(h));
    if (dlen)
        memcpy(buf + sizeof(h), data, dlen);
    uint32_t used = adm_exec(buf, sizeof(h) + dlen, sizeof(struct vfe_adm_std_res) + res_room, &r);
    if (used == 0)
        return -1;
    assert_true(used >= sizeof(struct vfe_adm_std_res));
    assert_true(used <= sizeof(struct vfe_adm_std_res) + res_room);
    struct vfe_adm_std_res rh;
    memcpy(&rh, r, sizeof(rh));
    *st = rh.status;
    *sq = rh.status_qualifier;
    if (res)
        *res = r + sizeof(rh);
    return (long)used - (long)sizeof(rh);
}
