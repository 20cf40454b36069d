/*
 * HTTP faults (WireMock's list): behaviors of --protocol http proxies only
 * (behav_ops.proto; other proxies refuse them where they are chosen).
 *
 *   empty_response     the request is read, not forwarded; nothing is sent
 *                      back and the client is closed
 *   malformed_chunk    the request is not forwarded; the proxy answers a
 *                      200 with Transfer-Encoding: chunked whose second
 *                      chunk is longer than its size line says, then closes
 *   random_then_close  the request is not forwarded; the proxy answers
 *                      1000 random bytes (from the connection's seeded
 *                      generator), then closes
 *   slow_body          the request is forwarded; the reply's head goes at
 *                      once, its body at `rate` bytes/s (net/pipe.h pacing)
 *   bad_length         the request is not forwarded; the proxy answers a
 *                      200 whose Content-Length says 1000 bytes, sends
 *                      fewer, then closes
 *
 * Each answer is a verdict's answer/answer_close (the session queues it in
 * the request's turn, behind the replies still due, as any error): no
 * machinery of their own.
 */
#include "behav/behav.h"

enum { SLOW_RATE };

static const struct opt_decl no_opts[] = { { 0 } };
static const struct opt_decl slow_opts[] = {
    [SLOW_RATE] = { "rate", OPT_INT, "1000",
                    "Bytes per second of the reply's body", 1, 1e9 },
    { 0 },
};

/* A chunked body whose second chunk says 5 bytes and carries 7: the CRLF
 * that must end the chunk is not there. */
static const char malformed_chunk[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "6\r\nhello \r\n"
    "5\r\nworld!!\r\n";

/* 1000 bytes announced, 49 sent. */
static const char bad_length[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 1000\r\n"
    "\r\n"
    "this body is shorter than its Content-Length says";

/* The proxy answers with bytes (len of them) and closes; the request is
 * not forwarded. */
static void answer_and_close(struct behav_verdict *v, const char *bytes,
                             size_t len)
{
    v->req = BEHAV_ERROR;
    v->answer = bytes;
    v->answer_len = (uint32_t)len;
    v->answer_close = true;
}

static void empty_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                         struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    answer_and_close(v, "", 0);
}

static void malformed_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                             struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    answer_and_close(v, malformed_chunk, sizeof(malformed_chunk) - 1);
}

static void random_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                          struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    v->req = BEHAV_ERROR;
    v->garbage = true; /* drawn by the session, from the connection's rng */
    v->answer_close = true;
}

static void slow_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                        struct behav_verdict *v)
{
    (void)ctx;
    v->rep = BEHAV_PACE;
    v->rep_rate = (uint32_t)b->vals[SLOW_RATE].i; /* at most 1e9 */
}

static void bad_length_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                              struct behav_verdict *v)
{
    (void)b;
    (void)ctx;
    answer_and_close(v, bad_length, sizeof(bad_length) - 1);
}

const struct behav_ops behav_empty_response = {
    .name = "empty_response",
    .help = "http: reads the request and closes without a byte of reply "
            "(curl: Empty reply from server).",
    .opts = no_opts,
    .decide = empty_decide,
    .proto = "http",
};

const struct behav_ops behav_malformed_chunk = {
    .name = "malformed_chunk",
    .help = "http: answers a 200 whose chunked body is malformed, then "
            "closes.",
    .opts = no_opts,
    .decide = malformed_decide,
    .proto = "http",
};

const struct behav_ops behav_random_then_close = {
    .name = "random_then_close",
    .help = "http: answers 1000 random bytes, then closes.",
    .opts = no_opts,
    .decide = random_decide,
    .proto = "http",
};

const struct behav_ops behav_slow_body = {
    .name = "slow_body",
    .help = "http: forwards the request; the reply's head comes at once, "
            "its body at `rate` bytes/s.",
    .opts = slow_opts,
    .decide = slow_decide,
    .proto = "http",
};

const struct behav_ops behav_bad_length = {
    .name = "bad_length",
    .help = "http: answers a 200 whose Content-Length (1000) is more than "
            "the body sent, then closes.",
    .opts = no_opts,
    .decide = bad_length_decide,
    .proto = "http",
};
