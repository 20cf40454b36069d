/*
 * tcp: no framing. Each chunk read from the client (at most `buffer` bytes)
 * is one request unit; an error reply is 1000 random bytes, and a corrupted
 * reply has 100 random bytes inserted at a random place, as the original
 * Vaurien did. The session's tunnel path does all of it (frame is NULL).
 */
#include "proto/proto.h"

static const struct opt_decl tcp_opts[] = {
    { "buffer", OPT_INT, "8124",
      "Largest chunk, in bytes, that gets one behavior draw", 1, 1 << 24 },
    { 0 },
};

const struct proto_ops proto_tcp = {
    .name = "tcp",
    .help = "Any TCP service; each chunk the client sends is one request.",
    .opts = tcp_opts,
};
