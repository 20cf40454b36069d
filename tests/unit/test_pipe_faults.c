/* The pipe's fault toxics without sockets (packet_loss, corrupt,
 * reset_after, limit_time): a bufferevent pair as the destination, whose
 * output is what a client would read. */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "behav/toxic.h"
#include "net/pipe.h"

struct rig {
    struct event_base *base;
    struct bufferevent *pair[2]; /* [0]: the pipe's source and destination */
    struct pipe p;
    struct toxic *tox[8];
    int ntox;
    int closes;
    bool reset;
    const char *why;
};

static void on_close(void *ctx, bool reset, const char *why)
{
    struct rig *r = ctx;

    r->closes++;
    r->reset = reset;
    r->why = why;
    pipe_deinit(&r->p);
}

static void on_nothing(void *ctx)
{
    (void)ctx;
}

static void on_drained(void *ctx, struct pipe *p)
{
    (void)ctx;
    (void)p;
}

static const struct pipe_owner owner = {
    .close = on_close,
    .reading = on_nothing,
    .drained = on_drained,
    .done = on_nothing,
};

/* A rig whose pipe draws from a generator seeded with seed. */
static void rig_init(struct rig *r, uint64_t seed)
{
    memset(r, 0, sizeof(*r));
    r->base = event_base_new();
    cr_assert_not_null(r->base);
    cr_assert_eq(bufferevent_pair_new(r->base, 0, r->pair), 0);
    bufferevent_disable(r->pair[0], EV_WRITE); /* the output keeps it all */
    pipe_init(&r->p, &owner, r, 1, "down", r->pair[0], r->pair[0]);
    rng_seed(&r->p.rng, seed);
}

static void rig_deinit(struct rig *r)
{
    pipe_deinit(&r->p);
    for (int i = 0; i < r->ntox; i++)
        toxic_destroy(r->tox[i]);
    bufferevent_free(r->pair[0]);
    bufferevent_free(r->pair[1]);
    event_base_free(r->base);
}

static struct toxic *add_toxic(struct rig *r, const char *type, const char *name,
                               const char *value)
{
    const struct toxic_type *tt = toxic_type_find(type);
    struct toxic *t;
    char err[256];

    cr_assert_not_null(tt, "no toxic %s", type);
    t = toxic_create(tt, type, TOXIC_DOWNSTREAM, "downstream");
    cr_assert_not_null(t);
    if (name != NULL) {
        int k = opt_find(tt->attrs, name);
        cr_assert(k >= 0, "no attribute %s", name);
        cr_assert_eq(opt_parse(&tt->attrs[k], value, &t->inst.vals[k], err,
                               sizeof(err)), 0, "%s", err);
    }
    r->tox[r->ntox++] = t;
    cr_assert_eq(pipe_set_chain(&r->p, r->tox, r->ntox, TOXIC_DOWNSTREAM), 0);
    return t;
}

static void remove_toxic(struct rig *r, struct toxic *t)
{
    int i = 0;

    while (r->tox[i] != t)
        i++;
    memmove(&r->tox[i], &r->tox[i + 1],
            sizeof(r->tox[0]) * (size_t)(r->ntox - i - 1));
    r->ntox--;
    cr_assert_eq(pipe_set_chain(&r->p, r->tox, r->ntox, TOXIC_DOWNSTREAM), 0);
    toxic_destroy(t);
}

