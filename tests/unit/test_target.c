/* Targets (behav/target.c): matchers, triggers and windows, and the
 * schedule's phases (behav/schedule.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "behav/behav.h"
#include "behav/schedule.h"
#include "behav/target.h"
#include "proto/proto.h"

static char err[512];

static struct proto_str str(const char *s)
{
    return (struct proto_str){ s, strlen(s) };
}

/* Whether text matches a request with these parts, from client. */
static bool hit(const char *text, const struct proto_parts *parts,
                const char *client)
{
    union opt_val vals[TARGET_NOPTS];
    struct target_state st = { 0 };
    struct target_req r = { parts, client };
    bool got;

    opt_defaults(target_opts, vals);
    cr_assert_eq(opt_parse(&target_opts[TARGET_MATCH], text,
                           &vals[TARGET_MATCH], err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(target_check(vals, NULL, false, err, sizeof(err)), 0, "%s", err);
    got = target_pass(vals, &st, &r, 1.0);
    target_state_deinit(&st);
    opt_free(target_opts, vals);
    return got;
}

Test(target, matches_redis_command_ignoring_case_and_key_as_a_glob)
{
    struct proto_parts p = { .command = str("set"), .key = str("user:42") };

    cr_assert(hit("command=SET", &p, "127.0.0.1:1"));
    cr_assert(hit("command=S?T,key=user:*", &p, "127.0.0.1:1"));
    cr_assert_not(hit("command=GET", &p, "127.0.0.1:1"));
    cr_assert_not(hit("key=User:*", &p, "127.0.0.1:1")); /* keys keep case */
    cr_assert_not(hit("key=user:4", &p, "127.0.0.1:1"));  /* the whole key */
    cr_assert(hit("key=*42", &p, "127.0.0.1:1"));
}

Test(target, matches_http_method_path_and_headers)
{
    struct proto_parts p = { .method = str("POST"), .path = str("/api/v1/orders?x=1") };

    p.headers[0][0] = str("Content-Type");
    p.headers[0][1] = str("application/json");
    p.headers[1][0] = str("X-Test");
    p.headers[1][1] = str("1");
    p.nheaders = 2;
    cr_assert(hit("method=POST,path=/api/*", &p, "[::1]:5"));
    cr_assert_not(hit("method=post", &p, "[::1]:5"));
    cr_assert(hit("header.x-test=1", &p, "[::1]:5"));
    cr_assert(hit("header=X-Test:1,header.Content-Type=application/*", &p, "[::1]:5"));
    cr_assert_not(hit("header.X-Test=2", &p, "[::1]:5"));
    cr_assert_not(hit("header.X-Other=*", &p, "[::1]:5"));
    cr_assert_not(hit("path=/api", &p, "[::1]:5"));
}

Test(target, matches_mysql_tables_and_statements)
{
    struct proto_parts p = {
        .command = str("QUERY"),
        .statement = str("  update `shop`.`orders_2026` set x = 1 where id in "
                         "(select id from items)"),
    };

    cr_assert(hit("statement=UPDATE", &p, "1.2.3.4:5"));
    cr_assert(hit("statement=update*where*", &p, "1.2.3.4:5"));
    cr_assert_not(hit("statement=SELECT", &p, "1.2.3.4:5"));
    cr_assert(hit("table=orders*", &p, "1.2.3.4:5"));
    cr_assert(hit("table=shop.orders_2026", &p, "1.2.3.4:5"));
    cr_assert(hit("table=items", &p, "1.2.3.4:5"));
    cr_assert_not(hit("table=users", &p, "1.2.3.4:5"));
    p.statement = str("CREATE TABLE IF NOT EXISTS logs (id INT)");
    cr_assert(hit("table=logs", &p, "1.2.3.4:5"));
    cr_assert_not(hit("table=if", &p, "1.2.3.4:5"));
    p.statement = str("SELECT * FROM");
    cr_assert_not(hit("table=*", &p, "1.2.3.4:5"));
}

Test(target, matches_clients_by_address_and_network)
{
    cr_assert(hit("client=10.0.0.0/8", NULL, "10.1.2.3:4000"));
    cr_assert_not(hit("client=10.0.0.0/8", NULL, "11.1.2.3:4000"));
    cr_assert(hit("client=127.0.0.1", NULL, "127.0.0.1:1"));
    cr_assert(hit("client=10.0.0.0/8", NULL, "[::ffff:10.0.0.9]:7"));
    cr_assert(hit("client=::1", NULL, "[::1]:7"));
    cr_assert(hit("client=[fe80::]/10", NULL, "[fe80::1]:7"));
    cr_assert_not(hit("client=::1", NULL, "127.0.0.1:7"));
    cr_assert(hit("client=0.0.0.0/0", NULL, "8.8.8.8:53"));
    cr_assert(hit("client=192.168.1.128/25", NULL, "192.168.1.200:1"));
    cr_assert_not(hit("client=192.168.1.128/25", NULL, "192.168.1.100:1"));
}

Test(target, a_request_without_parts_matches_only_on_the_client)
{
    cr_assert_not(hit("command=GET", NULL, "127.0.0.1:1"));
}

Test(target, refuses_keys_the_protocol_does_not_parse_and_bad_text)
{
    struct target_match m;

    cr_assert_eq(target_match_parse("method=GET", &proto_redis, &m, err, sizeof(err)),
                 -EINVAL);
    cr_assert(strstr(err, "does not apply to protocol redis"), "%s", err);
    cr_assert_eq(target_match_parse("client=::1", &proto_tcp, &m, err, sizeof(err)), 0);
    cr_assert_eq(target_match_parse("key", NULL, &m, err, sizeof(err)), -EINVAL);
    cr_assert_eq(target_match_parse("colour=red", NULL, &m, err, sizeof(err)), -EINVAL);
    cr_assert_eq(target_match_parse("client=10.0.0.0/33", NULL, &m, err, sizeof(err)),
                 -EINVAL);
    cr_assert_eq(target_match_parse("header=X", NULL, &m, err, sizeof(err)), -EINVAL);
    cr_assert_eq(target_match_parse("key.x=1", NULL, &m, err, sizeof(err)), -EINVAL);
    cr_assert_eq(target_match_parse("command=a,command=b,command=c,command=d,command=e,"
                                    "command=f,command=g,command=h,command=i,command=j,"
                                    "command=k,command=l,command=m,command=n,command=o,"
                                    "command=p,command=q", NULL, &m, err, sizeof(err)),
                 -EINVAL);
}

/* The requests (1-based) of n that a target with these options acts on. */
static int acted(const char *after, const char *every, const char *count, int n,
                 int *out)
{
    union opt_val vals[TARGET_NOPTS];
    struct target_state st = { 0 };
    struct target_req r = { NULL, "127.0.0.1:1" };
    int k = 0;

    opt_defaults(target_opts, vals);
    opt_parse(&target_opts[TARGET_AFTER], after, &vals[TARGET_AFTER], err, sizeof(err));
    opt_parse(&target_opts[TARGET_EVERY], every, &vals[TARGET_EVERY], err, sizeof(err));
    opt_parse(&target_opts[TARGET_COUNT], count, &vals[TARGET_COUNT], err, sizeof(err));
    for (int i = 1; i <= n; i++)
        if (target_pass(vals, &st, &r, 1.0))
            out[k++] = i;
    opt_free(target_opts, vals);
    return k;
}

Test(target, every_10_acts_on_requests_10_20_30)
{
    int got[100];

    cr_assert_eq(acted("0", "10", "0", 35, got), 3);
    cr_assert_eq(got[0], 10);
    cr_assert_eq(got[1], 20);
    cr_assert_eq(got[2], 30);
}

Test(target, after_every_and_count_compose)
{
    int got[100];

    /* skip 5, then each 2nd, at most 3 times: 7, 9, 11 */
    cr_assert_eq(acted("5", "2", "3", 40, got), 3);
    cr_assert_eq(got[0], 7);
    cr_assert_eq(got[1], 9);
    cr_assert_eq(got[2], 11);
    cr_assert_eq(acted("0", "0", "0", 10, got), 10);
}

Test(target, a_window_counts_from_when_it_was_set)
{
    union opt_val vals[TARGET_NOPTS];
    struct target_state st = { 0 };
    struct target_req r = { NULL, "127.0.0.1:1" };

    opt_defaults(target_opts, vals);
    opt_parse(&target_opts[TARGET_WINDOW], "5-30", &vals[TARGET_WINDOW], err, sizeof(err));
    cr_assert_eq(target_check(vals, NULL, false, err, sizeof(err)), 0);
    target_state_reset(&st, 100.0);
    cr_assert_not(target_pass(vals, &st, &r, 104.9));
    cr_assert(target_pass(vals, &st, &r, 105.0));
    cr_assert(target_pass(vals, &st, &r, 129.9));
    cr_assert_not(target_pass(vals, &st, &r, 130.0));
    cr_assert_eq(st.seen, 2); /* requests outside it are not counted */
    opt_parse(&target_opts[TARGET_WINDOW], "30", &vals[TARGET_WINDOW], err, sizeof(err));
    cr_assert_eq(target_check(vals, NULL, false, err, sizeof(err)), -EINVAL);
    opt_parse(&target_opts[TARGET_WINDOW], "30-5", &vals[TARGET_WINDOW], err, sizeof(err));
    cr_assert_eq(target_check(vals, NULL, false, err, sizeof(err)), -EINVAL);
    opt_parse(&target_opts[TARGET_WINDOW], "2-", &vals[TARGET_WINDOW], err, sizeof(err));
    cr_assert_eq(target_check(vals, NULL, false, err, sizeof(err)), 0);
    cr_assert(target_pass(vals, &st, &r, 1e6));
    target_state_deinit(&st);
    opt_free(target_opts, vals);
}

Test(target, ttl_gives_the_expiry)
{
    union opt_val vals[TARGET_NOPTS];

    opt_defaults(target_opts, vals);
    cr_assert_float_eq(target_expiry(vals, 50.0), 0, 1e-9);
    vals[TARGET_TTL].f = 2.5;
    cr_assert_float_eq(target_expiry(vals, 50.0), 52.5, 1e-9);
    opt_free(target_opts, vals);
}

Test(schedule, phases_of_requests_then_time_then_for_ever)
{
    struct schedule *s = schedule_create(10.0);
    const char *names[] = { "dummy", "error", "delay", "hang" };
    enum schedule_for kinds[] = { SCHEDULE_REQUESTS, SCHEDULE_REQUESTS,
                                  SCHEDULE_SECONDS, SCHEDULE_EVER };
    double amounts[] = { 3, 2, 5, 0 };

    for (int i = 0; i < 4; i++) {
        behav_inst_init(&s->ph[i].inst, behav_at(behav_find(names[i])));
        s->ph[i].kind = kinds[i];
        s->ph[i].amount = amounts[i];
        s->n++;
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(schedule_next(s, 10.0 + i)->ops, &behav_dummy);
    cr_assert_eq(schedule_next(s, 13.0)->ops, &behav_error);
    cr_assert_eq(schedule_next(s, 14.0)->ops, &behav_error);
    /* the timed phase began with the last error, at 14 */
    cr_assert_eq(schedule_next(s, 18.9)->ops, &behav_delay);
    cr_assert_eq(schedule_next(s, 19.0)->ops, &behav_hang);
    cr_assert_eq(schedule_next(s, 1e6)->ops, &behav_hang);
    schedule_destroy(s);
}

Test(schedule, after_its_last_phase_ends_nothing_acts)
{
    struct schedule *s = schedule_create(0);

    behav_inst_init(&s->ph[0].inst, &behav_error);
    s->ph[0].kind = SCHEDULE_REQUESTS;
    s->ph[0].amount = 1;
    s->n = 1;
    cr_assert_eq(schedule_next(s, 0)->ops, &behav_error);
    cr_assert_null(schedule_next(s, 0));
    schedule_destroy(s);
}

Test(schedule, parses_for)
{
    enum schedule_for k;
    double a;

    cr_assert_eq(schedule_parse_for("100 requests", &k, &a, err, sizeof(err)), 0);
    cr_assert(k == SCHEDULE_REQUESTS && a == 100);
    cr_assert_eq(schedule_parse_for("1 request", &k, &a, err, sizeof(err)), 0);
    cr_assert_eq(schedule_parse_for("250ms", &k, &a, err, sizeof(err)), 0);
    cr_assert(k == SCHEDULE_SECONDS && a > 0.2499 && a < 0.2501);
    cr_assert_eq(schedule_parse_for("2m", &k, &a, err, sizeof(err)), 0);
    cr_assert(a == 120);
    cr_assert_eq(schedule_parse_for("1.5 requests", &k, &a, err, sizeof(err)), -EINVAL);
    cr_assert_eq(schedule_parse_for("0s", &k, &a, err, sizeof(err)), -EINVAL);
    cr_assert_eq(schedule_parse_for("5 parsecs", &k, &a, err, sizeof(err)), -EINVAL);
    cr_assert_eq(schedule_parse_for("", &k, &a, err, sizeof(err)), -EINVAL);
}
