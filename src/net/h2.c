/*
 * h2: an HTTP/2 connection relayed stream by stream (--protocol http2).
 *
 *            front (nghttp2 server)        back (nghttp2 client)
 *  client ──▶ frames ─▶ stream ─ draw ─┬─▶ submit_request ──▶ frames ──▶ backend
 *         ◀── frames ◀─ submit_response ◀── frames ◀─────────────────────┘
 *                        │ (or the proxy's own answer: error)
 *
 * HTTP/2 multiplexes requests on one connection, so it is not a framer
 * (proto.h) but a relay beside the framed path: the session reads both
 * sockets as usual and hands every byte to h2_pump(), which feeds them to
 * two nghttp2 sessions, one that plays the server toward the client and
 * one that plays the client toward the backend (h2c with prior knowledge,
 * or h2 through ALPN when the proxy originates TLS). nghttp2 parses
 * frames, does HPACK and keeps the flow-control windows; nothing here
 * parses HTTP/2 bytes. A client starts with the preface (prior knowledge,
 * or h2 through ALPN when the proxy terminates TLS), or with an HTTP/1.1
 * request that asks `Upgrade: h2c`: that head is read by proto/h2c.c
 * (over the http framer's parts(); both fuzzed), answered 101, and becomes stream 1
 * (nghttp2_session_upgrade2). A client that speaks HTTP/1 otherwise (no
 * Upgrade, a request with a body, a bad HTTP2-Settings) is answered 505
 * or 400 in HTTP/1.1 and the connection ends (refuse_http1).
 *
 * Each client stream is one request. Its head (the HEADERS frame, with
 * CONTINUATIONs) is written as an HTTP/1-style head, "METHOD PATH
 * HTTP/2" then "name: value" lines, which the http framer's parts() reads,
 * so targets (`match method=POST,path=...`), custom behaviors and the
 * journal see it as they see an HTTP/1 request; the verdict is drawn once
 * per stream with session_draw(). Then:
 *   pass   the stream is opened on the backend (streams map 1:1, with
 *          their own ids on each side), its body, trailers and the reply's
 *          head, 1xx heads, body and trailers are relayed as they come;
 *   hold   (delay) the stream is opened on the backend that much later;
 *          its body waits meanwhile, within the stream's window. A reply
 *          delay (before=false) holds the reply's head instead, and its
 *          body gathers behind it (reply_release);
 *   error  the proxy answers the stream itself with the error's `status`
 *          (default 503) and a one-line body; the backend never sees it.
 *          On --protocol grpc (http2 with gRPC's error): HTTP 200 and, in
 *          the same HEADERS frame (gRPC's Trailers-Only reply),
 *          grpc-status `code` (default 14, UNAVAILABLE) and grpc-message;
 *   abort  the stream is opened on the backend, and reset both ways
 *          (RST_STREAM with abort's `code`, default INTERNAL_ERROR, to
 *          the client, CANCEL to the backend) when the reply's head
 *          comes;
 *   reset  the stream is reset (INTERNAL_ERROR) at once, never forwarded;
 *   hang   the stream is never answered nor forwarded; its body is
 *          acknowledged and dropped, so the connection's window stays open;
 *   close  (blackout) the stream is refused (RST_STREAM REFUSED_STREAM)
 *          and the client gets a GOAWAY whose last stream is the one before
 *          it: streams it already had go on, it opens no more, and the
 *          connection ends when they are done.
 * Other streams on the connection go on whatever one stream gets.
 *
 * The connection ends through the session's half-close path: when the
 * front session has nothing left to read or write (a GOAWAY either way
 * and no stream left, or a protocol error), both directions are ended
 * (pipe_on_eof) and the session closes once its outputs are written. When
 * the backend ends its side or breaks HTTP/2 (back_lost), the client's
 * streams it did not finish are reset, and the client gets a GOAWAY. A
 * request head past H2_HEADERS_MAX fields or H2_HEAD_BYTES is answered
 * 431 without a draw.
 *
 * Frames leave through the session's pipes (pipe_emit), so byte toxics
 * (latency, bandwidth, slicer, ...) act on an HTTP/2 connection as on
 * any other. Backpressure: a session's frames are taken (mem_send) only
 * while its pipe buffers under PIPE_CAP; the pipe's drain pumps again
 * (session_on_pipe_drained).
 *
 * Flow control: both sessions run without automatic WINDOW_UPDATEs; a
 * stream's DATA is acknowledged to its sender (nghttp2_session_consume)
 * only when the other side's session has taken it for sending. So what
 * the proxy buffers is bounded by the windows it gives each side:
 * H2_WINDOW (PIPE_CAP, 256 KiB) per stream and H2_CONN_WINDOW (1 MiB) per
 * connection and direction, plus what the pipes hold (PIPE_CAP each). The
 * connection's is four streams' worth, so that a stream whose body waits
 * (a held request or reply, a slow reader of one stream) cannot take the
 * whole connection's window and stall the others.
 *
 * Ownership: struct h2_conn is the session's pstate (made by the session
 * at the first bytes, freed by h2_deinit at its close); each struct
 * h2_stream is the user data of its stream on both nghttp2 sessions and
 * is freed when it is closed on both (or never opened on the backend).
 */
#include "net/h2.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "core/log.h"
#include "core/vassert.h"
#include "core/script.h"
#include "net/proxy.h"
#include "net/session.h"
#include "proto/h2c.h"
#include "proto/proto.h"

#define H2_STREAMS 100          /* concurrent streams the client may open */
#define H2_WINDOW PIPE_CAP      /* window each side gets per stream: what
                                   the proxy may buffer of a stream's
                                   direction, as a pipe may */
#define H2_CONN_WINDOW (4 * H2_WINDOW) /* ... per connection and direction */
#define H2_HEADERS_MAX 128      /* header fields of one head */
#define H2_HEAD_BYTES (64u << 10) /* bytes of one head's names and values */
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/* Where a head's names and values are copied: blocks of at least
 * H2_HEAD_BLOCK bytes, chained (one allocation for a typical head's
 * fields, not one per field). */
#define H2_HEAD_BLOCK 488
struct h2_blk {
    struct h2_blk *next;
    size_t used, cap;
    uint8_t data[];
};

