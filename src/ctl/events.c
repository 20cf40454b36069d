/*
 * events: GET/DELETE /events and the SSE stream (see events.h).
 */
#include "ctl/events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>

#include "core/journal.h"
#include "core/log.h"
#include "ctl/api.h"

#define EVENTS_LIMIT_DEFAULT 1000
#define EVENTS_PING_S 15

/* What a reader asked for. */
struct filter {
    char proxy[1025];    /* "" any */
    char behavior[1025]; /* "" any: a behavior, toxic type or toxic name */
    int kind;          /* enum journal_kind, -1 any */
    uint64_t since;    /* events after this number */
    uint64_t limit;
};

struct events_stream {
    LIST_ENTRY(events_stream) link;
    struct evhttp_request *req; /* its reply is being sent */
    struct filter f;
    bool closing;               /* over the cap: its connection goes */
};

static LIST_HEAD(, events_stream) streams = LIST_HEAD_INITIALIZER(streams);
static int nstreams;
static struct event *ping_ev;  /* keepalive comments */
static struct event *close_ev; /* closes streams over the cap, after the
                                  current loop pass */

static int parse_u64(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (*end != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

/* Reads the query into f; returns NULL, or what is wrong. */
static const char *parse_filter(struct evhttp_request *req, struct filter *f)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    struct evkeyval *kv;
    const char *why = NULL;

    memset(f, 0, sizeof(*f));
    f->kind = -1;
    f->limit = EVENTS_LIMIT_DEFAULT;
    if (q == NULL)
        return NULL;
    TAILQ_INIT(&params);
    if (evhttp_parse_query_str(q, &params) < 0)
        return "bad query string";
    TAILQ_FOREACH(kv, &params, next) {
        if (strcmp(kv->key, "proxy") == 0) {
            journal_copy(f->proxy, sizeof(f->proxy), kv->value, (size_t)-1);
        } else if (strcmp(kv->key, "behavior") == 0) {
            journal_copy(f->behavior, sizeof(f->behavior), kv->value, (size_t)-1);
        } else if (strcmp(kv->key, "since") == 0) {
            if (parse_u64(kv->value, &f->since) < 0)
                why = "since: expected an event number";
        } else if (strcmp(kv->key, "limit") == 0) {
            if (parse_u64(kv->value, &f->limit) < 0 || f->limit == 0 ||
                f->limit > EVENTS_LIMIT_MAX)
                why = "limit: expected 1 to 10000";
        } else if (strcmp(kv->key, "kind") == 0) {
            f->kind = -2;
            for (int k = 0; k < JOURNAL_KIND_N; k++)
                if (strcmp(kv->value, journal_kind_name(k)) == 0)
                    f->kind = k;
            if (f->kind == -2)
                why = "kind: expected fault, toxic, open, close or "
                      "connect_failed";
        } else {
            why = "unknown parameter (proxy, since, behavior, kind, limit)";
        }
    }
    evhttp_clear_headers(&params);
    return why;
}

/* Whether a field of cap bytes holds want, cut as the journal cuts. */
static bool field_is(const char *field, size_t cap, const char *want)
{
    size_t n = strlen(want);

    if (n > cap - 1)
        n = cap - 1;
    return strlen(field) == n && memcmp(field, want, n) == 0;
}

static bool matches(const struct filter *f, const struct journal_event *e)
{
    if (e->seq <= f->since)
        return false;
    if (f->proxy[0] != '\0' && !field_is(e->proxy, sizeof(e->proxy), f->proxy))
        return false;
    if (f->kind >= 0 && e->kind != f->kind)
        return false;
    if (f->behavior[0] != '\0' &&
        !field_is(e->behavior, sizeof(e->behavior), f->behavior) &&
        !field_is(e->toxic, sizeof(e->toxic), f->behavior))
        return false;
    return true;
}

struct listing {
    const struct filter *f;
    struct evbuffer *out;
    uint64_t n;
    uint64_t last; /* the newest event listed */
};

static bool list_one(const struct journal_event *e, void *arg)
{
    struct listing *l = arg;
    char json[4096];
    size_t n;

    if (!matches(l->f, e))
        return true;
    n = journal_json(e, json, sizeof(json));
    if (n == 0)
        return true;
    if (l->n > 0)
        evbuffer_add(l->out, ",", 1);
    evbuffer_add(l->out, json, n);
    l->last = e->seq;
    return ++l->n < l->f->limit &&
           evbuffer_get_length(l->out) < EVENTS_BODY_MAX;
}

void events_get(struct evhttp_request *req)
{
    struct filter f;
    const char *why = parse_filter(req, &f);
    struct evbuffer *out;
    struct listing l;

    if (why != NULL) {
        api_send_error(req, 400, why);
        return;
    }
    out = evbuffer_new();
    if (out == NULL) {
        api_send_error(req, 500, "out of memory");
        return;
    }
    l = (struct listing){ .f = &f, .out = out, .last = f.since };
    evbuffer_add_printf(out, "{\"events\":[");
    journal_each(f.since, list_one, &l);
    /* next: the since= that reads on from here */
    evbuffer_add_printf(out, "],\"next\":%" PRIu64 ",\"last\":%" PRIu64
                             ",\"dropped\":%" PRIu64 ",\"size\":%zu}\n",
                        l.n >= f.limit || evbuffer_get_length(out) >= EVENTS_BODY_MAX
                            ? l.last
                            : journal_last(),
                        journal_last(), journal_dropped(), journal_size());
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, 200, NULL, out);
    evbuffer_free(out);
}

