/*
 * A harness for protocol framers: feeds bytes in pieces of any size and
 * collects the units (length and flags) the framer hands out, so a test can
 * check that every split of the input gives the same frames; and calls a
 * protocol's parts() on every prefix of a request.
 */
#ifndef VAURIEN_TEST_FRAMER_H
#define VAURIEN_TEST_FRAMER_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/proto.h"

#define FRAMES_MAX 64

struct frames {
    int n;              /* complete units */
    size_t len[FRAMES_MAX];
    unsigned flags[FRAMES_MAX];
    size_t partial;     /* bytes of a unit handed out but not ended */
    int error;          /* the framer said malformed */
    size_t left;        /* bytes never handed out */
};

/* Per-direction info of the requests replies answer, in order. */
struct infos {
    int n;
    uint32_t info[FRAMES_MAX];
    uint32_t info2[FRAMES_MAX];
};

/* Feeds data[0..len) in pieces: cut (0 < cut < len) splits it in two; when
 * cut is 0, piece bytes at a time. Frames the other direction first with
 * prep (if any), so a stateful framer sees the conversation in order. */
static inline void frame_pieces(const struct proto_ops *ops, void *st,
                                enum proto_dir dir, const void *data,
                                size_t len, size_t cut, size_t piece,
                                const struct infos *req, struct frames *out,
                                size_t *stalled_at)
{
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u;
    const unsigned char *p = data;
    size_t fed = 0, owed = 0; /* owed: units left at the front, as the
                                 session leaves those that pass */
    int in_unit = 0, r = 0;

    memset(out, 0, sizeof(*out));
    while (fed < len || evbuffer_get_length(in) > 0) {
        size_t take = cut ? (fed < cut ? cut : len - fed) : piece;
        if (take > len - fed)
            take = len - fed;
        evbuffer_add(in, p + fed, take);
        fed += take;
        for (;;) {
            ssize_t n;
            if (!in_unit) {
                memset(&u, 0, sizeof(u));
                if (req != NULL && r < req->n) {
                    u.info = req->info[r];
                    u.info2 = req->info2[r];
                }
            }
            if (evbuffer_get_length(in) == owed)
                break;
            if (ops->edits != NULL && ops->edits(st)) {
                evbuffer_drain(in, owed); /* as the session settles */
                owed = 0;
            }
            u.skip = owed;
            n = ops->frame(st, dir, in, &u);
            /* the client pauses after the first part: stalled() may hand
             * out what the framer holds */
            if (n == 0 && stalled_at != NULL && fed <= cut &&
                ops->stalled != NULL) {
                n = ops->stalled(st, in, &u);
                if (n > 0)
                    *stalled_at += (size_t)n;
            }
            if (n < 0) {
                out->error = 1;
                out->left = evbuffer_get_length(in) - owed;
                evbuffer_free(in);
                return;
            }
            if (n == 0)
                break;
            cr_assert(in_unit || (u.flags & PROTO_HEAD), "first step without HEAD");
            in_unit = 1;
            out->partial += (size_t)n;
            if (u.flags & PROTO_END) {
                cr_assert(out->n < FRAMES_MAX);
                out->len[out->n] = out->partial;
                out->flags[out->n] = u.flags;
                out->n++;
                out->partial = 0;
                in_unit = 0;
                if (!(u.flags & (PROTO_PUSH | PROTO_INTERIM)))
                    r++;
            }
            if (!in_unit && out->n % 2 == 1) {
                owed += (size_t)n; /* every other unit stays at the front */
            } else {
                evbuffer_drain(in, owed + (size_t)n);
                owed = 0;
            }
        }
        if (fed == len)
            break;
    }
    out->left = evbuffer_get_length(in) - owed;
    evbuffer_free(in);
}

static inline void frame_all(const struct proto_ops *ops, void *st,
                             enum proto_dir dir, const void *data, size_t len,
                             size_t cut, size_t piece, const struct infos *req,
                             struct frames *out)
{
    frame_pieces(ops, st, dir, data, len, cut, piece, req, out, NULL);
}

static inline void *framer_new(const struct proto_ops *ops)
{
    union opt_val v[OPT_MAX];
    void *st = calloc(1, ops->state_size);

    opt_defaults(ops->opts, v);
    if (ops->init != NULL)
        ops->init(st, ops, v, "backend.example:8080");
    opt_free(ops->opts, v);
    return st;
}

static inline void framer_free(const struct proto_ops *ops, void *st)
{
    if (ops->deinit != NULL)
        ops->deinit(st);
    free(st);
}

