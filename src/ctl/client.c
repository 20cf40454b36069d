/*
 * client: `vaurien ctl` (see client.h).
 *
 *   vaurien ctl [--host URL]... [--hosts FILE] [--timeout S] [--parallel N]
 *       [--json] list | inspect P | create -l L -u U P | toggle P | delete P |
 *       toxic add|update|remove ... P | reset | version |
 *       list-behaviors | get-behavior | set-behavior NAME [--OPT VALUE ...]
 *
 *   argv --parse--> struct cmd --one job per host--> requests (evhttp) -->
 * report
 *
 * A command is parsed once into its first request (and, for toggle, a
 * second that depends on the first answer); each host then runs it as a
 * job on one event loop, all at once up to --parallel, each within its
 * --timeout. With one host the output is the command's own (stdout, errors
 * on stderr); with several (or --hosts) it is one line per host, in the
 * order given. libevent's HTTP client reads bodies by Content-Length or
 * chunks, not to EOF.
 */
#include "ctl/client.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h> /* before libevent's keyvalq_struct.h, which would
                          define TAILQ_ENTRY only to undefine it */

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "ctl/json.h"

#define EXIT_API 1
#define EXIT_USAGE 2
#define EXIT_CONNECT 3
#define CLIENT_TIMEOUT_S 10.0 /* each host's, unless --timeout */
#define CLIENT_PARALLEL 64    /* hosts in flight at once, unless --parallel */
#define CLIENT_HOSTS_MAX 10000
#define RESPONSE_MAX (16 << 20)

static bool json_out;
static const char *token; /* --token or $VAURIEN_API_TOKEN */

static int usage(const char *msg)
{
    fprintf(stderr, "vaurien ctl: error: %s (see vaurien ctl --help)\n", msg);
    return EXIT_USAGE;
}

static void help(void)
{
    printf("usage: vaurien ctl [--host URL]... [--hosts FILE] [--token TOKEN] "
           "[--json]\n"
           "                   [--timeout SECONDS] [--parallel N] COMMAND ..."
           "\n\n"
           "Toxiproxy commands (URL: --host, $TOXIPROXY_URL, or "
           "http://localhost:8474):\n"
           "  list                                list the proxies\n"
           "  inspect PROXY                       a proxy and its toxics\n"
           "  create -l LISTEN -u UPSTREAM [--protocol P] PROXY\n"
           "  toggle PROXY                        enable or disable\n"
           "  delete PROXY\n"
           "  toxic add -t TYPE [-n NAME] [--tox TOXICITY] [-a KEY=VALUE]... "
           "[-u|-d] PROXY\n"
           "  toxic update -n NAME [--tox TOXICITY] [-a KEY=VALUE]... PROXY\n"
           "  toxic remove -n NAME PROXY\n"
           "  reset                               re-enable all, remove all "
           "toxics\n"
           "  version                             the API's version (GET "
           "/version)\n\n"
           "vaurienctl commands (URL: --host, $VAURIEN_URL, or "
           "http://localhost:8080):\n"
           "  list-behaviors | get-behavior | set-behavior NAME [--OPTION "
           "VALUE]...\n\n"
           "Several hosts: --host more than once, or --hosts FILE (one URL a "
           "line, # comments).\nThe command runs on all of them at once (at "
           "most --parallel, default %d), each\nwithin --timeout seconds "
           "(default %g); one line per host: URL, ok or error, and\nwhat it "
           "answered. Nothing is undone where it failed.\n\n"
           "Exit status: 0 done (on every host), 1 an API refused (its message "
           "is printed),\n2 bad usage (nothing sent), 3 an API could not be "
           "reached (3 wins over 1).\n",
           CLIENT_PARALLEL, CLIENT_TIMEOUT_S);
}

/* ---- URLs ---- */

/* Splits "http://host:port/prefix" (or "host:port") into host, port and
 * the path the API's paths go under ("" when none; no trailing slash), as
 * Toxiproxy's client does: kubectl proxy's URL of a pod is one. Returns 0,
 * or -1 when it is not such a URL. */
static int parse_url(const char *url, char *host, size_t hostlen,
                     unsigned short *port, char *prefix, size_t prefixlen)
{
    const char *p = url, *colon, *end;
    char digits[16] = "80", *stop;
    size_t plen;
    long n;

    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strstr(p, "://") != NULL)
        return -1; /* https and others: the API speaks plain HTTP */
    end = p + strcspn(p, "/");
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL)
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(close - p - 1), p + 1);
        colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        snprintf(host, hostlen, "%.*s",
                 (int)((colon != NULL ? colon : end) - p), p);
    }
    if (colon != NULL)
        snprintf(digits, sizeof(digits), "%.*s", (int)(end - colon - 1),
                 colon + 1);
    n = strtol(digits, &stop, 10);
    if (host[0] == '\0' || *stop != '\0' || stop == digits || n <= 0 ||
        n > 65535)
        return -1;
    *port = (unsigned short)n;
    plen = strlen(end);
    while (plen > 0 && end[plen - 1] == '/')
        plen--;
    if (plen >= prefixlen || strcspn(end, "?# ") < plen)
        return -1; /* a query or a fragment: no API path goes after it */
    snprintf(prefix, prefixlen, "%.*s", (int)plen, end);
    return 0;
}

