/*
 * rng: splitmix64 (Steele, Lea and Flood; Java's SplittableRandom): 8 bytes
 * of state, so that every connection and direction can have its own.
 */
#include "core/rng.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct rng rng_global;
uint64_t rng_run_seed;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_derive(struct rng *r, uint64_t seed, const char *name, uint64_t a,
                uint64_t b)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a of the name */

    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    /* each part through splitmix64, so that near inputs seed far apart */
    h ^= splitmix64(&seed);
    h ^= splitmix64(&a) * 3;
    h ^= splitmix64(&b) * 5;
    rng_seed(r, h);
}

void rng_fork(struct rng *r, struct rng *out)
{
    rng_seed(out, rng_next(r));
}

void rng_seed(struct rng *r, uint64_t seed)
{
    r->s = splitmix64(&seed); /* near seeds start far apart */
}

uint64_t rng_next(struct rng *r)
{
    return splitmix64(&r->s);
}

double rng_double(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    /* Lemire's rejection keeps the draw unbiased for any n. */
    uint64_t threshold = -n % n;
    uint64_t x;

    do
        x = rng_next(r);
    while (x < threshold);
    return x % n;
}

void rng_fill(struct rng *r, void *buf, size_t len)
{
    unsigned char *p = buf;

    while (len >= 8) {
        uint64_t x = rng_next(r);
        memcpy(p, &x, 8);
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t x = rng_next(r);
        memcpy(p, &x, len);
    }
}

uint64_t rng_os_seed(void)
{
    uint64_t seed;
    struct timespec ts;

    if (getrandom(&seed, sizeof(seed), 0) == sizeof(seed))
        return seed;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
}
