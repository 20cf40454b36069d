/*
 * http: HTTP/1.0 and HTTP/1.1, framed with http_parser.
 *
 *   client ─▶ request head ─▶ (body: Content-Length or chunked) ─▶ a request
 *   server ─▶ response head ─▶ (body, none for HEAD, 1xx, 204, 304) ─▶ a reply;
 *             a 1xx other than 101 is interim: the request waits for more
 *
 * Requests are handed out once their head is parsed, so a request's verdict
 * is drawn before its body streams through. After a request that asks for
 * an upgrade (Upgrade:, CONNECT) the client's next bytes wait for its reply:
 * after a 101 (or a 2xx to CONNECT) the connection is a tunnel, plain tcp
 * with faults per chunk; after any other reply it stays HTTP. An error
 * is a complete response: a status drawn from the error behavior's `status`
 * list, Content-Length and a short body. An Upgrade request or a CONNECT
 * that gets it was never sent, so the connection stays HTTP, as with a
 * server that ignores Upgrade or refuses the CONNECT. The error closes the
 * connection only when the request asked for that, or when the client
 * waits for 100-continue.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "proto/proto.h"

#define HTTP_HEAD_MAX (80 * 1024) /* http_parser's own header limit */

enum { HTTP_OVERWRITE_HOST, HTTP_HEAD_TIMEOUT };

/* u->info of a request: method, version, and what the head said. */
#define INFO_METHOD(i)   ((i) & 0xffu)
#define INFO_MAJOR(i)    (((i) >> 8) & 0xfu)
#define INFO_MINOR(i)    (((i) >> 12) & 0xfu)
#define INFO_KEEPALIVE   (1u << 16)
#define INFO_EXPECT      (1u << 17)
#define INFO_UPGRADE     (1u << 18) /* Upgrade: or CONNECT */

/* Where the connection stands with an upgrade (Upgrade:, or CONNECT). */
enum http_upgrade {
    UPGRADE_NONE,     /* HTTP */
    UPGRADE_ASKED,    /* the request being read asks for one */
    UPGRADE_PENDING,  /* it went out whole: the client's next bytes depend
                         on its reply */
    UPGRADE_DECLINED, /* it was answered without a switch before its end:
                         HTTP again once it ends */
    UPGRADE_TUNNEL,   /* switched: no more HTTP */
};

enum http_upgrade_event {
    UPGRADE_ASK,    /* a request head asks for an upgrade */
    UPGRADE_SENT,   /* that request ended */
    UPGRADE_REFUSE, /* it got a reply that is no switch, or the proxy's
                       error in place of being sent */
    UPGRADE_SWITCH, /* it got a 101, or a 2xx to CONNECT */
};

struct http_state;

struct http_dir {
    struct proto_framer f;     /* first: the driver's state */
    http_parser parser;
    struct http_state *s;
    bool inited;               /* parser set up */
    bool head_pause;           /* the parser paused at the end of the head */
    size_t unit_bytes;         /* bytes of the current unit parsed */
    size_t head_len;           /* where its head ends (0: not yet) */
    bool interim;              /* response: 1xx */
    uint32_t info;             /* request: what the head said */
    uint32_t req_info;         /* response: the request's info */
    char field[24];            /* header name being read (lower case) */
    size_t fieldlen;
    bool in_value;
    char value[32];            /* start of the value of that header */
    size_t valuelen;
};

struct http_state {
    struct http_dir up, down;
    bool overwrite_host;
    char backend[300];
    enum http_upgrade upgrade; /* where an upgrade stands */
};

/* The one place the upgrade state changes. */
static void upgrade_advance(struct http_state *s, enum http_upgrade_event ev)
{
    switch (ev) {
    case UPGRADE_ASK:
        s->upgrade = UPGRADE_ASKED;
        break;
    case UPGRADE_SENT:
        if (s->upgrade == UPGRADE_ASKED)
            s->upgrade = UPGRADE_PENDING;
        else if (s->upgrade == UPGRADE_DECLINED)
            s->upgrade = UPGRADE_NONE;
        break;
    case UPGRADE_REFUSE:
        if (s->upgrade == UPGRADE_ASKED)
            s->upgrade = UPGRADE_DECLINED;
        else if (s->upgrade == UPGRADE_PENDING)
            s->upgrade = UPGRADE_NONE;
        break;
    case UPGRADE_SWITCH:
        s->upgrade = UPGRADE_TUNNEL;
        break;
    }
}

static void header_done(struct http_dir *d)
{
    if (d->fieldlen == 6 && memcmp(d->field, "expect", 6) == 0 &&
        d->valuelen >= 12 && strncasecmp(d->value, "100-continue", 12) == 0)
        d->info |= INFO_EXPECT;
    d->fieldlen = d->valuelen = 0;
    d->in_value = false;
}

