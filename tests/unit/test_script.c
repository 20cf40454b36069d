/* Custom behaviors in Lua: loading, options, verdicts, and the limits of
 * the state (steps, memory, sandbox). Each test runs in its own process,
 * so registrations do not leak between tests. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "behav/behav.h"
#include "core/script.h"
#include "proto/proto.h"

static int load(const char *name, const char *src, char *err, size_t len)
{
    return behav_lua_load(name, src, strlen(src), "", err, len);
}

static void must_load(const char *name, const char *src)
{
    char err[600];

    cr_assert_eq(load(name, src, err, sizeof(err)), 0, "%s", err);
}

/* Runs the behavior name on one redis request; the request's bytes are
 * given. Returns the verdict. */
struct run {
    struct behav_inst b;
    struct evbuffer *in;
    struct rng rng;
    int state;
    uint64_t index;
};

static void run_init(struct run *r, const char *name)
{
    int i = behav_find(name);

    cr_assert(i >= 0, "%s is not registered", name);
    behav_inst_init(&r->b, behav_at(i));
    r->in = evbuffer_new();
    rng_seed(&r->rng, 42);
    r->state = 0;
    r->index = 0;
}

static struct behav_verdict run_one(struct run *r, const char *bytes)
{
    struct behav_ctx ctx = { 0 };
    struct proto_unit u = { .flags = PROTO_HEAD | PROTO_END };
    struct behav_verdict v;

    evbuffer_drain(r->in, evbuffer_get_length(r->in));
    evbuffer_add(r->in, bytes, strlen(bytes));
    ctx.proxy = "p";
    ctx.proto = &proto_redis;
    ctx.unit = &u;
    ctx.in = r->in;
    ctx.len = strlen(bytes);
    ctx.rng = &r->rng;
    ctx.conn = 1;
    ctx.index = ++r->index;
    ctx.client = "127.0.0.1:5";
    ctx.state = &r->state;
    behav_decide(&r->b, &ctx, &v);
    return v;
}

static void run_deinit(struct run *r)
{
    behav_inst_deinit(&r->b);
    evbuffer_free(r->in);
    script_unref(r->state);
}

Test(script, a_loaded_behavior_is_registered_with_its_options)
{
    int i;

    must_load("every", "return { help = 'h', options = {"
                       "{ name = 'n', type = 'int', default = 10, min = 1,"
                       "  max = 100, help = 'how many' },"
                       "{ name = 'on', type = 'bool', default = true }},"
                       "request = function() end }");
    i = behav_find("every");
    cr_assert(i >= 0);
    cr_assert(behav_is_custom(behav_at(i)));
    cr_assert_str_eq(behav_at(i)->help, "h");
    cr_assert_eq(opt_find(behav_at(i)->opts, "n"), 0);
    cr_assert_eq(behav_at(i)->opts[0].type, OPT_INT);
    cr_assert_str_eq(behav_at(i)->opts[0].def, "10");
    cr_assert_str_eq(behav_at(i)->opts[1].def, "true");
    cr_assert(strstr(behav_names(), "every") != NULL);
}

Test(script, bad_scripts_are_refused_with_a_reason)
{
    static const struct {
        const char *src, *says;
    } cases[] = {
        { "return {", "expected" },
        { "return 42", "must return a table" },
        { "return {}", "neither a request nor a reply" },
        { "return { request = 1 }", "must be functions" },
        { "return { options = {{ name = 'x', type = 'date' }}, "
          "request = function() end }", "type 'date'" },
        { "return { options = {{ name = 'X' }}, request = function() end }",
          "lower case" },
        { "return { options = {{ name = 'a' }, { name = 'a' }}, "
          "request = function() end }", "twice" },
        { "return { options = {{ name = 'a', type = 'int', default = 'x' }},"
          " request = function() end }", "default" },
        { "return { options = {{ name = 'a', type = 'int', default = 5, "
          "min = 1, max = 3 }}, request = function() end }", "default" },
        { "error('boom')", "boom" },
        { "while true do end", "instructions" },
        { "\x1bLua", "binary" },
    };
    char err[600];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_lt(load("bad", cases[i].src, err, sizeof(err)), 0, "%s",
                     cases[i].src);
        cr_assert(strstr(err, cases[i].says) != NULL, "%s: %s", cases[i].src,
                  err);
        cr_assert_eq(behav_find("bad"), -1);
    }
    cr_assert_eq(load("delay", "return { request = function() end }", err,
                      sizeof(err)), -EEXIST);
    cr_assert_lt(load("Bad-Name", "return { request = function() end }", err,
                      sizeof(err)), 0);
}

