/*
 * proto: the protocol interface.
 *
 *   bytes from a socket ──▶ proto_ops.request_len() ──▶ one request unit
 *   verdict says "error" ──▶ proto_ops.error_reply() ──▶ bytes for the client
 *
 * A protocol module frames bytes and builds replies; it never touches a
 * socket, so it is unit tested and fuzzed on plain buffers.
 */
#ifndef VAURIEN_PROTO_H
#define VAURIEN_PROTO_H

#include <stddef.h>

#include <event2/buffer.h>

#include "core/opt.h"
#include "core/rng.h"

struct proto_ops {
    const char *name;
    const char *help;
    const struct opt_decl *opts; /* terminated by a NULL name */
    /* Length of the request unit at the start of in (nonempty), or 0 if more
     * bytes are needed. */
    size_t (*request_len)(const union opt_val *opts, struct evbuffer *in);
    /* Appends the reply the proxy sends in place of the backend's. */
    void (*error_reply)(const union opt_val *opts, struct rng *r,
                        struct evbuffer *out);
    /* Injects garbage into one unit of the backend's reply, in place. */
    void (*corrupt_reply)(const union opt_val *opts, struct rng *r,
                          struct evbuffer *unit);
};

int proto_count(void);
const struct proto_ops *proto_at(int i);
/* Returns the index of the named protocol, or -1. */
int proto_find(const char *name);
/* Checks a --protocol value. Returns 0, or -EINVAL with a message. */
int proto_check_name(const char *name, char *err, size_t errlen);

extern const struct proto_ops proto_tcp;

#endif
