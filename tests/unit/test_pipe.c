/* The pipe without sockets: a bufferevent pair as the destination, the
 * event loop run until a deadline; what reaches the destination's output
 * is what a client would read. Order, loss, bounds and timing. */
#include "pipe_rig.h"

static size_t out_len(struct rig *r)
{
    return evbuffer_get_length(rig_out(r));
}

/* Runs the loop until the output holds want bytes or secs pass. Returns
 * the time it took. */
static double run_until(struct rig *r, size_t want, double secs)
{
    double t0 = now_s();

    while (out_len(r) < want && now_s() - t0 < secs)
        event_base_loop(r->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    return now_s() - t0;
}

static void emit_bytes(struct rig *r, const unsigned char *bytes, size_t len)
{
    rig_emit(r, bytes, len, len);
}

static void assert_output(struct rig *r, const unsigned char *want, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(r->pair[0]);

    cr_assert_eq(evbuffer_get_length(out), len);
    cr_assert(memcmp(evbuffer_pullup(out, -1), want, len) == 0,
              "the bytes arrive as sent, in order");
}

Test(pipe, stacked_slicers_queue_every_byte_in_order)
{
    struct rig r;
    const char *a[][2] = { { "average_size", "100" }, { NULL, NULL } };
    const char *b[][2] = { { "average_size", "10" }, { NULL, NULL } };

    fill();
    rig_init(&r);
    add_toxic(&r, "slicer", a);
    add_toxic(&r, "slicer", b);
    emit_bytes(&r, data, sizeof(data));
    cr_assert(r.p.nheld <= 1, "one unit is one record, however sliced");
    run_until(&r, sizeof(data), 10);
    assert_output(&r, data, sizeof(data));
    rig_deinit(&r);
}

Test(pipe, a_slicer_paces_its_slices_exactly)
{
    struct rig r;
    const char *a[][2] = { { "average_size", "10" }, { "delay", "2000" },
                           { NULL, NULL } };
    double took;

    fill();
    rig_init(&r);
    add_toxic(&r, "slicer", a);
    emit_bytes(&r, data, 100);
    emit_bytes(&r, data + 100, 100); /* a second unit waits its turn */
    took = run_until(&r, 200, 5);
    assert_output(&r, data, 200);
    /* 20 slices 2 ms apart: 38 ms after the first */
    cr_assert(took >= 0.037 && took < 0.2, "took %f s", took);
    rig_deinit(&r);
}

Test(pipe, a_slicer_writes_a_bounded_number_of_parts_per_pass)
{
    struct rig r;
    const char *a[][2] = { { "average_size", "1" }, { NULL, NULL } };

    fill();
    rig_init(&r);
    add_toxic(&r, "slicer", a);
    emit_bytes(&r, data, 1000);
    cr_assert(out_len(&r) <= PIPE_PARTS_MAX, "%zu parts at once", out_len(&r));
    run_until(&r, 1000, 5);
    assert_output(&r, data, 1000);
    rig_deinit(&r);
}

Test(pipe, an_unrelated_toxic_added_keeps_bandwidth_0_holding)
{
    struct rig r;
    const char *zero[][2] = { { "rate", "0" }, { NULL, NULL } };
    struct toxic *bw;

    fill();
    rig_init(&r);
    bw = add_toxic(&r, "bandwidth", zero);
    emit_bytes(&r, data, 5000);
    run_for(&r, 0.05);
    cr_assert_eq(out_len(&r), 0);
    add_toxic(&r, "noop", NULL);
    add_toxic(&r, "latency", NULL);
    run_for(&r, 0.1);
    cr_assert_eq(out_len(&r), 0, "held while bandwidth 0 is there");
    remove_toxic(&r, bw);
    run_until(&r, 5000, 1);
    assert_output(&r, data, 5000);
    rig_deinit(&r);
}

Test(pipe, an_unrelated_toxic_added_does_not_shorten_a_latency)
{
    struct rig r;
    const char *lat[][2] = { { "latency", "300" }, { NULL, NULL } };
    double t0 = now_s(), took;

    fill();
    rig_init(&r);
    add_toxic(&r, "latency", lat);
    emit_bytes(&r, data, 100);
    run_for(&r, 0.05);
    add_toxic(&r, "noop", NULL);
    run_until(&r, 100, 2);
    took = now_s() - t0;
    cr_assert(took >= 0.299, "released after %f s", took);
    assert_output(&r, data, 100);
    rig_deinit(&r);
}

Test(pipe, a_removed_latency_releases_its_units_at_once_in_order)
{
    struct rig r;
    const char *lat[][2] = { { "latency", "5000" }, { NULL, NULL } };
    struct toxic *t;

    fill();
    rig_init(&r);
    t = add_toxic(&r, "latency", lat);
    emit_bytes(&r, data, 100);
    emit_bytes(&r, data + 100, 100);
    remove_toxic(&r, t);
    cr_assert(run_until(&r, 200, 1) < 0.5);
    assert_output(&r, data, 200);
    rig_deinit(&r);
}

Test(pipe, reposting_the_same_bandwidth_keeps_its_pace)
{
    struct rig r;
    const char *bw[][2] = { { "rate", "100" }, { NULL, NULL } }; /* 100 KB/s */
    double t0, took;

    fill();
    rig_init(&r);
    add_toxic(&r, "bandwidth", bw);
    t0 = now_s();
    emit_bytes(&r, data, 40000);
    while (out_len(&r) < 40000 && now_s() - t0 < 3) {
        run_for(&r, 0.01);
        /* what the API does on an update with the same attributes */
        cr_assert_eq(pipe_set_chain(&r.p, r.tox, r.ntox, TOXIC_DOWNSTREAM), 0);
    }
    took = now_s() - t0;
    assert_output(&r, data, 40000);
    /* 40 KB at 100 KB/s: 0.4 s, less the first 100 ms piece */
    cr_assert(took >= 0.27 && took < 0.5, "took %f s", took);
    rig_deinit(&r);
}

Test(pipe, the_held_ring_is_bounded_and_loses_nothing)
{
    struct rig r;
    const char *lat[][2] = { { "latency", "20" }, { NULL, NULL } };

    fill();
    rig_init(&r);
    add_toxic(&r, "latency", lat);
    for (size_t i = 0; i < 5000; i++) {
        /* units read at different times do not merge */
        clock_gettime(CLOCK_MONOTONIC, &r.p.stamp);
        r.p.stamp.tv_nsec = (long)(i % 1000000) * 1000;
        emit_bytes(&r, data + i, 1);
        cr_assert(r.p.nheld <= PIPE_HELD_MAX);
    }
    r.p.stamp.tv_sec = r.p.stamp.tv_nsec = 0;
    run_until(&r, 5000, 3);
    assert_output(&r, data, 5000);
    rig_deinit(&r);
}

Test(pipe, limit_data_passes_exactly_its_bytes_then_closes)
{
    struct rig r;
    const char *lim[][2] = { { "bytes", "1500" }, { NULL, NULL } };
    struct evbuffer *out;

    fill();
    rig_init(&r);
    add_toxic(&r, "limit_data", lim);
    emit_bytes(&r, data, 1000);
    emit_bytes(&r, data + 1000, 1000);
    out = bufferevent_get_output(r.pair[0]);
    cr_assert_eq(evbuffer_get_length(out), 1500);
    cr_assert(memcmp(evbuffer_pullup(out, -1), data, 1500) == 0);
    cr_assert(r.p.close_on_flush, "closes once written");
    rig_deinit(&r);
}

Test(pipe, a_delay_counts_from_the_read)
{
    struct rig r;
    struct evbuffer *in = evbuffer_new();
    double t0;

    rig_init(&r);
    clock_gettime(CLOCK_MONOTONIC, &r.p.stamp);
    t0 = now_s();
    /* read 50 ms ago: a 100 ms delay has 50 ms left */
    r.p.stamp.tv_nsec -= 50000000L;
    if (r.p.stamp.tv_nsec < 0) {
        r.p.stamp.tv_nsec += 1000000000L;
        r.p.stamp.tv_sec--;
    }
    evbuffer_add(in, "x", 1);
    cr_assert_eq(pipe_emit(&r.p, in, 1, 0.1, BEHAV_PASS), 0);
    r.p.stamp.tv_sec = r.p.stamp.tv_nsec = 0;
    run_until(&r, 1, 1);
    cr_assert(now_s() - t0 >= 0.049 && now_s() - t0 < 0.09, "%f", now_s() - t0);
    evbuffer_free(in);
    rig_deinit(&r);
}

static int dones;

static void on_done(void *ctx)
{
    (void)ctx;
    dones++;
}

Test(pipe, reset_peer_and_slow_close_keep_a_timer_each)
{
    static const struct pipe_owner counting = {
        .close = rig_on_close,
        .reading = rig_on_nothing,
        .drained = rig_on_drained,
        .done = on_done,
    };
    struct rig r;
    const char *reset[][2] = { { "timeout", "200" }, { NULL, NULL } };
    const char *slow[][2] = { { "delay", "50" }, { NULL, NULL } };

    fill();
    rig_init(&r);
    r.p.owner = &counting;
    dones = 0;
    add_toxic(&r, "slow_close", slow);
    add_toxic(&r, "reset_peer", reset);
    emit_bytes(&r, data, 10); /* reset_peer arms its timer */
    pipe_on_eof(&r.p);        /* slow_close arms its own */
    run_for(&r, 0.12);
    cr_assert_eq(dones, 1, "the close was relayed after its delay");
    cr_assert_eq(r.closes, 0);
    run_for(&r, 0.15);
    cr_assert_eq(r.closes, 1, "and the reset still came");
    cr_assert_str_eq(r.why, "reset_peer toxic");
    rig_deinit(&r);
}
