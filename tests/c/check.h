/* The C tests' CHECK: on failure, prints the condition and the thread's
 * veltix_last_error(), and counts it in `failures` (the test's exit code
 * comes from it). Include after veltix.h. */
#ifndef VELTIX_TESTS_CHECK_H
#define VELTIX_TESTS_CHECK_H

#include <stdio.h>

static int failures = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,    \
                    __LINE__, #cond, veltix_last_error());                             \
            failures++;                                                                \
        }                                                                              \
    } while (0)

/* The test's exit code, after a summary line. */
static int checks_result(const char *passed) {
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("%s\n", passed);
    return 0;
}

#endif