Test(script, each_verdict_helper_gives_the_verdict_it_names)
{
    static const struct {
        const char *lua;
        enum behav_act req, rep;
        double req_delay, rep_delay;
        bool forward;
    } cases[] = {
        { "nil", BEHAV_PASS, BEHAV_PASS, 0, 0, false },
        { "vaurien.pass()", BEHAV_PASS, BEHAV_PASS, 0, 0, false },
        { "vaurien.delay(250)", BEHAV_HOLD, BEHAV_PASS, 0.25, 0, false },
        { "vaurien.delay(100, 'reply')", BEHAV_PASS, BEHAV_HOLD, 0, 0.1,
          false },
        { "vaurien.error{code = 7}", BEHAV_ERROR, BEHAV_PASS, 0, 0, false },
        { "vaurien.answer('+OK\\r\\n')", BEHAV_ERROR, BEHAV_PASS, 0, 0,
          false },
        { "vaurien.replace('+OK\\r\\n')", BEHAV_ERROR, BEHAV_PASS, 0, 0,
          true },
        { "vaurien.drop()", BEHAV_PASS, BEHAV_DROP, 0, 0, false },
        { "vaurien.corrupt()", BEHAV_PASS, BEHAV_CORRUPT, 0, 0, false },
        { "vaurien.close()", BEHAV_CLOSE, BEHAV_PASS, 0, 0, false },
        { "vaurien.reset()", BEHAV_RESET, BEHAV_PASS, 0, 0, false },
        { "vaurien.hang()", BEHAV_HANG, BEHAV_PASS, 0, 0, false },
        { "vaurien.abort()", BEHAV_ABORT, BEHAV_PASS, 0, 0, false },
        { "{ delay = 500, error = {} }", BEHAV_ERROR, BEHAV_PASS, 0.5, 0,
          false },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char src[300], name[32];
        struct run r;
        struct behav_verdict v;
        snprintf(name, sizeof(name), "v%zu", i);
        snprintf(src, sizeof(src),
                 "return { request = function() return %s end }",
                 cases[i].lua);
        must_load(name, src);
        run_init(&r, name);
        v = run_one(&r, "*1\r\n$4\r\nPING\r\n");
        cr_assert_eq(v.req, cases[i].req, "%s: req %s", cases[i].lua,
                     behav_act_name(v.req));
        cr_assert_eq(v.rep, cases[i].rep, "%s: rep %s", cases[i].lua,
                     behav_act_name(v.rep));
        cr_assert_float_eq(v.req_delay, cases[i].req_delay, 1e-9);
        cr_assert_float_eq(v.rep_delay, cases[i].rep_delay, 1e-9);
        cr_assert_eq(v.forward, cases[i].forward, "%s", cases[i].lua);
        run_deinit(&r);
    }
}

Test(script, the_answer_and_the_error_options_reach_the_verdict)
{
    struct run r;
    struct behav_verdict v;

    must_load("ans", "return { request = function(req) if req.index == 1 then"
                     " return vaurien.answer('+hi\\r\\n', {close = true}) end"
                     " return vaurien.error{status = 503, message = 'm',"
                     " code = 1213, sqlstate = '40001'} end }");
    run_init(&r, "ans");
    v = run_one(&r, "PING\r\n");
    cr_assert_eq(v.answer_len, 5);
    cr_assert_eq(memcmp(v.answer, "+hi\r\n", 5), 0);
    cr_assert(v.answer_close);
    v = run_one(&r, "PING\r\n");
    cr_assert_null(v.answer);
    cr_assert_not_null(v.err);
    cr_assert_str_eq(v.err[BEHAV_ERR_STATUS].s, "503");
    cr_assert_str_eq(v.err[BEHAV_ERR_MESSAGE].s, "m");
    cr_assert_eq(v.err[BEHAV_ERR_CODE].i, 1213);
    cr_assert_str_eq(v.err[BEHAV_ERR_SQLSTATE].s, "40001");
    run_deinit(&r);
}

