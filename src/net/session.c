/*
 * session: a client and its backend connection (see session.h).
 *
 *   accept ─▶ gate (refuse: reset; slow_open: wait) ─▶ resolve backend
 *          ─▶ connect (each address in turn) ─▶ open
 *   open, framed: client data ─▶ frame(up) ─▶ request units ─▶ a verdict
 *                 each ─▶ up pipe, or an answer queued in order
 *                 backend data ─▶ frame(down) ─▶ reply units ─▶ the verdict
 *                 of their request ─▶ down pipe
 *   open, tunnel: each client chunk gets a verdict; backend data follows the
 *                 verdict of the last chunk (tcp, and after an upgrade)
 *   open, raw:    bytes pass both ways untouched
 *   any end ─▶ session_close() ─▶ graveyard ─▶ session_destroy()
 */
#include "net/session.h"
#include "net/h2.h"

#include "behav/replay.h"
#include "behav/schedule.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "behav/mix.h"
#include "core/addr.h"
#include "core/log.h"
#include "core/script.h"
#include "core/rng.h"
#include "core/vassert.h"
#include "net/fast.h"
#include "net/gate.h"
#include "net/linger.h"
#include "net/proxy.h"
#include "net/report.h"

/* How long a client must stay silent in the middle of what a framer holds
 * before the framer may send it on (proto.h, stalled). */
#define STALL_MS 20

/* Bytes read from a socket in one go (and the largest tunnel chunk). */
#define READ_MAX (64 * 1024)

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void backend_read_cb(struct bufferevent *bev, void *arg);
static void backend_write_cb(struct bufferevent *bev, void *arg);
static void backend_event_cb(struct bufferevent *bev, short what, void *arg);
static void idle_cb(evutil_socket_t fd, short what, void *arg);
static void try_connect(struct session *s);
static void resolve(struct session *s);
static void slow_open_cb(evutil_socket_t fd, short what, void *arg);
static void out_of_memory(struct session *s);
static void session_pump(struct session *s);
static void on_client_readable(evutil_socket_t fd, short what, void *arg);
static void on_backend_readable(evutil_socket_t fd, short what, void *arg);

static void touch(struct session *s)
{
    clock_gettime(CLOCK_MONOTONIC_COARSE, &s->last_active);
}

void session_touch(struct session *s)
{
    touch(s);
}

void session_conf_changed(struct session *s)
{
    if (s->fast && !fast_eligible(s))
        fast_leave(s);
    else if (!s->fast)
        fast_enter(s);
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
    if (p == NULL) {
        /* its proxy was deleted while the lookup was cancelled */
        if (ai != NULL)
            evutil_freeaddrinfo(ai);
        free(s);
        return;
    }
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
                   const struct sockaddr *peer, struct tls_link *link)
{
    struct session *s = calloc(1, sizeof(*s));
    struct timeval tv;
    double wait_ms;

    if (s == NULL) {
        evutil_closesocket(fd);
        tls_link_put(link);
        return -ENOMEM;
    }
    s->tls_link = link;
    /* not closed on free: session_close() closes it, lingering when the
     * client may still be sending (linger.h) */
    s->client = bufferevent_socket_new(p->base, fd, 0);
    if (s->client == NULL) {
        evutil_closesocket(fd);
        tls_link_put(link);
        free(s);
        return -ENOMEM;
    }
    s->proxy = p;
    s->id = ++p->next_id;
    s->state = SESSION_RESOLVING;
    addr_format_sockaddr(peer, s->peer, sizeof(s->peer));
    set_nodelay(fd);
    /* the bufferevents write and report connect errors; reading is ours
     * (on_readable), so they get no read callback */
    bufferevent_setcb(s->client, NULL, client_write_cb, client_event_cb, s);
    bufferevent_setwatermark(s->client, EV_WRITE, PIPE_LOW, 0);
    evtimer_assign(&s->idle_ev, p->base, idle_cb, s);
    LIST_INSERT_HEAD(&p->sessions, s, link);
    p->accepted++;
    p->active++;
    proxy_session_opened(p);
    touch(s);
    log_debug("session %llu: accepted %s", (unsigned long long)s->id, s->peer);
    report_conn(s, JOURNAL_OPEN, "accepted");
    switch (gate_draw(s, &wait_ms)) {
    case GATE_REFUSE:
        session_close(s, true, "refuse toxic");
        return 0;
    case GATE_WAIT:
        /* the idle timer is not needed before the connect: it waits */
        s->state = SESSION_WAITING;
        evtimer_assign(&s->idle_ev, p->base, slow_open_cb, s);
        tv = seconds_tv(wait_ms / 1000.0);
        if (evtimer_add(&s->idle_ev, &tv) < 0)
            session_close(s, true, "cannot arm the slow_open timer");
        return 0;
    case GATE_OPEN:
        break;
    }
    resolve(s);
    return 0;
}

/* Looks the backend up; dns_cb goes on. */
static void resolve(struct session *s)
{
    struct proxy *p = s->proxy;
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;

    s->state = SESSION_RESOLVING;
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
}

/* slow_open: its delay is over; the idle timer is itself again. */
static void slow_open_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    evtimer_assign(&s->idle_ev, s->proxy->base, idle_cb, s);
    resolve(s);
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
        bufferevent_setcb(bev, NULL, backend_write_cb,
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
    report_conn(s, JOURNAL_CONNECT_FAILED, where);
    session_close(s, false, "backend unreachable");
}

static struct entry *queue_greeting(struct session *s);

/* Sets up the protocol's framer for a new connection. */
static void start_framing(struct session *s)
{
    struct proxy_conf *c = s->proxy->conf;

    s->proto = c->proto;
    /* a multiplexed protocol (http2) keeps the framed mode: its state is
     * made at the first bytes, and it never goes zero-copy */
    s->mode = c->proto->frame == NULL && !c->proto->mux ? PROTO_TUNNEL
                                                         : PROTO_FRAMED;
}

/* The framer's state, made when the first bytes come (an idle connection
 * costs no more than a tcp one). Returns 0 or -ENOMEM. */
static int framer_begin(struct session *s)
{
    struct proxy_conf *c = s->proxy->conf;

    if (s->pstate != NULL || s->mode != PROTO_FRAMED)
        return 0;
    s->pstate = calloc(1, s->proto->state_size);
    if (s->pstate == NULL)
        return -ENOMEM;
    if (s->proto->init != NULL) {
        char backend[300];
        s->proto->init(s->pstate, s->proto, c->proto_vals,
                       addr_format(&s->proxy->backend, backend,
                                   sizeof(backend)));
    }
    if (s->proto->server_first && queue_greeting(s) == NULL)
        return -ENOMEM;
    return 0;
}

static void pipe_close_cb(void *ctx, bool reset, const char *why)
{
    session_close(ctx, reset, why);
}

static void pipe_reading_cb(void *ctx)
{
    session_update_reading(ctx);
}

static void pipe_drained_cb(void *ctx, struct pipe *p)
{
    session_on_pipe_drained(ctx, p);
}

static void pipe_done_cb(void *ctx)
{
    session_on_pipe_done(ctx);
}

static void pipe_acted_cb(void *ctx, const struct pipe *p,
                          const struct toxic *t, double held_ms,
                          uint64_t bytes, const char *outcome)
{
    struct session *s = ctx;

    report_toxic(s, t, p == &s->up ? JOURNAL_UP : JOURNAL_DOWN, held_ms,
                 bytes, outcome);
}

/* Every accepted connection holds one: an idle connection costs at most
 * 4 KB in all (tests/e2e/test_transparency.py), and this is most of it.
 * State of a fault goes where the fault is (a tox_link, a behav_inst),
 * not here. */
_Static_assert(sizeof(struct session) <= 1680,
               "struct session grew: an idle connection must stay under 4 KB");

bool session_toxic_targets(struct session *s, const struct toxic *t)
{
    struct target_req r = { NULL, s->peer };
    struct behav_inst *b = &((struct toxic *)t)->inst; /* its counters */

    return !target_is_set(b->target) ||
           target_pass(b->target, &b->ts, &r, target_now());
}

static bool pipe_targeted_cb(void *ctx, const struct toxic *t)
{
    return session_toxic_targets(ctx, t);
}

static const struct pipe_owner pipe_owner = {
    .targeted = pipe_targeted_cb,
    .close = pipe_close_cb,
    .reading = pipe_reading_cb,
    .drained = pipe_drained_cb,
    .done = pipe_done_cb,
    .acted = pipe_acted_cb,
};