/* ---- the command, parsed once ---- */

struct cmd;

struct command {
    const char *name;
    bool vaurien;              /* URL default from $VAURIEN_URL, :8080 */
    bool prints_json;          /* --json prints the answer */
    const char *method, *path; /* parse_fixed's request */
    /* Fills the first request from argv (after the command's name).
     * Returns 0, or EXIT_USAGE after a message. */
    int (*parse)(struct cmd *c, int argc, char **argv);
    /* After a 2xx: fills a next request and returns true, or false when
     * the command is done. NULL: one request. */
    bool (*then)(struct cmd *c, json_t *answer, struct cmd *next);
    /* What it says of the final answer: in full (one host), or on one
     * line (a fleet). */
    void (*show)(FILE *f, const struct cmd *c, json_t *answer, bool one_line);
};

struct cmd {
    const struct command *c;
    const char *proxy; /* the proxy it names, if any */
    const char *name;  /* a toxic's or behavior's name, if any */
    const char *method;
    char path[1400];
    json_t *body; /* owned; NULL: none */
};

/* Percent-encodes a proxy or toxic name for a path. */
static void path_of(char *out, size_t len, const char *fmt, const char *a,
                    const char *b)
{
    char ea[600] = "", eb[600] = "";
    const char *src[2] = {a, b};
    char *dst[2] = {ea, eb};

    for (int k = 0; k < 2; k++) {
        size_t o = 0;
        for (const char *p = src[k]; p != NULL && *p != '\0' && o + 4 < 600;
             p++) {
            unsigned char ch = (unsigned char)*p;
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                (ch >= '0' && ch <= '9') || strchr("-_.~", ch) != NULL)
                dst[k][o++] = (char)ch;
            else
                o += (size_t)snprintf(dst[k] + o, 600 - o, "%%%02X", ch);
        }
        dst[k][o] = '\0';
    }
    snprintf(out, len, fmt, ea, eb);
}

/* A value from the command line as JSON: a number, a boolean, or text. */
static json_t *typed_value(const char *text)
{
    char *end;
    long long i = strtoll(text, &end, 10);
    double d;

    if (*text != '\0' && *end == '\0')
        return json_integer(i);
    d = strtod(text, &end);
    if (*text != '\0' && *end == '\0')
        return json_real(d);
    if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
        return json_boolean(strcmp(text, "true") == 0);
    return json_string(text);
}

static const char *str(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));

    return s != NULL ? s : "";
}

static void show_json(FILE *f, json_t *j)
{
    char *t = ctl_json_text_indented(j, 2); /* numbers as the API wrote them */

    if (t != NULL)
        fprintf(f, "%s\n", t);
    free(t);
}

static void show_toxic(FILE *f, json_t *t, bool one_line)
{
    const char *key;
    json_t *v;
    bool first = true;

    fprintf(f,
            one_line ? "%s %s %s toxicity=%g "
                     : "  %-24s %-12s %-10s toxicity=%g  ",
            str(t, "name"), str(t, "type"), str(t, "stream"),
            json_number_value(json_object_get(t, "toxicity")));
    json_object_foreach(json_object_get(t, "attributes"), key, v)
    {
        char *val = ctl_json_text(v);
        fprintf(f, "%s%s=%s", first ? "" : " ", key, val != NULL ? val : "?");
        free(val);
        first = false;
    }
    if (!one_line)
        fprintf(f, "\n");
}

static const char *protocol_of(json_t *p)
{
    const char *s = json_string_value(json_object_get(p, "protocol"));

    return s != NULL ? s : "tcp";
}

static void show_proxy(FILE *f, json_t *p, bool toxics, bool one_line)
{
    json_t *tx = json_object_get(p, "toxics");
    bool on = json_is_true(json_object_get(p, "enabled"));

    if (one_line) {
        fprintf(f, "%s %s -> %s %s %s, %zu toxics", str(p, "name"),
                str(p, "listen"), str(p, "upstream"),
                on ? "enabled" : "disabled", protocol_of(p),
                json_array_size(tx));
        return;
    }
    fprintf(f, "%-20s %-22s %-26s %-8s %-8s %zu toxics\n", str(p, "name"),
            str(p, "listen"), str(p, "upstream"), on ? "enabled" : "disabled",
            protocol_of(p), json_array_size(tx));
    if (toxics) {
        size_t i;
        json_t *t;
        json_array_foreach(tx, i, t) show_toxic(f, t, false);
    }
}

/* list */

static int parse_none(struct cmd *c, int argc, char **argv)
{
    char msg[300];

    if (argc == 0)
        return 0;
    snprintf(msg, sizeof(msg), "%s: unexpected argument '%s'", c->c->name,
             argv[0]);
    return usage(msg);
}

/* A command without arguments: the table's method and path. */
static int parse_fixed(struct cmd *c, int argc, char **argv)
{
    c->method = c->c->method;
    snprintf(c->path, sizeof(c->path), "%s", c->c->path);
    return parse_none(c, argc, argv);
}

