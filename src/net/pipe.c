/*
 * pipe: one direction of a session (see pipe.h).
 *
 *   pipe_emit ─▶ each byte toxic of the chain shapes a plan for the unit
 *               (tox_latency, tox_slicer, tox_bandwidth, tox_timeout,
 *               tox_reset_peer), or the unit's bytes (tox_packet_loss,
 *               tox_corrupt, tox_cut_at for limit_data and reset_after)
 *             ─▶ queue(): straight to the output, or held (ring + buffer)
 *   timer     ─▶ release(): due units in order, paced ones part by part
 */
#include "net/pipe.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/log.h"
#include "core/loss.h"
#include "core/rng.h"
#include "core/vassert.h"

#define NS 1000000000LL

static void timespec_now(struct timespec *t)
{
    clock_gettime(CLOCK_MONOTONIC, t);
}

static void timespec_add_ns(struct timespec *t, long long ns)
{
    t->tv_sec += ns / NS;
    t->tv_nsec += ns % NS;
    if (t->tv_nsec >= NS) {
        t->tv_sec++;
        t->tv_nsec -= NS;
    }
}

static void timespec_add(struct timespec *t, double secs)
{
    timespec_add_ns(t, (long long)(secs * 1e9 + 0.5));
}

/* a <= b */
static bool timespec_le(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

static const struct timespec *timespec_max(const struct timespec *a,
                                           const struct timespec *b)
{
    return timespec_le(a, b) ? b : a;
}

static bool paced(const struct held *h)
{
    return h->pace.slice != 0 || h->pace.rate != 0 || h->pace.total != 0;
}

/* When a paced part of h may leave at the earliest: after the pipe's last
 * part, and after the last part of every connection sharing its
 * bandwidth_total. */
static const struct timespec *paced_at(const struct pipe *p,
                                       const struct held *h)
{
    const struct timespec *at = timespec_max(&h->due, &p->pace_until);

    if (h->pace.bucket != NULL)
        at = timespec_max(at, h->pace.bucket);
    return at;
}

static void pipe_timer_cb(evutil_socket_t fd, short what, void *arg);
static void free_link_state(struct tox_link *l);

void pipe_init(struct pipe *p, const struct pipe_owner *owner, void *ctx,
               uint64_t id, const char *name, struct bufferevent *src,
               struct bufferevent *dst)
{
    p->owner = owner;
    p->ctx = ctx;
    p->id = id;
    p->name = name;
    p->src = src;
    p->dst = dst;
    p->live = true;
    rng_fork(&rng_global, &p->rng); /* the owner may derive its own */
}

void pipe_deinit(struct pipe *p)
{
    if (p->live)
        pipe_settle(p); /* passed before the close: goes with the cork */
    p->live = false;
    if (p->hbuf != NULL) {
        evbuffer_free(p->hbuf);
        p->hbuf = NULL;
    }
    if (p->cork != NULL) {
        /* what passed before the close still goes, as far as the socket
         * takes it at once (as it would have uncorked) */
        if (p->corked == PIPE_CORK_BUF && p->dst != NULL &&
            bufferevent_getfd(p->dst) >= 0)
            evbuffer_write(p->cork, bufferevent_getfd(p->dst));
        evbuffer_free(p->cork);
        p->cork = NULL;
    }
    p->corked = PIPE_CORK_NONE;
    free(p->ring);
    p->ring = NULL;
    p->ring_cap = p->first = p->nheld = 0;
    if (p->timer != NULL) {
        event_free(p->timer);
        p->timer = NULL;
    }
    for (int i = 0; i < TOXT_N; i++) {
        if (p->tox_ev[i] != NULL) {
            event_free(p->tox_ev[i]);
            p->tox_ev[i] = NULL;
        }
    }
    for (int i = 0; i < p->nchain; i++)
        free_link_state(&p->chain[i]);
    free(p->chain);
    p->chain = NULL;
    p->nchain = 0;
    p->bits_used = 0;
}

size_t pipe_held_bytes(const struct pipe *p)
{
    return p->hbuf != NULL ? evbuffer_get_length(p->hbuf) : 0;
}

/* Bytes on their way out: the destination's output, and what waits in the
 * cork buffer to be written before it. */
static size_t out_len(const struct pipe *p)
{
    size_t n = p->dst != NULL
                   ? evbuffer_get_length(bufferevent_get_output(p->dst))
                   : 0;

    if (p->corked == PIPE_CORK_BUF)
        n += evbuffer_get_length(p->cork);
    return n;
}

size_t pipe_buffered(const struct pipe *p)
{
    return out_len(p) + pipe_held_bytes(p);
}

/*
 * The ring of held units.
 */

static struct held *held_at(const struct pipe *p, uint32_t i)
{
    VASSERT(i < p->nheld);
    return &p->ring[(p->first + i) % p->ring_cap];
}

static struct held *held_head(const struct pipe *p)
{
    return p->nheld > 0 ? held_at(p, 0) : NULL;
}

static struct held *held_tail(const struct pipe *p)
{
    return p->nheld > 0 ? held_at(p, p->nheld - 1) : NULL;
}

/* Makes room for one more unit. Returns 0, -ENOSPC at PIPE_HELD_MAX, or
 * -ENOMEM. */
static int ring_grow(struct pipe *p)
{
    uint32_t cap;
    struct held *r;

    if (p->nheld < p->ring_cap)
        return 0;
    if (p->ring_cap >= PIPE_HELD_MAX)
        return -ENOSPC;
    cap = p->ring_cap == 0 ? 8 : p->ring_cap * 2;
    if (cap > PIPE_HELD_MAX)
        cap = PIPE_HELD_MAX;
    r = malloc(sizeof(*r) * cap);
    if (r == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < p->nheld; i++)
        r[i] = *held_at(p, i);
    free(p->ring);
    p->ring = r;
    p->ring_cap = cap;
    p->first = 0;
    return 0;
}

static void ring_pop(struct pipe *p)
{
    VASSERT(p->nheld > 0 && held_head(p)->len == 0);
    p->first = (p->first + 1) % p->ring_cap;
    p->nheld--;
    if (p->nheld == 0)
        p->first = 0;
}

/*
 * Writing to the destination.
 */

/* Moves len bytes from the front of from to the end of to. Small pieces
 * (an answer, a short request) are copied into to's last chain instead of
 * moving their own chain, so that memory stays close to the bytes held:
 * a 40-byte reply in a chain of its own costs over 1 KB. */
static void move_bytes(struct evbuffer *from, struct evbuffer *to, size_t len)
{
    unsigned char tmp[1024];

    if (len <= sizeof(tmp)) {
        evbuffer_remove(from, tmp, len);
        evbuffer_add(to, tmp, len);
        return;
    }
    evbuffer_remove_buffer(from, to, len);
}

/* Puts len bytes of from into the destination's output; with write_now and
 * nothing queued there, writes them at once, as a plain proxy does. */
static void out_put(struct pipe *p, struct evbuffer *from, size_t len,
                    bool write_now)
{
    struct evbuffer *out;

    pipe_count_sent(p, len);
    if (p->corked == PIPE_CORK_BUF) {
        /* kept apart from the output until pipe_uncork(): the bufferevent
         * is not woken for bytes that one write will take */
        move_bytes(from, p->cork, len);
        return;
    }
    out = bufferevent_get_output(p->dst);
    if (write_now && !p->corked && evbuffer_get_length(out) == 0) {
        evutil_socket_t fd = bufferevent_getfd(p->dst);
        int w = fd >= 0 ? evbuffer_write_atmost(from, fd, (ev_ssize_t)len) : 0;
        if (w > 0)
            len -= (size_t)w;
    }
    move_bytes(from, out, len);
}

/* Why the connection closes after its last write (the log, the journal). */
static const char *flush_why(const struct pipe *p, enum behav_act then)
{
    return p->reset_on_flush ? "reset_after toxic" : behav_act_name(then);
}

/* A unit whose `then` closes was handed to the output: the source is
 * dropped from now on, and the session closes once the output is written.
 * Returns false when the session was closed. */
static bool unit_closes(struct pipe *p, enum behav_act then)
{
    if (then == BEHAV_PASS)
        return true;
    /* abort (request written: cut) or close (answer written: close) */
    p->close_on_flush = true;
    p->discard = true;
    if (out_len(p) == 0 && p->nheld == 0) {
        p->owner->close(p->ctx, p->reset_on_flush, flush_why(p, then));
        return false;
    }
    return true;
}

/* Arms the timer for the head's due time (now: at the next loop pass).
 * Returns 0 or -ENOMEM. */
static int arm_timer(struct pipe *p, bool now)
{
    struct held *h = held_head(p);
    struct timespec t;
    struct timeval tv = { 0, 0 };

    if (h == NULL || (h->pace.stop && !now)) {
        if (p->timer != NULL)
            evtimer_del(p->timer);
        return 0;
    }
    if (p->timer == NULL) {
        p->timer = evtimer_new(bufferevent_get_base(p->src), pipe_timer_cb, p);
        if (p->timer == NULL)
            return -ENOMEM;
    }
    if (!now) {
        const struct timespec *due = &h->due;
        if (paced(h))
            due = paced_at(p, h);
        timespec_now(&t);
        /* libevent's clock counts whole microseconds: counting from ours
         * truncated alike, its expiry never falls before the due time */
        t.tv_nsec -= t.tv_nsec % 1000;
        if (!timespec_le(due, &t)) {
            long long ns = (due->tv_sec - t.tv_sec) * NS +
                           (due->tv_nsec - t.tv_nsec);
            /* round up, so the timer never fires before the unit is due */
            long long us = (ns + 999) / 1000;
            tv.tv_sec = (time_t)(us / 1000000);
            tv.tv_usec = (suseconds_t)(us % 1000000);
        }
    }
    return evtimer_add(p->timer, &tv) < 0 ? -ENOMEM : 0;
}

/* arm_timer() where a failure can only close the connection. Returns false
 * when it did. */
static bool rearm(struct pipe *p, bool now)
{
    if (arm_timer(p, now) == 0)
        return true;
    p->owner->close(p->ctx, true, "cannot arm a timer");
    return false;
}

/* Resumes reading the source once the pipe is below its low-water marks. */
static void maybe_resume(struct pipe *p)
{
    if (p->full && pipe_buffered(p) <= PIPE_LOW &&
        p->nheld <= PIPE_HELD_MAX / 2) {
        p->full = false;
        p->owner->reading(p->ctx);
    }
}

/* The size of the next part of a paced unit. */
static size_t next_part(struct pipe *p, const struct held *h)
{
    long long size;

    if (h->pace.slice != 0) {
        size = h->pace.slice;
        if (h->pace.var > 0)
            size += (long long)rng_below(&p->rng, 2 * (uint64_t)h->pace.var + 1) -
                    (long long)h->pace.var;
    } else {
        size = LLONG_MAX;
    }
    /* under a bandwidth, pieces of at most 100 ms worth, so the rate is
     * smooth and the last piece's wait is short */
    if (h->pace.rate != 0 && size > (long long)(h->pace.rate / 10))
        size = (long long)(h->pace.rate / 10);
    if (h->pace.total != 0 && size > (long long)(h->pace.total / 10))
        size = (long long)(h->pace.total / 10);
    if (size < 1)
        size = 1;
    return (size_t)size < h->len ? (size_t)size : h->len;
}

/* How long a paced part of len bytes keeps the next one back. */
static long long part_wait_ns(const struct held *h, size_t len)
{
    long long wait = (long long)h->pace.gap_ns;

    if (h->pace.rate != 0) {
        long long bw = (long long)((double)len * 1e9 / (double)h->pace.rate);
        if (bw > wait)
            wait = bw;
    }
    return wait;
}

void pipe_cork(struct pipe *p)
{
    if (!p->live || p->dst == NULL || p->corked)
        return;
    p->corked = PIPE_CORK_OUTPUT; /* bytes queue behind the output */
    if (out_len(p) != 0 || bufferevent_getfd(p->dst) < 0)
        return;
    if (p->cork == NULL)
        p->cork = evbuffer_new();
    if (p->cork != NULL)
        p->corked = PIPE_CORK_BUF;
}

void pipe_uncork(struct pipe *p)
{
    enum pipe_cork was;

    pipe_settle(p);
    was = p->corked;
    p->corked = PIPE_CORK_NONE;
    if (!p->live || p->dst == NULL)
        return;
    if (was == PIPE_CORK_BUF && evbuffer_get_length(p->cork) > 0) {
        evbuffer_write(p->cork, bufferevent_getfd(p->dst));
        if (evbuffer_get_length(p->cork) > 0)
            evbuffer_add_buffer(bufferevent_get_output(p->dst), p->cork);
    }
    /* all written at once: no write callback will come to say so */
    if (p->close_on_flush && out_len(p) == 0 && p->nheld == 0)
        p->owner->close(p->ctx, p->reset_on_flush,
                        flush_why(p, BEHAV_CLOSE));
}

/* Writes every unit that is due, in order: whole units at once (in one
 * write for all of them), paced units part by part, at most PIPE_PARTS_MAX
 * parts in one loop pass. Re-arms the timer. */
static void release(struct pipe *p)
{
    struct timespec now;
    size_t pending = 0; /* due bytes at the front of hbuf, to go together */
    bool write_now;
    int parts = 0;

    if (!p->live || p->dst == NULL)
        return;
    VASSERT(p->nheld == 0 || pipe_held_bytes(p) > 0);
    /* written at once (straight from the held buffer: a socket
     * bufferevent's output is frozen against our own writes) when nothing
     * is queued before them; else they queue behind */
    write_now = out_len(p) == 0;
    timespec_now(&now);
    while (p->nheld > 0) {
        struct held *h = held_head(p);
        struct timespec at = h->due;
        enum behav_act then;
        size_t part;

        if (h->pace.stop)
            break;
        if (!paced(h)) {
            if (!timespec_le(&at, &now))
                break;
            pending += h->len;
            h->len = 0;
        } else {
            at = *paced_at(p, h);
            if (!timespec_le(&at, &now))
                break;
            if (parts++ == PIPE_PARTS_MAX) {
                /* bounded work: the rest in the next loop pass */
                if (!rearm(p, true))
                    return;
                goto out;
            }
            if (pending > 0) {
                out_put(p, p->hbuf, pending, write_now);
                pending = 0;
            }
            part = next_part(p, h);
            /* a part of its own: written at once when nothing is queued */
            out_put(p, p->hbuf, part, true);
            h->len -= part;
            p->pace_until = at;
            timespec_add_ns(&p->pace_until, part_wait_ns(h, part));
            if (h->pace.bucket != NULL) {
                /* the proxy's other connections wait for this part */
                *h->pace.bucket = at;
                timespec_add_ns(h->pace.bucket,
                                (long long)((double)part * 1e9 /
                                            (double)h->pace.total));
            }
            h->due = at;
        }
        if (h->len > 0)
            continue;
        then = (enum behav_act)h->then;
        ring_pop(p);
        if (then != BEHAV_PASS) {
            if (pending > 0) {
                out_put(p, p->hbuf, pending, write_now);
                pending = 0;
            }
            if (!unit_closes(p, then))
                return;
        }
    }
    if (!rearm(p, false))
        return;
out:
    if (!p->live)
        return;
    if (pending > 0)
        out_put(p, p->hbuf, pending, write_now);
    if (p->close_on_flush && p->nheld == 0 && out_len(p) == 0) {
        p->owner->close(p->ctx, p->reset_on_flush,
                        flush_why(p, BEHAV_CLOSE));
        return;
    }
    maybe_resume(p);
    pipe_maybe_shut(p);
}

/* release() when the owner did not ask for it (a timer, a toxic change):
 * released units were written straight to the socket, and if that took
 * the pipe below its low-water mark no write callback will say so; an
 * owner waiting for it (a client paused until its answers drain) is told
 * here. Never called from inside the owner's own work. */
static void release_unprompted(struct pipe *p)
{
    release(p);
    if (p->live && pipe_buffered(p) <= PIPE_LOW)
        p->owner->drained(p->ctx, p);
}

static void pipe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pipe *p = arg;

    (void)fd;
    (void)what;
    release_unprompted(p);
}

