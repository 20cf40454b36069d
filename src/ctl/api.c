/*
 * api: routes and handlers of the control API (see api.h).
 *
 * Toxiproxy's endpoints answer as Toxiproxy 2.12 does (status codes,
 * messages, JSON shapes); the original Vaurien's endpoints answer as it did,
 * acting on the proxy named "vaurien" (or the only proxy).
 */
#include "ctl/api.h"

#include "behav/replay.h"
#include "behav/schedule.h"
#include "ctl/replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "behav/mix.h"
#include "core/log.h"
#include "ctl/events.h"
#include "ctl/json.h"
#include "ctl/metrics.h"
#include "ctl/scripts.h"
#include "net/listen.h"
#include "net/mem.h"

#define API_BODY_MAX (1 << 20)
#define API_HEADERS_MAX 16384
#define API_TIMEOUT_S 10
#define API_LISTEN_MAX 4

/* A connection to the API and the deadline of the request it owes. */
struct api_conn {
    LIST_ENTRY(api_conn) link;
    struct bufferevent *bev;          /* held (a reference) until adopted */
    struct evhttp_connection *evcon;  /* NULL until adopted */
    struct event *deadline;
    struct events_stream *stream;     /* GET /events/stream on it */
};

struct api {
    struct evhttp *http;
    LIST_HEAD(, api_conn) conns;
    struct server *srv;
    char token[256];           /* required bearer token, "" = none */
    int fds[API_LISTEN_MAX];
    int nfds;
    unsigned long long requests;
    bool loopback;             /* every address it listens on is */
    unsigned port;             /* the port it listens on */
    bool proxy_metrics;        /* Toxiproxy's own series too */
    bool runtime_metrics;      /* and the process_* series */
};

/* ---- connections: a deadline for each request ----------------------------- */

/* evhttp's own timeout is an idle one: a client sending a byte every few
 * seconds would hold its connection forever. We make each connection's
 * bufferevent (evhttp_set_bevcb), learn its evhttp connection once evhttp
 * has set it up (the bufferevent's callback argument, read at the next
 * loop pass; a reference keeps the bufferevent alive until then), and give
 * it API_TIMEOUT_S to send each request whole. */

static void conn_free(struct api_conn *c)
{
    events_stream_end(c->stream);
    LIST_REMOVE(c, link);
    event_free(c->deadline);
    free(c);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    conn_free(arg);
}

static void conn_arm(struct api_conn *c)
{
    struct timeval tv = { API_TIMEOUT_S, 0 };

    evtimer_add(c->deadline, &tv);
}

/* Adopts c: evhttp set its bufferevent's callbacks, whose argument is
 * the connection (none: evhttp is already done with it, and c is freed).
 * Returns false when c was freed. */
static bool conn_adopt(struct api_conn *c)
{
    struct bufferevent *bev = c->bev;
    bufferevent_data_cb readcb;
    void *cbarg;
    bool kept = false;

    bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
    if (readcb == NULL || cbarg == NULL) {
        conn_free(c);
    } else {
        c->evcon = cbarg;
        evhttp_connection_set_closecb(c->evcon, conn_closed, c);
        conn_arm(c);
        kept = true;
    }
    bufferevent_decref(bev); /* evhttp's alone from now on */
    return kept;
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct api_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->evcon == NULL) {
        conn_adopt(c);
        return;
    }
    log_info("control API: a request not whole in %d s; connection closed",
             API_TIMEOUT_S);
    evhttp_connection_free(c->evcon); /* conn_closed frees c */
}

static struct bufferevent *conn_new(struct event_base *base, void *arg)
{
    struct api *api = arg;
    struct api_conn *c = calloc(1, sizeof(*c));
    struct timeval now = { 0, 0 };

    if (c == NULL)
        return NULL;
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->deadline = evtimer_new(base, conn_timer_cb, c);
    if (c->bev == NULL || c->deadline == NULL) {
        if (c->bev != NULL)
            bufferevent_free(c->bev);
        if (c->deadline != NULL)
            event_free(c->deadline);
        free(c);
        return NULL;
    }
    bufferevent_incref(c->bev);
    LIST_INSERT_HEAD(&api->conns, c, link);
    evtimer_add(c->deadline, &now); /* adopted at the next loop pass */
    return c->bev;
}

/* The request on req's connection came whole: the next request's
 * deadline runs from now. */
static struct api_conn *conn_of(struct api *api, struct evhttp_request *req);

static void conn_request_done(struct api *api, struct evhttp_request *req)
{
    struct api_conn *c = conn_of(api, req);

    if (c != NULL)
        conn_arm(c);
}

/* The adopted connection of req, or NULL. */
static struct api_conn *conn_of(struct api *api, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct api_conn *c, *next;

    if (evcon == NULL)
        return NULL;
    LIST_FOREACH(c, &api->conns, link)
        if (c->evcon == evcon)
            return c;
    /* a request can come before the timer adopted its connection */
    for (c = LIST_FIRST(&api->conns); c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (c->evcon == NULL && conn_adopt(c) && c->evcon == evcon)
            return c;
    }
    return NULL;
}

/* GET /events/stream: the connection streams from now on, with no
 * deadline (events.h bounds what it queues). */
