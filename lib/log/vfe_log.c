#include "lib/log/vfe_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int log_level = LOG_INFO;
static const char *log_ident = "vfe";

void vfe_log_set_level(int level) { log_level = level; }
int vfe_log_get_level(void) { return log_level; }
void vfe_log_set_ident(const char *ident) { log_ident = ident; }

int vfe_log_parse_level(const char *name)
{
    static const struct { const char *name; int level; } names[] = {
        {"err", LOG_ERR}, {"error", LOG_ERR}, {"warning", LOG_WARNING}, {"warn", LOG_WARNING},
        {"notice", LOG_NOTICE}, {"info", LOG_INFO}, {"debug", LOG_DEBUG},
    };
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].level;
    if (name[0] >= '0' && name[0] <= '7' && name[1] == '\0')
        return name[0] - '0';
    return -1;
}

/* Callers log a failure and then read errno (or return -errno): logging must
 * not change it, whatever stderr does. */
void vfe_log(int level, const char *fmt, ...)
{
    int saved = errno;
    if (level > log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "<%d>%s: %s\n", level, log_ident, line);
    errno = saved;
}
