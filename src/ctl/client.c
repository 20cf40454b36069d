/*
 * client: `vaurien ctl` (see client.h).
 *
 *   vaurien ctl [--host URL] [--json] list | inspect P | create -l L -u U P |
 *       toggle P | delete P | toxic add|update|remove ... P |
 *       list-behaviors | get-behavior | set-behavior NAME [--OPT VALUE ...]
 *
 * One HTTP/1.1 request per command, with libevent's HTTP client (it reads
 * bodies by Content-Length or chunks, not to EOF).
 */
#include "ctl/client.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h> /* before libevent's keyvalq_struct.h, which would
                          define TAILQ_ENTRY only to undefine it */

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "ctl/json.h"

#define EXIT_API 1
#define EXIT_USAGE 2
#define EXIT_CONNECT 3
#define CLIENT_TIMEOUT_MS 10000
#define RESPONSE_MAX (16 << 20)

struct response {
    int status;
    char *body; /* NUL-terminated, owned */
};

static bool json_out;
static const char *token; /* --token or $VAURIEN_API_TOKEN */

static int usage(const char *msg)
{
    fprintf(stderr, "vaurien ctl: error: %s (see vaurien ctl --help)\n", msg);
    return EXIT_USAGE;
}

static void help(void)
{
    printf("usage: vaurien ctl [--host URL] [--token TOKEN] [--json] COMMAND ..."
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
           "toxics\n\n"
           "vaurienctl commands (URL: --host, $VAURIEN_URL, or "
           "http://localhost:8080):\n"
           "  list-behaviors | get-behavior | set-behavior NAME [--OPTION "
           "VALUE]...\n\n"
           "Exit status: 0 done, 1 the API refused (its message is printed), "
           "2 bad usage,\n3 the API could not be reached.\n");
}

/* Splits "http://host:port" into host and port. */
static int parse_url(const char *url, char *host, size_t hostlen, char *port,
                     size_t portlen)
{
    const char *p = url, *colon, *end;

    if (strncmp(p, "http://", 7) == 0)
        p += 7;
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
        snprintf(port, portlen, "%.*s", (int)(end - colon - 1), colon + 1);
    else
        snprintf(port, portlen, "80");
    return host[0] != '\0' ? 0 : -1;
}

/* One request and what came back, for the evhttp callbacks. */
struct exchange {
    struct event_base *base;
    struct response *r;
    enum evhttp_request_error error;
    bool failed;
};

static void on_response(struct evhttp_request *req, void *arg)
{
    struct exchange *x = arg;

    if (req != NULL && evhttp_request_get_response_code(req) > 0) {
        /* evhttp has read the whole body, by its Content-Length or its
         * chunks: what is in the buffer is the body */
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        x->r->status = evhttp_request_get_response_code(req);
        x->r->body = malloc(n + 1);
        if (x->r->body != NULL) {
            evbuffer_remove(in, x->r->body, n);
            x->r->body[n] = '\0';
        }
    } else {
        x->failed = true;
    }
    event_base_loopexit(x->base, NULL);
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct exchange *x = arg;

    x->error = e;
    x->failed = true;
}

static const char *request_error(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "the connection closed before an answer";
    case EVREQ_HTTP_INVALID_HEADER:
        return "not an HTTP answer";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "connection failed";
    default:
        return "no answer";
    }
}

/* Sends one request with libevent's HTTP client; fills r. Returns 0, or
 * EXIT_CONNECT. */
