/* A pipe without sockets, for the pipe's unit tests (test_pipe.c,
 * test_pipe_faults.c): a bufferevent pair as its source and destination,
 * whose output keeps what a client would read, toxics added and removed
 * as the API would, and the event loop run until a deadline. */
#ifndef VAURIEN_TEST_PIPE_RIG_H
#define VAURIEN_TEST_PIPE_RIG_H

#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "behav/toxic.h"
#include "net/pipe.h"

struct rig {
    struct event_base *base;
    struct bufferevent *pair[2]; /* [0]: the pipe's source and destination */
    struct pipe p;
    struct toxic *tox[8];
    int ntox;
    int closes;
    bool reset;      /* the last close was a reset */
    const char *why;
};

static void rig_on_close(void *ctx, bool reset, const char *why)
{
    struct rig *r = ctx;

    r->closes++;
    r->reset = reset;
    r->why = why;
    pipe_deinit(&r->p);
}

static void rig_on_nothing(void *ctx)
{
    (void)ctx;
}

static void rig_on_drained(void *ctx, struct pipe *p)
{
    (void)ctx;
    (void)p;
}

static const struct pipe_owner rig_owner = {
    .close = rig_on_close,
    .reading = rig_on_nothing,
    .drained = rig_on_drained,
    .done = rig_on_nothing,
};

/* A rig whose pipe tells owner (rig_owner unless a test needs its own). */
static inline void rig_init_owned(struct rig *r, const struct pipe_owner *owner)
{
    memset(r, 0, sizeof(*r));
    r->base = event_base_new();
    cr_assert_not_null(r->base);
    cr_assert_eq(bufferevent_pair_new(r->base, 0, r->pair), 0);
    /* the destination's output keeps what it is given */
    bufferevent_disable(r->pair[0], EV_WRITE);
    pipe_init(&r->p, owner, r, 1, "down", r->pair[0], r->pair[0]);
}

static inline void rig_init(struct rig *r)
{
    rig_init_owned(r, &rig_owner);
}

static inline void rig_deinit(struct rig *r)
{
    pipe_deinit(&r->p);
    for (int i = 0; i < r->ntox; i++)
        toxic_destroy(r->tox[i]);
    bufferevent_free(r->pair[0]);
    bufferevent_free(r->pair[1]);
    event_base_free(r->base);
}

/* Adds a downstream toxic of type with attributes {name, value}, ...,
 * {NULL}, and gives the pipe the new chain. */
static inline struct toxic *add_toxic(struct rig *r, const char *type,
                                      const char *attrs[][2])
{
    const struct toxic_type *tt = toxic_type_find(type);
    struct toxic *t;
    char err[256];

    cr_assert_not_null(tt, "no toxic %s", type);
    t = toxic_create(tt, type, TOXIC_DOWNSTREAM, "downstream");
    cr_assert_not_null(t);
    for (int i = 0; attrs != NULL && attrs[i][0] != NULL; i++) {
        int k = opt_find(tt->attrs, attrs[i][0]);
        cr_assert(k >= 0, "no attribute %s", attrs[i][0]);
        cr_assert_eq(opt_parse(&tt->attrs[k], attrs[i][1], &t->inst.vals[k],
                               err, sizeof(err)), 0, "%s", err);
    }
    r->tox[r->ntox++] = t;
    cr_assert_eq(pipe_set_chain(&r->p, r->tox, r->ntox, TOXIC_DOWNSTREAM), 0);
    return t;
}

static inline void remove_toxic(struct rig *r, struct toxic *t)
{
    int i = 0;

    while (r->tox[i] != t)
        i++;
    memmove(&r->tox[i], &r->tox[i + 1],
            sizeof(r->tox[0]) * (size_t)(r->ntox - i - 1));
    r->ntox--;
    cr_assert_eq(pipe_set_chain(&r->p, r->tox, r->ntox, TOXIC_DOWNSTREAM), 0);
    toxic_destroy(t);
}

static inline struct evbuffer *rig_out(struct rig *r)
{
    return bufferevent_get_output(r->pair[0]);
}

static inline double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs the loop for secs, or until the pipe closes the connection. */
static inline void run_for(struct rig *r, double secs)
{
    double t0 = now_s();

    while (now_s() - t0 < secs && r->closes == 0)
        event_base_loop(r->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Emits len bytes in units of `unit` bytes, while the pipe lives. */
static inline void rig_emit(struct rig *r, const unsigned char *bytes,
                            size_t len, size_t unit)
{
    struct evbuffer *in = evbuffer_new();

    for (size_t off = 0; off < len && r->p.live; off += unit) {
        size_t n = len - off < unit ? len - off : unit;
        evbuffer_add(in, bytes + off, n);
        cr_assert_eq(pipe_emit(&r->p, in, n, 0, BEHAV_PASS), 0);
        cr_assert_eq(evbuffer_get_length(in), 0, "every byte was taken");
    }
    evbuffer_free(in);
}

static unsigned char data[65536];

static inline void fill(void)
{
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
}

#endif
