/*
 * pipe: one direction of a session (see pipe.h).
 */
#include "net/pipe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/log.h"
#include "core/rng.h"
#include "net/session.h"

static void timespec_now(struct timespec *t)
{
    clock_gettime(CLOCK_MONOTONIC, t);
}

static void timespec_add(struct timespec *t, double secs)
{
    long long ns = (long long)(secs * 1e9 + 0.5);

    t->tv_sec += ns / 1000000000LL;
    t->tv_nsec += ns % 1000000000LL;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* a <= b */
static bool timespec_le(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

static void pipe_timer_cb(evutil_socket_t fd, short what, void *arg);

void pipe_init(struct pipe *p, struct session *s, const char *name,
               struct bufferevent *src, struct bufferevent *dst)
{
    p->s = s;
    p->name = name;
    p->src = src;
    p->dst = dst;
    if (!p->timer_set) {
        evtimer_assign(&p->timer, bufferevent_get_base(src), pipe_timer_cb, p);
        p->timer_set = true;
    }
}

void pipe_deinit(struct pipe *p)
{
    struct held *h = p->head;

    while (h != NULL) {
        struct held *next = h->next;
        evbuffer_free(h->buf);
        free(h);
        h = next;
    }
    p->head = p->tail = NULL;
    p->held_bytes = 0;
    p->nheld = 0;
    if (p->timer_set) {
        evtimer_del(&p->timer);
        p->timer_set = false;
    }
    if (p->tox_timer != NULL) {
        event_free(p->tox_timer);
        p->tox_timer = NULL;
    }
    free(p->chain);
    p->chain = NULL;
    p->nchain = 0;
}

size_t pipe_buffered(const struct pipe *p)
{
    size_t out = p->dst != NULL
                     ? evbuffer_get_length(bufferevent_get_output(p->dst))
                     : 0;
    return out + p->held_bytes;
}

static void arm_timer(struct pipe *p)
{
    struct timespec now;
    struct timeval tv = { 0, 0 };

    if (p->head == NULL || p->head->forever) {
        evtimer_del(&p->timer);
        return;
    }
    timespec_now(&now);
    if (!timespec_le(&p->head->due, &now)) {
        long long ns = (p->head->due.tv_sec - now.tv_sec) * 1000000000LL +
                       (p->head->due.tv_nsec - now.tv_nsec);
        /* round up, so the timer never fires before the unit is due */
        long long us = (ns + 999) / 1000;
        tv.tv_sec = (time_t)(us / 1000000);
        tv.tv_usec = (suseconds_t)(us % 1000000);
    }
    evtimer_add(&p->timer, &tv);
}

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

static void deliver(struct pipe *p, struct evbuffer *from, size_t len,
                    enum behav_act then)
{
    struct evbuffer *out = bufferevent_get_output(p->dst);

    p->bytes += len;
    if (evbuffer_get_length(out) == 0) {
        /* Nothing queued: write now rather than after the next poll, as a
         * plain proxy does; what the socket does not take is queued. */
        int w = evbuffer_write_atmost(from, bufferevent_getfd(p->dst),
                                      (ev_ssize_t)len);
        if (w > 0)
            len -= (size_t)w;
    }
    move_bytes(from, out, len);
    if (then != BEHAV_PASS) {
        /* abort (request written: cut) or close (answer written: close) */
        p->close_on_flush = true;
        p->discard = true;
        if (evbuffer_get_length(out) == 0)
            session_close(p->s, false, behav_act_name(then));
    }
}

/* Resumes reading the source once the pipe is below its low-water mark. */
static void maybe_resume(struct pipe *p)
{
    if (p->full && pipe_buffered(p) <= PIPE_LOW && p->nheld <= PIPE_HELD_MAX / 2) {
        p->full = false;
        session_update_reading(p->s);
    }
}

/* Writes every unit that is due, in order, and re-arms the timer. */
static void release(struct pipe *p)
{
    struct timespec now;

    if (p->s->state == SESSION_CLOSED || p->dst == NULL)
        return;
    timespec_now(&now);
    while (p->head != NULL && !p->head->forever &&
           timespec_le(&p->head->due, &now)) {
        struct held *h = p->head;
        size_t len = evbuffer_get_length(h->buf);
        p->head = h->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->held_bytes -= len;
        p->nheld--;
        deliver(p, h->buf, len, h->then);
        evbuffer_free(h->buf);
        free(h);
        if (p->s->state == SESSION_CLOSED)
            return;
    }
    arm_timer(p);
    maybe_resume(p);
    pipe_maybe_shut(p);
}

static void pipe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pipe *p = arg;

    (void)fd;
    (void)what;
    release(p);
}

/* Appends a held unit of len bytes from the front of from. */
static int hold(struct pipe *p, struct evbuffer *from, size_t len,
                const struct timespec *due, const struct timespec *base,
                bool toxic, bool forever, enum behav_act then)
{
    struct held *h = malloc(sizeof(*h));

    if (h == NULL)
        return -ENOMEM;
    h->buf = evbuffer_new();
    if (h->buf == NULL) {
        free(h);
        return -ENOMEM;
    }
    move_bytes(from, h->buf, len);
    h->next = NULL;
    h->then = then;
    h->due = *due;
    h->base = *base;
    h->toxic = toxic;
    h->forever = forever;
    p->held_bytes += len;
    p->nheld++;
    if (p->tail != NULL) {
        p->tail->next = h;
        p->tail = h;
    } else {
        p->head = p->tail = h;
        arm_timer(p);
    }
    return 0;
}

static void tox_timer_cb(evutil_socket_t fd, short what, void *arg);

static void arm_tox_timer(struct pipe *p, enum pipe_tox_timer action,
                          double secs)
{
    struct timeval tv;

    if (p->tox_timer == NULL) {
        p->tox_timer = evtimer_new(bufferevent_get_base(p->src), tox_timer_cb, p);
        if (p->tox_timer == NULL)
            return; /* out of memory: the toxic's timer does not fire */
    }
    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    p->tox_action = action;
    evtimer_add(p->tox_timer, &tv);
}

static void tox_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pipe *p = arg;

    (void)fd;
    (void)what;
    switch (p->tox_action) {
    case TOXT_TIMEOUT:
        session_close(p->s, false, "timeout toxic");
        break;
    case TOXT_RESET:
        session_close(p->s, true, "reset_peer toxic");
        break;
    case TOXT_SLOW_CLOSE:
        p->shut_delayed = false;
        p->tox_action = TOXT_NONE;
        pipe_maybe_shut(p);
        break;
    case TOXT_NONE:
        break;
    }
}