static int request(const char *url, const char *method, const char *path,
                   const char *body, struct response *r)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type cmd;
    } methods[] = {
        { "GET", EVHTTP_REQ_GET }, { "POST", EVHTTP_REQ_POST },
        { "PUT", EVHTTP_REQ_PUT }, { "DELETE", EVHTTP_REQ_DELETE },
        { "PATCH", EVHTTP_REQ_PATCH },
    };
    char host[256], port[16], hostport[300], auth[300];
    struct exchange x = { .r = r };
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req;
    struct evkeyvalq *h;
    enum evhttp_cmd_type cmd = EVHTTP_REQ_GET;
    char *end;
    long portnum;
    int rc = EXIT_CONNECT;

    r->status = 0;
    r->body = NULL;
    if (parse_url(url, host, sizeof(host), port, sizeof(port)) < 0 ||
        (portnum = strtol(port, &end, 10)) <= 0 || portnum > 65535 || *end != '\0') {
        fprintf(stderr, "vaurien ctl: bad URL '%s'\n", url);
        return EXIT_CONNECT;
    }
    for (size_t i = 0; i < sizeof(methods) / sizeof(*methods); i++)
        if (strcmp(methods[i].name, method) == 0)
            cmd = methods[i].cmd;
    x.base = event_base_new();
    if (x.base != NULL)
        conn = evhttp_connection_base_new(x.base, NULL, host,
                                          (unsigned short)portnum);
    if (conn == NULL) {
        fprintf(stderr, "vaurien ctl: out of memory\n");
        goto out;
    }
    evhttp_connection_set_timeout(conn, CLIENT_TIMEOUT_MS / 1000);
    evhttp_connection_set_max_body_size(conn, RESPONSE_MAX);
    req = evhttp_request_new(on_response, &x);
    if (req == NULL) {
        fprintf(stderr, "vaurien ctl: out of memory\n");
        goto out;
    }
    evhttp_request_set_error_cb(req, on_error);
    h = evhttp_request_get_output_headers(req);
    snprintf(hostport, sizeof(hostport), strchr(host, ':') != NULL ? "[%s]:%s"
                                                                    : "%s:%s",
             host, port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "User-Agent", "vaurien-ctl");
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Connection", "close");
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        evhttp_add_header(h, "Authorization", auth);
    }
    if (body != NULL) {
        char len[32];
        /* evhttp adds a Content-Length only to POST and PUT */
        snprintf(len, sizeof(len), "%zu", strlen(body));
        evhttp_add_header(h, "Content-Length", len);
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    }
    if (evhttp_make_request(conn, req, cmd, path) < 0) {
        fprintf(stderr, "vaurien ctl: cannot send to %s\n", url);
        goto out;
    }
    event_base_dispatch(x.base);
    if (x.failed || r->body == NULL) {
        free(r->body);
        r->body = NULL;
        fprintf(stderr, "vaurien ctl: cannot reach %s: %s\n", url,
                request_error(x.error));
        goto out;
    }
    rc = 0;
out:
    if (conn != NULL)
        evhttp_connection_free(conn);
    if (x.base != NULL)
        event_base_free(x.base);
    return rc;
}

/* Runs a request and handles failure: prints the API's message. Returns 0
 * and the JSON body (NULL if none), or an exit status. */
static int call(const char *url, const char *method, const char *path,
                json_t *body, json_t **out)
{
    char *text = body != NULL ? ctl_json_text(body) : NULL;
    struct response r;
    int rc = request(url, method, path, text, &r);

    free(text);
    *out = NULL;
    if (rc != 0)
        return rc;
    *out = r.body[0] != '\0' ? json_loads(r.body, JSON_DECODE_ANY, NULL) : NULL;
    if (r.status >= 400) {
        const char *msg = json_string_value(json_object_get(*out, "error"));
        json_t *errors = json_object_get(*out, "errors");
        if (msg == NULL && json_is_array(errors))
            msg = json_string_value(
                json_object_get(json_array_get(errors, 0), "description"));
        fprintf(stderr, "vaurien ctl: %d: %s\n", r.status,
                msg != NULL ? msg : r.body);
        free(r.body);
        json_decref(*out);
        *out = NULL;
        return EXIT_API;
    }
    free(r.body);
    return 0;
}

static void print_json(json_t *j)
{
    char *t = ctl_json_text_indented(j, 2); /* numbers as the API wrote them */

    if (t != NULL)
        puts(t);
    free(t);
}

static void print_toxic(json_t *t)
{
    const char *key;
    json_t *v;
    bool first = true;

    printf("  %-24s %-12s %-10s toxicity=%g  ", json_string_value(json_object_get(t, "name")),
           json_string_value(json_object_get(t, "type")),
           json_string_value(json_object_get(t, "stream")),
           json_number_value(json_object_get(t, "toxicity")));
    json_object_foreach(json_object_get(t, "attributes"), key, v) {
        char *val = ctl_json_text(v);
        printf("%s%s=%s", first ? "" : " ", key, val != NULL ? val : "?");
        free(val);
        first = false;
    }
    printf("\n");
}

static void print_proxy(json_t *p, bool toxics)
{
    json_t *tx = json_object_get(p, "toxics");

    printf("%-20s %-22s %-26s %-8s %-8s %zu toxics\n",
           json_string_value(json_object_get(p, "name")),
           json_string_value(json_object_get(p, "listen")),
           json_string_value(json_object_get(p, "upstream")),
           json_is_true(json_object_get(p, "enabled")) ? "enabled" : "disabled",
           json_string_value(json_object_get(p, "protocol")) != NULL
               ? json_string_value(json_object_get(p, "protocol"))
               : "tcp",
           json_array_size(tx));
    if (toxics) {
        size_t i;
        json_t *t;
        json_array_foreach(tx, i, t)
            print_toxic(t);
    }
}