/* One head's fields (request, reply, trailers): copies, owned. */
struct h2_head {
    nghttp2_nv *nv;
    size_t n, cap;          /* fields, and room in nv */
    size_t bytes;           /* of names and values */
    struct h2_blk *blk;     /* their copies, newest block first */
};

/* A stream's life, one state at a time (h2_stream.state). */
enum h2_state {
    H2S_HEAD,      /* the request's head is being read */
    H2S_HELD,      /* drawn hold: opened on the backend when due */
    H2S_FORWARDED, /* open on the backend: relayed both ways */
    H2S_ANSWERED,  /* the proxy answers it: its request is dropped */
    H2S_HUNG,      /* hang: never answered; its request is dropped */
    H2S_RESET,     /* reset by the proxy */
};

struct h2_conn;

struct h2_stream {
    LIST_ENTRY(h2_stream) link;
    struct h2_conn *c;
    enum h2_state state;
    int32_t fid;              /* its id toward the client */
    int32_t bid;              /* its id toward the backend, 0: none */
    bool front_open;          /* not closed yet on the front session */
    bool back_open;           /* ... on the back session */
    bool req_end;             /* the client's side ended (END_STREAM) */
    bool resp_end;            /* the backend's side ended */
    bool abort;               /* abort: reset both ways at the reply */
    bool head_too_big;        /* its request head passed H2_HEADERS_MAX or
                                 H2_HEAD_BYTES: answered 431 */
    uint32_t abort_code;      /* abort: the RST_STREAM code the client
                                 gets */
    bool resp_ours;           /* resp_body is the proxy's answer, not the
                                 backend's (nothing to acknowledge) */
    struct h2_head req, req_trailers, resp, resp_trailers;
    struct evbuffer *req_body;  /* DATA from the client, not yet sent */
    struct evbuffer *resp_body; /* DATA from the backend (or the proxy's
                                   answer), not yet sent */
    struct event *hold_ev;    /* H2S_HELD, or reply_held: when it is due
                                 (made then) */
    double reply_delay;       /* delay with before=false: the reply's head
                                 is held that long when it comes */
    bool reply_held;          /* ... and is being held now */
    bool reply_head_end;      /* that head ended the stream */
    bool resp_final;          /* the reply's final (non-1xx) head came:
                                 a HEADERS after it is its trailers */
};

LIST_HEAD(h2_stream_list, h2_stream);

struct h2_conn {
    struct session *s;
    nghttp2_session *front; /* server toward the client */
    nghttp2_session *back;  /* client toward the backend */
    struct h2_stream_list streams;
    struct evbuffer *scratch; /* frames on their way into a pipe */
    bool failed;            /* a protocol error closed the session */
    bool ended;             /* both directions were ended (pipe_on_eof) */
    bool back_gone;         /* the backend ended: the client was told */
    bool back_broke;        /* the backend broke HTTP/2 (or its session
                               failed): its streams are reset */
    bool refused;           /* the client was answered in HTTP/1.1 (it
                               does not speak HTTP/2): the connection ends */
    bool grpc;              /* --protocol grpc: errors in gRPC's words */
    bool client_started;    /* the client's preface (or its h2c upgrade)
                               was seen: the front session may speak */
    bool upgrade_wait;      /* upgraded: nothing follows the 101 until the
                               client's SETTINGS come (a client such as
                               curl keeps only 32 KiB that arrive with the
                               101, and the reply may be larger) */
};

/* Heads. */

static void head_clear(struct h2_head *h)
{
    while (h->blk != NULL) {
        struct h2_blk *next = h->blk->next;
        free(h->blk);
        h->blk = next;
    }
    free(h->nv);
    memset(h, 0, sizeof(*h));
}

/* Appends a copy of one field. Returns 0, or -ENOSPC past the caps, or
 * -ENOMEM. */
static int head_add(struct h2_head *h, const uint8_t *name, size_t namelen,
                    const uint8_t *value, size_t valuelen)
{
    nghttp2_nv *nv;
    uint8_t *block;
    size_t need = namelen + valuelen + 2;

    if (h->n >= H2_HEADERS_MAX ||
        h->bytes + namelen + valuelen > H2_HEAD_BYTES)
        return -ENOSPC;
    if (h->n == h->cap) {
        size_t cap = h->cap == 0 ? 8 : h->cap * 2;
        nv = realloc(h->nv, cap * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        h->nv = nv;
        h->cap = cap;
    }
    if (h->blk == NULL || h->blk->cap - h->blk->used < need) {
        size_t cap = need > H2_HEAD_BLOCK ? need : H2_HEAD_BLOCK;
        struct h2_blk *b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return -ENOMEM;
        b->next = h->blk;
        b->used = 0;
        b->cap = cap;
        h->blk = b;
    }
    block = h->blk->data + h->blk->used;
    h->blk->used += need;
    memcpy(block, name, namelen);
    block[namelen] = '\0';
    memcpy(block + namelen + 1, value, valuelen);
    block[namelen + 1 + valuelen] = '\0';
    nv = &h->nv[h->n++];
    nv->name = block;
    nv->namelen = namelen;
    nv->value = block + namelen + 1;
    nv->valuelen = valuelen;
    nv->flags = NGHTTP2_NV_FLAG_NONE;
    h->bytes += namelen + valuelen;
    return 0;
}

/* The value of field name in h, or NULL. */
static const nghttp2_nv *head_find(const struct h2_head *h, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < h->n; i++)
        if (h->nv[i].namelen == len && memcmp(h->nv[i].name, name, len) == 0)
            return &h->nv[i];
    return NULL;
}

/* Streams. */

/* Moves st to state next: the one place a stream's state changes, and
 * where the transitions that may happen are written. A stream is decided
 * once (from H2S_HEAD), a held one is forwarded or reset, and any may be
 * reset (a reset one again: by the client and the backend both). */
static void stream_advance(struct h2_stream *st, enum h2_state next)
{
    switch (next) {
    case H2S_HEAD:
        VASSERT(!"a stream is not read twice");
        break;
    case H2S_HELD:
    case H2S_ANSWERED:
    case H2S_HUNG:
        VASSERT(st->state == H2S_HEAD);
        break;
    case H2S_FORWARDED:
        VASSERT(st->state == H2S_HEAD || st->state == H2S_HELD);
        break;
    case H2S_RESET:
        break;
    }
    st->state = next;
}

