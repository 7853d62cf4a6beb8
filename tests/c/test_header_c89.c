/* The header is clean under -std=c89 -pedantic-errors (no // comments, no
 * C99-only constructs in it), and its negative status macros are
 * parenthesized, so they work inside any expression. */
#include <stdio.h>

#include "veltix.h"

int main(void) {
    int one = 1;
    /* Unparenthesized, "one-VELTIX_ERR_IO" would read as "one--11". */
    int twelve = one-VELTIX_ERR_IO;
    int is_io = -VELTIX_ERR_IO == 11;
    if (twelve != 12 || !is_io || VELTIX_ERR_NULL_POINTER != -1) {
        fprintf(stderr, "a status macro does not expand to its value\n");
        return 1;
    }
    printf("C89 consumer: libveltix %s\n", veltix_version());
    return 0;
}