static void stream_start(struct api *api, struct evhttp_request *req)
{
    struct api_conn *c = conn_of(api, req);

    if (c == NULL || c->stream != NULL) {
        api_send_error(req, 503, "the connection is not ready to stream; retry");
        return;
    }
    c->stream = events_stream_start(req);
    if (c->stream != NULL)
        evtimer_del(c->deadline);
}

/* After evhttp_free(): the connections it had not handed over yet. */
static void conn_free_all(struct api *api)
{
    while (!LIST_EMPTY(&api->conns)) {
        struct api_conn *c = LIST_FIRST(&api->conns);
        struct bufferevent *bev = c->evcon == NULL ? c->bev : NULL;
        conn_free(c);
        if (bev != NULL)
            bufferevent_decref(bev);
    }
}

/* ---- responses ---------------------------------------------------------- */

static void add_request_id(struct api *api, struct evhttp_request *req)
{
    char id[32];

    snprintf(id, sizeof(id), "%016llx%04x", ++api->requests,
             (unsigned)getpid() & 0xffff);
    evhttp_add_header(evhttp_request_get_output_headers(req),
                      "X-Toxiproxy-Request-Id", id);
}

static void send_text(struct evhttp_request *req, int code, const char *type,
                      const char *body)
{
    struct evbuffer *out = evbuffer_new();

    if (type != NULL)
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Type", type);
    if (out != NULL && body != NULL)
        evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, code, NULL, out);
    if (out != NULL)
        evbuffer_free(out);
}

/* Sends j (consumed) as the body. */
static void send_json(struct evhttp_request *req, int code, json_t *j)
{
    char *text = ctl_json_text(j);
    size_t n = text != NULL ? strlen(text) : 0;
    char *body = malloc(n + 2);

    if (body != NULL) {
        memcpy(body, text != NULL ? text : "", n);
        body[n] = '\n';
        body[n + 1] = '\0';
    }
    send_text(req, code, "application/json", body);
    free(body);
    free(text);
    json_decref(j);
}

/* Toxiproxy's error: {"error": MSG, "status": CODE}, as text/plain. */
static void send_error_extra(struct evhttp_request *req, int code,
                             const char *msg, const char *key, json_t *extra)
{
    json_t *j = json_object();
    char *text;

    json_object_set_new(j, "error", json_string(msg));
    json_object_set_new(j, "status", json_integer(code));
    if (key != NULL)
        json_object_set_new(j, key, extra != NULL ? extra : json_null());
    text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        size_t n = strlen(text);
        char *body = malloc(n + 2);
        if (body != NULL) {
            memcpy(body, text, n);
            strcpy(body + n, "\n");
            send_text(req, code, "text/plain; charset=utf-8", body);
            free(body);
        }
        free(text);
    }
    json_decref(j);
}

void api_send_error(struct evhttp_request *req, int code, const char *msg)
{
    send_error_extra(req, code, msg, NULL, NULL);
}

/* The original Vaurien's error: 400 {"status": "error", "errors": [...]}. */
static void send_vaurien_error(struct evhttp_request *req, const char *name,
                               const char *description)
{
    json_t *e = json_object(), *j = json_object(), *a = json_array();

    json_object_set_new(e, "location", json_string("body"));
    json_object_set_new(e, "name", json_string(name));
    json_object_set_new(e, "description", json_string(description));
    json_array_append_new(a, e);
    json_object_set_new(j, "status", json_string("error"));
    json_object_set_new(j, "errors", a);
    send_json(req, 400, j);
}