static struct h2_stream *stream_create(struct h2_conn *c, int32_t fid)
{
    struct h2_stream *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    st->req_body = evbuffer_new();
    st->resp_body = evbuffer_new();
    if (st->req_body == NULL || st->resp_body == NULL) {
        if (st->req_body != NULL)
            evbuffer_free(st->req_body);
        if (st->resp_body != NULL)
            evbuffer_free(st->resp_body);
        free(st);
        return NULL;
    }
    st->c = c;
    st->fid = fid;
    st->front_open = true;
    st->state = H2S_HEAD;
    LIST_INSERT_HEAD(&c->streams, st, link);
    return st;
}

static void stream_destroy(struct h2_stream *st)
{
    struct h2_conn *c = st->c;
    size_t req_left = evbuffer_get_length(st->req_body);
    size_t resp_left = evbuffer_get_length(st->resp_body);

    /* what was received and will never be sent on still counts against
     * the connection's window: give it back */
    if (c->front != NULL && req_left > 0)
        nghttp2_session_consume_connection(c->front, req_left);
    if (c->back != NULL && resp_left > 0 && !st->resp_ours)
        nghttp2_session_consume_connection(c->back, resp_left);
    LIST_REMOVE(st, link);
    if (st->hold_ev != NULL)
        event_free(st->hold_ev);
    head_clear(&st->req);
    head_clear(&st->req_trailers);
    head_clear(&st->resp);
    head_clear(&st->resp_trailers);
    evbuffer_free(st->req_body);
    evbuffer_free(st->resp_body);
    free(st);
}

/* Frees st once neither session knows it any more. */
static void stream_maybe_destroy(struct h2_stream *st)
{
    if (!st->front_open && !st->back_open)
        stream_destroy(st);
}

/* Resets st toward the client with code (and toward the backend). */
static void stream_reset(struct h2_stream *st, uint32_t code)
{
    struct h2_conn *c = st->c;

    stream_advance(st, H2S_RESET);
    if (st->front_open)
        nghttp2_submit_rst_stream(c->front, NGHTTP2_FLAG_NONE, st->fid, code);
    if (st->back_open)
        nghttp2_submit_rst_stream(c->back, NGHTTP2_FLAG_NONE, st->bid,
                                  NGHTTP2_CANCEL);
}

/* Bodies: one read callback for both directions. A stream's body toward
 * the backend is its request's, toward the client its reply's. What is
 * taken is acknowledged to the side it came from. */
static ssize_t body_read(nghttp2_session *session, int32_t id, uint8_t *buf,
                         size_t length, uint32_t *data_flags,
                         nghttp2_data_source *source, void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *st = source->ptr;
    bool to_client = session == c->front;
    struct evbuffer *body = to_client ? st->resp_body : st->req_body;
    bool end = to_client ? st->resp_end : st->req_end;
    struct h2_head *trailers = to_client ? &st->resp_trailers
                                         : &st->req_trailers;
    int n = evbuffer_remove(body, buf, length);

    (void)id;
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (n > 0 && !(to_client && st->resp_ours)) {
        /* acknowledged to the side it came from; a stream closed there
         * still owes its connection's window */
        nghttp2_session *from = to_client ? c->back : c->front;
        bool open = to_client ? st->back_open : st->front_open;
        if (open)
            nghttp2_session_consume(from, to_client ? st->bid : st->fid,
                                    (size_t)n);
        else
            nghttp2_session_consume_connection(from, (size_t)n);
    }
    if (evbuffer_get_length(body) == 0 && end) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (trailers->n > 0) {
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(session, id, trailers->nv, trailers->n);
        }
        return n;
    }
    if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return n;
}

/* The request as matchers read it: "METHOD PATH HTTP/2", then a "host"
 * line from :authority and the regular fields, then a blank line. */
static void request_text(const struct h2_stream *st, struct evbuffer *out)
{
    const nghttp2_nv *m = head_find(&st->req, ":method");
    const nghttp2_nv *p = head_find(&st->req, ":path");
    const nghttp2_nv *a = head_find(&st->req, ":authority");

    evbuffer_add(out, m != NULL ? m->value : (uint8_t *)"-",
                 m != NULL ? m->valuelen : 1);
    evbuffer_add(out, " ", 1);
    evbuffer_add(out, p != NULL ? p->value : (uint8_t *)"/",
                 p != NULL ? p->valuelen : 1);
    evbuffer_add_printf(out, " HTTP/2\r\n");
    if (a != NULL) {
        evbuffer_add_printf(out, "host: ");
        evbuffer_add(out, a->value, a->valuelen);
        evbuffer_add(out, "\r\n", 2);
    }
    for (size_t i = 0; i < st->req.n; i++) {
        const nghttp2_nv *nv = &st->req.nv[i];
        if (nv->namelen > 0 && nv->name[0] == ':')
            continue;
        evbuffer_add(out, nv->name, nv->namelen);
        evbuffer_add(out, ": ", 2);
        evbuffer_add(out, nv->value, nv->valuelen);
        evbuffer_add(out, "\r\n", 2);
    }
    evbuffer_add(out, "\r\n", 2);
}

/* Opens st on the backend with its head; its body follows as it comes. */
static void stream_forward(struct h2_stream *st)
{
    struct h2_conn *c = st->c;
    nghttp2_data_provider dp = { .source.ptr = st, .read_callback = body_read };
    bool bodiless = st->req_end && st->req_trailers.n == 0 &&
                    evbuffer_get_length(st->req_body) == 0;
    int32_t id;

    if (c->back_gone) { /* never sent: the client may retry it */
        stream_reset(st, NGHTTP2_REFUSED_STREAM);
        return;
    }
    id = nghttp2_submit_request(c->back, NULL, st->req.nv, st->req.n,
                                bodiless ? NULL : &dp, st);
    if (id < 0) {
        log_debug("session %llu: h2 stream %d: cannot open it on the "
                  "backend: %s", (unsigned long long)c->s->id, st->fid,
                  nghttp2_strerror(id));
        stream_reset(st, NGHTTP2_REFUSED_STREAM);
        return;
    }
    st->bid = id;
    st->back_open = true;
    stream_advance(st, H2S_FORWARDED);
}

