/*
 * api: the control API, on the same event loop as the data path.
 *
 *   HTTP request ──▶ guards (browser, size) ──▶ route ──▶ Toxiproxy endpoints
 *                                                     └─▶ Vaurien endpoints
 *
 * Every handler works on the server's proxies directly and answers at once:
 * nothing waits on a connection.
 */
#ifndef VAURIEN_API_H
#define VAURIEN_API_H

#include <stddef.h>

#include <event2/event.h>

#include "core/addr.h"
#include "net/server.h"

struct api;

/* Serves the API for srv on a; token, if not empty, must come with every
 * request as "Authorization: Bearer TOKEN". Returns NULL with a message in
 * err. */
struct api *api_start(struct event_base *base, struct server *srv,
                      const struct addr *a, const char *token, char *err,
                      size_t errlen);
/* Adds Toxiproxy's proxy series (-proxy-metrics) and the process_*
 * series (-runtime-metrics) to GET /metrics. */
void api_set_metrics(struct api *api, bool proxy, bool runtime);
void api_stop(struct api *api);

/* Whether a request with these Host and Origin headers (NULL: absent) may
 * reach an API on port, listening on loopback or not (see README). Returns
 * NULL, or why not. */
const char *api_guard(bool loopback, unsigned port, const char *host,
                      const char *origin);

/* Answers req with code and {"error": msg, "status": code}. */
struct evhttp_request;
void api_send_error(struct evhttp_request *req, int code, const char *msg);

/* "host:port" the API really listens on. */
char *api_bound_addr(const struct api *api, char *buf, size_t len);

#define API_TOXIPROXY_VERSION "2.12.0"

#endif
