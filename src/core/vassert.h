/*
 * vassert: invariants that must hold, checked in debug and sanitizer builds
 * (VAURIEN_DEBUG) and compiled out of release builds, like twemproxy's
 * ASSERT and Redis's serverAssert. A broken invariant stops the process at
 * its cause, with the condition, file and line on stderr.
 */
#ifndef VAURIEN_VASSERT_H
#define VAURIEN_VASSERT_H

#ifdef VAURIEN_DEBUG
void vassert_fail(const char *cond, const char *file, int line)
    __attribute__((noreturn));
#define VASSERT(c) ((c) ? (void)0 : vassert_fail(#c, __FILE__, __LINE__))
#else
#define VASSERT(c) ((void)0)
#endif

#endif
