/* The http framer: requests and responses split anywhere. */
#include "framer.h"

#include <http_parser.h>

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

Test(http, a_101_turns_the_connection_into_a_tunnel)
{
    void *st = new_state();
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    const char req[] = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    const char rep[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                       "Upgrade: websocket\r\n\r\n";
    ssize_t n, total = 0;

    evbuffer_add(in, req, strlen(req));
    evbuffer_add(in, "\x81\x01x", 3); /* a frame of the new protocol */
    while ((n = H->frame(st, PROTO_UP, in, &u)) > 0) {
        evbuffer_drain(in, (size_t)n);
        total += n;
        if (u.flags & PROTO_END)
            break;
    }
    cr_assert_eq(total, (ssize_t)strlen(req));
    cr_assert_eq(H->frame(st, PROTO_UP, in, &u), 0, "the client waits for the reply");
    evbuffer_drain(in, 3);
    memset(&u, 0, sizeof(u));
    u.info = HTTP_GET | 1u << 8 | 1u << 12;
    evbuffer_add(in, rep, strlen(rep));
    total = 0;
    while ((n = H->frame(st, PROTO_DOWN, in, &u)) > 0) {
        evbuffer_drain(in, (size_t)n);
        total += n;
        if (u.flags & PROTO_END)
            break;
    }
    cr_assert_eq(total, (ssize_t)strlen(rep));
    cr_assert_eq(H->mode(st), PROTO_TUNNEL);
    evbuffer_free(in);
    framer_free(H, st);
}

Test(http, a_refused_upgrade_keeps_framing)
{
    void *st = new_state();
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    const char req[] = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    const char rep[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno";
    const char next[] = "GET /again HTTP/1.1\r\n\r\n";
    ssize_t n;

    evbuffer_add(in, req, strlen(req));
    while ((n = H->frame(st, PROTO_UP, in, &u)) > 0 && !(u.flags & PROTO_END))
        evbuffer_drain(in, (size_t)n);
    evbuffer_drain(in, (size_t)n);
    memset(&u, 0, sizeof(u));
    u.info = HTTP_GET | 1u << 8 | 1u << 12;
    evbuffer_add(in, rep, strlen(rep));
    while ((n = H->frame(st, PROTO_DOWN, in, &u)) > 0 && !(u.flags & PROTO_END))
        evbuffer_drain(in, (size_t)n);
    evbuffer_drain(in, (size_t)n);
    cr_assert_eq(H->mode(st), PROTO_FRAMED);
    memset(&u, 0, sizeof(u));
    evbuffer_add(in, next, strlen(next));
    n = H->frame(st, PROTO_UP, in, &u);
    cr_assert(n > 0);
    cr_assert(u.flags & PROTO_HEAD);
    evbuffer_free(in);
    framer_free(H, st);
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
    H->init(st, v, "backend.internal:8080");
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
                          "Content-Length: 24\r\n\r\n503 Service Unavailable\n");
    req.info = HTTP_HEAD | 1u << 8; /* HTTP/1.0, not keep-alive */
    memset(buf, 0, sizeof(buf));
    H->error_reply(st, &e, &req, &r, out, &close);
    evbuffer_remove(out, buf, sizeof(buf) - 1);
    cr_assert(close);
    cr_assert_str_eq(buf, "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                          "Content-Length: 24\r\nConnection: close\r\n\r\n");
    evbuffer_free(out);
    framer_free(H, st);
}
