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
    cr_assert(strstr(err, "Pick one of: http") != NULL, "%s", err);
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