/*
 * The toxics that act on time: each has a timer of its own.
 */

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pipe *p = arg;

    (void)fd;
    (void)what;
    p->owner->close(p->ctx, false, "timeout toxic");
}

static void on_reset(evutil_socket_t fd, short what, void *arg)
{
    struct pipe *p = arg;

    (void)fd;
    (void)what;
    p->owner->close(p->ctx, true, "reset_peer toxic");
}

static void on_slow_close(evutil_socket_t fd, short what, void *arg)
{
    struct pipe *p = arg;

    (void)fd;
    (void)what;
    p->shut_delayed = false;
    pipe_maybe_shut(p);
}

static int arm_tox_timer(struct pipe *p, enum pipe_tox_timer which,
                         double secs)
{
    static event_callback_fn const cbs[TOXT_N] = {
        [TOXT_TIMEOUT] = on_timeout,
        [TOXT_RESET] = on_reset,
        [TOXT_SLOW_CLOSE] = on_slow_close,
    };
    struct timeval tv;

    if (p->tox_ev[which] == NULL) {
        p->tox_ev[which] = evtimer_new(bufferevent_get_base(p->src),
                                       cbs[which], p);
        if (p->tox_ev[which] == NULL)
            return -ENOMEM;
    }
    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    return evtimer_add(p->tox_ev[which], &tv) < 0 ? -ENOMEM : 0;
}

