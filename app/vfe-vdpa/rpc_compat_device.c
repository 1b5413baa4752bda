/* The peer's view of one VF (vf -i's "device", each entry of vf -l): its fields and types (docs/rpc.md). */
#include "app/vfe-vdpa/rpc_compat.h"

#include <stdio.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "app/vfe-vdpa/vhostd.h"

#define NIL_UUID "00000000-0000-0000-0000-000000000000"

/* device_feature: the hex value and, for every bit set, its name under the
 * bit number right-aligned in 5 characters (the peer's key format). */
static const char *const feature_names[64] = {
    [VIRTIO_NET_F_CSUM] = "VIRTIO_NET_F_CSUM",
    [VIRTIO_NET_F_GUEST_CSUM] = "VIRTIO_NET_F_GUEST_CSUM",
    [VIRTIO_NET_F_CTRL_GUEST_OFFLOADS] = "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS",
    [VIRTIO_NET_F_MTU] = "VIRTIO_NET_F_MTU",
    [VIRTIO_NET_F_MAC] = "VIRTIO_NET_F_MAC",
    [VIRTIO_NET_F_GSO] = "VIRTIO_NET_F_GSO",
    [VIRTIO_NET_F_GUEST_TSO4] = "VIRTIO_NET_F_GUEST_TSO4",
    [VIRTIO_NET_F_GUEST_TSO6] = "VIRTIO_NET_F_GUEST_TSO6",
    [VIRTIO_NET_F_GUEST_ECN] = "VIRTIO_NET_F_GUEST_ECN",
    [VIRTIO_NET_F_GUEST_UFO] = "VIRTIO_NET_F_GUEST_UFO",
    [VIRTIO_NET_F_HOST_TSO4] = "VIRTIO_NET_F_HOST_TSO4",
    [VIRTIO_NET_F_HOST_TSO6] = "VIRTIO_NET_F_HOST_TSO6",
    [VIRTIO_NET_F_HOST_ECN] = "VIRTIO_NET_F_HOST_ECN",
    [VIRTIO_NET_F_HOST_UFO] = "VIRTIO_NET_F_HOST_UFO",
    [VIRTIO_NET_F_MRG_RXBUF] = "VIRTIO_NET_F_MRG_RXBUF",
    [VIRTIO_NET_F_STATUS] = "VIRTIO_NET_F_STATUS",
    [VIRTIO_NET_F_CTRL_VQ] = "VIRTIO_NET_F_CTRL_VQ",
    [VIRTIO_NET_F_CTRL_RX] = "VIRTIO_NET_F_CTRL_RX",
    [VIRTIO_NET_F_CTRL_VLAN] = "VIRTIO_NET_F_CTRL_VLAN",
    [VIRTIO_NET_F_CTRL_RX_EXTRA] = "VIRTIO_NET_F_CTRL_RX_EXTRA",
    [VIRTIO_NET_F_GUEST_ANNOUNCE] = "VIRTIO_NET_F_GUEST_ANNOUNCE",
    [VIRTIO_NET_F_MQ] = "VIRTIO_NET_F_MQ",
    [VIRTIO_NET_F_CTRL_MAC_ADDR] = "VIRTIO_NET_F_CTRL_MAC_ADDR",
    [VIRTIO_F_NOTIFY_ON_EMPTY] = "VIRTIO_F_NOTIFY_ON_EMPTY",
    [VIRTIO_F_ANY_LAYOUT] = "VIRTIO_F_ANY_LAYOUT",
    [28] = "VIRTIO_RING_F_INDIRECT_DESC",
    [29] = "VIRTIO_RING_F_EVENT_IDX",
    [VIRTIO_F_VERSION_1] = "VIRTIO_F_VERSION_1",
    [VIRTIO_F_ACCESS_PLATFORM] = "VIRTIO_F_IOMMU_PLATFORM",   /* the peer's (older) name of bit 33 */
    [VIRTIO_F_RING_PACKED] = "VIRTIO_F_RING_PACKED",
    [VIRTIO_F_IN_ORDER] = "VIRTIO_F_IN_ORDER",
    [VIRTIO_F_ORDER_PLATFORM] = "VIRTIO_F_ORDER_PLATFORM",
    [VIRTIO_F_SR_IOV] = "VIRTIO_F_SR_IOV",
    [VIRTIO_F_RING_RESET] = "VIRTIO_F_RING_RESET",
};

static json_t *features_json(uint64_t f)
{
    json_t *o = json_object();
    json_object_set_new(o, "value", json_sprintf("0x%llx", (unsigned long long)f));
    for (unsigned b = 0; b < 64; b++) {
        if (!(f & (1ull << b)))
            continue;
        char key[8];
        snprintf(key, sizeof(key), "%5u", b);
        json_object_set_new(o, key, json_string(feature_names[b] ? feature_names[b] : "UNKNOWN FEATURE BIT"));
    }
    return o;
}

json_t *compat_vf_device(struct vhostd_vf *vf)
{
    struct vdpa_session_stats st;
    vdpa_session_stats(vf->session, &st);
    struct vdpa_vf_facts f;   /* read once per VF, then kept with it: a listing is linear */
    vdpa_vf_facts(vf->dev, &f);
    uint8_t m[6];
    vdpa_vf_mac(vf->dev, m);
    json_t *o = json_pack("{s:s, s:b}", "vf", vf->rec.bdf, "probed", 1);
    json_object_set_new(o, "msix_num", json_sprintf("%u", f.msix));
    json_object_set_new(o, "queue_num", json_sprintf("%u", (unsigned)vdpa_vf_num_queues(vf->dev)));
    json_object_set_new(o, "queue_size", json_sprintf("%u", f.queue_size));
    json_object_set_new(o, "device_feature", features_json(st.features));   /* negotiated, as the peer's */
    json_object_set_new(o, "mtu", json_sprintf("%u", f.mtu));
    json_object_set_new(o, "mac", json_sprintf("%02X:%02X:%02X:%02X:%02X:%02X", m[0], m[1], m[2], m[3], m[4], m[5]));
    json_object_set_new(o, "vm_uuid", json_string(vf->rec.uuid[0] ? vf->rec.uuid : NIL_UUID));
    json_object_set_new(o, "socket_file", json_string(vf->rec.socket));
    json_object_set_new(o, "configured", json_boolean(st.rings_running > 0));
    return o;
}

/* A persisted VF not brought up yet: what the peer shows of a VF it is still restoring. */
json_t *compat_pending_device(const struct vhostd_state_vf *v)
{
    return json_pack("{s:s, s:b, s:s, s:s}", "vf", v->bdf, "probed", 0, "vm_uuid", v->uuid[0] ? v->uuid : NIL_UUID,
                     "socket_file", v->socket);
}
