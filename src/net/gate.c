/*
 * gate: refuse and slow_open, drawn when a connection is accepted (see
 * gate.h).
 */
#include "net/gate.h"

#include "behav/toxic.h"
#include "core/rng.h"
#include "net/proxy.h"
#include "net/report.h"
#include "net/session.h"

/* The generator's fourth stream of a session: 0 is its verdicts, 1 and 2
 * its directions' byte toxics (session.c). */
#define GATE_RNG_STREAM 3

static enum journal_dir dir_of(const struct toxic *t)
{
    return t->stream == TOXIC_UPSTREAM ? JOURNAL_UP : JOURNAL_DOWN;
}

static bool drawn_in(struct rng *r, const struct toxic *t)
{
    return t->toxicity > 0 && (t->toxicity >= 1 || rng_double(r) < t->toxicity);
}

enum gate_verdict gate_draw(struct session *s, double *wait_ms)
{
    const struct proxy *p = s->proxy;
    const struct toxic *refused = NULL;
    bool in[TOXIC_MAX] = { false };
    struct rng r;

    *wait_ms = 0;
    rng_derive(&r, rng_run_seed, p->name, s->id, GATE_RNG_STREAM);
    /* every toxic is drawn, in order, whatever the others drew: one's
     * draw does not depend on another's outcome */
    for (int i = 0; i < p->ntoxics; i++) {
        const struct toxic *t = p->toxics[i];
        if (t->type->kind != TOXIC_REFUSE && t->type->kind != TOXIC_SLOW_OPEN)
            continue;
        in[i] = drawn_in(&r, t) && session_toxic_targets(s, t);
        if (in[i] && t->type->kind == TOXIC_REFUSE && refused == NULL)
            refused = t;
    }
    if (refused != NULL) {
        report_toxic(s, refused, dir_of(refused), 0, 0,
                     "connection refused: reset at once");
        return GATE_REFUSE;
    }
    for (int i = 0; i < p->ntoxics; i++) {
        const struct toxic *t = p->toxics[i];
        double ms;
        if (!in[i] || t->type->kind != TOXIC_SLOW_OPEN)
            continue;
        ms = (double)t->inst.vals[TOX_SLOW_OPEN_MS].i;
        *wait_ms += ms;
        report_toxic(s, t, dir_of(t), ms, 0, "backend dialed late");
    }
    return *wait_ms > 0 ? GATE_WAIT : GATE_OPEN;
}
