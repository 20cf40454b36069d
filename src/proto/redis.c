/*
 * redis: RESP framing (RESP2 and RESP3).
 *
 *   client ─▶ "*3\r\n$3\r\nSET\r\n..." or an inline "PING\r\n" ─▶ a request
 *   server ─▶ one RESP value (with its attributes) ─▶ a reply;
 *             a RESP3 push ('>') answers no request
 *
 * Requests inside MULTI pass (only EXEC can fail, after it ran: the client
 * sees an error for a transaction the server did commit); after SUBSCRIBE,
 * PSUBSCRIBE, SSUBSCRIBE or MONITOR the server drives the conversation and
 * the connection is passed through. An error reply is "-ERR ...\r\n", its
 * text set by the error behavior's `message` ("LOADING ...", "OOM ...").
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "proto/proto.h"

#define RESP_DEPTH 32          /* nesting of aggregates */
#define RESP_LINE_MAX 65536    /* simple strings, numbers, inline commands */
#define RESP_HEAD_MAX 65536    /* bytes before a request's command is known */
#define RESP_BULK_MAX (1LL << 32)
#define RESP_CMD_MAX 24

enum resp_phase {
    RP_TYPE,    /* expecting a type byte */
    RP_NUM,     /* a length or count, up to CR */
    RP_NUM_LF,
    RP_LINE,    /* the rest of a line, up to LF */
    RP_BULK,    /* bulk bytes and their CRLF */
    RP_INLINE,  /* an inline command, up to LF */
};

/* One RESP value being parsed, resumable at any byte. */
struct resp {
    struct proto_framer f;     /* first: the driver's state */
    bool request;              /* client side: arrays of bulk strings */
    enum resp_phase phase;
    unsigned char type;        /* type whose length is being read */
    bool neg;
    long long num;
    int digits;
    long long left_bytes;      /* RP_BULK: bytes left, CRLF included */
    size_t line;               /* RP_LINE / RP_INLINE: bytes so far */
    int depth;
    long long left[RESP_DEPTH]; /* elements left at each level */
    bool attr[RESP_DEPTH];      /* the level is an attribute map */
    /* request only: the command name */
    int arg;                   /* index of the bulk being read */
    char cmd[RESP_CMD_MAX + 1];
    size_t cmdlen;
    bool push;                 /* the top-level value is a push */
};

struct redis_state {
    struct resp up, down;
    bool in_multi;
    bool raw;                  /* server-driven from now on */
    unsigned pending_flags;    /* flags of the request being framed */
};

/* A value (or an element) is complete: climb the finished levels. */
static void value_done(struct resp *r)
{
    while (r->depth > 0) {
        int d = r->depth - 1;
        if (--r->left[d] > 0) {
            r->phase = RP_TYPE;
            return;
        }
        r->depth--;
        if (r->attr[d]) {
            /* an attribute map precedes the real value at its place */
            r->attr[d] = false;
            r->phase = RP_TYPE;
            return;
        }
    }
    r->f.done = true;
    r->f.head = true;
    r->phase = RP_TYPE;
}

static bool push_level(struct resp *r, long long count, bool attr)
{
    if (r->depth == RESP_DEPTH)
        return false;
    r->left[r->depth] = count;
    r->attr[r->depth] = attr;
    r->depth++;
    r->phase = RP_TYPE;
    return true;
}

static bool is_line_type(unsigned char t)
{
    return strchr("+-:_,#(", t) != NULL;
}

