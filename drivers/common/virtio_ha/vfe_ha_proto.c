/* HA wire protocol: rules table, decode/encode, one packet on a SOCK_SEQPACKET socket. */
#include "drivers/common/virtio_ha/vfe_ha_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/sock/vfe_fd_pass.h"

/* What each message type may carry. */
struct rule {
    bool known;
    uint8_t key_min, key_max;      /* bytes */
    uint32_t body_min, body_max;   /* bytes after the key */
    uint8_t fds_max;
    uint32_t flags;                /* allowed flag bits */
};

#define ANY_BODY VFE_HA_MAX_PAYLOAD

static const struct rule rules[VFE_HA_TYPE_MAX] = {
    [VFE_HA_HELLO] = {true, 0, 0, 0, 64, 0, 0},
    [VFE_HA_PUT] = {true, 1, VFE_HA_KEY_MAX, 0, ANY_BODY, VFE_HA_MAX_FDS, VFE_HA_F_MORE | VFE_HA_F_SEND},
    [VFE_HA_DEL] = {true, 1, VFE_HA_KEY_MAX, 0, 0, 0, 0},
    [VFE_HA_GET] = {true, 0, VFE_HA_KEY_MAX, 0, 0, 0, 0},
    [VFE_HA_STATUS] = {true, 0, 0, 0, 0, 0, 0},
    [VFE_HA_ACK] = {true, 0, 0, 0, 64, 0, 0},
    [VFE_HA_ERR] = {true, 0, 0, sizeof(struct vfe_ha_err_body), sizeof(struct vfe_ha_err_body) + VFE_HA_ERRMSG_MAX,
                    0, 0},
    [VFE_HA_RECORD] = {true, 1, VFE_HA_KEY_MAX, 0, ANY_BODY, VFE_HA_MAX_FDS, VFE_HA_F_MORE},
};

static const char *const names[VFE_HA_TYPE_MAX] = {
    [VFE_HA_HELLO] = "HELLO", [VFE_HA_PUT] = "PUT", [VFE_HA_DEL] = "DEL", [VFE_HA_GET] = "GET",
    [VFE_HA_STATUS] = "STATUS", [VFE_HA_ACK] = "ACK", [VFE_HA_ERR] = "ERR", [VFE_HA_RECORD] = "RECORD",
};

const char *vfe_ha_type_name(unsigned type)
{
    return type < VFE_HA_TYPE_MAX && names[type] ? names[type] : "unknown";
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == ':' || c == '/' || c == '@' || c == '-';
}

bool vfe_ha_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > VFE_HA_KEY_MAX || key[0] == '/' || key[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!key_char(key[i]))
            return false;
        if (i > 0 && ((key[i] == '.' && key[i - 1] == '.') || (key[i] == '/' && key[i - 1] == '/')))
            return false;
    }
    return true;
}

/* F_SEND: cut bytes and tail off the end of the body (*body_len shrinks). */
static int send_tail_take(const struct vfe_ha_hdr *h, const uint8_t *body, uint32_t *body_len,
                          struct vfe_ha_msg *out, const char **why)
{
    if (h->flags & VFE_HA_F_MORE) {
        *why = "SEND on a packet that is not the last of its record";
        return -EPROTO;
    }
    struct vfe_ha_send_tail t;
    if (*body_len < sizeof(t)) {
        *why = "SEND without room for its tail";
        return -EPROTO;
    }
    memcpy(&t, body + *body_len - sizeof(t), sizeof(t));
    if (t.len > VFE_HA_SEND_MAX) {
        *why = "SEND of more bytes than the protocol allows";
        return -EPROTO;
    }
    if (t.len > *body_len - sizeof(t)) {
        *why = "SEND bytes beyond the body";
        return -EPROTO;
    }
    *body_len -= (uint32_t)sizeof(t) + t.len;
    out->send_bytes = body + *body_len;
    out->send_len = t.len;
    out->send_fd = t.fd_index;
    return 0;
}

int vfe_ha_decode(const void *buf, size_t len, unsigned nfds, struct vfe_ha_msg *out, const char **why)
{
    static const char *ignored;
    if (!why)
        why = &ignored;
    if (len < VFE_HA_HDR_SIZE) {
        *why = "packet shorter than the header";
        return -EBADMSG;
    }
    if (len > VFE_HA_MAX_PACKET) {
        *why = "packet longer than the protocol allows";
        return -EBADMSG;
    }
    struct vfe_ha_hdr h;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != VFE_HA_MAGIC) {
        *why = "bad magic";
        return -EBADMSG;
    }
    if (h.major != VFE_HA_MAJOR) {
        *why = h.major > VFE_HA_MAJOR ? "peer speaks a newer major protocol version"
                                      : "peer speaks an older major protocol version";
        return -EPROTONOSUPPORT;
    }
    if (h.payload_len != len - VFE_HA_HDR_SIZE) {
        *why = "payload length disagrees with the packet size";
        return -EBADMSG;
    }
    if (h.nfds != nfds) {
        *why = "fd count disagrees with the fds received";
        return -EBADMSG;
    }
    if (nfds > VFE_HA_MAX_FDS) {
        *why = "too many fds";
        return -E2BIG;
    }
    if (h.key_len > h.payload_len) {
        *why = "key longer than the payload";
        return -EBADMSG;
    }
    const struct rule *r = h.type < VFE_HA_TYPE_MAX ? &rules[h.type] : NULL;
    if (!r || !r->known) {
        *why = "unknown message type";
        return -EPROTO;
    }
    uint32_t body_len = h.payload_len - h.key_len;
    if (h.key_len < r->key_min || h.key_len > r->key_max) {
        *why = h.key_len ? "key not allowed or too long for this message" : "key missing";
        return -EPROTO;
    }
    if (body_len < r->body_min || body_len > r->body_max) {
        *why = "body size out of bounds for this message";
        return -EPROTO;
    }
    if (nfds > r->fds_max) {
        *why = "fds not allowed with this message";
        return -EPROTO;
    }
    if (h.flags & ~r->flags) {
        *why = "unknown flags for this message";
        return -EPROTO;
    }
    const char *p = (const char *)buf + VFE_HA_HDR_SIZE;
    if (h.key_len && !vfe_ha_key_valid(p, h.key_len)) {
        *why = "bad key syntax";
        return -EPROTO;
    }
    out->send_bytes = NULL;
    out->send_len = out->send_fd = 0;
    if (h.flags & VFE_HA_F_SEND) {
        int rc = send_tail_take(&h, (const uint8_t *)p + h.key_len, &body_len, out, why);
        if (rc < 0)
            return rc;
    }
    out->hdr = h;
    out->key = p;
    out->body = (const uint8_t *)p + h.key_len;
    out->body_len = body_len;
    *why = NULL;
    return 0;
}

