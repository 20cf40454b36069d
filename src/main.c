/*
 * main: the command line and the modes.
 *
 *   vaurien [options]              one proxy (the original's command line)
 *   vaurien demo [options]         a proxy in front of the built-in backend
 *   vaurien demo-backend [--listen HOST:PORT]
 *
 * Everything runs on one libevent loop; SIGINT and SIGTERM stop accepting,
 * close every connection and exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "conf/cli.h"
#include "core/log.h"
#include "core/rng.h"
#include "net/demo.h"
#include "net/proxy.h"

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
    struct event *sigint, *sigterm;
};

static int loop_init(struct loop *l)
{
    struct event_config *cfg = event_config_new();

    /* Precise timers: a 100 ms delay must be 100 ms, not 100 ms + tick. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
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
    if (l->dns == NULL || l->sigint == NULL || l->sigterm == NULL)
        return -1;
    evsignal_add(l->sigint, NULL);
    evsignal_add(l->sigterm, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void loop_deinit(struct loop *l)
{
    if (l->sigint != NULL)
        event_free(l->sigint);
    if (l->sigterm != NULL)
        event_free(l->sigterm);
    if (l->dns != NULL)
        evdns_base_free(l->dns, 0);
    if (l->base != NULL)
        event_base_free(l->base);
}

static void start_logging(const struct settings *st)
{
    char err[4400];
    int rc = log_init(st->log_output, st->log_level);

    if (rc < 0) {
        snprintf(err, sizeof(err), "--log-output %s: %s", st->log_output,
                 strerror(-rc));
        usage_error(err);
    }
}

static void seed_rng(const struct settings *st)
{
    uint64_t seed = st->seed_set ? st->seed : rng_os_seed();

    rng_seed(&rng_global, seed);
    log_info("seed %llu (replay with --seed %llu)", (unsigned long long)seed,
             (unsigned long long)seed);
}

static int run_proxy(const struct settings *st, const struct addr *demo)
{
    struct loop l = { 0 };
    struct proxy *p = NULL;
    struct demo_backend *d = NULL;
    char err[600], a[300], b[300], bound[80];
    int rc = 1;

    if (loop_init(&l) < 0) {
        log_error("cannot set up the event loop");
        goto out;
    }
    if (demo != NULL) {
        d = demo_backend_start(l.base, demo, err, sizeof(err));
        if (d == NULL) {
            log_error("%s", err);
            goto out;
        }
    }
    p = proxy_create(l.base, l.dns, st);
    if (p == NULL) {
        log_error("out of memory");
        goto out;
    }
    if (proxy_start(p, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    log_info("proxying %s -> %s, protocol %s, behavior %s",
             proxy_bound_addr(p, bound, sizeof(bound)),
             addr_format(&st->backend, b, sizeof(b)), st->protocol,
             st->behavior);
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
    proxy_destroy(p);
    demo_backend_stop(d);
    loop_deinit(&l);
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
    start_logging(&st);
    seed_rng(&st);
    rc = run_proxy(&st, is_demo ? &demo : NULL);
    settings_deinit(&st);
    log_deinit();
    return rc;
}