Test(script, a_bad_verdict_or_an_error_means_pass)
{
    static const char *const bodies[] = {
        "return 'yes'", "return { nope = true }", "error('oops')",
        "return { delay = -1 }", "return vaurien.error{ colour = 1 }",
        "local t = {} while true do t[#t + 1] = ('x'):rep(1000) end",
        "while true do end",
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char src[300], name[32];
        struct run r;
        struct behav_verdict v;
        snprintf(name, sizeof(name), "e%zu", i);
        snprintf(src, sizeof(src), "return { request = function(req) %s end }",
                 bodies[i]);
        must_load(name, src);
        run_init(&r, name);
        v = run_one(&r, "PING\r\n");
        cr_assert_eq(v.req, BEHAV_PASS, "%s", bodies[i]);
        cr_assert_eq(v.rep, BEHAV_PASS, "%s", bodies[i]);
        run_deinit(&r);
    }
    /* the state is still usable, within its cap */
    cr_assert_leq(script_memory(), SCRIPT_MEMORY);
    must_load("after", "return { request = function() return vaurien.drop() end }");
    {
        struct run r;
        run_init(&r, "after");
        cr_assert_eq(run_one(&r, "PING\r\n").rep, BEHAV_DROP);
        run_deinit(&r);
    }
}

Test(script, the_sandbox_has_no_files_no_processes_no_loading)
{
    struct run r;

    must_load("sand", "return { request = function()"
                      " if io or require or dofile or loadfile or os.execute"
                      "  or os.getenv or os.remove or package then"
                      "  return vaurien.drop() end"
                      " if load(string.dump(function() end), 'x', 'b') then"
                      "  return vaurien.drop() end"
                      " if load('return 1')() ~= 1 then return vaurien.drop() end"
                      " return vaurien.corrupt() end }");
    run_init(&r, "sand");
    cr_assert_eq(run_one(&r, "PING\r\n").rep, BEHAV_CORRUPT);
    run_deinit(&r);
}

Test(script, draws_come_from_the_connection_generator)
{
    struct run a, b;
    char seq[2][200] = { "", "" };

    must_load("dice", "return { request = function(req, o, conn)"
                      " conn.s = (conn.s or '') .. math.random(6) .. vaurien.random(100) .. ','"
                      " if req.index == 20 then return vaurien.answer(conn.s) end"
                      " end }");
    for (int k = 0; k < 2; k++) {
        struct run *r = k == 0 ? &a : &b;
        struct behav_verdict v;
        run_init(r, "dice");
        for (int i = 0; i < 20; i++)
            v = run_one(r, "PING\r\n");
        cr_assert_not_null(v.answer);
        snprintf(seq[k], sizeof(seq[k]), "%.*s", (int)v.answer_len, v.answer);
        run_deinit(r);
    }
    cr_assert_str_eq(seq[0], seq[1]);
    cr_assert_gt(strlen(seq[0]), 40);
}

Test(script, state_is_kept_per_connection_and_per_proxy)
{
    struct run a, b;
    struct behav_verdict v;

    must_load("count", "return { request = function(req, o, conn, proxy)"
                       " conn.n = (conn.n or 0) + 1"
                       " proxy.n = (proxy.n or 0) + 1"
                       " return vaurien.answer(conn.n .. '/' .. proxy.n) end }");
    run_init(&a, "count");
    run_init(&b, "count");
    run_one(&a, "PING\r\n");
    run_one(&a, "PING\r\n");
    v = run_one(&b, "PING\r\n");
    cr_assert_eq(memcmp(v.answer, "1/3", 3), 0, "%.*s", (int)v.answer_len,
                 v.answer);
    run_deinit(&a);
    run_deinit(&b);
}

Test(script, the_request_shows_its_bytes_and_place)
{
    struct run r;
    struct behav_verdict v;

    must_load("show", "return { request = function(req)"
                      " return vaurien.answer(table.concat({req.proto,"
                      " req.index, req.conn, req.client, req.proxy, #req.bytes}, ' '))"
                      " end }");
    run_init(&r, "show");
    v = run_one(&r, "*1\r\n$4\r\nPING\r\n");
    cr_assert_eq(memcmp(v.answer, "redis 1 1 127.0.0.1:5 p 14",
                        v.answer_len), 0, "%.*s", (int)v.answer_len, v.answer);
    run_deinit(&r);
}

