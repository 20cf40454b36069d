/*
 * pipe: one direction of a session (see pipe.h).
 */
#include "net/pipe.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/log.h"
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
    if (p->timer_set) {
        evtimer_del(&p->timer);
        p->timer_set = false;
    }
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

    if (p->head == NULL)
        return;
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

static void deliver(struct pipe *p, struct evbuffer *from, size_t len,
                    enum behav_act then)
{
    struct evbuffer *out = bufferevent_get_output(p->dst);

    evbuffer_remove_buffer(from, out, len);
    p->bytes += len;
    if (then != BEHAV_PASS) {
        /* abort (request written: cut) or close (answer written: close) */
        p->close_on_flush = true;
        p->discard = true;
        if (evbuffer_get_length(out) == 0)
            session_close(p->s, false, behav_act_name(then));
    }
}

/* Writes every unit that is due, in order, and re-arms the timer. */
static void release(struct pipe *p)
{
    struct timespec now;

    timespec_now(&now);
    while (p->head != NULL && timespec_le(&p->head->due, &now)) {
        struct held *h = p->head;
        size_t len = evbuffer_get_length(h->buf);
        p->head = h->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->held_bytes -= len;
        deliver(p, h->buf, len, h->then);
        evbuffer_free(h->buf);
        free(h);
        if (p->s->state == SESSION_CLOSED)
            return;
    }
    arm_timer(p);
    pipe_maybe_shut(p);
}

static void pipe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pipe *p = arg;

    (void)fd;
    (void)what;
    release(p);
}

int pipe_emit(struct pipe *p, struct evbuffer *from, size_t len, double delay,
              enum behav_act then)
{
    struct held *h;

    if (p->head == NULL && delay <= 0) {
        deliver(p, from, len, then);
        return 0;
    }
    h = malloc(sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->buf = evbuffer_new();
    if (h->buf == NULL) {
        free(h);
        return -ENOMEM;
    }
    evbuffer_remove_buffer(from, h->buf, len);
    h->next = NULL;
    h->then = then;
    timespec_now(&h->due);
    if (delay > 0)
        timespec_add(&h->due, delay);
    p->held_bytes += len;
    if (p->tail != NULL) {
        p->tail->next = h;
        p->tail = h;
    } else {
        p->head = p->tail = h;
        arm_timer(p);
    }
    return 0;
}

void pipe_check_full(struct pipe *p)
{
    if (!p->full && pipe_buffered(p) >= PIPE_CAP) {
        p->full = true;
        bufferevent_disable(p->src, EV_READ);
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
    if (p->full && pipe_buffered(p) <= PIPE_LOW) {
        p->full = false;
        if (!p->eof && p->s->state == SESSION_OPEN)
            bufferevent_enable(p->src, EV_READ);
    }
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
    shutdown(bufferevent_getfd(p->dst), SHUT_WR);
    p->shut = true;
    log_debug("session %llu: %s direction finished after %llu bytes",
              (unsigned long long)p->s->id, p->name, p->bytes);
    session_on_pipe_done(p->s);
}
