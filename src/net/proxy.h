/*
 * proxy: one listen address, one backend, a protocol and a behavior mix.
 *
 *   listener ──accept──▶ session (client + backend) ──▶ ... (session.h)
 *
 * The proxy owns its listeners and its sessions. Its configuration is a
 * snapshot (struct proxy_conf) that sessions read at each request; a change
 * swaps the snapshot without waiting for any session.
 */
#ifndef VAURIEN_PROXY_H
#define VAURIEN_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>

#include "behav/toxic.h"
#include "conf/settings.h"
#include "net/tls.h"
#include "proto/proto.h"

#define PROXY_LISTEN_MAX 8

/* What sessions read for each request: protocol, mix, behavior options. */
struct proxy_conf {
    const struct proto_ops *proto;
    union opt_val proto_vals[OPT_MAX];
    struct mix mix;
    struct behav_inst behav[SETTINGS_BEHAV_MAX]; /* registry order */
    bool all_dummy;      /* the mix never draws anything but dummy (set when
                            the snapshot is swapped in) */
    struct schedule *sched; /* phases that decide in the mix's place
                            (behav/schedule.h), owned; NULL */
};

struct session;
LIST_HEAD(session_list, session);

/* Request round trips through the proxy: the histogram's upper bounds,
 * in seconds (Prometheus' defaults). */
