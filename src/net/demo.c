/*
 * demo: the built-in HTTP "hello" backend (see demo.h). It answers every
 * request with 200 and a short text, keeps connections alive, and reads
 * Content-Length bodies; anything else it does not understand closes the
 * connection.
 */
#include "net/demo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <sys/queue.h>

#define DEMO_HEAD_MAX (64 * 1024)

struct demo_conn;

struct demo_backend {
    struct evconnlistener *lev;
    LIST_HEAD(, demo_conn) conns; /* open connections, freed at stop */
    unsigned long long served;
};

struct demo_conn {
    LIST_ENTRY(demo_conn) link;
    struct bufferevent *bev;
    struct demo_backend *d;
    size_t body_left; /* bytes of the current request body still to skip */
    int close_after;
};

static void demo_conn_free(struct bufferevent *bev, struct demo_conn *c)
{
    LIST_REMOVE(c, link);
    bufferevent_free(bev);
    free(c);
}

static int header_has(const char *head, size_t len, const char *name,
                      const char *value)
{
    size_t nl = strlen(name);

    for (const char *p = head; p < head + len;) {
        const char *eol = memchr(p, '\n', (size_t)(head + len - p));
        size_t ll = eol != NULL ? (size_t)(eol - p) : (size_t)(head + len - p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            if (value == NULL)
                return (int)strtol(p + nl + 1, NULL, 10);
            for (const char *q = p + nl + 1; q + strlen(value) <= p + ll; q++)
                if (strncasecmp(q, value, strlen(value)) == 0)
                    return 1;
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    return 0;
}

static void demo_read_cb(struct bufferevent *bev, void *arg)
{
    struct demo_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    static const char body[] = "hello from the Vaurien demo backend\n";

    for (;;) {
        struct evbuffer_ptr end;
        size_t headlen;
        char *head;

        if (c->body_left > 0) {
            size_t n = evbuffer_get_length(in);
            n = n < c->body_left ? n : c->body_left;
            evbuffer_drain(in, n);
            c->body_left -= n;
            if (c->body_left > 0)
                return;
        }
        end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) {
            if (evbuffer_get_length(in) > DEMO_HEAD_MAX)
                demo_conn_free(bev, c);
            return;
        }
        headlen = (size_t)end.pos + 4;
        head = (char *)evbuffer_pullup(in, (ev_ssize_t)headlen);
        c->close_after = header_has(head, headlen, "Connection", "close") ||
                         memmem(head, headlen, "HTTP/1.0", 8) != NULL;
        c->body_left = (size_t)header_has(head, headlen, "Content-Length", NULL);
        if (header_has(head, headlen, "Transfer-Encoding", "chunked"))
            c->close_after = 1; /* not parsed here: answer, then close */
        evbuffer_drain(in, headlen);
        c->d->served++;
        evbuffer_add_printf(bufferevent_get_output(bev),
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %zu\r\n%s\r\n%s",
                            sizeof(body) - 1,
                            c->close_after ? "Connection: close\r\n" : "", body);
        if (c->close_after) {
            bufferevent_disable(bev, EV_READ);
            return;
        }
    }
}

static void demo_write_cb(struct bufferevent *bev, void *arg)
{
    struct demo_conn *c = arg;

    if (c->close_after &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        demo_conn_free(bev, c);
}

static void demo_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    demo_conn_free(bev, arg);
}

static void demo_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
                           struct sockaddr *sa, int salen, void *arg)
{
    struct demo_conn *c = calloc(1, sizeof(*c));
    struct bufferevent *bev;

    (void)sa;
    (void)salen;
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    c->d = arg;
    bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd,
                                 BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->bev = bev;
    LIST_INSERT_HEAD(&c->d->conns, c, link);
    bufferevent_setcb(bev, demo_read_cb, demo_write_cb, demo_event_cb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

struct demo_backend *demo_backend_start(struct event_base *base,
                                        const struct addr *a, char *err,
                                        size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res;
    struct demo_backend *d;
    char port[8];
    int rc;

    snprintf(port, sizeof(port), "%u", a->port);
    rc = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "demo backend %s: %s", a->host, gai_strerror(rc));
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    if (d != NULL)
        LIST_INIT(&d->conns);
    if (d != NULL)
        d->lev = evconnlistener_new_bind(
            base, demo_accept_cb, d, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
            128, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (d == NULL || d->lev == NULL) {
        snprintf(err, errlen, "demo backend on port %u: cannot listen: %s",
                 a->port, strerror(errno));
        free(d);
        return NULL;
    }
    return d;
}

void demo_backend_stop(struct demo_backend *d)
{
    if (d == NULL)
        return;
    while (!LIST_EMPTY(&d->conns))
        demo_conn_free(LIST_FIRST(&d->conns)->bev, LIST_FIRST(&d->conns));
    evconnlistener_free(d->lev);
    free(d);
}
