/*
 * main: the command line and the modes.
 *
 *   vaurien [options]              one proxy (the original's command line),
 *                                  with --http the control API too
 *   vaurien server [-host H] [-port P] [-config FILE] [-seed N]
 *                                  proxies managed through the API
 *   vaurien ctl ...                a client of the API (ctl/client.c)
 *   vaurien demo [options]         a proxy in front of the built-in backend
 *   vaurien demo-backend [--listen HOST:PORT]
 *
 * Everything runs on one libevent loop; SIGINT and SIGTERM stop accepting,
 * close every connection and exit 0.
 */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>

#include <errno.h>
#include <jansson.h>

#include "conf/cli.h"
#include "conf/watch.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/version.h"
#include "behav/replay.h"
#include "ctl/api.h"
#include "ctl/replay.h"
#include "ctl/statsd.h"
#include "ctl/client.h"
#include "ctl/json.h"
#include "core/script.h"
#include "ctl/scripts.h"
#include "net/tls.h"
#include "net/demo.h"
#include "net/fast.h"
#include "net/linger.h"
#include "net/mem.h"
#include "net/proxy.h"
#include "net/server.h"

#define EXIT_USAGE 2

static void usage_error(const char *msg)
{
    fprintf(stderr, "vaurien: error: %s\n", msg);
    exit(EXIT_USAGE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    event_base_loopexit(arg, NULL);
}

struct loop {
    struct event_base *base;
    struct evdns_base *dns;
    struct event *sigint, *sigterm, *sighup;
    void (*reload)(void *arg); /* what SIGHUP reloads, if anything */
    void *reload_arg;
};

/* SIGHUP: the log file opened again (logrotate moved it), then the
 * configuration read again, as the mode says. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct loop *l = arg;
    int rc = log_reopen();

    (void)sig;
    (void)what;
    if (rc < 0)
        log_error("SIGHUP: cannot open the log again: %s", strerror(-rc));
    rc = journal_reopen();
    if (rc < 0)
        log_error("SIGHUP: cannot open the journal again: %s", strerror(-rc));
    log_info("received SIGHUP: log reopened%s",
             l->reload != NULL ? ", reloading the configuration" : "");
    if (l->reload != NULL)
        l->reload(l->reload_arg);
}

static int loop_init(struct loop *l)
{
    struct event_config *cfg;
    struct rlimit rl;

    /* libevent's per-descriptor slots packed apart: freed connections
     * leave whole pages free (mem.h) */
    mem_init();
    event_set_log_callback(log_libevent); /* to --log-output, as ours */
    cfg = event_config_new();

    /* each proxied connection needs two descriptors, more on the fast
     * path: take what the hard limit allows */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* Precise timers: a 100 ms delay must be 100 ms, not 100 ms + tick. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    /* timers count from a fresh clock, not from the start of the loop
     * pass: a held unit's timer would otherwise fire late by the rest of
     * the pass (14-87 us at p50, 0.6 ms at p99 in a burst) */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NO_CACHE_TIME);
    /* coalesce the epoll_ctl calls of one loop pass (enable, disable, add
     * and delete of the same descriptor in one callback cost one call) */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    l->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (l->base == NULL)
        return -1;
    l->dns = evdns_base_new(l->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (l->dns == NULL) /* no resolv.conf: names come from /etc/hosts only */
        l->dns = evdns_base_new(l->base, 0);
    if (l->dns != NULL)
        evdns_base_load_hosts(l->dns, NULL);
    l->sigint = evsignal_new(l->base, SIGINT, on_signal, l->base);
    l->sigterm = evsignal_new(l->base, SIGTERM, on_signal, l->base);
    l->sighup = evsignal_new(l->base, SIGHUP, on_sighup, l);
    if (l->dns == NULL || l->sigint == NULL || l->sigterm == NULL ||
        l->sighup == NULL)
        return -1;
    evsignal_add(l->sigint, NULL);
    evsignal_add(l->sigterm, NULL);
    evsignal_add(l->sighup, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void loop_deinit(struct loop *l)
{
    fast_pool_deinit();
    linger_deinit();
    if (l->sigint != NULL)
        event_free(l->sigint);
    if (l->sigterm != NULL)
        event_free(l->sigterm);
    if (l->sighup != NULL)
        event_free(l->sighup);
    if (l->dns != NULL)
        evdns_base_free(l->dns, 0);
    mem_loop_deinit();
    if (l->base != NULL)
        event_base_free(l->base);
    mem_deinit();
    journal_deinit();
    replay_set(NULL);
}

/* The log, and the journal of faults (core/journal.h): a file that does
 * not open is a usage error. */
static void start_logging(const struct settings *st)
{
    char err[4400];
    int rc = log_init(st->log_output, st->log_level);

    if (rc < 0) {
        snprintf(err, sizeof(err), "--log-output %s: %s", st->log_output,
                 strerror(-rc));
        usage_error(err);
    }
    log_set_json(st->log_json);
    if (journal_init((size_t)st->journal_size) < 0)
        usage_error("--journal-size: out of memory");
    rc = journal_set_file(st->journal);
    if (rc < 0) {
        snprintf(err, sizeof(err), "--journal %s: %s", st->journal,
                 strerror(-rc));
        usage_error(err);
    }
}

/* --replay FILE: the faults of a recorded journal (ctl/replay.h), read
 * once custom behaviors are loaded. Returns 0, or -1 after a one-line
 * message on stderr. */
static int load_replay(const struct settings *st, const char *flag)
{
    char err[4400];

    if (st->replay[0] == '\0')
        return 0;
    if (ctl_replay_load_file(st->replay, err, sizeof(err)) < 0) {
        fprintf(stderr, "vaurien: error: %s: %s\n", flag, err);
        return -1;
    }
    return 0;
}

static void log_replay(const struct settings *st)
{
    if (replay_current() != NULL)
        log_info("replaying %zu faults of %s: the seed and the behaviors do "
                 "not decide", replay_count(replay_current()), st->replay);
}

static void seed_rng(const struct settings *st)
{
    uint64_t seed = st->seed_set ? st->seed : rng_os_seed();

    rng_seed(&rng_global, seed);
    rng_run_seed = seed;
    log_info("seed %llu (replay with --seed %llu)", (unsigned long long)seed,
             (unsigned long long)seed);
}

/* Serves the control API when asked; logs where. */
static int start_api(struct loop *l, struct server *srv,
                     const struct addr *a, const char *token, struct api **out)
{
    char err[600], where[80];

    *out = api_start(l->base, srv, a, token, err, sizeof(err));
    if (*out == NULL) {
        log_error("%s", err);
        return -1;
    }
    log_info("control API on http://%s", api_bound_addr(*out, where,
                                                       sizeof(where)));
    if (strcmp(a->host, "localhost") != 0 && strncmp(a->host, "127.", 4) != 0 &&
        strcmp(a->host, "::1") != 0)
        log_warn("the control API listens on %s: anyone who reaches it can "
                 "reconfigure the proxies", a->host);
    return 0;
}

/* What SIGHUP reloads in single-proxy mode: the command line again, the
 * --config file with it, applied to the running proxy. */
struct proxy_reload {
    struct proxy *p;
    int argc;
    char **argv;
    int first;
};

static void reload_proxy(void *arg)
{
    struct proxy_reload *r = arg;
    struct proxy *p = r->p;
    struct settings nst;
    struct proxy_conf *c;
    char err[1024], text[300];

    settings_init(&nst);
    if (cli_parse(r->argc, r->argv, r->first, &nst, err, sizeof(err)) != CLI_RUN) {
        log_error("SIGHUP: %s; nothing changed", err);
        settings_deinit(&nst);
        return;
    }
    c = proxy_conf_create(&nst);
    if (c == NULL) {
        log_error("SIGHUP: out of memory; nothing changed");
        settings_deinit(&nst);
        return;
    }
    proxy_set_conf(p, c); /* open connections draw from it from now on */
    addr_format(&nst.backend, text, sizeof(text));
    if (strcmp(text, p->upstream_text) != 0)
        proxy_set_backend(p, &nst.backend, text); /* for new connections */
    p->timeout = nst.timeout;
    p->stay_connected = nst.stay_connected;
    if (addr_format(&nst.proxy, text, sizeof(text)) != NULL &&
        strcmp(text, p->listen_asked) != 0)
        log_warn("SIGHUP: the proxy's address (%s) changes only with a "
                 "restart", text);
    if (log_init(nst.log_output, nst.log_level) < 0)
        log_error("SIGHUP: cannot open --log-output %s", nst.log_output);
    log_info("SIGHUP: %s reloaded: protocol %s, behavior %s",
             nst.config[0] != '\0' ? nst.config : "the command line",
             nst.protocol, nst.behavior);
    settings_deinit(&nst);
}

/* Whether a -config names proxies: Toxiproxy's list, or an object with
 * "proxies" (next to "behaviors" and "protocols"). */
static bool has_proxies(json_t *j)
{
    return json_is_array(j) || json_object_get(j, "proxies") != NULL;
}

/* What SIGHUP (and -watch) reloads in server mode: the -config file,
 * applied with the rules of POST /populate; proxies it no longer names are
 * deleted. Its scripts are loaded again; one that fails keeps the one
 * loaded before. */
struct server_reload {
    struct server *srv;
    const char *config;
    const char *trigger; /* "SIGHUP" or "-watch", for the log */
    struct watch *watch; /* -watch, or NULL */
};

/* Tells the watch which files the config names besides itself: the
 * "file" of its behaviors and protocols, so that editing a script reloads
 * it as editing the config does. */
static void watch_scripts(struct watch *w, json_t *j, const char *dir)
{
    const char *lists[] = { "behaviors", "protocols" };
    const char *paths[WATCH_FILES_MAX];
    size_t n = 0;

    for (size_t k = 0; k < 2; k++) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(j, lists[k]), i, e) {
            const char *file = json_string_value(json_object_get(e, "file"));
            char path[4096];
            if (file == NULL || n == WATCH_FILES_MAX)
                continue;
            script_path(dir, file, path, sizeof(path));
            paths[n] = strdup(path);
            if (paths[n] != NULL)
                n++;
        }
    }
    watch_set_files(w, paths, n);
    for (size_t i = 0; i < n; i++)
        free((char *)paths[i]);
}

