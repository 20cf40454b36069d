/*
 * schedule: a scripted sequence of behaviors, one phase after another.
 *
 *   [{"for": "100 requests", "behavior": "dummy"},
 *    {"for": "5s", "behavior": "error", "code": 503},
 *    {"behavior": "dummy"}]
 *
 *   request ──▶ schedule_next(): the phase in effect ──▶ its behavior
 *
 * A phase lasts a number of requests, a time, or (the last one, without
 * "for") for ever; after a last phase that ends, every request gets dummy.
 * The first phase starts when the schedule is set; a phase of requests
 * ends with its last request, and the next starts then. A schedule is the
 * mix of a proxy (PUT /behavior) or the decision of a behavior toxic: the
 * requests it counts are those drawn for it.
 */
#ifndef VAURIEN_SCHEDULE_H
#define VAURIEN_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "behav/behav.h"

#define SCHEDULE_MAX 32 /* phases */

enum schedule_for {
    SCHEDULE_REQUESTS, /* `for` that many requests */
    SCHEDULE_SECONDS,  /* `for` that long */
    SCHEDULE_EVER,     /* no `for`: until the schedule is replaced */
};

struct schedule {
    int n;
    struct schedule_phase {
        enum schedule_for kind;
        double amount;          /* requests or seconds */
        struct behav_inst inst; /* the behavior and its options */
    } ph[SCHEDULE_MAX];
    int cur;             /* the phase in effect; n when all have ended */
    uint64_t in_phase;   /* requests drawn in it */
    double phase_start;  /* when it began (target_now()) */
    char *given;         /* the schedule as given (JSON text), owned */
};

/* Parses a phase's "for": "100 requests" (or "1 request"), "5s",
 * "250ms", "2m". Returns 0, or -EINVAL with a message in err. */
int schedule_parse_for(const char *text, enum schedule_for *kind,
                       double *amount, char *err, size_t errlen);

/* An empty schedule that starts at now; NULL on ENOMEM. Phases are added
 * by the caller (ph[n++], with behav_inst_init()). */
struct schedule *schedule_create(double now);
void schedule_destroy(struct schedule *s);

/* The phase in effect at now (from 0), timed phases that ran out moving
 * on; n when every phase has ended. */
int schedule_phase(struct schedule *s, double now);

/* The behavior of the phase in effect at now for one more request, the
 * phase moving on as its requests or its time run out; NULL when every
 * phase has ended (dummy). */
struct behav_inst *schedule_next(struct schedule *s, double now);

#endif