static void show_list(FILE *f, const struct cmd *c, json_t *a, bool one_line)
{
    const char *key;
    json_t *p;
    bool first = true;

    (void)c;
    if (one_line) {
        fprintf(f, "%zu proxies", json_object_size(a));
        json_object_foreach(a, key, p)
        {
            fprintf(f, "%s%s", first ? ": " : ", ", key);
            first = false;
        }
        return;
    }
    fprintf(f, "%-20s %-22s %-26s %-8s %-8s\n", "NAME", "LISTEN", "UPSTREAM",
            "ENABLED", "PROTOCOL");
    json_object_foreach(a, key, p) show_proxy(f, p, false, false);
    if (json_object_size(a) == 0)
        fprintf(f, "(no proxies)\n");
}

/* inspect, toggle, delete: one proxy */

static int parse_proxy(struct cmd *c, int argc, char **argv)
{
    if (argc < 1)
        return usage("which proxy?");
    c->proxy = argv[0];
    c->method = strcmp(c->c->name, "delete") == 0 ? "DELETE" : "GET";
    path_of(c->path, sizeof(c->path), "/proxies/%s%s", c->proxy, NULL);
    return parse_none(c, argc - 1, argv + 1);
}

static void show_inspect(FILE *f, const struct cmd *c, json_t *a, bool one_line)
{
    (void)c;
    show_proxy(f, a, true, one_line);
}

static bool then_toggle(struct cmd *c, json_t *a, struct cmd *next)
{
    if (strcmp(c->method, "GET") != 0)
        return false; /* the POST was the second request */
    *next = *c;
    next->method = "POST";
    next->body = json_pack("{s:b}", "enabled",
                           !json_is_true(json_object_get(a, "enabled")));
    return true;
}

static void show_toggle(FILE *f, const struct cmd *c, json_t *a, bool one_line)
{
    if (one_line)
        fprintf(f, "%s %s", c->proxy,
                json_is_true(json_object_get(a, "enabled")) ? "enabled"
                                                            : "disabled");
    else
        show_proxy(f, a, true, false);
}

static void show_delete(FILE *f, const struct cmd *c, json_t *a, bool one_line)
{
    (void)a;
    fprintf(f, one_line ? "Deleted proxy %s" : "Deleted proxy %s\n", c->proxy);
}

/* create */

static int parse_create(struct cmd *c, int argc, char **argv)
{
    const char *listen = NULL, *upstream = NULL, *protocol = NULL;

    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((strcmp(argv[i], "-l") == 0 || strcmp(argv[i], "--listen") == 0) &&
            v) {
            listen = v;
            i++;
        } else if ((strcmp(argv[i], "-u") == 0 ||
                    strcmp(argv[i], "--upstream") == 0) &&
                   v) {
            upstream = v;
            i++;
        } else if (strcmp(argv[i], "--protocol") == 0 && v) {
            protocol = v;
            i++;
        } else if (argv[i][0] == '-') {
            char msg[300];
            snprintf(msg, sizeof(msg), "create: unknown flag '%s'", argv[i]);
            return usage(msg);
        } else
            c->proxy = argv[i];
    }
    if (c->proxy == NULL || upstream == NULL)
        return usage("create -l LISTEN -u UPSTREAM PROXY");
    c->method = "POST";
    snprintf(c->path, sizeof(c->path), "/proxies");
    c->body = json_pack("{s:s,s:s,s:s}", "name", c->proxy, "listen",
                        listen != NULL ? listen : "127.0.0.1:0", "upstream",
                        upstream);
    if (protocol != NULL)
        json_object_set_new(c->body, "protocol", json_string(protocol));
    return 0;
}

static void show_create(FILE *f, const struct cmd *c, json_t *a, bool one_line)
{
    fprintf(f,
            one_line ? "Created new proxy %s listening on %s"
                     : "Created new proxy %s listening on %s\n",
            c->proxy, str(a, "listen"));
}

/* toxic add | update | remove */

