/*
 * A harness for protocol framers: feeds bytes in pieces of any size and
 * collects the units (length and flags) the framer hands out, so a test can
 * check that every split of the input gives the same frames.
 */
#ifndef VAURIEN_TEST_FRAMER_H
#define VAURIEN_TEST_FRAMER_H

#include <criterion/criterion.h>
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

#endif
