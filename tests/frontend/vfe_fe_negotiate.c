/* Session set-up in QEMU 7.2's order for vhost-user-net (vhost_user_backend_init,
 * then vhost_dev_init, then the memory and features of vhost_dev_start). */
#include "tests/frontend/vfe_frontend_priv.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include "lib/log/vfe_log.h"

/* What QEMU 7.2 asks for as a vhost-user-net front-end (no CONFIG: the
 * net device has no config notifier; no postcopy, inflight or in-band). */
static uint64_t wanted_protocol(void)
{
    static const unsigned bits[] = {
        VFE_FE_PF_MQ, VFE_FE_PF_LOG_SHMFD, VFE_FE_PF_RARP, VFE_FE_PF_REPLY_ACK, VFE_FE_PF_NET_MTU,
        VFE_FE_PF_BACKEND_REQ, VFE_FE_PF_CROSS_ENDIAN, VFE_FE_PF_BACKEND_SEND_FD, VFE_FE_PF_HOST_NOTIFIER,
        VFE_FE_PF_RESET_DEVICE, VFE_FE_PF_CONFIGURE_MEM_SLOTS, VFE_FE_PF_STATUS,
    };
    uint64_t m = 0;
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
        m |= 1ull << bits[i];
    return m;
}

static int backend_channel(struct vfe_fe *fe)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    fe_backend_close(fe);
    fe->backend = sv[0];
    /* QEMU waits for the ack here: the back-end must hold the channel
     * before anything that could make it use it */
    int rc = fe_request(fe, VFE_FE_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1, true);
    close(sv[1]);
    return rc;
}

int fe_add_status(struct vfe_fe *fe, uint64_t bits)
{
    if (!(fe->proto & (1ull << VFE_FE_PF_STATUS)))
        return 0;
    uint64_t s = 0;
    int rc = fe_get_u64(fe, VFE_FE_GET_STATUS, &s);
    if (rc < 0)
        return rc;
    if ((s & bits) == bits)
        return 0;
    rc = fe_set_u64(fe, VFE_FE_SET_STATUS, s | bits, true);
    if (rc == 0)
        fe->status = s | bits;
    return rc;
}

int fe_set_features(struct vfe_fe *fe, uint64_t features)
{
    bool log = features & (1ull << VFE_FE_F_LOG_ALL);
    /* with logging on QEMU must know the back-end logs before it goes on */
    int rc = fe_set_u64(fe, VFE_FE_SET_FEATURES, features, log);
    if (rc == 0)
        fe->features = features;
    if (rc == 0)
        rc = fe_add_status(fe, VIRTIO_CONFIG_S_FEATURES_OK);
    return rc;
}

int fe_negotiate(struct vfe_fe *fe)
{
    fe->proto = 0;
    fe->queue_num = fe->max_mem_slots = 0;
    fe->status = 0;
    int rc = fe_get_u64(fe, VFE_FE_GET_FEATURES, &fe->offered);
    if (rc < 0)
        return rc;
    bool has_proto = fe->offered & (1ull << VFE_FE_F_PROTOCOL_FEATURES);
    if (has_proto) {
        if ((rc = fe_get_u64(fe, VFE_FE_GET_PROTOCOL_FEATURES, &fe->proto_offered)) < 0)
            return rc;
        uint64_t p = fe->proto_offered & wanted_protocol() & ~fe->o.proto_clear;
        if ((rc = fe_set_u64(fe, VFE_FE_SET_PROTOCOL_FEATURES, p, false)) < 0)
            return rc;
        fe->proto = p;
        if (p & (1ull << VFE_FE_PF_MQ)) {
            uint64_t q = 0;
            if ((rc = fe_get_u64(fe, VFE_FE_GET_QUEUE_NUM, &q)) < 0)
                return rc;
            fe->queue_num = q > 0xffff ? 0xffff : (unsigned)q;
        }
        if (fe->o.pairs > 1 && (!(p & (1ull << VFE_FE_PF_MQ)) || fe->queue_num < fe->o.pairs)) {
            LOG_W("vfe-frontend: %u queue pairs wanted, the back-end has %u", fe->o.pairs, fe->queue_num);
            return -ERANGE;
        }
        if (p & (1ull << VFE_FE_PF_CONFIGURE_MEM_SLOTS)) {
            uint64_t slots = 0;
            if ((rc = fe_get_u64(fe, VFE_FE_GET_MAX_MEM_SLOTS, &slots)) < 0)
                return rc;
            fe->max_mem_slots = slots > 4096 ? 4096 : (unsigned)slots;
        }
        if ((p & (1ull << VFE_FE_PF_BACKEND_REQ)) && (rc = backend_channel(fe)) < 0)
            return rc;
    } else if (fe->o.pairs > 1) {
        return -ERANGE;
    }
    if ((rc = fe_request(fe, VFE_FE_SET_OWNER, NULL, 0, NULL, 0, false)) < 0)
        return rc;
    uint64_t again = 0;
    if ((rc = fe_get_u64(fe, VFE_FE_GET_FEATURES, &again)) < 0)
        return rc;
    if (again != fe->offered) {
        LOG_W("vfe-frontend: features changed from %#llx to %#llx", (unsigned long long)fe->offered,
              (unsigned long long)again);
        return -EPROTO;
    }
    uint64_t f = (fe->o.features & fe->offered) | (fe->offered & (1ull << VFE_FE_F_PROTOCOL_FEATURES));
    if (fe->logging)
        f |= fe->offered & (1ull << VFE_FE_F_LOG_ALL);
    if ((rc = fe_set_features(fe, f)) < 0)
        return rc;
    if ((rc = fe_send_memory(fe)) < 0)
        return rc;
    if (fe->logging)
        rc = fe_log_resize(fe);
    return rc;
}
