/* Assertions for integration tests: count failures, keep going, report at the end. */
#ifndef TEST_CHECK_H
#define TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>

extern int check_failures;

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            check_failures++; \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
        } \
    } while (0)

/* Fatal: stop the test here (cleanup is the caller's job through the label). */
#define REQUIRE(cond, label, ...) do { \
        bool check_ok_ = (cond); \
        CHECK(check_ok_, __VA_ARGS__); \
        if (!check_ok_) goto label; \
    } while (0)

/* Exit status for main: 0 when nothing failed; prints a summary line. */
int check_result(const char *name);

/* Milliseconds of CLOCK_MONOTONIC. */
long check_now_ms(void);

#endif
