/*
 * proxy: listeners, the session list and configuration snapshots
 * (see proxy.h).
 */
#include "net/proxy.h"

#include "behav/schedule.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "net/listen.h"
#include "net/mem.h"
#include "net/session.h"

/* The TLS fault of a connection about to be accepted (behav/tls.c): the
 * behavior toxics first, each against its toxicity, then the mix; drawn
 * from a generator of its own, derived as the session's will be (the
 * same ordinal, another stream), so --seed replays it. */
static void draw_tls_fault(struct proxy *p, struct tls_fault *f)
{
    const struct behav_inst *b = NULL;
    struct rng r;

    memset(f, 0, sizeof(*f));
    rng_derive(&r, rng_run_seed, p->name, p->next_id + 1, 3);
    for (int i = 0; i < p->ntoxics && b == NULL; i++) {
        struct toxic *t = p->toxics[i];
        if (t->type->kind == TOXIC_BEHAVIOR && t->type->behav->tls &&
            t->toxicity > 0 &&
            (t->toxicity >= 1 || rng_double(&r) < t->toxicity))
            b = &t->inst;
    }
    if (b == NULL) {
        int idx = mix_draw(&p->conf->mix, &r);
        if (behav_at(idx)->tls)
            b = &p->conf->behav[idx];
    }
    if (b == NULL)
        return;
    f->kind = b->ops->tls;
    f->value = b->ops->opts[0].name != NULL && b->ops->opts[0].type == OPT_INT
                   ? b->vals[0].i
                   : 0;
    if (f->kind == BEHAV_TLS_BAD_CERT) {
        f->cert = tls_bad_cert_kind(b->vals[0].s);
        if (f->cert < 0)
            log_warn("proxy %s: bad_cert: kind '%s' is not expired, "
                     "wrong_name or self_signed; the proxy's certificate is "
                     "shown", p->name, b->vals[0].s);
    }
    log_debug("proxy %s: next connection's TLS: %s", p->name, b->ops->name);
}

static bool mix_all_dummy(const struct proxy_conf *c)
{
    const struct mix *m = &c->mix;

    if (c->sched != NULL)
        return false;
    for (int i = 0; i < m->n; i++)
        if (behav_at(m->e[i].behav) != &behav_dummy && m->e[i].pct > 0)
            return false;
    return true;
}

/* dst: behavior i with src's options; with its defaults when src has
 * none (a custom behavior loaded after src was made). */
static void inst_copy(struct behav_inst *dst, int i,
                      const struct behav_inst *src)
{
    if (src->ops == NULL) {
        behav_inst_init(dst, behav_at(i));
        return;
    }
    behav_inst_copy(dst, src);
}

struct proxy_conf *proxy_conf_create(const struct settings *st)
{
    struct proxy_conf *c = calloc(1, sizeof(*c));
    int pi = proto_find(st->protocol);

    if (c == NULL || pi < 0) {
        free(c);
        return NULL;
    }
    c->proto = proto_at(pi);
    opt_copy(c->proto->opts, c->proto_vals, st->proto[pi]);
    c->mix = st->mix;
    for (int i = 0; i < behav_count(); i++)
        inst_copy(&c->behav[i], i, &st->behav[i]);
    return c;
}

struct proxy_conf *proxy_conf_clone(const struct proxy_conf *c)
{
    struct proxy_conf *n = calloc(1, sizeof(*n));

    if (n == NULL)
        return NULL;
    n->proto = c->proto;
    opt_copy(c->proto->opts, n->proto_vals, c->proto_vals);
    n->mix = c->mix;
    for (int i = 0; i < behav_count(); i++)
        inst_copy(&n->behav[i], i, &c->behav[i]); /* counters start at 0 */
    return n;
}

void proxy_conf_destroy(struct proxy_conf *c)
{
    if (c == NULL)
        return;
    opt_free(c->proto->opts, c->proto_vals);
    for (int i = 0; i < behav_count(); i++)
        behav_inst_deinit(&c->behav[i]);
    schedule_destroy(c->sched);
    free(c);
}

