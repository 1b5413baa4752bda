/* The common head of every transport snapshot blob (vfe_transport_export/adopt).
 * Host byte order: a blob never leaves the host.  Private to drivers/bus/vfio. */
#ifndef VFE_TRANSPORT_BLOB_H
#define VFE_TRANSPORT_BLOB_H

#include <stdint.h>

struct vfe_transport_blob_hdr {
    uint32_t magic;     /* VFE_TRANSPORT_BLOB_MAGIC */
    uint16_t version;   /* VFE_TRANSPORT_BLOB_VERSION; a newer one is refused */
    uint16_t kind;      /* VFE_TRANSPORT_KIND_* */
    uint32_t len;       /* bytes of the whole blob */
    uint32_t nfds;      /* fds that go with it */
};

#endif
