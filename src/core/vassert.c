/*
 * vassert: the failure path of VASSERT (vassert.h).
 */
#include "core/vassert.h"

#ifdef VAURIEN_DEBUG
#include <stdio.h>
#include <stdlib.h>

void vassert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "vaurien: assertion failed: %s (%s:%d)\n", cond, file,
            line);
    abort();
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int vassert_release_build;
#endif