static long global_max;      /* across every proxy, 0: none */
static uint64_t global_active;
static uint64_t global_peak;  /* most open at once since the last trim */

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;
    struct session *s, *next;

    (void)fd;
    (void)what;
    for (s = LIST_FIRST(&p->graveyard); s != NULL; s = next) {
        next = LIST_NEXT(s, link);
        if (s->dns_req == NULL) /* else its cancelled lookup reports later */
            session_destroy(s);
    }
    /* The last connection closed, or half of those open at the peak did:
     * give freed memory back to the system (at most once a second). */
    if (p->active == 0 || global_active <= global_peak / 2) {
        global_peak = global_active;
        mem_trim_soon(p->base);
    }
}

static LIST_HEAD(, proxy) all_proxies = LIST_HEAD_INITIALIZER(all_proxies);

struct proxy *proxy_first(void)
{
    return LIST_FIRST(&all_proxies);
}

struct proxy *proxy_next(const struct proxy *p)
{
    return LIST_NEXT(p, all_link);
}

static bool own_limit(const struct proxy *p)
{
    return p->max_connections > 0 && p->active >= (uint64_t)p->max_connections;
}

static bool total_limit(void)
{
    return global_max > 0 && global_active >= (uint64_t)global_max;
}

static bool at_limit(const struct proxy *p)
{
    return own_limit(p) || total_limit();
}

/* Listeners are enabled unless an accept error paused them, or a limit is
 * reached under --overflow backlog: the proxy's own, or the total, which
 * pauses every proxy at once. */
static void update_listening(struct proxy *p)
{
    bool pause = p->accept_paused || (p->overflow_backlog && at_limit(p));

    if (pause == p->paused)
        return;
    for (int i = 0; i < p->nlev; i++) {
        if (pause)
            evconnlistener_disable(p->lev[i]);
        else
            evconnlistener_enable(p->lev[i]);
    }
    p->paused = pause;
}

static void update_all_listening(void)
{
    struct proxy *p;

    LIST_FOREACH(p, &all_proxies, all_link)
        update_listening(p);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;

    (void)fd;
    (void)what;
    p->accept_paused = false;
    update_listening(p); /* a limit reached meanwhile keeps it paused */
}

void proxy_set_global_limit(long max)
{
    global_max = max;
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct proxy *p = arg;
    struct tls_link *link = NULL;
    time_t now;

    (void)lev;
    (void)salen;
    if (at_limit(p)) {
        /* over a limit: the client is closed at once, and counted */
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        evutil_closesocket(fd);
        p->refused++;
        now = time(NULL);
        if (now - p->limit_logged >= 10) {
            log_warn("proxy %s: connection limit reached (%llu open); new "
                     "clients are closed", p->name, (unsigned long long)p->active);
            p->limit_logged = now;
        }
        return;
    }
    if (p->tls.implicit_server) {
        /* the session gets the decrypted side (tls.h); with TLS to the
         * backend too, a link passes ALPN between the two relays */
        char who[128], peer[64];
        struct tls_fault f;
        addr_format_sockaddr(sa, peer, sizeof(peer));
        snprintf(who, sizeof(who), "proxy %.40s: TLS client %s", p->name, peer);
        draw_tls_fault(p, &f);
        if (p->tls.implicit_client)
            link = tls_link_create();
        if (tls_relay_start(p->base, &p->tls, true, &f, fd, who, NULL, link,
                            &fd) < 0) {
            log_warn("%s: out of memory; closed", who);
            tls_link_put(link);
            return;
        }
    }
    if (session_create(p, fd, sa, link) == 0 && at_limit(p)) {
        /* --overflow backlog: the next clients wait in the kernel's
         * backlog (of every proxy, at the total limit) */
        if (total_limit())
            update_all_listening();
        else
            update_listening(p);
        if (p->paused)
            log_info("proxy %s: %s connection limit reached; new clients "
                     "wait", p->name, own_limit(p) ? "its" : "the total");
    }
}

void proxy_session_opened(struct proxy *p)
{
    (void)p;
    if (++global_active > global_peak)
        global_peak = global_active;
}

