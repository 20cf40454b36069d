/* The redis framer: RESP requests and replies split anywhere. */
#include "framer.h"

#define R (&proto_redis)

static void expect_units(enum proto_dir dir, const char *data, int n, const size_t *lens)
{
    struct frames f;

    frame_every_split(R, NULL, dir, data, strlen(data), NULL, &f);
    cr_assert_eq(f.error, 0, "malformed: %s", data);
    cr_assert_eq(f.n, n, "%d units in %s", f.n, data);
    for (int i = 0; i < n; i++)
        cr_assert_eq(f.len[i], lens[i], "unit %d: %zu", i, f.len[i]);
}

Test(redis, frames_pipelined_array_requests_with_binary_bulks)
{
    const char req[] = "*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$4\r\n\r\n\r\n\r\n*1\r\n$4\r\nPING\r\n";
    size_t lens[] = { 32, 14 };

    expect_units(PROTO_UP, req, 2, lens);
}

Test(redis, frames_inline_commands)
{
    size_t lens[] = { 6, 10, 2 };

    expect_units(PROTO_UP, "PING\r\nGET  key\r\n\r\n", 3, lens);
}

Test(redis, frames_every_resp2_reply_type)
{
    const char rep[] = "+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n"
                       "*2\r\n$1\r\na\r\n*1\r\n:1\r\n*0\r\n";
    size_t lens[] = { 5, 10, 5, 11, 5, 5, 19, 4 };

    expect_units(PROTO_DOWN, rep, 8, lens);
}

Test(redis, frames_resp3_maps_sets_attributes_and_pushes)
{
    const char rep[] = "%1\r\n+a\r\n:1\r\n"          /* map: 12 */
                       "~2\r\n_\r\n,1.5\r\n"         /* set: 13 */
                       "|1\r\n+ttl\r\n:3\r\n#t\r\n"  /* attribute, then the value: 18 */
                       ">2\r\n+invalidate\r\n*0\r\n" /* push: 22 */
                       "=8\r\ntxt:abcd\r\n(123\r\n!3\r\nerr\r\n";
    struct frames f;

    frame_every_split(R, NULL, PROTO_DOWN, rep, strlen(rep), NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 7);
    cr_assert_eq(f.len[0], 12);
    cr_assert_eq(f.len[1], 13);
    cr_assert_eq(f.len[2], 18);
    cr_assert_eq(f.len[3], 21);
    cr_assert(f.flags[3] & PROTO_PUSH);
    cr_assert(!(f.flags[0] & PROTO_PUSH));
}

Test(redis, a_request_is_handed_out_only_once_its_command_is_known)
{
    void *st = framer_new(R);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };

    evbuffer_add(in, "*2\r\n$3\r\nGE", 10);
    cr_assert_eq(R->frame(st, PROTO_UP, in, &u), 0);
    evbuffer_add(in, "T\r\n$1000\r\n", 10);
    ssize_t n = R->frame(st, PROTO_UP, in, &u);
    cr_assert_eq(n, 20, "%zd", n);
    cr_assert(u.flags & PROTO_HEAD);
    cr_assert(!(u.flags & PROTO_END));
    evbuffer_free(in);
    framer_free(R, st);
}

Test(redis, commands_inside_multi_pass_and_exec_is_forwarded)
{
    const char req[] = "*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\nx\r\n*1\r\n$4\r\nEXEC\r\n"
                       "*2\r\n$4\r\nINCR\r\n$1\r\nx\r\n";
    struct frames f;

    frame_every_split(R, NULL, PROTO_UP, req, strlen(req), NULL, &f);
    cr_assert_eq(f.n, 4);
    cr_assert(f.flags[0] & PROTO_NOFAULT);
    cr_assert(f.flags[1] & PROTO_NOFAULT);
    cr_assert(f.flags[2] & PROTO_FORWARD);
    cr_assert(!(f.flags[3] & (PROTO_NOFAULT | PROTO_FORWARD)));
}

Test(redis, subscribe_hands_the_connection_to_the_server)
{
    void *st = framer_new(R);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };

    evbuffer_add(in, "*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n", 26);
    cr_assert_eq(R->frame(st, PROTO_UP, in, &u), 26);
    cr_assert(u.flags & PROTO_END);
    cr_assert_eq(R->mode(st), PROTO_RAW);
    evbuffer_free(in);
    framer_free(R, st);
}

Test(redis, malformed_bytes_are_refused)
{
    static const char *const bad_req[] = { "*2\r\n+OK\r\n", "*x\r\n", "*1\r\n$-1\r\n",
                                           "*1\r\n$3\r\nGETXX" };
    static const char *const bad_rep[] = { "?1\r\n", "$3\r\nabcde\r\n", "*1\r\n?" };
    struct frames f;

    for (size_t i = 0; i < 4; i++) {
        void *st = framer_new(R);
        frame_all(R, st, PROTO_UP, bad_req[i], strlen(bad_req[i]), 0, 64, NULL, &f);
        cr_assert(f.error, "request %zu accepted", i);
        framer_free(R, st);
    }
    for (size_t i = 0; i < 3; i++) {
        void *st = framer_new(R);
        frame_all(R, st, PROTO_DOWN, bad_rep[i], strlen(bad_rep[i]), 0, 64, NULL, &f);
        cr_assert(f.error, "reply %zu accepted", i);
        framer_free(R, st);
    }
}

Test(redis, the_error_reply_is_one_resp_error_line)
{
    void *st = framer_new(R);
    struct evbuffer *out = evbuffer_new();
    struct proto_error e = { .message = "LOADING Redis is\r\nloading" };
    struct proto_unit u = { 0 };
    bool close = true;
    struct rng r;

    rng_seed(&r, 1);
    R->error_reply(st, &e, &u, &r, out, &close);
    cr_assert(!close);
    cr_assert_eq(evbuffer_get_length(out), 28);
    cr_assert_eq(memcmp(evbuffer_pullup(out, -1), "-LOADING Redis is  loading\r\n", 28), 0);
    e.message = "";
    evbuffer_drain(out, 1000);
    R->error_reply(st, &e, &u, &r, out, &close);
    cr_assert_eq(memcmp(evbuffer_pullup(out, -1), "-ERR ", 5), 0);
    evbuffer_free(out);
    framer_free(R, st);
}
