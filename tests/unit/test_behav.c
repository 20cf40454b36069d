/* Behaviors: the verdicts they give. */
#include <criterion/criterion.h>
#include <errno.h>

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
    const char *names[] = { "abort", "bad_cert", "blackout", "delay", "dummy",
                            "error", "hang", "no_close_notify", "tls_alert",
                            "tls_handshake_delay", "transient" };

    cr_assert_eq(behav_count(), 11);
    for (int i = 0; i < 11; i++) {
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
