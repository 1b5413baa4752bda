/*
 * vfe-dpu-sim internal model, shared by its modules:
 *   core/   process, sysfs tree, PCI config space, BAR registers, MSI-X, DMA maps,
 *           control socket and fault injection
 *   vfu/    vfio-user server (one socket per function)
 *   net/    virtio-net data path: device-side split rings, L2 switch, uplink
 *   admin/  PF admin virtqueue: nvidia and virtio command dialects, state
 *           save/restore, dirty-page tracking
 * Single-threaded on one libev loop.
 */
#ifndef SIM_H
#define SIM_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h>

#define SIM_MAX_PFS        16
#define SIM_MAX_VFS        1024
/* SR-IOV routing: VF n's routing id is the PF's + SIM_VF_OFFSET + (n-1) * SIM_VF_STRIDE
 * (bus = rid >> 8, device = (rid >> 3) & 31, function = rid & 7), as First VF
 * Offset and VF Stride in the PF's SR-IOV capability say. */
#define SIM_VF_OFFSET      1
#define SIM_VF_STRIDE      1
#define SIM_VF_RID(pf_rid, n) ((pf_rid) + SIM_VF_OFFSET + ((n) - 1) * SIM_VF_STRIDE)
#define SIM_MAX_QPAIRS     16
#define SIM_MAX_DATA_QUEUES (2 * SIM_MAX_QPAIRS)
/* VF queues: 0..2*pairs-1 data (rx even, tx odd), then ctrl; PF: 2 data, then admin. */
#define SIM_MAX_QUEUES     (SIM_MAX_DATA_QUEUES + 2)
#define SIM_QUEUE_MAX_SIZE 1024
#define SIM_MSIX_VECTORS   (SIM_MAX_QUEUES + 1)
#define SIM_MAX_DMA_MAPS   64
#define SIM_PAGE_SIZE      4096u
#define SIM_MAX_FRAME      (9216 + 64)

/* BAR0 layout (sizes are page multiples so each window could be mmapped). */
#define SIM_BAR0_COMMON    0x0000  /* 64 bytes common cfg   */
#define SIM_BAR0_ISR       0x1000  /* 1 byte ISR            */
#define SIM_BAR0_DEVICE    0x2000  /* virtio_net_config     */
#define SIM_BAR0_COUNTERS  0x2800  /* 6 le64 counters (vfe vendor capability) */
#define SIM_BAR0_NOTIFY    0x3000  /* one 4 KiB page per queue (page-per-vq) */
#define SIM_NOTIFY_MULT    4096u
#define SIM_BAR0_SIZE      (SIM_BAR0_NOTIFY + SIM_MAX_QUEUES * SIM_NOTIFY_MULT)
/* BAR1 holds the MSI-X table (16 bytes per vector) and PBA. */
#define SIM_BAR1_MSIX_TABLE 0x0000
#define SIM_BAR1_MSIX_PBA   0x0800
#define SIM_BAR1_SIZE       0x1000

enum sim_mig_state {     /* numbers are the nvidia dialect's */
    SIM_MIG_INIT = 0,
    SIM_MIG_RUNNING = 1,
    SIM_MIG_QUIESCED = 2,  /* no new descriptors are fetched */
    SIM_MIG_FREEZED = 3,   /* no DMA at all, no interrupts */
};

struct sim;
struct sim_fn;

struct sim_dma_map {
    uint64_t iova, size;
    uint8_t *va;          /* mmap of the client's fd, PROT per flags */
    size_t map_len;
    uint32_t prot;        /* VFE_DMA_READ/WRITE bits (1, 2) */
};

struct sim_queue {
    uint16_t index;
    uint16_t size;          /* driver-set (default SIM_QUEUE_MAX_SIZE) */
    uint16_t msix_vector;
    bool enabled;
    uint64_t desc, avail, used; /* IOVAs */
    uint16_t last_avail;    /* next avail entry the device consumes */
    uint16_t used_idx;      /* the device's used->idx */
    bool broken;            /* bad descriptor seen: NEEDS_RESET */
    bool reset_pending;     /* RING_RESET done, reads 1 until re-enabled */
    int kick_fd;            /* ioeventfd from the vfe vendor command, -1 if none */
    bool db_armed;          /* its mapped doorbell holds the idle pattern */
    ev_io kick_watch;
    struct sim_fn *fn;
};