static void on_connected(struct session *s)
{
    struct proxy *p = s->proxy;
    struct timespec now;

    /* touched at accept, and not since: the connect's time (to the coarse
     * clock's few ms) */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    report_connected(s, (double)(now.tv_sec - s->last_active.tv_sec) +
                            (double)(now.tv_nsec - s->last_active.tv_nsec) / 1e9);
    evutil_freeaddrinfo(s->ai);
    s->ai = s->ai_next = NULL;
    s->state = SESSION_OPEN;
    bufferevent_set_timeouts(s->backend, NULL, NULL);
    set_nodelay(bufferevent_getfd(s->backend));
    if (p->tls.implicit_client) {
        /* the backend speaks TLS: the session talks to a relay (tls.h) */
        char who[400], where[300];
        evutil_socket_t plain;
        snprintf(who, sizeof(who), "session %llu: backend %s",
                 (unsigned long long)s->id,
                 addr_format(&p->backend, where, sizeof(where)));
        if (tls_relay_start(p->base, &p->tls, false, NULL,
                            bufferevent_getfd(s->backend), who, NULL, s->tls_link,
                            &plain) < 0) {
            bufferevent_setfd(s->backend, -1); /* closed by the relay */
            out_of_memory(s);
            return;
        }
        bufferevent_setfd(s->backend, plain);
    }
    bufferevent_setwatermark(s->backend, EV_WRITE, PIPE_LOW, 0);
    pipe_init(&s->up, &pipe_owner, s, s->id, "up", s->client, s->backend);
    pipe_init(&s->down, &pipe_owner, s, s->id, "down", s->backend, s->client);
    /* --seed replays per connection: each draws from generators of its
     * own, derived from the seed, its proxy's name and its ordinal there
     * (core/rng.h), whatever other connections do meanwhile */
    rng_derive(&s->rng, rng_run_seed, s->proxy->name, s->id, 0);
    rng_derive(&s->up.rng, rng_run_seed, s->proxy->name, s->id, 1);
    rng_derive(&s->down.rng, rng_run_seed, s->proxy->name, s->id, 2);
    s->up.totals = s->proxy->bytes[0];
    s->down.totals = s->proxy->bytes[1];
    s->reply.rep = BEHAV_PASS;
    start_framing(s);
    if (p->ntoxics > 0)
        session_set_toxics(s);
    if (s->state != SESSION_OPEN)
        return;
    /* the bufferevents only write; reading is ours (session_update_reading)
     * and a connection that goes zero-copy never arms it */
    bufferevent_enable(s->client, EV_WRITE);
    bufferevent_enable(s->backend, EV_WRITE);
    /* a socket bufferevent freezes its input's end against adding; we add */
    evbuffer_unfreeze(bufferevent_get_input(s->client), 0);
    evbuffer_unfreeze(bufferevent_get_input(s->backend), 0);
    event_assign(&s->crd, p->base, bufferevent_getfd(s->client),
                 EV_READ | EV_PERSIST, on_client_readable, s);
    event_assign(&s->brd, p->base, bufferevent_getfd(s->backend),
                 EV_READ | EV_PERSIST, on_backend_readable, s);
    s->rd_assigned = true;
    if (!p->stay_connected) {
        struct timeval tv = seconds_tv(p->timeout);
        if (evtimer_add(&s->idle_ev, &tv) < 0) {
            out_of_memory(s);
            return;
        }
    }
    touch(s);
    log_debug("session %llu: connected to the backend",
              (unsigned long long)s->id);
    if (!fast_enter(s))
        session_update_reading(s);
}

/* hang: this request and everything after it is swallowed and never
 * answered. What came before it still reaches the backend, and its replies
 * still come back. The connection stays open until the client leaves or
 * the idle timeout. */
static void go_hang(struct session *s, struct evbuffer *in)
{
    pipe_settle(&s->up); /* what passed before goes */
    evbuffer_drain(in, evbuffer_get_length(in));
    s->up.discard = true;
    s->hanging = true;
    log_debug("session %llu: hanging", (unsigned long long)s->id);
}

static void out_of_memory(struct session *s)
{
    session_close(s, true, "out of memory");
}

/* Queues bytes the proxy sends the client (an answer) behind everything
 * already on its way there, held delay seconds first. */
static void send_answer(struct session *s, struct evbuffer *answer, bool close,
                        double delay)
{
    if (pipe_emit(&s->down, answer, evbuffer_get_length(answer), delay,
                  close ? BEHAV_CLOSE : BEHAV_PASS) < 0) {
        out_of_memory(s);
        return;
    }
    if (s->state != SESSION_CLOSED && pipe_buffered(&s->down) >= PIPE_CAP) {
        /* The client is not reading its answers: stop reading its
         * requests until it does. */
        s->synth_blocked = true;
        session_update_reading(s);
    }
}

/* What a behavior may know of the unit at in[off, off + len). */
static void make_ctx(struct session *s, struct behav_ctx *ctx,
                     struct evbuffer *in, size_t off, size_t len,
                     const struct proto_unit *u, bool reply)
{
    ctx->proxy = s->proxy->name;
    ctx->proto = s->proto;
    ctx->pstate = s->pstate;
    ctx->unit = u;
    ctx->in = in;
    ctx->off = off;
    ctx->len = len;
    ctx->rng = &s->rng;
    ctx->conn = s->id;
    ctx->index = s->requests;
    ctx->client = s->peer;
    ctx->state = &s->script_state;
    ctx->reply = reply;
}

/* What decided a verdict: a behavior of the mix, or of toxic t. */
struct drawn {
    const struct behav_inst *b;
    const struct toxic *t; /* NULL: the mix */
};

#define MATCH_BYTES 4096 /* request bytes a matcher reads its parts from */

/* A request as the targets of its draw see it: its parts are parsed at
 * most once, when a matcher first asks. */
struct draw_req {
    const struct behav_ctx *ctx;
    struct target_req tr;
    struct proto_parts parts;
    bool parsed;
    double now; /* 0 until read */
    unsigned char buf[MATCH_BYTES];
};

/* Whether b's target lets it act on the request (target.h). */
static bool targeted(struct draw_req *r, struct behav_inst *b)
{
    const struct behav_ctx *ctx = r->ctx;

    if (!target_is_set(b->target))
        return true;
    if (!r->parsed) {
        struct evbuffer_ptr at;
        size_t n = ctx->len < sizeof(r->buf) ? ctx->len : sizeof(r->buf);
        r->parsed = true;
        r->tr.client = ctx->client;
        memset(&r->parts, 0, sizeof(r->parts));
        if (ctx->proto->parts != NULL && ctx->unit != NULL &&
            ctx->in != NULL &&
            evbuffer_ptr_set(ctx->in, &at, ctx->off, EVBUFFER_PTR_SET) == 0 &&
            evbuffer_copyout_from(ctx->in, &at, r->buf, n) == (ev_ssize_t)n) {
            ctx->proto->parts(r->buf, n, ctx->unit, &r->parts);
            r->tr.parts = &r->parts;
        }
    }
    if (r->now == 0)
        r->now = target_now();
    return target_pass(b->target, &b->ts, &r->tr, r->now);
}

/* The behavior a schedule's phase gives the request, if its target lets
 * it (else dummy's); NULL when every phase has ended. */
static struct behav_inst *scheduled(struct draw_req *r, struct schedule *sc)
{
    struct behav_inst *b;

    if (r->now == 0)
        r->now = target_now();
    b = schedule_next(sc, r->now);
    if (b != NULL && !targeted(r, b))
        return NULL;
    return b;
}

/* The verdict of one request, whose bytes so far are in[off, off + len):
 * the proxy's behavior toxics first, each drawn against its toxicity and
 * its target, in the order added; then the mix, where a behavior whose
 * target turns the request away gives dummy. */