/* Percent-encodes a proxy or toxic name for a path. */
static void path_of(char *out, size_t len, const char *fmt, const char *a,
                    const char *b)
{
    char ea[600] = "", eb[600] = "";
    const char *src[2] = { a, b };
    char *dst[2] = { ea, eb };

    for (int k = 0; k < 2; k++) {
        size_t o = 0;
        for (const char *p = src[k]; p != NULL && *p != '\0' && o + 4 < 600; p++) {
            unsigned char c = (unsigned char)*p;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || strchr("-_.~", c) != NULL)
                dst[k][o++] = (char)c;
            else
                o += (size_t)snprintf(dst[k] + o, 600 - o, "%%%02X", c);
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

static int toxic_cmd(const char *url, int argc, char **argv)
{
    const char *sub, *name = NULL, *type = NULL, *proxy = NULL;
    json_t *attrs = json_object(), *body = json_object(), *out = NULL;
    char path[1400];
    int rc = 0, stream = 0;

    if (argc < 1) {
        rc = usage("toxic: add, update or remove?");
        goto done;
    }
    sub = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((strcmp(a, "-n") == 0 || strcmp(a, "--toxicName") == 0 ||
             strcmp(a, "--name") == 0) && v != NULL) {
            name = v;
            i++;
        } else if ((strcmp(a, "-t") == 0 || strcmp(a, "--type") == 0) && v != NULL) {
            type = v;
            i++;
        } else if ((strcmp(a, "--tox") == 0 || strcmp(a, "--toxicity") == 0) &&
                   v != NULL) {
            json_object_set_new(body, "toxicity", json_real(strtod(v, NULL)));
            i++;
        } else if ((strcmp(a, "-a") == 0 || strcmp(a, "--attribute") == 0) &&
                   v != NULL) {
            const char *eq = strchr(v, '=');
            char key[128];
            if (eq == NULL) {
                rc = usage("-a takes KEY=VALUE");
                goto done;
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
            rc = usage(msg);
            goto done;
        } else {
            proxy = a;
        }
    }
    if (proxy == NULL) {
        rc = usage("toxic: which proxy?");
        goto done;
    }
    if (strcmp(sub, "add") == 0) {
        if (type == NULL) {
            rc = usage("toxic add: -t TYPE is required");
            goto done;
        }
        json_object_set_new(body, "type", json_string(type));
        if (name != NULL)
            json_object_set_new(body, "name", json_string(name));
        json_object_set_new(body, "stream",
                            json_string(stream == 1 ? "upstream" : "downstream"));
        json_object_set(body, "attributes", attrs);
        path_of(path, sizeof(path), "/proxies/%s/toxics%s", proxy, NULL);
        rc = call(url, "POST", path, body, &out);
    } else if (strcmp(sub, "update") == 0) {
        if (name == NULL) {
            rc = usage("toxic update: -n NAME is required");
            goto done;
        }
        json_object_set(body, "attributes", attrs);
        path_of(path, sizeof(path), "/proxies/%s/toxics/%s", proxy, name);
        rc = call(url, "PATCH", path, body, &out);
    } else if (strcmp(sub, "remove") == 0 || strcmp(sub, "delete") == 0) {
        if (name == NULL) {
            rc = usage("toxic remove: -n NAME is required");
            goto done;
        }
        path_of(path, sizeof(path), "/proxies/%s/toxics/%s", proxy, name);
        rc = call(url, "DELETE", path, NULL, &out);
        if (rc == 0 && !json_out)
            printf("Removed toxic %s on proxy %s\n", name, proxy);
        goto done;
    } else {
        rc = usage("toxic: add, update or remove?");
        goto done;
    }
    if (rc == 0) {
        if (json_out)
            print_json(out);
        else
            print_toxic(out);
    }
done:
    json_decref(out);
    json_decref(attrs);
    json_decref(body);
    return rc;
}

int ctl_client_main(int argc, char **argv)
{
    const char *host = NULL, *cmd = NULL;
    char url[512], path[8192];
    json_t *out = NULL;
    int i = 1, rc;

    signal(SIGPIPE, SIG_IGN); /* an API that closes early: an error, not death */

    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((strcmp(argv[i], "--host") == 0 || strcmp(argv[i], "-h") == 0) &&
            i + 1 < argc)
            host = argv[++i];
        else if (strncmp(argv[i], "--host=", 7) == 0)
            host = argv[i] + 7;
        else if (strcmp(argv[i], "--json") == 0)
            json_out = true;
        else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc)
            token = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            help();
            return 0;
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "unknown flag '%s'", argv[i]);
            return usage(msg);
        }
    }
    if (i >= argc)
        return usage("no command");
    if (token == NULL)
        token = getenv("VAURIEN_API_TOKEN");
    cmd = argv[i++];
    if (host == NULL)
        host = strstr(cmd, "behavior") != NULL ? getenv("VAURIEN_URL")
                                               : getenv("TOXIPROXY_URL");
    if (host == NULL)
        host = strstr(cmd, "behavior") != NULL ? "http://localhost:8080"
                                               : "http://localhost:8474";
    snprintf(url, sizeof(url), "%s", host);

    if (strcmp(cmd, "list") == 0) {
        const char *key;
        json_t *p;
        rc = call(url, "GET", "/proxies", NULL, &out);
        if (rc == 0 && json_out)
            print_json(out);
        else if (rc == 0) {
            printf("%-20s %-22s %-26s %-8s %-8s\n", "NAME", "LISTEN", "UPSTREAM",
                   "ENABLED", "PROTOCOL");
            json_object_foreach(out, key, p)
                print_proxy(p, false);
            if (json_object_size(out) == 0)
                printf("(no proxies)\n");
        }
    } else if (strcmp(cmd, "inspect") == 0 || strcmp(cmd, "toggle") == 0 ||
               strcmp(cmd, "delete") == 0) {
        if (i >= argc)
            return usage("which proxy?");
        path_of(path, sizeof(path), "/proxies/%s%s", argv[i], NULL);
        if (strcmp(cmd, "delete") == 0) {
            rc = call(url, "DELETE", path, NULL, &out);
            if (rc == 0 && !json_out)
                printf("Deleted proxy %s\n", argv[i]);
        } else {
            rc = call(url, "GET", path, NULL, &out);
            if (rc == 0 && strcmp(cmd, "toggle") == 0) {
                json_t *body = json_pack("{s:b}", "enabled",
                                         !json_is_true(json_object_get(out, "enabled")));
                json_decref(out);
                rc = call(url, "POST", path, body, &out);
                json_decref(body);
            }
            if (rc == 0 && json_out)
                print_json(out);
            else if (rc == 0)
                print_proxy(out, true);
        }
    } else if (strcmp(cmd, "create") == 0) {
        const char *listen = NULL, *upstream = NULL, *name = NULL, *protocol = NULL;
        json_t *body;
        for (; i < argc; i++) {
            const char *v = i + 1 < argc ? argv[i + 1] : NULL;
            if ((strcmp(argv[i], "-l") == 0 || strcmp(argv[i], "--listen") == 0) && v) {
                listen = v;
                i++;
            } else if ((strcmp(argv[i], "-u") == 0 ||
                        strcmp(argv[i], "--upstream") == 0) && v) {
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
                name = argv[i];
        }
        if (name == NULL || upstream == NULL)
            return usage("create -l LISTEN -u UPSTREAM PROXY");
        body = json_pack("{s:s,s:s,s:s}", "name", name, "listen",
                         listen != NULL ? listen : "127.0.0.1:0", "upstream",
                         upstream);
        if (protocol != NULL)
            json_object_set_new(body, "protocol", json_string(protocol));
        rc = call(url, "POST", "/proxies", body, &out);
        json_decref(body);
        if (rc == 0 && json_out)
            print_json(out);
        else if (rc == 0)
            printf("Created new proxy %s listening on %s\n", name,
                   json_string_value(json_object_get(out, "listen")));
    } else if (strcmp(cmd, "toxic") == 0) {
        return toxic_cmd(url, argc - i, argv + i);
    } else if (strcmp(cmd, "reset") == 0) {
        rc = call(url, "POST", "/reset", NULL, &out);
        if (rc == 0 && !json_out)
            printf("Reset: every proxy enabled, every toxic removed\n");
    } else if (strcmp(cmd, "list-behaviors") == 0) {
        size_t k;
        json_t *b;
        rc = call(url, "GET", "/behaviors", NULL, &out);
        if (rc == 0 && json_out)
            print_json(out);
        else if (rc == 0)
            json_array_foreach(json_object_get(out, "behaviors"), k, b)
                printf("%s\n", json_string_value(b));
    } else if (strcmp(cmd, "get-behavior") == 0) {
        rc = call(url, "GET", "/behavior", NULL, &out);
        if (rc == 0 && json_out)
            print_json(out);
        else if (rc == 0)
            printf("%s\n", json_string_value(json_object_get(out, "behavior")));
    } else if (strcmp(cmd, "set-behavior") == 0) {
        json_t *body;
        if (i >= argc)
            return usage("set-behavior NAME [--OPTION VALUE]...");
        body = json_pack("{s:s}", "name", argv[i++]);
        for (; i < argc; i += 2) {
            if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
                json_decref(body);
                return usage("set-behavior: options are --OPTION VALUE");
            }
            json_object_set_new(body, argv[i] + 2, typed_value(argv[i + 1]));
        }
        rc = call(url, "PUT", "/behavior", body, &out);
        json_decref(body);
        if (rc == 0 && !json_out)
            printf("Behavior changed\n");
    } else {
        char msg[300];
        snprintf(msg, sizeof(msg), "unknown command '%s'", cmd);
        return usage(msg);
    }
    json_decref(out);
    return rc;
}