/* The length or count of r->type has been read. */
static bool number_done(struct resp *r)
{
    long long n = r->neg ? -r->num : r->num;
    unsigned char t = r->type;

    if (r->digits == 0)
        return false;
    if (t == '$' || t == '!' || t == '=') {
        if (n < 0) {
            if (n != -1 || t != '$')
                return false;
            if (r->request)
                return false;
            value_done(r);
            return true;
        }
        if (n > RESP_BULK_MAX)
            return false;
        r->left_bytes = n + 2;
        r->phase = RP_BULK;
        return true;
    }
    /* aggregates: * ~ > % | */
    if (n < 0) {
        if (n != -1 || t != '*')
            return false;
        value_done(r);
        return true;
    }
    if (t == '%' || t == '|')
        n *= 2;
    if (n == 0) {
        if (t == '|')
            return false;
        if (r->request && r->depth == 0) {
            r->f.head = true; /* "*0": nothing to do, no reply */
        }
        value_done(r);
        return true;
    }
    if (r->request && r->depth > 0)
        return false; /* requests are flat */
    return push_level(r, n, t == '|');
}

static size_t resp_feed(void *st, const unsigned char *p, size_t n)
{
    struct resp *r = st;
    size_t i = 0;

    while (i < n && !r->f.done && !r->f.error) {
        unsigned char c = p[i];

        switch (r->phase) {
        case RP_TYPE:
            i++;
            if (r->request && r->depth == 0 && c != '*') {
                r->phase = RP_INLINE;
                r->line = 1;
                r->cmdlen = 0;
                if (c == '\n') {
                    r->f.head = true;
                    value_done(r);
                } else if (c != ' ' && c != '\r') {
                    r->cmd[r->cmdlen++] = (char)c;
                }
                break;
            }
            if (r->request && r->depth > 0 && c != '$') {
                r->f.error = true;
                break;
            }
            if (!r->request && r->depth == 0) {
                r->push = c == '>';
                r->f.head = true;
            }
            r->type = c;
            if (is_line_type(c)) {
                r->phase = RP_LINE;
                r->line = 0;
            } else if (strchr("$!=*~>%|", c) != NULL) {
                r->phase = RP_NUM;
                r->neg = false;
                r->num = 0;
                r->digits = 0;
            } else {
                r->f.error = true;
            }
            break;
        case RP_NUM:
            i++;
            if (c == '\r') {
                r->phase = RP_NUM_LF;
            } else if (c == '-' && r->digits == 0 && !r->neg) {
                r->neg = true;
            } else if (c >= '0' && c <= '9' && r->digits < 18) {
                r->num = r->num * 10 + (c - '0');
                r->digits++;
            } else {
                r->f.error = true;
            }
            break;
        case RP_NUM_LF:
            i++;
            if (c != '\n' || !number_done(r))
                r->f.error = true;
            break;
        case RP_LINE: {
            const unsigned char *lf = memchr(p + i, '\n', n - i);
            size_t take = lf != NULL ? (size_t)(lf - (p + i)) + 1 : n - i;
            r->line += take;
            i += take;
            if (r->line > RESP_LINE_MAX)
                r->f.error = true;
            else if (lf != NULL)
                value_done(r);
            break;
        }
        case RP_INLINE: {
            i++;
            r->line++;
            if (c == '\n') {
                r->f.head = true;
                value_done(r);
            } else if (r->line > RESP_LINE_MAX) {
                r->f.error = true;
            } else if (c == ' ' || c == '\t' || c == '\r') {
                if (r->cmdlen > 0)
                    r->cmdlen = RESP_CMD_MAX + 1; /* name complete */
            } else if (r->cmdlen < RESP_CMD_MAX) {
                r->cmd[r->cmdlen++] = (char)c;
            }
            break;
        }
        case RP_BULK: {
            size_t take = n - i;
            if ((long long)take > r->left_bytes)
                take = (size_t)r->left_bytes;
            if (r->request && r->arg == 0) {
                /* the command name: its first bytes */
                for (size_t k = 0; k < take && r->cmdlen < RESP_CMD_MAX; k++) {
                    if (r->left_bytes - (long long)k <= 2)
                        break;
                    r->cmd[r->cmdlen++] = (char)p[i + k];
                }
            }
            r->left_bytes -= (long long)take;
            i += take;
            if (r->left_bytes == 0) {
                if (p[i - 1] != '\n') {
                    r->f.error = true;
                    break;
                }
                if (r->request) {
                    if (r->arg == 0)
                        r->f.head = true;
                    r->arg++;
                }
                value_done(r);
            }
            break;
        }
        }
    }
    return i;
}

