/*
 * pipe: one direction of a session, from a source bufferevent to a
 * destination bufferevent.
 *
 *   src input ──pipe_emit()──▶ [hold queue, FIFO with due times] ──▶ dst output
 *
 * Units move by evbuffer moves, never copies. A unit with no delay and an
 * empty queue goes straight to the output; otherwise it waits in the queue
 * and is released in order when due (one timer per pipe, armed for the head).
 * Bytes buffered (output + held) are capped: at PIPE_CAP the source stops
 * being read, below PIPE_LOW it resumes. EOF from the source becomes
 * shutdown(SHUT_WR) on the destination once everything queued is written.
 */
#ifndef VAURIEN_PIPE_H
#define VAURIEN_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event_struct.h>

#include "behav/behav.h"
#include "behav/toxic.h"

#define PIPE_CAP (256 * 1024)
#define PIPE_LOW (PIPE_CAP / 2)
#define PIPE_HELD_MAX 1024 /* held units: many tiny ones cost more than bytes */

struct session;

struct held {
    struct held *next;
    struct evbuffer *buf;
    struct timespec due;  /* CLOCK_MONOTONIC */
    struct timespec base; /* due without the toxics' delays */
    bool toxic;           /* held by a toxic: released when toxics change */
    bool forever;         /* bandwidth 0: until the toxics change */
    enum behav_act then;  /* BEHAV_PASS; BEHAV_ABORT or BEHAV_CLOSE: close the
                             session once it is written */
};

/* A toxic active on one direction of one connection, and its state. */
struct tox_link {
    const struct toxic *t;
    uint32_t uid;
    struct timespec clock;  /* bandwidth: when the last byte leaves */
    unsigned long long count; /* limit_data: bytes passed */
    bool fired;             /* reset_peer: the reset is on its way */
};

enum pipe_tox_timer { TOXT_NONE, TOXT_TIMEOUT, TOXT_RESET, TOXT_SLOW_CLOSE };

struct pipe {
    struct session *s;
    const char *name;          /* "up" or "down", for logs */
    struct bufferevent *src;
    struct bufferevent *dst;
    struct held *head, *tail;  /* hold queue */
    size_t held_bytes;
    size_t nheld;              /* held units */
    struct event timer;        /* armed for head->due */
    bool timer_set;            /* timer assigned (event_assign done) */
    bool eof;                  /* the source has ended */
    bool shut;                 /* the destination's write side is shut */
    bool full;                 /* the source is paused for backpressure */
    bool close_on_flush;       /* cut the session once dst output is empty */
    bool discard;              /* drop whatever the source sends */
    unsigned long long bytes;  /* bytes written to dst so far */
    struct tox_link *chain;    /* active byte toxics, in order; NULL: none */
    int nchain;
    struct event *tox_timer;   /* timeout, reset_peer, slow_close; made on
                                  first use, so a connection without such
                                  toxics pays nothing for it */
    enum pipe_tox_timer tox_action;
    bool shut_delayed;         /* slow_close: the shutdown is waiting */
    bool slow_closed;          /* slow_close: its delay has been applied */
};

void pipe_init(struct pipe *p, struct session *s, const char *name,
               struct bufferevent *src, struct bufferevent *dst);
/* Frees held units and the timer. */
void pipe_deinit(struct pipe *p);

/* Moves len bytes from the front of from into the pipe, to be written after
 * delay seconds (0: now) and everything queued before them. then is
 * BEHAV_PASS, or BEHAV_ABORT / BEHAV_CLOSE to close the session once they
 * are written. Returns 0 or -ENOMEM. */
int pipe_emit(struct pipe *p, struct evbuffer *from, size_t len, double delay,
              enum behav_act then);

/* Sets the byte toxics of this direction from a proxy's toxics (those of
 * the given stream), each drawn against its toxicity. Data held by toxics
 * that are gone is released in order; a connection a removed timeout toxic
 * was holding is closed. Returns 0 or -ENOMEM. */
int pipe_set_chain(struct pipe *p, struct toxic *const *toxics, int n,
                   enum toxic_stream stream);

/* Bytes waiting: destination output plus held units. */
size_t pipe_buffered(const struct pipe *p);

/* Pauses the source when the pipe is at its cap. */
void pipe_check_full(struct pipe *p);

/* The destination drained some output (its write callback ran). */
void pipe_on_drained(struct pipe *p);

/* The source ended: shut the destination once all is written. */
void pipe_on_eof(struct pipe *p);

/* Shuts the destination's write side if the source ended and all is
 * written. */
void pipe_maybe_shut(struct pipe *p);

#endif