static int on_message_begin(http_parser *p)
{
    struct http_dir *d = p->data;

    d->info = 0;
    d->fieldlen = d->valuelen = 0;
    d->in_value = false;
    d->interim = false;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_dir *d = p->data;

    if (d->in_value)
        header_done(d);
    for (size_t i = 0; i < len && d->fieldlen < sizeof(d->field); i++)
        d->field[d->fieldlen++] = (char)tolower((unsigned char)at[i]);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_dir *d = p->data;

    d->in_value = true;
    for (size_t i = 0; i < len && d->valuelen < sizeof(d->value); i++)
        d->value[d->valuelen++] = at[i];
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_dir *d = p->data;
    struct http_state *s = d->s;

    if (d->in_value)
        header_done(d);
    d->f.head = true;
    if (p->type == HTTP_REQUEST) {
        d->info |= p->method | (uint32_t)p->http_major << 8 |
                   (uint32_t)p->http_minor << 12;
        if (http_should_keep_alive(p))
            d->info |= INFO_KEEPALIVE;
        if (p->upgrade) {
            d->info |= INFO_UPGRADE;
            upgrade_advance(s, UPGRADE_ASK);
        }
        http_parser_pause(p, 1);
        d->head_pause = true;
        return 0;
    }
    /* a response: its body depends on the request */
    if (p->status_code / 100 == 1 && p->status_code != 101) {
        d->interim = true;
        return 1;
    }
    /* the final reply to the request that asked for an upgrade (and not
     * to one sent before it) decides */
    if (d->req_info & INFO_UPGRADE) {
        if (p->status_code == 101 ||
            (INFO_METHOD(d->req_info) == HTTP_CONNECT &&
             p->status_code / 100 == 2)) {
            upgrade_advance(s, UPGRADE_SWITCH);
            return 1;
        }
        upgrade_advance(s, UPGRADE_REFUSE);
    }
    if (INFO_METHOD(d->req_info) == HTTP_HEAD)
        return 1;
    /* a body follows: note where it starts (http_feed) */
    http_parser_pause(p, 1);
    d->head_pause = true;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_dir *d = p->data;

    d->f.done = true;
    d->f.head = true;
    if (p->type == HTTP_REQUEST && p->upgrade)
        upgrade_advance(d->s, UPGRADE_SENT);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static size_t http_feed(void *st, const unsigned char *p, size_t n)
{
    struct http_dir *d = st;
    size_t total = 0;

    while (total < n && !d->f.done && !d->f.error) {
        size_t used = http_parser_execute(&d->parser, &settings,
                                          (const char *)p + total, n - total);
        enum http_errno e = HTTP_PARSER_ERRNO(&d->parser);
        total += used;
        if (e == HPE_PAUSED) {
            http_parser_pause(&d->parser, 0);
            if (d->head_pause) {
                /* the head ends here: note where, and go on with the body
                 * bytes already there, so a request goes out in one write.
                 * The parser stopped before the head's last byte (the LF,
                 * which it reads again when resumed). */
                d->head_pause = false;
                d->head_len = d->unit_bytes + total + 1;
                continue;
            }
            break; /* the message is complete */
        }
        if (e != HPE_OK)
            d->f.error = true;
        else if (d->parser.upgrade && !d->f.done && total < n)
            d->f.error = true; /* stopped before the message's end (the
                                  body of an upgrade request may go on) */
        break;
    }
    d->unit_bytes += total;
    return total;
}

static void http_init(void *st, const struct proto_ops *ops,
                      const union opt_val *opts, const char *backend)
{
    (void)ops;
    struct http_state *s = st;

    s->overwrite_host = opts[HTTP_OVERWRITE_HOST].b;
    snprintf(s->backend, sizeof(s->backend), "%s", backend);
    s->up.s = s->down.s = s;
}

static bool http_edits(void *st)
{
    return ((struct http_state *)st)->overwrite_host;
}

/* Replaces the value of the Host header in the first len bytes of in.
 * Returns the new length of the head. */
static size_t overwrite_host(struct http_state *s, struct evbuffer *in,
                             size_t len)
{
    const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    struct evbuffer *out;
    const char *line, *end = head + len;
    size_t newlen;

    if (head == NULL)
        return len;
    for (line = memchr(head, '\n', len); line != NULL && line + 1 < end;
         line = memchr(line + 1, '\n', (size_t)(end - line - 1))) {
        const char *v, *eol;
        if ((size_t)(end - line) < 6 || strncasecmp(line + 1, "host:", 5) != 0)
            continue;
        eol = memchr(line + 1, '\n', (size_t)(end - line - 1));
        if (eol == NULL)
            return len;
        if (eol > line + 1 && eol[-1] == '\r')
            eol--;
        v = line + 6;
        out = evbuffer_new();
        if (out == NULL)
            return len;
        evbuffer_add(out, head, (size_t)(v - head));
        evbuffer_add_printf(out, " %s", s->backend);
        evbuffer_add(out, eol, (size_t)(end - eol));
        newlen = evbuffer_get_length(out);
        evbuffer_drain(in, len);
        evbuffer_prepend_buffer(in, out);
        evbuffer_free(out);
        return newlen;
    }
    return len;
}

static ssize_t http_frame(void *st, enum proto_dir dir, struct evbuffer *in,
                          struct proto_unit *u)
{
    struct http_state *s = st;
    struct http_dir *d = dir == PROTO_UP ? &s->up : &s->down;
    bool starting = !d->f.started && d->f.scanned == 0 && !d->f.head;
    bool had_head;
    ssize_t n;

    if (dir == PROTO_UP && s->upgrade == UPGRADE_PENDING)
        return 0; /* what follows depends on the reply */
    if (starting && (!d->inited || d->parser.upgrade)) {
        /* The parser runs on from message to message; it starts anew only
         * on a new connection and after an upgrade that was refused. */
        http_parser_init(&d->parser, dir == PROTO_UP ? HTTP_REQUEST
                                                     : HTTP_RESPONSE);
        d->parser.data = d;
        d->s = s;
        d->inited = true;
    }
    if (starting) {
        d->unit_bytes = 0;
        d->head_len = 0;
    }
    if (starting && dir == PROTO_DOWN)
        d->req_info = u->info;
    had_head = (u->flags & PROTO_HEAD) != 0; /* u lives across a unit's steps */
    n = proto_drive(&d->f, in, u, HTTP_HEAD_MAX, http_feed);
    if (n <= 0)
        return n;
    if (dir == PROTO_UP) {
        u->info = d->info;
        if (d->info & INFO_EXPECT)
            u->flags |= PROTO_EARLY;
        /* the head step only (a body's later parts are not a head), and
         * framed at the front (http_edits) */
        if (!had_head && (u->flags & PROTO_HEAD) && s->overwrite_host &&
            d->head_len > 0 && u->skip == 0)
            n += (ssize_t)overwrite_host(s, in, d->head_len) - (ssize_t)d->head_len;
    } else {
        if (d->interim)
            u->flags |= PROTO_INTERIM;
        if (!had_head && (u->flags & PROTO_HEAD))
            u->head_len = (uint32_t)d->head_len; /* 0 without a body; a
                                                    head is at most 80 KB */
    }
    return n;
}

static enum proto_mode http_mode(void *st)
{
    struct http_state *s = st;

    return s->upgrade == UPGRADE_TUNNEL ? PROTO_TUNNEL : PROTO_FRAMED;
}

/* Draws one status from a list such as "500,501,502,503". */
static int draw_status(const char *list, struct rng *r)
{
    int codes[32], n = 0;
    const char *p = list != NULL && list[0] != '\0' ? list : "500,501,502,503";

    while (*p != '\0' && n < 32) {
        char *end;
        long c = strtol(p, &end, 10);
        if (end == p)
            break;
        if (c >= 100 && c <= 599)
            codes[n++] = (int)c;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (n == 0)
        return 500;
    return codes[rng_below(r, (uint64_t)n)];
}

static const char *reason(int status)
{
    static const struct {
        int code;
        const char *text;
    } reasons[] = {
        /* the statuses a test is likely to ask for; others get a generic
         * phrase below */
        { 400, "Bad Request" },
        { 401, "Unauthorized" },
        { 403, "Forbidden" },
        { 404, "Not Found" },
        { 408, "Request Timeout" },
        { 409, "Conflict" },
        { 413, "Content Too Large" },
        { 429, "Too Many Requests" },
        { 500, "Internal Server Error" },
        { 501, "Not Implemented" },
        { 502, "Bad Gateway" },
        { 503, "Service Unavailable" },
        { 504, "Gateway Timeout" },
        { 507, "Insufficient Storage" },
    };

    for (size_t i = 0; i < sizeof(reasons) / sizeof(*reasons); i++)
        if (reasons[i].code == status)
            return reasons[i].text;
    return status >= 500 ? "Server Error" : "Client Error";
}

/* The error in place of request req, the one whose head was just handed
 * out: an Upgrade request or a CONNECT that gets it is not sent, so no
 * switch will come and the client goes on in HTTP, as after a server's
 * refusal. */
static void http_error_reply(void *st, const struct proto_error *e,
                             const struct proto_unit *req, struct rng *r,
                             struct evbuffer *out, bool *close)
{
    struct http_state *s = st;
    int status = draw_status(e->status, r);
    uint32_t info = req->info;
    bool v10 = INFO_MAJOR(info) == 1 && INFO_MINOR(info) == 0;
    struct evbuffer *body = evbuffer_new();

    if (info & INFO_UPGRADE)
        upgrade_advance(s, UPGRADE_REFUSE);
    *close = !(info & INFO_KEEPALIVE) || (info & INFO_EXPECT);
    if (body == NULL)
        return;
    /* the body is the message as given, or the reason phrase */
    if (e->message != NULL && e->message[0] != '\0')
        evbuffer_add(body, e->message, strlen(e->message));
    else
        evbuffer_add(body, reason(status), strlen(reason(status)));
    evbuffer_add_printf(out,
                        "HTTP/1.%d %d %s\r\nContent-Type: text/plain\r\n"
                        "Content-Length: %zu\r\n%s\r\n",
                        v10 ? 0 : 1, status, reason(status),
                        evbuffer_get_length(body),
                        *close ? "Connection: close\r\n"
                        : v10  ? "Connection: keep-alive\r\n"
                               : "");
    if (INFO_METHOD(info) != HTTP_HEAD)
        evbuffer_add_buffer(out, body);
    evbuffer_free(body);
}

/* The index of the LF that ends the line starting at p[i], or n when the
 * line is not all there. */
static size_t parts_line_end(const unsigned char *p, size_t n, size_t i)
{
    const unsigned char *lf = memchr(p + i, '\n', n - i);

    return lf != NULL ? (size_t)(lf - p) : n;
}

static bool is_sp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* The method, the target and the headers of a request head, read without
 * http_parser (which keeps no pointers, and may not see the head whole):
 * lines end with CRLF or a bare LF, empty lines before the request line
 * are skipped (as http_parser skips them), a header line without a colon
 * and an obsolete folded line (one that starts with a blank) are skipped,
 * and the headers end at the blank line. A method or a target counts once
 * the blank after it has come, a header once its line has ended. */
static void http_parts(const unsigned char *p, size_t n,
                       const struct proto_unit *u, struct proto_parts *out)
{
    size_t i = 0, j;

    (void)u;
    while (i < n && (p[i] == '\r' || p[i] == '\n'))
        i++;
    for (j = i; j < n && p[j] != ' ' && p[j] != '\r' && p[j] != '\n'; j++)
        ;
    if (j == n || j == i || p[j] != ' ')
        return;
    out->method.p = (const char *)p + i;
    out->method.n = j - i;
    while (j < n && p[j] == ' ')
        j++;
    for (i = j; j < n && p[j] != ' ' && p[j] != '\r' && p[j] != '\n'; j++)
        ;
    if (j == n)
        return;
    out->path.p = (const char *)p + i;
    out->path.n = j - i;
    i = parts_line_end(p, n, j) + 1; /* the first header line */
    while (i < n && out->nheaders < PROTO_HEADERS_MAX) {
        size_t end = parts_line_end(p, n, i), stop = end;
        const unsigned char *colon;
        struct proto_str *h;
        if (end == n)
            return; /* cut short */
        if (stop > i && p[stop - 1] == '\r')
            stop--;
        if (stop == i)
            return; /* the blank line: the head ends */
        colon = memchr(p + i, ':', stop - i);
        if (colon != NULL && colon > p + i && !is_sp(p[i])) {
            size_t v = (size_t)(colon - p) + 1, ve = stop;
            while (v < ve && is_sp(p[v]))
                v++;
            while (ve > v && is_sp(p[ve - 1]))
                ve--;
            h = out->headers[out->nheaders++];
            h[0].p = (const char *)p + i;
            h[0].n = (size_t)(colon - p) - i;
            h[1].p = (const char *)p + v;
            h[1].n = ve - v;
        }
        i = end + 1;
    }
}

static const struct opt_decl http_opts[] = {
    [HTTP_OVERWRITE_HOST] = { "overwrite_host_header", OPT_BOOL, "false",
                              "Replace the Host header with the backend's "
                              "HOST:PORT", 0, 0 },
    /* read by the session (a head that takes longer gets a 408) */
    [HTTP_HEAD_TIMEOUT] = { "head_timeout", OPT_FLOAT, "0",
                            "Seconds a client has to send a request's head, "
                            "from its first byte; then 408 and close (0: no "
                            "limit, so that slow clients can be tested)",
                            0, 86400 },
    { 0 },
};

const struct proto_ops proto_http = {
    .name = "http",
    .help = "HTTP/1.0 and 1.1; errors are complete HTTP error responses.",
    .opts = http_opts,
    .state_size = sizeof(struct http_state),
    .init = http_init,
    .edits = http_edits,
    .frame = http_frame,
    .mode = http_mode,
    .error_reply = http_error_reply,
    .parts = http_parts,
};
