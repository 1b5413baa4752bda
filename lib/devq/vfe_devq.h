/*
 * Per-device serial job queues on one bounded thread pool.
 *
 * A job is work(arg) on a pool thread, then done(arg, status) on the loop.
 * Jobs submitted with the same device key run one at a time, in submit
 * order; jobs of different keys run in parallel.  It exists for the device
 * calls that must wait for a device's answer (bring-up: open, probe, reset):
 * the loop never waits for them.
 *
 * Timing:
 *   - done runs from the loop (an ev_async), after work returned, never
 *     inside vfe_devq_submit or any other devq call (vfe_devq_destroy is the
 *     one exception, see there).  Completions reach the loop in the order
 *     the works finished; per key that is submit order.  One loop turn
 *     runs done calls for at most VFE_DEVQ_DONE_BUDGET_US, the rest follow
 *     in the next turns (other watchers run in between).
 *   - threads are created on demand (from the loop, at submit and on the
 *     pool's timer) and leave after VFE_DEVQ_IDLE_S without work.
 *   - at most max_threads jobs run that have run for less than
 *     VFE_DEVQ_STUCK_MS; a job running longer waits on a device and no
 *     longer counts, so a few dead devices do not starve the others.
 *     Threads are bounded by VFE_DEVQ_HARD_CAP + max_threads: jobs started
 *     as stuck (see vfe_devq_submit_grouped) only while fewer than
 *     VFE_DEVQ_HARD_CAP are stuck, so up to that many jobs of dead devices
 *     wait while max_threads others run.  Beyond it (more jobs than that
 *     went stuck on their own) the others wait for a thread too, until a
 *     stuck job returns (every device call is bounded by
 *     VFE_TRANSPORT_TIMEOUT_MS, so a stuck job ends within a few bounds).
 *
 * Ownership: arg is the job's, from submit until done(arg, ...) returns:
 * the loop must not touch what arg refers to before done (the object being
 * built is not visible to the loop; a transport is used by one thread at a
 * time and passes from loop to worker at submit, back at done).  The queue
 * copies the key.  The queue is owned by its creator and used from the
 * loop's thread only (submit, stats, destroy); work must not call devq;
 * done may submit, but must not destroy q.
 *
 * Thread-safety of what a work may call: vfe_log (a stack buffer, one
 * fprintf per line), strerror (glibc: static strings, a thread-local buffer
 * for unknown numbers), one transport per job (a vfio-user client is not
 * shared between threads).  Not the loop, not its watchers.
 *
 * Errors (-errno): -EINVAL (NULL queue/key/work/done, empty key),
 * -ENAMETOOLONG (key of VFE_DEVQ_KEY_MAX bytes or more), -ESHUTDOWN (the
 * queue is being destroyed), -ENOMEM.
 */
#ifndef VFE_DEVQ_H
#define VFE_DEVQ_H

#include <ev.h>
#include <stdint.h>

#define VFE_DEVQ_KEY_MAX 64          /* bytes of a device key, NUL included */
#define VFE_DEVQ_STUCK_MS 100        /* a job running longer no longer counts against max_threads */
#define VFE_DEVQ_HARD_CAP 64         /* stuck jobs with a thread; threads: this + max_threads */
#define VFE_DEVQ_IDLE_S 2.0          /* an idle thread leaves after this */
#define VFE_DEVQ_DONE_BUDGET_US 1000 /* done calls of one loop turn stop after this; the rest next turn */

/* done's status: 0 work ran; VFE_DEVQ_CANCELED: work never ran (destroy);
 * VFE_DEVQ_SHUTDOWN: work ran but the queue is being destroyed: release
 * what it produced, do not start anything. */
#define VFE_DEVQ_CANCELED (-125)     /* -ECANCELED */
#define VFE_DEVQ_SHUTDOWN (-108)     /* -ESHUTDOWN */

struct vfe_devq;

typedef void (*vfe_devq_work)(void *arg);
typedef void (*vfe_devq_done)(void *arg, int status);

/* max_threads: 1..VFE_DEVQ_HARD_CAP jobs running that are not stuck.
 * NULL with errno (EINVAL, ENOMEM). */
struct vfe_devq *vfe_devq_new(struct ev_loop *loop, unsigned max_threads);

/* Queue work(arg) behind the jobs of device_key.  0, or -errno (above):
 * then nothing is queued and done will not run. */
int vfe_devq_submit(struct vfe_devq *q, const char *device_key, vfe_devq_work work, vfe_devq_done done, void *arg);
/* The same, device_key a member of group (the devices behind one path to
 * the hardware: a PF's VFs).  Ready devices are picked round robin over
 * groups, and a group with a stuck job (its hardware does not answer) only
 * when no other group has a job ready; its jobs then count as stuck from
 * their start (they are expected to wait too): a dead PF's queued VFs take
 * neither the running slots nor the turn of the others.  A key keeps the group it was first given
 * while it has jobs.  Same errors (group as device_key). */
int vfe_devq_submit_grouped(struct vfe_devq *q, const char *group, const char *device_key, vfe_devq_work work,
                            vfe_devq_done done, void *arg);

struct vfe_devq_stats {
    unsigned queued;      /* submitted, not started */
    unsigned running;     /* in work() now, stuck ones included */
    unsigned stuck;       /* running for more than VFE_DEVQ_STUCK_MS */
    unsigned threads;     /* pool threads alive */
    uint64_t completed;   /* done calls made */
};
void vfe_devq_stats(struct vfe_devq *q, struct vfe_devq_stats *st);

/* Shutdown (NULL: nothing).  No job starts any more; waits for the running
 * ones (each bounded by its device calls); then, inside this call, in
 * submit order per key, every job whose done has not run yet gets it:
 * done(arg, VFE_DEVQ_SHUTDOWN) if its work ran, done(arg, VFE_DEVQ_CANCELED)
 * if not.  A submit from those calls fails with -ESHUTDOWN.  No callback
 * runs after it returns; the threads are joined and q is freed. */
void vfe_devq_destroy(struct vfe_devq *q);

#endif
