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
 *
 * A request is handed out once its command is known, with two exceptions
 * that let the server answer what it would answer without the proxy: an
 * array header every server refuses ("*3000000000") is not redis (the
 * connection passes through, and the server says so), and an array whose
 * command has not come when the client stops sending ("*11\r\n" alone:
 * an error to a server that wants a password) is handed out by stalled()
 * as a request that passes.
 */
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
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
    bool lead0;                /* the number starts with 0 */
    long long left_bytes;      /* RP_BULK: bytes left, CRLF included */
    size_t line;               /* RP_LINE / RP_INLINE: bytes so far */
    int depth;
    /* request only: the command name */
    int arg;                   /* index of the bulk being read */
    char cmd[RESP_CMD_MAX + 1];
    size_t cmdlen;
    bool named;                /* the command is known */
    bool noargs;               /* "*0", a blank line: the server says nothing */
    bool classified;           /* request_flags() has seen it */
    bool push;                 /* the top-level value is a push */
    /* last, and not reset between values: only levels below depth,
     * each set by push_level(), are ever read */
    long long left[RESP_DEPTH]; /* elements left at each level */
    bool attr[RESP_DEPTH];      /* the level is an attribute map */
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
    r->named = r->request;
    r->phase = RP_TYPE;
}

/* A request's command is known: its head can be handed out. */
static void request_named(struct resp *r)
{
    r->named = true;
    r->f.head = true;
}

/* Blanks between the words of an inline command (the server's isspace). */
static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
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

/* RESP types whose value is one line: simple string, error, integer,
 * null, double, boolean, big number. (A switch: strchr() would also match
 * the NUL byte, and costs a call per value.) */
static bool is_line_type(unsigned char t)
{
    switch (t) {
    case '+': case '-': case ':': case '_': case ',': case '#': case '(':
        return true;
    default:
        return false;
    }
}

/* RESP types that start with a length or a count. */
static bool is_counted_type(unsigned char t)
{
    switch (t) {
    case '$': case '!': case '=': case '*': case '~': case '>': case '%':
    case '|':
        return true;
    default:
        return false;
    }
}

/* The length or count of r->type has been read. */
static bool number_done(struct resp *r)
{
    long long n = r->neg ? -r->num : r->num;
    unsigned char t = r->type;

    if (r->digits == 0)
        return false;
    /* a request's numbers are read as the server reads them: a leading
     * zero or "-0" is an error to it, and so is a count above INT_MAX */
    if (r->request && r->lead0 && (r->digits > 1 || r->neg))
        return false;
    if (r->request && r->depth == 0 && t == '*' && n <= 0) {
        r->noargs = true; /* "*0", "*-5": ignored, no reply */
        value_done(r);
        return true;
    }
    if (r->request && t == '*' && n > INT_MAX)
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
                    r->noargs = true;
                    value_done(r);
                } else if (!is_blank(c)) {
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
            } else if (is_counted_type(c)) {
                r->phase = RP_NUM;
                r->neg = false;
                r->num = 0;
                r->digits = 0;
                r->lead0 = false;
            } else {
                r->f.error = true;
            }
            break;
        case RP_NUM:
            /* the digits in one go, and the CRLF after them when it is
             * here: a count or a length is most of a small request */
            while (c >= '0' && c <= '9' && r->digits < 18) {
                if (r->digits == 0)
                    r->lead0 = c == '0';
                r->num = r->num * 10 + (c - '0');
                r->digits++;
                if (++i == n)
                    return i;
                c = p[i];
            }
            i++;
            if (c == '\r' && i < n && p[i] == '\n') {
                i++;
                if (!number_done(r))
                    r->f.error = true;
            } else if (c == '\r') {
                r->phase = RP_NUM_LF;
            } else if (c == '-' && r->digits == 0 && !r->neg) {
                r->neg = true;
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
                r->noargs = r->cmdlen == 0; /* blanks only: no reply */
                value_done(r);
            } else if (r->line > RESP_LINE_MAX) {
                r->f.error = true;
            } else if (is_blank(c)) {
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
                        request_named(r);
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
    memset(r, 0, offsetof(struct resp, left));
    r->request = request;
}

static bool cmd_is(const struct resp *r, const char *name)
{
    size_t len = r->cmdlen > RESP_CMD_MAX ? strlen(r->cmd) : r->cmdlen;

    return len == strlen(name) && strncasecmp(r->cmd, name, len) == 0;
}