static void cancel_tox_timer(struct pipe *p, enum pipe_tox_timer which)
{
    if (p->tox_ev[which] != NULL)
        evtimer_del(p->tox_ev[which]);
}

/*
 * The byte toxics, one function each. A plan is the held unit being made:
 * they add to its due time, pace it, or cut it.
 */

static uint64_t link_mask(const struct tox_link *l)
{
    return 1ULL << l->bit;
}

/* latency ± jitter ms, drawn from the link's distribution. The default,
 * uniform and uncorrelated, draws whole milliseconds as it always has
 * (one rng_below() per unit), so a seeded run keeps its latencies. Never
 * earlier than without the toxic: a negative draw is no delay. */
static void tox_latency(struct rng *rng, struct tox_link *l, struct held *plan)
{
    long long ms = l->a[TOX_LATENCY_MS], j = l->a[TOX_JITTER_MS], ns;

    if (l->lat.kind == DIST_UNIFORM && l->lat.correlation == 0) {
        if (j > 0)
            ms += (long long)rng_below(rng, (uint64_t)(2 * j + 1)) - j;
        ns = ms * 1000000LL;
    } else {
        ns = llround(dist_draw(&l->lat, &l->lat_prev, rng) * 1e6);
    }
    if (ns <= 0)
        return;
    timespec_add_ns(&plan->due, ns);
    plan->by |= link_mask(l);
}