static void send_ok(struct evhttp_request *req)
{
    send_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* The request body as JSON; NULL with a message when it is not JSON. An
 * empty body is an empty object (Toxiproxy clients send none to /reset). */
static json_t *read_body(struct evhttp_request *req, char *err, size_t errlen)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    json_error_t je;
    json_t *j;

    if (n == 0)
        return json_object();
    j = json_loadb((const char *)evbuffer_pullup(in, -1), n,
                   JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (j == NULL)
        snprintf(err, errlen, "bad request body: %s (line %d, column %d)",
                 je.text, je.line, je.column);
    return j;
}

/* ---- Toxiproxy ---------------------------------------------------------- */

static void proxies_get(struct api *api, struct evhttp_request *req)
{
    json_t *o = json_object();
    struct proxy *p;

    TAILQ_FOREACH(p, &api->srv->proxies, link)
        json_object_set_new(o, p->name, ctl_proxy_json(p));
    send_json(req, 200, o);
}

static void proxies_post(struct api *api, struct evhttp_request *req)
{
    char err[600];
    json_t *body = read_body(req, err, sizeof(err));
    struct proxy *p;
    int status;

    if (body == NULL) {
        api_send_error(req, 400, err);
        return;
    }
    p = ctl_proxy_create(api->srv, body, &status, err, sizeof(err));
    json_decref(body);
    if (p == NULL)
        api_send_error(req, status, err);
    else
        send_json(req, 201, ctl_proxy_json(p));
}

static void populate_post(struct api *api, struct evhttp_request *req)
{
    char err[600];
    json_t *body = read_body(req, err, sizeof(err)), *out, *done;
    int status;

    if (body == NULL) {
        send_error_extra(req, 400, err, "proxies", NULL);
        return;
    }
    out = ctl_populate(api->srv, body, &status, &done, err, sizeof(err));
    json_decref(body);
    if (out == NULL) {
        send_error_extra(req, status, err, "proxies", done);
        return;
    }
    send_json(req, 201, json_pack("{s:o}", "proxies", out));
}

/* POST/PATCH /proxies/{p}: listen, upstream, enabled; a change of address
 * restarts the proxy (its connections are closed), as in Toxiproxy. */
static void proxy_update(struct proxy *p,
                         struct evhttp_request *req)
{
    char err[600];
    json_t *body = read_body(req, err, sizeof(err)), *enabled;
    const char *listen = NULL, *upstream = NULL;
    struct addr la, ua;
    bool want;

    if (body == NULL || !json_is_object(body)) {
        api_send_error(req, 400, body == NULL ? err : "bad request body: expected "
                                                  "a JSON object");
        json_decref(body);
        return;
    }
    listen = json_string_value(json_object_get(body, "listen"));
    upstream = json_string_value(json_object_get(body, "upstream"));
    enabled = json_object_get(body, "enabled");
    want = enabled != NULL && json_is_boolean(enabled) ? json_is_true(enabled)
                                                       : p->enabled;
    if ((listen != NULL && addr_parse(listen, &la, err, sizeof(err)) < 0) ||
        (upstream != NULL && addr_parse(upstream, &ua, err, sizeof(err)) < 0)) {
        json_decref(body);
        api_send_error(req, 400, err);
        return;
    }
    if ((listen != NULL && strcmp(listen, p->listen_text) != 0) ||
        (upstream != NULL && strcmp(upstream, p->upstream_text) != 0)) {
        proxy_stop(p);
        if (listen != NULL) {
            p->listen = la;
            snprintf(p->listen_text, sizeof(p->listen_text), "%s", listen);
        }
        if (upstream != NULL)
            proxy_set_backend(p, &ua, upstream);
        p->enabled = false;
    }
    json_decref(body);
    if (proxy_set_enabled(p, want, err, sizeof(err)) < 0) {
        api_send_error(req, 500, err);
        return;
    }
    send_json(req, 200, ctl_proxy_json(p));
}

static void toxics_post(struct proxy *p, struct evhttp_request *req)
{
    char err[600];
    json_t *body = read_body(req, err, sizeof(err));
    struct toxic *t;
    int status;

    if (body == NULL) {
        api_send_error(req, 400, err);
        return;
    }
    t = ctl_toxic_create(p, body, &status, err, sizeof(err));
    json_decref(body);
    if (t == NULL)
        api_send_error(req, status, err);
    else
        send_json(req, 200, ctl_toxic_json(t));
}

static void toxic_update(struct proxy *p, struct toxic *t,
                         struct evhttp_request *req)
{
    char err[600];
    json_t *body = read_body(req, err, sizeof(err));

    if (body == NULL || ctl_toxic_update(t, body, p->conf->proto, err, sizeof(err)) < 0) {
        json_decref(body);
        api_send_error(req, 400, err);
        return;
    }
    json_decref(body);
    proxy_toxics_changed(p);
    proxy_arm_ttl(p);
    send_json(req, 200, ctl_toxic_json(t));
}

/* One metric family with a value per proxy. */
static void metric(struct evbuffer *out, const struct server *srv,
                   const char *name, const char *type, const char *help,
                   unsigned long long (*value)(const struct proxy *))
{
    const struct proxy *p;

    metrics_family(out, name, type, help);
    TAILQ_FOREACH(p, &srv->proxies, link) {
        evbuffer_add_printf(out, "%s{proxy=\"", name);
        metrics_label(out, p->name);
        evbuffer_add_printf(out, "\"} %llu\n", value(p));
    }
}

static unsigned long long m_accepted(const struct proxy *p) { return p->accepted; }
static unsigned long long m_active(const struct proxy *p) { return p->active; }
static unsigned long long m_refused(const struct proxy *p) { return p->refused; }
static unsigned long long m_up(const struct proxy *p) { return p->bytes[0][0]; }
static unsigned long long m_down(const struct proxy *p) { return p->bytes[1][0]; }

/* Toxiproxy's series (-proxy-metrics): bytes received and sent per proxy
 * and direction, with its labels, so its dashboards keep working. */
static void toxiproxy_metrics(struct evbuffer *out, const struct server *srv)
{
    static const struct {
        const char *name, *help;
        bool sent;
    } fam[] = {
        { "toxiproxy_proxy_received_bytes_total", "Bytes read, per proxy "
          "and direction (upstream: from clients).", false },
        { "toxiproxy_proxy_sent_bytes_total", "Bytes written, per proxy and "
          "direction (upstream: to the backend).", true },
    };
    const struct proxy *p;

    for (size_t f = 0; f < sizeof(fam) / sizeof(*fam); f++) {
        metrics_family(out, fam[f].name, "counter", fam[f].help);
        TAILQ_FOREACH(p, &srv->proxies, link) {
            for (int up = 1; up >= 0; up--) {
                unsigned long long v = p->bytes[up ? 0 : 1][fam[f].sent ? 0 : 1];
                evbuffer_add_printf(out, "%s{direction=\"%s\",listener=\"",
                                    fam[f].name, up ? "upstream" : "downstream");
                metrics_label(out, p->listen_text);
                evbuffer_add(out, "\",proxy=\"", 9);
                metrics_label(out, p->name);
                evbuffer_add(out, "\",upstream=\"", 12);
                metrics_label(out, p->upstream_text);
                evbuffer_add_printf(out, "\"} %llu\n", v);
            }
        }
    }
}

/* The standard process metrics (-runtime-metrics), read from /proc as
 * Prometheus' own process collector does. */
static void runtime_metrics(struct evbuffer *out)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0, btime = 0;
    long rss = 0;
    char buf[1024], num[64];
    FILE *f = fopen("/proc/self/stat", "r");
    struct rlimit rl;
    int fds = 0;
    DIR *d;

    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        char *p;
        buf[n] = '\0';
        fclose(f);
        p = strrchr(buf, ')'); /* the name may hold spaces */
        if (p != NULL)
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
                   "%llu %*d %*d %*d %*d %*d %*d %llu %llu %ld", &utime,
                   &stime, &start, &vsize, &rss);
    }
    f = fopen("/proc/stat", "r");
    while (f != NULL && fgets(buf, sizeof(buf), f) != NULL)
        if (sscanf(buf, "btime %llu", &btime) == 1)
            break;
    if (f != NULL)
        fclose(f);
    d = opendir("/proc/self/fd");
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        fds += e->d_name[0] != '.';
    if (d != NULL) {
        closedir(d);
        fds--; /* the directory's own */
    }
    metrics_family(out, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
    evbuffer_add_printf(out, "process_cpu_seconds_total %s\n",
                        ctl_json_number((double)(utime + stime) / (double)tick,
                                        num, sizeof(num)));
    metrics_family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    evbuffer_add_printf(out, "process_open_fds %d\n", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        metrics_family(out, "process_max_fds", "gauge",
               "Maximum number of open file descriptors.");
        evbuffer_add_printf(out, "process_max_fds %llu\n",
                            (unsigned long long)rl.rlim_cur);
    }
    metrics_family(out, "process_virtual_memory_bytes", "gauge",
           "Virtual memory size in bytes.");
    evbuffer_add_printf(out, "process_virtual_memory_bytes %llu\n", vsize);
    metrics_family(out, "process_resident_memory_bytes", "gauge",
           "Resident memory size in bytes.");
    evbuffer_add_printf(out, "process_resident_memory_bytes %llu\n",
                        (unsigned long long)rss * (unsigned long long)page);
    metrics_family(out, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    evbuffer_add_printf(out, "process_start_time_seconds %s\n",
                        ctl_json_number((double)btime + (double)start / (double)tick,
                                        num, sizeof(num)));
}

static void metrics_get(struct api *api, struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    struct proxy *p;

    if (out == NULL) {
        api_send_error(req, 500, "out of memory");
        return;
    }
    metric(out, api->srv, "vaurien_proxy_connections_total", "counter",
           "Connections accepted.", m_accepted);
    metric(out, api->srv, "vaurien_proxy_connections", "gauge",
           "Connections open.", m_active);
    metric(out, api->srv, "vaurien_proxy_refused_total", "counter",
           "Clients closed at a connection limit.", m_refused);
    metric(out, api->srv, "vaurien_proxy_upstream_bytes_total", "counter",
           "Bytes sent to the backend.", m_up);
    metric(out, api->srv, "vaurien_proxy_downstream_bytes_total", "counter",
           "Bytes sent to clients.", m_down);
    metrics_family(out, "vaurien_proxy_faults_total", "counter",
           "Requests that drew a behavior other than dummy from the mix.");
    TAILQ_FOREACH(p, &api->srv->proxies, link)
        for (int i = 0; i < behav_count(); i++)
            if (p->faults[i] > 0) {
                evbuffer_add(out, "vaurien_proxy_faults_total{proxy=\"", 34);
                metrics_label(out, p->name);
                evbuffer_add_printf(out, "\",behavior=\"%s\"} %llu\n",
                                    behav_at(i)->name, p->faults[i]);
            }
    metrics_report(out, api->srv);
    if (api->proxy_metrics)
        toxiproxy_metrics(out, api->srv);
    if (api->runtime_metrics)
        runtime_metrics(out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, NULL, out);
    evbuffer_free(out);
}

/* ---- the original Vaurien ----------------------------------------------- */

/* The proxy the original endpoints act on. */
static struct proxy *vaurien_proxy(struct api *api)
{
    struct proxy *p = server_find(api->srv, "vaurien");

    if (p == NULL && api->srv->nproxies == 1)
        p = TAILQ_FIRST(&api->srv->proxies);
    return p;
}

static json_t *behavior_options(const struct proxy_conf *c)
{
    json_t *o = json_object();

    for (int i = 0; i < c->mix.n; i++) {
        const struct behav_ops *ops = behav_at(c->mix.e[i].behav);
        json_t *opts = json_object();
        const struct behav_inst *b = &c->behav[c->mix.e[i].behav];
        for (int k = 0; ops->opts[k].name != NULL; k++)
            if (behav_opt_shown(b, k))
                json_object_set_new(opts, ops->opts[k].name,
                                    ctl_opt_json(&ops->opts[k], &b->vals[k]));
        ctl_target_json(opts, b->target);
        json_object_set_new(o, ops->name, opts);
    }
    return o;
}

static void behavior_get(struct proxy *p, struct evhttp_request *req)
{
    const struct proxy_conf *c = p->conf;
    char spec[1024];
    json_t *j = json_object();

    if (c->mix.n == 1 && c->mix.e[0].pct >= 100)
        snprintf(spec, sizeof(spec), "%s", behav_at(c->mix.e[0].behav)->name);
    else
        mix_format(&c->mix, spec, sizeof(spec));
    json_object_set_new(j, "behavior", json_string(spec));
    json_object_set_new(j, "options", behavior_options(c));
    if (c->sched != NULL) {
        json_object_set_new(j, "behavior", json_string("schedule"));
        json_object_set_new(j, "schedule", ctl_schedule_json(c->sched));
        json_object_set_new(j, "phase", ctl_schedule_phase_json(c->sched));
    }
    send_json(req, 200, j);
}

/* PUT /behavior {"name": NAME or a mix, OPTION: VALUE, ...} */
static void behavior_put(struct proxy *p, struct evhttp_request *req)
{
    char err[600], name[128] = "";
    json_t *body = read_body(req, err, sizeof(err));
    int rc;

    if (body == NULL) {
        send_vaurien_error(req, "", "the value is not a valid json object");
        return;
    }
    rc = ctl_behavior_apply(p, body, name, sizeof(name), err, sizeof(err));
    json_decref(body);
    if (rc < 0)
        send_vaurien_error(req, name, err);
    else
        send_ok(req);
}

static void behaviors_get(struct evhttp_request *req)
{
    json_t *a = json_array();

    for (int i = 0; i < behav_count(); i++)
        json_array_append_new(a, json_string(behav_at(behav_sorted(i))->name));
    send_json(req, 200, json_pack("{s:o}", "behaviors", a));
}

/* A behavior as POST /behaviors describes it. */
static json_t *behavior_json(const struct behav_ops *ops)
{
    json_t *opts = json_array();

    for (int k = 0; ops->opts[k].name != NULL; k++)
        json_array_append_new(
            opts, json_pack("{s:s,s:s,s:s,s:s}", "name", ops->opts[k].name,
                            "type", opt_type_name(ops->opts[k].type),
                            "default", ops->opts[k].def, "help",
                            ops->opts[k].help));
    return json_pack("{s:s,s:s,s:o}", "name", ops->name, "help", ops->help,
                     "options", opts);
}

/* POST /behaviors {"name": N, "script": LUA}: loads a custom behavior, or
 * replaces the one of that name for new requests. */
static void behaviors_post(struct evhttp_request *req)
{
    char err[700], name[128];
    json_t *body = read_body(req, err, sizeof(err));
    bool existed;
    int rc;

    if (body == NULL) {
        api_send_error(req, 400, err);
        return;
    }
    snprintf(name, sizeof(name), "%s",
             json_string_value(json_object_get(body, "name")) != NULL
                 ? json_string_value(json_object_get(body, "name"))
                 : "");
    existed = behav_find(name) >= 0;
    rc = ctl_script_load(body, true, NULL, err, sizeof(err));
    json_decref(body);
    if (rc < 0) {
        api_send_error(req, rc == -EEXIST ? 409 : 400, err);
        return;
    }
    log_info("behavior %s %s through the API", name,
             existed ? "replaced" : "loaded");
    send_json(req, existed ? 200 : 201,
              behavior_json(behav_at(behav_find(name))));
}

static void backend_put(struct proxy *p, struct evhttp_request *req)
{
    char err[600];
    json_t *body = read_body(req, err, sizeof(err));
    const char *text = json_string_value(json_object_get(body, "backend"));
    struct addr a;

    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        send_vaurien_error(req, "", "the value is not a valid json object");
        return;
    }
    if (text == NULL) {
        json_decref(body);
        send_vaurien_error(req, "", "the value should contain a \"backend\" key");
        return;
    }
    if (addr_parse(text, &a, err, sizeof(err)) < 0) {
        json_decref(body);
        send_vaurien_error(req, "backend", err);
        return;
    }
    proxy_set_backend(p, &a, text);
    json_decref(body);
    log_info("proxy %s: backend set to %s", p->name, p->upstream_text);
    send_ok(req);
}