static void resp_start(struct resp *r, bool request)
{
    memset(r, 0, sizeof(*r));
    r->request = request;
}

static bool cmd_is(const struct resp *r, const char *name)
{
    size_t len = r->cmdlen > RESP_CMD_MAX ? strlen(r->cmd) : r->cmdlen;

    return len == strlen(name) && strncasecmp(r->cmd, name, len) == 0;
}

/* Flags of a request whose command is known. */
static unsigned request_flags(struct redis_state *s)
{
    struct resp *r = &s->up;

    r->cmd[r->cmdlen > RESP_CMD_MAX ? RESP_CMD_MAX : r->cmdlen] = '\0';
    if (r->cmd[0] == '\0')
        return PROTO_NOREPLY | PROTO_NOFAULT; /* "*0", empty line */
    if (cmd_is(r, "SUBSCRIBE") || cmd_is(r, "PSUBSCRIBE") ||
        cmd_is(r, "SSUBSCRIBE") || cmd_is(r, "MONITOR"))
        return PROTO_NOFAULT;
    if (cmd_is(r, "MULTI")) {
        s->in_multi = true;
        return PROTO_NOFAULT;
    }
    if (cmd_is(r, "EXEC") || cmd_is(r, "DISCARD")) {
        s->in_multi = false;
        return PROTO_FORWARD;
    }
    return s->in_multi ? PROTO_NOFAULT : 0;
}

static ssize_t redis_frame(void *st, enum proto_dir dir, struct evbuffer *in,
                           struct proto_unit *u)
{
    struct redis_state *s = st;
    ssize_t n;

    if (dir == PROTO_DOWN) {
        struct resp *r = &s->down;
        if (!r->f.started && r->f.scanned == 0 && !r->f.head)
            resp_start(r, false);
        n = proto_drive(&r->f, in, u, RESP_HEAD_MAX, resp_feed);
        if (n > 0 && r->push)
            u->flags |= PROTO_PUSH;
        return n;
    }
    if (!s->up.f.started && s->up.f.scanned == 0 && !s->up.f.head)
        resp_start(&s->up, true);
    n = proto_drive(&s->up.f, in, u, RESP_HEAD_MAX, resp_feed);
    if (n <= 0)
        return n;
    if (u->flags & PROTO_HEAD)
        s->pending_flags = request_flags(s);
    u->flags |= s->pending_flags;
    if ((u->flags & PROTO_END) &&
        (cmd_is(&s->up, "SUBSCRIBE") || cmd_is(&s->up, "PSUBSCRIBE") ||
         cmd_is(&s->up, "SSUBSCRIBE") || cmd_is(&s->up, "MONITOR")))
        s->raw = true;
    return n;
}

static enum proto_mode redis_mode(void *st)
{
    struct redis_state *s = st;

    return s->raw ? PROTO_RAW : PROTO_FRAMED;
}

static void redis_error_reply(void *st, const struct proto_error *e,
                              const struct proto_unit *req, struct rng *r,
                              struct evbuffer *out, bool *close)
{
    (void)st;
    (void)req;
    (void)r;
    *close = false;
    proto_error_line(out, "-", e->message, "ERR injected error (vaurien)");
}

static const struct opt_decl redis_opts[] = { { 0 } };

const struct proto_ops proto_redis = {
    .name = "redis",
    .help = "Redis (RESP2 and RESP3); errors are -ERR replies.",
    .opts = redis_opts,
    .state_size = sizeof(struct redis_state),
    .frame = redis_frame,
    .mode = redis_mode,
    .error_reply = redis_error_reply,
};
