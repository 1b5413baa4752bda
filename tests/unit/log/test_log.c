/*
 * vfe_log: callers log a failure and then use errno, so a log call never
 * changes errno (not even when stderr cannot be written); lines carry the
 * syslog prefix and are cut, not overflowed; level names are validated.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/log/vfe_log.h"

/* Run the logging with fd 2 replaced by `fd`; stderr is restored after. */
struct redirect {
    int saved;
};

static void redirect_stderr(struct redirect *r, int fd)
{
    fflush(stderr);
    r->saved = dup(2);
    assert_true(r->saved >= 0 && dup2(fd, 2) == 2);
}

static void restore_stderr(struct redirect *r)
{
    fflush(stderr);
    clearerr(stderr);
    assert_int_equal(dup2(r->saved, 2), 2);
    close(r->saved);
}

/* What the log wrote into a temp file (NUL-terminated, at most cap-1 bytes). */
static size_t read_back(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    return (size_t)n;
}

static int temp_file(void)
{
    char path[] = "/tmp/vfe-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* stderr closed for writing: the write fails inside the log call, errno does not change. */
static void errno_kept_when_stderr_fails(void **state)
{
    int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    struct redirect r;
    redirect_stderr(&r, ro);
    errno = ETIMEDOUT;
    LOG_E("the device did not answer");
    int after_err = errno;
    errno = EPROTO;
    LOG_W("%s: %d", "bad answer", 7);
    int after_warn = errno;
    restore_stderr(&r);
    close(ro);
    assert_int_equal(after_err, ETIMEDOUT);
    assert_int_equal(after_warn, EPROTO);
}

/* Written, filtered out, or with %m: errno is the caller's afterwards, and %m shows it. */
static void errno_kept_and_line_format(void **state)
{
    int fd = temp_file();
    struct redirect r;
    vfe_log_set_ident("test-log");
    vfe_log_set_level(LOG_INFO);
    redirect_stderr(&r, fd);
    errno = ENOENT;
    LOG_E("open %s: %m", "/nonexistent");
    int after_written = errno;
    errno = EBUSY;
    LOG_D("filtered out %d", 1);
    int after_filtered = errno;
    restore_stderr(&r);
    char buf[512];
    read_back(fd, buf, sizeof(buf));
    close(fd);
    assert_int_equal(after_written, ENOENT);
    assert_int_equal(after_filtered, EBUSY);
    assert_string_equal(buf, "<3>test-log: open /nonexistent: No such file or directory\n");
}

/* A message longer than a line is cut at the line size, still one line. */
static void long_message_cut(void **state)
{
    static char big[8192];
    memset(big, 'x', sizeof(big) - 1);
    int fd = temp_file();
    struct redirect r;
    vfe_log_set_ident("t");
    redirect_stderr(&r, fd);
    LOG_N("%s", big);
    restore_stderr(&r);
    static char buf[16384];
    size_t n = read_back(fd, buf, sizeof(buf));
    close(fd);
    assert_true(n > 1000 && n < 1100);
    assert_memory_equal(buf, "<5>t: xxx", 9);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', n - 1));
}

static void level_names(void **state)
{
    assert_int_equal(vfe_log_parse_level("err"), LOG_ERR);
    assert_int_equal(vfe_log_parse_level("warning"), LOG_WARNING);
    assert_int_equal(vfe_log_parse_level("debug"), LOG_DEBUG);
    assert_int_equal(vfe_log_parse_level("6"), 6);
    const char *bad[] = {"", "8", "77", "-1", "Info", "debugx", " info"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vfe_log_parse_level(bad[i]), -1);
    assert_int_equal(vfe_log_parse_level(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(errno_kept_when_stderr_fails), cmocka_unit_test(errno_kept_and_line_format),
        cmocka_unit_test(long_message_cut), cmocka_unit_test(level_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