void events_delete(struct evhttp_request *req)
{
    journal_clear();
    evhttp_send_reply(req, 204, NULL, NULL);
}

/* The bytes queued on a stream's connection. */
static size_t queued(const struct events_stream *s)
{
    struct evhttp_connection *c = evhttp_request_get_connection(s->req);
    struct bufferevent *bev = c != NULL ? evhttp_connection_get_bufferevent(c)
                                        : NULL;

    return bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* Sends chunk to s, unless it queues too much already: then it goes. */
static void stream_send(struct events_stream *s, struct evbuffer *chunk)
{
    if (s->closing)
        return;
    if (queued(s) + evbuffer_get_length(chunk) > EVENTS_STREAM_CAP) {
        log_info("control API: an event stream that does not read was "
                 "closed (%u bytes queued)", EVENTS_STREAM_CAP);
        s->closing = true;
        event_active(close_ev, EV_TIMEOUT, 1);
        return;
    }
    evhttp_send_reply_chunk(s->req, chunk);
}

/* An event as one SSE message; its length, 0 when it cannot be made. */
static size_t sse_message(const struct journal_event *e, char *out, size_t cap)
{
    int head = snprintf(out, cap, "id: %" PRIu64 "\nevent: %s\ndata: ", e->seq,
                        journal_kind_name(e->kind));
    size_t n;

    if (head < 0 || (size_t)head >= cap)
        return 0;
    n = journal_json(e, out + head, cap - (size_t)head - 2);
    if (n == 0)
        return 0;
    memcpy(out + head + n, "\n\n", 2);
    return (size_t)head + n + 2;
}

/* Sends msg to every stream whose filter e matches. */
static void stream_message(struct events_stream *s, const char *msg, size_t n)
{
    struct evbuffer *chunk = evbuffer_new();

    if (chunk == NULL)
        return;
    evbuffer_add(chunk, msg, n);
    stream_send(s, chunk);
    evbuffer_free(chunk);
}

/* The replay of a new stream: the ring's events after since, while they
 * take at most half the stream's cap (they are queued in one loop pass). */
static bool replay_one(const struct journal_event *e, void *arg)
{
    struct events_stream *s = arg;
    char msg[4200];
    size_t n;

    if (!matches(&s->f, e))
        return true;
    if (queued(s) > EVENTS_STREAM_CAP / 2) {
        n = (size_t)snprintf(msg, sizeof(msg),
                             ": replay stopped before %" PRIu64 " (GET "
                             "/events?since=%" PRIu64 " has the rest)\n\n",
                             e->seq, e->seq - 1);
        stream_message(s, msg, n);
        return false;
    }
    n = sse_message(e, msg, sizeof(msg));
    if (n > 0)
        stream_message(s, msg, n);
    return !s->closing;
}

/* A new event: made into a message once, sent to every stream that wants
 * it (the data path waits for this: it costs a copy per stream). */
static void on_journal(const struct journal_event *e, void *arg)
{
    struct events_stream *s;
    char msg[4200];
    size_t n = 0;

    (void)arg;
    LIST_FOREACH(s, &streams, link) {
        if (s->closing || !matches(&s->f, e))
            continue;
        if (n == 0 && (n = sse_message(e, msg, sizeof(msg))) == 0)
            return;
        stream_message(s, msg, n);
    }
}

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    struct events_stream *s;
    struct evbuffer *chunk = evbuffer_new();

    (void)fd;
    (void)what;
    (void)arg;
    if (chunk == NULL)
        return;
    LIST_FOREACH(s, &streams, link) {
        evbuffer_add(chunk, ": ping\n\n", 9);
        stream_send(s, chunk);
        evbuffer_drain(chunk, evbuffer_get_length(chunk));
    }
    evbuffer_free(chunk);
}