static struct evbuffer *out(struct rig *r)
{
    return bufferevent_get_output(r->pair[0]);
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void run_for(struct rig *r, double secs)
{
    double t0 = now_s();

    while (now_s() - t0 < secs && r->closes == 0)
        event_base_loop(r->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Emits data in units of `unit` bytes. */
static void emit(struct rig *r, const unsigned char *data, size_t len,
                 size_t unit)
{
    struct evbuffer *in = evbuffer_new();

    for (size_t off = 0; off < len && r->p.live; off += unit) {
        size_t n = len - off < unit ? len - off : unit;
        evbuffer_add(in, data + off, n);
        cr_assert_eq(pipe_emit(&r->p, in, n, 0, BEHAV_PASS), 0);
        cr_assert_eq(evbuffer_get_length(in), 0, "every byte was taken");
    }
    evbuffer_free(in);
}

static unsigned char data[65536];

static void fill(void)
{
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
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
        rig_init(&r, 99);
        add_toxic(&r, "corrupt", "rate", "0.001");
        emit(&r, data, sizeof(data), cuts[c]);
        cr_assert_eq(evbuffer_get_length(out(&r)), sizeof(data));
        if (c == 0) {
            memcpy(first, evbuffer_pullup(out(&r), -1), sizeof(first));
            flips = bits_differing(first, data, sizeof(data));
            /* 524,288 bits at 0.001: about 524 */
            cr_assert(flips > 400 && flips < 650, "%zu bits flipped", flips);
        } else {
            cr_assert(memcmp(first, evbuffer_pullup(out(&r), -1),
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
    rig_init(&r, 1);
    add_toxic(&r, "corrupt", "rate", "0");
    emit(&r, data, sizeof(data), 1000);
    cr_assert_eq(evbuffer_get_length(out(&r)), sizeof(data));
    cr_assert(memcmp(evbuffer_pullup(out(&r), -1), data, sizeof(data)) == 0);
    rig_deinit(&r);
}

Test(pipe_faults, packet_loss_drops_whole_units_and_keeps_the_rest_in_order)
{
    struct rig r;
    size_t got, kept = 0;
    const unsigned char *o;

    fill();
    rig_init(&r, 5);
    add_toxic(&r, "packet_loss", "loss_rate", "0.5");
    emit(&r, data, 10000, 100); /* 100 units */
    got = evbuffer_get_length(out(&r));
    cr_assert_eq(got % 100, 0);
    cr_assert(got >= 2500 && got <= 7500, "%zu of 10000 bytes", got);
    /* each unit left is a whole one, in order */
    o = evbuffer_pullup(out(&r), -1);
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
        rig_init(&r, i < 2 ? 5 : 6);
        add_toxic(&r, "packet_loss", "correlation", "0.5");
        emit(&r, data, 10000, 50);
        if (i == 0) {
            na = evbuffer_get_length(out(&r));
            memcpy(a, evbuffer_pullup(out(&r), -1), na);
        } else if (i == 1) {
            cr_assert_eq(evbuffer_get_length(out(&r)), na);
            cr_assert(memcmp(a, evbuffer_pullup(out(&r), -1), na) == 0);
        } else {
            cr_assert(evbuffer_get_length(out(&r)) != na ||
                      memcmp(a, evbuffer_pullup(out(&r), -1), na) != 0);
        }
        rig_deinit(&r);
    }
}

Test(pipe_faults, reset_after_passes_n_bytes_then_resets_once_written)
{
    struct rig r;

    fill();
    rig_init(&r, 1);
    add_toxic(&r, "reset_after", "bytes", "1500");
    emit(&r, data, 3000, 1000);
    cr_assert_eq(evbuffer_get_length(out(&r)), 1500);
    cr_assert(memcmp(evbuffer_pullup(out(&r), -1), data, 1500) == 0);
    cr_assert_eq(r.closes, 0, "not before the bytes are written");
    /* as the socket would write them */
    evbuffer_unfreeze(out(&r), 1);
    cr_assert_eq(evbuffer_drain(out(&r), 1500), 0);
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

    rig_init(&r, 1);
    add_toxic(&r, "limit_time", "time", "100");
    run_for(&r, 1.0);
    cr_assert_eq(r.closes, 1);
    cr_assert(now_s() - t0 >= 0.095 && now_s() - t0 < 0.5, "%g s",
              now_s() - t0);
    cr_assert_str_eq(r.why, "limit_time toxic");
    rig_deinit(&r);

    rig_init(&r, 1);
    t = add_toxic(&r, "limit_time", "time", "100");
    remove_toxic(&r, t);
    run_for(&r, 0.3);
    cr_assert_eq(r.closes, 0);
    rig_deinit(&r);
}
