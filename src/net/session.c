/*
 * session: a client and its backend connection (see session.h).
 *
 *   accept ─▶ resolve backend ─▶ connect (each address in turn) ─▶ open
 *   open: client data ─▶ request units ─▶ verdicts ─▶ up pipe / answers
 *         backend data ─▶ verdict of the current request ─▶ down pipe
 *   any end ─▶ session_close() ─▶ graveyard ─▶ session_destroy()
 */
#include "net/session.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "behav/mix.h"
#include "core/addr.h"
#include "core/log.h"
#include "core/rng.h"
#include "net/proxy.h"

/* Bytes read from a socket in one go. */
#define READ_MAX (64 * 1024)

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void backend_read_cb(struct bufferevent *bev, void *arg);
static void backend_write_cb(struct bufferevent *bev, void *arg);
static void backend_event_cb(struct bufferevent *bev, short what, void *arg);
static void idle_cb(evutil_socket_t fd, short what, void *arg);
static void try_connect(struct session *s);

static void touch(struct session *s)
{
    clock_gettime(CLOCK_MONOTONIC_COARSE, &s->last_active);
}

static void set_nodelay(evutil_socket_t fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void set_reset_on_close(struct bufferevent *bev)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;

    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static struct timeval seconds_tv(double secs)
{
    struct timeval tv;

    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void dns_cb(int result, struct evutil_addrinfo *ai, void *arg)
{
    struct session *s = arg;
    struct proxy *p = s->proxy;
    char where[300];

    s->dns_req = NULL;
    if (s->state == SESSION_CLOSED) {
        /* session_close() cancelled the lookup; it can be freed now */
        if (ai != NULL)
            evutil_freeaddrinfo(ai);
        event_active(&p->reap_ev, EV_TIMEOUT, 1);
        return;
    }
    if (result != 0 || ai == NULL) {
        log_warn("session %llu: backend %s: cannot resolve: %s",
                 (unsigned long long)s->id,
                 addr_format(&p->backend, where, sizeof(where)),
                 evutil_gai_strerror(result));
        if (ai != NULL)
            evutil_freeaddrinfo(ai);
        session_close(s, false, "backend name not resolved");
        return;
    }
    s->ai = ai;
    s->ai_next = ai;
    s->state = SESSION_CONNECTING;
    try_connect(s);
}

int session_create(struct proxy *p, evutil_socket_t fd,
                   const struct sockaddr *peer)
{
    struct session *s = calloc(1, sizeof(*s));
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;

    if (s == NULL) {
        evutil_closesocket(fd);
        return -ENOMEM;
    }
    s->client = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->client == NULL) {
        evutil_closesocket(fd);
        free(s);
        return -ENOMEM;
    }
    s->proxy = p;
    s->id = ++p->next_id;
    s->state = SESSION_RESOLVING;
    addr_format_sockaddr(peer, s->peer, sizeof(s->peer));
    set_nodelay(fd);
    bufferevent_set_max_single_read(s->client, READ_MAX);
    bufferevent_setcb(s->client, client_read_cb, client_write_cb,
                      client_event_cb, s);
    bufferevent_setwatermark(s->client, EV_WRITE, PIPE_LOW, 0);
    evtimer_assign(&s->idle_ev, p->base, idle_cb, s);
    LIST_INSERT_HEAD(&p->sessions, s, link);
    p->accepted++;
    p->active++;
    touch(s);
    log_debug("session %llu: accepted %s", (unsigned long long)s->id, s->peer);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    req = evdns_getaddrinfo(p->dns, p->backend.host[0] ? p->backend.host : NULL,
                            p->backend_port, &hints, dns_cb, s);
    /* NULL: the callback already ran (numeric address, hosts file, error) */
    if (req != NULL && s->state == SESSION_RESOLVING)
        s->dns_req = req;
    return 0;
}

/* Tries the backend addresses from s->ai_next on; closes the client when
 * none is left. */
static void try_connect(struct session *s)
{
    struct proxy *p = s->proxy;
    struct timeval tv = seconds_tv(p->timeout);
    char where[300];

    while (s->ai_next != NULL) {
        struct evutil_addrinfo *ai = s->ai_next;
        struct bufferevent *bev =
            bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL)
            break;
        bufferevent_setcb(bev, backend_read_cb, backend_write_cb,
                          backend_event_cb, s);
        bufferevent_set_timeouts(bev, NULL, &tv);
        s->backend = bev;
        if (bufferevent_socket_connect(bev, ai->ai_addr,
                                       (int)ai->ai_addrlen) == 0)
            return;
        /* Refused at once: the callback was not run; try the next one. */
        s->backend = NULL;
        bufferevent_free(bev);
        s->ai_next = ai->ai_next;
    }
    log_warn("session %llu: backend %s: cannot connect",
             (unsigned long long)s->id,
             addr_format(&p->backend, where, sizeof(where)));
    session_close(s, false, "backend unreachable");
}

