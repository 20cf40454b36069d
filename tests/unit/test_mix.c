/* The behavior mix: parsing and the seeded weighted draw. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "behav/behav.h"
#include "behav/mix.h"

static char err[512];

Test(mix, parses_the_original_example)
{
    struct mix m;

    cr_assert_eq(mix_parse("5:error,10:delay", &m, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(m.n, 2);
    cr_assert_float_eq(m.e[0].pct, 5, 1e-9);
    cr_assert_eq(m.e[0].behav, behav_find("error"));
    cr_assert_float_eq(m.e[1].pct, 10, 1e-9);
    cr_assert_eq(m.e[1].behav, behav_find("delay"));
}

Test(mix, accepts_spaces_and_decimal_percentages)
{
    struct mix m;

    cr_assert_eq(mix_parse("0.5:hang, 99.5:dummy", &m, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(m.n, 2);
    cr_assert_float_eq(m.e[0].pct, 0.5, 1e-9);
    cr_assert_eq(m.e[1].behav, behav_find("dummy"));
}

Test(mix, rejects_a_spec_without_percentage)
{
    struct mix m;

    cr_assert_eq(mix_parse("abc", &m, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "You need to use percentage:name") != NULL, "%s", err);
    cr_assert_eq(mix_parse("x:delay", &m, err, sizeof(err)), -EINVAL);
    cr_assert_eq(mix_parse(":delay", &m, err, sizeof(err)), -EINVAL);
    cr_assert_eq(mix_parse("", &m, err, sizeof(err)), -EINVAL);
}

Test(mix, rejects_an_unknown_behavior_and_lists_the_known_ones)
{
    struct mix m;

    cr_assert_eq(mix_parse("10:nope", &m, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "'nope' is an unknown behavior. Pick one of: abort") != NULL,
              "%s", err);
}

Test(mix, rejects_a_total_above_100)
{
    struct mix m;

    cr_assert_eq(mix_parse("150:delay", &m, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "The behavior total needs to be 100 or less");
    cr_assert_eq(mix_parse("60:delay,41:error", &m, err, sizeof(err)), -EINVAL);
    cr_assert_eq(mix_parse("-5:delay", &m, err, sizeof(err)), -EINVAL);
}

Test(mix, draws_the_remainder_as_dummy)
{
    struct mix m;
    struct rng r;
    int dummy = 0, error = 0;

    mix_parse("30:error", &m, err, sizeof(err));
    rng_seed(&r, 7);
    for (int i = 0; i < 10000; i++) {
        int b = mix_draw(&m, &r);
        if (b == behav_find("dummy"))
            dummy++;
        else if (b == behav_find("error"))
            error++;
    }
    cr_assert_eq(dummy + error, 10000);
    cr_assert(error > 2700 && error < 3300, "error drawn %d times", error);
}

Test(mix, the_same_seed_draws_the_same_sequence)
{
    struct mix m;
    struct rng a, b, c;
    int differ = 0;

    mix_parse("20:error,20:delay,20:hang", &m, err, sizeof(err));
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    rng_seed(&c, 43);
    for (int i = 0; i < 1000; i++) {
        int x = mix_draw(&m, &a);
        cr_assert_eq(x, mix_draw(&m, &b), "draw %d differs", i);
        differ += x != mix_draw(&m, &c);
    }
    cr_assert(differ > 100, "another seed should give another sequence");
}

Test(mix, formats_back_to_a_spec)
{
    struct mix m;
    char buf[128];

    mix_parse("5:error,10:delay", &m, err, sizeof(err));
    cr_assert_str_eq(mix_format(&m, buf, sizeof(buf)), "5:error,10:delay");
}

Test(mix, refuses_a_behavior_of_another_protocol)
{
    struct mix m;

    cr_assert_eq(mix_parse("5:error,10:slow_body", &m, err, sizeof(err)), 0);
    cr_assert_eq(mix_check_proto(&m, "http", err, sizeof(err)), 0);
    cr_assert_eq(mix_check_proto(&m, "tcp", err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "slow_body is a behavior of --protocol http; this "
                          "proxy speaks tcp");
}