static void draw(struct session *s, struct behav_verdict *v,
                 struct evbuffer *in, size_t off, size_t len,
                 const struct proto_unit *u, struct drawn *d)
{
    int dummy = behav_dummy_index();
    struct proxy *p = s->proxy;
    struct proxy_conf *c = p->conf;
    struct behav_ctx ctx;
    struct draw_req r;
    int idx;

    s->requests++;
    p->stats.requests++;
    make_ctx(s, &ctx, in, off, len, u, false);
    r.ctx = &ctx;
    r.tr.parts = NULL;
    r.tr.client = s->peer;
    r.parsed = false;
    r.now = 0;
    if (replay_current() != NULL) { /* a recorded run decides alone */
        double held_ms;
        d->t = NULL;
        d->b = replay_lookup(p->name, s->id, s->requests, &held_ms);
        if (d->b != NULL && d->b->ops->proto != NULL &&
            strcmp(d->b->ops->proto, s->proto->name) != 0)
            d->b = NULL; /* an HTTP fault recorded on another protocol */
        if (d->b == NULL)
            d->b = &c->behav[dummy];
        behav_decide((struct behav_inst *)d->b, &ctx, v);
        if (held_ms >= 0 && v->req == BEHAV_HOLD) /* as drawn then */
            v->req_delay = held_ms / 1000.0;
        else if (held_ms >= 0 && v->rep == BEHAV_HOLD)
            v->rep_delay = held_ms / 1000.0;
        return;
    }
    for (int i = 0; i < p->ntoxics; i++) {
        struct toxic *t = p->toxics[i];
        if (t->type->kind != TOXIC_BEHAVIOR || t->toxicity <= 0)
            continue;
        if ((t->toxicity >= 1 || rng_double(&s->rng) < t->toxicity) &&
            targeted(&r, &t->inst)) {
            struct behav_inst *b = &t->inst;
            if (t->sched != NULL && (b = scheduled(&r, t->sched)) == NULL)
                b = &c->behav[dummy];
            behav_decide(b, &ctx, v);
            d->b = b;
            d->t = t;
            return;
        }
    }
    d->t = NULL;
    if (c->sched != NULL) {
        d->b = scheduled(&r, c->sched);
        if (d->b == NULL)
            d->b = &c->behav[dummy];
        behav_decide((struct behav_inst *)d->b, &ctx, v);
        if (v->by != &behav_dummy)
            p->faults[behav_find(v->by->name)]++;
        return;
    }
    idx = mix_draw(&c->mix, &s->rng);
    if (!targeted(&r, &c->behav[idx]))
        idx = dummy;
    behav_decide(&c->behav[idx], &ctx, v);
    d->b = &c->behav[idx];
    if (v->by != &behav_dummy)
        p->faults[idx]++;
}

void session_draw(struct session *s, struct behav_verdict *v,
                  struct evbuffer *in, size_t len, const struct proto_unit *u,
                  struct session_drawn *by)
{
    struct drawn d = { NULL, NULL };

    draw(s, v, in, 0, len, u, &d);
    by->b = d.b;
    by->t = d.t;
}

void session_journal(struct session *s, const struct session_drawn *by,
                     const struct behav_verdict *v, const struct proto_unit *u,
                     struct evbuffer *in, size_t len, struct evbuffer *answer)
{
    if (v->by != &behav_dummy && (v->req != BEHAV_PASS ||
                                  v->rep != BEHAV_PASS || v->hook != 0))
        report_fault(s, by->b, by->t, v, u, in, 0, len, answer);
}

/* A drawn verdict that does something goes to the journal (report.h):
 * the request's bytes so far are in[off, off + len), answer is the
 * proxy's reply when it answers. */
static void journal_draw(struct session *s, const struct drawn *d,
                         const struct behav_verdict *v,
                         const struct proto_unit *u, struct evbuffer *in,
                         size_t off, size_t len, struct evbuffer *answer)
{
    if (v->by == &behav_dummy ||
        (v->req == BEHAV_PASS && v->rep == BEHAV_PASS && v->hook == 0))
        return;
    report_fault(s, d->b, d->t, v, u, in, off, len, answer);
}

/* The bytes the proxy answers a request with: the verdict's own (custom
 * behaviors), or the protocol's error reply. */
static void build_answer(struct session *s, const struct behav_verdict *v,
                         const struct proto_unit *u, struct evbuffer *answer,
                         bool *close)
{
    struct rng bytes;

    if (v->answer != NULL) {
        evbuffer_add(answer, v->answer, v->answer_len);
        *close = v->answer_close;
        return;
    }
    rng_fork(&s->rng, &bytes); /* one draw, whatever the reply takes */
    if (u == NULL || s->mode != PROTO_FRAMED || v->garbage) {
        proto_garbage_reply(&bytes, answer);
        if (v->answer_close)
            *close = true;
        return;
    }
    struct proto_error pe = { .status = "", .message = "", .sqlstate = "",
                              .enhanced = "" }; /* no options: a refusal */
    if (v->err != NULL) {
        pe.status = v->err[BEHAV_ERR_STATUS].s;
        pe.message = v->err[BEHAV_ERR_MESSAGE].s;
        pe.code = v->err[BEHAV_ERR_CODE].i;
        pe.sqlstate = v->err[BEHAV_ERR_SQLSTATE].s;
        pe.enhanced = v->err[BEHAV_ERR_ENHANCED].s;
    }
    s->proto->error_reply(s->pstate, &pe, u, &bytes, answer, close);
}

/* The tunnel's reply verdict changes: the old one's hook is let go. */
static void set_tunnel_reply(struct session *s, const struct behav_verdict *v)
{
    script_unref(s->reply.hook);
    s->reply = *v;
}

void session_set_toxics(struct session *s)
{
    struct proxy *p = s->proxy;

    if (s->state != SESSION_OPEN)
        return;
    if (s->fast && !fast_eligible(s))
        fast_leave(s);
    if (pipe_set_chain(&s->up, p->toxics, p->ntoxics, TOXIC_UPSTREAM) < 0 ||
        (s->state == SESSION_OPEN &&
         pipe_set_chain(&s->down, p->toxics, p->ntoxics, TOXIC_DOWNSTREAM) < 0))
        out_of_memory(s);
}

/* The client was paused because it did not read its answers; once they
 * are written down to the low-water mark it is unpaused (and true is
 * returned). */
static bool answers_caught_up(struct session *s)
{
    if (!s->synth_blocked || pipe_buffered(&s->down) > PIPE_LOW)
        return false;
    s->synth_blocked = false;
    return true;
}

/* Whether the client waits for the queue: past the in-flight cap, a
 * tunnel that starts only once every earlier reply has been written, or a
 * STARTTLS upgrade. */
static bool client_held(const struct session *s)
{
    return s->synth_blocked || s->inflight_full || s->upgrading ||
           (s->mode == PROTO_TUNNEL && s->q.head != NULL);
}

/*
 * Tunnel mode: the original Vaurien's tcp. Each client chunk (at most
 * `buffer` bytes for tcp) is a request with a verdict of its own; backend
 * data follows the verdict of the last chunk.
 */
static void tunnel_request(struct session *s, struct evbuffer *in)
{
    struct proxy_conf *c = s->proxy->conf;
    size_t max = s->proto == &proto_tcp ? (size_t)c->proto_vals[0].i : READ_MAX;

    while (s->state == SESSION_OPEN && !s->up.discard && !client_held(s) &&
           evbuffer_get_length(in) > 0) {
        struct behav_verdict v;
        struct drawn d = { NULL, NULL };
        struct evbuffer *answer;
        bool close = false;
        size_t len = evbuffer_get_length(in);
        int rc = 0;

        if (len > max)
            len = max;
        if (s->mode == PROTO_RAW) {
            len = evbuffer_get_length(in);
            memset(&v, 0, sizeof(v));
            v.by = &behav_dummy;
        } else {
            draw(s, &v, in, 0, len, NULL, &d);
            if (v.req != BEHAV_ERROR)
                journal_draw(s, &d, &v, NULL, in, 0, len, NULL);
        }
        log_debug("session %llu: %zu bytes: %s (request %s, reply %s)",
                  (unsigned long long)s->id, len, v.by->name,
                  behav_act_name(v.req), behav_act_name(v.rep));
        set_tunnel_reply(s, &v);
        switch (v.req) {
        case BEHAV_HOLD:
            rc = pipe_emit(&s->up, in, len, v.req_delay, BEHAV_PASS);
            break;
        case BEHAV_ABORT:
            rc = pipe_emit(&s->up, in, len, 0, BEHAV_ABORT);
            break;
        case BEHAV_ERROR:
            if (v.forward) { /* the chunk goes; the answer is the reply */
                rc = pipe_emit(&s->up, in, len, 0, BEHAV_PASS);
                s->reply.rep = BEHAV_DROP;
            } else {
                evbuffer_drain(in, len);
            }
            answer = evbuffer_new();
            if (answer == NULL) {
                rc = -ENOMEM;
                break;
            }
            build_answer(s, &v, NULL, answer, &close);
            journal_draw(s, &d, &v, NULL, NULL, 0, 0, answer);
            send_answer(s, answer, close, v.req_delay);
            evbuffer_free(answer);
            if (close)
                s->up.discard = true;
            break;
        case BEHAV_CLOSE:
            session_close(s, false, "blackout");
            return;
        case BEHAV_RESET:
            session_close(s, true, "reset by a behavior");
            return;
        case BEHAV_HANG:
            go_hang(s, in);
            return;
        default:
            rc = pipe_emit(&s->up, in, len, 0, BEHAV_PASS);
            break;
        }
        if (rc < 0) {
            out_of_memory(s);
            return;
        }
    }
}

