/* The redis framer: RESP requests and replies split anywhere. */
#include "framer.h"

#include <stdio.h>

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

/* Array headers the server refuses by themselves ("invalid multibulk
 * length"): not redis, so the connection passes and the server says so.
 * Those it takes wait for the rest. */
Test(redis, an_array_header_every_server_refuses_is_not_redis)
{
    static const struct {
        const char *in;
        int error;
    } cases[] = {
        { "*3000000000\r\n", 1 }, { "*2147483648\r\n", 1 },
        { "*05\r\n", 1 },         { "*-0\r\n", 1 },
        { "*1\r\n$05\r\n", 1 },   { "*2147483647\r\n", 0 },
        { "*1048576\r\n", 0 },    { "*2\r\n", 0 },
    };
    struct frames f;

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        frame_every_split(R, NULL, PROTO_UP, cases[i].in, strlen(cases[i].in), NULL, &f);
        cr_assert_eq(f.error, cases[i].error, "%s", cases[i].in);
        cr_assert_eq(f.n, 0, "%s", cases[i].in);
        if (!cases[i].error)
            cr_assert_eq(f.left, strlen(cases[i].in), "%s: held", cases[i].in);
    }
}

/* The server ignores an array of no elements and a blank line, but answers
 * an empty command name ("unknown command ''"). */
Test(redis, only_requests_without_arguments_get_no_reply)
{
    static const struct {
        const char *in;
        size_t len;
        int noreply;
    } cases[] = {
        { "*0\r\n", 4, 1 },        { "*-1\r\n", 5, 1 },     { "*-10\r\n", 6, 1 },
        { "\r\n", 2, 1 },          { " \t\v\f\r\n", 6, 1 }, { "*1\r\n$0\r\n\r\n", 10, 0 },
        { "\"\"\r\n", 4, 0 },      { "PING\r\n", 6, 0 },
    };
    struct frames f;

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        frame_every_split(R, NULL, PROTO_UP, cases[i].in, strlen(cases[i].in), NULL, &f);
        cr_assert_eq(f.error, 0, "%zu", i);
        cr_assert_eq(f.n, 1, "%zu", i);
        cr_assert_eq(f.len[0], cases[i].len, "%zu", i);
        cr_assert_eq((f.flags[0] & PROTO_NOREPLY) != 0, cases[i].noreply, "%zu", i);
    }
}

/* A client that stops after a request's array header (or part of its
 * command name) has its bytes sent on, as a request that passes; one that
 * stops earlier waits, as the server does. Checked for a pause after every
 * byte: the units are those of the request sent whole. */
Test(redis, a_request_the_client_stops_in_before_its_command_is_sent_blind)
{
    static const struct {
        const char *in;
        size_t start, header, named; /* of the request a pause may blind */
        size_t start2, header2, named2;
    } cases[] = {
        { "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 0, 4, 13, 0, 0, 0 },
        { "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", 0, 4, 14, 14, 18, 28 },
        { "*11\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n"
          "$1\r\nf\r\n$1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\n$1\r\nj\r\n", 0, 5, 15, 0, 0, 0 },
        { "PING\r\n", 0, 0, 0, 0, 0, 0 },
        { "*0\r\n", 0, 0, 0, 0, 0, 0 },
    };
    struct frames whole, f;

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const char *in = cases[i].in;
        size_t len = strlen(in);

        frame_every_split(R, NULL, PROTO_UP, in, len, NULL, &whole);
        for (size_t cut = 1; cut < len; cut++) {
            void *st = framer_new(R);
            size_t stalled, want = 0;
            int blind = -1; /* the unit sent blind */

            if (cut >= cases[i].header && cut < cases[i].named) {
                want = cut - cases[i].start;
                blind = 0;
            } else if (cut >= cases[i].header2 && cut < cases[i].named2) {
                want = cut - cases[i].start2;
                blind = 1;
            }
            frame_stalled(R, st, in, len, cut, &f, &stalled);
            framer_free(R, st);
            cr_assert_eq(f.error, 0, "case %zu cut %zu", i, cut);
            cr_assert_eq(f.n, whole.n, "case %zu cut %zu", i, cut);
            cr_assert_eq(stalled, want, "case %zu cut %zu: %zu sent", i, cut, stalled);
            for (int k = 0; k < f.n; k++) {
                cr_assert_eq(f.len[k], whole.len[k], "case %zu cut %zu unit %d", i, cut, k);
                if (!(f.flags[k] & PROTO_NOREPLY)) /* those pass anyway */
                    cr_assert_eq((f.flags[k] & PROTO_NOFAULT) != 0, k == blind,
                                 "case %zu cut %zu unit %d", i, cut, k);
            }
        }
    }
}

/* A request sent blind is still read to its end: a MULTI among them still
 * makes what follows pass, an EXEC ends that, a SUBSCRIBE still hands the
 * connection to the server. */