int vfe_ha_encode_send(void *buf, size_t cap, uint32_t seq, const char *key, size_t key_len, const void *blob,
                       size_t blob_len, unsigned nfds, uint32_t fd_index, const void *bytes, uint32_t nbytes)
{
    if (nbytes > VFE_HA_SEND_MAX || (nbytes && !bytes) || (blob_len && !blob))
        return -EINVAL;
    size_t extra = VFE_HA_SEND_OVERHEAD(nbytes);
    if (blob_len > VFE_HA_MAX_PAYLOAD || VFE_HA_HDR_SIZE + key_len + blob_len + extra > cap)
        return -EMSGSIZE;
    int n = vfe_ha_encode(buf, cap - extra, VFE_HA_PUT, VFE_HA_F_SEND, seq, key, key_len, blob, blob_len, nfds);
    if (n < 0)
        return n;
    if ((size_t)n + extra > VFE_HA_MAX_PACKET)
        return -EMSGSIZE;
    uint8_t *p = (uint8_t *)buf + n;
    struct vfe_ha_send_tail t = {fd_index, nbytes};
    if (nbytes)
        memcpy(p, bytes, nbytes);
    memcpy(p + nbytes, &t, sizeof(t));
    struct vfe_ha_hdr h;
    memcpy(&h, buf, sizeof(h));
    h.payload_len += (uint32_t)extra;
    memcpy(buf, &h, sizeof(h));
    return n + (int)extra;
}

int vfe_ha_encode(void *buf, size_t cap, uint16_t type, uint32_t flags, uint32_t seq, const char *key,
                  size_t key_len, const void *body, size_t body_len, unsigned nfds)
{
    if (key_len > VFE_HA_KEY_MAX || nfds > VFE_HA_MAX_FDS)
        return -EINVAL;
    size_t total = VFE_HA_HDR_SIZE + key_len + body_len;
    if (total > VFE_HA_MAX_PACKET || total > cap)
        return -EMSGSIZE;
    struct vfe_ha_hdr h = {.magic = VFE_HA_MAGIC, .major = VFE_HA_MAJOR, .minor = VFE_HA_MINOR, .type = type,
                           .flags = flags, .seq = seq, .key_len = (uint16_t)key_len, .nfds = (uint16_t)nfds,
                           .payload_len = (uint32_t)(key_len + body_len)};
    uint8_t *p = buf;
    memcpy(p, &h, sizeof(h));
    if (key_len)
        memcpy(p + sizeof(h), key, key_len);
    if (body_len)
        memcpy(p + sizeof(h) + key_len, body, body_len);
    return (int)total;
}

size_t vfe_ha_err_vformat(uint8_t body[VFE_HA_ERR_BODY_MAX], int err, const char *fmt, va_list ap)
{
    struct vfe_ha_err_body e = {err};
    memcpy(body, &e, sizeof(e));
    int n = vsnprintf((char *)body + sizeof(e), VFE_HA_ERRMSG_MAX + 1, fmt, ap);
    n = n < 0 ? 0 : n > (int)VFE_HA_ERRMSG_MAX ? (int)VFE_HA_ERRMSG_MAX : n;
    return sizeof(e) + (size_t)n;
}

int vfe_ha_send_packet(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    if (nfds > VFE_HA_MAX_FDS)
        return -EINVAL;
    struct iovec iov = {(void *)buf, len};
    VFE_FDS_CTL(cm, VFE_HA_MAX_FDS);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    vfe_fds_attach(&mh, cm.buf, sizeof(cm.buf), fds, nfds);
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return (size_t)n == len ? 0 : -EIO;   /* a seqpacket send is all or nothing */
}

int vfe_ha_recv_packet(int sock, void *buf, size_t cap, int *fds, unsigned *nfds)
{
    struct iovec iov = {buf, cap};
    VFE_FDS_CTL(cm, VFE_HA_MAX_FDS);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    *nfds = 0;
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    *nfds = vfe_fds_take(&mh, fds, VFE_HA_MAX_FDS, NULL);
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (unsigned i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        return -EMSGSIZE;
    }
    return (int)n;
}

void vfe_ha_split_next(struct vfe_ha_split *sp, size_t key_len, uint32_t blob_len, unsigned nfds)
{
    uint32_t room = (uint32_t)(VFE_HA_MAX_PAYLOAD - key_len);
    uint32_t left = blob_len - sp->off;
    unsigned fds_left = nfds - sp->fd_off;
    sp->chunk = left < room ? left : room;
    sp->chunk_fds = fds_left < VFE_HA_MAX_FDS ? fds_left : VFE_HA_MAX_FDS;
    sp->more = sp->off + sp->chunk < blob_len || sp->fd_off + sp->chunk_fds < nfds;
}