/* Carries out a reply verdict on the first len bytes of in; first says
 * whether they are the first bytes of the reply (garbage goes there), head
 * how many of them are the reply's head (a paced reply's go at once). A
 * held reply is due at s->down_due, set at its first step. */
static int reply_step(struct session *s, const struct behav_verdict *v,
                      struct evbuffer *in, size_t len, bool first,
                      size_t head)
{
    struct evbuffer *unit;
    struct rng bytes;
    int rc;

    if (v->rep == BEHAV_PASS && pipe_owe(&s->down, in, len))
        return 0; /* moved with the replies passing next to it */
    pipe_settle(&s->down);
    switch (v->rep) {
    case BEHAV_DROP:
        evbuffer_drain(in, len);
        return 0;
    case BEHAV_HOLD:
        if (first)
            pipe_due(&s->down, v->rep_delay, &s->down_due);
        return pipe_emit_until(&s->down, in, len, &s->down_due, BEHAV_PASS);
    case BEHAV_CORRUPT:
        if (!first)
            break;
        unit = evbuffer_new();
        if (unit == NULL)
            return -ENOMEM;
        evbuffer_remove_buffer(in, unit, len);
        rng_fork(&s->rng, &bytes);
        proto_corrupt(&bytes, unit);
        rc = pipe_emit(&s->down, unit, evbuffer_get_length(unit), 0,
                       BEHAV_PASS);
        evbuffer_free(unit);
        return rc;
    case BEHAV_PACE:
        if (head > len)
            head = len;
        if (head > 0 && (rc = pipe_emit(&s->down, in, head, 0, BEHAV_PASS)) < 0)
            return rc;
        return len > head ? pipe_emit_paced(&s->down, in, len - head,
                                            v->rep_rate)
                          : 0;
    default:
        break;
    }
    return pipe_emit(&s->down, in, len, 0, BEHAV_PASS);
}

/* A custom behavior's reply hook, on the reply's first len bytes in in
 * (from off). Fills *rv. Returns 1 when the reply is to be replaced by
 * *answer (made here), 0 when rv's reply verdict applies, -1 when the
 * session was closed. */
static int reply_hook(struct session *s, int hook, struct evbuffer *in,
                      size_t off, size_t len, const struct proto_unit *u,
                      struct behav_verdict *rv, struct evbuffer **answer,
                      bool *close)
{
    struct behav_ctx ctx;

    make_ctx(s, &ctx, in, off, len, u, true);
    behav_lua_reply(hook, &ctx, rv);
    if (rv->req == BEHAV_CLOSE || rv->req == BEHAV_RESET) {
        session_close(s, rv->req == BEHAV_RESET, rv->req == BEHAV_RESET
                                                     ? "reset by a behavior"
                                                     : "closed by a behavior");
        return -1;
    }
    if (rv->answer == NULL && rv->req != BEHAV_ERROR)
        return 0;
    *answer = evbuffer_new();
    if (*answer == NULL) {
        out_of_memory(s);
        return -1;
    }
    build_answer(s, rv, u, *answer, close);
    return 1;
}

static void tunnel_reply(struct session *s, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    struct behav_verdict v = s->reply;

    if (len == 0)
        return;
    if (s->reply.hook != 0) {
        struct behav_verdict rv;
        struct evbuffer *answer;
        bool close = false;
        int r = reply_hook(s, s->reply.hook, in, 0, len, NULL, &rv, &answer,
                           &close);
        if (r < 0)
            return;
        if (r > 0) {
            evbuffer_drain(in, len);
            send_answer(s, answer, close,
                        rv.rep == BEHAV_HOLD ? rv.rep_delay : 0);
            evbuffer_free(answer);
            return;
        }
        v.rep = rv.rep; /* this chunk's */
        v.rep_delay = rv.rep_delay;
    }
    if (reply_step(s, &v, in, len, true, 0) < 0) {
        out_of_memory(s);
        return;
    }
    if (s->reply.rep == BEHAV_CORRUPT)
        s->reply.rep = BEHAV_PASS; /* one injection per reply */
}

/*
 * Framed mode: requests and replies, kept in order by the queue of
 * requests in flight (entry.h).
 */

/* Frees an entry that left the queue, and lets the client be read again
 * once the queue is below half its cap. */
static void entry_forget(struct session *s, struct entry *e)
{
    if (e->start.tv_sec != 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        report_rtt(s, (double)(now.tv_sec - e->start.tv_sec) +
                          (double)(now.tv_nsec - e->start.tv_nsec) / 1e9);
    }
    if (s->up_entry == e)
        s->up_entry = NULL;
    if (s->down_entry == e)
        s->down_entry = NULL;
    entry_destroy(e);
    if (s->inflight_full && entry_queue_low(&s->q)) {
        s->inflight_full = false;
        session_update_reading(s);
    }
}

static void queue_clear(struct session *s)
{
    entry_queue_clear(&s->q);
    s->up_entry = s->down_entry = NULL;
    s->inflight_full = false;
}

/* How long an answer is held before it goes (a custom behavior's delay
 * then error). */
static double answer_delay(const struct entry *e)
{
    return e->v.req == BEHAV_ERROR ? e->v.req_delay : 0;
}

/* Writes the proxy's answers that have reached the head of the queue. */
static void flush_answers(struct session *s)
{
    while (s->state == SESSION_OPEN && s->q.head != NULL &&
           entry_answer_due(s->q.head)) {
        struct entry *e = s->q.head;
        entry_queue_remove(&s->q, e);
        entry_advance(e, ENTRY_ANSWERED);
        send_answer(s, e->answer, e->close_after, answer_delay(e));
        entry_forget(s, e);
    }
}

/* The backend's bytes are not framed any more (a reply the framer cannot
 * read, the backend ended mid-reply, the conversation switched on a
 * reply): the answers still queued go out now, in queue order; nothing
 * will answer the requests sent. */
static void stop_framing_replies(struct session *s)
{
    struct evbuffer *bin = s->backend != NULL ? bufferevent_get_input(s->backend)
                                              : NULL;

    /* what the backend sent belongs to the replies before the answers */
    if (bin != NULL && !s->down.discard && evbuffer_get_length(bin) > 0 &&
        pipe_emit(&s->down, bin, evbuffer_get_length(bin), 0, BEHAV_PASS) < 0) {
        out_of_memory(s);
        return;
    }
    while (s->q.head != NULL && s->state == SESSION_OPEN) {
        struct entry *e = s->q.head;
        entry_queue_remove(&s->q, e);
        if (e->kind == ENTRY_ANSWER && e->answer != NULL)
            send_answer(s, e->answer, false, 0);
        entry_forget(s, e);
    }
    queue_clear(s);
    s->down_in_unit = false;
}

/* The client's side leaves framed mode. With drain, replies to the
 * requests already queued are still framed, and the proxy's answers among
 * them still go out in their turn; the backend's bytes leave framing once
 * the queue is empty. Without, the queue is dropped now. */
static void set_mode(struct session *s, enum proto_mode m, const char *why,
                     bool drain)
{
    /* the framed units that passed go before anything of the new mode */
    pipe_settle(&s->up);
    pipe_settle(&s->down);
    if (m != s->mode)
        log_info("session %llu: %s; %s from now on", (unsigned long long)s->id,
                 why, m == PROTO_TUNNEL ? "tcp behavior (faults per chunk)"
                                        : "passing through untouched");
    s->mode = m;
    s->reply.rep = BEHAV_PASS;
    script_unref(s->reply.hook);
    s->reply.hook = 0;
    if (s->up_entry != NULL && (s->up_entry->state == ENTRY_READING ||
                                s->up_entry->state == ENTRY_READING_REPLYING))
        entry_advance(s->up_entry, ENTRY_REQ_END);
    s->up_entry = NULL;
    s->up_in_unit = false;
    if (drain)
        flush_answers(s);
    else
        stop_framing_replies(s);
}

/* Whether the backend's bytes are framed: in framed mode, and after the
 * client's side left it while earlier requests still wait for replies. */
static bool down_framed(const struct session *s)
{
    return s->proto->frame != NULL &&
           (s->mode == PROTO_FRAMED || s->q.head != NULL);
}

