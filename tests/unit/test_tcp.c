/* The tcp protocol module: chunks, garbage replies, injection. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/proto.h"

Test(tcp, a_request_is_each_chunk_up_to_buffer_bytes)
{
    const struct proto_ops *t = proto_at(proto_find("tcp"));
    union opt_val v[OPT_MAX];
    struct evbuffer *in = evbuffer_new();
    char big[20000] = { 0 };

    opt_defaults(t->opts, v);
    evbuffer_add(in, "hello", 5);
    cr_assert_eq(t->request_len(v, in), 5);
    evbuffer_add(in, big, sizeof(big));
    cr_assert_eq(t->request_len(v, in), 8124);
    evbuffer_free(in);
}

Test(tcp, an_error_reply_is_1000_random_bytes_from_the_seed)
{
    const struct proto_ops *t = proto_at(proto_find("tcp"));
    struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
    struct rng r1, r2;

    rng_seed(&r1, 5);
    rng_seed(&r2, 5);
    t->error_reply(NULL, &r1, a);
    t->error_reply(NULL, &r2, b);
    cr_assert_eq(evbuffer_get_length(a), 1000);
    cr_assert_eq(memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), 1000), 0);
    evbuffer_free(a);
    evbuffer_free(b);
}

Test(tcp, injection_keeps_the_reply_around_100_inserted_bytes)
{
    const struct proto_ops *t = proto_at(proto_find("tcp"));
    const char reply[] = "the backend's own reply, intact on both sides";
    size_t n = sizeof(reply) - 1;
    struct rng r;

    rng_seed(&r, 9);
    for (int round = 0; round < 50; round++) {
        struct evbuffer *u = evbuffer_new();
        unsigned char *p;
        size_t head = 0;

        evbuffer_add(u, reply, n);
        t->corrupt_reply(NULL, &r, u);
        cr_assert_eq(evbuffer_get_length(u), n + 100);
        p = evbuffer_pullup(u, -1);
        while (head < n && p[head] == (unsigned char)reply[head])
            head++;
        /* whatever matched first, the rest of the reply follows the junk */
        int found = 0;
        for (size_t at = 0; at <= head && !found; at++)
            found = memcmp(p, reply, at) == 0 &&
                    memcmp(p + at + 100, reply + at, n - at) == 0;
        cr_assert(found, "round %d: reply not intact around the junk", round);
        evbuffer_free(u);
    }
}