/* ---- guards ------------------------------------------------------------- */

/* Splits "host[:port]" or "[v6][:port]" (a Host header, an origin's
 * authority) into host and port (0 when absent). Returns -1 if malformed. */
static int split_authority(const char *a, char *host, size_t hostlen,
                           unsigned *port)
{
    const char *colon;
    size_t n;

    *port = 0;
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (close == NULL)
            return -1;
        n = (size_t)(close - a + 1); /* host keeps its brackets */
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] != '\0' && colon == NULL)
            return -1;
    } else {
        colon = strrchr(a, ':');
        n = colon != NULL ? (size_t)(colon - a) : strlen(a);
    }
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, a, n);
    host[n] = '\0';
    if (colon != NULL) {
        char *end;
        unsigned long p = strtoul(colon + 1, &end, 10);
        if (*end != '\0' || end == colon + 1 || p == 0 || p > 65535)
            return -1;
        *port = (unsigned)p;
    }
    return 0;
}

/* localhost (and names under .localhost), 127.0.0.0/8, [::1]. */
static bool loopback_host(const char *h)
{
    size_t n = strlen(h);
    struct in_addr a4;

    if (strcasecmp(h, "localhost") == 0 ||
        (n > 10 && strcasecmp(h + n - 10, ".localhost") == 0) ||
        strcmp(h, "[::1]") == 0)
        return true;
    return inet_pton(AF_INET, h, &a4) == 1 &&
           (ntohl(a4.s_addr) >> 24) == 127;
}

