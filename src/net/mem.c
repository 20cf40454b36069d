/*
 * mem: libevent's small objects packed apart, and rate-limited trims
 * (see mem.h).
 */
#include "net/mem.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/log.h"

#if defined(__SANITIZE_ADDRESS__)
#define MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_ASAN 1
#endif
#endif
#ifdef MEM_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CELL 32      /* bytes; libevent requests of at most this many */
#define CELLS 2048   /* a block: 64 KiB of cells */
#define TRIM_INTERVAL_MS 1000

struct block {
    unsigned used;           /* cells handed out */
    unsigned top;            /* cells [0, top) were handed out once */
    unsigned nfree;          /* freed cells, reused first */
    uint16_t free[CELLS];
    alignas(16) unsigned char cells[CELLS * CELL];
};

/* Sorted by address, so a pointer's block is found by bisection. */
static struct block **blocks;
static size_t nblocks, cap;
static struct block *cur;    /* has a free cell, or NULL */
static size_t cells_used;

static struct block *block_of(const void *p)
{
    uintptr_t c = (uintptr_t)p;
    size_t lo = 0, hi = nblocks;

    /* the last block that starts at or before p */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)blocks[mid]->cells <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && c < (uintptr_t)blocks[lo - 1]->cells + sizeof(blocks[0]->cells))
        return blocks[lo - 1];
    return NULL;
}

static struct block *block_new(void)
{
    struct block *b;
    size_t i = 0;

    if (nblocks == cap) {
        size_t ncap = cap ? cap * 2 : 16;
        struct block **nb = realloc(blocks, ncap * sizeof(*nb));
        if (nb == NULL)
            return NULL;
        blocks = nb;
        cap = ncap;
    }
    b = malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    b->used = b->top = b->nfree = 0;
    POISON(b->cells, sizeof(b->cells));
    while (i < nblocks && (uintptr_t)blocks[i] < (uintptr_t)b)
        i++;
    memmove(&blocks[i + 1], &blocks[i], (nblocks - i) * sizeof(blocks[0]));
    blocks[i] = b;
    nblocks++;
    return b;
}

static void block_free(struct block *b)
{
    size_t i = 0;

    while (blocks[i] != b)
        i++;
    memmove(&blocks[i], &blocks[i + 1], (nblocks - i - 1) * sizeof(blocks[0]));
    nblocks--;
    if (cur == b)
        cur = NULL;
    UNPOISON(b->cells, sizeof(b->cells));
    free(b);
}

static bool has_room(const struct block *b)
{
    return b->nfree > 0 || b->top < CELLS;
}

static void *cell_get(size_t n)
{
    struct block *b = cur;
    unsigned i;
    void *p;

    if (b == NULL || !has_room(b)) {
        b = NULL;
        /* the lowest block with room: keeps the cells packed low */
        for (size_t k = 0; k < nblocks && b == NULL; k++)
            if (has_room(blocks[k]))
                b = blocks[k];
        if (b == NULL && (b = block_new()) == NULL)
            return NULL;
        cur = b;
    }
    i = b->nfree > 0 ? b->free[--b->nfree] : b->top++;
    b->used++;
    cells_used++;
    p = b->cells + (size_t)i * CELL;
    UNPOISON(p, n); /* ASan sees the n bytes asked for, no more */
    return p;
}

static void cell_put(struct block *b, void *p)
{
    size_t i = (size_t)((unsigned char *)p - b->cells) / CELL;

    POISON(p, CELL);
    b->free[b->nfree++] = (uint16_t)i;
    b->used--;
    cells_used--;
    /* an empty block goes back, but one is kept against churn */
    if (b->used == 0 && nblocks > 1)
        block_free(b);
}

void *mem_ev_malloc(size_t n)
{
    if (n > 0 && n <= CELL) {
        void *p = cell_get(n);
        if (p != NULL)
            return p;
    }
    return malloc(n);
}

void *mem_ev_realloc(void *p, size_t n)
{
    struct block *b;
    void *q;

    if (p == NULL)
        return mem_ev_malloc(n);
    b = block_of(p);
    if (b == NULL)
        return realloc(p, n);
    if (n <= CELL) {
        POISON(p, CELL);
        UNPOISON(p, n);
        return p;
    }
    q = malloc(n);
    if (q == NULL)
        return NULL;
    UNPOISON(p, CELL); /* the size asked for is not kept: copy the cell */
    memcpy(q, p, CELL);
    cell_put(b, p);
    return q;
}

void mem_ev_free(void *p)
{
    struct block *b;

    if (p == NULL)
        return;
    b = block_of(p);
    if (b != NULL)
        cell_put(b, p);
    else
        free(p);
}

void mem_init(void)
{
    event_set_mem_functions(mem_ev_malloc, mem_ev_realloc, mem_ev_free);
}

void mem_deinit(void)
{
    size_t k = 0;

    /* empty blocks are freed; a block with a cell still in use is dropped
     * from the index, so LeakSanitizer reports it */
    while (k < nblocks) {
        if (blocks[k]->used == 0)
            block_free(blocks[k]);
        else
            k++;
    }
    free(blocks);
    blocks = NULL;
    nblocks = cap = 0;
    cur = NULL;
}

size_t mem_small_cells(void)
{
    return cells_used;
}

size_t mem_small_blocks(void)
{
    return nblocks;
}

/* Trims */

static struct event trim_ev;
static bool trim_assigned;
static int64_t last_trim_ms = INT64_MIN / 2;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void trim_now(void)
{
    last_trim_ms = now_ms();
#ifdef __GLIBC__
    malloc_trim(0);
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)
    if (log_enabled(LOG_DEBUG)) {
        struct mallinfo2 mi = mallinfo2();
        log_debug("memory trimmed: heap %zu kB, %zu kB in use; libevent "
                  "%zu small cells in %zu blocks",
                  (mi.arena + mi.hblkhd) / 1024,
                  (mi.uordblks + mi.hblkhd) / 1024, cells_used, nblocks);
    }
#endif
#endif
}

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    trim_now();
}

void mem_trim_soon(struct event_base *base)
{
    int64_t since = now_ms() - last_trim_ms;
    struct timeval tv;

    if (trim_assigned && evtimer_pending(&trim_ev, NULL))
        return; /* one is coming */
    if (since >= TRIM_INTERVAL_MS) {
        trim_now();
        return;
    }
    if (!trim_assigned || event_get_base(&trim_ev) != base) {
        evtimer_assign(&trim_ev, base, trim_cb, NULL);
        trim_assigned = true;
    }
    since = TRIM_INTERVAL_MS - since;
    tv.tv_sec = (time_t)(since / 1000);
    tv.tv_usec = (suseconds_t)(since % 1000) * 1000;
    evtimer_add(&trim_ev, &tv);
}

void mem_loop_deinit(void)
{
    if (trim_assigned)
        evtimer_del(&trim_ev);
    trim_assigned = false;
}
