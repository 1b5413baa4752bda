/*
 * Normalized device state of one virtio-net VF, the same for both admin
 * dialects: what save_state returns and restore_state sends.  The wire forms
 * (nvidia TLV blob, virtio device parts) are encoded and decoded by
 * vfe_state_tlv.c and vfe_state_parts.c.
 */
#ifndef VFE_DEV_STATE_H
#define VFE_DEV_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFE_DEV_STATE_MAX_VQS     64
#define VFE_DEV_STATE_NET_CFG_MAX 64   /* virtio_net_config is 24 bytes in Linux 6.1 */

struct vfe_dev_vq_state {
    bool has_cfg;            /* size .. used below are valid */
    bool has_split;          /* last_avail / last_used are valid */
    bool enabled;
    uint16_t size, msix_vector;
    uint64_t desc, avail, used;
    uint16_t last_avail, last_used;
};

struct vfe_dev_state {
    bool has_common;
    uint64_t device_features, driver_features;
    uint16_t msix_config;
    uint16_t num_queues;
    uint8_t status;
    bool has_rx_mode;
    uint8_t rx_mode;
    bool has_pairs;
    uint16_t pairs;          /* active queue pairs (VQ_PAIRS_SET), >= 1 */
    uint16_t net_cfg_len;    /* 0: no device config record */
    uint8_t net_cfg[VFE_DEV_STATE_NET_CFG_MAX];
    uint16_t nvqs;           /* 1 + highest queue index with a record, 0 if none */
    struct vfe_dev_vq_state vq[VFE_DEV_STATE_MAX_VQS];
};

void vfe_dev_state_init(struct vfe_dev_state *s);

/* Store one wire record into s.  Each checks the value length exactly and
 * bounds the queue index; -EINVAL on any mismatch. */
int vfe_dev_state_put_common(struct vfe_dev_state *s, const uint8_t *val, uint32_t len);
int vfe_dev_state_put_vq_cfg(struct vfe_dev_state *s, const uint8_t *val, uint32_t len);
int vfe_dev_state_put_vq_split(struct vfe_dev_state *s, const uint8_t *val, uint32_t len);
int vfe_dev_state_put_net_cfg(struct vfe_dev_state *s, const uint8_t *val, uint32_t len);
int vfe_dev_state_put_rx_mode(struct vfe_dev_state *s, const uint8_t *val, uint32_t len);
int vfe_dev_state_put_pairs(struct vfe_dev_state *s, const uint8_t *val, uint32_t len);

/* Whole-state check after decoding (or before encoding): common record
 * present, every queue record below num_queues, nvqs consistent. */
int vfe_dev_state_check(const struct vfe_dev_state *s);

/* Wire images of the shared records (little-endian, packed). */
void vfe_dev_state_common_wire(const struct vfe_dev_state *s, uint8_t out[24]);
void vfe_dev_state_vq_cfg_wire(const struct vfe_dev_state *s, uint16_t qi, uint8_t out[32]);
void vfe_dev_state_vq_split_wire(const struct vfe_dev_state *s, uint16_t qi, uint8_t out[8]);

/* Field-by-field equality (ignores bytes past net_cfg_len and absent queues). */
bool vfe_dev_state_equal(const struct vfe_dev_state *a, const struct vfe_dev_state *b);

#endif
