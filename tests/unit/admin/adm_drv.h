/* The admin unit tests' side of the PF: a fixture with one PF and NVF VFs,
 * and a minimal admin-queue driver over anonymous memory mapped as the PF's
 * DMA space. */
#ifndef TEST_ADMIN_ADM_DRV_H
#define TEST_ADMIN_ADM_DRV_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/common/virtio_mi/vfe_admin_wire.h"
#include "fake_core.h"

#define NVF        3
#define VF_QUEUES  5          /* 2 pairs + ctrl */
#define AQ_INDEX   2
#define AQ_SIZE    256
#define PF_IOVA    0x10000000ull
#define PF_MEM     (8u << 20)
#define PF_RO_IOVA 0x20000000ull   /* a read-only PF map */
#define PF_RO_MEM  (64u << 10)

extern struct sim S;
extern struct sim_pf PF;
extern struct sim_fn *VF[NVF + 1];   /* 1-based: VF[n] has vf_num n */

int adm_setup(void **state);
int adm_teardown(void **state);

uint8_t *pf_mem(uint64_t iova);
uint64_t pf_alloc(size_t len);

/* Post one chain (readable cmd, writable res_len bytes filled with 0xee)
 * without notifying; returns its head. */
uint16_t adm_post(const void *cmd, size_t len, size_t res_len, uint64_t *res_iova);
void adm_notify(void);
uint16_t adm_used_idx(void);
void adm_used(unsigned i, uint32_t *id, uint32_t *len);

/* Post, notify, expect exactly one completion of that chain; returns its used
 * length and points *res at the writable area. */
uint32_t adm_exec(const void *cmd, size_t len, size_t res_len, uint8_t **res);

/* nvidia: res_room result bytes + the status byte.  Returns the number of
 * result bytes (used length - 1), or -1 for an empty completion. */
long nv_exec(uint8_t cls, uint8_t cmd, const void *data, size_t dlen, size_t res_room,
             uint8_t *status, uint8_t **res);
/* virtio: returns result bytes after the 8-byte header, -1 if empty. */
long std_exec(uint16_t op, uint16_t group, uint64_t member, const void *data, size_t dlen,
              size_t res_room, uint16_t *st, uint16_t *sq, uint8_t **res);

/* Give VF n a recognisable running configuration derived from seed. */
void vf_configure(unsigned n, unsigned seed);

#endif