static void on_connected(struct session *s)
{
    struct proxy *p = s->proxy;

    evutil_freeaddrinfo(s->ai);
    s->ai = s->ai_next = NULL;
    s->state = SESSION_OPEN;
    bufferevent_set_timeouts(s->backend, NULL, NULL);
    set_nodelay(bufferevent_getfd(s->backend));
    bufferevent_set_max_single_read(s->backend, READ_MAX);
    bufferevent_setwatermark(s->backend, EV_WRITE, PIPE_LOW, 0);
    pipe_init(&s->up, s, "up", s->client, s->backend);
    pipe_init(&s->down, s, "down", s->backend, s->client);
    s->reply.rep = BEHAV_PASS;
    bufferevent_enable(s->client, EV_READ | EV_WRITE);
    bufferevent_enable(s->backend, EV_READ | EV_WRITE);
    if (!p->stay_connected) {
        struct timeval tv = seconds_tv(p->timeout);
        evtimer_add(&s->idle_ev, &tv);
    }
    touch(s);
    log_debug("session %llu: connected to the backend",
              (unsigned long long)s->id);
}

/* Carries out a verdict on the len bytes at the front of in (a request). */
static void apply_request(struct session *s, const struct behav_verdict *v,
                          struct evbuffer *in, size_t len)
{
    struct proxy_conf *c = s->proxy->conf;
    struct evbuffer *reply;

    log_debug("session %llu: %zu bytes: %s (request %s, reply %s)",
              (unsigned long long)s->id, len, v->by->name,
              behav_act_name(v->req), behav_act_name(v->rep));
    s->reply = *v;
    switch (v->req) {
    case BEHAV_PASS:
    case BEHAV_HOLD:
        if (pipe_emit(&s->up, in, len, v->req == BEHAV_HOLD ? v->req_delay : 0,
                      BEHAV_PASS) < 0)
            session_close(s, true, "out of memory");
        return;
    case BEHAV_ABORT:
        if (pipe_emit(&s->up, in, len, 0, BEHAV_ABORT) < 0)
            session_close(s, true, "out of memory");
        return;
    case BEHAV_ERROR:
        evbuffer_drain(in, len);
        reply = evbuffer_new();
        if (reply == NULL) {
            session_close(s, true, "out of memory");
            return;
        }
        c->proto->error_reply(c->proto_vals, &rng_global, reply);
        if (pipe_emit(&s->down, reply, evbuffer_get_length(reply), 0,
                      BEHAV_PASS) < 0)
            session_close(s, true, "out of memory");
        evbuffer_free(reply);
        if (s->state != SESSION_CLOSED && pipe_buffered(&s->down) >= PIPE_CAP) {
            /* The client is not reading its answers: stop reading its
             * requests until it does. */
            s->synth_blocked = true;
            bufferevent_disable(s->client, EV_READ);
        }
        return;
    case BEHAV_CLOSE:
        session_close(s, false, "blackout");
        return;
    case BEHAV_HANG:
        evbuffer_drain(in, evbuffer_get_length(in));
        s->state = SESSION_HANG;
        /* The backend is not needed any more; the client is kept. */
        pipe_deinit(&s->up);
        pipe_deinit(&s->down);
        bufferevent_free(s->backend);
        s->backend = NULL;
        s->up.dst = s->down.src = NULL;
        log_debug("session %llu: hanging", (unsigned long long)s->id);
        return;
    case BEHAV_CORRUPT:
    case BEHAV_DROP:
        break;
    }
    /* Not request actions: pass it. */
    pipe_emit(&s->up, in, len, 0, BEHAV_PASS);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;

    touch(s);
    if (s->state == SESSION_HANG || s->up.discard) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    while (s->state == SESSION_OPEN && !s->up.discard && !s->synth_blocked) {
        struct proxy_conf *c = s->proxy->conf;
        struct behav_verdict v;
        int idx;

        len = evbuffer_get_length(in) == 0
                  ? 0
                  : c->proto->request_len(c->proto_vals, in);
        if (len == 0)
            break;
        idx = mix_draw(&c->mix, &rng_global);
        behav_decide(&c->behav[idx], &v);
        apply_request(s, &v, in, len);
    }
    if (s->state == SESSION_OPEN)
        pipe_check_full(&s->up);
}

static void backend_read_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct proxy_conf *c = s->proxy->conf;
    size_t len = evbuffer_get_length(in);

    touch(s);
    if (s->state != SESSION_OPEN || s->down.discard) {
        evbuffer_drain(in, len);
        return;
    }
    switch (s->reply.rep) {
    case BEHAV_DROP:
        evbuffer_drain(in, len);
        return;
    case BEHAV_CORRUPT: {
        struct evbuffer *unit = evbuffer_new();
        if (unit == NULL) {
            session_close(s, true, "out of memory");
            return;
        }
        evbuffer_remove_buffer(in, unit, len);
        c->proto->corrupt_reply(c->proto_vals, &rng_global, unit);
        pipe_emit(&s->down, unit, evbuffer_get_length(unit), 0, BEHAV_PASS);
        evbuffer_free(unit);
        s->reply.rep = BEHAV_PASS; /* one injection per reply */
        break;
    }
    case BEHAV_HOLD:
        if (pipe_emit(&s->down, in, len, s->reply.rep_delay, BEHAV_PASS) < 0)
            session_close(s, true, "out of memory");
        break;
    default:
        if (pipe_emit(&s->down, in, len, 0, BEHAV_PASS) < 0)
            session_close(s, true, "out of memory");
        break;
    }
    if (s->state == SESSION_OPEN)
        pipe_check_full(&s->down);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    (void)bev;
    if (s->state == SESSION_OPEN)
        pipe_on_drained(&s->down);
}