static int parse_toxic(struct cmd *c, int argc, char **argv)
{
    const char *sub, *type = NULL;
    json_t *attrs = json_object();
    int stream = 0;

    if (argc < 1)
        return usage("toxic: add, update or remove?");
    sub = argv[0];
    c->body = json_object();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((strcmp(a, "-n") == 0 || strcmp(a, "--toxicName") == 0 ||
             strcmp(a, "--name") == 0) &&
            v != NULL) {
            c->name = v;
            i++;
        } else if ((strcmp(a, "-t") == 0 || strcmp(a, "--type") == 0) &&
                   v != NULL) {
            type = v;
            i++;
        } else if ((strcmp(a, "--tox") == 0 || strcmp(a, "--toxicity") == 0) &&
                   v != NULL) {
            json_object_set_new(c->body, "toxicity",
                                json_real(strtod(v, NULL)));
            i++;
        } else if ((strcmp(a, "-a") == 0 || strcmp(a, "--attribute") == 0) &&
                   v != NULL) {
            const char *eq = strchr(v, '=');
            char key[128];
            if (eq == NULL) {
                json_decref(attrs);
                return usage("-a takes KEY=VALUE");
            }
            snprintf(key, sizeof(key), "%.*s", (int)(eq - v), v);
            json_object_set_new(attrs, key, typed_value(eq + 1));
            i++;
        } else if (strcmp(a, "-u") == 0 || strcmp(a, "--upstream") == 0) {
            stream = 1;
        } else if (strcmp(a, "-d") == 0 || strcmp(a, "--downstream") == 0) {
            stream = 2;
        } else if (a[0] == '-') {
            char msg[256];
            snprintf(msg, sizeof(msg), "toxic %s: unknown flag '%s'", sub, a);
            json_decref(attrs);
            return usage(msg);
        } else {
            c->proxy = a;
        }
    }
    json_object_set_new(c->body, "attributes", attrs);
    if (c->proxy == NULL)
        return usage("toxic: which proxy?");
    if (strcmp(sub, "add") == 0) {
        if (type == NULL)
            return usage("toxic add: -t TYPE is required");
        json_object_set_new(c->body, "type", json_string(type));
        if (c->name != NULL)
            json_object_set_new(c->body, "name", json_string(c->name));
        json_object_set_new(
            c->body, "stream",
            json_string(stream == 1 ? "upstream" : "downstream"));
        c->method = "POST";
        path_of(c->path, sizeof(c->path), "/proxies/%s/toxics%s", c->proxy,
                NULL);
        return 0;
    }
    if (strcmp(sub, "update") != 0 && strcmp(sub, "remove") != 0 &&
        strcmp(sub, "delete") != 0)
        return usage("toxic: add, update or remove?");
    if (c->name == NULL) {
        char msg[100];
        snprintf(msg, sizeof(msg), "toxic %s: -n NAME is required", sub);
        return usage(msg);
    }
    path_of(c->path, sizeof(c->path), "/proxies/%s/toxics/%s", c->proxy,
            c->name);
    if (strcmp(sub, "update") == 0) {
        c->method = "PATCH";
        return 0;
    }
    c->method = "DELETE";
    json_decref(c->body);
    c->body = NULL;
    return 0;
}

static void show_toxic_answer(FILE *f, const struct cmd *c, json_t *a,
                              bool one_line)
{
    if (strcmp(c->method, "DELETE") == 0)
        fprintf(f,
                one_line ? "Removed toxic %s on proxy %s"
                         : "Removed toxic %s on proxy %s\n",
                c->name, c->proxy);
    else
        show_toxic(f, a, one_line);
}

/* reset, version */

static void show_reset(FILE *f, const struct cmd *c, json_t *a, bool one_line)
{
    (void)c;
    (void)a;
    fprintf(f, one_line ? "Reset: every proxy enabled, every toxic removed"
                        : "Reset: every proxy enabled, every toxic removed\n");
}

static void show_version(FILE *f, const struct cmd *c, json_t *a, bool one_line)
{
    (void)c;
    fprintf(f, one_line ? "%s" : "%s\n", str(a, "version"));
}

/* list-behaviors, get-behavior, set-behavior */

static void show_behaviors(FILE *f, const struct cmd *c, json_t *a,
                           bool one_line)
{
    size_t k;
    json_t *b;

    (void)c;
    json_array_foreach(json_object_get(a, "behaviors"), k, b)
    {
        if (one_line)
            fprintf(f, "%s%s", k > 0 ? " " : "", json_string_value(b));
        else
            fprintf(f, "%s\n", json_string_value(b));
    }
}

static void show_behavior(FILE *f, const struct cmd *c, json_t *a,
                          bool one_line)
{
    (void)c;
    fprintf(f, one_line ? "%s" : "%s\n", str(a, "behavior"));
}

static int parse_set_behavior(struct cmd *c, int argc, char **argv)
{
    if (argc < 1)
        return usage("set-behavior NAME [--OPTION VALUE]...");
    c->name = argv[0];
    c->body = json_pack("{s:s}", "name", c->name);
    for (int i = 1; i < argc; i += 2) {
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc)
            return usage("set-behavior: options are --OPTION VALUE");
        json_object_set_new(c->body, argv[i] + 2, typed_value(argv[i + 1]));
    }
    c->method = "PUT";
    snprintf(c->path, sizeof(c->path), "/behavior");
    return 0;
}

static void show_set_behavior(FILE *f, const struct cmd *c, json_t *a,
                              bool one_line)
{
    (void)a;
    if (one_line)
        fprintf(f, "Behavior changed to %s", c->name);
    else
        fprintf(f, "Behavior changed\n");
}

static const struct command commands[] = {
    {.name = "list",
     .prints_json = true,
     .parse = parse_fixed,
     .method = "GET",
     .path = "/proxies",
     .show = show_list},
    {.name = "inspect",
     .prints_json = true,
     .parse = parse_proxy,
     .show = show_inspect},
    {.name = "toggle",
     .prints_json = true,
     .parse = parse_proxy,
     .then = then_toggle,
     .show = show_toggle},
    {.name = "delete", .parse = parse_proxy, .show = show_delete},
    {.name = "create",
     .prints_json = true,
     .parse = parse_create,
     .show = show_create},
    {.name = "toxic",
     .prints_json = true,
     .parse = parse_toxic,
     .show = show_toxic_answer},
    {.name = "reset",
     .parse = parse_fixed,
     .method = "POST",
     .path = "/reset",
     .show = show_reset},
    {.name = "version",
     .prints_json = true,
     .parse = parse_fixed,
     .method = "GET",
     .path = "/version",
     .show = show_version},
    {.name = "list-behaviors",
     .vaurien = true,
     .prints_json = true,
     .parse = parse_fixed,
     .method = "GET",
     .path = "/behaviors",
     .show = show_behaviors},
    {.name = "get-behavior",
     .vaurien = true,
     .prints_json = true,
     .parse = parse_fixed,
     .method = "GET",
     .path = "/behavior",
     .show = show_behavior},
    {.name = "set-behavior",
     .vaurien = true,
     .parse = parse_set_behavior,
     .show = show_set_behavior},
};

