/*
 * toxic: Toxiproxy's toxics, and Vaurien's behaviors as toxic types.
 *
 *   proxy ── toxics (ordered, named, each on one stream with a toxicity)
 *              ├─ byte toxics: a chain per connection and direction, applied
 *              │  to the bytes after the request's verdict (pipe.c)
 *              └─ behavior toxics: drawn for each request before the mix
 *
 * A toxic is created and changed only through the control API; sessions
 * rebuild their chains whenever a proxy's toxics change.
 */
#ifndef VAURIEN_TOXIC_H
#define VAURIEN_TOXIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "behav/behav.h"

#define TOXIC_MAX 64       /* toxics on one proxy */
#define TOXIC_NAME_MAX 1025 /* a proxy's or toxic's name: 1024 bytes, NUL */

enum toxic_kind {
    TOXIC_LATENCY,
    TOXIC_BANDWIDTH,
    TOXIC_SLOW_CLOSE,
    TOXIC_TIMEOUT,
    TOXIC_RESET_PEER,
    TOXIC_SLICER,
    TOXIC_LIMIT_DATA,
    TOXIC_NOOP,
    TOXIC_PACKET_LOSS,     /* chunks dropped, Gilbert–Elliott (core/loss.h) */
    TOXIC_CORRUPT,         /* bits flipped at a rate */
    TOXIC_RESET_AFTER,     /* RST once a stream has passed N bytes */
    TOXIC_LIMIT_TIME,      /* the connection closed T ms after it began */
    TOXIC_BANDWIDTH_TOTAL, /* one rate shared by every connection */
    TOXIC_SLOW_OPEN,       /* connection-level: the backend dialed late */
    TOXIC_REFUSE,          /* connection-level: new connections closed */
    TOXIC_BEHAVIOR, /* one of Vaurien's behaviors */
};

enum toxic_stream { TOXIC_UPSTREAM, TOXIC_DOWNSTREAM };

struct toxic_type {
    const char *name;
    enum toxic_kind kind;
    const struct opt_decl *attrs;   /* terminated by a NULL name */
    const struct behav_ops *behav;  /* for TOXIC_BEHAVIOR */
};

struct toxic {
    char name[TOXIC_NAME_MAX];
    const struct toxic_type *type;
    enum toxic_stream stream;
    char stream_text[16];  /* as the client spelled it */
    double toxicity;       /* 0..1 */
    uint32_t uid;          /* unique per process: chains refer to it */
    struct timespec bucket; /* bandwidth_total: when the proxy's next
                               paced part may leave, for every connection
                               (MONOTONIC; pipe.c) */
    uint64_t acted;        /* times it acted on bytes or a request */
    struct behav_inst inst; /* attributes (inst.vals); the behavior's
                               instance for TOXIC_BEHAVIOR */
    struct schedule *sched; /* behavior toxics: phases that decide in
                               its place (schedule.h), owned; NULL */
};

/* Attribute indexes of the byte toxics. */
enum {
    TOX_LATENCY_MS,
    TOX_JITTER_MS,
    TOX_LATENCY_DIST,  /* Vaurien's: distribution of the jitter */
    TOX_LATENCY_CORR,  /* Vaurien's: correlation, 0..1 */
    TOX_LATENCY_SIGMA, /* Vaurien's: lognormal's sigma */
};
enum { TOX_RATE_KBPS };
enum { TOX_DELAY_MS };
enum { TOX_TIMEOUT_MS };
enum { TOX_SLICER_AVG, TOX_SLICER_VAR, TOX_SLICER_DELAY_US };
enum { TOX_LIMIT_BYTES };
enum { TOX_LOSS_RATE, TOX_LOSS_CORRELATION };
enum { TOX_CORRUPT_RATE };
enum { TOX_LIMIT_TIME_MS };
enum { TOX_RESET_AFTER_BYTES };
enum { TOX_TOTAL_RATE_KBPS };
enum { TOX_SLOW_OPEN_MS };

/* Whether toxics of this kind act on a connection's bytes (a pipe's
 * chain), rather than on the whole connection before it opens
 * (slow_open, refuse: net/gate.h) or on requests (behaviors). */
static inline bool toxic_kind_in_chain(enum toxic_kind k)
{
    return k != TOXIC_BEHAVIOR && k != TOXIC_SLOW_OPEN && k != TOXIC_REFUSE;
}

const struct toxic_type *toxic_type_find(const char *name);
int toxic_type_count(void);
const struct toxic_type *toxic_type_at(int i);

/* Whether attribute i of t belongs in its JSON view: all but Vaurien's
 * additions to a Toxiproxy toxic (or a behavior's later options) left at
 * their defaults, so that Toxiproxy's clients see Toxiproxy's attributes
 * as before. */
bool toxic_attr_shown(const struct toxic *t, int i);

/* Creates a toxic with default attributes. Returns NULL on ENOMEM. */
struct toxic *toxic_create(const struct toxic_type *type, const char *name,
                           enum toxic_stream stream, const char *stream_text);
void toxic_destroy(struct toxic *t);

/* Parses "upstream" / "downstream" in any case. Returns 0 or -1. */
int toxic_stream_parse(const char *text, enum toxic_stream *out);

#endif