/* Dirty-page tracking of one VF (admin class 65 or a pull extension). */
#define SIM_DIRTY_MAX_SGES 32
struct sim_dirty {
    int mode;               /* 0 off, 1 push bitmap, 3 pull bitmap (nvidia numbering) */
    uint32_t page_size;
    uint64_t range_addr, range_len;
    struct { uint64_t iova, len; } sges[SIM_DIRTY_MAX_SGES]; /* push: bitmap in the PF's DMA space */
    unsigned nsges;
    uint8_t *pull_bitmap;   /* pull: internal bitmap, 1 bit per page of the range */
    size_t pull_bytes;
};

struct sim_counters {
    uint64_t rx_packets, rx_bytes, rx_drops;
    uint64_t tx_packets, tx_bytes, tx_drops;
    uint64_t dirty_pages_marked;
    uint64_t mapped_doorbell_kicks;   /* seen in a mapped doorbell page, not trapped */
    uint64_t resets;                  /* resets of the function while in use (status or migration state set) */
    uint64_t client_disconnects;      /* vfio-user clients gone (each one resets the function) */
};

struct sim_fn {
    struct sim *sim;
    struct sim_fn *pf;        /* self for a PF */
    bool is_pf;
    unsigned vf_num;          /* 1..NumVFs for a VF, 0 for the PF */
    char bdf[16];             /* "0000:3b:00.2" */
    char dir[512];            /* its directory in the sysfs tree */
    char sock_path[600];      /* dir/vfio-user.sock */

    /* PCI config space (4 KiB, extended) and which bits the driver may write. */
    uint8_t cfg[4096];
    uint8_t cfg_wmask[4096];

    /* virtio common configuration state */
    uint64_t device_features, driver_features;
    uint32_t dfselect, gfselect;
    uint16_t msix_config;
    uint8_t status;
    uint8_t config_generation;
    uint8_t isr;
    uint16_t queue_select;
    uint16_t num_queues;          /* data (+ctrl) queues, admin excluded */
    uint16_t admin_queue_index;   /* PF only */
    struct sim_queue queues[SIM_MAX_QUEUES];
    struct virtio_net_config net_cfg;
    uint16_t active_pairs;        /* from the ctrl queue MQ command, default 1 */
    uint8_t rx_mode;              /* bit0 promisc, bit1 allmulti */

    /* MSI-X */
    uint8_t msix_table[SIM_MSIX_VECTORS * 16];
    int irq_fds[SIM_MSIX_VECTORS];
    bool msix_enabled;
    uint16_t msix_count;          /* VF: vectors from the PF's pool (core/msix_pool.c); PF: SIM_MSIX_VECTORS */
    int msix_wd;                  /* VF: inotify watch of its directory, -1 if none */

    /* DMA */
    struct sim_dma_map dma[SIM_MAX_DMA_MAPS];
    unsigned ndma;

    /* migration and faults */
    enum sim_mig_state mig_state;
    bool stopped;                 /* virtio dialect DEV_MODE STOPPED */
    bool dma_stalled;             /* fault injection: processing paused */
    bool vfu_stalled;             /* fault injection: its vfio-user socket is not read */
    uint16_t vfu_stall_at;        /* fault injection: stall when this vfio-user command arrives (0: none) */
    bool removed;                 /* surprise-removed */
    struct sim_dirty dirty;
    struct sim_counters ctr;

    /* BAR0 behind a memfd whose doorbell pages the client may map (core/doorbell_map.c) */
    int db_fd;
    uint8_t *db_map;

    /* vfio-user connection (vfu/) */
    void *vfu;                    /* opaque server state */

    /* per-module private state */
    void *net_priv;
    void *admin_priv;
};