void proxy_session_closed(struct proxy *p)
{
    bool was_full = total_limit();

    if (global_active > 0)
        global_active--;
    if (was_full && !total_limit())
        update_all_listening(); /* every proxy resumes, as they paused */
    else
        update_listening(p);
}

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    struct proxy *p = arg;
    int e = EVUTIL_SOCKET_ERROR();
    time_t now = time(NULL);

    (void)lev;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        /* Out of descriptors or memory: pause accepting for a moment
         * instead of spinning on the listener; log once per 10 s. */
        struct timeval tv = { 0, 100 * 1000 };
        if (now - p->accept_err_logged >= 10) {
            log_error("accept: %s; pausing new connections", strerror(e));
            p->accept_err_logged = now;
        }
        p->accept_paused = true;
        update_listening(p);
        evtimer_add(&p->accept_retry_ev, &tv);
        return;
    }
    if (now - p->accept_err_logged >= 10) {
        log_warn("accept: %s", strerror(e));
        p->accept_err_logged = now;
    }
}

/* The earliest time a toxic or a behavior of the mix expires (its ttl),
 * or 0. */
static double next_expiry(const struct proxy *p)
{
    double first = 0;

    for (int i = 0; i < p->ntoxics; i++) {
        const struct behav_inst *b = &p->toxics[i]->inst;
        double e = target_expiry(b->target, b->ts.set_at);
        if (e > 0 && (first == 0 || e < first))
            first = e;
    }
    for (int i = 0; i < p->conf->mix.n; i++) {
        const struct behav_inst *b = &p->conf->behav[p->conf->mix.e[i].behav];
        double e = target_expiry(b->target, b->ts.set_at);
        if (e > 0 && (first == 0 || e < first))
            first = e;
    }
    return first;
}

void proxy_arm_ttl(struct proxy *p)
{
    double first = next_expiry(p), wait;
    struct timeval tv;

    evtimer_del(&p->ttl_ev);
    if (first == 0)
        return;
    wait = first - target_now();
    if (wait < 0)
        wait = 0;
    tv.tv_sec = (time_t)wait;
    tv.tv_usec = (suseconds_t)((wait - (double)tv.tv_sec) * 1e6) + 1;
    evtimer_add(&p->ttl_ev, &tv);
}

/* Toxics and behaviors of the mix whose ttl is over remove themselves: a
 * test that forgets to clean up heals. The mix loses the entry (all of
 * it gone: dummy); other behaviors keep their counters. */
static void ttl_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;
    struct mix *m = &p->conf->mix;
    double now = target_now();
    bool mix_changed = false;

    (void)fd;
    (void)what;
    for (int i = p->ntoxics - 1; i >= 0; i--) {
        struct toxic *t = p->toxics[i];
        double e = target_expiry(t->inst.target, t->inst.ts.set_at);
        if (e > 0 && e <= now) {
            log_info("proxy %s: toxic %s removed itself (ttl)", p->name,
                     t->name);
            proxy_remove_toxic(p, t);
        }
    }
    for (int i = m->n - 1; i >= 0; i--) {
        struct behav_inst *b = &p->conf->behav[m->e[i].behav];
        double e = target_expiry(b->target, b->ts.set_at);
        if (e > 0 && e <= now) {
            log_info("proxy %s: behavior %s removed itself (ttl)", p->name,
                     b->ops->name);
            b->target[TARGET_TTL].f = 0; /* done: dummy, put back in an
                                           empty mix, must not expire */
            memmove(&m->e[i], &m->e[i + 1], sizeof(m->e[0]) * (size_t)(m->n - i - 1));
            m->n--;
            mix_changed = true;
        }
    }
    if (mix_changed && m->n == 0) {
        m->n = 1;
        m->e[0].pct = 100;
        m->e[0].behav = behav_find("dummy");
    }
    if (mix_changed) {
        p->conf->all_dummy = mix_all_dummy(p->conf);
        proxy_decisions_changed(p);
    }
    proxy_arm_ttl(p);
}

