/*
 * pipe: one direction of a session, from a source bufferevent to a
 * destination bufferevent.
 *
 *   src input ──pipe_emit()──▶ toxics ──▶ [held: one byte buffer + a ring
 *                                           of units with due times, FIFO]
 *                                                  │ release(), in order
 *                                                  ▼
 *                                             dst output
 *
 * A unit with no delay and nothing held goes straight to the output;
 * otherwise its bytes are appended to the pipe's one held buffer and a
 * record of it (length, due time, how it is paced) to a bounded ring, and
 * it is released in order when due (one timer per pipe). A unit is never
 * split into records: slicer and bandwidth pace a unit by releasing it in
 * parts, so a slicer of 1-byte slices holds one record, not one per slice.
 * Bytes buffered (output + held) are capped: at PIPE_CAP the source stops
 * being read, below PIPE_LOW it resumes; so is the number of records
 * (PIPE_HELD_MAX). EOF from the source becomes shutdown(SHUT_WR) on the
 * destination once everything queued is written.
 *
 * A change of toxics re-times only the units that a removed or changed
 * toxic timed; everything else keeps its due time, and nothing is dropped
 * or reordered.
 */
#ifndef VAURIEN_PIPE_H
#define VAURIEN_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event_struct.h>

#include "behav/behav.h"
#include "behav/toxic.h"
#include "core/dist.h"
#include "core/rng.h"

#define PIPE_CAP (256 * 1024)
#define PIPE_LOW (PIPE_CAP / 2)
#define PIPE_HELD_MAX 1024 /* held units: a hard cap on the ring */
#define PIPE_PARTS_MAX 64  /* paced parts written in one loop pass */

struct pipe;

/* How a held unit leaves: at once when due, or in parts (slicer,
 * bandwidth). */
struct pipe_pace {
    uint32_t slice;   /* slicer: average part size; 0: not sliced */
    uint32_t var;     /* slicer: size variation */
    uint64_t gap_ns;  /* slicer: between parts */
    uint64_t rate;    /* bandwidth: bytes per second; 0: not limited */
    bool stop;        /* bandwidth 0: held until the toxics change */
    uint64_t total;   /* bandwidth_total: bytes per second, shared */
    struct timespec *bucket; /* bandwidth_total: its toxic's shared clock
                                (struct toxic.bucket); NULL: none. A unit
                                it paces is re-timed before the toxic is
                                freed (pipe_set_chain) */
};

/* A unit held in the pipe; its bytes are the next `len` bytes of the held
 * buffer after those of the units before it. */
struct held {
    size_t len;            /* bytes still held */
    struct timespec due;   /* when its next part may leave (MONOTONIC) */
    struct timespec base;  /* due without the toxics' delays */
    uint64_t by;           /* bits of the toxic links that timed it */
    struct pipe_pace pace;
    uint64_t own_rate;     /* bytes per second the unit itself asked for
                              (pipe_emit_paced), kept when re-timed */
    uint8_t then;          /* enum behav_act: BEHAV_PASS; BEHAV_ABORT or
                              BEHAV_CLOSE: close once it is written */
};

/* A byte toxic of this direction's stream on one connection, and its
 * state. Every toxic of the stream has a link; `on` says whether its
 * toxicity drew it in for this connection. */
struct tox_link {
    const struct toxic *t;
    uint32_t uid;
    struct rng rng;           /* packet_loss, corrupt: their own draws,
                                 forked from the pipe's when the link is
                                 made, so other toxics' draws do not move
                                 them */
    union {
        struct {              /* packet_loss */
            bool lost;        /* the previous chunk was lost */
            bool drawn;       /* a chunk was decided already */
        } loss;
        struct {              /* corrupt */
            uint64_t gap;     /* bits still to pass before a flip */
            double rate;      /* the rate gap was drawn at */
        } flip;
        struct {              /* limit_time */
            struct timespec since; /* when the link was made */
            struct event *ev; /* armed for since + time; owned */
        } lt;
    } st;
    bool on;                  /* drawn in */
    bool target_asked;        /* its target was asked about this
                                 connection, */
    bool target_took;         /* and took it */
    uint8_t bit;              /* its bit in struct held.by */
    double toxicity;          /* as drawn against */
    long long a[3];           /* its attributes as applied */
    unsigned long long count; /* limit_data: bytes passed */
    bool fired;               /* reset_peer: the reset is on its way */
    struct dist lat;          /* latency: its distribution as applied */
    struct dist_state lat_prev; /* latency: this connection and direction's
                                   previous draw, for the correlation */
};

