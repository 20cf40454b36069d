/*
 * loss: Gilbert–Elliott chunk loss and bit-error gaps (see loss.h).
 */
#include "core/loss.h"

#include <math.h>

static double clamp01(double x)
{
    return x > 0 ? (x < 1 ? x : 1) : 0; /* NaN gives 0 */
}

bool loss_next(struct rng *r, double loss_rate, double correlation,
               bool *lost, bool first)
{
    double l = clamp01(loss_rate), c = clamp01(correlation), u;
    double p = first ? l : *lost ? l + c * (1 - l) : l * (1 - c);

    u = rng_double(r);
    *lost = u < p;
    return *lost;
}

uint64_t loss_bit_gap(struct rng *r, double rate)
{
    double x = clamp01(rate), u, g;

    u = 1.0 - rng_double(r); /* (0, 1] */
    if (x <= 0)
        return UINT64_MAX;
    if (x >= 1)
        return 0;
    /* P(gap >= k) = (1 - rate)^k */
    g = floor(log(u) / log1p(-x));
    if (!(g < 1.8e19))
        return UINT64_MAX;
    return (uint64_t)g;
}
