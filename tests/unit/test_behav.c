/* Behaviors: the verdicts they give. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "behav/behav.h"

static struct behav_inst make(const char *name)
{
    struct behav_inst b;

    behav_inst_init(&b, behav_at(behav_find(name)));
    return b;
}

static void set(struct behav_inst *b, const char *opt, const char *value)
{
    char err[256];
    int i = opt_find(b->ops->opts, opt);

    cr_assert(i >= 0, "no option %s", opt);
    cr_assert_eq(opt_parse(&b->ops->opts[i], value, &b->vals[i], err, sizeof(err)), 0,
                 "%s", err);
}

Test(behav, the_registry_is_sorted_and_complete)
{
    const char *names[] = { "abort", "bad_cert", "bad_length", "blackout",
                            "delay", "dummy", "empty_response", "error",
                            "hang", "malformed_chunk", "no_close_notify",
                            "random_then_close", "slow_body", "tls_alert",
                            "tls_handshake_delay", "transient" };

    cr_assert_eq(behav_count(), 16);
    for (int i = 0; i < 16; i++) {
        cr_assert_str_eq(behav_at(i)->name, names[i]);
        cr_assert_eq(behav_sorted(i), i);
    }
}

Test(behav, dummy_passes_both_ways)
{
    struct behav_inst b = make("dummy");
    struct behav_verdict v;

    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_PASS);
    cr_assert_eq(v.rep, BEHAV_PASS);
}

Test(behav, delay_holds_the_request_by_default_and_the_reply_when_not_before)
{
    struct behav_inst b = make("delay");
    struct behav_verdict v;

    set(&b, "sleep", "0.25");
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_HOLD);
    cr_assert_float_eq(v.req_delay, 0.25, 1e-9);
    cr_assert_eq(v.rep, BEHAV_PASS);
    set(&b, "before", "false");
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_PASS);
    cr_assert_eq(v.rep, BEHAV_HOLD);
    cr_assert_float_eq(v.rep_delay, 0.25, 1e-9);
}

Test(behav, error_passes_warmup_requests_then_answers_in_place)
{
    struct behav_inst b = make("error");
    struct behav_verdict v;

    set(&b, "warmup", "2");
    for (int i = 0; i < 2; i++) {
        behav_decide(&b, NULL, &v);
        cr_assert_eq(v.req, BEHAV_PASS, "request %d", i);
    }
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_ERROR);
    set(&b, "inject", "true");
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_PASS);
    cr_assert_eq(v.rep, BEHAV_CORRUPT);
}

Test(behav, transient_errors_for_agitate_requests_then_recovers)
{
    struct behav_inst b = make("transient");
    struct behav_verdict v;
    enum behav_act seen[6];

    set(&b, "agitate", "3");
    for (int i = 0; i < 6; i++) {
        behav_decide(&b, NULL, &v);
        seen[i] = v.req;
    }
    for (int i = 0; i < 6; i++)
        cr_assert_eq(seen[i], i < 3 ? BEHAV_ERROR : BEHAV_PASS, "request %d", i);
}

Test(behav, blackout_hang_and_abort_end_the_exchange)
{
    struct behav_inst b;
    struct behav_verdict v;

    b = make("blackout");
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_CLOSE);
    b = make("hang");
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_HANG);
    cr_assert_eq(v.rep, BEHAV_DROP);
    b = make("abort");
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_ABORT);
    cr_assert_eq(v.rep, BEHAV_DROP);
}

Test(behav, empty_response_answers_nothing_and_closes)
{
    struct behav_inst b = make("empty_response");
    struct behav_verdict v;

    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_ERROR); /* not forwarded: no reply due */
    cr_assert_not_null(v.answer);
    cr_assert_eq(v.answer_len, 0);
    cr_assert(v.answer_close);
    cr_assert(!v.forward && !v.garbage);
}

Test(behav, malformed_chunk_answers_a_chunk_longer_than_its_size_then_closes)
{
    struct behav_inst b = make("malformed_chunk");
    struct behav_verdict v;
    const char *body;

    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_ERROR);
    cr_assert(v.answer_close);
    cr_assert_eq(strncmp(v.answer, "HTTP/1.1 200 OK\r\n", 17), 0);
    cr_assert_not_null(strstr(v.answer, "Transfer-Encoding: chunked\r\n"));
    body = strstr(v.answer, "\r\n\r\n") + 4;
    /* the second chunk says 5 bytes and has 7 before its CRLF */
    cr_assert_str_eq(body, "6\r\nhello \r\n5\r\nworld!!\r\n");
    cr_assert_eq(v.answer_len, strlen(v.answer));
}

