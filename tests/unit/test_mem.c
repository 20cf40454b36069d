/* libevent's allocator (net/mem.c): small requests packed in blocks of
 * their own, everything else malloc, and each freed by the right one. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "net/mem.h"

#define N 5000

Test(mem, small_requests_are_packed_and_blocks_go_back_when_empty)
{
    static unsigned char *p[N];

    for (int i = 0; i < N; i++) {
        p[i] = mem_ev_malloc(20);
        cr_assert_not_null(p[i]);
        cr_assert_eq((uintptr_t)p[i] % 16, 0);
        memset(p[i], i & 0xff, 20);
    }
    cr_assert_eq(mem_small_cells(), N);
    /* 2048 cells a block */
    cr_assert_eq(mem_small_blocks(), 3);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 20; k++)
            cr_assert_eq(p[i][k], i & 0xff);
    /* freed every other one: the holes are reused before a new block */
    for (int i = 0; i < N; i += 2)
        mem_ev_free(p[i]);
    cr_assert_eq(mem_small_cells(), N / 2);
    for (int i = 0; i < N; i += 2)
        p[i] = mem_ev_malloc(32);
    cr_assert_eq(mem_small_blocks(), 3);
    for (int i = 0; i < N; i++)
        mem_ev_free(p[i]);
    cr_assert_eq(mem_small_cells(), 0);
    cr_assert_eq(mem_small_blocks(), 1); /* one kept against churn */
    mem_deinit();
    cr_assert_eq(mem_small_blocks(), 0);
}

Test(mem, large_requests_and_foreign_pointers_are_mallocs)
{
    unsigned char *big = mem_ev_malloc(33), *small, *q;
    void *m = malloc(24);

    cr_assert_not_null(big);
    cr_assert_eq(mem_small_cells(), 0);
    mem_ev_free(m); /* malloc's own: given to free() */
    small = mem_ev_malloc(8);
    memcpy(small, "abcdefgh", 8);
    cr_assert_eq(mem_small_cells(), 1);
    /* growing within the cell keeps it; beyond moves to malloc */
    cr_assert_eq(mem_ev_realloc(small, 30), small);
    q = mem_ev_realloc(small, 4000);
    cr_assert_not_null(q);
    cr_assert_eq(memcmp(q, "abcdefgh", 8), 0);
    cr_assert_eq(mem_small_cells(), 0);
    q = mem_ev_realloc(q, 16); /* a malloc stays a malloc */
    cr_assert_eq(memcmp(q, "abcdefgh", 8), 0);
    cr_assert_eq(mem_small_cells(), 0);
    mem_ev_free(q);
    q = mem_ev_realloc(NULL, 10);
    cr_assert_eq(mem_small_cells(), 1);
    mem_ev_free(q);
    mem_ev_free(NULL);
    mem_ev_free(big);
    mem_deinit();
}

Test(mem, libevent_runs_on_it)
{
    struct event_base *base;
    struct evbuffer *b;
    char out[6];

    mem_init();
    base = event_base_new();
    cr_assert_not_null(base);
    b = evbuffer_new();
    evbuffer_add(b, "hello", 5);
    cr_assert_eq(evbuffer_remove(b, out, 5), 5);
    out[5] = '\0';
    cr_assert_str_eq(out, "hello");
    evbuffer_free(b);
    mem_trim_soon(base); /* now: the first one */
    mem_trim_soon(base); /* within the second: on a timer */
    mem_loop_deinit();
    event_base_free(base);
    cr_assert_eq(mem_small_cells(), 0);
    mem_deinit();
}