/* After a unit ended in direction dir: does the protocol leave framing? */
static void check_mode(struct session *s, enum proto_dir dir)
{
    const struct proto_ops *proto = s->proto;
    enum proto_mode m;

    if (proto->mode == NULL || s->mode != PROTO_FRAMED ||
        s->state != SESSION_OPEN)
        return;
    m = proto->mode(s->pstate);
    if (m == PROTO_STARTTLS && s->proxy->tls.server != NULL &&
        s->proxy->tls.client != NULL) {
        s->upgrading = true; /* session_pump() finishes it */
        session_update_reading(s);
        return;
    }
    if (m == PROTO_STARTTLS) {
        set_mode(s, PROTO_RAW, "TLS started inside the protocol (the proxy "
                 "upgrades it with --starttls)", dir == PROTO_UP);
        return;
    }
    if (m != PROTO_FRAMED)
        set_mode(s, m,
                 m == PROTO_TUNNEL ? "the connection was upgraded"
                                   : "the conversation left the protocol",
                 dir == PROTO_UP);
}

/* The server speaks first: its greeting is the reply to a request nobody
 * sent, which passes. */
static struct entry *queue_greeting(struct session *s)
{
    struct entry *e = entry_create(ENTRY_FORWARD, true);

    if (e == NULL)
        return NULL;
    e->v.by = &behav_dummy;
    entry_queue_push(&s->q, e);
    return e;
}

/* The entry of a request whose verdict is an error: the protocol's error
 * reply (or the behavior's bytes) as its answer. Returns NULL on ENOMEM. */
static struct entry *error_entry(struct session *s, const struct proto_unit *u,
                                 const struct behav_verdict *v)
{
    /* Forwarded anyway when the protocol needs it (or the behavior says
     * so); its reply is then swallowed and the answer sent in its place. */
    struct entry *e = entry_create(
        (u->flags & PROTO_FORWARD) || v->forward ? ENTRY_REPLACE
                                                 : ENTRY_ANSWER, false);
    struct evbuffer *answer = evbuffer_new();

    if (e == NULL || answer == NULL) {
        entry_destroy(e);
        if (answer != NULL)
            evbuffer_free(answer);
        return NULL;
    }
    build_answer(s, v, u, answer, &e->close_after);
    e->answer = answer;
    if (u->flags & PROTO_EARLY) {
        /* The client waits for an answer before sending the rest: give it
         * in its turn, and close, as a server refusing the request does. */
        entry_advance(e, ENTRY_REQ_END);
        e->close_after = true;
        s->up.discard = true;
    }
    return e;
}

/* A request starts: draw its verdict and queue it. Returns false when the
 * verdict ended the session's normal course (closed or hanging). */
static bool start_request(struct session *s, struct evbuffer *in, size_t n)
{
    struct proto_unit *u = &s->up_unit;
    struct behav_verdict *v = &s->up_v;
    struct drawn d = { NULL, NULL };
    struct entry *e;

    if ((u->flags & PROTO_REFUSE) ||
        ((u->flags & PROTO_TLSASK) &&
         (s->proxy->tls.server == NULL || s->proxy->tls.client == NULL))) {
        /* refused in the protocol's words, not drawn: TLS the proxy
         * cannot relay on both sides (postgres' 'N', as a server without
         * TLS says; the client goes on in plain text or gives up), or
         * what the protocol says a server would refuse now */
        memset(v, 0, sizeof(*v));
        v->by = &behav_dummy;
        v->req = BEHAV_ERROR;
    } else if (u->flags & PROTO_NOFAULT) {
        memset(v, 0, sizeof(*v));
        v->by = &behav_dummy;
    } else {
        draw(s, v, in, u->skip, n, u, &d);
    }
    if (v->req != BEHAV_ERROR || (u->flags & PROTO_NOREPLY))
        journal_draw(s, &d, v, u, in, u->skip, n, NULL);
    if (v->hook != 0 && (u->flags & PROTO_NOREPLY)) {
        script_unref(v->hook); /* no reply to call it for */
        v->hook = 0;
    }
    log_debug("session %llu: request: %s (request %s, reply %s)",
              (unsigned long long)s->id, v->by->name, behav_act_name(v->req),
              behav_act_name(v->rep));
    if (v->req == BEHAV_CLOSE || v->req == BEHAV_RESET) {
        script_unref(v->hook);
        v->hook = 0;
        session_close(s, v->req == BEHAV_RESET,
                      v->req == BEHAV_RESET ? "reset by a behavior"
                                            : "blackout");
        return false;
    }
    if (v->req == BEHAV_HANG) {
        script_unref(v->hook);
        v->hook = 0;
        go_hang(s, in);
        return false;
    }
    s->up_in_unit = true;
    s->up_entry = NULL;
    if (v->req == BEHAV_HOLD)
        pipe_due(&s->up, v->req_delay, &s->up_due);
    if (u->flags & PROTO_NOREPLY)
        return true; /* an error drops it silently: a lost write */
    e = v->req == BEHAV_ERROR ? error_entry(s, u, v)
                              : entry_create(ENTRY_FORWARD, false);
    if (e == NULL) {
        script_unref(v->hook);
        v->hook = 0;
        out_of_memory(s);
        return false;
    }
    if (v->req == BEHAV_ERROR)
        journal_draw(s, &d, v, u, in, u->skip, n, e->answer);
    e->v = *v;
    e->req = *u;
    clock_gettime(CLOCK_MONOTONIC, &e->start);
    entry_queue_push(&s->q, e);
    s->up_entry = e;
    if (entry_queue_full(&s->q))
        s->inflight_full = true; /* read no more requests for now */
    flush_answers(s); /* answered early */
    return s->state == SESSION_OPEN;
}

/* Carries out the current request's verdict on its next len bytes. */
static int request_step(struct session *s, struct evbuffer *in, size_t len,
                        bool end)
{
    const struct behav_verdict *v = &s->up_v;

    if (v->req == BEHAV_PASS && pipe_owe(&s->up, in, len))
        return 0; /* moved with the requests passing next to it */
    pipe_settle(&s->up);
    switch (v->req) {
    case BEHAV_HOLD:
        /* the whole request is due at its first step's due time */
        return pipe_emit_until(&s->up, in, len, &s->up_due, BEHAV_PASS);
    case BEHAV_ABORT:
        if (end)
            s->up.discard = true; /* nothing after it reaches the backend */
        return pipe_emit(&s->up, in, len, 0, end ? BEHAV_ABORT : BEHAV_PASS);
    case BEHAV_ERROR:
        if (s->up_entry != NULL && s->up_entry->kind == ENTRY_REPLACE)
            break;
        evbuffer_drain(in, len);
        return 0;
    default:
        break;
    }
    return pipe_emit(&s->up, in, len, 0, BEHAV_PASS);
}

static void degrade(struct session *s, enum proto_dir dir)
{
    char why[128];

    snprintf(why, sizeof(why), "malformed %s %s", s->proto->name,
             dir == PROTO_UP ? "request" : "reply");
    if (dir == PROTO_UP) {
        set_mode(s, PROTO_RAW, why, true);
    } else {
        set_mode(s, PROTO_RAW, why, false);
    }
}

static void on_stall(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    if (s->state != SESSION_OPEN)
        return;
    s->stall_fired = true;
    session_pump(s);
    s->stall_fired = false;
}

/* The protocol's head_timeout option (http): seconds a request's head may
 * take from its first byte; 0 for none. */
static double head_timeout(const struct session *s)
{
    int i = opt_find(s->proto->opts, "head_timeout");

    return i >= 0 ? s->proxy->conf->proto_vals[i].f : 0;
}

/* A request's head did not come whole in time: the protocol's answer to
 * that (408), in its turn behind the replies still due, then the close. */
static void on_head_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    struct proto_error pe = { .status = "408", .message = "" };
    struct proto_unit none = { 0 };
    struct entry *e;
    struct evbuffer *in;

    (void)fd;
    (void)what;
    if (s->state != SESSION_OPEN || s->up.discard)
        return;
    log_info("session %llu: no whole request head in %g s: 408, closing",
             (unsigned long long)s->id, head_timeout(s));
    e = entry_create(ENTRY_ANSWER, true);
    if (e == NULL || (e->answer = evbuffer_new()) == NULL) {
        entry_destroy(e);
        out_of_memory(s);
        return;
    }
    s->proto->error_reply(s->pstate, &pe, &none, &rng_global, e->answer,
                          &e->close_after); /* 408: nothing drawn */
    e->close_after = true;
    e->v.by = &behav_dummy;
    entry_queue_push(&s->q, e);
    s->up.discard = true; /* the rest of that head goes nowhere */
    in = bufferevent_get_input(s->client);
    evbuffer_drain(in, evbuffer_get_length(in));
    flush_answers(s); /* now, or after the last reply due */
}

/* Arms the head deadline when a request's head has started and the
 * protocol has one. */
