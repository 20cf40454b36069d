/*
 * settings: everything one `vaurien` run is configured with.
 *
 *   defaults ──▶ INI file (--config) ──▶ command-line flags ──▶ settings
 *
 * Every way in sets values through settings_set() and settings_set_plugin(),
 * so the file and the flags accept the same spellings and give the same
 * errors; a later source overrides an earlier one.
 */
#ifndef VAURIEN_SETTINGS_H
#define VAURIEN_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "behav/behav.h"
#include "behav/mix.h"
#include "core/addr.h"
#include "proto/proto.h"

#define SETTINGS_BEHAV_MAX BEHAV_MAX
#define SETTINGS_PROTO_MAX PROTO_MAX

struct settings {
    struct addr proxy;     /* listen address */
    struct addr backend;   /* upstream address */
    char protocol[32];
    char behavior[1024];   /* the mix, as given */
    struct mix mix;        /* the mix, parsed */
    double timeout;        /* connect and idle timeout, seconds */
    bool stay_connected;   /* no idle timeout */
    int backlog;
    int log_level;
    char log_output[4096];
    bool seed_set;
    uint64_t seed;
    char config[4096];     /* the INI file read, "" if none */
    long max_connections;  /* per proxy, 0 = no limit */
    long max_total;        /* all proxies together, 0 = no limit */
    bool overflow_backlog; /* at the limit: leave clients in the backlog
                              (true) or close them at once (false) */
    char api_token[256];   /* required on every API request, "" = none */
    /* TLS (net/tls.h): terminate toward clients, originate toward the
     * backend; files "" when not given */
    bool proxy_tls;
    char tls_cert[4096], tls_key[4096], tls_ca_out[4096];
    bool backend_tls, backend_tls_insecure;
    bool starttls;         /* upgrade STARTTLS on both sides */
    char backend_ca[4096], backend_cert[4096], backend_key[4096];
    /* what the proxy tells (core/journal.h, ctl/statsd.h) */
    char journal[4096];    /* --journal FILE: events as JSON lines */
    long journal_size;     /* events kept in the ring (0: no journal) */
    char replay[4096];     /* --replay FILE: a journal to inject again */
    bool statsd;           /* send statsd metrics */
    char statsd_host[256];
    int statsd_port;
    char statsd_prefix[128];
    double statsd_sample_rate; /* timers sent for this share of requests */
    bool log_json;         /* --log-format json */
    bool http;             /* serve the control API */
    struct addr http_addr; /* where */
    /* options of every behavior, indexed as the behavior registry */
    struct behav_inst behav[SETTINGS_BEHAV_MAX];
    /* options of every protocol, indexed as the protocol registry */
    union opt_val proto[SETTINGS_PROTO_MAX][OPT_MAX];
};

/* The original Vaurien's defaults. */
void settings_init(struct settings *st);
void settings_deinit(struct settings *st);
/* Gives behaviors registered since settings_init() (custom ones) their
 * defaults. */
void settings_sync(struct settings *st);

/* Sets one [vaurien] key ("proxy", "stay_connected", ...; '-' and '_' are
 * the same). Returns 0, -ENOENT for an unknown key, or -EINVAL; err gets a
 * one-line message either way. */
int settings_set(struct settings *st, const char *key, const char *value,
                 char *err, size_t errlen);

/* Sets option opt of the behavior or protocol name; kind is "behavior" or
 * "protocol". Returns 0, -ENOENT or -EINVAL with a message in err. */
int settings_set_plugin(struct settings *st, const char *kind,
                        const char *name, const char *opt, const char *value,
                        char *err, size_t errlen);

/* Options of the configured protocol. */
const union opt_val *settings_proto_opts(const struct settings *st);

#endif