/* Flags of a request whose command is known; notes MULTI and EXEC. */
static unsigned request_flags(struct redis_state *s)
{
    struct resp *r = &s->up;

    r->classified = true;
    r->cmd[r->cmdlen > RESP_CMD_MAX ? RESP_CMD_MAX : r->cmdlen] = '\0';
    if (r->noargs)
        return PROTO_NOREPLY | PROTO_NOFAULT; /* "*0", blank line */
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
    if (u->flags & PROTO_HEAD) /* named, or handed out blind: it passes */
        s->pending_flags = s->up.named ? request_flags(s) : PROTO_NOFAULT;
    else if (s->up.named && !s->up.classified)
        (void)request_flags(s); /* a blind request's name came: MULTI? */
    u->flags |= s->pending_flags;
    if ((u->flags & PROTO_END) &&
        (cmd_is(&s->up, "SUBSCRIBE") || cmd_is(&s->up, "PSUBSCRIBE") ||
         cmd_is(&s->up, "SSUBSCRIBE") || cmd_is(&s->up, "MONITOR")))
        s->raw = true;
    return n;
}

/* The client stopped before the command of its request came. An array
 * whose count is read gets a reply whatever follows (the server's error
 * included, which it may send at once), so the bytes go to the server as
 * a request that passes; anything shorter waits, as the server would. */
static ssize_t redis_stalled(void *st, struct evbuffer *in,
                             struct proto_unit *u)
{
    struct redis_state *s = st;
    struct resp *r = &s->up;
    ssize_t n = redis_frame(st, PROTO_UP, in, u);

    if (n != 0 || r->f.head || r->f.error || r->f.scanned == 0 ||
        r->depth == 0)
        return n;
    r->f.head = true; /* handed out unnamed */
    return redis_frame(st, PROTO_UP, in, u);
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

/* Reads the digits of a RESP count or length at p[*at] and the CRLF after
 * them, all within n; moves *at past them. Returns false if they are not
 * all there, or are no count (a negative one included: nothing follows). */
static bool parts_number(const unsigned char *p, size_t n, size_t *at,
                         long long *v)
{
    size_t i = *at;
    long long x = 0;
    int digits = 0;

    while (i < n && p[i] >= '0' && p[i] <= '9' && digits < 18) {
        x = x * 10 + (p[i] - '0');
        i++;
        digits++;
    }
    if (digits == 0 || n - i < 2 || p[i] != '\r' || p[i + 1] != '\n')
        return false;
    *at = i + 2;
    *v = x;
    return true;
}

/* The bulk strings of a request array at p, each kept only when it is all
 * there with its CRLF; stops at the first that is not. Returns how many
 * (at most max) were stored in el. */
static unsigned parts_array(const unsigned char *p, size_t n,
                            struct proto_str *el, unsigned max)
{
    size_t at = 1; /* after the '*' */
    long long count, len;
    unsigned k = 0;

    if (!parts_number(p, n, &at, &count))
        return 0;
    while (k < max && (long long)k < count) {
        if (at >= n || p[at] != '$')
            break;
        at++;
        if (!parts_number(p, n, &at, &len) ||
            (unsigned long long)len + 2 > n - at)
            break;
        if (p[at + (size_t)len] != '\r' || p[at + (size_t)len + 1] != '\n')
            break;
        el[k].p = (const char *)p + at;
        el[k].n = (size_t)len;
        k++;
        at += (size_t)len + 2;
    }
    return k;
}

/* The command and its arguments, from an array of bulk strings or an
 * inline command (words split on the server's blanks; quotes are not
 * read: `SET k "a b"` gives the arguments k, "a and b"). */
static void redis_parts(const unsigned char *p, size_t n,
                        const struct proto_unit *u, struct proto_parts *out)
{
    struct proto_str el[1 + PROTO_ARGS_MAX];
    unsigned k;

    (void)u;
    if (n == 0)
        return;
    if (p[0] == '*')
        k = parts_array(p, n, el, 1 + PROTO_ARGS_MAX);
    else
        k = proto_words(p, n, " \t\r\v\f", el, 1 + PROTO_ARGS_MAX);
    if (k == 0)
        return;
    out->command = el[0];
    for (unsigned i = 1; i < k; i++)
        out->args[i - 1] = el[i];
    out->nargs = k - 1;
    if (out->nargs > 0)
        out->key = out->args[0];
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
    .stalled = redis_stalled,
    .parts = redis_parts,
};
