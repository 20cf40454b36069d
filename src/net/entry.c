/*
 * entry: requests in flight and their life (see entry.h).
 */
#include "net/entry.h"

#include "core/script.h"

#include <stdlib.h>

#include "core/vassert.h"
#include "net/pipe.h"

#define ENTRY_NAME(e, s) s,
static const char *const state_names[] = { ENTRY_STATES(ENTRY_NAME) };
#undef ENTRY_NAME

const char *entry_state_name(enum entry_state s)
{
    return state_names[s];
}

/* next[state][event]: the state an event leads to; ENTRY_DONE + 1 marks a
 * transition that must not happen. */
#define NO ((enum entry_state)(ENTRY_DONE + 1))
static const enum entry_state next[][5] = {
    [ENTRY_READING] = { [ENTRY_REQ_END] = ENTRY_WAITING,
                        [ENTRY_REPLY_START] = ENTRY_READING_REPLYING,
                        [ENTRY_REPLY_END] = NO,
                        [ENTRY_INTERIM_END] = NO,
                        [ENTRY_ANSWERED] = NO },
    [ENTRY_READING_REPLYING] = { [ENTRY_REQ_END] = ENTRY_REPLYING,
                                 [ENTRY_REPLY_START] = NO,
                                 [ENTRY_REPLY_END] = ENTRY_DONE,
                                 [ENTRY_INTERIM_END] = ENTRY_READING,
                                 [ENTRY_ANSWERED] = NO },
    [ENTRY_WAITING] = { [ENTRY_REQ_END] = NO,
                        [ENTRY_REPLY_START] = ENTRY_REPLYING,
                        [ENTRY_REPLY_END] = NO,
                        [ENTRY_INTERIM_END] = NO,
                        [ENTRY_ANSWERED] = ENTRY_DONE },
    [ENTRY_REPLYING] = { [ENTRY_REQ_END] = NO,
                         [ENTRY_REPLY_START] = NO,
                         [ENTRY_REPLY_END] = ENTRY_DONE,
                         [ENTRY_INTERIM_END] = ENTRY_WAITING,
                         [ENTRY_ANSWERED] = NO },
    [ENTRY_DONE] = { NO, NO, NO, NO, NO },
};

enum entry_state entry_advance(struct entry *e, enum entry_event ev)
{
    enum entry_state to = next[e->state][ev];

    VASSERT(to != NO);
    /* replies come only for what was sent; answers only for what was not */
    VASSERT(ev != ENTRY_REPLY_START || e->kind != ENTRY_ANSWER);
    VASSERT(ev != ENTRY_ANSWERED || e->kind == ENTRY_ANSWER);
    if (to != NO)
        e->state = to;
    return e->state;
}

/* Entries freed, kept for the next requests: one is made per request and
 * freed per reply, more at a time than malloc's per-thread cache keeps.
 * Off in debug builds, where a use after free must reach the sanitizer. */
#ifdef VAURIEN_DEBUG
static const unsigned spare_max = 0;
#else
static const unsigned spare_max = 256;
#endif
static struct entry *spare;
static unsigned nspare;

struct entry *entry_create(enum entry_kind kind, bool complete)
{
    struct entry *e = spare;

    if (e != NULL) {
        spare = e->next;
        nspare--;
    } else if ((e = malloc(sizeof(*e))) == NULL) {
        return NULL;
    }
    *e = (struct entry){
        .kind = kind,
        .state = complete ? ENTRY_WAITING : ENTRY_READING,
    };
    return e;
}

void entry_destroy(struct entry *e)
{
    if (e == NULL)
        return;
    if (e->answer != NULL)
        evbuffer_free(e->answer);
    script_unref(e->v.hook);
    if (nspare < spare_max) {
        e->next = spare;
        spare = e;
        nspare++;
        return;
    }
    free(e);
}

bool entry_answer_due(const struct entry *e)
{
    return e->kind == ENTRY_ANSWER && e->state == ENTRY_WAITING;
}

void entry_queue_push(struct entry_queue *q, struct entry *e)
{
    VASSERT(e->next == NULL);
    if (q->tail != NULL)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->n++;
    if (e->answer != NULL)
        q->answer_bytes += evbuffer_get_length(e->answer);
}

void entry_queue_remove(struct entry_queue *q, struct entry *e)
{
    struct entry **pp = &q->head, *prev = NULL;

    while (*pp != NULL && *pp != e) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    VASSERT(*pp == e);
    if (*pp == NULL)
        return;
    *pp = e->next;
    if (q->tail == e)
        q->tail = prev;
    e->next = NULL;
    VASSERT(q->n > 0);
    q->n--;
    if (e->answer != NULL) {
        size_t len = evbuffer_get_length(e->answer);
        VASSERT(q->answer_bytes >= len);
        q->answer_bytes -= len;
    }
}

struct entry *entry_queue_awaiting(const struct entry_queue *q)
{
    for (struct entry *e = q->head; e != NULL; e = e->next)
        if (e->kind != ENTRY_ANSWER && e->state != ENTRY_DONE)
            return e;
    return NULL;
}

void entry_queue_set_answer(struct entry_queue *q, struct entry *e,
                            struct evbuffer *answer)
{
    bool queued = false;

    for (struct entry *i = q->head; i != NULL; i = i->next)
        queued |= i == e;
    if (e->answer != NULL) {
        size_t len = evbuffer_get_length(e->answer);
        if (queued) {
            VASSERT(q->answer_bytes >= len);
            q->answer_bytes -= len;
        }
        evbuffer_free(e->answer);
    }
    e->answer = answer;
    if (queued)
        q->answer_bytes += evbuffer_get_length(answer);
}

void entry_queue_clear(struct entry_queue *q)
{
    while (q->head != NULL) {
        struct entry *e = q->head;
        q->head = e->next;
        entry_destroy(e);
    }
    q->tail = NULL;
    q->n = 0;
    q->answer_bytes = 0;
}

bool entry_queue_full(const struct entry_queue *q)
{
    return q->n >= ENTRY_INFLIGHT_MAX || q->answer_bytes >= PIPE_CAP;
}

bool entry_queue_low(const struct entry_queue *q)
{
    return q->n <= ENTRY_INFLIGHT_MAX / 2 && q->answer_bytes <= PIPE_CAP / 2;
}
