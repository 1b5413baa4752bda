/* Logging to stderr with syslog priority prefixes ("<3>...") so journald keeps levels. */
#ifndef VFE_LOG_H
#define VFE_LOG_H

#include <syslog.h>

void vfe_log_set_level(int level);           /* LOG_ERR .. LOG_DEBUG */
int vfe_log_parse_level(const char *name);   /* "err", "warning", "info", "debug" or a digit; -1 if bad */
int vfe_log_get_level(void);
void vfe_log_set_ident(const char *ident);   /* shown after the prefix, e.g. "vfe-dpu-sim" */
/* errno is the same after the call as before ("%m" works too). */
void vfe_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_E(...) vfe_log(LOG_ERR, __VA_ARGS__)
#define LOG_W(...) vfe_log(LOG_WARNING, __VA_ARGS__)
#define LOG_N(...) vfe_log(LOG_NOTICE, __VA_ARGS__)
#define LOG_I(...) vfe_log(LOG_INFO, __VA_ARGS__)
#define LOG_D(...) vfe_log(LOG_DEBUG, __VA_ARGS__)

#endif
