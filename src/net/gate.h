/*
 * gate: the toxics that act on a whole connection before it reaches the
 * backend: refuse (new connections closed at once) and slow_open (the
 * backend dialed late).
 *
 *   accept ─▶ session_create ─▶ gate_draw() ─┬─ GATE_REFUSE: reset at once
 *                                            ├─ GATE_WAIT: wait, then dial
 *                                            └─ GATE_OPEN: dial now
 *
 * They are drawn once, when the connection is accepted: changing or
 * removing them later touches only connections accepted after. Their
 * stream says only which direction the journal files them under.
 */
#ifndef VAURIEN_GATE_H
#define VAURIEN_GATE_H

struct session;

enum gate_verdict {
    GATE_OPEN,   /* dial the backend now */
    GATE_WAIT,   /* slow_open: dial it after *wait_ms */
    GATE_REFUSE, /* refuse: close the client at once (RST) */
};

/* Draws the proxy's connection toxics for the new session s, each against
 * its toxicity, from a generator of s's own (the run's seed, the proxy's
 * name, s's ordinal there: --seed replays it), and journals those that
 * act. A refuse drawn in wins; stacked slow_open delays add up, into
 * *wait_ms (0 when none). */
enum gate_verdict gate_draw(struct session *s, double *wait_ms);

#endif