struct sim_pf {
    struct sim_fn fn;
    unsigned total_vfs, num_vfs;
    struct sim_fn *vfs[SIM_MAX_VFS]; /* index vf_num-1 */
    ev_timer numvfs_poll;         /* reads DIR/<pf>/sriov_numvfs */
    unsigned msix_total;          /* sriov_vf_total_msix: the pool its VFs draw from */
};

struct sim_options {
    const char *root;
    struct { char bdf[16]; unsigned vfs; const char *admin_dialect; } pfs[SIM_MAX_PFS]; /* dialect NULL: the global one */
    unsigned npfs;
    unsigned total_vfs;          /* --total-vfs, default 256 */
    unsigned max_qpairs;         /* --qpairs, default 4 */
    const char *uplink;          /* "udp:LOCALPORT,HOST:PORT" or NULL */
    const char *ctl_path;        /* default ROOT/sim-ctl.sock */
    const char *admin_dialect;   /* "both" (default), "nvidia", "virtio"; --admin-dialect after a --pf is that PF's */
    unsigned dirty_refused;      /* --dirty-tracking: bit (1 << SIM_NV_TRACK_*) per mode NOT offered; 0 = all */
    const char *mac_prefix;      /* first 4 bytes of VF MACs, default 02:fe:00:00 */
    uint16_t mtu;                /* default 1500 */
    unsigned fdb_aging;          /* --fdb-aging: seconds a learned MAC stays unseen; 0 = 300 */
    unsigned msix_pool;          /* --msix-pool: sriov_vf_total_msix of each PF; 0 = total_vfs * (2 * qpairs + 2) */
};

struct sim {
    struct ev_loop *loop;
    struct sim_options opt;
    /* What this process owns of the file system, so that sim_stop() removes
     * exactly that: the lock beside --root (one sim per root), whether it
     * created the root directory, whether it wrote ROOT/ready. */
    int root_lock_fd;            /* -1 until sim_start() holds ROOT.lock */
    bool root_created;
    bool ready_written;
    struct sim_pf *pfs[SIM_MAX_PFS];
    unsigned npfs;
    void *sw;                    /* net/l2_switch state */
    void *ctl;                   /* core/ctl state */
    void *msix;                  /* core/msix_pool state (inotify on the VF directories) */
    ev_timer doorbell_poll;      /* reads mapped doorbells while any is handed out */
    unsigned doorbell_maps;
    /* fault injection, read by admin/ */
    struct {
        unsigned admin_delay_ms;
        unsigned admin_slow_ms;     /* each command takes effect (and completes) this late */
        int admin_fail_status;   /* 0 = off, otherwise status returned to every admin command */
        unsigned admin_fail_count; /* how many commands fail, 0 = until cleared */
    } fault;
};

/* ---- core/ ---- */
/* Function lookup by BDF across all PFs and VFs; NULL if none. */
struct sim_fn *sim_find_fn(struct sim *s, const char *bdf);
struct sim_fn *sim_pf_vf(struct sim_fn *pf, unsigned vf_num);
/* Config space and BAR accesses from the vfio-user server.  0 or -errno. */
int sim_cfg_access(struct sim_fn *fn, uint64_t off, void *buf, size_t len, bool write);
int sim_bar_access(struct sim_fn *fn, unsigned bar, uint64_t off, void *buf, size_t len, bool write);
uint64_t sim_bar_size(struct sim_fn *fn, unsigned bar);   /* 0: BAR not present */
/* Device reset (status 0 write, vfio-user DEVICE_RESET, client gone). */
void sim_fn_reset(struct sim_fn *fn);
/* DMA map table; checks overlap and that [offset, offset+size) lies in the fd. */
int sim_dma_map(struct sim_fn *fn, uint64_t iova, uint64_t size, int fd, uint64_t offset, uint32_t prot);
int sim_dma_unmap(struct sim_fn *fn, uint64_t iova, uint64_t size);
void sim_dma_unmap_all(struct sim_fn *fn);
/* Host pointer for [iova, iova+len) if it lies inside one map with `prot`; else NULL. */
void *sim_dma_ptr(struct sim_fn *fn, uint64_t iova, uint64_t len, uint32_t prot);
/* Every device write to guest memory goes through here: refused when frozen,
 * records dirty pages (push or pull) of this function.  0 or -errno. */