/* Whether a request may reach the API. On a loopback address the API is a
 * developer's: its Host must be a loopback name (a DNS-rebound page sends
 * its own), and an Origin (a browser's) must be the API's own. On any
 * other address it was exposed on purpose (a container, -host 0.0.0.0):
 * clients send their own Host; a browser's Origin must still be the host
 * it asked. Returns NULL, or why not. */
const char *api_guard(bool loopback, unsigned port, const char *host,
                      const char *origin)
{
    char hname[300], oname[300];
    unsigned hport, oport;

    if (loopback) {
        if (host == NULL || split_authority(host, hname, sizeof(hname), &hport) < 0 ||
            !loopback_host(hname))
            return "host not allowed: the API answers loopback names only";
    }
    if (origin == NULL)
        return NULL;
    if (strncmp(origin, "http://", 7) != 0 ||
        split_authority(origin + 7, oname, sizeof(oname), &oport) < 0)
        return "origin not allowed";
    if (oport == 0)
        oport = 80;
    if (loopback)
        return loopback_host(oname) && oport == port ? NULL : "origin not allowed";
    /* exposed: same origin as the Host the client asked */
    if (host == NULL || split_authority(host, hname, sizeof(hname), &hport) < 0 ||
        strcasecmp(hname, oname) != 0 || (hport == 0 ? 80 : hport) != oport)
        return "origin not allowed";
    return NULL;
}