/* The error behavior's default status list (the original's, for HTTP/1)
 * means, on http2, the default: 503 alone, as postgres reads the
 * default SQLSTATE as its own 53300. */
#define H2_STATUS_OPT_DEFAULT "500,501,502,503"

/* Draws one status from a list such as "500,503" (default 503). */
static int error_status(const char *list, struct rng *r)
{
    int codes[16], n = 0;
    const char *p = list != NULL && list[0] != '\0' &&
                            strcmp(list, H2_STATUS_OPT_DEFAULT) != 0
                        ? list : "503";

    while (*p != '\0' && n < 16) {
        char *end;
        long code = strtol(p, &end, 10);
        if (end == p)
            break;
        if (code >= 200 && code <= 599)
            codes[n++] = (int)code;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return n == 0 ? 503 : codes[rng_below(r, (uint64_t)n)];
}

/* gRPC's error reply: Trailers-Only (one HEADERS frame that ends the
 * stream) with grpc-status code and grpc-message msg, percent-encoded as
 * gRPC's spec asks (every byte outside 0x20-0x7e, and '%'). */
static int grpc_answer(struct h2_stream *st, long long code, const char *msg)
{
    char status[24], enc[3 * 256 + 1];
    size_t n = 0;

    snprintf(status, sizeof(status), "%lld", code > 0 ? code : 14);
    if (msg == NULL || msg[0] == '\0')
        msg = "vaurien: injected error";
    for (const unsigned char *p = (const unsigned char *)msg;
         *p != '\0' && n + 4 <= sizeof(enc); p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%')
            enc[n++] = (char)*p;
        else
            n += (size_t)snprintf(enc + n, 4, "%%%02X", *p);
    }
    enc[n] = '\0';
    nghttp2_nv nv[] = {
        { (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
          NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)"grpc-status", (uint8_t *)status, 11, strlen(status),
          NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)"grpc-message", (uint8_t *)enc, 12, n,
          NGHTTP2_NV_FLAG_NONE },
    };
    return nghttp2_submit_response(st->c->front, st->fid, nv, 4, NULL);
}

/* The proxy answers st itself with status and a one-line body msg (gRPC:
 * its Trailers-Only error, grpc-status gcode); what the client still
 * sends on it is acknowledged and dropped. Its words for the journal go
 * to said (may be NULL): "503 message", or "grpc-status 14 message". */
static void stream_reply(struct h2_stream *st, int status, long long gcode,
                         const char *msg, struct evbuffer *said)
{
    struct h2_conn *c = st->c;
    char code[8], len[24];
    nghttp2_data_provider dp = { .source.ptr = st, .read_callback = body_read };
    int rv;

    if (evbuffer_get_length(st->req_body) > 0) { /* never sent on */
        nghttp2_session_consume(c->front, st->fid,
                                evbuffer_get_length(st->req_body));
        evbuffer_drain(st->req_body, evbuffer_get_length(st->req_body));
    }
    if (msg == NULL || msg[0] == '\0')
        msg = "vaurien: injected error";
    st->resp_ours = true;
    stream_advance(st, H2S_ANSWERED);
    st->resp_end = true;
    if (c->grpc) {
        if (said != NULL)
            evbuffer_add_printf(said, "grpc-status %lld %s",
                                gcode > 0 ? gcode : 14, msg);
        if (grpc_answer(st, gcode, msg) != 0)
            stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (said != NULL)
        evbuffer_add_printf(said, "%d %s", status, msg);
    evbuffer_add_printf(st->resp_body, "%s\n", msg);
    snprintf(code, sizeof(code), "%d", status);
    snprintf(len, sizeof(len), "%zu", evbuffer_get_length(st->resp_body));
    nghttp2_nv nv[] = {
        { (uint8_t *)":status", (uint8_t *)code, 7, strlen(code),
          NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10,
          NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)"content-length", (uint8_t *)len, 14, strlen(len),
          NGHTTP2_NV_FLAG_NONE },
    };
    rv = nghttp2_submit_response(c->front, st->fid, nv, 3, &dp);
    if (rv != 0)
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
}

/* The error behavior's answer: its status (drawn from its list), message
 * and gRPC code. */
static void stream_answer(struct h2_stream *st, const struct behav_verdict *v,
                          struct evbuffer *said)
{
    const char *msg = v->err != NULL ? v->err[BEHAV_ERR_MESSAGE].s : NULL;
    int status = error_status(v->err != NULL ? v->err[BEHAV_ERR_STATUS].s
                                             : NULL, &st->c->s->rng);

    stream_reply(st, status, v->err != NULL ? v->err[BEHAV_ERR_CODE].i : 0,
                 msg, said);
}

static void flush(struct h2_conn *c);

static void reply_release(struct h2_stream *st);

/* A held request is due (it goes to the backend), or a held reply's head
 * (it goes to the client). */
static void on_hold_due(evutil_socket_t fd, short what, void *arg)
{
    struct h2_stream *st = arg;
    struct h2_conn *c = st->c;

    (void)fd;
    (void)what;
    if (st->state == H2S_HELD)
        stream_forward(st);
    else if (st->reply_held)
        reply_release(st);
    else
        return;
    flush(c);
}

/* Arms st's timer secs from now. Returns 0, or -ENOMEM. */
static int stream_hold(struct h2_stream *st, double secs)
{
    struct timeval tv = { (time_t)secs,
                          (suseconds_t)((secs - (double)(time_t)secs) * 1e6) };

    if (st->hold_ev == NULL)
        st->hold_ev = evtimer_new(st->c->s->proxy->base, on_hold_due, st);
    if (st->hold_ev == NULL || evtimer_add(st->hold_ev, &tv) < 0)
        return -ENOMEM;
    return 0;
}