/* The timers of the toxics that act on time, not on bytes. */
enum pipe_tox_timer { TOXT_TIMEOUT, TOXT_RESET, TOXT_SLOW_CLOSE, TOXT_N };

enum pipe_cork {
    PIPE_CORK_NONE,   /* bytes are written as they come */
    PIPE_CORK_OUTPUT, /* corked behind a non-empty output: queued there */
    PIPE_CORK_BUF,    /* corked, the output empty: kept in p->cork */
};

/* What a pipe tells its owner (the session). ctx is pipe_init's. */
struct pipe_owner {
    /* whether toxic t's target (target.h) takes this connection; asked
     * once, when the toxic is first drawn for it; may be NULL */
    bool (*targeted)(void *ctx, const struct toxic *t);
    /* close the connection (RST when reset) */
    void (*close)(void *ctx, bool reset, const char *why);
    /* the pipe's wish to read its source changed (pipe.full) */
    void (*reading)(void *ctx);
    /* the destination drained below the low-water mark */
    void (*drained)(void *ctx, struct pipe *p);
    /* the destination's write side was shut */
    void (*done)(void *ctx);
    /* toxic t acted on bytes (the journal); may be NULL */
    void (*acted)(void *ctx, const struct pipe *p, const struct toxic *t,
                  double held_ms, uint64_t bytes, const char *outcome);
};

struct pipe {
    const struct pipe_owner *owner;
    void *ctx;
    uint64_t id;               /* the session's, for logs */
    const char *name;          /* "up" or "down", for logs */
    struct bufferevent *src;
    struct bufferevent *dst;
    bool live;                 /* between pipe_init and pipe_deinit */
    struct evbuffer *hbuf;     /* held bytes, all units in order; made on
                                  first use */
    struct held *ring;         /* held units; grows up to PIPE_HELD_MAX */
    uint32_t ring_cap, first, nheld;
    struct timespec pace_until;/* a paced part may not leave before */
    struct timespec stamp;     /* when the source's bytes being handled
                                  were read; zero: use the clock */
    bool src_dry;              /* the last read took all the source had */
    struct event *timer;       /* armed for the head's due time; made on
                                  first use (an idle connection has none) */
    bool eof;                  /* the source has ended */
    bool shut;                 /* the destination's write side is shut */
    bool full;                 /* the source is paused for backpressure */
    bool close_on_flush;       /* cut the session once dst output is empty */
    bool discard;              /* drop whatever the source sends */
    bool closing;              /* a unit that closes is queued: nothing
                                  after it is written */
    enum pipe_cork corked;     /* units only queue; pipe_uncork() writes */
    struct evbuffer *cork;     /* PIPE_CORK_BUF: what passed while corked,
                                  written by pipe_uncork() */
    size_t owed;               /* pipe_owe(): the first `owed` bytes of the
                                  source's input passed, not moved yet */
    struct rng rng;            /* this direction's draws (toxicity,
                                  jitter, slices): core/rng.h */
    unsigned long long bytes;  /* bytes written to dst so far */
    unsigned long long *totals; /* the proxy's counters of this direction,
                                   [0] sent, [1] received, counted as bytes
                                   flow (NULL: none) */
    struct tox_link *chain;    /* this stream's byte toxics, in order */
    int nchain;
    uint64_t bits_used;        /* tox_link.bit values taken */
    struct event *tox_ev[TOXT_N]; /* made on first use */
    bool end_reset;            /* at the end, reset the destination
                                  instead of shutting it */
    bool shut_delayed;         /* slow_close: the shutdown is waiting */
    bool slow_closed;          /* slow_close: its delay has been applied */
    bool reset_on_flush;       /* reset_after: the close that follows the
                                  last write is a reset */
};