int sim_dma_write(struct sim_fn *fn, uint64_t iova, const void *buf, size_t len);
int sim_dma_read(struct sim_fn *fn, uint64_t iova, void *buf, size_t len);
/* Mark [iova, iova+len) dirty without writing (used after in-place writes). */
void sim_dirty_mark(struct sim_fn *fn, uint64_t iova, uint64_t len);
/* MSI-X: attach eventfds (fd -1 detaches); raise a vector (no-op when frozen). */
int sim_irq_set(struct sim_fn *fn, uint32_t start, uint32_t count, const int *fds);
void sim_irq_raise(struct sim_fn *fn, uint16_t vector);
void sim_queue_interrupt(struct sim_queue *q);  /* vector of q, sets ISR bit */
/* Kick registration (vfe vendor ioeventfd): region/offset must be a queue doorbell. */
int sim_ioeventfd(struct sim_fn *fn, uint32_t region, uint64_t off, uint32_t size, uint64_t data, int fd);
/* The fd behind a VF's BAR0 whose doorbell pages a client may map; the sim
 * polls them (a DPU sees such writes in hardware).  -errno on failure. */
int sim_doorbell_map_fd(struct sim_fn *fn);
void sim_doorbell_map_fini(struct sim_fn *fn);
/* Device-side notify of queue qidx (doorbell write or ioeventfd). */
void sim_queue_notify(struct sim_fn *fn, uint16_t qidx);
/* True when the function may touch guest memory now. */
bool sim_fn_dma_allowed(const struct sim_fn *fn);
/* Set NEEDS_RESET and raise the config interrupt. */
void sim_fn_needs_reset(struct sim_fn *fn, const char *why);
/* A client connects to a VF: apply a pending write of its sriov_vf_msix_count;
 * -ENOSPC when the VF has too few vectors for one queue pair (core/msix_pool.c). */
int sim_msix_sync(struct sim_fn *vf);
/* VF lifecycle (sriov_numvfs, surprise removal). */
int sim_pf_set_num_vfs(struct sim_pf *pf, unsigned n);

/* ---- vfu/ ---- */
int sim_vfu_listen(struct sim_fn *fn);     /* create fn->sock_path and serve it */
void sim_vfu_close(struct sim_fn *fn);     /* stop serving, drop the client */
/* Fault vfu_stall: stop (resume) reading the client's requests; they queue
 * in the socket, nothing is answered until resumed. */
void sim_vfu_stall(struct sim_fn *fn, bool on);
/* Fault vfu_stall at a command: the next request of that command (a
 * VFU_CMD_*) is held unanswered and the socket is not read from then on;
 * resuming answers the held request first. */
void sim_vfu_stall_at(struct sim_fn *fn, uint16_t cmd);

/* ---- net/ ---- */
int sim_net_init(struct sim *s);           /* switch and optional uplink */
void sim_net_fini(struct sim *s);
void sim_net_fn_init(struct sim_fn *fn);        /* net defaults; the scratch state comes with first use */
void sim_net_fn_fini(struct sim_fn *fn);
void sim_net_queue_notify(struct sim_fn *fn, uint16_t qidx);  /* data or ctrl queue kicked */
void sim_net_reset(struct sim_fn *fn);     /* device reset: forget ring state */
void sim_net_resume(struct sim_fn *fn);    /* RUNNING again / DMA unstalled: process pending */
/* Send a broadcast RARP from vf's port with source mac (admin ANNOUNCE):
 * -EBUSY when vf does not run, -EINVAL for a multicast or zero mac. */
int sim_net_announce(struct sim_fn *vf, const uint8_t mac[6]);

/* ---- admin/ ---- */
void sim_admin_fn_init(struct sim_fn *pf);
void sim_admin_fn_fini(struct sim_fn *pf);
void sim_admin_queue_notify(struct sim_fn *pf);
void sim_admin_reset(struct sim_fn *pf);

#endif