/* ---- jobs: the command on one host ---- */

enum job_state { JOB_WAITING, JOB_RUNNING, JOB_DONE };

struct fleet;

struct job {
    struct fleet *fleet;
    const char *url; /* as given */
    char host[256];
    unsigned short port;
    char prefix[512]; /* the URL's path, before the API's */
    enum job_state state;
    struct cmd step; /* the request in flight */
    struct evhttp_connection *conn;
    struct evhttp_request *req; /* in flight, or NULL */
    struct event *deadline;
    enum evhttp_request_error error;
    bool reported;  /* error is evhttp's word */
    int rc;         /* 0, EXIT_API or EXIT_CONNECT */
    int status;     /* the HTTP status, 0 if none */
    json_t *answer; /* the final 2xx body (NULL if none) */
    char *message;  /* what failed, owned */
};

struct fleet {
    struct event_base *base;
    struct evdns_base *dns;
    struct cmd cmd; /* the command, as parsed */
    struct job *jobs;
    size_t n, started, done;
    size_t parallel;
    struct timeval timeout;
};

static void job_start(struct job *j);

static void job_fail(struct job *j, int rc, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Ends a job: records rc and what it answered, starts the next waiting
 * job, and stops the loop after the last. */
static void job_finish(struct job *j, int rc)
{
    struct fleet *f = j->fleet;

    if (j->state == JOB_DONE)
        return;
    j->state = JOB_DONE;
    j->rc = rc;
    evtimer_del(j->deadline);
    if (j->step.body != f->cmd.body)
        json_decref(j->step.body); /* toggle's second request */
    j->step.body = NULL;
    if (f->started < f->n)
        job_start(&f->jobs[f->started++]);
    if (++f->done == f->n)
        event_base_loopexit(f->base, NULL);
}

static void job_fail(struct job *j, int rc, int status, const char *fmt, ...)
{
    va_list ap;

    if (j->state == JOB_DONE)
        return;
    va_start(ap, fmt);
    if (vasprintf(&j->message, fmt, ap) < 0)
        j->message = NULL;
    va_end(ap);
    j->status = status;
    job_finish(j, rc);
}

static const char *request_error(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_EOF:
        return "the connection closed before an answer";
    case EVREQ_HTTP_INVALID_HEADER:
        return "not an HTTP answer";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "connection failed";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "an answer over 16 MiB"; /* RESPONSE_MAX */
    default:
        return "no answer";
    }
}

/* Why a request got no answer: a name that did not resolve, a connect
 * that failed, or what evhttp said. */
static void job_unreachable(struct job *j)
{
    struct bufferevent *bev =
        j->conn != NULL ? evhttp_connection_get_bufferevent(j->conn) : NULL;
    int dns = bev != NULL ? bufferevent_socket_get_dns_error(bev) : 0;

    if (dns != 0)
        job_fail(j, EXIT_CONNECT, 0, "cannot reach %s: cannot resolve %s: %s",
                 j->url, j->host, evutil_gai_strerror(dns));
    else if (!j->reported || j->error == EVREQ_HTTP_TIMEOUT)
        /* evhttp's own timeouts come a second after the deadline: a
         * "timeout" before it, or no error at all (evhttp calls back a
         * refused connect so, without saying why), is a connect that
         * failed */
        job_fail(j, EXIT_CONNECT, 0, "cannot reach %s: could not connect",
                 j->url);
    else
        job_fail(j, EXIT_CONNECT, 0, "cannot reach %s: %s", j->url,
                 request_error(j->error));
}

/* The API's message in an error body: Toxiproxy's {"error"}, Vaurien's
 * {"errors": [{"description"}]}, or the body itself. */
static const char *api_message(json_t *j, const char *body)
{
    const char *msg = json_string_value(json_object_get(j, "error"));
    json_t *errors = json_object_get(j, "errors");

    if (msg == NULL && json_is_array(errors))
        msg = json_string_value(
            json_object_get(json_array_get(errors, 0), "description"));
    return msg != NULL ? msg : body;
}

static int job_send(struct job *j);