/* st's request head is complete: its verdict is drawn and carried out. */
static void stream_decide(struct h2_stream *st)
{
    struct h2_conn *c = st->c;
    struct session *s = c->s;
    struct proto_unit u = { .flags = PROTO_HEAD };
    struct behav_verdict v;
    struct session_drawn by;
    struct evbuffer *text, *said;
    double hold = 0;

    if (st->head_too_big) { /* as a server whose limits it passed */
        stream_reply(st, 431, 8 /* RESOURCE_EXHAUSTED */,
                     "vaurien: request header fields too large", NULL);
        return;
    }
    text = evbuffer_new();
    said = evbuffer_new();
    if (text == NULL || said == NULL) {
        if (text != NULL)
            evbuffer_free(text);
        if (said != NULL)
            evbuffer_free(said);
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (st->req_end)
        u.flags |= PROTO_END;
    request_text(st, text);
    session_draw(s, &v, text, evbuffer_get_length(text), &u, &by);
    if (v.req == BEHAV_ERROR)
        stream_answer(st, &v, said);
    session_journal(s, &by, &v, &u, text, evbuffer_get_length(text),
                    v.req == BEHAV_ERROR ? said : NULL);
    evbuffer_free(text);
    evbuffer_free(said);
    script_unref(v.hook); /* reply hooks are not run on http2 yet */
    v.hook = 0;
    log_debug("session %llu: h2 stream %d: %s (request %s, reply %s)",
              (unsigned long long)s->id, st->fid, v.by->name,
              behav_act_name(v.req), behav_act_name(v.rep));
    if (v.req == BEHAV_HOLD)
        hold += v.req_delay;
    if (v.rep == BEHAV_HOLD) /* the reply's head waits when it comes */
        st->reply_delay = v.rep_delay;
    switch (v.req) {
    case BEHAV_ABORT:
        st->abort = true;
        st->abort_code = v.err != NULL ? (uint32_t)v.err[BEHAV_ABORT_CODE].i
                                       : NGHTTP2_INTERNAL_ERROR;
        stream_forward(st);
        return;
    case BEHAV_PASS:
    case BEHAV_HOLD:
        if (hold <= 0) {
            stream_forward(st);
            return;
        }
        stream_advance(st, H2S_HELD);
        if (stream_hold(st, hold) < 0)
            stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    case BEHAV_ERROR: /* answered above */
        return;
    case BEHAV_HANG:
        stream_advance(st, H2S_HUNG); /* its body is acknowledged as it
                                         comes */
        return;
    case BEHAV_CLOSE:
        stream_reset(st, NGHTTP2_REFUSED_STREAM);
        nghttp2_submit_goaway(c->front, NGHTTP2_FLAG_NONE,
                              st->fid > 2 ? st->fid - 2 : 0,
                              NGHTTP2_NO_ERROR, NULL, 0);
        return;
    default: /* BEHAV_RESET, and what a custom behavior may say */
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
}

/* nghttp2 callbacks (user data: the h2_conn). */

static int on_begin_headers(nghttp2_session *session,
                            const nghttp2_frame *frame, void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *st;

    if (session != c->front || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    st = stream_create(c, frame->hd.stream_id);
    if (st == NULL)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *st =
        nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    struct h2_head *h;

    (void)flags;
    if (st == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (session == c->front)
        h = frame->headers.cat == NGHTTP2_HCAT_REQUEST ? &st->req
                                                      : &st->req_trailers;
    else /* after a 1xx head, nghttp2 calls the final one HCAT_HEADERS */
        h = !st->resp_final ? &st->resp : &st->resp_trailers;
    if (h == &st->req && st->head_too_big)
        return 0; /* the rest is not kept: answered 431 */
    int rv = head_add(h, name, namelen, value, valuelen);
    if (rv == -ENOSPC && h == &st->req) {
        st->head_too_big = true;
        return 0;
    }
    if (rv < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    return 0;
}

/* A reply's head came from the backend: 1xx heads go on as they are, the
 * final one opens the reply toward the client. */
static void reply_head(struct h2_conn *c, struct h2_stream *st, bool end)
{
    const nghttp2_nv *status = head_find(&st->resp, ":status");
    bool informational = status != NULL && status->valuelen == 3 &&
                         status->value[0] == '1';

    if (!informational)
        st->resp_final = true;
    if (st->state != H2S_FORWARDED || !st->front_open) {
        if (informational) /* the next head is read afresh */
            head_clear(&st->resp);
        return;
    }
    if (st->abort) {
        stream_reset(st, st->abort_code);
        return;
    }
    if (informational) {
        nghttp2_submit_headers(c->front, NGHTTP2_FLAG_NONE, st->fid, NULL,
                               st->resp.nv, st->resp.n, NULL);
        head_clear(&st->resp);
        return;
    }
    if (end)
        st->resp_end = true;
    st->reply_head_end = end;
    if (st->reply_delay > 0) { /* its body gathers meanwhile, within the
                                  stream's window */
        st->reply_held = true;
        if (stream_hold(st, st->reply_delay) < 0)
            stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    reply_release(st);
}

/* The reply's final head goes to the client; its body follows. */
static void reply_release(struct h2_stream *st)
{
    nghttp2_data_provider dp = { .source.ptr = st, .read_callback = body_read };

    st->reply_held = false;
    if (st->state != H2S_FORWARDED || !st->front_open)
        return;
    if (nghttp2_submit_response(st->c->front, st->fid, st->resp.nv, st->resp.n,
                                st->reply_head_end ? NULL : &dp) != 0)
        stream_reset(st, NGHTTP2_INTERNAL_ERROR);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *st;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    bool front = session == c->front;

    if (front && frame->hd.type == NGHTTP2_SETTINGS)
        c->upgrade_wait = false; /* the client's preface came */
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    if (front) {
        if (end)
            st->req_end = true;
        if (frame->hd.type == NGHTTP2_HEADERS &&
            frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            stream_decide(st);
            return 0;
        }
        if (st->state == H2S_FORWARDED && st->back_open)
            nghttp2_session_resume_data(c->back, st->bid);
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && !st->resp_final) {
        reply_head(c, st, end);
        return 0;
    }
    if (end)
        st->resp_end = true;
    if (st->front_open)
        nghttp2_session_resume_data(c->front, st->fid);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t id, const uint8_t *data, size_t len,
                         void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, id);

    (void)flags;
    if (st == NULL || st->state == H2S_ANSWERED || st->state == H2S_HUNG ||
        st->state == H2S_RESET) {
        nghttp2_session_consume(session, id, len); /* dropped */
        return 0;
    }
    if (session != c->front && st->state != H2S_FORWARDED) {
        nghttp2_session_consume(session, id, len); /* reset meanwhile */
        return 0;
    }
    if (session == c->front) {
        evbuffer_add(st->req_body, data, len);
        if (st->state == H2S_FORWARDED && st->back_open)
            nghttp2_session_resume_data(c->back, st->bid);
    } else {
        evbuffer_add(st->resp_body, data, len);
        if (st->front_open)
            nghttp2_session_resume_data(c->front, st->fid);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id,
                           uint32_t code, void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, id);

    if (st == NULL)
        return 0;
    if (session == c->front) {
        st->front_open = false;
        if (st->state == H2S_HELD) /* never to be forwarded */
            stream_advance(st, H2S_RESET);
        /* the client gave up on it (or it is done): so does the backend */
        if (st->back_open && (code != NGHTTP2_NO_ERROR || !st->resp_end))
            nghttp2_submit_rst_stream(c->back, NGHTTP2_FLAG_NONE, st->bid,
                                      NGHTTP2_CANCEL);
    } else {
        st->back_open = false;
        /* the backend reset it before its reply ended: so does the proxy */
        if (st->front_open && !st->resp_end)
            nghttp2_submit_rst_stream(c->front, NGHTTP2_FLAG_NONE, st->fid,
                                      code != NGHTTP2_NO_ERROR
                                          ? code : NGHTTP2_INTERNAL_ERROR);
    }
    stream_maybe_destroy(st);
    return 0;
}

/* The back session told the backend it broke the protocol (nghttp2
 * sends that GOAWAY itself): its streams are reset toward the client. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data)
{
    struct h2_conn *c = user_data;

    if (session == c->back && frame->hd.type == NGHTTP2_GOAWAY &&
        frame->goaway.error_code != NGHTTP2_NO_ERROR)
        c->back_broke = true;
    return 0;
}

/* The backend is gone (it ended, or broke HTTP/2): each stream it had
 * and did not finish is reset toward the client (INTERNAL_ERROR: it may
 * have been processed), each held one refused (it never was), and the
 * client gets a GOAWAY, with INTERNAL_ERROR when the backend broke the
 * protocol. A reply already whole still goes to the client. */
static void back_lost(struct h2_conn *c)
{
    struct h2_stream *st = LIST_FIRST(&c->streams);

    c->back_gone = true;
    if (c->back_broke)
        log_info("session %llu: http2: the backend broke the protocol: its "
                 "streams are reset", (unsigned long long)c->s->id);
    while (st != NULL) {
        struct h2_stream *next = LIST_NEXT(st, link);
        if (st->back_open) {
            /* the back session no longer calls back for it */
            nghttp2_session_set_stream_user_data(c->back, st->bid, NULL);
            st->back_open = false;
            if (st->front_open && !st->resp_end) {
                stream_advance(st, H2S_RESET);
                nghttp2_submit_rst_stream(c->front, NGHTTP2_FLAG_NONE,
                                          st->fid, NGHTTP2_INTERNAL_ERROR);
            }
            stream_maybe_destroy(st);
        } else if (st->state == H2S_HELD) {
            stream_reset(st, NGHTTP2_REFUSED_STREAM);
        }
        st = next;
    }
    nghttp2_submit_goaway(c->front, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->front),
                          c->back_broke ? NGHTTP2_INTERNAL_ERROR
                                        : NGHTTP2_NO_ERROR, NULL, 0);
}

/* Setup and the pump. */

static nghttp2_session_callbacks *callbacks(void)
{
    static nghttp2_session_callbacks *cbs;

    if (cbs == NULL && nghttp2_session_callbacks_new(&cbs) == 0) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(
            cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
                                                             on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
            cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(
            cbs, on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs,
                                                             on_frame_send);
    }
    return cbs;
}

/* Makes both nghttp2 sessions and queues each side's SETTINGS. */
static int conn_start(struct h2_conn *c, struct session *s)
{
    nghttp2_session_callbacks *cbs = callbacks();
    nghttp2_option *opt;
    nghttp2_settings_entry set[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_STREAMS },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW },
    };
    int rv;

    if (cbs == NULL || nghttp2_option_new(&opt) != 0)
        return -ENOMEM;
    nghttp2_option_set_no_auto_window_update(opt, 1);
    c->s = s;
    c->grpc = s->proto == &proto_grpc;
    LIST_INIT(&c->streams);
    c->scratch = evbuffer_new();
    if (c->scratch == NULL) {
        nghttp2_option_del(opt);
        return -ENOMEM;
    }
    rv = nghttp2_session_server_new2(&c->front, cbs, c, opt);
    if (rv == 0)
        rv = nghttp2_session_client_new2(&c->back, cbs, c, opt);
    nghttp2_option_del(opt);
    if (rv != 0)
        return -ENOMEM;
    if (nghttp2_submit_settings(c->front, NGHTTP2_FLAG_NONE, set, 2) != 0 ||
        nghttp2_submit_settings(c->back, NGHTTP2_FLAG_NONE, set + 1, 1) != 0 ||
        nghttp2_session_set_local_window_size(c->front, NGHTTP2_FLAG_NONE, 0,
                                              H2_CONN_WINDOW) != 0 ||
        nghttp2_session_set_local_window_size(c->back, NGHTTP2_FLAG_NONE, 0,
                                              H2_CONN_WINDOW) != 0)
        return -ENOMEM;
    return 0;
}

/* Sends n bytes through pipe p: its byte toxics (latency, bandwidth,
 * ...) act on them as on any protocol's. Returns 0 or -ENOMEM. */
static int emit(struct h2_conn *c, struct pipe *p, const void *data, size_t n)
{
    if (evbuffer_add(c->scratch, data, n) < 0)
        return -ENOMEM;
    return pipe_emit(p, c->scratch, n, 0, BEHAV_PASS);
}

/* Writes what both sessions have to send, until neither has more (taking
 * a body on one side acknowledges it on the other); the output toward a
 * peer is capped at PIPE_CAP (session_on_pipe_drained pumps again). */
static void flush(struct h2_conn *c)
{
    struct session *s = c->s;
    bool more = true;

    while (more && s->state == SESSION_OPEN) {
        const uint8_t *data;
        ssize_t n;
        more = false;
        n = 0;
        while (c->client_started && !c->upgrade_wait &&
               pipe_buffered(&s->down) < PIPE_CAP &&
               (n = nghttp2_session_mem_send(c->front, &data)) > 0) {
            if (emit(c, &s->down, data, (size_t)n) < 0)
                goto fail;
            more = true;
        }
        if (n < 0)
            goto fail;
        n = 0;
        while (s->state == SESSION_OPEN && !c->back_gone &&
               pipe_buffered(&s->up) < PIPE_CAP &&
               (n = nghttp2_session_mem_send(c->back, &data)) > 0) {
            if (emit(c, &s->up, data, (size_t)n) < 0)
                goto fail;
            more = true;
        }
        if (n < 0)
            goto fail;
    }
    return;
fail:
    c->failed = true;
    session_close(s, true, "http2: cannot send");
}

/* Feeds in to session; returns 0, or -1 when the bytes are not HTTP/2
 * (nghttp2 has queued its GOAWAY). */
static int feed(nghttp2_session *session, struct evbuffer *in)
{
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        ssize_t n;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        n = nghttp2_session_mem_recv(session, v.iov_base, v.iov_len);
        if (n < 0)
            return -1;
        evbuffer_drain(in, (size_t)n);
    }
    return 0;
}

/* Adds an HTTP/1.1 header to an HTTP/2 head: its name in lower case;
 * the connection's own headers are left out. */
static int upgrade_header(struct h2_head *h, const struct proto_str *name,
                          const struct proto_str *value)
{
    uint8_t lower[256];

    if (name->n == 0 || name->n > sizeof(lower) || h2c_connection_header(name))
        return 0;
    for (size_t i = 0; i < name->n; i++)
        lower[i] = (uint8_t)tolower((unsigned char)name->p[i]);
    return head_add(h, lower, name->n, (const uint8_t *)value->p, value->n);
}

/* Answers an HTTP/1 client in its own words (it does not speak HTTP/2 as
 * this proxy needs): the connection ends once the answer is written. */
static void refuse_http1(struct h2_conn *c, const char *status,
                         const char *text)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                     status, strlen(text) + 1, text);

    if (n > 0 && (size_t)n < sizeof(buf) && emit(c, &c->s->down, buf, (size_t)n) == 0)
        c->refused = true;
}

