/* The http framer: requests and responses split anywhere. */
#include "framer.h"

#include <http_parser.h>
#include <stdio.h>

#define H (&proto_http)

static void frames_of(enum proto_dir dir, const char *data, const struct infos *req,
                      struct frames *f)
{
    frame_every_split(H, NULL, dir, data, strlen(data), req, f);
    cr_assert_eq(f->error, 0, "malformed: %s", data);
}

Test(http, frames_pipelined_requests_with_bodies)
{
    const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"                       /* 27 */
                       "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" /* 51 */
                       "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\nTrailer: yes\r\n\r\n"                /* 46+31 */
                       "GET /10 HTTP/1.0\r\n\r\n";                              /* 20 */
    struct frames f;

    frames_of(PROTO_UP, req, NULL, &f);
    cr_assert_eq(f.n, 4);
    cr_assert_eq(f.len[0], 27);
    cr_assert_eq(f.len[1], 53);
    cr_assert_eq(f.len[2], 76);
    cr_assert_eq(f.len[3], 20);
    cr_assert_eq(f.partial + f.left, 0);
}

Test(http, expect_100_continue_asks_for_an_early_answer)
{
    const char req[] = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok";
    struct frames f;

    frames_of(PROTO_UP, req, NULL, &f);
    cr_assert_eq(f.n, 1);
    cr_assert(f.flags[0] & PROTO_EARLY);
}

static void infos_of(struct infos *in, int n, const int *methods)
{
    memset(in, 0, sizeof(*in));
    in->n = n;
    for (int i = 0; i < n; i++)
        in->info[i] = (uint32_t)methods[i] | 1u << 8 | 1u << 12;
}

