/*
 * smtp: SMTP (RFC 5321) with pipelining (RFC 2920) and BDAT (RFC 3030).
 *
 *   server ─▶ greeting, then one reply per command; "250-..." lines go on,
 *             "250 ..." ends a reply
 *   client ─▶ command lines; after DATA and its 354, the message up to the
 *             lone "." line is one more request; BDAT carries its chunk
 *
 * An error reply is "<code> <enhanced> <text>\r\n" (default 451 4.3.0), for
 * any command; for the message itself the message is delivered and its
 * 250 replaced (the server cannot take back DATA it has started). After
 * STARTTLS and its 220 the session upgrades both sides to TLS (when it
 * terminates and originates TLS) or passes the connection through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/proto.h"

#define SMTP_LINE_MAX 65536
#define SMTP_KEEP 64

enum smtp_cmd { CMD_GREETING, CMD_OTHER, CMD_DATA, CMD_BODY, CMD_BDAT,
                CMD_STARTTLS, CMD_QUIT };

enum body_state { B_BOL, B_TEXT, B_DOT, B_DOT_CR };

struct smtp_dir {
    struct proto_framer f;  /* first: the driver's state */
    bool request;
    size_t linelen;
    char line[SMTP_KEEP + 1];
    /* client side */
    enum smtp_cmd cmd;      /* what the unit is */
    enum body_state body;   /* where in the message */
    long long bdat_left;    /* BDAT chunk bytes left */
    /* server side */
    enum smtp_cmd answers;  /* what the reply answers */
    int code;               /* code of the reply's last line */
};

struct smtp_state {
    struct smtp_dir up, down;
    bool expect_body;       /* a 354 came: the message follows */
    bool tls_now;           /* a 220 to STARTTLS ended: TLS starts */
};

static enum smtp_cmd verb(const char *line)
{
    if (strncasecmp(line, "DATA", 4) == 0 &&
        (line[4] == '\r' || line[4] == '\n' || line[4] == ' '))
        return CMD_DATA;
    if (strncasecmp(line, "BDAT ", 5) == 0)
        return CMD_BDAT;
    if (strncasecmp(line, "STARTTLS", 8) == 0)
        return CMD_STARTTLS;
    if (strncasecmp(line, "QUIT", 4) == 0)
        return CMD_QUIT;
    return CMD_OTHER;
}

/* The message: bytes up to and including the lone "." line. */
static size_t body_feed(struct smtp_dir *d, const unsigned char *p, size_t n)
{
    size_t i = 0;

    d->f.head = true;
    while (i < n && !d->f.done) {
        unsigned char c = p[i++];
        switch (d->body) {
        case B_BOL:
            d->body = c == '.' ? B_DOT : c == '\n' ? B_BOL : B_TEXT;
            break;
        case B_TEXT:
            if (c == '\n')
                d->body = B_BOL;
            break;
        case B_DOT:
            if (c == '\r')
                d->body = B_DOT_CR;
            else if (c == '\n')
                d->f.done = true;
            else
                d->body = B_TEXT; /* a dot-stuffed line */
            break;
        case B_DOT_CR:
            if (c == '\n')
                d->f.done = true;
            else
                d->body = B_TEXT;
            break;
        }
    }
    return i;
}

static void request_line(struct smtp_dir *d)
{
    d->cmd = verb(d->line);
    d->f.head = true;
    if (d->cmd == CMD_BDAT) {
        char *end;
        long long len = strtoll(d->line + 5, &end, 10);
        if (end == d->line + 5 || len < 0) {
            d->f.error = true;
            return;
        }
        d->bdat_left = len;
        if (len > 0)
            return;
    }
    d->f.done = true;
}

static void reply_line(struct smtp_dir *d)
{
    const char *l = d->line;

    if (d->linelen < 4 || l[0] < '2' || l[0] > '5' || l[1] < '0' ||
        l[1] > '9' || l[2] < '0' || l[2] > '9' ||
        (l[3] != ' ' && l[3] != '-' && l[3] != '\r' && l[3] != '\n')) {
        d->f.error = true;
        return;
    }
    d->f.head = true;
    d->code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (l[3] != '-')
        d->f.done = true;
}

static size_t smtp_feed(void *st, const unsigned char *p, size_t n)
{
    struct smtp_dir *d = st;
    size_t i = 0;

    if (d->request && d->cmd == CMD_BODY)
        return d->f.done ? 0 : body_feed(d, p, n);
    while (i < n && !d->f.done && !d->f.error) {
        if (d->bdat_left > 0) {
            size_t take = n - i;
            if ((long long)take > d->bdat_left)
                take = (size_t)d->bdat_left;
            d->bdat_left -= (long long)take;
            i += take;
            if (d->bdat_left == 0)
                d->f.done = true;
            continue;
        }
        bool complete;
        i += proto_line_take(p + i, n - i, d->line, SMTP_KEEP, &d->linelen,
                             &complete);
        if (d->linelen > SMTP_LINE_MAX) {
            d->f.error = true;
            break;
        }
        if (!complete)
            break;
        if (d->request)
            request_line(d);
        else
            reply_line(d);
        d->linelen = 0;
    }
    return i;
}

