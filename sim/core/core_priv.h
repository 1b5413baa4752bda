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
void sim_tree_remove_fn(struct sim_fn *fn);
int sim_tree_write_pf_links(struct sim_pf *pf);
int sim_tree_watch_pf(struct sim_pf *pf);
void sim_tree_unwatch_pf(struct sim_pf *pf);
int sim_tree_mark_ready(struct sim *s);
void sim_tree_remove_root(struct sim *s);

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