Test(redis, a_request_sent_blind_still_counts_for_multi_and_subscribe)
{
    static const struct {
        const char *head, *rest;
        unsigned next_flags; /* of "*1\r\n$4\r\nPING\r\n" after it */
        enum proto_mode mode;
    } cases[] = {
        { "*1\r\n", "$5\r\nMULTI\r\n", PROTO_NOFAULT, PROTO_FRAMED },
        { "*1\r\n$4\r\nEX", "EC\r\n", 0, PROTO_FRAMED },
        { "*2\r\n$9\r\nSUBSCR", "IBE\r\n$1\r\nc\r\n", 0, PROTO_RAW },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        void *st = framer_new(R);
        struct evbuffer *in = evbuffer_new();
        struct proto_unit u = { 0 };
        ssize_t n;

        if (i == 1) { /* inside MULTI */
            evbuffer_add(in, "*1\r\n$5\r\nMULTI\r\n", 15);
            cr_assert_eq(R->frame(st, PROTO_UP, in, &u), 15);
            evbuffer_drain(in, 15);
            memset(&u, 0, sizeof(u));
        }
        evbuffer_add(in, cases[i].head, strlen(cases[i].head));
        cr_assert_eq(R->frame(st, PROTO_UP, in, &u), 0);
        n = R->stalled(st, in, &u);
        cr_assert_eq(n, (ssize_t)strlen(cases[i].head), "case %zu", i);
        cr_assert_eq(u.flags, PROTO_HEAD | PROTO_NOFAULT, "case %zu: %x", i, u.flags);
        evbuffer_drain(in, (size_t)n);
        evbuffer_add(in, cases[i].rest, strlen(cases[i].rest));
        n = R->frame(st, PROTO_UP, in, &u);
        cr_assert_eq(n, (ssize_t)strlen(cases[i].rest), "case %zu", i);
        cr_assert(u.flags & PROTO_END);
        evbuffer_drain(in, (size_t)n);
        cr_assert_eq(R->mode(st), cases[i].mode, "case %zu", i);
        if (cases[i].mode == PROTO_FRAMED) {
            memset(&u, 0, sizeof(u));
            evbuffer_add(in, "*1\r\n$4\r\nPING\r\n", 14);
            cr_assert_eq(R->frame(st, PROTO_UP, in, &u), 14);
            cr_assert_eq(u.flags & (PROTO_NOFAULT | PROTO_FORWARD), cases[i].next_flags,
                         "case %zu: %x", i, u.flags);
        }
        evbuffer_free(in);
        framer_free(R, st);
    }
}

/* parts(): the command as sent, the arguments after it, the first one as
 * the key; a bulk string is named only once it is all there. Every prefix
 * of each request names a part of what the whole names. */
Test(redis, names_the_command_arguments_and_key_of_arrays_and_inline_commands)
{
    static const struct {
        const char *in;
        struct parts_want want;
    } cases[] = {
        { "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
          { .command = "SET", .key = "k", .nargs = 2, .args = { "k", "v" } } },
        { "*2\r\n$3\r\nget\r\n$4\r\n\r\n\r\n\r\n",
          { .command = "get", .key = "\r\n\r\n", .nargs = 1, .args = { "\r\n\r\n" } } },
        { "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", { .command = "PING" } },
        { "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$1\r\nv\r\n",
          { .command = "SET", .nargs = 2, .args = { "", "v" } } },
        { "SET  k\tv\r\n", { .command = "SET", .key = "k", .nargs = 2, .args = { "k", "v" } } },
        { " \tping\n", { .command = "ping" } },
        { "GET k\r\nDEL j\r\n", { .command = "GET", .key = "k", .nargs = 1, .args = { "k" } } },
        { "SET k \"a b\"\r\n",
          { .command = "SET", .key = "k", .nargs = 3, .args = { "k", "\"a", "b\"" } } },
        /* the head step of a large SET: its value has not all come */
        { "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\nabc",
          { .command = "SET", .key = "k", .nargs = 1, .args = { "k" } } },
        { "*2\r\n$3\r\nGET\r\n:1\r\n", { .command = "GET" } },
        { "*2\r\n$3\r\nGET\r\n$1\r\nkXY", { .command = "GET" } },
        { "*0\r\n", { 0 } },
        { "*-1\r\n", { 0 } },
        { "*x\r\n", { 0 } },
        { "*2\r\n+OK\r\n", { 0 } },
        { "\r\n", { 0 } },
        { "*1\r\n$99999999999999999999\r\n", { 0 } },
    };
    struct proto_parts pp;
    struct proto_unit u = { 0 };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        parts_every_prefix(R, &u, cases[i].in, strlen(cases[i].in), false, &pp);
        parts_expect(&pp, &cases[i].want, cases[i].in);
    }
}

Test(redis, keeps_sixteen_arguments_of_a_longer_command)
{
    char in[512];
    size_t len = (size_t)sprintf(in, "*21\r\n$4\r\nMSET\r\n");
    struct proto_parts pp;
    struct proto_unit u = { 0 };
    char inl[256] = "DEL";

    for (int i = 0; i < 20; i++)
        len += (size_t)sprintf(in + len, "$2\r\n%02d\r\n", i);
    parts_every_prefix(R, &u, in, len, false, &pp);
    cr_assert(piece_is(pp.command, "MSET"));
    cr_assert_eq(pp.nargs, PROTO_ARGS_MAX);
    cr_assert(piece_is(pp.key, "00"));
    cr_assert(piece_is(pp.args[15], "15"));
    for (int i = 0; i < 20; i++)
        sprintf(inl + strlen(inl), " %02d", i);
    strcat(inl, "\r\n");
    parts_every_prefix(R, &u, inl, strlen(inl), false, &pp);
    cr_assert(piece_is(pp.command, "DEL"));
    cr_assert_eq(pp.nargs, PROTO_ARGS_MAX);
    cr_assert(piece_is(pp.args[15], "15"));
}

/* What the session gives parts(): the bytes of the head step. */
Test(redis, the_head_step_of_a_request_names_its_command)
{
    void *st = framer_new(R);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    struct proto_parts pp = { 0 };
    ssize_t n;

    evbuffer_add(in, "*2\r\n$3\r\nGET\r\n$1000\r\n", 20);
    n = R->frame(st, PROTO_UP, in, &u);
    cr_assert_eq(n, 20);
    R->parts(evbuffer_pullup(in, n), (size_t)n, &u, &pp);
    cr_assert(piece_is(pp.command, "GET"));
    cr_assert_eq(pp.nargs, 0);
    evbuffer_free(in);
    framer_free(R, st);
}