/* Slices of avg ± var bytes, delay µs apart. Stacked slicers make the
 * smallest slices, with the gaps of all of them spread over the bytes. */
static void tox_slicer(const struct tox_link *l, struct held *plan)
{
    long long avg = l->a[TOX_SLICER_AVG], var = l->a[TOX_SLICER_VAR];
    double gap_per_byte, gap_ns = (double)l->a[TOX_SLICER_DELAY_US] * 1000.0;
    struct pipe_pace *pc = &plan->pace;

    if (avg <= 0)
        return;
    if (avg > UINT32_MAX)
        avg = UINT32_MAX;
    if (var > avg)
        var = avg;
    gap_per_byte = pc->slice != 0 ? (double)pc->gap_ns / (double)pc->slice : 0;
    gap_per_byte += gap_ns / (double)avg;
    if (pc->slice == 0 || (uint32_t)avg < pc->slice) {
        pc->slice = (uint32_t)avg;
        pc->var = (uint32_t)var;
    }
    pc->gap_ns = (uint64_t)(gap_per_byte * (double)pc->slice + 0.5);
    plan->by |= link_mask(l);
}

/* Puts kbps KB/s (1000 bytes) in *rate when it is slower than what is
 * there (0 there: none yet); 0 KB/s holds everything until the toxics
 * change. Returns whether *rate changed. */
static bool slowest(const struct tox_link *l, long long kbps, uint64_t *rate,
                    struct held *plan)
{
    plan->by |= link_mask(l);
    if (kbps <= 0) {
        plan->pace.stop = true;
        return false;
    }
    if (*rate != 0 && (uint64_t)kbps * 1000 >= *rate)
        return false;
    *rate = (uint64_t)kbps * 1000;
    return true;
}

/* rate KB/s (1000 bytes); 0 holds everything until the toxics change.
 * Stacked, the slowest wins. */
static void tox_bandwidth(const struct tox_link *l, struct held *plan)
{
    slowest(l, l->a[TOX_RATE_KBPS], &plan->pace.rate, plan);
}


/* Exactly limit bytes per connection and direction pass (limit_data,
 * reset_after): the link counts them; once the limit is reached the rest
 * is cut (*len shortened, *cut gets the bytes dropped) and the connection
 * closes once they are written. Returns whether the limit was reached. */
static bool tox_cut_at(struct pipe *p, struct tox_link *l, long long limit,
                       size_t *len, size_t *cut, struct held *plan)
{
    unsigned long long lim = (unsigned long long)limit;
    unsigned long long room = l->count < lim ? lim - l->count : 0;
    size_t take = *len < room ? *len : (size_t)room;

    l->count += take;
    if (l->count < lim)
        return false;
    *cut += *len - take;
    *len = take;
    plan->then = BEHAV_CLOSE;
    p->discard = true;
    p->closing = true;
    return true;
}

/* Data is dropped; the connection closes timeout ms after the last chunk
 * (0: never). */
static int tox_timeout(struct pipe *p, const struct tox_link *l)
{
    if (l->a[TOX_TIMEOUT_MS] <= 0)
        return 0;
    return arm_tox_timer(p, TOXT_TIMEOUT, (double)l->a[TOX_TIMEOUT_MS] / 1000.0);
}

/* On the next data: wait timeout ms, then reset. */
static int tox_reset_peer(struct pipe *p, struct tox_link *l)
{
    if (l->fired)
        return 0;
    l->fired = true;
    return arm_tox_timer(p, TOXT_RESET, (double)l->a[TOX_TIMEOUT_MS] / 1000.0);
}

/* rate KB/s (1000 bytes) for every connection of the proxy together, on
 * the toxic's stream: paced parts reserve time on the toxic's one clock
 * (struct toxic.bucket). 0 holds everything until the toxics change.
 * Beside a bandwidth, each limit applies. */
static void tox_bandwidth_total(const struct tox_link *l, struct held *plan)
{
    /* the toxic outlives every unit it paces: removing it re-times them
     * first (pipe_set_chain) */
    if (slowest(l, l->a[TOX_TOTAL_RATE_KBPS], &plan->pace.total, plan))
        plan->pace.bucket = (struct timespec *)&l->t->bucket;
}

/* Whether the unit is lost: a Gilbert–Elliott chain per connection and
 * direction, drawn from the link's own generator (core/loss.h). */
static bool tox_packet_loss(struct tox_link *l)
{
    const union opt_val *v = l->t->inst.vals;
    bool first = !l->st.loss.drawn;

    l->st.loss.drawn = true;
    return loss_next(&l->rng, v[TOX_LOSS_RATE].f, v[TOX_LOSS_CORRELATION].f,
                     &l->st.loss.lost, first);
}

