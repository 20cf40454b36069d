/*
 * replay: the faults of a recorded run, injected again exactly.
 *
 *   journal (JSON lines) ──ctl/replay.c──▶ struct replay ──replay_set()──▶
 *   session draw(): (proxy, connection ordinal, request index) ──▶ behavior
 *
 * While a replay is set, every request of every proxy gets the behavior
 * the journal recorded for the same proxy, connection ordinal and request
 * index, with the recorded options, and dummy when it recorded none:
 * neither the seed, the mix, the behavior toxics nor timing decide. One
 * replay per process.
 */
#ifndef VAURIEN_REPLAY_H
#define VAURIEN_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "behav/behav.h"

#define REPLAY_EVENTS_MAX 1000000 /* faults one replay holds */
#define REPLAY_INSTS_MAX 1024     /* distinct behaviors with options */
#define REPLAY_PROXIES_MAX 1024   /* distinct proxy names */
#define REPLAY_NAME_MAX 55        /* a proxy name as the journal keeps it */

struct replay;

/* An empty replay; NULL on ENOMEM. */
struct replay *replay_create(void);
void replay_destroy(struct replay *r);

/* The index of a behavior with options already added under key (the
 * options' JSON text), or -1. */
int replay_find_inst(const struct replay *r, int behav, const char *key);
/* Adds b (taken over, its counters unused) under key. Returns its index,
 * or -ENOSPC / -ENOMEM. */
int replay_add_inst(struct replay *r, int behav, const char *key,
                    struct behav_inst *b);
/* Records that request index of connection conn of proxy got inst, and
 * held it held_ms (a delay as drawn then; < 0: none recorded). The first
 * record of a request wins. Returns 0, or -ENOSPC / -ENOMEM. */
int replay_add(struct replay *r, const char *proxy, uint64_t conn,
               uint64_t index, int inst, double held_ms);
/* Faults recorded. */
size_t replay_count(const struct replay *r);

/* Makes r the process's replay (NULL: none), freeing the one before. */
void replay_set(struct replay *r);
/* The process's replay, or NULL. */
const struct replay *replay_current(void);

/* The behavior the current replay recorded for a request, or NULL for
 * dummy, and in *held_ms the time it held the request or reply then (< 0:
 * none recorded): a delay drawn from a distribution is held as it was,
 * not drawn again. Its counters start from zero at each call, so a
 * behavior that counts (error's warmup) acts as it did. */
struct behav_inst *replay_lookup(const char *proxy, uint64_t conn,
                                 uint64_t index, double *held_ms);

#endif