/* Compares "Bearer TOKEN" in constant time. */
static bool token_ok(const char *header, const char *token)
{
    size_t n = strlen(token), m;
    unsigned char diff = 0;

    if (header == NULL || strncmp(header, "Bearer ", 7) != 0)
        return false;
    header += 7;
    m = strlen(header);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(token[i] ^ (i < m ? header[i] : 0));
    return diff == 0 && m == n;
}

/* ---- routing ------------------------------------------------------------ */

#define SEG_MAX 6
#define SEG_LEN TOXIC_NAME_MAX /* a name, whole, and its NUL */
#define PATH_NUL (-2)

/* Splits the path into decoded segments; returns their count, -1 for a
 * path that has a trailing slash, an empty segment or one longer than any
 * name, PATH_NUL for a segment that decodes to a NUL byte. */
static int split_path(const char *path, char seg[SEG_MAX][SEG_LEN])
{
    int n = 0;
    const char *p = path;

    if (p == NULL || *p != '/')
        return -1;
    if (strcmp(p, "/") == 0)
        return 0;
    while (*p == '/') {
        const char *start = ++p, *end = strchr(start, '/');
        size_t len = end != NULL ? (size_t)(end - start) : strlen(start), declen;
        char raw[3 * SEG_LEN], *dec;
        if (len == 0 || len >= sizeof(raw) || n == SEG_MAX)
            return -1;
        memcpy(raw, start, len);
        raw[len] = '\0';
        dec = evhttp_uridecode(raw, 0, &declen);
        if (dec == NULL)
            return -1;
        if (strlen(dec) != declen) {
            mem_ev_free(dec);
            return PATH_NUL; /* "/version%00x" is not /version */
        }
        if (declen >= SEG_LEN) {
            mem_ev_free(dec);
            return -1;
        }
        memcpy(seg[n++], dec, declen + 1);
        mem_ev_free(dec); /* libevent's allocator made it (net/mem.h) */
        p = start + len;
    }
    return n;
}

enum { M_GET = 1, M_POST = 2, M_PUT = 4, M_DELETE = 8, M_PATCH = 16 };

static int method_bit(enum evhttp_cmd_type c)
{
    switch (c) {
    case EVHTTP_REQ_GET:
        return M_GET;
    case EVHTTP_REQ_POST:
        return M_POST;
    case EVHTTP_REQ_PUT:
        return M_PUT;
    case EVHTTP_REQ_DELETE:
        return M_DELETE;
    case EVHTTP_REQ_PATCH:
        return M_PATCH;
    default:
        return 0;
    }
}

/* The API's paths and the methods each allows; a segment "*" is a name (a
 * proxy's, then a toxic's), and the first path that matches wins. The man
 * page (man/vaurien.1) and the README list every one: tests/e2e/
 * test_install.py reads this table. */
static const struct route {
    const char *path;
    int methods;
} routes[] = {
    { "/version", M_GET },
    { "/proxies", M_GET | M_POST },
    { "/populate", M_POST },
    { "/reset", M_POST },
    { "/metrics", M_GET },
    { "/events", M_GET | M_DELETE },
    { "/events/stream", M_GET },
    { "/ui", M_GET },
    { "/replay", M_GET | M_POST | M_DELETE },
    { "/behavior", M_GET | M_PUT },
    { "/backend", M_GET | M_PUT },
    { "/behaviors", M_GET | M_POST },
    { "/proxies/*", M_GET | M_POST | M_PATCH | M_DELETE },
    { "/proxies/*/toxics", M_GET | M_POST },
    { "/proxies/*/toxics/*", M_GET | M_POST | M_PATCH | M_DELETE },
};

