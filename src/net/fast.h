/*
 * fast: the zero-copy path of a session.
 *
 *   client socket ──splice──▶ kernel pipe ──splice──▶ backend socket
 *   backend socket ─splice──▶ kernel pipe ──splice──▶ client socket
 *
 * Used while nothing needs to see the bytes: a tcp (or passed-through)
 * connection whose proxy has an all-dummy mix and no toxics. Bytes never
 * enter user space. The moment a behavior or toxic needs them, the session
 * leaves the fast path: what is in the kernel pipes is moved, in order,
 * ahead of everything else on the normal path. Pipes are taken from a pool
 * when data arrives and given back when drained, so an idle connection holds
 * none.
 */
#ifndef VAURIEN_FAST_H
#define VAURIEN_FAST_H

#include <stdbool.h>

struct session;

/* Whether the session could run on the fast path now. */
bool fast_eligible(const struct session *s);

/* Moves the session onto the fast path if it is eligible and nothing is
 * buffered on the normal path. Returns true if it did. */
bool fast_enter(struct session *s);

/* Moves the session back to the normal path, bytes in flight first. */
void fast_leave(struct session *s);

/* The source of the up (client) or down (backend) direction is readable. */
void fast_on_readable(struct session *s, bool up);

/* Frees what the fast path holds (on close). */
void fast_deinit(struct session *s);

/* Frees the pool of pipes (at exit). */
void fast_pool_deinit(void);

#endif
