/* The protocol registry and the garbage of tcp and tunnels. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/proto.h"

static char err[256];

Test(proto, every_protocol_of_the_original_is_known)
{
    const char *names[] = { "http", "memcache", "mysql", "redis", "smtp", "tcp" };

    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        cr_assert_eq(proto_check_name(names[i], err, sizeof(err)), 0, "%s: %s", names[i], err);
    cr_assert_eq(proto_check_name("gopher", err, sizeof(err)), -EINVAL);
    /* by name: grpc (2026) comes before the original's http */
    cr_assert(strstr(err, "Pick one of: grpc, http, ") != NULL, "%s", err);
}

Test(proto, tcp_declares_its_chunk_size)
{
    const struct proto_ops *t = proto_at(proto_find("tcp"));
    union opt_val v[OPT_MAX];

    opt_defaults(t->opts, v);
    cr_assert_eq(v[0].i, 8124);
    cr_assert_null(t->frame);
}

Test(proto, an_error_reply_is_1000_random_bytes_from_the_seed)
{
    struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
    struct rng r1, r2;

    rng_seed(&r1, 5);
    rng_seed(&r2, 5);
    proto_garbage_reply(&r1, a);
    proto_garbage_reply(&r2, b);
    cr_assert_eq(evbuffer_get_length(a), 1000);
    cr_assert_eq(memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), 1000), 0);
    evbuffer_free(a);
    evbuffer_free(b);
}

Test(proto, injection_keeps_the_reply_around_100_inserted_bytes)
{
    const char reply[] = "the backend's own reply, intact on both sides";
    size_t n = sizeof(reply) - 1;
    struct rng r;

    rng_seed(&r, 9);
    for (int round = 0; round < 50; round++) {
        struct evbuffer *u = evbuffer_new();
        unsigned char *p;
        int found = 0;

        evbuffer_add(u, reply, n);
        proto_corrupt(&r, u);
        cr_assert_eq(evbuffer_get_length(u), n + 100);
        p = evbuffer_pullup(u, -1);
        for (size_t at = 0; at <= n && !found; at++)
            found = memcmp(p, reply, at) == 0 && memcmp(p + at + 100, reply + at, n - at) == 0;
        cr_assert(found, "round %d: reply not intact around the junk", round);
        evbuffer_free(u);
    }
}

Test(proto, a_tls_handshake_record_is_recognised_at_the_start)
{
    static const struct {
        const char *bytes;
        size_t len;
        int want;
    } cases[] = {
        { "\x16\x03\x01\x02\x00\x01", 6, 1 }, /* TLS 1.0-1.3 ClientHello */
        { "\x16\x03\x03\x00\x10\x01\x00", 7, 1 },
        { "\x16\x03\x03", 3, -1 },       /* too few bytes yet */
        { "\x16\x03\x00\x01\x85\xa6", 6, 0 }, /* a 790-byte mysql packet */
        { "\x16\x03", 2, -1 },
        { "\x16", 1, -1 },
        { "", 0, -1 },
        { "\x16\x03\x05", 3, 0 },         /* no such version */
        { "*1\r\n$4\r\nPING\r\n", 14, 0 },
        { "GET / HTTP/1.1\r\n", 16, 0 },
        { "\x16\x02\x01", 3, 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct evbuffer *in = evbuffer_new();
        evbuffer_add(in, cases[i].bytes, cases[i].len);
        cr_assert_eq(proto_tls_start(in), cases[i].want, "case %zu", i);
        evbuffer_free(in);
    }
}

Test(proto, every_protocol_but_tcp_names_the_parts_of_a_request)
{
    for (int i = 0; i < proto_count(); i++) {
        const struct proto_ops *ops = proto_at(i);
        cr_assert_eq(ops->parts == NULL, strcmp(ops->name, "tcp") == 0, "%s", ops->name);
    }
}

/* A word counts once what ends it has come: n may cut the last one short. */
Test(proto, words_are_split_on_blanks_up_to_the_line_end)
{
    static const struct {
        const char *in;
        unsigned max, n;
        const char *words[4];
    } cases[] = {
        { "get a  b\tc\r\nnext\r\n", 4, 4, { "get", "a", "b", "c" } },
        { "get a b c d\r\n", 2, 2, { "get", "a" } },
        { "  lead\n", 4, 1, { "lead" } },
        { "cut sho", 4, 1, { "cut" } },
        { "\r\n", 4, 0, { 0 } },
        { "", 4, 0, { 0 } },
    };

    struct proto_str nul[2];

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct proto_str w[4];
        unsigned n = proto_words((const unsigned char *)cases[i].in, strlen(cases[i].in),
                                 " \t\r", w, cases[i].max);
        cr_assert_eq(n, cases[i].n, "%s: %u words", cases[i].in, n);
        for (unsigned k = 0; k < n; k++)
            cr_assert(w[k].n == strlen(cases[i].words[k]) &&
                          memcmp(w[k].p, cases[i].words[k], w[k].n) == 0,
                      "%s: word %u", cases[i].in, k);
    }
    /* a NUL byte is part of a word */
    cr_assert_eq(proto_words((const unsigned char *)"a\0b c\n", 6, " ", nul, 2), 2);
    cr_assert_eq(nul[0].n, 3);
}