Test(script, a_reload_swaps_the_hooks_and_keeps_options_or_is_refused)
{
    char err[600];
    struct run r;

    must_load("sw", "return { options = {{ name = 'n', type = 'int', default = 1 }},"
                    " request = function() return vaurien.drop() end }");
    run_init(&r, "sw");
    cr_assert_eq(run_one(&r, "PING\r\n").rep, BEHAV_DROP);
    /* other options: refused, the old script stays */
    cr_assert_lt(load("sw", "return { options = {{ name = 'm', type = 'int' }},"
                            " request = function() return vaurien.corrupt() end }",
                      err, sizeof(err)), 0);
    cr_assert(strstr(err, "other options") != NULL, "%s", err);
    cr_assert_eq(run_one(&r, "PING\r\n").rep, BEHAV_DROP);
    /* a script that does not load: the old one stays */
    cr_assert_lt(load("sw", "return {", err, sizeof(err)), 0);
    cr_assert_eq(run_one(&r, "PING\r\n").rep, BEHAV_DROP);
    /* same options, new default: swapped for the next request */
    must_load("sw", "return { options = {{ name = 'n', type = 'int', default = 5 }},"
                    " request = function() return vaurien.corrupt() end }");
    cr_assert_eq(run_one(&r, "PING\r\n").rep, BEHAV_CORRUPT);
    cr_assert_str_eq(behav_at(behav_find("sw"))->opts[0].def, "5");
    run_deinit(&r);
}

Test(script, protected_calls_cannot_outlive_the_instruction_budget)
{
    struct run r;

    must_load("esc", "local function f() for i = 1, 100000 do end end "
                     "return { request = function() "
                     " while true do pcall(f) xpcall(f, function() while true do end end) end "
                     "end }");
    run_init(&r, "esc");
    cr_assert_eq(run_one(&r, "PING\r\n").req, BEHAV_PASS); /* it returned */
    run_deinit(&r);
}

Test(script, a_verdict_is_what_its_table_holds_not_what_metamethods_say)
{
    struct run r;
    struct behav_verdict v;

    must_load("meta", "return { request = function() return setmetatable({},"
                      " {__index = function(t, k) if k == 'answer' then"
                      "  return ('x'):rep(4096) end end}) end }");
    run_init(&r, "meta");
    v = run_one(&r, "PING\r\n");
    cr_assert_eq(v.req, BEHAV_PASS);
    cr_assert_null(v.answer);
    run_deinit(&r);
}

Test(script, random_takes_what_math_random_takes)
{
    struct run r;
    struct behav_verdict v;

    must_load("rnd", "return { request = function() "
                     " local a, b, c = vaurien.random(0), vaurien.random(3), vaurien.random(-2, 2)"
                     " local f = vaurien.random()"
                     " if math.type(a) == 'integer' and b >= 1 and b <= 3 and c >= -2"
                     "   and c <= 2 and f >= 0 and f < 1 then return vaurien.drop() end"
                     " end }");
    run_init(&r, "rnd");
    for (int i = 0; i < 50; i++) {
        v = run_one(&r, "PING\r\n");
        cr_assert_eq(v.rep, BEHAV_DROP);
    }
    run_deinit(&r);
}

Test(script, a_protocol_error_reply_that_is_not_a_string_gives_garbage)
{
    static const char src[] =
        "return { request = function(b) return #b end,"
        " reply = function(b) return #b end,"
        " error_reply = function(req, opts) return 42 end }";
    char err[600];
    const struct proto_ops *ops;
    struct proto_error pe = { .status = "", .message = "", .sqlstate = "",
                              .enhanced = "" };
    struct proto_unit u = { 0 };
    struct evbuffer *out = evbuffer_new();
    struct rng r;
    void *st;
    bool close = false;

    cr_assert_eq(proto_lua_load("num", src, strlen(src), "", err, sizeof(err)), 0,
                 "%s", err);
    ops = proto_at(proto_find("num"));
    st = calloc(1, ops->state_size);
    ops->init(st, ops, NULL, "b:1");
    rng_seed(&r, 1);
    ops->error_reply(st, &pe, &u, &r, out, &close);
    cr_assert_eq(evbuffer_get_length(out), 1000); /* tcp's garbage */
    ops->deinit(st);
    free(st);
    evbuffer_free(out);
}