/* Flips bits of the first len bytes of from, each with probability rate:
 * the link keeps how many bits pass before the next flip, so where the
 * flips fall depends on the stream's bytes, not on how reads cut them.
 * Returns the bits flipped. */
static uint64_t tox_corrupt(struct tox_link *l, struct evbuffer *from,
                            size_t len)
{
    double rate = l->t->inst.vals[TOX_CORRUPT_RATE].f;
    struct evbuffer_iovec v[16];
    struct evbuffer_ptr pos;
    uint64_t flips = 0;
    size_t done = 0;

    if (rate != l->st.flip.rate) {
        /* a new rate counts from here */
        l->st.flip.rate = rate;
        l->st.flip.gap = loss_bit_gap(&l->rng, rate);
    }
    if (rate <= 0)
        return 0;
    if (l->st.flip.gap >= (uint64_t)len * 8) {
        l->st.flip.gap -= (uint64_t)len * 8;
        return 0;
    }
    if (evbuffer_ptr_set(from, &pos, 0, EVBUFFER_PTR_SET) < 0)
        return 0;
    while (done < len) {
        int n = evbuffer_peek(from, (ev_ssize_t)(len - done), &pos, v, 16);
        size_t step = 0;

        if (n <= 0)
            break;
        for (int i = 0; i < n && i < 16 && done + step < len; i++) {
            unsigned char *b = v[i].iov_base;
            size_t m = v[i].iov_len < len - done - step
                           ? v[i].iov_len : len - done - step;
            uint64_t bits = (uint64_t)m * 8, at = 0;

            while (l->st.flip.gap < bits - at) {
                at += l->st.flip.gap;
                b[at / 8] ^= (unsigned char)(0x80u >> (at % 8));
                flips++;
                at++;
                l->st.flip.gap = loss_bit_gap(&l->rng, rate);
            }
            l->st.flip.gap -= bits - at;
            step += m;
        }
        done += step;
        if (step == 0 || (done < len &&
                          evbuffer_ptr_set(from, &pos, step,
                                           EVBUFFER_PTR_ADD) < 0))
            break;
    }
    return flips;
}

/* Tells the owner that link l acted (the journal). */
static void acted(struct pipe *p, const struct tox_link *l, double held_ms,
                  uint64_t bytes, const char *outcome)
{
    if (p->owner->acted != NULL)
        p->owner->acted(p->ctx, p, l->t, held_ms, bytes, outcome);
}

/* The timing of link l applied to a unit (emit and re-timing). */
static void apply_timing(struct rng *rng, struct tox_link *l,
                         struct held *plan)
{
    switch (l->t->type->kind) {
    case TOXIC_LATENCY:
        tox_latency(rng, l, plan);
        break;
    case TOXIC_SLICER:
        tox_slicer(l, plan);
        break;
    case TOXIC_BANDWIDTH:
        tox_bandwidth(l, plan);
        break;
    case TOXIC_BANDWIDTH_TOTAL:
        tox_bandwidth_total(l, plan);
        break;
    default:
        break;
    }
}

/*
 * Queueing a unit.
 */

static bool pace_equal(const struct pipe_pace *a, const struct pipe_pace *b)
{
    return a->slice == b->slice && a->var == b->var && a->gap_ns == b->gap_ns &&
           a->rate == b->rate && a->stop == b->stop &&
           a->total == b->total && a->bucket == b->bucket;
}

/* The tail can take the new unit's bytes without any byte leaving later
 * than its own rules say: bytes behind the tail never leave before it. */
static bool can_merge(const struct held *tail, const struct held *plan)
{
    return tail->then == BEHAV_PASS && pace_equal(&tail->pace, &plan->pace) &&
           tail->own_rate == plan->own_rate &&
           timespec_le(&plan->due, &tail->due);
}

/* Holds len bytes of from as the unit plan. Returns 0 or -ENOMEM. */
static int hold(struct pipe *p, struct evbuffer *from, size_t len,
                const struct held *plan)
{
    struct held *tail = held_tail(p);
    int rc;

    if (p->hbuf == NULL) {
        p->hbuf = evbuffer_new();
        if (p->hbuf == NULL)
            return -ENOMEM;
    }
    if (tail != NULL && can_merge(tail, plan)) {
        tail->len += len;
        tail->by |= plan->by;
        tail->then = plan->then;
    } else if ((rc = ring_grow(p)) == -ENOSPC) {
        /* the ring is full (the source is paused; these bytes were read
         * before): they leave with the tail, never earlier than due */
        tail->due = *timespec_max(&tail->due, &plan->due);
        tail->len += len;
        tail->by |= plan->by;
        if (tail->then == BEHAV_PASS)
            tail->then = plan->then;
    } else if (rc < 0) {
        return rc;
    } else {
        p->nheld++;
        *held_tail(p) = *plan;
        held_tail(p)->len = len;
    }
    move_bytes(from, p->hbuf, len);
    if (p->nheld == 1)
        return arm_timer(p, false);
    return 0;
}

void pipe_due(const struct pipe *p, double delay, struct timespec *due)
{
    if (p->stamp.tv_sec != 0 || p->stamp.tv_nsec != 0)
        *due = p->stamp;
    else
        timespec_now(due);
    if (delay > 0)
        timespec_add(due, delay);
}

bool pipe_owe(struct pipe *p, struct evbuffer *from, size_t len)
{
    if (!p->live || p->closing || p->nchain != 0 || p->nheld != 0 ||
        p->corked == PIPE_CORK_NONE || from != bufferevent_get_input(p->src))
        return false;
    p->owed += len;
    return true;
}

size_t pipe_owed(const struct pipe *p, const struct evbuffer *from)
{
    return from == bufferevent_get_input(p->src) ? p->owed : 0;
}