static void watch_head(struct session *s)
{
    double t = head_timeout(s);
    struct timeval tv;

    if (t <= 0)
        return;
    if (s->head_ev == NULL) {
        s->head_ev = evtimer_new(s->proxy->base, on_head_timeout, s);
        if (s->head_ev == NULL)
            return;
    }
    if (evtimer_pending(s->head_ev, NULL))
        return;
    tv.tv_sec = (time_t)t;
    tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
    evtimer_add(s->head_ev, &tv);
}

/* Arms the stall timer (made on first use); new client bytes disarm it. */
static void watch_stall(struct session *s)
{
    struct timeval tv = { 0, STALL_MS * 1000 };

    if (s->stall_ev == NULL) {
        s->stall_ev = evtimer_new(s->proxy->base, on_stall, s);
        if (s->stall_ev == NULL)
            return; /* the framer waits, as without the timer */
    }
    if (!evtimer_pending(s->stall_ev, NULL))
        evtimer_add(s->stall_ev, &tv);
}

/* framed_request() but for the requests that passed: they stay owed to
 * the up pipe, at the front of in. */
static bool frame_requests(struct session *s, struct evbuffer *in)
{
    const struct proto_ops *proto = s->proto;

    if (!s->client_spoke && !proto->tls_inside && evbuffer_get_length(in) > 0) {
        /* A TLS client at a server of this protocol: its records are not
         * the protocol, and cutting them at a newline stalls the handshake.
         * Passed through whole, as the README says of any such traffic. */
        int tls = proto_tls_start(in);
        if (tls < 0 && !s->up.eof)
            return true;
        s->client_spoke = true;
        if (tls > 0) {
            set_mode(s, PROTO_RAW, "the client speaks TLS", false);
            return false;
        }
    }

    while (s->state == SESSION_OPEN && s->mode == PROTO_FRAMED &&
           !s->up.discard && !client_held(s) &&
           evbuffer_get_length(in) > pipe_owed(&s->up, in)) {
        struct proto_unit *u = &s->up_unit;
        bool end;
        ssize_t n;

        if (!s->up_in_unit)
            memset(u, 0, sizeof(*u));
        if (proto->edits != NULL && proto->edits(s->pstate))
            pipe_settle(&s->up); /* it edits the unit where it lies */
        u->skip = pipe_owed(&s->up, in);
        n = proto->frame(s->pstate, PROTO_UP, in, u);
        if (n == 0 && proto->stalled != NULL) {
            /* The client stopped for STALL_MS in the middle of what the
             * framer holds: it may send it on rather than wait (proto.h),
             * so the server answers as it would have seen it. */
            if (s->stall_fired)
                n = proto->stalled(s->pstate, in, u);
            else if (s->up.src_dry)
                watch_stall(s);
        }
        if (n == 0) {
            if (!s->up_in_unit)
                watch_head(s);
            return true;
        }
        if (n < 0) {
            degrade(s, PROTO_UP);
            return false;
        }
        if (!s->up_in_unit && s->head_ev != NULL)
            evtimer_del(s->head_ev); /* the head came in time */
        if (!s->up_in_unit && !start_request(s, in, (size_t)n))
            return false;
        end = (u->flags & PROTO_END) != 0;
        if (request_step(s, in, (size_t)n, end) < 0) {
            out_of_memory(s);
            return false;
        }
        if (s->state != SESSION_OPEN)
            return false;
        if (end) {
            struct entry *e = s->up_entry;
            s->up_in_unit = false;
            s->up_entry = NULL;
            if (e != NULL && e->close_after)
                s->up.discard = true; /* answered, and then closed: nothing
                                         after it is for the backend */
            if (e != NULL && (e->state == ENTRY_READING ||
                              e->state == ENTRY_READING_REPLYING)) {
                /* what the error reply can only know at the end (mysql:
                 * the sequence id after a request of several packets) */
                if (e->answer != NULL && proto->error_amend != NULL)
                    proto->error_amend(s->pstate, u, e->answer);
                entry_advance(e, ENTRY_REQ_END);
            }
            flush_answers(s);
            check_mode(s, PROTO_UP);
        }
    }
    return false;
}

/* Frames the client's bytes into requests. Returns true when the framer
 * waits for more bytes than there are. */
static bool framed_request(struct session *s, struct evbuffer *in)
{
    bool more = frame_requests(s, in);

    pipe_settle(&s->up);
    return more;
}

/* The reply to e starts with in's n bytes after what is owed: its
 * request's custom behavior decides what happens to it (a new verdict
 * for the reply, or an answer in its place). Returns false when the
 * session was closed. */
static bool replied_by_hook(struct session *s, struct entry *e,
                            struct evbuffer *in, ssize_t n)
{
    struct behav_verdict rv;
    struct evbuffer *answer;
    int hook = e->v.hook;
    int r;

    e->v.hook = 0; /* called once, for the first reply (not the interim) */
    r = reply_hook(s, hook, in, s->down_unit.skip, (size_t)n, &e->req, &rv,
                   &answer, &e->close_after);
    script_unref(hook);
    if (r < 0)
        return false;
    if (r == 0) {
        e->v.rep = rv.rep;
        e->v.rep_delay = rv.rep_delay;
        return true;
    }
    pipe_settle(&s->down);
    entry_queue_set_answer(&s->q, e, answer);
    e->kind = ENTRY_REPLACE;
    e->v.req = BEHAV_ERROR; /* answer_delay() */
    e->v.req_delay = rv.rep == BEHAV_HOLD ? rv.rep_delay : 0;
    return true;
}

/* framed_reply() but for the replies that passed: they stay owed to the
 * down pipe, at the front of in. */
static bool frame_replies(struct session *s, struct evbuffer *in)
{
    const struct proto_ops *proto = s->proto;
    static const struct behav_verdict pass = { .by = &behav_dummy };

    while (s->state == SESSION_OPEN && down_framed(s) && !s->down.discard &&
           evbuffer_get_length(in) > pipe_owed(&s->down, in)) {
        struct proto_unit *u = &s->down_unit;
        bool first = !s->down_in_unit;
        struct entry *e;
        ssize_t n;

        if (first) {
            memset(u, 0, sizeof(*u));
            s->down_entry = entry_queue_awaiting(&s->q);
            if (s->down_entry != NULL) {
                u->info = s->down_entry->req.info;
                u->info2 = s->down_entry->req.info2;
            }
        }
        e = s->down_entry;
        u->skip = pipe_owed(&s->down, in);
        n = proto->frame(s->pstate, PROTO_DOWN, in, u);
        if (n == 0)
            return true;
        if (n < 0) {
            degrade(s, PROTO_DOWN);
            return false;
        }
        if (first) {
            s->down_in_unit = true;
            if (u->flags & PROTO_PUSH)
                s->down_entry = e = NULL;
            else if (e == NULL)
                log_debug("session %llu: a reply no request asked for; "
                          "passed", (unsigned long long)s->id);
            else
                entry_advance(e, ENTRY_REPLY_START);
            if (e != NULL && e->v.hook != 0 && !replied_by_hook(s, e, in, n))
                return false;
        }
        if (e != NULL && e->kind == ENTRY_REPLACE) {
            pipe_settle(&s->down);
            evbuffer_drain(in, (size_t)n); /* replaced by the answer */
        } else if (reply_step(s, e != NULL ? &e->v : &pass, in, (size_t)n,
                              first,
                              !first ? 0
                              : u->head_len > 0 ? u->head_len
                                                : (size_t)n) < 0) {
            out_of_memory(s);
            return false;
        }
        if (s->state != SESSION_OPEN)
            return false; /* a toxic closed it (limit_data): e is freed */
        if (!(u->flags & PROTO_END))
            continue;
        s->down_in_unit = false;
        s->down_entry = NULL;
        if (e != NULL && (u->flags & PROTO_INTERIM)) {
            entry_advance(e, ENTRY_INTERIM_END);
        } else if (e != NULL) {
            entry_queue_remove(&s->q, e);
            entry_advance(e, ENTRY_REPLY_END);
            if (e->answer != NULL)
                send_answer(s, e->answer, e->close_after, answer_delay(e));
            entry_forget(s, e);
        }
        flush_answers(s);
        check_mode(s, PROTO_DOWN);
    }
    return false;
}

/* Frames the backend's bytes into replies, each carried out with the
 * verdict of the request it answers. Returns true when the framer waits
 * for more bytes than there are. */
static bool framed_reply(struct session *s, struct evbuffer *in)
{
    bool more = frame_replies(s, in);

    pipe_settle(&s->down);
    return more;
}

/* Rounds of framing both sides, while a round makes progress (a reply
 * that frees the queue lets more requests in; a mode change leaves bytes
 * for the other path). A side that ended with bytes that make no whole
 * unit gets them passed untouched. */