#define PROXY_RTT_BOUNDS \
    { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
#define PROXY_RTT_N 12

/* Counters the data path keeps (net/report.c), read by /metrics and
 * statsd (ctl/statsd.c). */
struct proxy_stats {
    uint64_t requests;                  /* requests drawn for (chunks on
                                           tcp) */
    uint64_t faults[SETTINGS_BEHAV_MAX]; /* decisions that did something, per
                                           behavior, from the mix or a
                                           behavior toxic */
    uint64_t rtt[PROXY_RTT_N + 1];      /* round trips per bucket (the last:
                                           over the largest bound) */
    uint64_t rtt_count;
    double rtt_sum;                     /* seconds */
    uint64_t connects;                  /* backend connections made */
    double connect_sum;                 /* seconds they took */
    struct {                            /* counters as statsd last sent */
        uint64_t connections, requests, up, down;
        uint64_t faults[SETTINGS_BEHAV_MAX];
    } sent;
};

struct proxy {
    TAILQ_ENTRY(proxy) link;     /* in the server's list */
    LIST_ENTRY(proxy) all_link;  /* among every proxy of the process, which
                                    pause together at the total limit */
    char name[TOXIC_NAME_MAX];
    bool enabled;                /* listening (false: refused, closed) */
    char listen_text[300];       /* listen address (the bound port once a
                                    port 0 was bound) */
    char listen_asked[300];      /* listen address as first asked */
    char upstream_text[300];     /* upstream as configured */
    char *tls_given;             /* its JSON's proxy_tls and backend_tls,
                                    normalized (ctl/json.c), or NULL: a
                                    reload that changes them replaces it;
                                    GET shows them. Owned */
    struct toxic *toxics[TOXIC_MAX]; /* in the order added */
    int ntoxics;
    struct event_base *base;
    struct evdns_base *dns;
    struct addr listen;          /* as configured */
    struct addr backend;
    char backend_port[8];        /* backend.port as text, for getaddrinfo */
    struct proxy_conf *conf;     /* current snapshot, owned */
    struct tls_conf tls;         /* TLS toward clients and the backend */
    double timeout;              /* connect and idle timeout, seconds */
    bool stay_connected;
    int backlog;
    struct evconnlistener *lev[PROXY_LISTEN_MAX];
    int nlev;
    struct session_list sessions;  /* open */
    struct session_list graveyard; /* closed, freed after the loop pass */
    struct event reap_ev;
    struct event accept_retry_ev;  /* resumes accepting after EMFILE */
    struct event ttl_ev;           /* the next toxic or behavior to remove
                                      itself (its ttl) */
    time_t accept_err_logged;      /* last time an accept error was logged */
    uint64_t next_id;
    uint64_t accepted;             /* connections accepted so far */
    uint64_t active;               /* sessions open now */
    long max_connections;          /* 0: no limit */
    bool overflow_backlog;         /* at the limit, stop accepting */
    bool paused;                   /* listeners disabled now */
    bool accept_paused;            /* by an accept error, for a moment */
    uint64_t refused;              /* clients closed at a limit */
    time_t limit_logged;           /* last time a limit was logged */
    /* bytes counted as they flow: [up or down][sent, received]; up is
     * sent to the backend, read from clients */
    unsigned long long bytes[2][2];
    unsigned long long faults[SETTINGS_BEHAV_MAX]; /* requests per behavior
                                                      that was not dummy */
    struct proxy_stats stats;      /* what /metrics and statsd report */
};

/* Every proxy of the process, in no order (statsd). */
struct proxy *proxy_first(void);
struct proxy *proxy_next(const struct proxy *p);

/* The limit on connections across every proxy (0: none). */
void proxy_set_global_limit(long max);

/* A session of p opened (counted against the limits). */
void proxy_session_opened(struct proxy *p);

/* A session of p closed: accepting may resume. */
void proxy_session_closed(struct proxy *p);

/* Builds a configuration snapshot from settings. Returns NULL on ENOMEM. */
struct proxy_conf *proxy_conf_create(const struct settings *st);
void proxy_conf_destroy(struct proxy_conf *c);
/* A copy of a snapshot, to change before swapping it in. */
struct proxy_conf *proxy_conf_clone(const struct proxy_conf *c);

/* Creates a proxy named name from settings (listen, backend, timeouts,
 * conf); it does not listen until proxy_start(). */
struct proxy *proxy_create(struct event_base *base, struct evdns_base *dns,
                           const char *name, const struct settings *st);

/* Sets up TLS toward clients and the backend as st asks (nothing when it
 * asks for neither). Returns 0, or a negative errno with a one-line
 * message in err (a certificate or key that does not load). */
int proxy_set_tls(struct proxy *p, const struct settings *st, char *err,
                  size_t errlen);

/* Binds every address the listen host resolves to. Returns 0, or a negative
 * errno with a one-line message in err. */
int proxy_start(struct proxy *p, char *err, size_t errlen);

/* The first bound address as "ip:port" (the real port when 0 was asked). */
char *proxy_bound_addr(const struct proxy *p, char *buf, size_t len);

/* Stops accepting and closes every session. */
void proxy_stop(struct proxy *p);

/* Stops and frees the proxy. Must not be called from a session callback. */
void proxy_destroy(struct proxy *p);

/* Swaps in a new configuration snapshot; the old one is freed. Sessions pick
 * it up at their next request. */
void proxy_set_conf(struct proxy *p, struct proxy_conf *c);

/* Sets the backend for new connections. */
void proxy_set_backend(struct proxy *p, const struct addr *a, const char *text);

/* Enables (listens) or disables (stops listening, closes every
 * connection). Returns 0 or a negative errno with a message in err. */
int proxy_set_enabled(struct proxy *p, bool enabled, char *err, size_t errlen);

/* What decides the requests changed (the mix, a replay): open
 * connections leave or take the fast path as it now allows. */
void proxy_decisions_changed(struct proxy *p);

/* Arms the timer of the next ttl to expire (after a toxic or the mix was
 * set). */
void proxy_arm_ttl(struct proxy *p);

/* The toxics changed: every open connection takes the new chain now. */
void proxy_toxics_changed(struct proxy *p);

/* Toxics by name; add takes ownership; remove frees. */
struct toxic *proxy_find_toxic(const struct proxy *p, const char *name);
int proxy_add_toxic(struct proxy *p, struct toxic *t);
void proxy_remove_toxic(struct proxy *p, struct toxic *t);
void proxy_clear_toxics(struct proxy *p);

/* The listen address to report: the bound one while listening. */
const char *proxy_listen_text(const struct proxy *p, char *buf, size_t len);

#endif