struct proxy *proxy_create(struct event_base *base, struct evdns_base *dns,
                           const char *name, const struct settings *st)
{
    struct proxy *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    snprintf(p->name, sizeof(p->name), "%s", name);
    addr_format(&st->proxy, p->listen_text, sizeof(p->listen_text));
    addr_format(&st->backend, p->upstream_text, sizeof(p->upstream_text));
    p->conf = proxy_conf_create(st);
    if (p->conf == NULL) {
        free(p);
        return NULL;
    }
    p->conf->all_dummy = mix_all_dummy(p->conf);
    p->base = base;
    p->dns = dns;
    p->listen = st->proxy;
    p->backend = st->backend;
    snprintf(p->backend_port, sizeof(p->backend_port), "%u", st->backend.port);
    p->timeout = st->timeout;
    p->stay_connected = st->stay_connected;
    p->max_connections = st->max_connections;
    p->overflow_backlog = st->overflow_backlog;
    p->backlog = st->backlog;
    LIST_INIT(&p->sessions);
    LIST_INIT(&p->graveyard);
    event_assign(&p->reap_ev, base, -1, 0, reap_cb, p);
    evtimer_assign(&p->accept_retry_ev, base, accept_retry_cb, p);
    evtimer_assign(&p->ttl_ev, base, ttl_cb, p);
    proxy_arm_ttl(p); /* a ttl from the command line counts from now */
    LIST_INSERT_HEAD(&all_proxies, p, all_link);
    return p;
}

int proxy_set_tls(struct proxy *p, const struct settings *st, char *err,
                  size_t errlen)
{
    tls_conf_deinit(&p->tls);
    if (!st->proxy_tls && !st->backend_tls && !st->starttls)
        return 0;
    return tls_conf_init(&p->tls, st, st->proxy.host, st->backend.host, err,
                         errlen);
}

int proxy_start(struct proxy *p, char *err, size_t errlen)
{
    int fds[PROXY_LISTEN_MAX], n;
    char bound[80];

    if (p->nlev > 0)
        return 0;
    n = net_bind_all(&p->listen, fds, PROXY_LISTEN_MAX, err, errlen);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        struct evconnlistener *lev = evconnlistener_new(
            p->base, accept_cb, p, LEV_OPT_CLOSE_ON_FREE, p->backlog, fds[i]);
        if (lev == NULL) {
            int e = errno != 0 ? errno : EINVAL;
            char where[300];
            for (int k = i; k < n; k++)
                close(fds[k]);
            proxy_stop(p);
            snprintf(err, errlen, "listen tcp %s: %s",
                     addr_format(&p->listen, where, sizeof(where)),
                     strerror(e));
            return -e;
        }
        evconnlistener_set_error_cb(lev, accept_error_cb);
        p->lev[p->nlev++] = lev;
    }
    update_listening(p); /* a total limit reached pauses it from the start */
    proxy_bound_addr(p, bound, sizeof(bound));
    if (p->listen.port == 0 || net_is_wildcard(&p->listen)) {
        /* as Toxiproxy: the port picked is the proxy's from now on, and a
         * wildcard is reported as its socket is, "[::]:8666" */
        char why[300];
        if (addr_parse(bound, &p->listen, why, sizeof(why)) == 0)
            snprintf(p->listen_text, sizeof(p->listen_text), "%s", bound);
    }
    log_info("proxy %s listening on %s", p->name, bound);
    return 0;
}

char *proxy_bound_addr(const struct proxy *p, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    buf[0] = '\0';
    if (p->nlev == 0 ||
        getsockname(evconnlistener_get_fd(p->lev[0]), (struct sockaddr *)&ss,
                    &sl) < 0)
        return buf;
    return addr_format_sockaddr((struct sockaddr *)&ss, buf, len);
}

void proxy_stop(struct proxy *p)
{
    struct session *s;

    for (int i = 0; i < p->nlev; i++)
        evconnlistener_free(p->lev[i]);
    p->nlev = 0;
    p->paused = p->accept_paused = false;
    evtimer_del(&p->accept_retry_ev);
    while ((s = LIST_FIRST(&p->sessions)) != NULL)
        session_close(s, false, "proxy stopped");
}

