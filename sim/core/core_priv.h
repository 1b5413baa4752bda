/* Internals shared by the files of sim/core. */
#ifndef SIM_CORE_PRIV_H
#define SIM_CORE_PRIV_H

#include <stdio.h>

#include "sim/sim.h"

#define SIM_VENDOR_ID      0x1af4
#define SIM_DEVICE_ID_NET  0x1041
#define SIM_SRIOV_CAP_OFF  0x100
#define SIM_MSIX_CAP_OFF   0x98
#define SIM_PCI_CFG_CAP_OFF 0x84
#define SIM_COUNTERS_CAP_OFF 0xa4

/* pci_cfg.c */
void sim_pci_cfg_build(struct sim_fn *fn);
void sim_pci_cfg_set_num_vfs(struct sim_fn *pf, unsigned n);

/* bar_regs.c */
void sim_bar_common_read(struct sim_fn *fn, uint8_t img[64]);
int sim_bar_common_write(struct sim_fn *fn, uint64_t off, const void *buf, size_t len);

/* fn.c */
struct sim_fn *sim_fn_create(struct sim *s, struct sim_fn *pf, unsigned vf_num, const char *bdf);
void sim_fn_destroy(struct sim_fn *fn);
int sim_bdf_parse(const char *bdf, unsigned *dom, unsigned *rid);
void sim_bdf_format(char *out, size_t len, unsigned dom, unsigned rid);
uint64_t sim_fn_device_features(const struct sim_fn *fn);
int sim_fn_remove(struct sim_fn *fn);

/* tree.c */
int sim_tree_write_fn(struct sim_fn *fn);
int sim_tree_write_uint(const char *dir, const char *name, unsigned v);   /* atomic (rename) */
void sim_tree_remove_fn(struct sim_fn *fn);
int sim_tree_write_pf_links(struct sim_pf *pf);
int sim_tree_watch_pf(struct sim_pf *pf);
void sim_tree_unwatch_pf(struct sim_pf *pf);
int sim_tree_mark_ready(struct sim *s);
void sim_tree_remove_root(struct sim *s);

/* msix_pool.c: the PF's MSI-X pool and each VF's share of it */
#include <jansson.h>
#define SIM_VF_MAX_MSIX (2 * SIM_MAX_QPAIRS + 2)
unsigned sim_msix_pairs(unsigned vectors);          /* queue pairs a VF with that many vectors offers */
unsigned sim_msix_free(const struct sim_pf *pf);
bool sim_msix_vf_in_use(const struct sim_fn *vf);   /* a vfio-user client, or status set */
int sim_msix_pf_start(struct sim_pf *pf);           /* pool size, DIR/<pf>/sriov_vf_total_msix */
void sim_msix_vf_added(struct sim_fn *vf);          /* default share, its file and its watch */
void sim_msix_vf_removed(struct sim_fn *vf);        /* its vectors go back (they are no longer counted) */
/* 0, or -EINVAL/-ERANGE/-EBUSY/-ENOSPC with the reason in why. */
int sim_msix_set(struct sim_fn *vf, unsigned vectors, char *why, size_t len);
int sim_msix_reclaim(struct sim_pf *pf, char *why, size_t len);   /* -EBUSY while a VF has a driver */
void sim_msix_pf_reset(struct sim_pf *pf);
json_t *sim_msix_ctl(struct sim *s, json_t *req, char *why, size_t len);   /* NULL: refused, why says */
void sim_msix_fini(struct sim *s);

/* irq.c */
void sim_irq_fn_fini(struct sim_fn *fn);

/* dma.c */
void sim_dirty_stop(struct sim_fn *fn);

/* ctl.c */
int sim_ctl_open(struct sim *s);
void sim_ctl_close(struct sim *s);

/* options.c */
int sim_parse_options(struct sim_options *o, int argc, char **argv);
void sim_usage(FILE *f);

#endif
