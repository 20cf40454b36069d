/*
 * Fuzzes one protocol's framer (FUZZ_PROTO, set by the build) in both
 * directions: the input is cut into pieces whose sizes and directions come
 * from its own bytes, each direction's bytes are framed as they arrive, and
 * for about every other request head the protocol's error reply is built,
 * as for a request that draws `error` (a framer may change course after
 * it: http's does for an Upgrade request, so the rest must be fuzzed too),
 * and amended when the request ends. When the client's bytes stop (the
 * next piece is the server's, or the input ends), stalled() gets what the
 * framer holds. parts() reads the whole input (as any protocol's
 * request, with no unit info and with every info bit set) and the bytes of
 * each request's head step: every piece it names must lie within them.
 * Built with FUZZ_LUA_FILE, the protocol is a Lua script's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "behav/behav.h"
#include "proto/proto.h"

#ifdef FUZZ_LUA_FILE
/* A protocol written in Lua (examples/lua), loaded once: its request() and
 * reply() get the fuzzer's bytes through the same framer contract. */
#include <stdio.h>

static const struct proto_ops *lua_ops;
#define FUZZ_OPS lua_ops

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[600];

    (void)argc;
    (void)argv;
    if (proto_lua_load_file(FUZZ_LUA_NAME, FUZZ_LUA_FILE, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz: %s\n", err);
        abort();
    }
    lua_ops = proto_at(proto_find(FUZZ_LUA_NAME));
    return 0;
}
#else
extern const struct proto_ops FUZZ_PROTO;
#define FUZZ_OPS (&FUZZ_PROTO)
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool piece_in(struct proto_str s, const unsigned char *p, size_t n)
{
    uintptr_t at = (uintptr_t)s.p, base = (uintptr_t)p;

    return s.n == 0 || (at >= base && at - base <= n && s.n <= n - (at - base));
}

/* A static name (mysql's and postgres' commands): a short upper-case
 * string. */
static bool piece_static(struct proto_str s)
{
    if (s.n == 0)
        return true;
    if (s.n > 32 || strlen(s.p) != s.n)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!((s.p[i] >= 'A' && s.p[i] <= 'Z') || s.p[i] == '_'))
            return false;
    return true;
}

/* Calls ops->parts() on p[0..n) and aborts unless every piece lies there
 * (or is a static name, for mysql's and postgres' command) and the counts
 * keep their caps. */
static void check_parts(const struct proto_ops *ops, const unsigned char *p,
                        size_t n, const struct proto_unit *u)
{
    struct proto_parts pp;
    bool ok;

    if (ops->parts == NULL)
        return;
    memset(&pp, 0, sizeof(pp));
    ops->parts(p, n, u, &pp);
    ok = pp.nargs <= PROTO_ARGS_MAX && pp.nheaders <= PROTO_HEADERS_MAX &&
         (piece_in(pp.command, p, n) ||
          ((ops == &proto_mysql || ops == &proto_postgres) &&
           piece_static(pp.command))) &&
         piece_in(pp.key, p, n) && piece_in(pp.method, p, n) &&
         piece_in(pp.path, p, n) && piece_in(pp.statement, p, n);
    for (unsigned i = 0; ok && i < PROTO_ARGS_MAX; i++)
        ok = piece_in(pp.args[i], p, n) && (i < pp.nargs || pp.args[i].n == 0);
    for (unsigned i = 0; ok && i < PROTO_HEADERS_MAX; i++)
        ok = piece_in(pp.headers[i][0], p, n) && piece_in(pp.headers[i][1], p, n) &&
             (i < pp.nheaders ||
              (pp.headers[i][0].n == 0 && pp.headers[i][1].n == 0));
    if (!ok)
        abort(); /* a piece outside the request's bytes */
}

/* parts() on the n bytes of a request's head step at offset skip of in,
 * copied to a buffer of their exact size so that a read past them is
 * caught. */
static void check_head_parts(const struct proto_ops *ops, struct evbuffer *in,
                             size_t skip, size_t n, const struct proto_unit *u)
{
    const unsigned char *at = evbuffer_pullup(in, (ev_ssize_t)(skip + n));
    unsigned char *copy = malloc(n);

    if (at != NULL && copy != NULL) {
        memcpy(copy, at + skip, n);
        check_parts(ops, copy, n, u);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct proto_ops *ops = FUZZ_OPS;
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
    check_parts(ops, data, size, &(struct proto_unit){ 0 });
    check_parts(ops, data, size, &(struct proto_unit){ .info = ~0u, .info2 = ~0u });
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
            if (dir == PROTO_UP && !in_unit[dir])
                check_head_parts(ops, in[dir], u[dir].skip, (size_t)n, &u[dir]);
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
