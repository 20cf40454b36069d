/*
 * server: the named proxies of one Vaurien process.
 *
 *   control API / config file ──▶ server ──▶ proxy, proxy, ... (proxy.h)
 *
 * The server creates proxies from a template of settings (timeouts, backlog,
 * protocol options from the command line) and owns them.
 */
#ifndef VAURIEN_SERVER_H
#define VAURIEN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "conf/settings.h"
#include "net/proxy.h"

TAILQ_HEAD(proxy_list, proxy);

struct server {
    struct event_base *base;
    struct evdns_base *dns;
    const struct settings *defaults; /* template of new proxies */
    struct proxy_list proxies;       /* in the order created */
    int nproxies;
};

void server_init(struct server *srv, struct event_base *base,
                 struct evdns_base *dns, const struct settings *defaults);
/* Stops and frees every proxy. */
void server_deinit(struct server *srv);

struct proxy *server_find(const struct server *srv, const char *name);

/* Creates a proxy and, when enabled, starts it. protocol NULL means the
 * template's. settings: NULL, or pairs of settings keys and values over
 * the template's (its TLS: "backend_tls", "true", ...), ending with NULL.
 * On failure returns NULL with a message in err and *status set to the
 * HTTP status that fits (400, 409, 500). */
struct proxy *server_create_proxy(struct server *srv, const char *name,
                                  const char *listen, const char *upstream,
                                  const char *protocol,
                                  const char *const *settings, bool enabled,
                                  int *status, char *err, size_t errlen);

/* Whether a proxy with these settings would get its TLS (certificates
 * and keys that load): checked before a reload replaces a proxy. Returns
 * 0 or -1 with err. */
int server_check_tls(const struct server *srv, const char *listen,
                     const char *upstream, const char *const *settings,
                     char *err, size_t errlen);

/* Adds a proxy made elsewhere (the command line's). */
void server_add(struct server *srv, struct proxy *p);

/* Stops, removes and frees a proxy. */
void server_delete(struct server *srv, struct proxy *p);

/* Re-enables every proxy and removes every toxic (POST /reset). */
void server_reset(struct server *srv);

#endif