void pipe_settle(struct pipe *p)
{
    size_t n = p->owed;

    if (n == 0)
        return;
    p->owed = 0;
    out_put(p, bufferevent_get_input(p->src), n, true);
}

int pipe_emit(struct pipe *p, struct evbuffer *from, size_t len, double delay,
              enum behav_act then)
{
    struct timespec due;

    pipe_settle(p);
    if (p->live && !p->closing && p->nchain == 0 && p->nheld == 0 &&
        delay <= 0) {
        /* nothing to wait for: the common case, without a clock read */
        if (then != BEHAV_PASS)
            p->closing = true;
        out_put(p, from, len, true);
        unit_closes(p, then);
        return 0;
    }
    pipe_due(p, delay, &due);
    return pipe_emit_until(p, from, len, &due, then);
}

static int emit_plan(struct pipe *p, struct evbuffer *from, size_t len,
                     const struct timespec *due, enum behav_act then,
                     uint64_t rate);

int pipe_emit_until(struct pipe *p, struct evbuffer *from, size_t len,
                    const struct timespec *due, enum behav_act then)
{
    return emit_plan(p, from, len, due, then, 0);
}

int pipe_emit_paced(struct pipe *p, struct evbuffer *from, size_t len,
                    uint64_t rate)
{
    struct timespec due;

    pipe_settle(p);
    pipe_due(p, 0, &due);
    return emit_plan(p, from, len, &due, BEHAV_PASS, rate);
}

/* Emits len bytes of from as one unit due at due, paced at rate bytes per
 * second (0: not), and shaped by the chain's toxics. */
static int emit_plan(struct pipe *p, struct evbuffer *from, size_t len,
                     const struct timespec *due, enum behav_act then,
                     uint64_t rate)
{
    struct held plan;
    struct timespec now;
    size_t cut = 0;
    int rc = 0;

    pipe_settle(p);
    if (!p->live)
        return 0;
    if (p->closing) {
        /* behind a unit that closes the connection: never written */
        evbuffer_drain(from, len);
        return 0;
    }
    if (then != BEHAV_PASS)
        p->closing = true;
    memset(&plan, 0, sizeof(plan));
    plan.base = plan.due = *due;
    plan.then = (uint8_t)then;
    plan.pace.rate = plan.own_rate = rate;
    for (int i = 0; i < p->nchain; i++) {
        struct tox_link *l = &p->chain[i];
        struct timespec before = plan.due;
        bool fired = l->fired;
        if (!l->on)
            continue;
        switch (l->t->type->kind) {
        case TOXIC_LIMIT_DATA:
            if (tox_cut_at(p, l, l->a[TOX_LIMIT_BYTES], &len, &cut, &plan))
                acted(p, l, 0, cut, "limit reached: the rest cut, then closed");
            break;
        case TOXIC_TIMEOUT:
            acted(p, l, 0, len + cut, "dropped; closed after the timeout");
            evbuffer_drain(from, len + cut);
            return tox_timeout(p, l);
        case TOXIC_RESET_PEER:
            if (!fired)
                acted(p, l, (double)l->a[TOX_TIMEOUT_MS], len + cut,
                      "dropped; reset after the timeout");
            evbuffer_drain(from, len + cut);
            return tox_reset_peer(p, l);
        case TOXIC_PACKET_LOSS:
            if (len > 0 && tox_packet_loss(l)) {
                acted(p, l, 0, len, "chunk dropped");
                cut += len; /* the whole chunk */
                len = 0;
            }
            break;
        case TOXIC_CORRUPT:
            if (len > 0) {
                uint64_t flips = tox_corrupt(l, from, len);
                if (flips > 0) {
                    char what[64];
                    snprintf(what, sizeof(what), "%llu bits flipped",
                             (unsigned long long)flips);
                    acted(p, l, 0, len, what);
                }
            }
            break;
        case TOXIC_RESET_AFTER:
            if (tox_cut_at(p, l, l->a[TOX_RESET_AFTER_BYTES], &len, &cut,
                           &plan)) {
                p->reset_on_flush = true; /* the close is a reset */
                acted(p, l, 0, cut, "limit reached: the rest cut, then reset");
            }
            break;
        default:
            apply_timing(&p->rng, l, &plan);
            if (l->t->type->kind == TOXIC_LATENCY &&
                !timespec_le(&plan.due, &before))
                acted(p, l, (double)(plan.due.tv_sec - before.tv_sec) * 1e3 +
                                (double)(plan.due.tv_nsec - before.tv_nsec) / 1e6,
                      len, "held");
            else if (l->t->type->kind != TOXIC_LATENCY &&
                     (plan.by & link_mask(l)))
                acted(p, l, 0, len, l->t->type->kind == TOXIC_SLICER
                                        ? "sliced" : "paced");
            break;
        }
    }
    if (len == 0) {
        struct held *tail = held_tail(p);
        evbuffer_drain(from, cut);
        if (plan.then == BEHAV_PASS)
            return 0;
        if (tail != NULL) {
            tail->then = plan.then;
            return 0;
        }
        unit_closes(p, (enum behav_act)plan.then);
        return 0;
    }
    timespec_now(&now);
    if (p->nheld == 0 && !paced(&plan) && !plan.pace.stop &&
        timespec_le(&plan.due, &now)) {
        out_put(p, from, len, true);
        evbuffer_drain(from, cut);
        unit_closes(p, (enum behav_act)plan.then);
        return 0;
    }
    rc = hold(p, from, len, &plan);
    evbuffer_drain(from, cut);
    if (rc == 0)
        release(p);
    return rc;
}

/*
 * Changing the chain.
 */

static struct tox_link *find_link(struct tox_link *chain, int n, uint32_t uid)
{
    for (int i = 0; i < n; i++)
        if (chain[i].uid == uid)
            return &chain[i];
    return NULL;
}

/* The latency toxic's distribution, in ms (the bound of its attributes
 * caps a draw). */