static void on_response(struct evhttp_request *req, void *arg)
{
    struct job *j = arg;
    struct evbuffer *in;
    size_t n;
    char *body;
    json_t *answer;
    int status;

    if (j->state != JOB_RUNNING || (req != NULL && j->req != req))
        return; /* timed out already, or the error callback ran */
    j->req = NULL;
    if (req == NULL || evhttp_request_get_response_code(req) <= 0) {
        job_unreachable(j);
        return;
    }
    /* evhttp has read the whole body, by its Content-Length or its
     * chunks: what is in the buffer is the body */
    in = evhttp_request_get_input_buffer(req);
    n = evbuffer_get_length(in);
    status = evhttp_request_get_response_code(req);
    body = malloc(n + 1);
    if (body == NULL) {
        job_fail(j, EXIT_CONNECT, status, "out of memory");
        return;
    }
    evbuffer_remove(in, body, n);
    body[n] = '\0';
    answer = n > 0 ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
    if (status >= 400) {
        job_fail(j, EXIT_API, status, "%d: %s", status,
                 api_message(answer, body));
        json_decref(answer);
    } else if (j->step.c->then != NULL &&
               j->step.c->then(&j->step, answer, &j->step)) {
        json_decref(answer); /* step now holds the next request */
        if (job_send(j) < 0)
            job_fail(j, EXIT_CONNECT, 0, "cannot send to %s", j->url);
    } else {
        j->status = status;
        j->answer = answer;
        job_finish(j, 0);
    }
    free(body);
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct job *j = arg;

    j->error = e; /* on_response follows with NULL, or not at all */
    j->reported = true;
    if (j->state != JOB_RUNNING || e == EVREQ_HTTP_REQUEST_CANCEL)
        return;
    j->req = NULL;
    job_unreachable(j);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    struct evhttp_request *req = j->req;
    struct timeval *t = &j->fleet->timeout;

    (void)fd;
    (void)what;
    if (j->state != JOB_RUNNING)
        return;
    j->req = NULL;
    job_fail(j, EXIT_CONNECT, 0, "cannot reach %s: timed out after %g s",
             j->url, (double)t->tv_sec + t->tv_usec / 1e6);
    if (req != NULL)
        evhttp_cancel_request(req); /* calls on_error, which lets it be */
}

/* Sends j->step on j's connection. Returns 0, or -1. */
static int job_send(struct job *j)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type cmd;
    } methods[] = {
        {"GET", EVHTTP_REQ_GET},     {"POST", EVHTTP_REQ_POST},
        {"PUT", EVHTTP_REQ_PUT},     {"DELETE", EVHTTP_REQ_DELETE},
        {"PATCH", EVHTTP_REQ_PATCH},
    };
    enum evhttp_cmd_type type = EVHTTP_REQ_GET;
    char hostport[300], auth[300];
    char path[sizeof(j->prefix) + sizeof(j->step.path)];
    struct evhttp_request *req;
    struct evkeyvalq *h;

    for (size_t i = 0; i < sizeof(methods) / sizeof(*methods); i++)
        if (strcmp(methods[i].name, j->step.method) == 0)
            type = methods[i].cmd;
    req = evhttp_request_new(on_response, j);
    if (req == NULL)
        return -1;
    evhttp_request_set_error_cb(req, on_error);
    h = evhttp_request_get_output_headers(req);
    snprintf(hostport, sizeof(hostport),
             strchr(j->host, ':') != NULL ? "[%s]:%u" : "%s:%u", j->host,
             (unsigned)j->port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "User-Agent", "vaurien-ctl");
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Connection", "close");
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        evhttp_add_header(h, "Authorization", auth);
    }
    if (j->step.body != NULL) {
        char *text = ctl_json_text(j->step.body), len[32];
        if (text == NULL) {
            evhttp_request_free(req);
            return -1;
        }
        /* evhttp adds a Content-Length only to POST and PUT */
        snprintf(len, sizeof(len), "%zu", strlen(text));
        evhttp_add_header(h, "Content-Length", len);
        evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
        free(text);
    }
    j->req = req;
    snprintf(path, sizeof(path), "%s%s", j->prefix, j->step.path);
    if (evhttp_make_request(j->conn, req, type, path) < 0) {
        j->req = NULL; /* evhttp freed it */
        return -1;
    }
    return 0;
}

static void job_start(struct job *j)
{
    struct fleet *f = j->fleet;
    struct timeval backup = {f->timeout.tv_sec + 1, f->timeout.tv_usec};

    j->state = JOB_RUNNING;
    j->step = f->cmd;
    j->deadline = evtimer_new(f->base, on_deadline, j);
    j->conn = evhttp_connection_base_new(f->base, f->dns, j->host, j->port);
    if (j->deadline == NULL || j->conn == NULL) {
        job_fail(j, EXIT_CONNECT, 0, "out of memory");
        return;
    }
    evtimer_add(j->deadline, &f->timeout);
    /* the deadline rules; evhttp's own timeouts, a second later, only back
     * it up */
    evhttp_connection_set_timeout_tv(j->conn, &backup);
    evhttp_connection_set_max_body_size(j->conn, RESPONSE_MAX);
    if (job_send(j) < 0)
        job_fail(j, EXIT_CONNECT, 0, "cannot send to %s", j->url);
}

/* Runs the command on every host. Returns 0, or -1 when the loop cannot
 * be set up. */
static void quiet(int severity, const char *msg)
{
    (void)severity;
    (void)msg; /* the report says what failed, per host */
}