#define PIECES_MAX 4096

struct piece {
    size_t len;
    struct timespec due;
    bool forever;
};

/* Runs len bytes through the toxics of the chain and queues what comes
 * out, in order. */
static int emit_toxic(struct pipe *p, struct evbuffer *from, size_t len,
                      double delay, enum behav_act then)
{
    static struct piece pc[PIECES_MAX], tmp[PIECES_MAX];
    struct timespec base;
    int n = 1, rc = 0;

    timespec_now(&base);
    if (delay > 0)
        timespec_add(&base, delay);
    pc[0].len = len;
    pc[0].due = base;
    pc[0].forever = false;
    for (int i = 0; i < p->nchain; i++) {
        struct tox_link *l = &p->chain[i];
        const union opt_val *a = l->t->inst.vals;
        switch (l->t->type->kind) {
        case TOXIC_LATENCY: {
            double ms = (double)a[TOX_LATENCY_MS].i;
            long long j = a[TOX_JITTER_MS].i;
            if (j > 0)
                ms += (double)((long long)rng_below(&rng_global,
                                                    (uint64_t)(2 * j + 1)) - j);
            if (ms > 0)
                for (int k = 0; k < n; k++)
                    timespec_add(&pc[k].due, ms / 1000.0);
            break;
        }
        case TOXIC_SLICER: {
            long long avg = a[TOX_SLICER_AVG].i, var = a[TOX_SLICER_VAR].i;
            double gap = (double)a[TOX_SLICER_DELAY_US].i / 1e6;
            int m = 0;
            if (avg <= 0)
                break;
            for (int k = 0; k < n && m < PIECES_MAX; k++) {
                size_t left = pc[k].len;
                int slice = 0;
                while (left > 0 && m < PIECES_MAX) {
                    long long size = avg;
                    if (var > 0)
                        size += (long long)rng_below(&rng_global,
                                                     (uint64_t)(2 * var + 1)) - var;
                    if (size < 1)
                        size = 1;
                    if ((size_t)size > left || m == PIECES_MAX - 1)
                        size = (long long)left;
                    tmp[m] = pc[k];
                    tmp[m].len = (size_t)size;
                    timespec_add(&tmp[m].due, gap * slice++);
                    left -= (size_t)size;
                    m++;
                }
            }
            memcpy(pc, tmp, sizeof(pc[0]) * (size_t)m);
            n = m;
            break;
        }
        case TOXIC_BANDWIDTH: {
            long long rate = a[TOX_RATE_KBPS].i;
            int m = 0;
            if (rate <= 0) {
                for (int k = 0; k < n; k++)
                    pc[k].forever = true;
                break;
            }
            /* pieces of at most 100 ms worth, so the rate is smooth */
            size_t step = (size_t)(rate * 100);
            for (int k = 0; k < n && m < PIECES_MAX; k++) {
                size_t left = pc[k].len;
                while (left > 0 && m < PIECES_MAX) {
                    size_t size = left < step || m == PIECES_MAX - 1 ? left : step;
                    struct timespec start = pc[k].due;
                    if (timespec_le(&start, &l->clock))
                        start = l->clock;
                    timespec_add(&start, (double)size / ((double)rate * 1000.0));
                    l->clock = start;
                    tmp[m] = pc[k];
                    tmp[m].len = size;
                    tmp[m].due = start;
                    left -= size;
                    m++;
                }
            }
            memcpy(pc, tmp, sizeof(pc[0]) * (size_t)m);
            n = m;
            break;
        }
        case TOXIC_LIMIT_DATA: {
            unsigned long long limit = (unsigned long long)a[TOX_LIMIT_BYTES].i;
            unsigned long long room = l->count < limit ? limit - l->count : 0;
            size_t total = 0;
            int m = 0;
            for (int k = 0; k < n; k++) {
                size_t take = pc[k].len;
                if (total + take > room)
                    take = (size_t)(room - total);
                if (take == 0)
                    break;
                pc[m] = pc[k];
                pc[m].len = take;
                total += take;
                m++;
            }
            l->count += total;
            if (l->count < limit)
                break;
            /* The limit is reached: what fits passes, the rest is dropped,
             * and the connection closes once it is written. */
            for (int k = 0; k < m && rc == 0; k++)
                rc = hold(p, from, pc[k].len, &pc[k].due, &base, true,
                          pc[k].forever, k == m - 1 ? BEHAV_CLOSE : BEHAV_PASS);
            evbuffer_drain(from, len - total);
            p->discard = true;
            if (m == 0) {
                if (p->tail != NULL)
                    p->tail->then = BEHAV_CLOSE;
                else
                    p->close_on_flush = true;
                if (p->head == NULL &&
                    evbuffer_get_length(bufferevent_get_output(p->dst)) == 0) {
                    session_close(p->s, false, "limit_data toxic");
                    return rc;
                }
            }
            release(p);
            return rc;
        }
        case TOXIC_TIMEOUT:
            evbuffer_drain(from, len);
            if (a[TOX_TIMEOUT_MS].i > 0)
                arm_tox_timer(p, TOXT_TIMEOUT,
                              (double)a[TOX_TIMEOUT_MS].i / 1000.0);
            return 0;
        case TOXIC_RESET_PEER:
            evbuffer_drain(from, len);
            if (!l->fired) {
                l->fired = true;
                arm_tox_timer(p, TOXT_RESET,
                              (double)a[TOX_TIMEOUT_MS].i / 1000.0);
            }
            return 0;
        case TOXIC_SLOW_CLOSE:
        case TOXIC_NOOP:
        case TOXIC_BEHAVIOR:
            break;
        }
    }
    for (int k = 0; k < n && rc == 0; k++)
        rc = hold(p, from, pc[k].len, &pc[k].due, &base, true, pc[k].forever,
                  k == n - 1 ? then : BEHAV_PASS);
    release(p);
    return rc;
}

