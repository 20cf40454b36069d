/* The seeded generator. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/rng.h"

Test(rng, the_same_seed_gives_the_same_bytes)
{
    struct rng a, b;
    unsigned char x[1000], y[1000];

    rng_seed(&a, 123);
    rng_seed(&b, 123);
    rng_fill(&a, x, sizeof(x));
    rng_fill(&b, y, sizeof(y));
    cr_assert_eq(memcmp(x, y, sizeof(x)), 0);
    rng_seed(&b, 124);
    rng_fill(&b, y, sizeof(y));
    cr_assert_neq(memcmp(x, y, sizeof(x)), 0);
}

Test(rng, draws_stay_in_range)
{
    struct rng r;

    rng_seed(&r, 1);
    for (int i = 0; i < 100000; i++) {
        double d = rng_double(&r);
        cr_assert(d >= 0 && d < 1);
        cr_assert(rng_below(&r, 7) < 7);
    }
}
