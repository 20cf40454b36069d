/*
 * delay: holds the request (or, with before=false, its reply) for `sleep`
 * seconds, then forwards it. Later data on the same direction waits behind
 * it, so nothing is reordered.
 *
 * With a jitter, each request's delay is drawn (core/dist.h) from the
 * connection's seeded generator: sleep ± jitter by default, or a normal,
 * pareto, paretonormal or lognormal shape, never below zero.
 */
#include "behav/behav.h"

enum {
    DELAY_SLEEP,
    DELAY_BEFORE,
    DELAY_JITTER,
    DELAY_DIST,
    DELAY_CORR,
    DELAY_SIGMA,
};

#define DELAY_MAX 86400 /* seconds: the bound of sleep and of a draw */

static const struct opt_decl delay_opts[] = {
    [DELAY_SLEEP] = { "sleep", OPT_FLOAT, "1", "Delay in seconds", 0,
                      DELAY_MAX },
    [DELAY_BEFORE] = { "before", OPT_BOOL, "true",
                       "Hold the request (true) or its reply (false)", 0, 0 },
    [DELAY_JITTER] = { "jitter", OPT_FLOAT, "0",
                       "Spread of the delay in seconds (sleep +/- jitter; "
                       "normal: the standard deviation)", 0, DELAY_MAX },
    [DELAY_DIST] = { "distribution", OPT_DIST, "uniform",
                     "Shape of the jitter: uniform, normal, pareto, "
                     "paretonormal (netem's), lognormal (sleep is the "
                     "median)", 0, 0 },
    [DELAY_CORR] = { "correlation", OPT_FLOAT, "0",
                     "Weight of the previous draw in each draw, 0 to 1 "
                     "(netem's)", 0, 1 },
    [DELAY_SIGMA] = { "sigma", OPT_FLOAT, "0",
                      "lognormal: standard deviation of ln(delay)", 0, 10 },
    { 0 },
};

/*
 * The request's delay in seconds. Draws come from the connection's
 * generator (ctx->rng); without one (unit tests) there is no jitter.
 *
 * The correlation's previous draw is kept in the instance (b->dist), so it
 * is per proxy, not per connection: successive requests on the proxy are
 * correlated whichever connection they come on, as netem correlates the
 * successive packets of an interface rather than of a flow. A per
 * connection state would have to live in struct session, which is kept
 * small for idle connections. With a correlation, a seeded run therefore
 * repeats its delays when its requests arrive in the same order across
 * connections; without one (the default) each connection's delays depend
 * on its own generator only.
 */
static double delay_secs(struct behav_inst *b, const struct behav_ctx *ctx)
{
    const union opt_val *v = b->vals;
    int kind = dist_find(v[DELAY_DIST].s != NULL ? v[DELAY_DIST].s : "");
    struct dist d = {
        .kind = kind < 0 ? DIST_UNIFORM : (enum dist_kind)kind,
        .center = v[DELAY_SLEEP].f,
        .spread = v[DELAY_JITTER].f,
        .sigma = v[DELAY_SIGMA].f,
        .correlation = v[DELAY_CORR].f,
        .max = DELAY_MAX,
    };

    if (ctx == NULL || ctx->rng == NULL)
        return d.center;
    return dist_draw(&d, &b->dist, ctx->rng);
}

static void delay_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                         struct behav_verdict *v)
{
    if (b->vals[DELAY_BEFORE].b) {
        v->req = BEHAV_HOLD;
        v->req_delay = delay_secs(b, ctx);
    } else {
        v->rep = BEHAV_HOLD;
        v->rep_delay = delay_secs(b, ctx);
    }
}

const struct behav_ops behav_delay = {
    .name = "delay",
    .help = "Adds a delay before (or after) the backend answers.",
    .opts = delay_opts,
    .base_opts = DELAY_JITTER, /* sleep and before: the original's */
    .decide = delay_decide,
};
