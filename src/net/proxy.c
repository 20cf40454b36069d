/*
 * proxy: listeners, the session list and configuration snapshots
 * (see proxy.h).
 */
#include "net/proxy.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "net/session.h"

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
    for (int i = 0; i < behav_count(); i++) {
        c->behav[i].ops = behav_at(i);
        opt_copy(behav_at(i)->opts, c->behav[i].vals, st->behav[i].vals);
    }
    return c;
}

void proxy_conf_destroy(struct proxy_conf *c)
{
    if (c == NULL)
        return;
    opt_free(c->proto->opts, c->proto_vals);
    for (int i = 0; i < behav_count(); i++)
        behav_inst_deinit(&c->behav[i]);
    free(c);
}

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
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;

    (void)fd;
    (void)what;
    for (int i = 0; i < p->nlev; i++)
        evconnlistener_enable(p->lev[i]);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    (void)lev;
    (void)salen;
    session_create(arg, fd, sa);
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
        for (int i = 0; i < p->nlev; i++)
            evconnlistener_disable(p->lev[i]);
        evtimer_add(&p->accept_retry_ev, &tv);
        return;
    }
    if (now - p->accept_err_logged >= 10) {
        log_warn("accept: %s", strerror(e));
        p->accept_err_logged = now;
    }
}

struct proxy *proxy_create(struct event_base *base, struct evdns_base *dns,
                           const struct settings *st)
{
    struct proxy *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->conf = proxy_conf_create(st);
    if (p->conf == NULL) {
        free(p);
        return NULL;
    }
    p->base = base;
    p->dns = dns;
    p->listen = st->proxy;
    p->backend = st->backend;
    snprintf(p->backend_port, sizeof(p->backend_port), "%u", st->backend.port);
    p->timeout = st->timeout;
    p->stay_connected = st->stay_connected;
    p->backlog = st->backlog;
    LIST_INIT(&p->sessions);
    LIST_INIT(&p->graveyard);
    event_assign(&p->reap_ev, base, -1, 0, reap_cb, p);
    evtimer_assign(&p->accept_retry_ev, base, accept_retry_cb, p);
    return p;
}

static int bind_one(struct proxy *p, const struct addrinfo *ai)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    struct evconnlistener *lev;

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    lev = evconnlistener_new(p->base, accept_cb, p, LEV_OPT_CLOSE_ON_FREE,
                             p->backlog, fd);
    if (lev == NULL) {
        int e = errno != 0 ? errno : EINVAL;
        close(fd);
        return -e;
    }
    evconnlistener_set_error_cb(lev, accept_error_cb);
    p->lev[p->nlev++] = lev;
    return 0;
}

int proxy_start(struct proxy *p, char *err, size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    char port[8], where[300], bound[80];
    int rc, first_err = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", p->listen.port);
    rc = getaddrinfo(p->listen.host[0] ? p->listen.host : NULL, port, &hints,
                     &res);
    addr_format(&p->listen, where, sizeof(where));
    if (rc != 0) {
        snprintf(err, errlen, "proxy %s: %s", where, gai_strerror(rc));
        return -EINVAL;
    }
    for (ai = res; ai != NULL && p->nlev < PROXY_LISTEN_MAX; ai = ai->ai_next) {
        rc = bind_one(p, ai);
        if (rc < 0 && first_err == 0)
            first_err = rc;
        /* With port 0 on several addresses, bind the first only, so that
         * the proxy has one port. */
        if (rc == 0 && p->listen.port == 0)
            break;
    }
    freeaddrinfo(res);
    if (p->nlev == 0) {
        snprintf(err, errlen, "proxy %s: cannot listen: %s", where,
                 strerror(-first_err));
        return first_err;
    }
    log_info("listening on %s", proxy_bound_addr(p, bound, sizeof(bound)));
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
    while ((s = LIST_FIRST(&p->graveyard)) != NULL)
        session_destroy(s);
    event_del(&p->reap_ev);
    proxy_conf_destroy(p->conf);
    free(p);
}

void proxy_set_conf(struct proxy *p, struct proxy_conf *c)
{
    proxy_conf_destroy(p->conf);
    p->conf = c;
}
