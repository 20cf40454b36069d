/*
 * entry: the requests in flight on one session, in the order the client
 * sent them, and the life of each.
 *
 *   request read ─▶ entry (kind fixed by its verdict) ─▶ queue tail
 *   queue head   ─▶ its reply, or the proxy's answer ─▶ client, in order
 *
 * An entry's kind says where its reply comes from; its state says how far
 * it is. The one place a state changes is entry_advance(), which checks the
 * transition against the table in entry.c:
 *
 *   READING ──req end──▶ WAITING ──reply start──▶ REPLYING ──reply end──▶ DONE
 *      │                    └──answered (ANSWER, at the head)──────────────▶ DONE
 *      ├──reply start──▶ READING_REPLYING ──req end──▶ REPLYING
 *      │                        └──reply end──▶ DONE (the rest of the
 *      │                                        request still passes)
 *   an interim reply (HTTP 1xx) ends back in WAITING (READING)
 *
 * The queue is capped (ENTRY_INFLIGHT_MAX entries, PIPE_CAP bytes of
 * answers): past that the session stops reading its client.
 */
#ifndef VAURIEN_ENTRY_H
#define VAURIEN_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <event2/buffer.h>

#include "behav/behav.h"
#include "proto/proto.h"

#define ENTRY_INFLIGHT_MAX 1024

#define ENTRY_KINDS(X) \
    X(ENTRY_FORWARD, "forward") /* sent to the backend; its reply passes */ \
    X(ENTRY_REPLACE, "replace") /* sent to the backend; its reply is \
                                   swallowed, the answer sent instead */ \
    X(ENTRY_ANSWER, "answer")   /* not sent; the proxy answers it */

#define ENTRY_STATES(X) \
    X(ENTRY_READING, "reading") \
    X(ENTRY_READING_REPLYING, "reading, replying") \
    X(ENTRY_WAITING, "waiting") \
    X(ENTRY_REPLYING, "replying") \
    X(ENTRY_DONE, "done")

#define ENTRY_EVENTS(X) \
    X(ENTRY_REQ_END, "request end") \
    X(ENTRY_REPLY_START, "reply start") \
    X(ENTRY_REPLY_END, "reply end") \
    X(ENTRY_INTERIM_END, "interim reply end") /* HTTP 1xx: the final \
                                                 reply is still to come */ \
    X(ENTRY_ANSWERED, "answered")

#define ENTRY_ENUM(e, s) e,
enum entry_kind { ENTRY_KINDS(ENTRY_ENUM) };
enum entry_state { ENTRY_STATES(ENTRY_ENUM) };
enum entry_event { ENTRY_EVENTS(ENTRY_ENUM) };
#undef ENTRY_ENUM

struct entry {
    struct entry *next;
    enum entry_kind kind;
    enum entry_state state;
    bool close_after;        /* close the client once answer is written */
    struct behav_verdict v;  /* drawn when the request started */
    struct proto_unit req;   /* what the framer learned of the request */
    struct evbuffer *answer; /* the proxy's reply (REPLACE, ANSWER) */
    struct timespec start;   /* when the request started (round trips) */
};

struct entry_queue {
    struct entry *head, *tail;
    size_t n;            /* entries */
    size_t answer_bytes; /* bytes of their answers */
};

const char *entry_state_name(enum entry_state s);

/* A new entry in state READING (WAITING when complete). Returns NULL on
 * ENOMEM. */
struct entry *entry_create(enum entry_kind kind, bool complete);
void entry_destroy(struct entry *e);

/* Moves e along its life; the transition must be one of the table's
 * (checked by VASSERT). Returns the new state. */
enum entry_state entry_advance(struct entry *e, enum entry_event ev);

/* Whether e has its turn to be answered by the proxy: the head, an ANSWER
 * read whole. */
bool entry_answer_due(const struct entry *e);

void entry_queue_push(struct entry_queue *q, struct entry *e);
/* Unlinks e (anywhere in the queue). */
void entry_queue_remove(struct entry_queue *q, struct entry *e);
/* The entry the backend's next reply answers: the first sent to it whose
 * reply has not ended. NULL when none. */
struct entry *entry_queue_awaiting(const struct entry_queue *q);
/* Sets e's answer (takes ownership; an answer it had is freed) and counts
 * its bytes when e is queued. */
void entry_queue_set_answer(struct entry_queue *q, struct entry *e,
                            struct evbuffer *answer);
/* Frees every entry. */
void entry_queue_clear(struct entry_queue *q);
/* At the cap: the client must not be read. */
bool entry_queue_full(const struct entry_queue *q);
/* Below half the cap: the client may be read again. */
bool entry_queue_low(const struct entry_queue *q);

#endif
