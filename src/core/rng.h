/*
 * rng: the one seeded random source of a Vaurien process.
 *
 * Every draw that decides a fault (which behavior a request gets, the bytes
 * of a garbage reply, where bytes are injected, jitter) comes from here, so
 * a run started with --seed N and given the same traffic injects the same
 * faults. splitmix64: one 64-bit word of state.
 */
#ifndef VAURIEN_RNG_H
#define VAURIEN_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
    uint64_t s;
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* A double uniformly drawn in [0, 1). */
double rng_double(struct rng *r);
/* An integer uniformly drawn in [0, n); n > 0. */
uint64_t rng_below(struct rng *r, uint64_t n);
void rng_fill(struct rng *r, void *buf, size_t len);

/* A seed from the operating system, for runs without --seed. */
uint64_t rng_os_seed(void);

/* The process-wide generator, for what belongs to no connection. */
extern struct rng rng_global;
/* The run's seed (--seed N, or drawn at start and logged). */
extern uint64_t rng_run_seed;

/* Seeds r for one stream of draws from seed, a name and two numbers (the
 * run's seed, a proxy's name, a session's ordinal on it, a direction): its
 * draws depend on nothing else, however other streams interleave. */
void rng_derive(struct rng *r, uint64_t seed, const char *name, uint64_t a,
                uint64_t b);
/* Seeds out from one draw of r: however much out is used (the bytes of a
 * garbage reply), r moves by one draw. */
void rng_fork(struct rng *r, struct rng *out);

#endif
