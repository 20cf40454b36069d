/* Delay distributions: each shape's statistics over 100,000 seeded draws,
 * the correlation, and the bounds. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "core/opt.h"

#define N 100000

struct stats {
    double mean, sd, min, max, median;
    double lag1;      /* lag-1 autocorrelation */
    double above;     /* fraction of draws above `over` */
    double log_mean, log_sd; /* of ln(x), for x > 0 */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Draws N values of d from a generator seeded with seed and measures
 * them. */
static struct stats measure(const struct dist *d, uint64_t seed, double over)
{
    static double x[N];
    struct rng r;
    struct dist_state st = { 0 };
    struct stats s = { .min = INFINITY, .max = -INFINITY };
    double sum = 0, sq = 0, cov = 0, lsum = 0, lsq = 0;
    int above = 0;

    rng_seed(&r, seed);
    for (int i = 0; i < N; i++) {
        x[i] = dist_draw(d, &st, &r);
        sum += x[i];
        sq += x[i] * x[i];
        if (x[i] < s.min)
            s.min = x[i];
        if (x[i] > s.max)
            s.max = x[i];
        if (x[i] > over)
            above++;
        if (x[i] > 0) {
            lsum += log(x[i]);
            lsq += log(x[i]) * log(x[i]);
        }
    }
    s.mean = sum / N;
    s.sd = sqrt(sq / N - s.mean * s.mean);
    for (int i = 1; i < N; i++)
        cov += (x[i] - s.mean) * (x[i - 1] - s.mean);
    s.lag1 = cov / (N - 1) / (s.sd * s.sd);
    s.above = (double)above / N;
    s.log_mean = lsum / N;
    s.log_sd = sqrt(lsq / N - s.log_mean * s.log_mean);
    qsort(x, N, sizeof(x[0]), cmp_double);
    s.median = (x[N / 2 - 1] + x[N / 2]) / 2;
    cr_log_info("%s: mean %.4f sd %.4f min %.4f max %.4f median %.4f "
                "lag1 %.4f above %.5f ln-sd %.4f",
                dist_name(d->kind), s.mean, s.sd, s.min, s.max, s.median,
                s.lag1, s.above, s.log_sd);
    return s;
}

static struct dist make(enum dist_kind kind, double center, double spread)
{
    struct dist d = { .kind = kind, .center = center, .spread = spread,
                      .max = 1e9 };
    return d;
}

Test(dist, names_round_trip_and_unknown_names_are_refused)
{
    for (int k = 0; k < DIST_COUNT; k++)
        cr_assert_eq(dist_find(dist_name((enum dist_kind)k)), k);
    cr_assert_eq(dist_find("Normal"), -1);
    cr_assert_eq(dist_find(""), -1);
    cr_assert_eq(dist_find("gauss"), -1);
}

Test(dist, an_option_of_type_distribution_takes_only_the_names)
{
    struct opt_decl d = { "distribution", OPT_DIST, "uniform", "", 0, 0 };
    union opt_val v = { 0 };
    char err[256];

    cr_assert_eq(opt_parse(&d, "paretonormal", &v, err, sizeof(err)), 0);
    cr_assert_str_eq(v.s, "paretonormal");
    cr_assert_not(opt_is_default(&d, &v));
    cr_assert_lt(opt_parse(&d, "gauss", &v, err, sizeof(err)), 0);
    cr_assert_str_eq(err, "option 'distribution' takes uniform, normal, "
                          "pareto, paretonormal or lognormal, not 'gauss'");
    cr_assert_str_eq(v.s, "paretonormal", "a refused value changes nothing");
    cr_assert_eq(opt_parse(&d, "uniform", &v, err, sizeof(err)), 0);
    cr_assert(opt_is_default(&d, &v));
    free(v.s);
}

Test(dist, the_normal_quantile_is_exact_to_1e_9)
{
    cr_assert_float_eq(dist_normal_quantile(0.5), 0, 1e-12);
    cr_assert_float_eq(dist_normal_quantile(0.975), 1.959963984540054, 1e-9);
    cr_assert_float_eq(dist_normal_quantile(0.025), -1.959963984540054, 1e-9);
    cr_assert_float_eq(dist_normal_quantile(0.8413447460685429), 1.0, 1e-9);
    cr_assert_float_eq(dist_normal_quantile(1e-10), -6.361340902404056, 1e-8);
}

Test(dist, uniform_is_center_plus_or_minus_spread_flat)
{
    struct dist d = make(DIST_UNIFORM, 100, 10);
    struct stats s = measure(&d, 1, 105);

    cr_assert_float_eq(s.mean, 100, 0.1);
    cr_assert_float_eq(s.sd, 10 / sqrt(3), 0.05);
    cr_assert(s.min >= 90 && s.max <= 110);
    cr_assert_float_eq(s.above, 0.25, 0.01);
}

Test(dist, normal_has_the_spread_as_standard_deviation)
{
    struct dist d = make(DIST_NORMAL, 100, 10);
    struct stats s = measure(&d, 2, 110);

    cr_assert_float_eq(s.mean, 100, 0.1);
    cr_assert_float_eq(s.sd, 10, 0.15);
    cr_assert_float_eq(s.median, 100, 0.15);
    cr_assert_float_eq(s.above, 0.158655, 0.005); /* one sigma above */
}

/* netem's pareto table, per unit of spread: mean -0.03292, standard
 * deviation 0.82086, median -0.32011, P(t > 2) = 1/27 (the cap at 4 makes
 * the mean slightly negative; by numerical integration). */
