/*
 * dist: the shapes a drawn delay can take.
 *
 *   delay behavior (seconds) ─┐
 *                             ├─▶ dist_draw(dist, state, rng) ─▶ a delay >= 0
 *   latency toxic (ms) ───────┘        │
 *                                      └─ the connection's seeded rng
 *
 * A distribution is a center (the configured delay), a spread (jitter),
 * and, for lognormal, sigma. Units are the caller's: the math never
 * converts. Every draw is one uniform draw from the caller's generator,
 * optionally correlated with the previous one as netem's get_crandom()
 * does, then turned into the shape by its inverse distribution function;
 * so the same seed gives the same sequence, and a spread of 0 draws
 * nothing.
 */
#ifndef VAURIEN_DIST_H
#define VAURIEN_DIST_H

#include <stdbool.h>

#include "core/rng.h"

/* The distributions by name. With u the (correlated) uniform draw in
 * (0, 1), m the center and s the spread:
 *   uniform       m + s (2u - 1): m ± s, flat (netem's default)
 *   normal        m + s z(u), z the standard normal quantile: s is the
 *                 standard deviation
 *   pareto        netem's table (iproute2 netem/pareto.c, shape 3):
 *                 m + s min(4, 4/3 ((1 - u)^(-1/3) - 1.5)); at least
 *                 m - 2s/3, at most m + 4s, a long right tail
 *   paretonormal  netem's table (iproute2 netem/paretonormal.c): a
 *                 quarter of normal plus three quarters of pareto, on the
 *                 same u, clamped to m ± 4s
 *   lognormal     WireMock's: m exp(sigma z(u)): m is the median, sigma
 *                 the standard deviation of the logarithm; s unused */
#define DIST_KINDS(X) \
    X(DIST_UNIFORM, "uniform") \
    X(DIST_NORMAL, "normal") \
    X(DIST_PARETO, "pareto") \
    X(DIST_PARETONORMAL, "paretonormal") \
    X(DIST_LOGNORMAL, "lognormal")

#define DIST_ENUM(e, s) e,
enum dist_kind { DIST_KINDS(DIST_ENUM) DIST_COUNT };
#undef DIST_ENUM

/* A distribution as configured. */
struct dist {
    enum dist_kind kind;
    double center;      /* the delay; lognormal: its median */
    double spread;      /* jitter: uniform's half width, normal's standard
                           deviation, netem's sigma for the paretos */
    double sigma;       /* lognormal: standard deviation of ln(delay) */
    double correlation; /* 0..1: weight of the previous uniform draw */
    double max;         /* draws are clamped to [0, max] */
};

/* The previous draw of one stream of correlated draws. Zero: none yet. */
struct dist_state {
    double last;  /* the previous (correlated) uniform draw, in (0, 1) */
    bool primed;  /* last holds a draw */
};

/* The kind named name (exactly as in DIST_KINDS), or -1. */
int dist_find(const char *name);
const char *dist_name(enum dist_kind k);
/* "uniform, normal, pareto, paretonormal or lognormal", for messages. */
const char *dist_names(void);

/* Whether a and b are the same distribution. */
bool dist_same(const struct dist *a, const struct dist *b);

/* Draws one value of d from r, in [0, d->max]. st carries the previous
 * draw for the correlation (NULL: uncorrelated) and is updated. A
 * distribution with no spread (spread 0; lognormal: sigma 0) returns its
 * center clamped, without drawing. */
double dist_draw(const struct dist *d, struct dist_state *st, struct rng *r);

/* The standard normal quantile: z with P(Z < z) = p, for p in (0, 1). */
double dist_normal_quantile(double p);

#endif
