/* The queue of requests in flight and the life of an entry. */
#include <criterion/criterion.h>

#include "net/entry.h"
#include "net/pipe.h"

static struct entry *answer_entry(size_t bytes)
{
    struct entry *e = entry_create(ENTRY_ANSWER, false);
    struct evbuffer *b = evbuffer_new();

    for (size_t i = 0; i < bytes; i++)
        evbuffer_add(b, "x", 1);
    e->answer = b;
    return e;
}

Test(entry, a_forwarded_request_lives_read_wait_reply_done)
{
    struct entry *e = entry_create(ENTRY_FORWARD, false);

    cr_assert_eq(e->state, ENTRY_READING);
    cr_assert_eq(entry_advance(e, ENTRY_REQ_END), ENTRY_WAITING);
    cr_assert_eq(entry_advance(e, ENTRY_REPLY_START), ENTRY_REPLYING);
    cr_assert_eq(entry_advance(e, ENTRY_REPLY_END), ENTRY_DONE);
    entry_destroy(e);
}

Test(entry, a_reply_may_start_before_the_request_is_read)
{
    struct entry *e = entry_create(ENTRY_FORWARD, false);

    cr_assert_eq(entry_advance(e, ENTRY_REPLY_START), ENTRY_READING_REPLYING);
    cr_assert_eq(entry_advance(e, ENTRY_INTERIM_END), ENTRY_READING);
    cr_assert_eq(entry_advance(e, ENTRY_REPLY_START), ENTRY_READING_REPLYING);
    cr_assert_eq(entry_advance(e, ENTRY_REQ_END), ENTRY_REPLYING);
    cr_assert_eq(entry_advance(e, ENTRY_REPLY_END), ENTRY_DONE);
    entry_destroy(e);
}

Test(entry, an_answer_is_due_only_once_its_request_is_read)
{
    struct entry *e = answer_entry(3);

    cr_assert(!entry_answer_due(e));
    entry_advance(e, ENTRY_REQ_END);
    cr_assert(entry_answer_due(e));
    cr_assert_eq(entry_advance(e, ENTRY_ANSWERED), ENTRY_DONE);
    entry_destroy(e);
}

Test(entry, replies_go_to_the_first_request_sent_not_to_answers)
{
    struct entry_queue q = { 0 };
    struct entry *a = entry_create(ENTRY_ANSWER, true);
    struct entry *f1 = entry_create(ENTRY_FORWARD, true);
    struct entry *f2 = entry_create(ENTRY_REPLACE, true);

    entry_queue_push(&q, a);
    entry_queue_push(&q, f1);
    entry_queue_push(&q, f2);
    cr_assert_eq(q.n, 3);
    cr_assert_eq(entry_queue_awaiting(&q), f1);
    entry_queue_remove(&q, f1);
    cr_assert_eq(entry_queue_awaiting(&q), f2);
    cr_assert_eq(q.head, a, "order kept");
    cr_assert_eq(q.tail, f2);
    entry_destroy(f1);
    entry_queue_clear(&q);
    cr_assert_eq(q.n, 0);
    cr_assert_null(q.head);
}

Test(entry, the_queue_is_full_at_its_count_cap_and_low_at_half)
{
    struct entry_queue q = { 0 };
    struct entry *e[ENTRY_INFLIGHT_MAX];

    for (int i = 0; i < ENTRY_INFLIGHT_MAX; i++) {
        cr_assert(!entry_queue_full(&q));
        e[i] = entry_create(ENTRY_FORWARD, true);
        entry_queue_push(&q, e[i]);
    }
    cr_assert(entry_queue_full(&q));
    cr_assert(!entry_queue_low(&q));
    for (int i = 0; i < ENTRY_INFLIGHT_MAX / 2; i++) {
        entry_queue_remove(&q, e[i]);
        entry_destroy(e[i]);
    }
    cr_assert(entry_queue_low(&q));
    entry_queue_clear(&q);
}

Test(entry, the_queue_counts_the_bytes_of_its_answers)
{
    struct entry_queue q = { 0 };
    struct entry *big = answer_entry(PIPE_CAP);
    struct entry *small = answer_entry(10);

    entry_queue_push(&q, small);
    cr_assert_eq(q.answer_bytes, 10);
    cr_assert(!entry_queue_full(&q));
    entry_queue_push(&q, big);
    cr_assert(entry_queue_full(&q), "a cap on answer bytes too");
    entry_queue_remove(&q, big);
    cr_assert_eq(q.answer_bytes, 10);
    entry_destroy(big);
    entry_queue_clear(&q);
    cr_assert_eq(q.answer_bytes, 0);
}