Test(dist, pareto_is_netems_table_with_its_tail_and_bounds)
{
    struct dist d = make(DIST_PARETO, 100, 10);
    struct stats s = measure(&d, 3, 120);

    cr_assert_float_eq(s.mean, 100 - 0.3292, 0.1);
    cr_assert_float_eq(s.sd, 8.2086, 0.15);
    cr_assert_float_eq(s.median, 100 - 3.2011, 0.15);
    cr_assert_float_eq(s.above, 1.0 / 27, 0.002);
    cr_assert_geq(s.min, 100 - 10 * 2.0 / 3);
    cr_assert_leq(s.max, 140);
    cr_assert_gt(s.max, 139, "the cap at 4 spreads is reached");
}

/* netem's paretonormal table, per unit of spread: mean -0.02469, standard
 * deviation 0.83494, median -0.24008, P(t > 2) = 0.03531. */
Test(dist, paretonormal_is_a_quarter_normal_three_quarters_pareto)
{
    struct dist d = make(DIST_PARETONORMAL, 100, 10);
    struct stats s = measure(&d, 4, 120);

    cr_assert_float_eq(s.mean, 100 - 0.2469, 0.1);
    cr_assert_float_eq(s.sd, 8.3494, 0.15);
    cr_assert_float_eq(s.median, 100 - 2.4008, 0.15);
    cr_assert_float_eq(s.above, 0.03531, 0.002);
    cr_assert(s.min >= 60 && s.max <= 140);
}

Test(dist, lognormal_has_the_center_as_median_and_sigma_in_logs)
{
    struct dist d = make(DIST_LOGNORMAL, 100, 0);
    struct stats s;

    d.sigma = 0.5;
    s = measure(&d, 5, 100);
    cr_assert_float_eq(s.median, 100, 1);
    cr_assert_float_eq(s.log_mean, log(100), 0.01);
    cr_assert_float_eq(s.log_sd, 0.5, 0.01);
    cr_assert_float_eq(s.mean, 100 * exp(0.125), 0.6);
    cr_assert_gt(s.min, 0);
}

Test(dist, no_draw_is_below_zero)
{
    for (int k = 0; k < DIST_COUNT; k++) {
        struct dist d = make((enum dist_kind)k, 5, 10);
        struct stats s;
        d.sigma = 3;
        s = measure(&d, 6, 1e9);
        cr_assert_geq(s.min, 0, "%s", dist_name(d.kind));
    }
}

Test(dist, a_normal_below_zero_is_clamped_at_zero_not_redrawn)
{
    struct dist d = make(DIST_NORMAL, 5, 10);
    struct rng r;
    int zeros = 0;

    rng_seed(&r, 7);
    for (int i = 0; i < N; i++)
        zeros += dist_draw(&d, NULL, &r) == 0;
    /* P(Z < -0.5) = 0.3085 */
    cr_assert_float_eq((double)zeros / N, 0.3085, 0.01);
}

Test(dist, draws_are_capped_at_max)
{
    struct dist d = make(DIST_LOGNORMAL, 1, 0);
    struct stats s;

    d.sigma = 10;
    d.max = 5;
    s = measure(&d, 8, 4.999);
    cr_assert_leq(s.max, 5);
    cr_assert_gt(s.above, 0.4);
}

Test(dist, no_spread_returns_the_center_without_drawing)
{
    struct rng r, before;

    rng_seed(&r, 9);
    before = r;
    for (int k = 0; k < DIST_COUNT; k++) {
        struct dist d = make((enum dist_kind)k, 42, 0);
        cr_assert_eq(dist_draw(&d, NULL, &r), 42);
    }
    cr_assert_eq(r.s, before.s);
}

Test(dist, correlation_raises_the_lag_one_autocorrelation)
{
    for (int k = 0; k < DIST_COUNT; k++) {
        struct dist d = make((enum dist_kind)k, 100, 10);
        struct stats s0, s9;
        d.sigma = 0.5;
        s0 = measure(&d, 10, 1e9);
        d.correlation = 0.9;
        s9 = measure(&d, 10, 1e9);
        cr_assert_lt(fabs(s0.lag1), 0.02, "%s: %f", dist_name(d.kind), s0.lag1);
        cr_assert_gt(s9.lag1, 0.8, "%s: %f", dist_name(d.kind), s9.lag1);
    }
}

/* As netem's get_crandom: the weighted mean of uniforms is narrower, by
 * sqrt((1 - rho) / (1 + rho)) for uniform. */
Test(dist, correlation_narrows_the_spread_as_netems_does)
{
    struct dist d = make(DIST_UNIFORM, 100, 10);
    struct stats s;

    d.correlation = 0.9;
    s = measure(&d, 11, 1e9);
    cr_assert_float_eq(s.mean, 100, 0.3);
    cr_assert_float_eq(s.sd, 10 / sqrt(3) * sqrt(0.1 / 1.9), 0.1);
}

Test(dist, the_same_seed_gives_the_same_sequence)
{
    for (int k = 0; k < DIST_COUNT; k++) {
        struct dist d = make((enum dist_kind)k, 100, 10);
        struct dist_state sa = { 0 }, sb = { 0 }, sc = { 0 };
        struct rng a, b, c;
        int same = 0;
        d.sigma = 0.5;
        d.correlation = 0.5;
        rng_seed(&a, 12);
        rng_seed(&b, 12);
        rng_seed(&c, 13);
        for (int i = 0; i < 1000; i++) {
            double x = dist_draw(&d, &sa, &a);
            cr_assert_eq(x, dist_draw(&d, &sb, &b));
            same += x == dist_draw(&d, &sc, &c);
        }
        cr_assert_lt(same, 10, "another seed, another sequence");
    }
}