int pipe_emit(struct pipe *p, struct evbuffer *from, size_t len, double delay,
              enum behav_act then)
{
    struct timespec due;

    if (p->nchain > 0)
        return emit_toxic(p, from, len, delay, then);
    if (p->head == NULL && delay <= 0) {
        deliver(p, from, len, then);
        return 0;
    }
    timespec_now(&due);
    if (delay > 0)
        timespec_add(&due, delay);
    return hold(p, from, len, &due, &due, false, false, then);
}

static const struct tox_link *find_link(const struct tox_link *chain, int n,
                                        uint32_t uid)
{
    for (int i = 0; i < n; i++)
        if (chain[i].uid == uid)
            return &chain[i];
    return NULL;
}

int pipe_set_chain(struct pipe *p, struct toxic *const *toxics, int n,
                   enum toxic_stream stream)
{
    struct tox_link *old = p->chain, *chain = NULL;
    int nold = p->nchain, m = 0;
    bool close = false;

    if (n > 0) {
        chain = calloc((size_t)n, sizeof(*chain));
        if (chain == NULL)
            return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        const struct toxic *t = toxics[i];
        const struct tox_link *was;
        if (t->stream != stream || t->type->kind == TOXIC_BEHAVIOR)
            continue;
        /* toxicity 0 never applies, 1 always; drawn per connection */
        if (t->toxicity <= 0 ||
            (t->toxicity < 1 && rng_double(&rng_global) >= t->toxicity))
            continue;
        was = find_link(old, nold, t->uid);
        if (was != NULL)
            chain[m] = *was;
        chain[m].t = t;
        chain[m].uid = t->uid;
        m++;
    }
    bool fresh_timeout = false;
    for (int i = 0; i < nold; i++)
        if (find_link(chain, m, old[i].uid) == NULL &&
            old[i].t->type->kind == TOXIC_TIMEOUT)
            close = true; /* as Toxiproxy: a removed timeout closes */
    for (int i = 0; i < m; i++)
        if (chain[i].t->type->kind == TOXIC_TIMEOUT &&
            find_link(old, nold, chain[i].uid) == NULL &&
            chain[i].t->inst.vals[TOX_TIMEOUT_MS].i > 0)
            fresh_timeout = true;
    free(old);
    p->chain = m > 0 ? chain : NULL;
    p->nchain = m;
    if (m == 0)
        free(chain);
    /* what the old toxics held goes on as if they had not been there */
    for (struct held *h = p->head; h != NULL; h = h->next) {
        if (h->toxic) {
            h->due = h->base;
            h->toxic = false;
            h->forever = false;
        }
    }
    if (p->tox_timer != NULL && p->tox_action != TOXT_SLOW_CLOSE &&
        p->tox_action != TOXT_NONE) {
        bool keep = false;
        for (int i = 0; i < m; i++)
            keep |= (p->tox_action == TOXT_TIMEOUT &&
                     p->chain[i].t->type->kind == TOXIC_TIMEOUT) ||
                    (p->tox_action == TOXT_RESET &&
                     p->chain[i].t->type->kind == TOXIC_RESET_PEER);
        if (!keep) {
            evtimer_del(p->tox_timer);
            p->tox_action = TOXT_NONE;
        }
    }
    if (close) {
        session_close(p->s, false, "timeout toxic removed");
        return 0;
    }
    /* a timeout toxic counts from when it applies */
    for (int i = 0; i < m && fresh_timeout; i++)
        if (p->chain[i].t->type->kind == TOXIC_TIMEOUT &&
            p->chain[i].t->inst.vals[TOX_TIMEOUT_MS].i > 0) {
            arm_tox_timer(p, TOXT_TIMEOUT,
                          (double)p->chain[i].t->inst.vals[TOX_TIMEOUT_MS].i /
                              1000.0);
            break;
        }
    if (p->dst != NULL)
        release(p);
    return 0;
}