Test(http, frames_responses_by_what_the_request_was)
{
    const char rep[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"   /* 41 */
                       "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"      /* HEAD: 38 */
                       "HTTP/1.1 100 Continue\r\n\r\n"                      /* interim: 25 */
                       "HTTP/1.1 204 No Content\r\n\r\n"                    /* 27 */
                       "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"       /* 38 */
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    int methods[] = { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_GET, HTTP_GET };
    struct infos req;
    struct frames f;

    infos_of(&req, 5, methods);
    frames_of(PROTO_DOWN, rep, &req, &f);
    cr_assert_eq(f.n, 6);
    cr_assert_eq(f.len[0], 41);
    cr_assert_eq(f.len[1], 38);
    cr_assert_eq(f.len[2], 25);
    cr_assert(f.flags[2] & PROTO_INTERIM);
    cr_assert_eq(f.len[3], 27);
    cr_assert_eq(f.len[4], 38);
    cr_assert_eq(f.len[5], 60);
}

static void *new_state(void)
{
    return framer_new(H);
}

/*
 * Upgrades, as a session drives them: the client's bytes framed as they
 * come; a request the proxy answers itself (an error drawn) gets
 * error_reply at its head and is not sent (unless the framer says
 * PROTO_FORWARD); every request sent gets the backend's next reply, framed
 * with the request's info, once it has ended. Framing the client's bytes
 * resumes after each reply, as the framer may have held them back.
 */
struct upgrade_case {
    const char *name;
    const char *client;         /* what the client sends, pipelined */
    unsigned answered;          /* bit i: the proxy answers request i */
    const char *replies[4];     /* the backend's, one per request sent */
    int requests;               /* requests framed */
    enum proto_mode mode;       /* the mode at the end */
    size_t held;                /* client bytes never framed */
};

struct conversation {
    int requests, replies, error;
    enum proto_mode mode;
    size_t held;
};

#define UPGRADE_H2C "GET /h2 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n" \
                    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
#define UPGRADE_WS "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n" \
                   "Upgrade: websocket\r\n\r\n"
#define NEXT "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
#define OK_2 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#define SWITCH_WS "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" \
                  "Upgrade: websocket\r\n\r\n"
#define WS_FRAME "\x81\x01x"
#define CONNECT "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
#define TLS_HELLO "\x16\x03\x01"

static const struct upgrade_case upgrade_cases[] = {
    { "an Upgrade the proxy answers stays HTTP for the next request",
      UPGRADE_H2C NEXT, 1u, { OK_2 }, 2, PROTO_FRAMED, 0 },
    { "an Upgrade with a body the proxy answers stays HTTP",
      "POST /h2 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
      "Content-Length: 5\r\n\r\nhello" NEXT NEXT,
      1u, { OK_2, OK_2 }, 3, PROTO_FRAMED, 0 },
    { "an Upgrade the server declines with a 200 stays HTTP",
      UPGRADE_H2C NEXT, 0, { OK_2, OK_2 }, 2, PROTO_FRAMED, 0 },
    { "an Upgrade the server switches makes the rest a tunnel",
      UPGRADE_WS WS_FRAME, 0, { SWITCH_WS }, 1, PROTO_TUNNEL, 3 },
    { "the reply to a request before the Upgrade does not end its wait",
      NEXT UPGRADE_WS WS_FRAME, 0, { OK_2, SWITCH_WS }, 2, PROTO_TUNNEL, 3 },
    { "an answered request before the Upgrade changes nothing",
      NEXT UPGRADE_WS WS_FRAME, 1u, { SWITCH_WS }, 2, PROTO_TUNNEL, 3 },
    { "an Upgrade that waits for its reply holds what follows",
      UPGRADE_WS NEXT, 0, { NULL }, 1, PROTO_FRAMED, sizeof(NEXT) - 1 },
    { "a CONNECT the proxy answers is not sent and stays HTTP",
      CONNECT NEXT, 1u, { OK_2 }, 2, PROTO_FRAMED, 0 },
    { "a CONNECT the server refuses stays HTTP",
      CONNECT NEXT, 0, { "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", OK_2 }, 2,
      PROTO_FRAMED, 0 },
    { "a CONNECT the server accepts makes the rest a tunnel",
      CONNECT TLS_HELLO, 0, { "HTTP/1.1 200 Connection established\r\n\r\n" }, 1,
      PROTO_TUNNEL, 3 },
};

/* Runs one conversation; the client's bytes arrive in pieces of `piece`
 * bytes, or in two at `cut` when cut is not 0; replies arrive whole. */
static void converse(const struct upgrade_case *c, size_t cut, size_t piece,
                     struct conversation *out)
{
    void *st = new_state();
    struct evbuffer *up = evbuffer_new(), *down = evbuffer_new();
    const char *data = c->client;
    size_t len = strlen(data), fed = 0;
    uint32_t sent[8];
    int n_sent = 0, n_replied = 0, index = 0;
    bool in_req = false, answered = false, progress = true;
    struct proto_unit u = { 0 }, d = { 0 };
    struct rng r;

    rng_seed(&r, 1);
    memset(out, 0, sizeof(*out));
    while (progress && !out->error && H->mode(st) == PROTO_FRAMED) {
        ssize_t n;

        progress = false;
        if (fed < len) {
            size_t take = cut ? (fed < cut ? cut : len - fed) : piece;
            if (take > len - fed)
                take = len - fed;
            evbuffer_add(up, data + fed, take);
            fed += take;
            progress = true;
        }
        while (evbuffer_get_length(up) > 0 && H->mode(st) == PROTO_FRAMED) {
            if (!in_req)
                memset(&u, 0, sizeof(u));
            n = H->frame(st, PROTO_UP, up, &u);
            if (n < 0)
                out->error = 1;
            if (n <= 0)
                break;
            if (!in_req) {
                struct evbuffer *err = evbuffer_new();
                struct proto_error e = { .status = "503" };
                bool close;
                answered = (c->answered >> index) & 1u;
                if (answered)
                    H->error_reply(st, &e, &u, &r, err, &close);
                evbuffer_free(err);
                in_req = true;
            }
            evbuffer_drain(up, (size_t)n);
            progress = true;
            if (u.flags & PROTO_END) {
                if ((!answered || (u.flags & PROTO_FORWARD)) && n_sent < 8)
                    sent[n_sent++] = u.info;
                out->requests++;
                index++;
                in_req = false;
            }
        }
        /* the backend answers what it got, in order */
        while (n_replied < n_sent && H->mode(st) == PROTO_FRAMED) {
            const char *rep = c->replies[n_replied];
            if (rep == NULL)
                break;
            evbuffer_add(down, rep, strlen(rep));
            memset(&d, 0, sizeof(d));
            d.info = sent[n_replied];
            while ((n = H->frame(st, PROTO_DOWN, down, &d)) > 0) {
                evbuffer_drain(down, (size_t)n);
                if ((d.flags & PROTO_END) && !(d.flags & PROTO_INTERIM))
                    break;
            }
            if (n < 0)
                out->error = 1;
            if (n <= 0)
                break;
            n_replied++;
            out->replies++;
            progress = true;
        }
    }
    out->mode = H->mode(st);
    out->held = evbuffer_get_length(up) + (len - fed);
    evbuffer_free(up);
    evbuffer_free(down);
    framer_free(H, st);
}

Test(http, upgrades_follow_the_reply_or_the_proxys_answer_at_every_split)
{
    for (size_t i = 0; i < sizeof(upgrade_cases) / sizeof(*upgrade_cases); i++) {
        const struct upgrade_case *c = &upgrade_cases[i];
        size_t len = strlen(c->client);
        int replies = 0;

        while (replies < 4 && c->replies[replies] != NULL)
            replies++;
        for (size_t cut = 0; cut < len; cut++) {
            struct conversation got;
            if (cut == 0)
                converse(c, 0, 1, &got);
            else
                converse(c, cut, 0, &got);
            cr_assert_eq(got.error, 0, "%s (cut %zu): malformed", c->name, cut);
            cr_assert_eq(got.requests, c->requests, "%s (cut %zu): %d requests",
                         c->name, cut, got.requests);
            cr_assert_eq(got.replies, replies, "%s (cut %zu): %d replies", c->name, cut,
                         got.replies);
            cr_assert_eq(got.mode, c->mode, "%s (cut %zu): mode %d", c->name, cut,
                         got.mode);
            cr_assert_eq(got.held, c->held, "%s (cut %zu): %zu bytes held", c->name, cut,
                         got.held);
        }
    }
}

Test(http, garbage_is_refused)
{
    struct frames f;
    void *st = new_state();

    static const char tls[] = "\x16\x03\x01\x02\x00 not http\r\n\r\n";

    frame_all(H, st, PROTO_UP, tls, sizeof(tls) - 1, 0, 64, NULL, &f);
    cr_assert(f.error);
    framer_free(H, st);
}

Test(http, overwrite_host_header_puts_the_backend_in_host)
{
    void *st = calloc(1, H->state_size);
    union opt_val v[OPT_MAX];
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    const char req[] = "GET / HTTP/1.1\r\nHost: public.example\r\nAccept: */*\r\n\r\n";
    char out[256] = { 0 };
    size_t total = 0;
    ssize_t n;

    opt_defaults(H->opts, v);
    v[0].b = true;
    H->init(st, H, v, "backend.internal:8080");
    evbuffer_add(in, req, strlen(req));
    while ((n = H->frame(st, PROTO_UP, in, &u)) > 0) {
        evbuffer_remove(in, out + total, (size_t)n);
        total += (size_t)n;
        if (u.flags & PROTO_END)
            break;
    }
    cr_assert_str_eq(out, "GET / HTTP/1.1\r\nHost: backend.internal:8080\r\nAccept: */*\r\n\r\n");
    evbuffer_free(in);
    framer_free(H, st);
}

Test(http, the_error_is_a_complete_response)
{
    void *st = new_state();
    struct evbuffer *out = evbuffer_new();
    struct proto_error e = { .status = "503" };
    struct proto_unit req = { .info = HTTP_GET | 1u << 8 | 1u << 12 | 1u << 16 };
    bool close = true;
    struct rng r;
    char buf[512] = { 0 };

    rng_seed(&r, 1);
    H->error_reply(st, &e, &req, &r, out, &close);
    evbuffer_remove(out, buf, sizeof(buf) - 1);
    cr_assert(!close);
    cr_assert_str_eq(buf, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                          "Content-Length: 19\r\n\r\nService Unavailable");
    req.info = HTTP_HEAD | 1u << 8; /* HTTP/1.0, not keep-alive */
    memset(buf, 0, sizeof(buf));
    H->error_reply(st, &e, &req, &r, out, &close);
    evbuffer_remove(out, buf, sizeof(buf) - 1);
    cr_assert(close);
    cr_assert_str_eq(buf, "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                          "Content-Length: 19\r\nConnection: close\r\n\r\n");
    evbuffer_free(out);
    framer_free(H, st);
}

/* The body of an error is the message exactly as given (no newline added,
 * line breaks kept), the reason phrase when there is none, and
 * Content-Length counts it. */
Test(http, the_error_body_is_the_message_or_the_reason_phrase)
{
    static const struct {
        const char *status, *message, *body;
    } cases[] = {
        { "503", "", "Service Unavailable" },
        { "500", NULL, "Internal Server Error" },
        { "429", "slow down", "slow down" },
        { "502", "two\r\nlines\n", "two\r\nlines\n" },
        { "418", "", "Client Error" },
        { "599", "", "Server Error" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        void *st = new_state();
        struct evbuffer *out = evbuffer_new();
        struct proto_error e = { .status = cases[i].status, .message = cases[i].message };
        struct proto_unit req = { .info = HTTP_GET | 1u << 8 | 1u << 12 | 1u << 16 };
        bool close;
        struct rng r;
        char want[256];
        size_t len;
        const char *got;

        rng_seed(&r, 1);
        H->error_reply(st, &e, &req, &r, out, &close);
        len = evbuffer_get_length(out);
        got = (const char *)evbuffer_pullup(out, -1);
        snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(cases[i].body), cases[i].body);
        cr_assert_geq(len, strlen(want), "case %zu", i);
        cr_assert_eq(memcmp(got + len - strlen(want), want, strlen(want)), 0,
                     "case %zu: %.*s", i, (int)len, got);
        cr_assert_eq(memcmp(got, "HTTP/1.1 ", 9), 0);
        cr_assert_eq(strncmp(got + 9, cases[i].status, 3), 0, "case %zu", i);
        evbuffer_free(out);
        framer_free(H, st);
    }
}

/* parts(): the method, the target and the headers of a request's head,
 * values trimmed of their blanks, up to the blank line. Every prefix of a
 * head names a part of what the whole names. */
Test(http, names_the_method_target_and_headers_of_a_request)
{
    static const struct {
        const char *in;
        struct parts_want want;
    } cases[] = {
        { "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\n"
          "Accept:  \t text/html \t\r\n\r\n",
          { .method = "GET", .path = "/a?b=1", .nheaders = 3,
            .headers = { { "Host", "example.com" }, { "X-Empty", "" },
                         { "Accept", "text/html" } } } },
        { "POST /x HTTP/1.0\nContent-Length: 5\n\nhello: body",
          { .method = "POST", .path = "/x", .nheaders = 1,
            .headers = { { "Content-Length", "5" } } } },
        { "\r\n\r\nGET / HTTP/1.1\r\nA: b\r\n\r\n",
          { .method = "GET", .path = "/", .nheaders = 1, .headers = { { "A", "b" } } } },
        /* a folded line and a line without a colon are skipped */
        { "GET / HTTP/1.1\r\nA: b\r\n c\r\nbogus\r\n: v\r\nD:e:f\r\n\r\n",
          { .method = "GET", .path = "/", .nheaders = 2,
            .headers = { { "A", "b" }, { "D", "e:f" } } } },
        { "GET / HTTP/1.1\r\n\r\nA: b\r\n\r\n", { .method = "GET", .path = "/" } },
        { "OPTIONS * HTTP/1.1\r\nHost: h", { .method = "OPTIONS", .path = "*" } },
        { "CONNECT host:443 HTTP/1.1\r\n", { .method = "CONNECT", .path = "host:443" } },
        { "GET /long/pa", { .method = "GET" } },
        { "GET", { 0 } },
        { "\r\n", { 0 } },
        { "GET\r\n", { 0 } },
    };
    struct proto_parts pp;
    struct proto_unit u = { 0 };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        parts_every_prefix(H, &u, cases[i].in, strlen(cases[i].in), false, &pp);
        parts_expect(&pp, &cases[i].want, cases[i].in);
    }
}

Test(http, keeps_thirty_two_headers_of_a_longer_head)
{
    char in[2048];
    size_t len = (size_t)sprintf(in, "GET / HTTP/1.1\r\n");
    struct proto_parts pp;
    struct proto_unit u = { 0 };

    for (int i = 0; i < 40; i++)
        len += (size_t)sprintf(in + len, "H%02d: %d\r\n", i, i);
    len += (size_t)sprintf(in + len, "\r\n");
    parts_every_prefix(H, &u, in, len, false, &pp);
    cr_assert_eq(pp.nheaders, PROTO_HEADERS_MAX);
    cr_assert(piece_is(pp.headers[31][0], "H31"));
    cr_assert(piece_is(pp.headers[31][1], "31"));
}

/* With overwrite_host_header the head step's bytes are the rewritten ones. */
Test(http, the_head_step_of_a_request_names_its_rewritten_host)
{
    union opt_val v[OPT_MAX];
    void *st = calloc(1, H->state_size);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    struct proto_parts pp = { 0 };
    const char req[] = "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    ssize_t n;

    opt_defaults(H->opts, v);
    v[0].b = true; /* overwrite_host_header */
    H->init(st, H, v, "backend.example:8080");
    evbuffer_add(in, req, sizeof(req) - 1 - 3);
    n = H->frame(st, PROTO_UP, in, &u);
    cr_assert(n > 0 && (u.flags & PROTO_HEAD));
    H->parts(evbuffer_pullup(in, n), (size_t)n, &u, &pp);
    cr_assert(piece_is(pp.method, "PUT"));
    cr_assert(piece_is(pp.path, "/f"));
    cr_assert_eq(pp.nheaders, 2);
    cr_assert(piece_is(pp.headers[0][1], "backend.example:8080"));
    evbuffer_free(in);
    opt_free(H->opts, v);
    framer_free(H, st);
}

/* The head step of a reply tells where the head ends (slow_body sends the
 * head at once and paces the rest), however the bytes come; 0 (all of
 * the step is head) after a HEAD request. */
Test(http, a_replys_head_step_tells_where_its_head_ends_at_every_split)
{
    static const struct {
        const char *rep;
        int method;
        size_t head;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", HTTP_GET, 38 },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "3\r\nabc\r\n0\r\n\r\n", HTTP_GET, 47 },
        { "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", HTTP_GET, 35 },
        { "HTTP/1.1 204 No Content\r\n\r\n", HTTP_GET, 27 },
        { "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", HTTP_HEAD, 0 },
    };

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t len = strlen(cases[c].rep);
        for (size_t cut = 1; cut <= len; cut++) {
            void *st = new_state();
            struct evbuffer *in = evbuffer_new();
            struct proto_unit u;
            size_t head = (size_t)-1, total = 0;
            bool ended = false;

            memset(&u, 0, sizeof(u));
            u.info = (uint32_t)cases[c].method | 1u << 8 | 1u << 12;
            for (int part = 0; part < 2 && !ended; part++) {
                ssize_t n;
                evbuffer_add(in, cases[c].rep + (part ? cut : 0),
                             part ? len - cut : cut);
                while (!ended && (n = H->frame(st, PROTO_DOWN, in, &u)) > 0) {
                    if (head == (size_t)-1)
                        head = u.head_len;
                    evbuffer_drain(in, (size_t)n);
                    total += (size_t)n;
                    ended = (u.flags & PROTO_END) != 0;
                }
            }
            cr_assert(ended, "case %zu, cut %zu", c, cut);
            cr_assert_eq(total, len);
            cr_assert_eq(head, cases[c].head, "case %zu, cut %zu: %zu", c,
                         cut, head);
            evbuffer_free(in);
            framer_free(H, st);
        }
    }
}