static void pump_rounds(struct session *s)
{
    if (s->proto->mux) {
        h2_pump(s); /* streams, not units: net/h2.h */
        return;
    }
    while (s->state == SESSION_OPEN) {
        struct evbuffer *cin = bufferevent_get_input(s->client);
        struct evbuffer *bin = bufferevent_get_input(s->backend);
        size_t clen = evbuffer_get_length(cin), blen = evbuffer_get_length(bin);
        enum proto_mode mode = s->mode;
        size_t inflight = s->q.n;
        bool c_more = false, b_more = false;

        if (s->mode == PROTO_FRAMED)
            c_more = framed_request(s, cin);
        else
            tunnel_request(s, cin);
        if (s->state != SESSION_OPEN)
            break;
        if (down_framed(s))
            b_more = framed_reply(s, bin);
        else
            tunnel_reply(s, bin);
        if (s->state != SESSION_OPEN)
            break;
        if (c_more && s->up.eof && evbuffer_get_length(cin) > 0)
            set_mode(s, PROTO_RAW,
                     "the client closed in the middle of a request", true);
        else if (b_more && s->down.eof && evbuffer_get_length(bin) > 0)
            set_mode(s, PROTO_RAW,
                     "the backend closed in the middle of a reply", false);
        if (evbuffer_get_length(cin) == clen &&
            evbuffer_get_length(bin) == blen && s->mode == mode &&
            s->q.n == inflight)
            break;
    }
}

/* Moves what both sides have sent as far as the modes, the queue and
 * backpressure allow. The pipes are corked meanwhile: what one read
 * brought leaves in one write per direction. */
/* STARTTLS, both sides: once everything before it is written to the
 * client (the 220 included) and nothing more was read, each side's TCP
 * connection goes to a TLS relay (net/tls.h) and the session goes on,
 * framing, with the relays' plain ends. */
static void finish_upgrade(struct session *s)
{
    struct proxy *p = s->proxy;
    evutil_socket_t cfd, bfd, cplain, bplain;
    char who[400], where[300];

    if (!s->upgrading || s->state != SESSION_OPEN ||
        pipe_buffered(&s->down) > 0 || pipe_buffered(&s->up) > 0 ||
        evbuffer_get_length(bufferevent_get_output(s->client)) > 0 ||
        evbuffer_get_length(bufferevent_get_output(s->backend)) > 0)
        return;
    s->upgrading = false;
    if (evbuffer_get_length(bufferevent_get_input(s->backend)) > 0) {
        /* the backend spoke after agreeing: not TLS, not upgraded */
        set_mode(s, PROTO_RAW, "STARTTLS with the backend's bytes after it",
                 false);
        return;
    }
    event_del(&s->crd);
    event_del(&s->brd);
    s->crd_on = s->brd_on = false;
    cfd = bufferevent_getfd(s->client);
    bfd = bufferevent_getfd(s->backend);
    snprintf(who, sizeof(who), "session %llu: STARTTLS client %s",
             (unsigned long long)s->id, s->peer);
    /* what the client sent already (MySQL's ClientHello comes right
     * behind its SSL request) is the start of its handshake */
    if (tls_relay_start(p->base, &p->tls, true, NULL, cfd, who,
                        bufferevent_get_input(s->client), NULL, &cplain) < 0) {
        bufferevent_setfd(s->client, -1); /* closed by the relay */
        out_of_memory(s);
        return;
    }
    bufferevent_setfd(s->client, cplain);
    snprintf(who, sizeof(who), "session %llu: STARTTLS backend %s",
             (unsigned long long)s->id,
             addr_format(&p->backend, where, sizeof(where)));
    if (tls_relay_start(p->base, &p->tls, false, NULL, bfd, who, NULL, NULL,
                        &bplain) < 0) {
        bufferevent_setfd(s->backend, -1);
        out_of_memory(s);
        return;
    }
    bufferevent_setfd(s->backend, bplain);
    event_assign(&s->crd, p->base, cplain, EV_READ | EV_PERSIST,
                 on_client_readable, s);
    event_assign(&s->brd, p->base, bplain, EV_READ | EV_PERSIST,
                 on_backend_readable, s);
    bufferevent_enable(s->client, EV_WRITE);
    bufferevent_enable(s->backend, EV_WRITE);
    log_info("session %llu: STARTTLS: both sides speak TLS through the "
             "proxy; still %s", (unsigned long long)s->id, s->proto->name);
    session_update_reading(s);
}

static void session_pump(struct session *s)
{
    if (framer_begin(s) < 0) {
        out_of_memory(s);
        return;
    }
    for (;;) {
        VASSERT(!s->pumping); /* nothing the pump calls pumps again */
        s->pumping = true;
        pipe_cork(&s->up);
        pipe_cork(&s->down);
        pump_rounds(s);
        s->pumping = false;
        pipe_uncork(&s->up);
        pipe_uncork(&s->down);
        /* the one write took every answer held back: no write callback
         * will come to say so, and requests may be waiting */
        if (s->state != SESSION_OPEN || !answers_caught_up(s))
            break;
    }
    if (s->state == SESSION_OPEN) {
        if (s->up.discard)
            evbuffer_drain(bufferevent_get_input(s->client),
                           evbuffer_get_length(bufferevent_get_input(s->client)));
        if (s->down.discard)
            evbuffer_drain(bufferevent_get_input(s->backend),
                           evbuffer_get_length(bufferevent_get_input(s->backend)));
        pipe_check_full(&s->up);
        pipe_check_full(&s->down);
        pipe_maybe_shut(&s->up);
        if (s->state == SESSION_OPEN)
            pipe_maybe_shut(&s->down);
    }
    if (s->state == SESSION_OPEN && s->mode != PROTO_FRAMED &&
        s->q.head == NULL && fast_enter(s))
        return;
    finish_upgrade(s);
    session_update_reading(s);
}

void session_update_reading(struct session *s)
{
    bool want_c = false, want_b = false;

    if (!s->rd_assigned || s->state == SESSION_CLOSED)
        return;
    if (s->state == SESSION_OPEN && s->fast) {
        want_c = !s->fup.eof && !s->fup.rd_paused;
        want_b = !s->fdown.eof && !s->fdown.rd_paused;
    } else if (s->state == SESSION_OPEN && !s->upgrading) {
        want_c = !s->up.eof && !s->up.full && !client_held(s) &&
                 evbuffer_get_length(bufferevent_get_input(s->client)) < PIPE_CAP;
        want_b = s->backend != NULL && !s->down.eof && !s->backend_ended &&
                 !s->down.full &&
                 evbuffer_get_length(bufferevent_get_input(s->backend)) < PIPE_CAP;
    }
    if (want_c != s->crd_on) {
        if ((want_c ? event_add(&s->crd, NULL) : event_del(&s->crd)) < 0) {
            session_close(s, true, "cannot watch the client");
            return;
        }
        s->crd_on = want_c;
    }
    if (want_b != s->brd_on) {
        if ((want_b ? event_add(&s->brd, NULL) : event_del(&s->brd)) < 0) {
            session_close(s, true, "cannot watch the backend");
            return;
        }
        s->brd_on = want_b;
    }
}

/* Reads what the socket has into the bufferevent's input: one readv into
 * reserved space, without libevent's FIONREAD round trip. Returns the bytes
 * read, 0 at the end of the stream, -1 on error (errno set) or nothing to
 * read (errno EAGAIN). */
static ssize_t read_into(struct bufferevent *bev)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[2];
    struct iovec iov[2];
    int n = evbuffer_reserve_space(in, READ_MAX, v, 2);
    ssize_t got;

    if (n <= 0) {
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
    }
    got = readv(bufferevent_getfd(bev), iov, n);
    if (got <= 0) {
        int e = errno;
        evbuffer_commit_space(in, v, 0);
        errno = e;
        return got;
    }
    for (int i = 0, left = (int)got; i < n; i++) {
        size_t take = (size_t)left < v[i].iov_len ? (size_t)left : v[i].iov_len;
        v[i].iov_len = take;
        left -= (int)take;
    }
    evbuffer_commit_space(in, v, n);
    return got;
}