void pipe_check_full(struct pipe *p)
{
    if (!p->full && (pipe_buffered(p) >= PIPE_CAP || p->nheld >= PIPE_HELD_MAX)) {
        p->full = true;
        session_update_reading(p->s);
    }
}

void pipe_on_drained(struct pipe *p)
{
    struct evbuffer *out = bufferevent_get_output(p->dst);

    if (p->close_on_flush) {
        if (evbuffer_get_length(out) == 0 && p->head == NULL)
            session_close(p->s, false, "closed after the last write");
        return;
    }
    maybe_resume(p);
    session_on_pipe_drained(p->s, p);
    if (p->s->state != SESSION_CLOSED)
        pipe_maybe_shut(p);
}

void pipe_on_eof(struct pipe *p)
{
    p->eof = true;
    pipe_maybe_shut(p);
}

void pipe_maybe_shut(struct pipe *p)
{
    if (!p->eof || p->shut || p->head != NULL || p->dst == NULL ||
        p->s->state == SESSION_CLOSED)
        return;
    if (evbuffer_get_length(bufferevent_get_output(p->dst)) != 0)
        return;
    /* requests read but not yet decided on still have to go through */
    if (!p->discard && evbuffer_get_length(bufferevent_get_input(p->src)) != 0)
        return;
    if (p->shut_delayed)
        return;
    for (int i = 0; i < p->nchain && !p->slow_closed; i++) {
        if (p->chain[i].t->type->kind == TOXIC_SLOW_CLOSE) {
            p->shut_delayed = true;
            p->slow_closed = true;
            arm_tox_timer(p, TOXT_SLOW_CLOSE,
                          (double)p->chain[i].t->inst.vals[TOX_DELAY_MS].i /
                              1000.0);
            return;
        }
    }
    shutdown(bufferevent_getfd(p->dst), SHUT_WR);
    p->shut = true;
    log_debug("session %llu: %s direction finished after %llu bytes",
              (unsigned long long)p->s->id, p->name, p->bytes);
    session_on_pipe_done(p->s);
}
