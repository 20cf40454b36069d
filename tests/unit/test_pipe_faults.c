/* The pipe's fault toxics without sockets (packet_loss, corrupt,
 * reset_after, limit_time): a bufferevent pair as the destination, whose
 * output is what a client would read. */
#include "pipe_rig.h"

/* A rig whose pipe draws from a generator seeded with seed. */
static void rig_seeded(struct rig *r, uint64_t seed)
{
    rig_init(r);
    rng_seed(&r->p.rng, seed);
}

/* A toxic with one attribute (or none: name NULL). */
static struct toxic *add_one(struct rig *r, const char *type, const char *name,
                             const char *value)
{
    const char *attrs[][2] = { { name, value }, { NULL, NULL } };

    return add_toxic(r, type, attrs);
}

static size_t bits_differing(const unsigned char *a, const unsigned char *b,
                             size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++)
        n += (size_t)__builtin_popcount((unsigned)(a[i] ^ b[i]));
    return n;
}

Test(pipe_faults, corrupt_flips_the_same_bits_however_the_stream_is_cut)
{
    const size_t cuts[] = { sizeof(data), 1000, 7, 1 };
    unsigned char first[sizeof(data)];

    fill();
    for (int c = 0; c < 4; c++) {
        struct rig r;
        size_t flips;
        rig_seeded(&r, 99);
        add_one(&r, "corrupt", "rate", "0.001");
        rig_emit(&r, data, sizeof(data), cuts[c]);
        cr_assert_eq(evbuffer_get_length(rig_out(&r)), sizeof(data));
        if (c == 0) {
            memcpy(first, evbuffer_pullup(rig_out(&r), -1), sizeof(first));
            flips = bits_differing(first, data, sizeof(data));
            /* 524,288 bits at 0.001: about 524 */
            cr_assert(flips > 400 && flips < 650, "%zu bits flipped", flips);
        } else {
            cr_assert(memcmp(first, evbuffer_pullup(rig_out(&r), -1),
                             sizeof(first)) == 0,
                      "cut in units of %zu, other bits flipped", cuts[c]);
        }
        rig_deinit(&r);
    }
}

Test(pipe_faults, corrupt_at_rate_0_passes_the_bytes_intact)
{
    struct rig r;

    fill();
    rig_seeded(&r, 1);
    add_one(&r, "corrupt", "rate", "0");
    rig_emit(&r, data, sizeof(data), 1000);
    cr_assert_eq(evbuffer_get_length(rig_out(&r)), sizeof(data));
    cr_assert(memcmp(evbuffer_pullup(rig_out(&r), -1), data, sizeof(data)) == 0);
    rig_deinit(&r);
}

Test(pipe_faults, packet_loss_drops_whole_units_and_keeps_the_rest_in_order)
{
    struct rig r;
    size_t got, kept = 0;
    const unsigned char *o;

    fill();
    rig_seeded(&r, 5);
    add_one(&r, "packet_loss", "loss_rate", "0.5");
    rig_emit(&r, data, 10000, 100); /* 100 units */
    got = evbuffer_get_length(rig_out(&r));
    cr_assert_eq(got % 100, 0);
    cr_assert(got >= 2500 && got <= 7500, "%zu of 10000 bytes", got);
    /* each unit left is a whole one, in order */
    o = evbuffer_pullup(rig_out(&r), -1);
    for (size_t u = 0; u < 100 && kept < got; u++)
        if (memcmp(o + kept, data + u * 100, 100) == 0)
            kept += 100;
    cr_assert_eq(kept, got);
    rig_deinit(&r);
}

Test(pipe_faults, packet_loss_is_the_same_with_the_same_seed)
{
    unsigned char a[10000];
    size_t na = 0;

    fill();
    for (int i = 0; i < 3; i++) {
        struct rig r;
        rig_seeded(&r, i < 2 ? 5 : 6);
        add_one(&r, "packet_loss", "correlation", "0.5");
        rig_emit(&r, data, 10000, 50);
        if (i == 0) {
            na = evbuffer_get_length(rig_out(&r));
            memcpy(a, evbuffer_pullup(rig_out(&r), -1), na);
        } else if (i == 1) {
            cr_assert_eq(evbuffer_get_length(rig_out(&r)), na);
            cr_assert(memcmp(a, evbuffer_pullup(rig_out(&r), -1), na) == 0);
        } else {
            cr_assert(evbuffer_get_length(rig_out(&r)) != na ||
                      memcmp(a, evbuffer_pullup(rig_out(&r), -1), na) != 0);
        }
        rig_deinit(&r);
    }
}

Test(pipe_faults, reset_after_passes_n_bytes_then_resets_once_written)
{
    struct rig r;

    fill();
    rig_seeded(&r, 1);
    add_one(&r, "reset_after", "bytes", "1500");
    rig_emit(&r, data, 3000, 1000);
    cr_assert_eq(evbuffer_get_length(rig_out(&r)), 1500);
    cr_assert(memcmp(evbuffer_pullup(rig_out(&r), -1), data, 1500) == 0);
    cr_assert_eq(r.closes, 0, "not before the bytes are written");
    /* as the socket would write them */
    evbuffer_unfreeze(rig_out(&r), 1);
    cr_assert_eq(evbuffer_drain(rig_out(&r), 1500), 0);
    pipe_on_drained(&r.p);
    cr_assert_eq(r.closes, 1);
    cr_assert(r.reset, "a reset, not a close");
    cr_assert_str_eq(r.why, "reset_after toxic");
    rig_deinit(&r);
}

Test(pipe_faults, limit_time_closes_after_its_time_and_not_once_removed)
{
    struct rig r;
    struct toxic *t;
    double t0 = now_s();

    rig_seeded(&r, 1);
    add_one(&r, "limit_time", "time", "100");
    run_for(&r, 1.0);
    cr_assert_eq(r.closes, 1);
    cr_assert(now_s() - t0 >= 0.095 && now_s() - t0 < 0.5, "%g s",
              now_s() - t0);
    cr_assert_str_eq(r.why, "limit_time toxic");
    rig_deinit(&r);

    rig_seeded(&r, 1);
    t = add_one(&r, "limit_time", "time", "100");
    remove_toxic(&r, t);
    run_for(&r, 0.3);
    cr_assert_eq(r.closes, 0);
    rig_deinit(&r);
}
