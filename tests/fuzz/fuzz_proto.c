/*
 * Fuzzes one protocol's framer (FUZZ_PROTO, set by the build) in both
 * directions: the input is cut into pieces whose sizes and directions come
 * from its own bytes, each direction's bytes are framed as they arrive, and
 * for about every other request head the protocol's error reply is built,
 * as for a request that draws `error` (a framer may change course after
 * it: http's does for an Upgrade request, so the rest must be fuzzed too),
 * and amended when the request ends. When the client's bytes stop (the
 * next piece is the server's, or the input ends), stalled() gets what the
 * framer holds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "behav/behav.h"
#include "proto/proto.h"

extern const struct proto_ops FUZZ_PROTO;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct proto_ops *ops = &FUZZ_PROTO;
    union opt_val opts[OPT_MAX];
    void *st = calloc(1, ops->state_size);
    struct evbuffer *in[2] = { evbuffer_new(), evbuffer_new() };
    struct proto_unit u[2];
    bool in_unit[2] = { false, false };
    size_t owed[2] = { 0, 0 }; /* units that ended, left at the front (the
                                  session moves passing units together) */
    struct evbuffer *answer = NULL; /* the error reply of the request */
    struct rng r;
    size_t i = 0;

    rng_seed(&r, size);
    opt_defaults(ops->opts, opts);
    if (ops->init != NULL)
        ops->init(st, ops, opts, "backend.example:80");
    memset(u, 0, sizeof(u));
    while (i < size) {
        /* a control byte: direction (bit 0) and piece length (the rest) */
        uint8_t c = data[i++];
        int dir = c & 1;
        size_t len = (size_t)(c >> 1) + 1;
        bool stop;
        if (len > size - i)
            len = size - i;
        evbuffer_add(in[dir], data + i, len);
        i += len;
        stop = i >= size || (data[i] & 1) != dir;
        for (int guard = 0; guard < 10000; guard++) {
            ssize_t n;
            if (evbuffer_get_length(in[dir]) == owed[dir])
                break;
            if (!in_unit[dir]) {
                uint32_t info = u[PROTO_UP].info, info2 = u[PROTO_UP].info2;
                memset(&u[dir], 0, sizeof(u[dir]));
                if (dir == PROTO_DOWN) {
                    u[dir].info = info;
                    u[dir].info2 = info2;
                }
            }
            if (dir == PROTO_UP && ops->edits != NULL && ops->edits(st)) {
                evbuffer_drain(in[dir], owed[dir]); /* as the session does */
                owed[dir] = 0;
            }
            u[dir].skip = owed[dir];
            n = ops->frame(st, (enum proto_dir)dir, in[dir], &u[dir]);
            if (n == 0 && dir == PROTO_UP && stop && ops->stalled != NULL) {
                n = ops->stalled(st, in[dir], &u[dir]);
                if (n > 0 && !in_unit[dir] && !(u[dir].flags & PROTO_NOFAULT))
                    abort(); /* a request sent unnamed must pass */
            }
            if (n <= 0) {
                if (n < 0) {
                    evbuffer_drain(in[dir], evbuffer_get_length(in[dir]));
                    owed[dir] = 0;
                }
                break;
            }
            if ((size_t)n > evbuffer_get_length(in[dir]) - owed[dir])
                abort(); /* handed out more than it was given */
            if (!in_unit[dir] && !(u[dir].flags & PROTO_HEAD))
                abort(); /* a unit must start with its head */
            if (dir == PROTO_UP && !in_unit[dir] && rng_below(&r, 2) == 0) {
                struct proto_error e = { .status = "503,418", .message = "x\r\ny",
                                         .code = 0, .sqlstate = "08004",
                                         .enhanced = "" };
                bool close;
                if (answer != NULL)
                    evbuffer_free(answer); /* after a malformed request */
                answer = evbuffer_new();
                ops->error_reply(st, &e, &u[dir], &r, answer, &close);
            }
            if (dir == PROTO_UP && answer != NULL &&
                (u[dir].flags & PROTO_END)) {
                size_t before = evbuffer_get_length(answer);
                if (ops->error_amend != NULL)
                    ops->error_amend(st, &u[dir], answer);
                if (evbuffer_get_length(answer) != before)
                    abort(); /* amended in place only */
                evbuffer_free(answer);
                answer = NULL;
            }
            in_unit[dir] = !(u[dir].flags & PROTO_END);
            if (!in_unit[dir] && rng_below(&r, 2) == 0) {
                owed[dir] += (size_t)n; /* passed whole: moved later */
            } else {
                evbuffer_drain(in[dir], owed[dir] + (size_t)n);
                owed[dir] = 0;
            }
        }
        if (ops->mode != NULL && ops->mode(st) != PROTO_FRAMED)
            break;
    }
    if (ops->deinit != NULL)
        ops->deinit(st);
    opt_free(ops->opts, opts);
    free(st);
    if (answer != NULL)
        evbuffer_free(answer);
    evbuffer_free(in[0]);
    evbuffer_free(in[1]);
    return 0;
}