static void latency_read_attrs(struct tox_link *l)
{
    const union opt_val *v = l->t->inst.vals;
    int kind = dist_find(v[TOX_LATENCY_DIST].s != NULL
                             ? v[TOX_LATENCY_DIST].s : "");

    memset(&l->lat, 0, sizeof(l->lat));
    l->lat.kind = kind < 0 ? DIST_UNIFORM : (enum dist_kind)kind;
    l->lat.center = (double)v[TOX_LATENCY_MS].i;
    l->lat.spread = (double)v[TOX_JITTER_MS].i;
    l->lat.sigma = v[TOX_LATENCY_SIGMA].f;
    l->lat.correlation = v[TOX_LATENCY_CORR].f;
    l->lat.max = 1e9;
}

static void link_read_attrs(struct tox_link *l)
{
    const struct opt_decl *d = l->t->type->attrs;

    memset(l->a, 0, sizeof(l->a));
    for (int i = 0; i < 3 && d[i].name != NULL; i++)
        if (d[i].type == OPT_INT)
            l->a[i] = l->t->inst.vals[i].i;
    if (l->t->type->kind == TOXIC_LATENCY)
        latency_read_attrs(l);
}

static uint8_t take_bit(struct pipe *p)
{
    for (uint8_t b = 0; b < 64; b++) {
        if (!(p->bits_used & (1ULL << b))) {
            p->bits_used |= 1ULL << b;
            return b;
        }
    }
    return 63; /* cannot happen: at most TOXIC_MAX (64) toxics */
}

/* Whether the link's toxic targets this connection (pipe_owner.targeted):
 * asked once, the first time the toxic is drawn in for it; the answer
 * stands when its toxicity changes, so the target's counts are not
 * spent twice on one connection. */
static bool targets(struct pipe *p, struct tox_link *l)
{
    if (!l->target_asked) {
        l->target_asked = true;
        l->target_took = p->owner->targeted == NULL ||
                         p->owner->targeted(p->ctx, l->t);
    }
    return l->target_took;
}

static bool draw_on(struct rng *rng, double toxicity)
{
    /* toxicity 0 never applies, 1 always; drawn per connection */
    return toxicity > 0 &&
           (toxicity >= 1 || rng_double(rng) < toxicity);
}

/* Re-times a held unit that a removed or changed toxic had timed: from its
 * base, by the links that timed it and are still on, as they are now. */
static void retime(struct pipe *p, struct held *h)
{
    uint64_t by = h->by;

    h->due = h->base;
    memset(&h->pace, 0, sizeof(h->pace));
    h->pace.rate = h->own_rate;
    h->by = 0;
    for (int i = 0; i < p->nchain; i++)
        if (p->chain[i].on && (by & link_mask(&p->chain[i])))
            apply_timing(&p->rng, &p->chain[i], h);
}

/* limit_time: the connection closes `time` ms after the link was made
 * (when the connection was made, or when the toxic came to it). */
static void on_limit_time(evutil_socket_t fd, short what, void *arg)
{
    struct pipe *p = arg;
    const struct tox_link *first = NULL;

    (void)fd;
    (void)what;
    /* the link whose time is up first (the one that fired) */
    for (int i = 0; i < p->nchain; i++) {
        const struct tox_link *l = &p->chain[i];
        struct timespec end, fend;
        if (!l->on || l->t->type->kind != TOXIC_LIMIT_TIME)
            continue;
        end = l->st.lt.since;
        timespec_add_ns(&end, l->a[TOX_LIMIT_TIME_MS] * 1000000LL);
        if (first != NULL) {
            fend = first->st.lt.since;
            timespec_add_ns(&fend, first->a[TOX_LIMIT_TIME_MS] * 1000000LL);
            if (timespec_le(&fend, &end))
                continue;
        }
        first = l;
    }
    if (first != NULL)
        acted(p, first, (double)first->a[TOX_LIMIT_TIME_MS], 0,
              "connection closed: its time is up");
    p->owner->close(p->ctx, false, "limit_time toxic");
}

/* Arms link l's timer for its end when it is an active limit_time, else
 * disarms it. Returns 0 or -ENOMEM. */
static int limit_time_sync(struct pipe *p, struct tox_link *l)
{
    struct timespec now, end;
    struct timeval tv = { 0, 0 };

    if (l->t->type->kind != TOXIC_LIMIT_TIME)
        return 0;
    if (!l->on) {
        if (l->st.lt.ev != NULL)
            evtimer_del(l->st.lt.ev);
        return 0;
    }
    if (l->st.lt.ev == NULL) {
        l->st.lt.ev = evtimer_new(bufferevent_get_base(p->src), on_limit_time,
                                  p);
        if (l->st.lt.ev == NULL)
            return -ENOMEM;
    }
    end = l->st.lt.since;
    timespec_add_ns(&end, l->a[TOX_LIMIT_TIME_MS] * 1000000LL);
    timespec_now(&now);
    if (!timespec_le(&end, &now)) {
        long long us = ((end.tv_sec - now.tv_sec) * NS +
                        (end.tv_nsec - now.tv_nsec) + 999) / 1000;
        tv.tv_sec = (time_t)(us / 1000000);
        tv.tv_usec = (suseconds_t)(us % 1000000);
    }
    return evtimer_add(l->st.lt.ev, &tv) < 0 ? -ENOMEM : 0;
}

/* The state a new link starts with. */
static void link_init_state(struct pipe *p, struct tox_link *l)
{
    switch (l->t->type->kind) {
    case TOXIC_PACKET_LOSS:
    case TOXIC_CORRUPT:
        rng_fork(&p->rng, &l->rng);
        break;
    case TOXIC_LIMIT_TIME:
        timespec_now(&l->st.lt.since);
        break;
    default:
        break;
    }
}

/* Frees what link l owns (its copy in a new chain is gone too). */
static void free_link_state(struct tox_link *l)
{
    if (l->t->type->kind == TOXIC_LIMIT_TIME && l->st.lt.ev != NULL) {
        event_free(l->st.lt.ev);
        l->st.lt.ev = NULL;
    }
}