/* Whether p[0, n) starts with an HTTP/1 request line. */
static bool http1_line(const unsigned char *p, size_t n)
{
    const unsigned char *eol = memchr(p, '\n', n);

    return eol != NULL && memmem(p, (size_t)(eol - p), " HTTP/1.", 8) != NULL;
}

/* The client's first bytes: the HTTP/2 preface, or an HTTP/1.1 request
 * asking `Upgrade: h2c` (proto/h2c.h), which is answered 101 and becomes
 * stream 1. Returns 1 when the client has started (the bytes after go to
 * the front session), 0 when more bytes are needed, or -1 with why
 * filled. */
static int client_start(struct h2_conn *c, struct evbuffer *in, char *why,
                        size_t whylen)
{
    size_t len = evbuffer_get_length(in);
    size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
    unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
    struct h2c_upgrade *u;
    struct h2_stream *st = NULL;
    ssize_t head;

    if (n > 0 && memcmp(p, H2_PREFACE, n) == 0)
        return n < H2_PREFACE_LEN ? 0 : 1;
    u = malloc(sizeof(*u));
    if (u == NULL) {
        snprintf(why, whylen, "http2: out of memory");
        return -1;
    }
    n = len < H2C_HEAD_MAX + 1 ? len : H2C_HEAD_MAX + 1;
    p = evbuffer_pullup(in, (ev_ssize_t)n);
    head = h2c_upgrade_read(p, n, u);
    if (head <= 0) {
        free(u);
        if (head == 0)
            return 0;
        snprintf(why, whylen, "http2: %s",
                 head == -ENOTSUP ? "an HTTP/1 request with a body, which "
                                    "cannot be upgraded to h2c"
                 : head == -EBADMSG ? "an h2c upgrade without a valid "
                                      "HTTP2-Settings"
                 : head == -EMSGSIZE ? "the client sent neither the HTTP/2 "
                                       "preface nor an HTTP/1.1 head"
                                     : "the client sent HTTP/1 without "
                                       "Upgrade: h2c");
        if (head == -EBADMSG)
            refuse_http1(c, "400 Bad Request", "vaurien: an Upgrade: h2c "
                         "request needs one valid HTTP2-Settings header");
        else if (head == -EMSGSIZE && http1_line(p, n))
            refuse_http1(c, "431 Request Header Fields Too Large",
                         "vaurien: an HTTP/1 head of more than 16 KiB");
        else if (http1_line(p, n))
            refuse_http1(c, "505 HTTP Version Not Supported",
                         head == -ENOTSUP
                             ? "vaurien: this proxy speaks HTTP/2; a request "
                               "with a body cannot be upgraded to h2c: send "
                               "the HTTP/2 preface (prior knowledge)"
                             : "vaurien: this proxy speaks HTTP/2: send the "
                               "HTTP/2 preface (prior knowledge) or ask "
                               "Upgrade: h2c");
        return -1;
    }
    st = stream_create(c, 1);
    if (st == NULL ||
        head_add(&st->req, (const uint8_t *)":method", 7,
                 (const uint8_t *)u->parts.method.p, u->parts.method.n) < 0 ||
        head_add(&st->req, (const uint8_t *)":scheme", 7,
                 (const uint8_t *)"http", 4) < 0 ||
        (u->host.n > 0 &&
         head_add(&st->req, (const uint8_t *)":authority", 10,
                  (const uint8_t *)u->host.p, u->host.n) < 0) ||
        head_add(&st->req, (const uint8_t *)":path", 5,
                 (const uint8_t *)u->parts.path.p, u->parts.path.n) < 0)
        goto fail;
    for (unsigned i = 0; i < u->parts.nheaders; i++)
        if (upgrade_header(&st->req, &u->parts.headers[i][0],
                           &u->parts.headers[i][1]) < 0)
            goto fail;
    if (nghttp2_session_upgrade2(c->front, u->settings, u->settings_len,
                                 u->head, st) != 0)
        goto fail;
    free(u);
    evbuffer_drain(in, (size_t)head);
    {
        static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                 "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        if (emit(c, &c->s->down, sw, sizeof(sw) - 1) < 0) {
            snprintf(why, whylen, "http2: out of memory");
            return -1;
        }
    }
    st->req_end = true;
    c->client_started = true;
    c->upgrade_wait = true;
    stream_decide(st);
    return 1;
