/* The draws of packet_loss (a Gilbert–Elliott chain) and corrupt (gaps
 * between flipped bits), over many draws. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "core/loss.h"

#define DRAWS 200000

struct chain_stats {
    double share;       /* of chunks lost */
    double after_loss;  /* P(lost | previous lost) */
    double after_keep;  /* P(lost | previous kept) */
    double run;         /* mean run of losses, in chunks */
};

static struct chain_stats run_chain(uint64_t seed, double l, double c)
{
    struct chain_stats st = { 0 };
    struct rng r;
    bool lost = false, prev = false;
    long n_lost = 0, ll = 0, nl = 0, kl = 0, nk = 0, runs = 0;

    rng_seed(&r, seed);
    for (int i = 0; i < DRAWS; i++) {
        bool x = loss_next(&r, l, c, &lost, i == 0);
        if (i > 0) {
            if (prev) {
                nl++;
                ll += x;
            } else {
                nk++;
                kl += x;
            }
        }
        if (x && (i == 0 || !prev))
            runs++;
        n_lost += x;
        prev = x;
    }
    st.share = (double)n_lost / DRAWS;
    st.after_loss = nl ? (double)ll / (double)nl : 0;
    st.after_keep = nk ? (double)kl / (double)nk : 0;
    st.run = runs ? (double)n_lost / (double)runs : 0;
    return st;
}

Test(loss, loss_rate_is_the_share_lost_whatever_the_correlation)
{
    const double rates[] = { 0.05, 0.3, 0.7 }, corrs[] = { 0, 0.5, 0.9 };

    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            struct chain_stats st = run_chain(42 + (uint64_t)(i * 3 + j),
                                              rates[i], corrs[j]);
            cr_assert(fabs(st.share - rates[i]) < 0.02,
                      "loss_rate %g correlation %g: %g lost", rates[i],
                      corrs[j], st.share);
        }
}

Test(loss, correlation_is_how_much_a_decision_follows_the_previous_one)
{
    const double corrs[] = { 0, 0.3, 0.8 };

    for (int j = 0; j < 3; j++) {
        struct chain_stats st = run_chain(7, 0.2, corrs[j]);
        /* the lag-1 correlation of a two-state chain */
        cr_assert(fabs((st.after_loss - st.after_keep) - corrs[j]) < 0.02,
                  "correlation %g: P(lost|lost) %g, P(lost|kept) %g",
                  corrs[j], st.after_loss, st.after_keep);
        /* q = L + c (1 - L), p = L (1 - c) */
        cr_assert(fabs(st.after_loss - (0.2 + corrs[j] * 0.8)) < 0.02);
        cr_assert(fabs(st.after_keep - 0.2 * (1 - corrs[j])) < 0.01);
    }
}

Test(loss, losses_come_in_runs_of_one_over_one_minus_q)
{
    struct chain_stats st = run_chain(9, 0.1, 0.6); /* q = 0.64 */

    cr_assert(fabs(st.run - 1 / (1 - 0.64)) < 0.15, "mean run %g", st.run);
    st = run_chain(9, 0.1, 0); /* independent: 1 / 0.9 */
    cr_assert(fabs(st.run - 1 / 0.9) < 0.05, "mean run %g", st.run);
}

Test(loss, rate_0_never_loses_and_rate_1_always_does)
{
    cr_assert_eq(run_chain(1, 0, 0.5).share, 0);
    cr_assert_eq(run_chain(1, 1, 0.5).share, 1);
    cr_assert_eq(run_chain(1, 1, 0).share, 1);
    /* out of bounds is clamped, NaN is 0 */
    cr_assert_eq(run_chain(1, -3, 0).share, 0);
    cr_assert_eq(run_chain(1, 7, 2).share, 1);
    cr_assert_eq(run_chain(1, NAN, 0).share, 0);
}

Test(loss, correlation_1_repeats_the_first_decision)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        double share = run_chain(seed, 0.5, 1).share;
        cr_assert(share == 0 || share == 1, "seed %llu: %g",
                  (unsigned long long)seed, share);
    }
}

Test(loss, the_same_seed_gives_the_same_decisions)
{
    struct rng a, b;
    bool la = false, lb = false;
    int differ = 0;

    rng_seed(&a, 5);
    rng_seed(&b, 5);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(loss_next(&a, 0.3, 0.4, &la, i == 0),
                     loss_next(&b, 0.3, 0.4, &lb, i == 0));
    rng_seed(&b, 6);
    for (int i = 0; i < 1000; i++)
        differ += loss_next(&a, 0.3, 0.4, &la, false) !=
                  loss_next(&b, 0.3, 0.4, &lb, false);
    cr_assert(differ > 100);
}

Test(loss, bit_gaps_flip_bits_at_the_rate)
{
    const double rates[] = { 0.5, 0.01, 0.0001 };

    for (int i = 0; i < 3; i++) {
        struct rng r;
        double sum = 0;
        rng_seed(&r, 3);
        for (int k = 0; k < DRAWS; k++)
            sum += (double)loss_bit_gap(&r, rates[i]);
        /* one flip every mean + 1 bits: the rate */
        double flips_per_bit = 1 / (sum / DRAWS + 1);
        cr_assert(fabs(flips_per_bit - rates[i]) < rates[i] * 0.02,
                  "rate %g: %g", rates[i], flips_per_bit);
    }
}

Test(loss, bit_gap_at_rate_0_is_never_and_at_rate_1_is_every_bit)
{
    struct rng r;

    rng_seed(&r, 1);
    for (int k = 0; k < 1000; k++) {
        cr_assert_eq(loss_bit_gap(&r, 0), UINT64_MAX);
        cr_assert_eq(loss_bit_gap(&r, 1), 0);
        cr_assert(loss_bit_gap(&r, 1e-300) > 1000000);
    }
}