static ssize_t smtp_frame(void *st, enum proto_dir dir, struct evbuffer *in,
                          struct proto_unit *u)
{
    struct smtp_state *s = st;
    struct smtp_dir *d = dir == PROTO_UP ? &s->up : &s->down;
    ssize_t n;

    if (!d->f.started && d->f.scanned == 0 && !d->f.head) {
        d->request = dir == PROTO_UP;
        d->linelen = 0;
        d->bdat_left = 0;
        if (dir == PROTO_UP) {
            d->cmd = s->expect_body ? CMD_BODY : CMD_OTHER;
            d->body = B_BOL;
        } else {
            d->answers = (enum smtp_cmd)u->info;
        }
    }
    n = proto_drive(&d->f, in, u, SMTP_LINE_MAX, smtp_feed);
    if (n <= 0)
        return n;
    if (dir == PROTO_UP) {
        u->info = d->cmd;
        if (d->cmd == CMD_BODY) {
            u->flags |= PROTO_FORWARD;
            if (u->flags & PROTO_END)
                s->expect_body = false;
        }
        return n;
    }
    if (u->flags & PROTO_END) {
        if (d->answers == CMD_DATA && d->code == 354)
            s->expect_body = true;
        if (d->answers == CMD_STARTTLS && d->code == 220)
            s->tls_now = true;
    }
    return n;
}

/* After STARTTLS's 220 both sides speak TLS: said once; if the session
 * upgrades, the conversation goes on with the client's new EHLO (no
 * greeting comes inside TLS). */
static enum proto_mode smtp_mode(void *st)
{
    struct smtp_state *s = st;

    if (!s->tls_now)
        return PROTO_FRAMED;
    s->tls_now = false;
    return PROTO_STARTTLS;
}

static void smtp_error_reply(void *st, const struct proto_error *e,
                             const struct proto_unit *req, struct rng *r,
                             struct evbuffer *out, bool *close)
{
    long long code = e->code >= 400 && e->code <= 599 ? e->code : 451;
    const char *enhanced = e->enhanced != NULL && e->enhanced[0] != '\0'
                               ? e->enhanced
                               : code >= 500 ? "5.3.0" : "4.3.0";

    (void)st;
    (void)req;
    (void)r;
    char prefix[64];

    *close = code == 421; /* "service not available, closing" */
    snprintf(prefix, sizeof(prefix), "%lld %s ", code, enhanced);
    proto_error_line(out, prefix, e->message,
                     "Requested action aborted: local error in processing "
                     "(vaurien)");
}

/* The verb of a command line as sent, and the rest of the line (without
 * the blanks after the verb and the line end) as args[0] once the line has
 * ended; BDAT's chunk is no part of it. The message after DATA's 354 is a
 * request too (u->info says so), but one with no verb: it names nothing,
 * which tells it from the DATA command before it. */
static void smtp_parts(const unsigned char *p, size_t n,
                       const struct proto_unit *u, struct proto_parts *out)
{
    struct proto_str verb;
    const unsigned char *lf;
    size_t at, end;

    if (n == 0 || (u != NULL && u->info == CMD_BODY))
        return;
    if (proto_words(p, n, " \t\r", &verb, 1) == 0)
        return;
    out->command = verb;
    lf = memchr(p, '\n', n);
    if (lf == NULL)
        return; /* the line goes on */
    end = (size_t)(lf - p);
    if (end > 0 && p[end - 1] == '\r')
        end--;
    at = (size_t)((const unsigned char *)verb.p - p) + verb.n;
    while (at < end && (p[at] == ' ' || p[at] == '\t'))
        at++;
    if (at < end) {
        out->args[0].p = (const char *)p + at;
        out->args[0].n = end - at;
        out->nargs = 1;
    }
}

static const struct opt_decl smtp_opts[] = { { 0 } };

const struct proto_ops proto_smtp = {
    .name = "smtp",
    .help = "SMTP with pipelining; errors are 4xx/5xx replies with an "
            "enhanced status code.",
    .opts = smtp_opts,
    .state_size = sizeof(struct smtp_state),
    .server_first = true,
    .frame = smtp_frame,
    .mode = smtp_mode,
    .error_reply = smtp_error_reply,
    .parts = smtp_parts,
};