void proxy_destroy(struct proxy *p)
{
    struct session *s;

    if (p == NULL)
        return;
    proxy_stop(p);
    behav_lua_proxy_gone(p->name);
    tls_conf_deinit(&p->tls);
    while ((s = LIST_FIRST(&p->graveyard)) != NULL) {
        if (s->dns_req != NULL) {
            /* its cancelled lookup reports later: dns_cb frees it */
            LIST_REMOVE(s, link);
            s->proxy = NULL;
            continue;
        }
        session_destroy(s);
    }
    event_del(&p->reap_ev);
    evtimer_del(&p->ttl_ev);
    LIST_REMOVE(p, all_link);
    proxy_conf_destroy(p->conf);
    for (int i = 0; i < p->ntoxics; i++)
        toxic_destroy(p->toxics[i]);
    free(p->tls_given);
    free(p);
}

void proxy_set_backend(struct proxy *p, const struct addr *a, const char *text)
{
    p->backend = *a;
    snprintf(p->backend_port, sizeof(p->backend_port), "%u", a->port);
    snprintf(p->upstream_text, sizeof(p->upstream_text), "%s", text);
}

int proxy_set_enabled(struct proxy *p, bool enabled, char *err, size_t errlen)
{
    if (enabled && p->nlev == 0) {
        int rc = proxy_start(p, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (!enabled)
        proxy_stop(p);
    p->enabled = enabled;
    return 0;
}

void proxy_toxics_changed(struct proxy *p)
{
    struct session *s, *next;

    for (s = LIST_FIRST(&p->sessions); s != NULL; s = next) {
        next = LIST_NEXT(s, link);
        session_set_toxics(s);
    }
}

struct toxic *proxy_find_toxic(const struct proxy *p, const char *name)
{
    for (int i = 0; i < p->ntoxics; i++)
        if (strcmp(p->toxics[i]->name, name) == 0)
            return p->toxics[i];
    return NULL;
}

int proxy_add_toxic(struct proxy *p, struct toxic *t)
{
    if (p->ntoxics == TOXIC_MAX)
        return -ENOSPC;
    p->toxics[p->ntoxics++] = t;
    proxy_toxics_changed(p);
    proxy_arm_ttl(p);
    return 0;
}

void proxy_remove_toxic(struct proxy *p, struct toxic *t)
{
    int i = 0;

    while (i < p->ntoxics && p->toxics[i] != t)
        i++;
    if (i == p->ntoxics)
        return;
    memmove(&p->toxics[i], &p->toxics[i + 1],
            sizeof(p->toxics[0]) * (size_t)(p->ntoxics - i - 1));
    p->ntoxics--;
    /* sessions drop their links to t before it is freed */
    proxy_toxics_changed(p);
    toxic_destroy(t);
}

void proxy_clear_toxics(struct proxy *p)
{
    int n = p->ntoxics;
    struct toxic *gone[TOXIC_MAX];

    memcpy(gone, p->toxics, sizeof(gone[0]) * (size_t)n);
    p->ntoxics = 0;
    proxy_toxics_changed(p);
    for (int i = 0; i < n; i++)
        toxic_destroy(gone[i]);
}

const char *proxy_listen_text(const struct proxy *p, char *buf, size_t len)
{
    if (p->nlev > 0)
        return proxy_bound_addr(p, buf, len);
    snprintf(buf, len, "%s", p->listen_text);
    return buf;
}

void proxy_decisions_changed(struct proxy *p)
{
    struct session *s, *next;

    for (s = LIST_FIRST(&p->sessions); s != NULL; s = next) {
        next = LIST_NEXT(s, link);
        session_conf_changed(s);
    }
}

void proxy_set_conf(struct proxy *p, struct proxy_conf *c)
{
    proxy_conf_destroy(p->conf);
    c->all_dummy = mix_all_dummy(c);
    p->conf = c;
    proxy_decisions_changed(p);
    proxy_arm_ttl(p);
}
