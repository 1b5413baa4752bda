/* What the benches share: CPU time of a process, percentiles of a series. */
#ifndef VFE_BENCH_UTIL_H
#define VFE_BENCH_UTIL_H

#include <sys/types.h>

/* CPU time of every thread of pid so far (schedstat: nanoseconds), ms; -1 on error. */
double bench_cpu_ms(pid_t pid);
/* Nearest-rank percentile p (0..100) of v[0..n) (v is not reordered); -1 for n 0. */
double bench_pct(const double *v, unsigned n, double p);

#endif