static void reload_server(void *arg)
{
    struct server_reload *r = arg;
    const char *why = r->trigger != NULL ? r->trigger : "SIGHUP";
    json_error_t je;
    json_t *j = json_load_file(r->config, 0, &je), *list, *out, *done;
    struct proxy *p, *next;
    char err[4400], dir[4096];
    int status, removed = 0;

    r->trigger = NULL;
    if (j == NULL) {
        log_error("%s: -config %s: %s (line %d); nothing changed", why,
                  r->config, je.text, je.line);
        return;
    }
    script_dir_of(r->config, dir, sizeof(dir));
    if (r->watch != NULL)
        watch_scripts(r->watch, j, dir);
    ctl_scripts_load(j, dir, true, err, sizeof(err)); /* failures logged */
    if (!has_proxies(j)) {
        json_decref(j);
        log_info("%s: -config %s: scripts reloaded", why, r->config);
        return;
    }
    list = ctl_populate_check(r->srv, j, err, sizeof(err));
    if (list == NULL) {
        json_decref(j);
        log_error("%s: -config %s: %s; nothing changed", why, r->config, err);
        return;
    }
    /* the proxies it no longer names go first: one renamed on the same
     * address frees it for its new name */
    for (p = TAILQ_FIRST(&r->srv->proxies); p != NULL; p = next) {
        bool named = false;
        size_t i;
        json_t *e;
        next = TAILQ_NEXT(p, link);
        json_array_foreach(list, i, e) {
            const char *n = json_string_value(json_object_get(e, "name"));
            named |= n != NULL && strcmp(n, p->name) == 0;
        }
        if (!named) {
            server_delete(r->srv, p);
            removed++;
        }
    }
    out = ctl_populate(r->srv, j, &status, &done, err, sizeof(err));
    json_decref(j);
    if (out == NULL) {
        log_error("%s: -config %s: %s; %s, %d removed", why, r->config, err,
                  json_array_size(done) > 0 ? "the proxies before it were "
                                              "applied" : "none was applied",
                  removed);
        json_decref(done);
        return;
    }
    log_info("%s: -config %s: %zu proxies, %d removed", why, r->config,
             json_array_size(out), removed);
    json_decref(out);
}

