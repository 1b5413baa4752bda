/* Fake admin ring for unit tests. */
#include "tests/unit/admin_drv/fake_ring.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "drivers/common/virtio_mi/vfe_mi_le.h"

static int fr_add(void *priv, const struct vfe_sg *sg, unsigned out, unsigned in, void *cookie)
{
    struct fake_ring *r = priv;
    assert_int_equal(out, 1);
    assert_int_equal(in, 1);
    if (r->nchains >= FAKE_MAX_CHAINS)
        return -ENOSPC;
    struct fake_chain *c = &r->chain[r->nchains++];
    c->cookie = cookie;
    c->cmd = vfe_admin_dma_ptr(r->aq, sg[0].iova, sg[0].len);
    c->cmd_len = sg[0].len;
    c->res = vfe_admin_dma_ptr(r->aq, sg[1].iova, sg[1].len);
    c->res_len = sg[1].len;
    assert_non_null(c->cmd);
    assert_non_null(c->res);
    return 0;
}

static void fr_kick(void *priv)
{
    struct fake_ring *r = priv;
    r->kicks++;
    while (r->handler && r->handled < r->nchains) {
        struct fake_chain *c = &r->chain[r->handled++];
        int len = r->handler(r, c);
        if (len >= 0)
            fake_ring_complete(r, (unsigned)(c - r->chain), (uint32_t)len);
    }
}

static void *fr_get_used(void *priv, uint32_t *len)
{
    struct fake_ring *r = priv;
    if (r->used_head == r->used_tail)
        return NULL;
    unsigned i = r->used_head++ % FAKE_MAX_CHAINS;
    *len = r->used[i].len;
    return r->used[i].cookie;
}

static void fr_fini(void *priv)
{
    struct fake_ring *r = priv;
    r->fini_called = true;
}

static const struct vfe_admin_ring_ops fake_ops = {
    .add = fr_add, .kick = fr_kick, .get_used = fr_get_used, .fini = fr_fini,
};

int fake_ring_open(struct fake_ring *r, struct ev_loop *loop, unsigned nslots)
{
    memset(r, 0, sizeof(*r));
    r->irq_fd = -1;
    struct vfe_admin_cfg cfg = {
        .loop = loop, .iova = 0xfe00000000ull, .ring_bytes = 8192, .nslots = nslots,
        .ops = &fake_ops, .ops_priv = r,
    };
    return vfe_admin_create(&cfg, &r->aq);
}

void fake_ring_push_raw(struct fake_ring *r, void *cookie, uint32_t len)
{
    unsigned i = r->used_tail++ % FAKE_MAX_CHAINS;
    r->used[i].cookie = cookie;
    r->used[i].len = len;
    if (r->irq_fd >= 0) {
        uint64_t one = 1;
        assert_int_equal(write(r->irq_fd, &one, sizeof(one)), sizeof(one));
    }
}

void fake_ring_complete(struct fake_ring *r, unsigned n, uint32_t len)
{
    assert_true(n < r->nchains);
    fake_ring_push_raw(r, r->chain[n].cookie, len);
}

uint32_t fake_nv_answer(struct fake_chain *c, const void *res, uint32_t n, uint8_t status)
{
    assert_true(c->res_len >= 1 && n <= c->res_len - 1);
    if (n)
        memcpy(c->res, res, n);
    c->res[c->res_len - 1] = status;
    return n + 1;
}

uint32_t fake_std_answer(struct fake_chain *c, const void *res, uint32_t n, uint16_t status, uint16_t qual)
{
    assert_true(c->res_len >= 8 && n <= c->res_len - 8);
    memset(c->res, 0, 8);
    vfe_put_le16(c->res, status);
    vfe_put_le16(c->res + 2, qual);
    if (n)
        memcpy(c->res + 8, res, n);
    return n + 8;
}