static void backend_write_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    (void)bev;
    if (s->state == SESSION_OPEN)
        pipe_on_drained(&s->up);
}

void session_on_pipe_drained(struct session *s, struct pipe *p)
{
    if (p == &s->down && s->synth_blocked &&
        pipe_buffered(&s->down) <= PIPE_LOW) {
        s->synth_blocked = false;
        if (!s->up.full && !s->up.eof)
            bufferevent_enable(s->client, EV_READ);
        /* requests already read may be waiting for a verdict */
        client_read_cb(s->client, s);
    }
}

void session_on_pipe_done(struct session *s)
{
    if (s->up.shut && s->down.shut)
        session_close(s, false, "both sides finished");
}

static const char *event_error(short what)
{
    int e = EVUTIL_SOCKET_ERROR();

    if (what & BEV_EVENT_TIMEOUT)
        return "timed out";
    return e != 0 ? evutil_socket_error_to_string(e) : "error";
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct session *s = arg;
    char why[160];

    (void)bev;
    if (what & BEV_EVENT_EOF) {
        if (s->state == SESSION_OPEN) {
            /* requests still in the input (synth_blocked) are dropped */
            pipe_on_eof(&s->up);
        } else {
            session_close(s, false, "client closed");
        }
        return;
    }
    snprintf(why, sizeof(why), "client: %s", event_error(what));
    /* A client that resets gets its backend reset too. */
    session_close(s, EVUTIL_SOCKET_ERROR() == ECONNRESET, why);
}

static void backend_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct session *s = arg;
    char why[160], where[300];

    (void)bev;
    if (s->state == SESSION_CONNECTING) {
        if (what & BEV_EVENT_CONNECTED) {
            on_connected(s);
            return;
        }
        log_debug("session %llu: backend address failed: %s",
                  (unsigned long long)s->id, event_error(what));
        if (what & BEV_EVENT_TIMEOUT) {
            log_warn("session %llu: backend %s: connect timed out",
                     (unsigned long long)s->id,
                     addr_format(&s->proxy->backend, where, sizeof(where)));
            session_close(s, false, "backend connect timeout");
            return;
        }
        bufferevent_free(s->backend);
        s->backend = NULL;
        s->ai_next = s->ai_next->ai_next;
        try_connect(s);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        pipe_on_eof(&s->down);
        return;
    }
    snprintf(why, sizeof(why), "backend: %s", event_error(what));
    session_close(s, EVUTIL_SOCKET_ERROR() == ECONNRESET, why);
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    struct proxy *p = s->proxy;
    struct timespec now;
    double idle;
    struct timeval tv;

    (void)fd;
    (void)what;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    idle = (double)(now.tv_sec - s->last_active.tv_sec) +
           (double)(now.tv_nsec - s->last_active.tv_nsec) / 1e9;
    /* Data held by a behavior is not idleness. */
    if (idle + 0.005 >= p->timeout && s->up.head == NULL &&
        s->down.head == NULL) {
        session_close(s, false, "idle timeout");
        return;
    }
    tv = seconds_tv(idle < p->timeout ? p->timeout - idle : p->timeout);
    evtimer_add(&s->idle_ev, &tv);
}

void session_close(struct session *s, bool reset, const char *why)
{
    struct proxy *p = s->proxy;

    if (s->state == SESSION_CLOSED)
        return;
    s->state = SESSION_CLOSED;
    log_debug("session %llu: closed (%s), %llu bytes up, %llu down",
              (unsigned long long)s->id, why, s->up.bytes, s->down.bytes);
    evtimer_del(&s->idle_ev);
    pipe_deinit(&s->up);
    pipe_deinit(&s->down);
    if (reset) {
        set_reset_on_close(s->client);
        set_reset_on_close(s->backend);
    }
    if (s->client != NULL)
        bufferevent_free(s->client);
    if (s->backend != NULL)
        bufferevent_free(s->backend);
    s->client = s->backend = NULL;
    if (s->dns_req != NULL)
        evdns_getaddrinfo_cancel(s->dns_req); /* dns_cb runs later */
    LIST_REMOVE(s, link);
    LIST_INSERT_HEAD(&p->graveyard, s, link);
    p->active--;
    event_active(&p->reap_ev, EV_TIMEOUT, 1);
}

void session_destroy(struct session *s)
{
    if (s->ai != NULL)
        evutil_freeaddrinfo(s->ai);
    LIST_REMOVE(s, link);
    free(s);
}