static void close_cb(evutil_socket_t fd, short what, void *arg)
{
    struct events_stream *s, *next;

    (void)fd;
    (void)what;
    (void)arg;
    for (s = LIST_FIRST(&streams); s != NULL; s = next) {
        next = LIST_NEXT(s, link);
        /* its connection's close callback (the API's) ends s */
        if (s->closing)
            evhttp_connection_free(evhttp_request_get_connection(s->req));
    }
}

struct events_stream *events_stream_start(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    const char *last = evhttp_find_header(evhttp_request_get_input_headers(req),
                                          "Last-Event-ID");
    struct events_stream *s = calloc(1, sizeof(*s));
    const char *why;
    struct evbuffer *hello;

    if (s == NULL) {
        api_send_error(req, 500, "out of memory");
        return NULL;
    }
    if (nstreams >= EVENTS_STREAMS_MAX) {
        free(s);
        api_send_error(req, 503, "too many event streams open");
        return NULL;
    }
    why = parse_filter(req, &s->f);
    if (why == NULL && last != NULL && parse_u64(last, &s->f.since) < 0)
        why = "Last-Event-ID: expected an event number";
    if (why != NULL) {
        free(s);
        api_send_error(req, 400, why);
        return NULL;
    }
    s->req = req;
    {
        /* a stream lives long and reads nothing more: no idle timeout,
         * and at most 4 KB read from the client */
        struct evhttp_connection *c = evhttp_request_get_connection(req);
        evhttp_connection_set_timeout(c, 86400);
        bufferevent_setwatermark(evhttp_connection_get_bufferevent(c), EV_READ,
                                 0, 4096);
    }
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_send_reply_start(req, 200, "OK");
    LIST_INSERT_HEAD(&streams, s, link);
    nstreams++;
    /* a first comment flushes the head; then what the ring holds */
    hello = evbuffer_new();
    if (hello != NULL) {
        evbuffer_add_printf(hello, ": vaurien events, last %" PRIu64 "\n\n",
                            journal_last());
        stream_send(s, hello);
        evbuffer_free(hello);
    }
    if (s->f.since > 0 || last != NULL)
        journal_each(s->f.since, replay_one, s);
    return s;
}

void events_stream_end(struct events_stream *s)
{
    if (s == NULL)
        return;
    LIST_REMOVE(s, link);
    nstreams--;
    /* a client that left while its reply was being sent: libevent took
     * the request off its connection and leaves it to us */
    if (evhttp_request_get_connection(s->req) == NULL)
        evhttp_request_free(s->req);
    free(s);
}

int events_init(struct event_base *base)
{
    struct timeval tv = { EVENTS_PING_S, 0 };

    ping_ev = event_new(base, -1, EV_PERSIST, ping_cb, NULL);
    close_ev = event_new(base, -1, 0, close_cb, NULL);
    if (ping_ev == NULL || close_ev == NULL || event_add(ping_ev, &tv) < 0) {
        events_deinit();
        return -ENOMEM;
    }
    journal_set_listener(on_journal, NULL);
    return 0;
}

void events_deinit(void)
{
    struct events_stream *s;

    journal_set_listener(NULL, NULL);
    while ((s = LIST_FIRST(&streams)) != NULL) {
        LIST_REMOVE(s, link);
        free(s);
    }
    nstreams = 0;
    if (ping_ev != NULL)
        event_free(ping_ev);
    if (close_ev != NULL)
        event_free(close_ev);
    ping_ev = close_ev = NULL;
}
