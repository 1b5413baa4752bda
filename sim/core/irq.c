/* MSI-X of a function: eventfds attached through vfio-user SET_IRQS. */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include "lib/log/vfe_log.h"
#include "sim/core/core_priv.h"

int sim_irq_set(struct sim_fn *fn, uint32_t start, uint32_t count, const int *fds)
{
    if (start > SIM_MSIX_VECTORS || count > SIM_MSIX_VECTORS - start)
        return -EINVAL;
    /* The server closes its copies after this call: keep our own. */
    int dups[SIM_MSIX_VECTORS];
    for (uint32_t i = 0; i < count; i++) {
        dups[i] = -1;
        if (fds[i] >= 0 && (dups[i] = dup(fds[i])) < 0) {
            int err = -errno;
            while (i--)
                if (dups[i] >= 0)
                    close(dups[i]);
            return err;
        }
    }
    for (uint32_t i = 0; i < count; i++) {
        int *slot = &fn->irq_fds[start + i];
        if (*slot >= 0)
            close(*slot);
        *slot = dups[i];
    }
    return 0;
}

void sim_irq_raise(struct sim_fn *fn, uint16_t vector)
{
    if (vector >= SIM_MSIX_VECTORS || fn->mig_state == SIM_MIG_FREEZED || fn->removed)
        return;
    int fd = fn->irq_fds[vector];
    if (fd < 0)
        return;
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) < 0)
        LOG_D("%s: interrupt vector %u: %m", fn->bdf, vector);
}

void sim_queue_interrupt(struct sim_queue *q)
{
    struct sim_fn *fn = q->fn;
    fn->isr |= 1;
    if (q->msix_vector != 0xffff)
        sim_irq_raise(fn, q->msix_vector);
}

void sim_fn_needs_reset(struct sim_fn *fn, const char *why)
{
    if (!(fn->status & VIRTIO_CONFIG_S_NEEDS_RESET))
        LOG_W("%s: device needs reset: %s", fn->bdf, why);
    fn->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    fn->isr |= 2;
    fn->config_generation++;
    if (fn->msix_config != 0xffff)
        sim_irq_raise(fn, fn->msix_config);
}

void sim_irq_fn_fini(struct sim_fn *fn)
{
    for (unsigned i = 0; i < SIM_MSIX_VECTORS; i++) {
        if (fn->irq_fds[i] >= 0)
            close(fn->irq_fds[i]);
        fn->irq_fds[i] = -1;
    }
}