/* n bytes were handed to the destination / read from the source. */
static inline void pipe_count_sent(struct pipe *p, size_t n)
{
    p->bytes += n;
    if (p->totals != NULL)
        p->totals[0] += n;
}

static inline void pipe_count_received(struct pipe *p, size_t n)
{
    if (p->totals != NULL)
        p->totals[1] += n;
}

void pipe_init(struct pipe *p, const struct pipe_owner *owner, void *ctx,
               uint64_t id, const char *name, struct bufferevent *src,
               struct bufferevent *dst);
/* Frees held units and the timers. The pipe is inert afterwards. */
void pipe_deinit(struct pipe *p);

/* Moves len bytes from the front of from into the pipe, to be written after
 * delay seconds (0: now, counted from p->stamp when set) and everything
 * queued before them. then is BEHAV_PASS, or BEHAV_ABORT / BEHAV_CLOSE to
 * close the session once they are written. Returns 0 or -ENOMEM. */
int pipe_emit(struct pipe *p, struct evbuffer *from, size_t len, double delay,
              enum behav_act then);

/* Passes len bytes of from, which follow the `pipe_owed(p, from)` bytes
 * already owed at its front, without moving them yet: while corked and
 * nothing else could time them (no byte toxic, nothing held), units that
 * pass whole add up and move together, at pipe_settle(). Returns false,
 * and does nothing, when they cannot wait (then pipe_emit() them). */
bool pipe_owe(struct pipe *p, struct evbuffer *from, size_t len);
/* The bytes at the front of from that are owed to p (0 if none). */
size_t pipe_owed(const struct pipe *p, const struct evbuffer *from);
/* Moves what is owed into the output. Every pipe_emit*() and
 * pipe_uncork() settles first; anyone else touching the front of the
 * owed buffer must settle before. */
void pipe_settle(struct pipe *p);

/* When a unit emitted now with delay seconds would be due: from p->stamp
 * when set, else from the clock. */
void pipe_due(const struct pipe *p, double delay, struct timespec *due);

/* pipe_emit() with the due time given: the later steps of a held unit are
 * due with its first, so that a delay applies once to a unit however many
 * reads bring it. */
int pipe_emit_until(struct pipe *p, struct evbuffer *from, size_t len,
                    const struct timespec *due, enum behav_act then);

/* pipe_emit() of bytes that leave at most rate bytes per second (a
 * behavior's pace: slow_body), after everything queued before them; the
 * rate carries on from the unit before when that was paced too, so that a
 * body emitted in several steps flows at one rate. A bandwidth toxic that
 * is slower wins. Returns 0 or -ENOMEM. */
int pipe_emit_paced(struct pipe *p, struct evbuffer *from, size_t len,
                    uint64_t rate);

/* Sets the byte toxics of this direction from a proxy's toxics (those of
 * the given stream). A toxic new to the connection is drawn against its
 * toxicity; one it already had keeps its draw and state unless its
 * toxicity changed. Units timed by a toxic that is gone or changed are
 * re-timed by what remains; a connection a removed timeout toxic was
 * holding is closed. Returns 0 or -ENOMEM. */
int pipe_set_chain(struct pipe *p, struct toxic *const *toxics, int n,
                   enum toxic_stream stream);

/* While corked, what the pipe passes is only queued in the destination's
 * output; pipe_uncork() writes it in one go. The session corks both pipes
 * while it frames what one read brought, so that 16 pipelined requests
 * cost one write, not 16. */
void pipe_cork(struct pipe *p);
void pipe_uncork(struct pipe *p);

/* Bytes waiting: destination output plus held units. */
size_t pipe_buffered(const struct pipe *p);

/* Bytes held (not yet in the destination's output). */
size_t pipe_held_bytes(const struct pipe *p);

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