fail:
    free(u);
    if (st != NULL) {
        st->front_open = false;
        stream_destroy(st);
    }
    snprintf(why, whylen, "http2: cannot upgrade to h2c (bad HTTP2-Settings, "
             "a head too large, or out of memory)");
    return -1;
}

void h2_pump(struct session *s)
{
    struct h2_conn *c = s->pstate;
    char why[120];

    if (c->front == NULL && conn_start(c, s) < 0) {
        session_close(s, true, "http2: out of memory");
        return;
    }
    if (c->refused) { /* answered in HTTP/1.1: the rest is dropped */
        struct evbuffer *in = bufferevent_get_input(s->client);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (!c->client_started) {
        int r = client_start(c, bufferevent_get_input(s->client), why,
                             sizeof(why));
        if (r < 0 && c->refused) {
            struct evbuffer *in = bufferevent_get_input(s->client);
            log_info("session %llu: %s: answered in HTTP/1.1",
                     (unsigned long long)s->id, why);
            evbuffer_drain(in, evbuffer_get_length(in));
            c->ended = true; /* the answer is written, then both end */
            pipe_on_eof(&s->up);
            if (s->state == SESSION_OPEN)
                pipe_on_eof(&s->down);
            return;
        }
        if (r < 0) {
            session_close(s, false, why);
            return;
        }
        if (r > 0) {
            c->client_started = true;
        } else if (s->up.eof) {
            /* it left before its preface or h2c head: nothing will come,
             * and the backend must not hold the descriptors meanwhile */
            session_close(s, false, "http2: the client left before its "
                          "preface");
            return;
        }
    }
    if (c->client_started &&
        feed(c->front, bufferevent_get_input(s->client)) < 0) {
        snprintf(why, sizeof(why), "http2: the client sent what is not "
                 "HTTP/2 with prior knowledge");
        flush(c);
        session_close(s, false, why);
        return;
    }
    if (c->client_started && s->up.eof && !c->ended) {
        /* HTTP/2 has no half-close: a client's FIN is its leaving, as
         * nginx and nghttpd read it; its streams could never end (a hung
         * one would keep both sockets until the idle timeout) */
        session_close(s, false, "http2: the client closed the connection");
        return;
    }
    if (c->back_gone) { /* what a lost backend still sends is dropped */
        struct evbuffer *bin = bufferevent_get_input(s->backend);
        evbuffer_drain(bin, evbuffer_get_length(bin));
    } else if (feed(c->back, bufferevent_get_input(s->backend)) < 0) {
        c->back_broke = true; /* nghttp2 cannot go on with it: nothing */
        back_lost(c);         /* more is sent to it */
    }
    flush(c); /* first: the backend gets the GOAWAY of what it broke */
    if (s->state == SESSION_OPEN && !c->back_gone &&
        (c->back_broke || s->down.eof || s->backend_ended ||
         (!nghttp2_session_want_read(c->back) &&
          !nghttp2_session_want_write(c->back))))
        back_lost(c); /* the client opens no more streams */
    flush(c);
    if (s->state == SESSION_OPEN && !c->ended &&
        !nghttp2_session_want_read(c->front) &&
        !nghttp2_session_want_write(c->front)) {
        /* nothing more either way: each side's write end is shut once its
         * output is written, and the session closes (session.c) */
        c->ended = true;
        pipe_on_eof(&s->up);
        if (s->state == SESSION_OPEN)
            pipe_on_eof(&s->down);
    }
}

/* The protocol's table: no framer, the session relays through h2_pump. */

static void h2_deinit(void *st)
{
    struct h2_conn *c = st;

    /* the sessions go first: they no longer call back into the streams */
    if (c->front != NULL)
        nghttp2_session_del(c->front);
    if (c->back != NULL)
        nghttp2_session_del(c->back);
    c->front = c->back = NULL;
    while (!LIST_EMPTY(&c->streams))
        stream_destroy(LIST_FIRST(&c->streams));
    if (c->scratch != NULL)
        evbuffer_free(c->scratch);
}

static void h2_parts(const unsigned char *p, size_t n,
                     const struct proto_unit *u, struct proto_parts *out)
{
    proto_http.parts(p, n, u, out); /* request_text() writes HTTP/1 */
}

/* Never called: streams are answered by stream_answer(). */
static void h2_error_reply(void *st, const struct proto_error *e,
                           const struct proto_unit *req, struct rng *r,
                           struct evbuffer *out, bool *close)
{
    (void)st;
    (void)e;
    (void)req;
    (void)r;
    (void)out;
    *close = true;
}

static const struct opt_decl h2_opts[] = { { 0 } };

/* What http2 and grpc share: both are this relay; only the error's words
 * differ (h2_conn.grpc). */
#define H2_PROTO_OPS                           \
    .opts = h2_opts,                           \
    .state_size = sizeof(struct h2_conn),      \
    .mux = true,                               \
    .deinit = h2_deinit,                       \
    .error_reply = h2_error_reply,             \
    .parts = h2_parts

const struct proto_ops proto_http2 = {
    .name = "http2",
    .help = "HTTP/2 cleartext with prior knowledge (h2c): one request per "
            "stream, faults per stream",
    H2_PROTO_OPS,
};

const struct proto_ops proto_grpc = {
    .name = "grpc",
    .help = "gRPC over h2c with prior knowledge: http2, one call per stream, "
            "errors as grpc-status (code, default 14 UNAVAILABLE)",
    H2_PROTO_OPS,
};