/* Whether the n segments are the route's path. */
static bool route_match(const char *path, char seg[SEG_MAX][SEG_LEN], int n)
{
    int i = 0;

    for (const char *p = path; *p == '/'; i++) {
        const char *start = p + 1, *end = strchr(start, '/');
        size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
        bool any = len == 1 && *start == '*';
        if (i == n || (!any && (strlen(seg[i]) != len ||
                                memcmp(seg[i], start, len) != 0)))
            return false;
        p = start + len;
    }
    return i == n;
}

/* The methods a path allows, 0 if the path is unknown. */
static int route_methods(char seg[SEG_MAX][SEG_LEN], int n)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (route_match(routes[i].path, seg, n))
            return routes[i].methods;
    return 0;
}

/* GET /replay: whether a recorded run decides; POST /replay with a
 * journal (JSON lines, GET /events' answer, or a list of events): from
 * now on it does, for every request of every connection, open ones
 * included (ordinals count from each proxy's start); DELETE /replay: the
 * behaviors decide again. */
static void replay_route(struct api *api, struct evhttp_request *req, int m)
{
    struct proxy *p;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct replay *r;
    char err[600];

    if (m == M_POST) {
        size_t n = evbuffer_get_length(in);
        r = ctl_replay_parse((const char *)evbuffer_pullup(in, -1), n, err,
                             sizeof(err));
        if (r == NULL) {
            char msg[700];
            snprintf(msg, sizeof(msg), "bad request body: %s", err);
            api_send_error(req, 400, msg);
            return;
        }
        replay_set(r);
        log_info("replaying %zu faults posted to the API", replay_count(r));
    } else if (m == M_DELETE) {
        replay_set(NULL);
        log_info("replay ended: the behaviors decide again");
    }
    if (m != M_GET) /* tcp connections on the fast path see no chunk */
        TAILQ_FOREACH(p, &api->srv->proxies, link)
            proxy_decisions_changed(p);
    send_json(req, 200, json_pack("{s:b,s:I}", "replaying",
                                  replay_current() != NULL, "faults",
                                  (json_int_t)(replay_current() != NULL
                                  ? replay_count(replay_current()) : 0)));
}

extern const unsigned char ui_page[]; /* built from src/ctl/ui/index.html */
extern const size_t ui_page_len;

/* GET /ui: the dashboard, one page that uses this API like any client. */
static void ui_get(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *out = evbuffer_new();

    evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    /* nothing but this page and this API: no CDN, no frames */
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; script-src 'unsafe-inline'; "
                      "style-src 'unsafe-inline'; connect-src 'self'; "
                      "frame-ancestors 'none'");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    if (out != NULL)
        evbuffer_add_reference(out, ui_page, ui_page_len, NULL, NULL);
    evhttp_send_reply(req, 200, NULL, out);
    if (out != NULL)
        evbuffer_free(out);
}

/* A browser's request from a page the API served: the browser itself says
 * so (Sec-Fetch-Site, which no page can set), and a change of state
 * carries an Origin, which api_guard holds to the API's own. */
static bool same_origin_page(struct evkeyvalq *in, int method)
{
    const char *site = evhttp_find_header(in, "Sec-Fetch-Site");

    if (site == NULL || strcmp(site, "same-origin") != 0)
        return false;
    return method == M_GET || evhttp_find_header(in, "Origin") != NULL;
}

