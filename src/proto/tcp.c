/*
 * tcp: no framing. Each chunk read from the client (at most `buffer` bytes)
 * is one request unit; an error reply is 1000 random bytes, and a corrupted
 * reply has 100 random bytes inserted at a random place, as the original
 * Vaurien did.
 */
#include <stdint.h>
#include <string.h>

#include "proto/proto.h"

enum { TCP_BUFFER };

#define TCP_ERROR_BYTES 1000
#define TCP_INJECT_BYTES 100

static const struct opt_decl tcp_opts[] = {
    [TCP_BUFFER] = { "buffer", OPT_INT, "8124",
                     "Largest chunk, in bytes, that gets one behavior draw",
                     1, 1 << 24 },
    { 0 },
};

static size_t tcp_request_len(const union opt_val *opts, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    size_t max = (size_t)opts[TCP_BUFFER].i;

    return len < max ? len : max;
}

static void tcp_error_reply(const union opt_val *opts, struct rng *r,
                            struct evbuffer *out)
{
    unsigned char junk[TCP_ERROR_BYTES];

    (void)opts;
    rng_fill(r, junk, sizeof(junk));
    evbuffer_add(out, junk, sizeof(junk));
}

static void tcp_corrupt_reply(const union opt_val *opts, struct rng *r,
                              struct evbuffer *unit)
{
    unsigned char junk[TCP_INJECT_BYTES];
    size_t len = evbuffer_get_length(unit);
    size_t at = (size_t)rng_below(r, len + 1);
    struct evbuffer *head = evbuffer_new();

    (void)opts;
    rng_fill(r, junk, sizeof(junk));
    if (head == NULL) {
        evbuffer_add(unit, junk, sizeof(junk));
        return;
    }
    /* head + junk + rest, moving chains rather than copying bytes */
    evbuffer_remove_buffer(unit, head, at);
    evbuffer_prepend(unit, junk, sizeof(junk));
    evbuffer_prepend_buffer(unit, head);
    evbuffer_free(head);
}

const struct proto_ops proto_tcp = {
    .name = "tcp",
    .help = "Any TCP service; each chunk the client sends is one request.",
    .opts = tcp_opts,
    .request_len = tcp_request_len,
    .error_reply = tcp_error_reply,
    .corrupt_reply = tcp_corrupt_reply,
};