int pipe_set_chain(struct pipe *p, struct toxic *const *toxics, int n,
                   enum toxic_stream stream)
{
    struct tox_link *old = p->chain, *chain = NULL;
    int nold = p->nchain, m = 0;
    uint64_t changed = 0, kept_bits = 0;
    bool close = false, fresh_timeout = false, reset_on = false;

    if (n > 0) {
        chain = calloc((size_t)n, sizeof(*chain));
        if (chain == NULL)
            return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        const struct toxic *t = toxics[i];
        struct tox_link *was, *l;
        if (t->stream != stream || !toxic_kind_in_chain(t->type->kind))
            continue;
        l = &chain[m++];
        was = find_link(old, nold, t->uid);
        if (was != NULL) {
            long long a[3];
            struct dist lat;
            *l = *was;
            l->t = t;
            memcpy(a, l->a, sizeof(a));
            lat = l->lat;
            link_read_attrs(l);
            if (l->toxicity != t->toxicity) {
                bool on = draw_on(&p->rng, t->toxicity) && targets(p, l);
                if (l->on && !on)
                    changed |= link_mask(l);
                l->on = on;
                l->toxicity = t->toxicity;
            }
            if (memcmp(a, l->a, sizeof(a)) != 0 ||
                !dist_same(&lat, &l->lat))
                changed |= link_mask(l);
            kept_bits |= link_mask(l);
        } else {
            l->t = t;
            l->uid = t->uid;
            l->toxicity = t->toxicity;
            l->on = draw_on(&p->rng, t->toxicity) && targets(p, l);
            l->bit = take_bit(p);
            link_read_attrs(l);
            link_init_state(p, l);
            kept_bits |= link_mask(l);
            if (l->on && t->type->kind == TOXIC_TIMEOUT &&
                l->a[TOX_TIMEOUT_MS] > 0)
                fresh_timeout = true;
        }
        if (l->on && t->type->kind == TOXIC_RESET_PEER && l->fired)
            reset_on = true;
    }
    for (int i = 0; i < nold; i++) {
        if (find_link(chain, m, old[i].uid) != NULL)
            continue;
        free_link_state(&old[i]);
        if (old[i].on) {
            changed |= link_mask(&old[i]);
            if (old[i].t->type->kind == TOXIC_TIMEOUT)
                close = true; /* as Toxiproxy: a removed timeout closes */
        }
    }
    free(old);
    p->chain = m > 0 ? chain : NULL;
    p->nchain = m;
    if (m == 0)
        free(chain);
    if (changed != 0)
        for (uint32_t i = 0; i < p->nheld; i++)
            if (held_at(p, i)->by & changed)
                retime(p, held_at(p, i));
    p->bits_used = kept_bits;
    if (!reset_on)
        cancel_tox_timer(p, TOXT_RESET);
    for (int i = 0; i < m; i++)
        if (limit_time_sync(p, &p->chain[i]) < 0)
            return -ENOMEM;
    if (close) {
        p->owner->close(p->ctx, false, "timeout toxic removed");
        return 0;
    }
    /* a timeout toxic counts from when it applies */
    for (int i = 0; i < m && fresh_timeout; i++) {
        if (p->chain[i].on && p->chain[i].t->type->kind == TOXIC_TIMEOUT &&
            p->chain[i].a[TOX_TIMEOUT_MS] > 0) {
            if (tox_timeout(p, &p->chain[i]) < 0)
                return -ENOMEM;
            break;
        }
    }
    if (changed != 0 && p->dst != NULL) {
        if (!rearm(p, false))
            return 0;
        release_unprompted(p);
    }
    return 0;
}

void pipe_check_full(struct pipe *p)
{
    if (!p->full &&
        (pipe_buffered(p) >= PIPE_CAP || p->nheld >= PIPE_HELD_MAX)) {
        p->full = true;
        p->owner->reading(p->ctx);
    }
}

void pipe_on_drained(struct pipe *p)
{
    if (!p->live)
        return;
    if (p->close_on_flush) {
        if (out_len(p) == 0 && p->nheld == 0)
            p->owner->close(p->ctx, p->reset_on_flush,
                            flush_why(p, BEHAV_CLOSE));
        return;
    }
    maybe_resume(p);
    p->owner->drained(p->ctx, p);
    if (p->live)
        pipe_maybe_shut(p);
}

void pipe_on_eof(struct pipe *p)
{
    p->eof = true;
    pipe_maybe_shut(p);
}

void pipe_maybe_shut(struct pipe *p)
{
    if (!p->live || !p->eof || p->shut || p->nheld != 0 || p->dst == NULL)
        return;
    if (out_len(p) != 0)
        return;
    /* requests read but not yet decided on still have to go through */
    if (!p->discard && p->src != NULL &&
        evbuffer_get_length(bufferevent_get_input(p->src)) != 0)
        return;
    if (p->shut_delayed)
        return;
    for (int i = 0; i < p->nchain && !p->slow_closed; i++) {
        const struct tox_link *l = &p->chain[i];
        if (l->on && l->t->type->kind == TOXIC_SLOW_CLOSE) {
            p->shut_delayed = true;
            p->slow_closed = true;
            if (arm_tox_timer(p, TOXT_SLOW_CLOSE,
                              (double)l->a[TOX_DELAY_MS] / 1000.0) < 0) {
                p->owner->close(p->ctx, true, "cannot arm a timer");
                return;
            }
            return;
        }
    }
    if (p->end_reset) {
        /* the source reset after its last bytes: so does the destination */
        p->owner->close(p->ctx, true, "backend reset");
        return;
    }
    if (bufferevent_getfd(p->dst) >= 0)
        shutdown(bufferevent_getfd(p->dst), SHUT_WR);
    p->shut = true;
    log_debug("session %llu: %s direction finished after %llu bytes",
              (unsigned long long)p->id, p->name, p->bytes);
    p->owner->done(p->ctx);
}
