/*
 * dist: delay distributions (see dist.h).
 *
 * netem builds its shapes as tables of a scaled inverse distribution
 * function (4096 entries of s16, in units of sigma / 8192) indexed by a
 * uniform draw; here the same inverse functions are computed directly, so
 * there is no table and no quantization, but the same caps: the tables
 * cannot hold more than 32767 / 8192, about 4 sigma.
 */
#include "core/dist.h"

#include <math.h>
#include <string.h>

#define DIST_NAME(e, s) s,
static const char *const names[] = { DIST_KINDS(DIST_NAME) };
#undef DIST_NAME

#define NETEM_CAP 4.0 /* netem's tables end at 32767 / 8192 sigma */

int dist_find(const char *name)
{
    for (int i = 0; i < DIST_COUNT; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

const char *dist_name(enum dist_kind k)
{
    return (unsigned)k < DIST_COUNT ? names[k] : "?";
}

const char *dist_names(void)
{
    return "uniform, normal, pareto, paretonormal or lognormal";
}

bool dist_same(const struct dist *a, const struct dist *b)
{
    return a->kind == b->kind && a->center == b->center &&
           a->spread == b->spread && a->sigma == b->sigma &&
           a->correlation == b->correlation && a->max == b->max;
}

/*
 * The standard normal quantile: Acklam's rational approximation (relative
 * error 1.15e-9), polished by one Halley step on erfc, which brings it to
 * about double precision.
 */
double dist_normal_quantile(double p)
{
    static const double a[] = { -3.969683028665376e+01, 2.209460984245205e+02,
                                -2.759285104469687e+02, 1.383577518672690e+02,
                                -3.066479806614716e+01, 2.506628277459239e+00 };
    static const double b[] = { -5.447609879822406e+01, 1.615858368580409e+02,
                                -1.556989798598866e+02, 6.680131188771972e+01,
                                -1.328068155288572e+01 };
    static const double c[] = { -7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00, 2.938163982698783e+00 };
    static const double d[] = { 7.784695709041462e-03, 3.224671290700398e-01,
                                2.445134137142996e+00, 3.754408661907416e+00 };
    const double low = 0.02425;
    double q, r, x, e, u;

    if (!(p > 0))
        return -INFINITY;
    if (!(p < 1))
        return INFINITY;
    if (p < low || p > 1 - low) {
        q = sqrt(-2 * log(p < low ? p : 1 - p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q +
             c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        if (p > 1 - low)
            x = -x;
    } else {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r +
             a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    e = 0.5 * erfc(-x / sqrt(2)) - p;
    u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

/* A uniform draw in the open interval (0, 1): every quantile is finite. */
static double open_uniform(struct rng *r)
{
    return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

/*
 * netem's get_crandom(): the draw is (1 - rho) of a fresh one plus rho of
 * the previous draw. As in netem, this correlates successive values but
 * also narrows their spread as rho grows (a mean of uniforms is no longer
 * uniform): at rho 0.9 the standard deviation is about 0.23 of rho 0's.
 * The first draw of a stream is a fresh one.
 */
static double correlated_uniform(const struct dist *d, struct dist_state *st,
                                 struct rng *r)
{
    double v = open_uniform(r), rho = d->correlation;

    if (st == NULL)
        return v;
    if (st->primed && rho > 0)
        v = (1 - rho) * v + rho * st->last;
    st->last = v;
    st->primed = true;
    return v;
}

/* netem's pareto table at u: shape 3, centered, scaled by 4/3, capped. */
static double pareto_at(double u)
{
    double t = 4.0 / 3.0 * (pow(1 - u, -1.0 / 3.0) - 1.5);

    return t < NETEM_CAP ? t : NETEM_CAP;
}

/* netem's paretonormal table at u: (normal + 3 pareto) / 4, capped. */
static double paretonormal_at(double u)
{
    double t = (dist_normal_quantile(u) + 3 * pareto_at(u)) / 4;

    return t < -NETEM_CAP ? -NETEM_CAP : t > NETEM_CAP ? NETEM_CAP : t;
}

static double clamp(const struct dist *d, double x)
{
    if (!(x > 0)) /* NaN as well */
        return 0;
    return x < d->max ? x : d->max;
}

double dist_draw(const struct dist *d, struct dist_state *st, struct rng *r)
{
    double u;

    if (d->kind == DIST_LOGNORMAL ? d->sigma <= 0 : d->spread <= 0)
        return clamp(d, d->center);
    u = correlated_uniform(d, st, r);
    switch (d->kind) {
    case DIST_UNIFORM:
        return clamp(d, d->center + d->spread * (2 * u - 1));
    case DIST_NORMAL:
        return clamp(d, d->center + d->spread * dist_normal_quantile(u));
    case DIST_PARETO:
        return clamp(d, d->center + d->spread * pareto_at(u));
    case DIST_PARETONORMAL:
        return clamp(d, d->center + d->spread * paretonormal_at(u));
    case DIST_LOGNORMAL:
        return clamp(d, d->center * exp(d->sigma * dist_normal_quantile(u)));
    case DIST_COUNT:
        break;
    }
    return clamp(d, d->center);
}
