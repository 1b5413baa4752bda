/* Guest memory: memfd regions mapped here (their mmap address is the
 * "QEMU virtual address" the back-end sees), given to the back-end as a whole
 * table or slot by slot, and translated both ways. */
#include "tests/frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int fe_region_new(struct fe_region *r, uint64_t gpa, uint64_t size)
{
    memset(r, 0, sizeof(*r));
    r->fd = memfd_create("vfe-frontend-mem", MFD_CLOEXEC);
    if (r->fd < 0)
        return -errno;
    if (ftruncate(r->fd, (off_t)size) < 0) {
        int e = -errno;
        close(r->fd);
        r->fd = -1;
        return e;
    }
    r->va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (r->va == MAP_FAILED) {
        int e = -errno;
        close(r->fd);
        memset(r, 0, sizeof(*r));
        r->fd = -1;
        return e;
    }
    r->gpa = gpa;
    r->size = size;
    r->in_use = true;
    return 0;
}

void fe_region_free(struct fe_region *r)
{
    if (r->in_use) {
        munmap(r->va, r->size);
        close(r->fd);
    }
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

static struct vfe_fe_region_desc region_desc(const struct fe_region *r)
{
    return (struct vfe_fe_region_desc){r->gpa, r->size, (uint64_t)(uintptr_t)r->va, 0};
}

static bool use_slots(const struct vfe_fe *fe)
{
    return (fe->proto & (1ull << VFE_FE_PF_CONFIGURE_MEM_SLOTS)) && !fe->o.mem_table_only;
}

static int send_table(struct vfe_fe *fe)
{
    struct vfe_fe_mem_table t;
    int fds[VFE_FE_MAX_MEM_TABLE];
    memset(&t, 0, sizeof(t));
    for (unsigned i = 0; i < VFE_FE_MAX_REGIONS; i++) {
        if (!fe->reg[i].in_use)
            continue;
        if (t.nregions == VFE_FE_MAX_MEM_TABLE)
            return -E2BIG;
        fds[t.nregions] = fe->reg[i].fd;
        t.regions[t.nregions++] = region_desc(&fe->reg[i]);
    }
    uint32_t size = (uint32_t)(8 + t.nregions * sizeof(struct vfe_fe_region_desc));
    return fe_request(fe, VFE_FE_SET_MEM_TABLE, &t, size, fds, t.nregions, true);
}

static int send_slot(struct vfe_fe *fe, uint32_t req, const struct fe_region *r)
{
    struct vfe_fe_mem_reg m = {0, region_desc(r)};
    return fe_request(fe, req, &m, sizeof(m), req == VFE_FE_ADD_MEM_REG ? &r->fd : NULL,
                      req == VFE_FE_ADD_MEM_REG ? 1 : 0, true);
}

int fe_send_memory(struct vfe_fe *fe)
{
    if (!use_slots(fe))
        return send_table(fe);
    int rc = 0;
    unsigned n = 0;
    for (unsigned i = 0; i < VFE_FE_MAX_REGIONS && rc == 0; i++) {
        if (!fe->reg[i].in_use)
            continue;
        if (fe->max_mem_slots && ++n > fe->max_mem_slots)
            return -E2BIG;
        rc = send_slot(fe, VFE_FE_ADD_MEM_REG, &fe->reg[i]);
    }
    return rc;
}

uint64_t fe_top_gpa(const struct vfe_fe *fe)
{
    uint64_t top = 0;
    for (unsigned i = 0; i < VFE_FE_MAX_REGIONS; i++)
        if (fe->reg[i].in_use && fe->reg[i].gpa + fe->reg[i].size > top)
            top = fe->reg[i].gpa + fe->reg[i].size;
    return top;
}

int vfe_fe_mem_add(struct vfe_fe *fe, uint64_t gpa, uint64_t size)
{
    size = (size + 4095) & ~4095ull;
    if (!size || (gpa & 4095) || gpa + size < gpa)
        return -EINVAL;
    int slot = -1;
    for (int i = 0; i < VFE_FE_MAX_REGIONS; i++) {
        const struct fe_region *r = &fe->reg[i];
        if (!r->in_use) {
            if (slot < 0)
                slot = i;
        } else if (gpa < r->gpa + r->size && r->gpa < gpa + size) {
            return -EEXIST;
        }
    }
    if (slot < 0)
        return -ENOSPC;
    int rc = fe_region_new(&fe->reg[slot], gpa, size);
    if (rc < 0)
        return rc;
    if (fe->sock >= 0)
        rc = use_slots(fe) ? send_slot(fe, VFE_FE_ADD_MEM_REG, &fe->reg[slot]) : send_table(fe);
    if (rc == 0 && fe->logging)
        rc = fe_log_resize(fe);
    if (rc < 0) {
        fe_region_free(&fe->reg[slot]);
        return rc;
    }
    return slot;
}

int vfe_fe_mem_remove(struct vfe_fe *fe, int slot)
{
    if (slot < 0 || slot >= VFE_FE_MAX_REGIONS || !fe->reg[slot].in_use)
        return -EINVAL;
    if (slot < 2)
        return -EBUSY;   /* rings and buffers live there */
    struct fe_region gone = fe->reg[slot];
    fe->reg[slot].in_use = false;
    int rc = 0;
    if (fe->sock >= 0)
        rc = use_slots(fe) ? send_slot(fe, VFE_FE_REM_MEM_REG, &gone) : send_table(fe);
    fe->reg[slot] = gone;
    if (rc == 0)
        fe_region_free(&fe->reg[slot]);
    return rc;
}

void *vfe_fe_host(struct vfe_fe *fe, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < VFE_FE_MAX_REGIONS; i++) {
        const struct fe_region *r = &fe->reg[i];
        if (r->in_use && gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
            return r->va + (gpa - r->gpa);
    }
    return NULL;
}

uint64_t vfe_fe_gpa_of(const struct vfe_fe *fe, const void *p)
{
    const uint8_t *b = p;
    for (unsigned i = 0; i < VFE_FE_MAX_REGIONS; i++) {
        const struct fe_region *r = &fe->reg[i];
        if (r->in_use && b >= r->va && b < r->va + r->size)
            return r->gpa + (uint64_t)(b - r->va);
    }
    return UINT64_MAX;
}