/* A Lua protocol's state, for its framing tests. */
static void *proto_start(const char *name, const char *src,
                         const struct proto_ops **ops)
{
    char err[600];
    void *st;

    cr_assert_eq(proto_lua_load(name, src, strlen(src), "", err, sizeof(err)), 0,
                 "%s", err);
    *ops = proto_at(proto_find(name));
    st = calloc(1, (*ops)->state_size);
    (*ops)->init(st, *ops, NULL, "b:1");
    return st;
}

Test(script, a_protocol_unit_longer_than_what_arrived_streams_through)
{
    /* 2-byte big-endian length, then the body (dns.lua's framing) */
    const struct proto_ops *ops;
    void *st = proto_start("lp", "local function n(b) if #b < 2 then return nil end"
                                 " return 2 + string.unpack('>I2', b) end "
                                 "return { request = n, reply = n }", &ops);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };

    evbuffer_add(in, "\x00\x0a" "abc", 5);          /* 12 bytes, 5 here */
    cr_assert_eq(ops->frame(st, PROTO_UP, in, &u), 5);
    cr_assert_eq(u.flags & (PROTO_HEAD | PROTO_END), PROTO_HEAD);
    evbuffer_drain(in, 5);
    evbuffer_add(in, "defghij" "\x00\x01", 9);     /* its last 7, the next */
    memset(&u, 0, sizeof(u));
    cr_assert_eq(ops->frame(st, PROTO_UP, in, &u), 7);
    cr_assert_eq(u.flags & (PROTO_HEAD | PROTO_END), PROTO_END);
    evbuffer_drain(in, 7);
    memset(&u, 0, sizeof(u));
    cr_assert_eq(ops->frame(st, PROTO_UP, in, &u), 2); /* 3 long: its head */
    cr_assert_eq(u.flags & (PROTO_HEAD | PROTO_END), PROTO_HEAD);
    evbuffer_drain(in, 2);
    evbuffer_add(in, "\x00", 1);
    memset(&u, 0, sizeof(u));
    cr_assert_eq(ops->frame(st, PROTO_UP, in, &u), 1);
    evbuffer_drain(in, 1);
    evbuffer_add(in, "\x00", 1); /* one byte of a length: more needed */
    memset(&u, 0, sizeof(u));
    cr_assert_eq(ops->frame(st, PROTO_UP, in, &u), 0);
    ops->deinit(st);
    free(st);
    evbuffer_free(in);
}

Test(script, a_protocol_says_noreply_push_need_more_and_not_mine)
{
    const struct proto_ops *ops;
    void *st = proto_start("fl", "return { server_first = true,"
                                 " request = function(b)"
                                 "  if b:sub(1, 1) == 'q' then return 1, 'noreply' end"
                                 "  if b:sub(1, 1) == 'x' then return false end"
                                 "  if b:sub(1, 1) == 'w' then return nil end"
                                 "  return 1 end,"
                                 " reply = function(b) return 1, 'push' end }", &ops);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    static char big[70000];

    cr_assert(ops->server_first);
    evbuffer_add(in, "q", 1);
    cr_assert_eq(ops->frame(st, PROTO_UP, in, &u), 1);
    cr_assert(u.flags & PROTO_NOREPLY);
    memset(&u, 0, sizeof(u));
    cr_assert_eq(ops->frame(st, PROTO_DOWN, in, &u), 1);
    cr_assert(u.flags & PROTO_PUSH);
    evbuffer_drain(in, 1);
    memset(&u, 0, sizeof(u));
    evbuffer_add(in, "x", 1);
    cr_assert_lt(ops->frame(st, PROTO_UP, in, &u), 0);
    evbuffer_drain(in, 1);
    /* "need more" past what a framer is shown: not this protocol */
    memset(big, 'w', sizeof(big));
    evbuffer_add(in, "w", 1);
    cr_assert_eq(ops->frame(st, PROTO_UP, in, &u), 0);
    evbuffer_add(in, big, sizeof(big));
    cr_assert_lt(ops->frame(st, PROTO_UP, in, &u), 0);
    ops->deinit(st);
    free(st);
    evbuffer_free(in);
}