static int fleet_run(struct fleet *f)
{
    event_set_log_callback(quiet); /* evdns' "nameserver has failed" */
    f->base = event_base_new();
    if (f->base == NULL)
        return -1;
    /* names resolved on the loop too, so that a slow resolver holds back
     * no other host */
    f->dns = evdns_base_new(f->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (f->dns == NULL) /* no resolv.conf: names come from /etc/hosts only */
        f->dns = evdns_base_new(f->base, 0);
    if (f->dns == NULL)
        return -1;
    evdns_base_load_hosts(f->dns, NULL);
    while (f->started < f->n && f->started < f->parallel)
        job_start(&f->jobs[f->started++]);
    if (f->done < f->n)
        event_base_dispatch(f->base);
    return 0;
}

static void fleet_deinit(struct fleet *f)
{
    for (size_t i = 0; i < f->n; i++) {
        struct job *j = &f->jobs[i];
        if (j->conn != NULL)
            evhttp_connection_free(j->conn);
        if (j->deadline != NULL)
            event_free(j->deadline);
        json_decref(j->answer);
        free(j->message);
    }
    free(f->jobs);
    if (f->dns != NULL)
        evdns_base_free(f->dns, 0);
    if (f->base != NULL)
        event_base_free(f->base);
    json_decref(f->cmd.body);
}

/* ---- reports ---- */

/* One host: the command's own output on stdout, a failure on stderr. */
static int report_one(const struct fleet *f)
{
    const struct job *j = &f->jobs[0];

    if (j->rc != 0) {
        fprintf(stderr, "vaurien ctl: %s\n",
                j->message != NULL ? j->message : "failed");
        return j->rc;
    }
    if (json_out) {
        if (f->cmd.c->prints_json && j->answer != NULL)
            show_json(stdout, j->answer);
    } else {
        f->cmd.c->show(stdout, &j->step, j->answer, false);
    }
    return 0;
}

/* A fleet: one line per host, in the order given (or a JSON list), then
 * a count on stderr when some failed. The exit status is the worst: 3 if
 * a host could not be reached, else 1 if one refused, else 0. */
static int report_fleet(const struct fleet *f)
{
    int width = 0, rc = 0;
    size_t failed = 0;
    json_t *all = json_array();

    for (size_t i = 0; i < f->n; i++)
        if ((int)strlen(f->jobs[i].url) > width)
            width = (int)strlen(f->jobs[i].url);
    for (size_t i = 0; i < f->n; i++) {
        const struct job *j = &f->jobs[i];
        char *line = NULL;
        size_t len = 0;
        if (j->rc != 0) {
            failed++;
            rc = j->rc == EXIT_CONNECT || rc == EXIT_CONNECT ? EXIT_CONNECT
                                                             : EXIT_API;
        }
        if (json_out) {
            json_t *e =
                json_pack("{s:s,s:b}", "host", j->url, "ok", j->rc == 0);
            if (j->status > 0)
                json_object_set_new(e, "status", json_integer(j->status));
            if (j->rc != 0)
                json_object_set_new(
                    e, "error",
                    json_string(j->message != NULL ? j->message : "failed"));
            else
                json_object_set(e, "answer",
                                j->answer != NULL ? j->answer : json_null());
            json_array_append_new(all, e);
            continue;
        }
        if (j->rc == 0) {
            FILE *m = open_memstream(&line, &len);
            if (m != NULL) {
                f->cmd.c->show(m, &j->step, j->answer, true);
                fclose(m);
            }
        }
        printf("%-*s  %-5s  %s\n", width, j->url, j->rc == 0 ? "ok" : "error",
               j->rc == 0 ? (line != NULL ? line : "")
                          : (j->message != NULL ? j->message : "failed"));
        free(line);
    }
    if (json_out)
        show_json(stdout, all);
    json_decref(all);
    fflush(stdout);
    if (failed > 0)
        fprintf(stderr, "vaurien ctl: %zu of %zu hosts failed\n", failed, f->n);
    return rc;
}

/* ---- the command line ---- */

/* Adds the URLs of a --hosts file: one a line (LF or CRLF), blank lines,
 * # comments and a leading byte-order mark skipped. Returns 0, or
 * EXIT_USAGE after a message. */
static int read_hosts(const char *file, char ***urls, size_t *n)
{
    FILE *fp = fopen(file, "r");
    char *line = NULL, msg[600];
    size_t cap = 0, before = *n;
    int lineno = 0;

    if (fp == NULL) {
        snprintf(msg, sizeof(msg), "--hosts %s: %s", file, strerror(errno));
        return usage(msg);
    }
    while (getline(&line, &cap, fp) >= 0) {
        char *s = line, *e;
        lineno++;
        if (lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
            s += 3; /* UTF-8's byte-order mark, as some editors save */
        if ((e = strchr(s, '#')) != NULL)
            *e = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strlen(s);
        while (e > s && strchr(" \t\r\n", e[-1]) != NULL)
            *--e = '\0';
        if (*s == '\0')
            continue;
        if (strpbrk(s, " \t") != NULL) {
            snprintf(msg, sizeof(msg),
                     "--hosts %s: line %d: one URL a line, "
                     "got '%.200s'",
                     file, lineno, s);
            free(line);
            fclose(fp);
            return usage(msg);
        }
        if (*n == CLIENT_HOSTS_MAX) {
            snprintf(msg, sizeof(msg), "--hosts %s: more than %d hosts", file,
                     CLIENT_HOSTS_MAX);
            free(line);
            fclose(fp);
            return usage(msg);
        }
        (*urls)[(*n)++] = strdup(s);
    }
    free(line);
    fclose(fp);
    if (*n == before) {
        snprintf(msg, sizeof(msg), "--hosts %s: no URL in it", file);
        return usage(msg);
    }
    return 0;
}

/* The value of "--flag VALUE" or "--flag=VALUE" at argv[*i], or NULL if
 * argv[*i] is not that flag. A flag without its value is reported. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag,
                              const char *alias, bool *missing)
{
    size_t len = strlen(flag);
    const char *a = argv[*i];

    if (strncmp(a, flag, len) == 0 && a[len] == '=')
        return a + len + 1;
    if (strcmp(a, flag) != 0 && (alias == NULL || strcmp(a, alias) != 0))
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

int ctl_client_main(int argc, char **argv)
{
    struct fleet f = {0};
    char **urls = calloc(CLIENT_HOSTS_MAX, sizeof(*urls)), msg[600];
    const char *name;
    size_t nurls = 0;
    bool from_file = false;
    double timeout = CLIENT_TIMEOUT_S;
    long parallel = CLIENT_PARALLEL;
    int i = 1, rc = EXIT_USAGE;

    signal(SIGPIPE,
           SIG_IGN); /* an API that closes early: an error, not death */
    if (urls == NULL) {
        fprintf(stderr, "vaurien ctl: out of memory\n");
        return EXIT_CONNECT;
    }
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *v;
        bool missing = false;
        char *end;
        if ((v = flag_value(argc, argv, &i, "--host", "-h", &missing)) !=
            NULL) {
            if (nurls == CLIENT_HOSTS_MAX) {
                usage("too many --host");
                goto out;
            }
            urls[nurls++] = strdup(v);
        } else if ((v = flag_value(argc, argv, &i, "--hosts", NULL,
                                   &missing)) != NULL) {
            if (read_hosts(v, &urls, &nurls) != 0)
                goto out;
            from_file = true;
        } else if ((v = flag_value(argc, argv, &i, "--timeout", NULL,
                                   &missing)) != NULL) {
            timeout = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || !isfinite(timeout) ||
                timeout <= 0 || timeout > 86400) {
                snprintf(msg, sizeof(msg),
                         "--timeout: expected seconds (0 < S <= "
                         "86400), got '%s'",
                         v);
                usage(msg);
                goto out;
            }
        } else if ((v = flag_value(argc, argv, &i, "--parallel", NULL,
                                   &missing)) != NULL) {
            parallel = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || parallel < 1 ||
                parallel > CLIENT_HOSTS_MAX) {
                snprintf(msg, sizeof(msg),
                         "--parallel: expected 1 to %d, got "
                         "'%s'",
                         CLIENT_HOSTS_MAX, v);
                usage(msg);
                goto out;
            }
        } else if ((v = flag_value(argc, argv, &i, "--token", NULL,
                                   &missing)) != NULL) {
            token = v;
        } else if (missing) {
            snprintf(msg, sizeof(msg), "%s expects a value", argv[i]);
            usage(msg);
            goto out;
        } else if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            help();
            rc = 0;
            goto out;
        } else {
            snprintf(msg, sizeof(msg), "unknown flag '%s'", argv[i]);
            usage(msg);
            goto out;
        }
    }
    if (i >= argc) {
        usage("no command");
        goto out;
    }
    if (token == NULL)
        token = getenv("VAURIEN_API_TOKEN");
    name = argv[i++];
    for (size_t k = 0; k < sizeof(commands) / sizeof(*commands); k++)
        if (strcmp(commands[k].name, name) == 0)
            f.cmd.c = &commands[k];
    if (f.cmd.c == NULL) {
        snprintf(msg, sizeof(msg), "unknown command '%s'", name);
        usage(msg);
        goto out;
    }
    if (f.cmd.c->parse(&f.cmd, argc - i, argv + i) != 0)
        goto out;
    if (nurls == 0) {
        const char *env =
            getenv(f.cmd.c->vaurien ? "VAURIEN_URL" : "TOXIPROXY_URL");
        urls[nurls++] = strdup(env != NULL        ? env
                               : f.cmd.c->vaurien ? "http://localhost:8080"
                                                  : "http://localhost:8474");
    }
    f.n = nurls;
    f.parallel = (size_t)parallel;
    f.timeout.tv_sec = (time_t)timeout;
    f.timeout.tv_usec =
        (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6);
    f.jobs = calloc(nurls, sizeof(*f.jobs));
    if (f.jobs == NULL) {
        fprintf(stderr, "vaurien ctl: out of memory\n");
        rc = EXIT_CONNECT;
        goto out;
    }
    for (size_t k = 0; k < nurls; k++) {
        struct job *j = &f.jobs[k];
        j->fleet = &f;
        j->url = urls[k];
        if (j->url == NULL ||
            parse_url(j->url, j->host, sizeof(j->host), &j->port, j->prefix,
                      sizeof(j->prefix)) < 0) {
            snprintf(msg, sizeof(msg), "bad URL '%.400s' (http://HOST:PORT)",
                     j->url != NULL ? j->url : "");
            usage(msg);
            goto out;
        }
    }
    if (fleet_run(&f) < 0) {
        fprintf(stderr, "vaurien ctl: cannot set up the event loop\n");
        rc = EXIT_CONNECT;
        goto out;
    }
    rc = nurls == 1 && !from_file ? report_one(&f) : report_fleet(&f);
out:
    fleet_deinit(&f);
    for (size_t k = 0; k < nurls; k++)
        free(urls[k]);
    free(urls);
    return rc;
}