static void api_cb(struct evhttp_request *req, void *arg)
{
    struct api *api = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *ua = evhttp_find_header(in, "User-Agent");
    static char seg[SEG_MAX][SEG_LEN]; /* one request at a time */
    int n = split_path(uri != NULL ? evhttp_uri_get_path(uri) : NULL, seg);
    int allowed = n >= 0 ? route_methods(seg, n) : 0;
    int m = method_bit(evhttp_request_get_command(req));
    struct proxy *p = NULL;
    struct toxic *t = NULL;
    const char *why;

    conn_request_done(api, req);
    if (n == PATH_NUL) {
        api_send_error(req, 400, "bad request: a NUL byte in the path");
        return;
    }
    if (allowed == 0) {
        send_text(req, 404, "text/plain; charset=utf-8", "404 page not found\n");
        return;
    }
    if ((allowed & m) == 0) {
        send_text(req, 405, NULL, NULL);
        return;
    }
    add_request_id(api, req);
    if (n == 1 && strcmp(seg[0], "ui") == 0) {
        ui_get(req); /* the page itself: no state, no secret */
        return;
    }
    /* a web page must not reconfigure a developer's proxy: browsers are
     * refused, but for the dashboard's own requests (a page served by the
     * API: the browser says same-origin, and api_guard checks its Origin) */
    if (ua != NULL && strncmp(ua, "Mozilla/", 8) == 0 &&
        !same_origin_page(in, m)) {
        send_text(req, 403, "text/plain; charset=utf-8",
                  "User agent not allowed\n");
        return;
    }
    if ((why = api_guard(api->loopback, api->port, evhttp_find_header(in, "Host"),
                         evhttp_find_header(in, "Origin"))) != NULL) {
        api_send_error(req, 403, why);
        return;
    }
    if (api->token[0] != '\0' &&
        !token_ok(evhttp_find_header(in, "Authorization"), api->token)) {
        api_send_error(req, 401, "missing or wrong API token");
        return;
    }
    if (strcmp(seg[0], "replay") == 0) {
        replay_route(api, req, m);
        return;
    }
    if (strcmp(seg[0], "events") == 0) {
        if (n == 2)
            stream_start(api, req);
        else if (m == M_GET)
            events_get(req);
        else
            events_delete(req);
        return;
    }
    if (n >= 2) {
        p = server_find(api->srv, seg[1]);
        if (p == NULL) {
            api_send_error(req, 404, "proxy not found");
            return;
        }
    }
    if (n == 4) {
        t = proxy_find_toxic(p, seg[3]);
        if (t == NULL) {
            api_send_error(req, 404, "toxic not found");
            return;
        }
    }
    if (n == 1 && strcmp(seg[0], "version") == 0) {
        /* Toxiproxy's text to the byte: its Go API tests compare it */
        send_text(req, 200, "application/json;charset=utf-8",
                  "{\"version\": \"" API_TOXIPROXY_VERSION "\"}\n");
    } else if (n == 1 && strcmp(seg[0], "proxies") == 0) {
        if (m == M_GET)
            proxies_get(api, req);
        else
            proxies_post(api, req);
    } else if (n == 1 && strcmp(seg[0], "populate") == 0) {
        populate_post(api, req);
    } else if (n == 1 && strcmp(seg[0], "reset") == 0) {
        server_reset(api->srv);
        send_text(req, 204, NULL, NULL);
    } else if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        metrics_get(api, req);
    } else if (n == 1 && strcmp(seg[0], "behaviors") == 0) {
        if (m == M_GET)
            behaviors_get(req);
        else
            behaviors_post(req);
    } else if (n == 1) {
        /* /behavior, /backend */
        struct proxy *vp = vaurien_proxy(api);
        if (vp == NULL) {
            api_send_error(req, 404, "proxy not found: create one named vaurien");
        } else if (strcmp(seg[0], "behavior") == 0) {
            if (m == M_GET)
                behavior_get(vp, req);
            else
                behavior_put(vp, req);
        } else if (m == M_GET) {
            send_json(req, 200, json_pack("{s:s}", "backend", vp->upstream_text));
        } else {
            backend_put(vp, req);
        }
    } else if (n == 2) {
        if (m == M_GET)
            send_json(req, 200, ctl_proxy_json(p));
        else if (m == M_DELETE) {
            server_delete(api->srv, p);
            send_text(req, 204, NULL, NULL);
        } else
            proxy_update(p, req);
    } else if (n == 3) {
        if (m == M_GET)
            send_json(req, 200, ctl_toxics_json(p));
        else
            toxics_post(p, req);
    } else {
        if (m == M_GET)
            send_json(req, 200, ctl_toxic_json(t));
        else if (m == M_DELETE) {
            proxy_remove_toxic(p, t);
            send_text(req, 204, NULL, NULL);
        } else
            toxic_update(p, t, req);
    }
}

struct api *api_start(struct event_base *base, struct server *srv,
                      const struct addr *a, const char *token, char *err,
                      size_t errlen)
{
    struct api *api = calloc(1, sizeof(*api));
    int n;

    if (api == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    api->srv = srv;
    if (events_init(base) < 0) {
        free(api);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (token != NULL)
        snprintf(api->token, sizeof(api->token), "%s", token);
    api->http = evhttp_new(base);
    if (api->http == NULL) {
        events_deinit();
        free(api);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    evhttp_set_allowed_methods(api->http,
                               EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                   EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                   EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
    evhttp_set_max_body_size(api->http, API_BODY_MAX);
    evhttp_set_max_headers_size(api->http, API_HEADERS_MAX);
    evhttp_set_timeout(api->http, API_TIMEOUT_S);
    LIST_INIT(&api->conns);
    evhttp_set_bevcb(api->http, conn_new, api);
    evhttp_set_gencb(api->http, api_cb, api);
    n = net_bind_all(a, api->fds, API_LISTEN_MAX, err, errlen);
    if (n < 0) {
        evhttp_free(api->http);
        events_deinit();
        free(api);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (listen(api->fds[i], 128) < 0 ||
            evhttp_accept_socket_with_handle(api->http, api->fds[i]) == NULL) {
            snprintf(err, errlen, "control API: cannot listen: %s",
                     strerror(errno));
            for (int k = i; k < n; k++)
                close(api->fds[k]);
            evhttp_free(api->http);
            events_deinit();
            free(api);
            return NULL;
        }
    }
    api->nfds = n;
    api->loopback = n > 0;
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(api->fds[i], (struct sockaddr *)&ss, &sl) < 0) {
            api->loopback = false;
            continue;
        }
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
            api->port = ntohs(s4->sin_port);
            api->loopback &= (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
        } else {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
            api->port = ntohs(s6->sin6_port);
            api->loopback &= IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
        }
    }
    return api;
}

char *api_bound_addr(const struct api *api, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    buf[0] = '\0';
    if (api->nfds == 0 ||
        getsockname(api->fds[0], (struct sockaddr *)&ss, &sl) < 0)
        return buf;
    return addr_format_sockaddr((struct sockaddr *)&ss, buf, len);
}

void api_set_metrics(struct api *api, bool proxy, bool runtime)
{
    api->proxy_metrics = proxy;
    api->runtime_metrics = runtime;
}

void api_stop(struct api *api)
{
    if (api == NULL)
        return;
    evhttp_free(api->http); /* closes the sockets it accepted on */
    conn_free_all(api);
    events_deinit();
    free(api);
}
