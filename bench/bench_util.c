/* What the benches share: bench_util.h. */
#include "bench/bench_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double bench_cpu_ms(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    double sum = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        char f[96];
        unsigned long long ns = 0;
        snprintf(f, sizeof(f), "/proc/%d/task/%.20s/schedstat", (int)pid, de->d_name);
        FILE *fp = fopen(f, "r");
        if (fp && fscanf(fp, "%llu", &ns) == 1)
            sum += ns / 1e6;
        if (fp)
            fclose(fp);
    }
    closedir(d);
    return sum;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_pct(const double *v, unsigned n, double p)
{
    double *c = n ? malloc(n * sizeof(*c)) : NULL;
    if (!c)
        return -1;
    memcpy(c, v, n * sizeof(*c));
    qsort(c, n, sizeof(*c), cmp_d);
    unsigned k = (unsigned)(p / 100.0 * n + 0.999999);
    double r = c[(k ? k : 1) - 1];
    free(c);
    return r;
}
