/* The VF announces its guest's MAC after a migration (SEND_RARP). */
#include "drivers/vdpa/virtio/vdpa_vf_priv.h"

#include <errno.h>

int vdpa_vf_announce(struct vdpa_vf *v, const uint8_t mac[6], vdpa_done_cb cb, void *ctx)
{
    if (!v || !cb)
        return -EINVAL;
    if (v->direct)
        return -EOPNOTSUPP;   /* no admin queue to ask the device to send it */
    if (v->state != VDPA_VF_RUNNING)
        return -EBUSY;   /* the device sends frames only while it runs */
    return vfe_mig_announce(v->pf.mig, v->vf_num, mac, cb, ctx);
}
