/* Transport selection: a function directory with vfio-user.sock speaks vfio-user, any other kernel VFIO. */
#include "drivers/bus/vfio/vfe_transport.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "drivers/bus/vfio/transport_blob.h"
#include "lib/log/vfe_log.h"

bool vfe_bdf_valid(const char *bdf)
{
    unsigned d, b, dev, fn;
    char tail;
    if (!bdf || strlen(bdf) != 12 || strchr(bdf, '/'))
        return false;
    if (sscanf(bdf, "%4x:%2x:%2x.%1x%c", &d, &b, &dev, &fn, &tail) != 4)
        return false;
    return dev < 32 && fn < 8;
}

int vfe_transport_open_in(const char *pci_root, const char *bdf, const char *dma_domain, struct vfe_transport **out)
{
    if (!pci_root || !out || !vfe_bdf_valid(bdf))
        return -EINVAL;
    char dir[4096], sock[4200];
    int n = snprintf(dir, sizeof(dir), "%s/%s", pci_root, bdf);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return -ENAMETOOLONG;
    struct stat st;
    if (stat(dir, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    snprintf(sock, sizeof(sock), "%s/vfio-user.sock", dir);
    if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
        return vfe_vfio_user_open(sock, bdf, out);
    LOG_I("%s: no vfio-user.sock: kernel VFIO", bdf);
    return vfe_vfio_kernel_open(pci_root, bdf, dma_domain, out);
}

int vfe_transport_export(struct vfe_transport *t, void *buf, size_t cap, size_t *len, int *fds, unsigned max_fds,
                         unsigned *nfds)
{
    if (!t || !buf || !len || !fds || !nfds)
        return -EINVAL;
    if (!t->ops->export_state)
        return -EOPNOTSUPP;
    return t->ops->export_state(t, buf, cap, len, fds, max_fds, nfds);
}

int vfe_transport_adopt(const char *pci_root, const char *bdf, const void *blob, size_t len, const int *fds,
                        unsigned nfds, struct vfe_transport **out)
{
    if (!pci_root || !blob || !out || (nfds && !fds) || !vfe_bdf_valid(bdf))
        return -EINVAL;
    struct vfe_transport_blob_hdr h;
    if (len < sizeof(h)) {
        LOG_E("%s: adopt: transport blob of %zu bytes, shorter than its header", bdf, len);
        return -EPROTO;
    }
    memcpy(&h, blob, sizeof(h));
    if (h.magic != VFE_TRANSPORT_BLOB_MAGIC) {
        LOG_E("%s: adopt: not a transport blob (magic %#x)", bdf, h.magic);
        return -EPROTO;
    }
    if (h.version != VFE_TRANSPORT_BLOB_VERSION) {
        LOG_E("%s: adopt: transport blob version %u, this build reads %u", bdf, h.version,
              VFE_TRANSPORT_BLOB_VERSION);
        return -EPROTO;
    }
    if (h.len != len) {
        LOG_E("%s: adopt: transport blob says %u bytes, %zu given", bdf, h.len, len);
        return -EPROTO;
    }
    if (h.nfds != nfds) {
        LOG_E("%s: adopt: transport blob goes with %u fds, %u given", bdf, h.nfds, nfds);
        return -EINVAL;
    }
    if (h.kind != VFE_TRANSPORT_KIND_VFIO_USER) {
        LOG_E("%s: adopt: unknown transport kind %u", bdf, h.kind);
        return -EPROTO;
    }
    char sock[4200];
    int n = snprintf(sock, sizeof(sock), "%s/%s/vfio-user.sock", pci_root, bdf);
    if (n < 0 || (size_t)n >= sizeof(sock))
        return -ENAMETOOLONG;
    struct stat st;
    if (stat(sock, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        LOG_E("%s: adopt: %s is not a vfio-user function", bdf, sock);
        return -EINVAL;
    }
    return vfe_vfio_user_adopt(bdf, blob, len, fds, nfds, out);
}