/* Frames data whole, then split at every byte boundary, then one byte at a
 * time, each with a fresh framer (set up by setup, if any), and checks that
 * all give the same frames. Returns the whole-input frames in out. */
static inline void frame_every_split(const struct proto_ops *ops,
                                     void (*setup)(void *st),
                                     enum proto_dir dir, const void *data,
                                     size_t len, const struct infos *req,
                                     struct frames *out)
{
    void *st = framer_new(ops);

    if (setup != NULL)
        setup(st);
    frame_all(ops, st, dir, data, len, 0, len ? len : 1, req, out);
    framer_free(ops, st);
    for (size_t cut = 0; cut < len; cut++) {
        struct frames f;
        st = framer_new(ops);
        if (setup != NULL)
            setup(st);
        if (cut == 0)
            frame_all(ops, st, dir, data, len, 0, 1, req, &f);
        else
            frame_all(ops, st, dir, data, len, cut, 0, req, &f);
        framer_free(ops, st);
        cr_assert_eq(f.n, out->n, "cut %zu: %d units, whole: %d", cut, f.n, out->n);
        cr_assert_eq(f.error, out->error, "cut %zu: error %d", cut, f.error);
        for (int i = 0; i < f.n; i++) {
            cr_assert_eq(f.len[i], out->len[i], "cut %zu unit %d: %zu bytes, whole: %zu",
                         cut, i, f.len[i], out->len[i]);
            cr_assert_eq(f.flags[i] & ~PROTO_HEAD, out->flags[i] & ~PROTO_HEAD,
                         "cut %zu unit %d: flags %x, whole: %x", cut, i, f.flags[i],
                         out->flags[i]);
        }
        if (!out->error)
            cr_assert_eq(f.partial + f.left, out->partial + out->left, "cut %zu", cut);
    }
}

/* Frames requests as a session does when the client pauses after cut
 * bytes: those are framed, and then handed to ops->stalled() each time
 * frame() waits; the rest comes after. out gets the frames, as
 * frame_all's; *stalled_at says how many bytes stalled() handed out (0:
 * none). */
static inline void frame_stalled(const struct proto_ops *ops, void *st,
                                 const void *data, size_t len, size_t cut,
                                 struct frames *out, size_t *stalled_at)
{
    *stalled_at = 0;
    frame_pieces(ops, st, PROTO_UP, data, len, cut, 0, NULL, out, stalled_at);
}

/* Whether piece s is absent or lies within p[0..n). */
static inline bool piece_in(struct proto_str s, const void *p, size_t n)
{
    uintptr_t at = (uintptr_t)s.p, base = (uintptr_t)p;

    return s.n == 0 || (at >= base && at - base <= n && s.n <= n - (at - base));
}

/* Whether piece s says text ("" for an absent piece). */
static inline bool piece_is(struct proto_str s, const char *text)
{
    return s.n == strlen(text) && (s.n == 0 || memcmp(s.p, text, s.n) == 0);
}

/* Checks an answer of ops->parts() on p[0..n): every piece lies there
 * (the command may be a static name, when static_command), the counts are
 * within their caps, and the pieces past them are absent. */
static inline void parts_within(const struct proto_parts *a, const void *p,
                                size_t n, bool static_command)
{
    cr_assert(a->nargs <= PROTO_ARGS_MAX, "n %zu: %u args", n, a->nargs);
    cr_assert(a->nheaders <= PROTO_HEADERS_MAX, "n %zu: %u headers", n, a->nheaders);
    cr_assert(static_command || piece_in(a->command, p, n), "n %zu: command", n);
    cr_assert(piece_in(a->key, p, n), "n %zu: key", n);
    cr_assert(piece_in(a->method, p, n), "n %zu: method", n);
    cr_assert(piece_in(a->path, p, n), "n %zu: path", n);
    cr_assert(piece_in(a->statement, p, n), "n %zu: statement", n);
    for (unsigned i = 0; i < PROTO_ARGS_MAX; i++) {
        cr_assert(piece_in(a->args[i], p, n), "n %zu: arg %u", n, i);
        cr_assert(i < a->nargs || a->args[i].n == 0, "n %zu: arg %u past nargs", n, i);
    }
    for (unsigned i = 0; i < PROTO_HEADERS_MAX; i++)
        for (int j = 0; j < 2; j++) {
            cr_assert(piece_in(a->headers[i][j], p, n), "n %zu: header %u", n, i);
            cr_assert(i < a->nheaders || a->headers[i][j].n == 0,
                      "n %zu: header %u past nheaders", n, i);
        }
}