static void on_readable(struct session *s, struct bufferevent *bev,
                        struct pipe *from,
                        void (*read_cb)(struct bufferevent *, void *),
                        void (*event_cb)(struct bufferevent *, short, void *))
{
    ssize_t got = read_into(bev);

    if (got > 0) {
        char c;
        pipe_count_received(from, (size_t)got);
        /* delays count from the read, not from when the unit is handled */
        clock_gettime(CLOCK_MONOTONIC, &from->stamp);
        /* read dry: a short read, or a full one with nothing behind it */
        from->src_dry = got < READ_MAX ||
                        recv(bufferevent_getfd(bev), &c, 1,
                             MSG_PEEK | MSG_DONTWAIT) < 0;
        if (from == &s->up && s->stall_ev != NULL)
            evtimer_del(s->stall_ev); /* it did not stop */
        read_cb(bev, s);
        from->stamp.tv_sec = from->stamp.tv_nsec = 0;
        return;
    }
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    event_cb(bev, (short)(BEV_EVENT_READING |
                          (got == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR)), s);
    if (s->state != SESSION_CLOSED)
        session_update_reading(s);
}

static void on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    if (s->fast)
        fast_on_readable(s, true);
    else
        on_readable(s, s->client, &s->up, client_read_cb, client_event_cb);
}

static void on_backend_readable(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void)fd;
    (void)what;
    if (s->fast)
        fast_on_readable(s, false);
    else if (s->backend != NULL)
        on_readable(s, s->backend, &s->down, backend_read_cb,
                    backend_event_cb);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    (void)bev;
    touch(s);
    session_pump(s);
}

static void backend_read_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    touch(s);
    if (s->state != SESSION_OPEN) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    session_pump(s);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    (void)bev;
    if (s->state == SESSION_OPEN)
        pipe_on_drained(&s->down);
    finish_upgrade(s);
}

static void backend_write_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    (void)bev;
    if (s->state == SESSION_OPEN)
        pipe_on_drained(&s->up);
    /* MySQL's SSL request goes up: the upgrade waits for it to be written */
    finish_upgrade(s);
}

void session_on_pipe_drained(struct session *s, struct pipe *p)
{
    if (s->proto != NULL && s->proto->mux) {
        /* http2 stops taking frames at PIPE_CAP (net/h2.c): take more */
        if (s->state == SESSION_OPEN && !s->pumping)
            session_pump(s);
        return;
    }
    if (p == &s->down && answers_caught_up(s)) {
        session_update_reading(s);
        /* requests already read may be waiting for a verdict */
        session_pump(s);
    }
    /* a STARTTLS request held by a toxic was written at last */
    finish_upgrade(s);
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
        if (s->state == SESSION_OPEN && !s->hanging) {
            s->up.eof = true; /* before pumping: no zero-copy after an end */
            session_pump(s); /* a partial request passes untouched */
            if (s->state == SESSION_OPEN)
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

/* A multiplexed backend (http2) ended or reset its side: the relay
 * (h2_pump) resets the streams it did not finish, and the client's side
 * ends only once what the relay still owes the client is written (whole
 * replies it holds, or that wait for the client's window), not as a
 * byte stream's would, at the backend's end. */
static void mux_backend_ended(struct session *s)
{
    if (s->backend_ended)
        return;
    s->backend_ended = true;
    /* nothing more is said to it: its side's end is not waited on */
    s->up.discard = true;
    bufferevent_disable(s->backend, EV_READ | EV_WRITE);
    evbuffer_drain(bufferevent_get_output(s->backend),
                   evbuffer_get_length(bufferevent_get_output(s->backend)));
    session_update_reading(s);
    if (s->state == SESSION_OPEN)
        session_pump(s);
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
        if (what & BEV_EVENT_TIMEOUT)
            log_warn("session %llu: backend %s: connect timed out",
                     (unsigned long long)s->id,
                     addr_format(&s->proxy->backend, where, sizeof(where)));
        /* the next address, if there is one (try_connect) */
        bufferevent_free(s->backend);
        s->backend = NULL;
        s->ai_next = s->ai_next->ai_next;
        try_connect(s);
        return;
    }
    if ((what & BEV_EVENT_EOF) && s->proto != NULL && s->proto->mux) {
        mux_backend_ended(s);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        s->down.eof = true;
        session_pump(s); /* a partial reply passes untouched */
        if (s->state == SESSION_OPEN)
            pipe_on_eof(&s->down);
        return;
    }
    if (s->state == SESSION_OPEN &&
        (EVUTIL_SOCKET_ERROR() == ECONNRESET || EVUTIL_SOCKET_ERROR() == EPIPE)) {
        session_backend_failed(s, (what & BEV_EVENT_WRITING) != 0);
        return;
    }
    snprintf(why, sizeof(why), "backend: %s", event_error(what));
    session_close(s, EVUTIL_SOCKET_ERROR() == ECONNRESET, why);
}

/*
 * The backend reset the connection (or refused our writes: it closed with
 * data of ours unread, which is how a server that answers an error and
 * closes looks from here). What it sent before the reset still reaches the
 * client, in order, and only then is the reset passed on: the client's
 * socket is reset once the kernel has sent it everything (linger.h), as a
 * direct connection to that server would have been.
 */
void session_backend_failed(struct session *s, bool writing)
{
    if (s->state != SESSION_OPEN || s->backend == NULL)
        return;
    if (s->proto != NULL && s->proto->mux) {
        mux_backend_ended(s);
        return;
    }
    if (s->fast)
        fast_leave(s); /* what the kernel pipes hold goes first */
    if (!s->backend_failed) {
        log_debug("session %llu: the backend reset the connection while %s",
                  (unsigned long long)s->id, writing ? "writing" : "reading");
        s->backend_failed = true;
        /* nothing reaches the backend any more */
        s->up.discard = true;
        bufferevent_disable(s->backend, EV_WRITE);
        evbuffer_drain(bufferevent_get_output(s->backend),
                       evbuffer_get_length(bufferevent_get_output(s->backend)));
        s->down.end_reset = true;
    }
    if (writing) {
        /* what it answered is still to be read: the read ends it */
        session_update_reading(s);
        return;
    }
    s->down.eof = true;
    session_pump(s); /* a partial reply passes untouched */
    if (s->state == SESSION_OPEN)
        pipe_on_eof(&s->down);
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
    if (idle + 0.005 >= p->timeout && s->up.nheld == 0 &&
        s->down.nheld == 0) {
        session_close(s, false, "idle timeout");
        return;
    }
    tv = seconds_tv(idle < p->timeout ? p->timeout - idle : p->timeout);
    if (evtimer_add(&s->idle_ev, &tv) < 0)
        session_close(s, true, "cannot arm the idle timer");
}

void session_close(struct session *s, bool reset, const char *why)
{
    struct proxy *p = s->proxy;

    if (s->state == SESSION_CLOSED)
        return;
    s->state = SESSION_CLOSED;
    report_conn(s, JOURNAL_CLOSE, why);
    log_debug("session %llu: closed (%s), %llu bytes up, %llu down",
              (unsigned long long)s->id, why, s->up.bytes, s->down.bytes);
    evtimer_del(&s->idle_ev);
    if (s->head_ev != NULL) {
        event_free(s->head_ev);
        s->head_ev = NULL;
    }
    if (s->stall_ev != NULL) {
        event_free(s->stall_ev);
        s->stall_ev = NULL;
    }
    if (s->rd_assigned) {
        event_del(&s->crd);
        event_del(&s->brd);
        s->crd_on = s->brd_on = false;
    }
    fast_deinit(s);
    pipe_deinit(&s->up);
    pipe_deinit(&s->down);
    queue_clear(s);
    script_unref(s->reply.hook);
    s->reply.hook = 0;
    script_unref(s->script_state);
    s->script_state = 0;
    if (s->pstate != NULL) {
        if (s->proto->deinit != NULL)
            s->proto->deinit(s->pstate);
        free(s->pstate);
        s->pstate = NULL;
    }
    if (reset)
        set_reset_on_close(s->backend);
    if (s->client != NULL) {
        evutil_socket_t fd = bufferevent_getfd(s->client);
        bufferevent_free(s->client);
        /* A client that has not finished sending would get a reset for its
         * next bytes, and a reset while bytes are unsent drops them: both
         * wait for what was just written to be sent. */
        if (reset || !s->up.eof)
            linger_close(p->base, fd, reset);
        else
            evutil_closesocket(fd);
    }
    if (s->backend != NULL)
        bufferevent_free(s->backend);
    s->client = s->backend = NULL;
    if (s->dns_req != NULL)
        evdns_getaddrinfo_cancel(s->dns_req); /* dns_cb runs later */
    LIST_REMOVE(s, link);
    LIST_INSERT_HEAD(&p->graveyard, s, link);
    p->active--;
    proxy_session_closed(p);
    event_active(&p->reap_ev, EV_TIMEOUT, 1);
}

void session_destroy(struct session *s)
{
    tls_link_put(s->tls_link);
    if (s->ai != NULL)
        evutil_freeaddrinfo(s->ai);
    LIST_REMOVE(s, link);
    free(s);
}
