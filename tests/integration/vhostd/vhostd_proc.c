/* Helpers of the vfe-vhostd tests (see vhostd_proc.h). */
#include "tests/integration/vhostd/vhostd_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *bin(const char *env, const char *dflt)
{
    const char *b = getenv(env);
    return b ? b : dflt;
}

const char *vhostd_bin(void) { return bin("VFE_VHOSTD", "vfe-vhostd"); }
const char *vhostmgmt_bin(void) { return bin("VFE_VHOSTMGMT", "vhostmgmt"); }

int vhostmgmt_vrun(const char *rpc, char *out, size_t len, const char *stdin_text, va_list ap)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s%s%s%s -s %s", stdin_text ? "printf '" : "", stdin_text ? stdin_text : "",
             stdin_text ? "' | " : "", vhostmgmt_bin(), rpc);
    for (const char *a; (a = va_arg(ap, const char *));) {
        strncat(cmd, " ", sizeof(cmd) - strlen(cmd) - 1);
        strncat(cmd, a, sizeof(cmd) - strlen(cmd) - 1);
    }
    strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    size_t got = p ? fread(out, 1, len - 1, p) : 0;
    out[got] = '\0';
    char sink[4096];
    while (p && fread(sink, 1, sizeof(sink), p) > 0)
        ;   /* the rest is not kept, but the command must not die writing it */
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int vhostmgmt_run(const char *rpc, char *out, size_t len, const char *stdin_text, ...)
{
    va_list ap;
    va_start(ap, stdin_text);
    int rc = vhostmgmt_vrun(rpc, out, len, stdin_text, ap);
    va_end(ap);
    return rc;
}