Test(behav, bad_length_announces_more_than_it_sends_then_closes)
{
    struct behav_inst b = make("bad_length");
    struct behav_verdict v;
    const char *cl, *body;

    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_ERROR);
    cr_assert(v.answer_close);
    cl = strstr(v.answer, "Content-Length: ");
    body = strstr(v.answer, "\r\n\r\n");
    cr_assert(cl != NULL && body != NULL && cl < body);
    cr_assert_eq(atoi(cl + 16), 1000);
    cr_assert_lt(strlen(body + 4), 1000);
    cr_assert_eq(v.answer_len, strlen(v.answer));
}

Test(behav, random_then_close_asks_the_session_for_garbage_then_a_close)
{
    struct behav_inst b = make("random_then_close");
    struct behav_verdict v;

    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_ERROR);
    cr_assert(v.garbage && v.answer_close);
    cr_assert_null(v.answer); /* drawn by the session, seeded */
}

Test(behav, slow_body_forwards_the_request_and_paces_the_reply_at_rate)
{
    struct behav_inst b = make("slow_body");
    struct behav_verdict v;
    char err[256];
    union opt_val x = { 0 };

    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req, BEHAV_PASS);
    cr_assert_eq(v.rep, BEHAV_PACE);
    cr_assert_eq(v.rep_rate, 1000);
    set(&b, "rate", "5000");
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.rep_rate, 5000);
    cr_assert_neq(opt_parse(&b.ops->opts[0], "0", &x, err, sizeof(err)), 0);
}

Test(behav, the_http_faults_are_refused_on_other_protocols)
{
    const char *http[] = { "empty_response", "malformed_chunk",
                           "random_then_close", "slow_body", "bad_length" };
    char err[256];

    for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++) {
        const struct behav_ops *ops = behav_at(behav_find(http[i]));
        cr_assert_eq(behav_check_proto(ops, "http", err, sizeof(err)), 0);
        cr_assert_eq(behav_check_proto(ops, "redis", err, sizeof(err)), -EINVAL);
        cr_assert_not_null(strstr(err, "is a behavior of --protocol http"));
        cr_assert_not_null(strstr(err, "speaks redis"));
    }
    cr_assert_eq(behav_check_proto(&behav_error, "tcp", err, sizeof(err)), 0);
}

Test(behav, every_declared_default_parses)
{
    char err[256];

    for (int i = 0; i < behav_count(); i++) {
        const struct opt_decl *d = behav_at(i)->opts;
        for (int o = 0; d[o].name != NULL; o++) {
            union opt_val v = { 0 };
            cr_assert_eq(opt_parse(&d[o], d[o].def, &v, err, sizeof(err)), 0,
                         "%s.%s: %s", behav_at(i)->name, d[o].name, err);
        }
    }
}

Test(behav, delay_without_jitter_is_exactly_sleep_and_draws_nothing)
{
    struct behav_inst b = make("delay");
    struct behav_verdict v;
    struct rng r, fresh;
    struct behav_ctx ctx = { .rng = &r };

    rng_seed(&r, 1);
    rng_seed(&fresh, 1);
    set(&b, "sleep", "0.25");
    behav_decide(&b, &ctx, &v);
    cr_assert_eq(v.req_delay, 0.25);
    cr_assert_eq(r.s, fresh.s, "a seeded run's later draws are unchanged");
    behav_inst_deinit(&b);
}

Test(behav, delay_draws_its_jitter_from_the_connections_generator)
{
    struct behav_inst b = make("delay");
    struct behav_verdict v;
    struct rng r;
    struct behav_ctx ctx = { .rng = &r };
    double sum = 0, sq = 0, lo = 1e9;

    rng_seed(&r, 2);
    set(&b, "sleep", "0.1");
    set(&b, "jitter", "0.05");
    set(&b, "distribution", "normal");
    for (int i = 0; i < 10000; i++) {
        behav_decide(&b, &ctx, &v);
        sum += v.req_delay;
        sq += v.req_delay * v.req_delay;
        lo = v.req_delay < lo ? v.req_delay : lo;
    }
    cr_assert_float_eq(sum / 10000, 0.1, 0.003);
    cr_assert_float_eq(sqrt(sq / 10000 - (sum / 10000) * (sum / 10000)), 0.05,
                       0.003);
    cr_assert_geq(lo, 0);
    behav_decide(&b, NULL, &v);
    cr_assert_eq(v.req_delay, 0.1, "no generator, no jitter");
    behav_inst_deinit(&b);
}

Test(behav, delay_refuses_an_unknown_distribution)
{
    struct behav_inst b = make("delay");
    int i = opt_find(b.ops->opts, "distribution");
    char err[256];

    cr_assert_lt(opt_parse(&b.ops->opts[i], "gauss", &b.vals[i], err,
                           sizeof(err)), 0);
    cr_assert(strstr(err, "'gauss'") != NULL, "%s", err);
    behav_inst_deinit(&b);
}
