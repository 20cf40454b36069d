/*
 * server: the named proxies (see server.h).
 */
#include "net/server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "net/mem.h"

void server_init(struct server *srv, struct event_base *base,
                 struct evdns_base *dns, const struct settings *defaults)
{
    memset(srv, 0, sizeof(*srv));
    srv->base = base;
    srv->dns = dns;
    srv->defaults = defaults;
    TAILQ_INIT(&srv->proxies);
}

void server_deinit(struct server *srv)
{
    struct proxy *p;

    while ((p = TAILQ_FIRST(&srv->proxies)) != NULL)
        server_delete(srv, p);
}

struct proxy *server_find(const struct server *srv, const char *name)
{
    struct proxy *p;

    TAILQ_FOREACH(p, &srv->proxies, link)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

void server_add(struct server *srv, struct proxy *p)
{
    TAILQ_INSERT_TAIL(&srv->proxies, p, link);
    srv->nproxies++;
}

/* The server's template with a proxy's addresses, protocol and settings
 * (pairs of key and value, NULL-terminated) in *st. Returns 0 or -1 with
 * err. */
static int proxy_settings(const struct server *srv, const char *listen,
                          const char *upstream, const char *protocol,
                          const char *const *settings, struct settings *st,
                          char *err, size_t errlen)
{
    char why[600];

    *st = *srv->defaults;
    if (settings_set(st, "proxy", listen, why, sizeof(why)) < 0 ||
        settings_set(st, "backend", upstream, why, sizeof(why)) < 0 ||
        (protocol != NULL &&
         settings_set(st, "protocol", protocol, why, sizeof(why)) < 0)) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    for (int i = 0; settings != NULL && settings[i] != NULL; i += 2)
        if (settings_set(st, settings[i], settings[i + 1], why,
                         sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: %s", settings[i], why);
            return -1;
        }
    return 0;
}

int server_check_tls(const struct server *srv, const char *listen,
                     const char *upstream, const char *const *settings,
                     char *err, size_t errlen)
{
    struct settings st;
    struct tls_conf t;

    if (proxy_settings(srv, listen, upstream, NULL, settings, &st, err,
                       errlen) < 0)
        return -1;
    if (!st.proxy_tls && !st.backend_tls && !st.starttls)
        return 0;
    if (tls_conf_init(&t, &st, st.proxy.host, st.backend.host, err, errlen) < 0)
        return -1;
    tls_conf_deinit(&t);
    return 0;
}

struct proxy *server_create_proxy(struct server *srv, const char *name,
                                  const char *listen, const char *upstream,
                                  const char *protocol,
                                  const char *const *settings, bool enabled,
                                  int *status, char *err, size_t errlen)
{
    struct settings st;
    struct proxy *p = NULL;

    *status = 400;
    if (server_find(srv, name) != NULL) {
        *status = 409;
        snprintf(err, errlen, "proxy already exists");
        return NULL;
    }
    /* the template, with this proxy's addresses and protocol */
    if (proxy_settings(srv, listen, upstream, protocol, settings, &st, err,
                       errlen) < 0)
        return NULL;
    p = proxy_create(srv->base, srv->dns, name, &st);
    if (p == NULL) {
        *status = 500;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (proxy_set_tls(p, &st, err, errlen) < 0) {
        proxy_destroy(p);
        return NULL;
    }
    snprintf(p->listen_text, sizeof(p->listen_text), "%s", listen);
    snprintf(p->listen_asked, sizeof(p->listen_asked), "%s", listen);
    snprintf(p->upstream_text, sizeof(p->upstream_text), "%s", upstream);
    if (enabled && proxy_set_enabled(p, true, err, errlen) < 0) {
        *status = 500;
        proxy_destroy(p);
        return NULL;
    }
    server_add(srv, p);
    log_info("proxy %s created: %s -> %s (%s)", name, listen, upstream,
             p->conf->proto->name);
    return p;
}

void server_delete(struct server *srv, struct proxy *p)
{
    TAILQ_REMOVE(&srv->proxies, p, link);
    srv->nproxies--;
    log_info("proxy %s deleted", p->name);
    proxy_destroy(p);
    /* what it held goes back to the system (at most one trim a second) */
    mem_trim_soon(srv->base);
}

void server_reset(struct server *srv)
{
    struct proxy *p;
    char err[300];

    TAILQ_FOREACH(p, &srv->proxies, link) {
        proxy_clear_toxics(p);
        if (!p->enabled && proxy_set_enabled(p, true, err, sizeof(err)) < 0)
            log_warn("reset: proxy %s: %s", p->name, err);
    }
}