/* Whether piece a, of an answer on pa, is absent or the piece w of the
 * answer on pw: at the same offset (or the same static string), as long,
 * or no longer when shorter is allowed. */
static inline bool piece_same(struct proto_str a, const void *pa,
                              struct proto_str w, const void *pw, bool shorter)
{
    if (a.n == 0)
        return true;
    if (w.n < a.n || (!shorter && w.n != a.n))
        return false;
    if (a.p == w.p)
        return true; /* a static name */
    return (uintptr_t)a.p - (uintptr_t)pa == (uintptr_t)w.p - (uintptr_t)pw;
}

/* Calls ops->parts() (with u) on data[0..len) into out, then on every
 * prefix of it, each copied to a buffer of its exact size (a read past n
 * is then caught by ASan), and checks each answer: its pieces lie in its
 * bytes, and it is part of the whole's: every piece it names is the
 * whole's (a statement may be shorter), its counts no larger. */
static inline void parts_every_prefix(const struct proto_ops *ops,
                                      const struct proto_unit *u,
                                      const void *data, size_t len,
                                      bool static_command,
                                      struct proto_parts *out)
{
    cr_assert_not_null(ops->parts);
    memset(out, 0, sizeof(*out));
    ops->parts(data, len, u, out);
    parts_within(out, data, len, static_command);
    for (size_t k = 0; k <= len; k++) {
        unsigned char *p = malloc(k);
        struct proto_parts a;
        cr_assert(k == 0 || p != NULL);
        if (k > 0)
            memcpy(p, data, k);
        memset(&a, 0, sizeof(a));
        ops->parts(p, k, u, &a);
        parts_within(&a, p, k, static_command);
        cr_assert(a.nargs <= out->nargs, "n %zu: %u args, whole: %u", k, a.nargs,
                  out->nargs);
        cr_assert(a.nheaders <= out->nheaders, "n %zu: %u headers, whole: %u", k,
                  a.nheaders, out->nheaders);
        cr_assert(piece_same(a.command, p, out->command, data, false), "n %zu: command", k);
        cr_assert(piece_same(a.key, p, out->key, data, false), "n %zu: key", k);
        cr_assert(piece_same(a.method, p, out->method, data, false), "n %zu: method", k);
        cr_assert(piece_same(a.path, p, out->path, data, false), "n %zu: path", k);
        cr_assert(piece_same(a.statement, p, out->statement, data, true),
                  "n %zu: statement", k);
        for (unsigned i = 0; i < a.nargs; i++)
            cr_assert(piece_same(a.args[i], p, out->args[i], data, false),
                      "n %zu: arg %u", k, i);
        for (unsigned i = 0; i < a.nheaders; i++)
            for (int j = 0; j < 2; j++)
                cr_assert(piece_same(a.headers[i][j], p, out->headers[i][j], data,
                                     false),
                          "n %zu: header %u", k, i);
        free(p);
    }
}

/* What a test expects parts() to name (NULL: absent). */
struct parts_want {
    const char *command, *key, *method, *path, *statement;
    unsigned nargs;
    const char *args[PROTO_ARGS_MAX];
    unsigned nheaders;
    const char *headers[PROTO_HEADERS_MAX][2];
};

static inline void parts_expect(const struct proto_parts *a,
                                const struct parts_want *w, const char *what)
{
#define WANT_PIECE(s, text)                                                  \
    cr_assert(piece_is((s), (text) != NULL ? (text) : ""),                   \
              "%s: " #s " is \"%.*s\", not \"%s\"", what, (int)(s).n,        \
              (s).n ? (s).p : "", (text) != NULL ? (text) : "")
    WANT_PIECE(a->command, w->command);
    WANT_PIECE(a->key, w->key);
    WANT_PIECE(a->method, w->method);
    WANT_PIECE(a->path, w->path);
    WANT_PIECE(a->statement, w->statement);
    cr_assert_eq(a->nargs, w->nargs, "%s: %u args, not %u", what, a->nargs, w->nargs);
    for (unsigned i = 0; i < w->nargs; i++)
        WANT_PIECE(a->args[i], w->args[i]);
    cr_assert_eq(a->nheaders, w->nheaders, "%s: %u headers, not %u", what,
                 a->nheaders, w->nheaders);
    for (unsigned i = 0; i < w->nheaders; i++) {
        WANT_PIECE(a->headers[i][0], w->headers[i][0]);
        WANT_PIECE(a->headers[i][1], w->headers[i][1]);
    }
#undef WANT_PIECE
}

#endif
