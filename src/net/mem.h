/*
 * mem: giving freed memory back to the system.
 *
 * Two things kept it: glibc only returns whole free pages, and libevent
 * keeps, for every descriptor number it has ever watched, a 20-byte slot
 * (its event map) until the event base is freed. Those slots are allocated
 * at accept time, between the connection's own buffers, so after the
 * connections close one live slot sits in nearly every heap page and no
 * page is free: 5000 closed connections kept 15 MB of a 17 MB heap that
 * held 0.5 MB.
 *
 *   libevent ──malloc ≤ 32 B──▶ cells in blocks of their own (compact)
 *            ──anything else──▶ malloc
 *   sessions closed, proxy deleted ──▶ mem_trim_soon() ──▶ malloc_trim(0)
 *                                      (at most once a second)
 *
 * The slots stay (libevent reuses them as descriptor numbers are reused,
 * so they are bounded by the most descriptors open at once, 32 bytes
 * each) but packed together, so the pages the connections used empty out
 * and malloc_trim can give them back.
 */
#ifndef VAURIEN_MEM_H
#define VAURIEN_MEM_H

#include <stddef.h>

struct event_base;

/* Gives libevent the allocator above. Call before the first event base. */
void mem_init(void);

/* Cancels a pending trim; call before the event base is freed. */
void mem_loop_deinit(void);

/* Frees the small-object blocks; call after every event base is freed.
 * Cells still in use are left (and so reported by LeakSanitizer). */
void mem_deinit(void);

/* Gives free memory back to the system now if the last trim was at least
 * a second ago, else once that second is over (on base's loop). */
void mem_trim_soon(struct event_base *base);

/* For tests: libevent's small cells in use and blocks holding them. */
size_t mem_small_cells(void);
size_t mem_small_blocks(void);

/* The allocator itself, for unit tests. */
void *mem_ev_malloc(size_t n);
void *mem_ev_realloc(void *p, size_t n);
void mem_ev_free(void *p);

#endif