/* -watch: the config's files changed (conf/watch.h). */
static void on_config_changed(void *arg)
{
    struct server_reload *r = arg;

    log_info("-watch: %s changed, reloading", r->config);
    r->trigger = "-watch";
    reload_server(r);
}

static int run_proxy(const struct settings *st, const struct addr *demo,
                     struct proxy_reload *reload)
{
    struct loop l = { 0 };
    struct server srv;
    struct proxy *p = NULL;
    struct demo_backend *d = NULL;
    struct api *api = NULL;
    char err[600], a[300], b[300], bound[80];
    int rc = 1;

    if (loop_init(&l) < 0) {
        log_error("cannot set up the event loop");
        goto out;
    }
    server_init(&srv, l.base, l.dns, st);
    if (statsd_start(l.base, st, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    proxy_set_global_limit(st->max_total);
    if (demo != NULL) {
        d = demo_backend_start(l.base, demo, err, sizeof(err));
        if (d == NULL) {
            log_error("%s", err);
            goto out;
        }
    }
    p = proxy_create(l.base, l.dns, "vaurien", st);
    if (p == NULL) {
        log_error("out of memory");
        goto out;
    }
    if (proxy_set_tls(p, st, err, sizeof(err)) < 0) {
        log_error("%s", err); /* checked before the log started: rare */
        proxy_destroy(p);
        goto out;
    }
    for (int i = 0; i < st->mix.n; i++)
        if (behav_at(st->mix.e[i].behav)->tls && !st->proxy_tls)
            log_warn("%s acts on TLS handshakes, which this proxy does not "
                     "terminate (--proxy-tls): it does nothing here",
                     behav_at(st->mix.e[i].behav)->name);
    if (proxy_set_enabled(p, true, err, sizeof(err)) < 0) {
        log_error("%s", err);
        proxy_destroy(p);
        goto out;
    }
    server_add(&srv, p);
    if (reload != NULL) {
        reload->p = p;
        l.reload = reload_proxy;
        l.reload_arg = reload;
    }
    log_info("proxying %s -> %s, protocol %s, behavior %s",
             proxy_bound_addr(p, bound, sizeof(bound)),
             addr_format(&st->backend, b, sizeof(b)), st->protocol,
             st->behavior);
    if (st->http && start_api(&l, &srv, &st->http_addr, st->api_token, &api) < 0)
        goto out;
    if (demo != NULL) {
        printf("\nVaurien demo: a proxy on %s in front of a built-in HTTP "
               "backend on %s,\nwith the behavior mix %s. Try:\n\n"
               "  curl -sS -m 5 http://%s/          "
               "# a few times: some are slow, some get a 5xx\n"
               "  for i in $(seq 20); do curl -s -o /dev/null -m 5 -w "
               "'%%{http_code} %%{time_total}s\\n' http://%s/; done\n\n"
               "Stop with Ctrl-C.\n\n",
               bound, addr_format(demo, a, sizeof(a)), st->behavior, bound,
               bound);
        fflush(stdout);
    }
    event_base_dispatch(l.base);
    rc = 0;
out:
    api_stop(api);
    statsd_stop();
    if (l.base != NULL)
        server_deinit(&srv);
    demo_backend_stop(d);
    loop_deinit(&l);
    return rc;
}

/* A boolean as Go's strconv.ParseBool reads it (toxiproxy-server's
 * flags): 1, or 0, or -1 when it is not one. */
static int go_bool(const char *v)
{
    static const char *const yes[] = { "1", "t", "T", "true", "TRUE", "True" };
    static const char *const no[] = { "0", "f", "F", "false", "FALSE", "False" };

    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++) {
        if (strcmp(v, yes[i]) == 0)
            return 1;
        if (strcmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* Whether vaurien server takes a flag of that name with a value: its own
 * (-host, -port, -config) or a setting (settings_set knows it). */
static bool server_flag_known(const char *name)
{
    struct settings scratch;
    char why[600];
    int rc;

    if (strcmp(name, "host") == 0 || strcmp(name, "port") == 0 ||
        strcmp(name, "config") == 0)
        return true;
    settings_init(&scratch);
    rc = settings_set(&scratch, name, "", why, sizeof(why));
    settings_deinit(&scratch);
    return rc != -ENOENT;
}

/* vaurien server: toxiproxy-server's flags, in -x and --x spellings. */
static int run_server(int argc, char **argv)
{
    struct settings st;
    struct loop l = { 0 };
    struct server srv;
    struct api *api = NULL;
    struct addr a;
    char err[4400], config[4096] = "";
    bool proxy_metrics = false, runtime_metrics = false, watch = false;
    struct server_reload reload = { 0 };
    int rc = 1;

    settings_init(&st);
    addr_parse("localhost:8474", &a, err, sizeof(err));
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i], *eq, *value = NULL;
        char name[64];
        size_t len;
        if (arg[0] != '-') {
            snprintf(err, sizeof(err), "unrecognized argument '%s'", arg);
            usage_error(err);
        }
        arg += arg[1] == '-' ? 2 : 1;
        eq = strchr(arg, '=');
        len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        snprintf(name, sizeof(name), "%.*s", (int)(len < 63 ? len : 63), arg);
        if (strcmp(name, "help") == 0 || strcmp(name, "h") == 0) {
            /* every flag it takes: the man page, the README and the
             * shell completions are checked against this text */
            printf("usage: vaurien server [-host HOST] [-port PORT] "
                   "[-config FILE] [-seed N] [-version] [-help]\n"
                   "       [-api-token TOKEN] [-proxy-metrics] "
                   "[-runtime-metrics]\n"
                   "       [-log-level LEVEL] [-log-output FILE] "
                   "[-log-format text|json]\n"
                   "       [-watch] [-timeout SECONDS] "
                   "[-stay-connected true|false] [-backlog N]\n"
                   "       [-max-connections N] [-max-connections-total N] "
                   "[-overflow close|backlog]\n"
                   "       [-proxy-tls] [-tls-cert FILE] [-tls-key FILE] "
                   "[-tls-ca-out FILE] [-starttls]\n"
                   "       [-backend-tls] [-backend-ca FILE] "
                   "[-backend-tls-insecure]\n"
                   "       [-backend-cert FILE] [-backend-key FILE]\n"
                   "       [-journal FILE] [-journal-size N] [-replay FILE]\n"
                   "       [-statsd] [-statsd-host HOST] [-statsd-port PORT] "
                   "[-statsd-prefix PREFIX]\n"
                   "       [-statsd-sample-rate RATE]\n\n"
                   "Serves the Toxiproxy and Vaurien control API (default "
                   "localhost:8474);\n-config takes Toxiproxy's populate "
                   "JSON (with protocol and toxics); -watch reloads it\n"
                   "when its files change. Flags take one dash "
                   "or two. The other settings of\nvaurien --help "
                   "(-protocol, -behavior, ...) are the defaults of the "
                   "proxies it makes.\n");
            settings_deinit(&st);
            return 0;
        }
        if (strcmp(name, "version") == 0) {
            version_print(stdout, " (Toxiproxy API " API_TOXIPROXY_VERSION ")");
            settings_deinit(&st);
            return 0;
        }
        if (strcmp(name, "proxy-metrics") == 0 ||
            strcmp(name, "runtime-metrics") == 0 ||
            strcmp(name, "watch") == 0) {
            /* Go's boolean flags: -x, or -x=V with what strconv.ParseBool
             * takes */
            int on = eq == NULL ? 1 : go_bool(eq + 1);
            if (on < 0) {
                snprintf(err, sizeof(err), "-%s: expected true or false, got "
                         "'%s'", name, eq + 1);
                usage_error(err);
            }
            *(name[0] == 'p'   ? &proxy_metrics
              : name[0] == 'r' ? &runtime_metrics
                               : &watch) = on == 1;
            continue;
        }
        if (strcmp(name, "proxy-tls") == 0 || strcmp(name, "backend-tls") == 0 ||
            strcmp(name, "backend-tls-insecure") == 0 ||
            strcmp(name, "starttls") == 0 || strcmp(name, "statsd") == 0) {
            /* booleans too: every proxy's TLS, unless one says otherwise */
            char why[600];
            if (settings_set(&st, name, eq != NULL ? eq + 1 : "true", why,
                             sizeof(why)) < 0) {
                snprintf(err, sizeof(err), "-%s: %s", name, why);
                usage_error(err);
            }
            continue;
        }
        if (eq != NULL)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(err, sizeof(err), server_flag_known(name)
                                           ? "-%s expects a value"
                                           : "unknown flag '-%s'", name);
            usage_error(err);
        }
        if (strcmp(name, "host") == 0) {
            if (strlen(value) >= ADDR_HOST_MAX)
                usage_error("-host: host name too long");
            strcpy(a.host, value);
        } else if (strcmp(name, "port") == 0) {
            char *end;
            long port = strtol(value, &end, 10);
            if (*end != '\0' || end == value || port < 0 || port > 65535) {
                snprintf(err, sizeof(err), "-port: expected 0-65535, got '%s'",
                         value);
                usage_error(err);
            }
            a.port = (unsigned short)port;
        } else if (strcmp(name, "config") == 0) {
            snprintf(config, sizeof(config), "%s", value);
        } else if (strcmp(name, "seed") == 0 && value[0] == '-') {
            /* toxiproxy-server's seed is a Go int64: a negative one is
             * the same 64 bits as an unsigned seed */
            char *end, bits[32], why[600];
            long long v;
            errno = 0;
            v = strtoll(value, &end, 10);
            if (*end != '\0' || end == value || errno != 0) {
                snprintf(err, sizeof(err), "-seed: expected a 64-bit integer, "
                         "got '%s'", value);
                usage_error(err);
            }
            snprintf(bits, sizeof(bits), "%llu", (unsigned long long)v);
            if (settings_set(&st, "seed", bits, why, sizeof(why)) < 0) {
                snprintf(err, sizeof(err), "-seed: %s", why);
                usage_error(err);
            }
        } else {
            char why[600];
            /* seed, log-level, log-output, timeout, backlog ... */
            if (settings_set(&st, name, value, why, sizeof(why)) < 0) {
                snprintf(err, sizeof(err), "-%s: %s", name, why);
                usage_error(err);
            }
        }
    }
    if (statsd_check(&st, err, sizeof(err)) < 0)
        usage_error(err);
    if (watch && config[0] == '\0')
        usage_error("-watch: reloads the -config FILE, and no -config was "
                    "given");
    start_logging(&st);
    seed_rng(&st);
    if (loop_init(&l) < 0) {
        log_error("cannot set up the event loop");
        goto out;
    }
    server_init(&srv, l.base, l.dns, &st);
    /* watched before it is read: a change while it loads is not missed */
    if (watch && (reload.watch = watch_create(l.base, config, on_config_changed,
                                              &reload, err, sizeof(err))) == NULL) {
        fprintf(stderr, "vaurien: error: %s\n", err);
        rc = EXIT_USAGE;
        goto out;
    }
    if (statsd_start(l.base, &st, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    proxy_set_global_limit(st.max_total);
    if (config[0] != '\0') {
        json_error_t je;
        json_t *j = json_load_file(config, 0, &je), *out, *done;
        int status;
        char dir[4096];
        if (j == NULL) {
            fprintf(stderr, "vaurien: error: -config %s: %s (line %d)\n",
                    config, je.text, je.line);
            rc = EXIT_USAGE;
            goto out;
        }
        done = NULL;
        script_dir_of(config, dir, sizeof(dir));
        if (reload.watch != NULL)
            watch_scripts(reload.watch, j, dir);
        if (ctl_scripts_load(j, dir, false, err, sizeof(err)) < 0) {
            fprintf(stderr, "vaurien: error: -config %s: %s\n", config, err);
            json_decref(j);
            rc = EXIT_USAGE;
            goto out;
        }
        out = has_proxies(j) ? ctl_populate(&srv, j, &status, &done, err,
                                            sizeof(err))
                             : json_array();
        json_decref(j);
        json_decref(done);
        if (out == NULL) {
            fprintf(stderr, "vaurien: error: -config %s: %s\n", config, err);
            rc = EXIT_USAGE;
            goto out;
        }
        log_info("-config %s: %zu proxies", config, json_array_size(out));
        json_decref(out);
    }
    if (load_replay(&st, "-replay") < 0) {
        rc = EXIT_USAGE;
        goto out;
    }
    log_replay(&st);
    if (start_api(&l, &srv, &a, st.api_token, &api) < 0)
        goto out;
    api_set_metrics(api, proxy_metrics, runtime_metrics);
    if (config[0] != '\0') {
        reload.srv = &srv;
        reload.config = config;
        l.reload = reload_server;
        l.reload_arg = &reload;
        if (reload.watch != NULL)
            log_info("-watch: reloading -config %s when it changes", config);
    }
    event_base_dispatch(l.base);
    rc = 0;
out:
    watch_destroy(reload.watch);
    api_stop(api);
    statsd_stop();
    if (l.base != NULL)
        server_deinit(&srv);
    loop_deinit(&l);
    settings_deinit(&st);
    log_deinit();
    return rc;
}

static int run_demo_backend(int argc, char **argv)
{
    struct loop l = { 0 };
    struct addr a;
    struct demo_backend *d;
    char err[300];

    addr_parse("127.0.0.1:8888", &a, err, sizeof(err));
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            v = argv[++i];
        else if (strncmp(argv[i], "--listen=", 9) == 0)
            v = argv[i] + 9;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: vaurien demo-backend [--listen HOST:PORT]\n");
            return 0;
        } else {
            snprintf(err, sizeof(err), "unrecognized argument '%s'", argv[i]);
            usage_error(err);
        }
        if (addr_parse(v, &a, err, sizeof(err)) < 0) {
            char msg[400];
            snprintf(msg, sizeof(msg), "--listen: %s", err);
            usage_error(msg);
        }
    }
    if (loop_init(&l) < 0)
        return 1;
    d = demo_backend_start(l.base, &a, err, sizeof(err));
    if (d == NULL) {
        log_error("%s", err);
        loop_deinit(&l);
        return 1;
    }
    log_info("demo backend on %s", addr_format(&a, err, sizeof(err)));
    event_base_dispatch(l.base);
    demo_backend_stop(d);
    loop_deinit(&l);
    return 0;
}

int main(int argc, char **argv)
{
    struct settings st;
    struct addr demo;
    char err[1024];
    int first = 1, rc;
    bool is_demo = false;

    if (argc > 1 && strcmp(argv[1], "demo-backend") == 0)
        return run_demo_backend(argc, argv);
    if (argc > 1 && strcmp(argv[1], "server") == 0)
        return run_server(argc, argv);
    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return ctl_client_main(argc - 1, argv + 1);
    settings_init(&st);
    if (argc > 1 && strcmp(argv[1], "demo") == 0) {
        /* The demo's defaults; every flag still applies. */
        is_demo = true;
        first = 2;
        addr_parse("127.0.0.1:8888", &demo, err, sizeof(err));
        settings_set(&st, "proxy", "127.0.0.1:8000", err, sizeof(err));
        settings_set(&st, "backend", "127.0.0.1:8888", err, sizeof(err));
        settings_set(&st, "protocol", "http", err, sizeof(err));
        settings_set(&st, "behavior", "20:delay,15:error,5:blackout,5:abort",
                     err, sizeof(err));
        settings_set(&st, "timeout", "10", err, sizeof(err));
        settings_set_plugin(&st, "behavior", "delay", "sleep", "0.5", err,
                            sizeof(err));
    }
    switch (cli_parse(argc, argv, first, &st, err, sizeof(err))) {
    case CLI_EXIT:
        settings_deinit(&st);
        return 0;
    case CLI_ERROR:
        settings_deinit(&st);
        usage_error(err);
        break;
    case CLI_RUN:
        break;
    }
    if (is_demo)
        demo.port = st.backend.port;
    if (st.proxy_tls || st.backend_tls || st.starttls) {
        /* certificates and keys that do not load are a usage error */
        struct tls_conf t;
        if (tls_conf_init(&t, &st, st.proxy.host, st.backend.host, err,
                          sizeof(err)) < 0) {
            settings_deinit(&st);
            usage_error(err);
        }
        tls_conf_deinit(&t);
    }
    if (statsd_check(&st, err, sizeof(err)) < 0) {
        settings_deinit(&st);
        usage_error(err);
    }
    if (load_replay(&st, "--replay") < 0) { /* before the log starts:
                                                 one line on stderr */
        settings_deinit(&st);
        exit(EXIT_USAGE);
    }
    start_logging(&st);
    seed_rng(&st);
    log_replay(&st);
    {
        struct proxy_reload reload = { .argc = argc, .argv = argv, .first = first };
        rc = run_proxy(&st, is_demo ? &demo : NULL, is_demo ? NULL : &reload);
    }
    settings_deinit(&st);
    log_deinit();
    return rc;
}
