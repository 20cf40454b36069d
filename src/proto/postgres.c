/*
 * postgres: the PostgreSQL frontend/backend protocol, version 3.
 *
 *   client: startup packets (no type byte: SSLRequest, GSSENCRequest,
 *           CancelRequest, StartupMessage) ─▶ passed, no faults;
 *           the TLS requests answered 'N' by the proxy unless it upgrades
 *           both sides (PROTO_TLSASK)
 *           typed messages: a simple Query ('Q') or a FunctionCall is a
 *           request; an extended-protocol group (Parse, Bind, Describe,
 *           Execute, Close, Flush) up to its Sync is one request;
 *           authentication, COPY data, Terminate and a Flush before any
 *           group pass, answer nothing
 *   server: authentication up to the first ReadyForQuery ─▶ passed;
 *           then a reply runs to ReadyForQuery ('Z'), COPY in and out
 *           included; NotificationResponse, NoticeResponse and
 *           ParameterStatus between replies answer no request (PROTO_PUSH)
 *
 * An error reply is an ErrorResponse (severity ERROR, SQLSTATE `sqlstate`,
 * default 53300 "sorry, too many clients already") and a ReadyForQuery
 * whose status is the one the server last reported, but failed ('E') in a
 * transaction block, as a server's after an error. The server never saw
 * the failed statement and its block is still open, so until it leaves
 * that block the proxy keeps it failed (failed_block): what a server
 * would refuse gets 25P02 from the proxy, a COMMIT goes as ABORT. A
 * group's verdict is drawn at its first message; one the proxy answers
 * ends at a Flush too (the client may wait there), its ErrorResponse goes
 * out then and the ReadyForQuery at the Sync (group_erred, INFO_REST).
 * Replication connections, and GSSAPI encryption when the server agrees
 * to it, are passed through; an SSLRequest the server accepts is STARTTLS.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "proto/proto.h"

#define PG_STARTUP_MAX 10000u      /* the server's cap on a startup packet */
#define PG_MESSAGE_MAX 0x40000000u /* 1 GiB: the server's MaxAllocSize */
#define PG_HEAD_KEEP 1024u /* body bytes of a request's first message read
                              before its head is handed out (a matcher's
                              statement) */
#define PG_NAME_MAX 64u    /* a prepared statement name kept, NUL included */
#define PG_PARSE_KEEP (PG_NAME_MAX + 32u) /* body bytes of a Parse or Close
                              kept: the name and the statement's first word */
#define PG_ROLLBACKS_MAX 8u /* prepared ROLLBACKs remembered */

#define PG_CODE_SSL 80877103u
#define PG_CODE_GSSENC 80877104u
#define PG_CODE_CANCEL 80877102u
#define PG_MAJOR_3 3u

/* u->info of a request: its first message's type (0: a packet of the
 * startup stage), and flags. */
#define INFO_REQ 0x100u    /* every request: a reply's info is 0 when none
                              awaits it */
#define INFO_SSL 0x200u    /* an SSLRequest */
#define INFO_GSSENC 0x400u /* a GSSENCRequest */
#define INFO_ABORTED 0x800u /* refused: the block the proxy failed */
#define INFO_REST 0x1000u   /* refused: the rest of a group the proxy
                               answered, up to its Sync; or a lone Sync in
                               the block it failed */
#define INFO_EXIT 0x2000u   /* the end of the block the proxy failed:
                               its ReadyForQuery ends failed_here */

/* The default SQLSTATE: the error behavior's default (08004, MySQL's)
 * means "the protocol's own". */
#define PG_SQLSTATE "53300"
#define PG_SQLSTATE_OPT_DEFAULT "08004"
#define PG_MESSAGE "sorry, too many clients already"
#define PG_MESSAGE_MAX_LEN 1024
#define PG_ABORTED_STATE "25P02"
#define PG_ABORTED_MESSAGE "current transaction is aborted, commands ignored " \
                           "until end of transaction block"

enum pg_stage {
    PG_STARTUP, /* untyped packets from the client */
    PG_AUTH,    /* typed messages, the server's first 'Z' not seen yet */
    PG_READY,   /* requests and replies */
};

struct pg_state;

/* One direction's position in its bytes. */
struct pg_dir {
    struct proto_framer f;  /* first: the driver's state */
    struct pg_state *s;
    bool request;
    bool untyped;           /* the current message is a startup packet */
    unsigned char hdr[8];   /* type and length, or length and code */
    unsigned hdrlen, hdrneed;
    uint32_t left;          /* body bytes left of the current message */
    uint32_t body;          /* body bytes seen of it */
    unsigned char type;     /* its type (0: a startup packet) */
    unsigned nmsg;          /* messages begun in this unit */
    bool single;            /* the unit is one message */
    bool pause;             /* stop reading after this message (a group's
                               first: its verdict comes before the rest) */
    bool paused;            /* read nothing more in this frame() call */
    bool at_flush;          /* the unit ended at a Flush */
    unsigned char keep[PG_PARSE_KEEP]; /* request: the first body bytes of
                               the current message, a Parse or a Close */
    unsigned keeplen;
    /* request */
    uint32_t info;          /* the request's u->info */
    unsigned uflags;        /* its flags */
    bool startup;           /* the packet is a StartupMessage */
    int kmatch;             /* startup: chars of "replication" matched in
                               the current key, -1 none */
    bool in_value;          /* in a parameter's value */
    bool repl_value;        /* that value is replication's */
    char val[8];            /* its first bytes */
    unsigned vallen;
    bool params_end;        /* the empty key that ends them was read */
    /* reply */
    uint32_t reqinfo;       /* the awaited request's info (0: none) */
    bool tlsans;            /* the one byte answering a TLS request */
    bool push;              /* unsolicited */
};

struct pg_state {
    struct pg_dir up, down;
    enum pg_stage stage;
    char txn;               /* 'I', 'T' or 'E', from the last 'Z' */
    bool copy_in;           /* the server awaits COPY data */
    bool failed_here;       /* the proxy failed the transaction block the
                               server still has open (its last 'Z' said
                               'T', an injected error said 'E') */
    bool rolling_back;      /* the end of that block (ROLLBACK, ABORT, TO
                               SAVEPOINT too, a COMMIT sent as ABORT) went
                               to the server, which runs what follows it:
                               its 'Z' ends failed_here (INFO_EXIT) */
    /* prepared statements (named, or the unnamed one, "") whose text is a
     * ROLLBACK or an ABORT: pgjdbc binds its "S_n" ROLLBACK once it ran
     * five times, and that too ends a block the proxy failed */
    char rollbacks[PG_ROLLBACKS_MAX][PG_NAME_MAX];
    bool rollback_used[PG_ROLLBACKS_MAX];
    unsigned rollback_next; /* the slot a new one takes when all are used */
    bool group_erred;       /* the proxy answered the extended-protocol
                               group being read: the rest of it, up to its
                               Sync, never reaches the server */
    bool tls_now;           /* the server accepted an SSLRequest */
    bool raw;               /* not framed any more */
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Message types a client sends once started. */
static bool client_type(unsigned char t)
{
    return t != 0 && strchr("QFPBDECHSdcfpX", t) != NULL;
}

/* Message types a server sends. */
static bool server_type(unsigned char t)
{
    return t != 0 && strchr("RSKZENATDCI123ntsGHWdcVv", t) != NULL;
}

/* Messages a server sends on its own between replies. */
static bool async_type(unsigned char t)
{
    return t == 'A' || t == 'N' || t == 'S';
}

/* The startup packet's parameters (key NUL value NUL ..., NUL): notes a
 * "replication" parameter that is not false. */
static void startup_params(struct pg_dir *d, const unsigned char *p, size_t n)
{
    static const char key[] = "replication";

    for (size_t i = 0; i < n && !d->params_end; i++) {
        unsigned char c = p[i];
        if (!d->in_value) {
            if (c == 0) {
                if (d->kmatch == 0) {
                    d->params_end = true; /* the empty key */
                    return;
                }
                d->repl_value = d->kmatch == (int)sizeof(key) - 1;
                d->in_value = true;
                d->vallen = 0;
                d->kmatch = 0;
            } else if (d->kmatch >= 0 && d->kmatch < (int)sizeof(key) - 1 &&
                       c == (unsigned char)key[d->kmatch]) {
                d->kmatch++;
            } else {
                d->kmatch = -1;
            }
            continue;
        }
        if (c != 0) {
            if (d->vallen < sizeof(d->val) - 1)
                d->val[d->vallen++] = (char)c;
            else
                d->vallen = sizeof(d->val); /* too long for false */
            continue;
        }
        d->in_value = false;
        if (d->repl_value) {
            static const char *const no[] = { "false", "off", "no", "0" };
            bool off = false;
            if (d->vallen < sizeof(d->val)) {
                d->val[d->vallen] = '\0';
                for (size_t k = 0; k < sizeof(no) / sizeof(no[0]); k++)
                    off |= strcasecmp(d->val, no[k]) == 0;
            }
            if (!off)
                d->s->raw = true; /* a replication connection */
        }
    }
}

/* Whether len may be a startup packet's length: the server refuses one
 * under 8 (length and code) or over its cap as soon as it has read it. */
static bool startup_length(uint32_t len)
{
    return len >= 8 && len <= PG_STARTUP_MAX;
}

/* The client's startup packet header is read: what it asks. */
static bool startup_header(struct pg_dir *d, uint32_t len)
{
    uint32_t code = be32(d->hdr + 4);

    d->info = INFO_REQ;
    d->single = true;
    if (code == PG_CODE_SSL || code == PG_CODE_GSSENC) {
        if (len != 8)
            return false;
        d->info |= code == PG_CODE_SSL ? INFO_SSL : INFO_GSSENC;
        d->uflags = PROTO_NOFAULT | PROTO_TLSASK;
        return true;
    }
    d->uflags = PROTO_NOFAULT | PROTO_NOREPLY;
    if (code == PG_CODE_CANCEL)
        return len == 16;
    d->startup = true;
    d->kmatch = 0;
    d->in_value = d->repl_value = d->params_end = false;
    return code >> 16 == PG_MAJOR_3 && len > 8;
}

/* The first message of a client's unit: what kind of request it is. */
static void request_kind(struct pg_dir *d)
{
    struct pg_state *s = d->s;
    unsigned char t = d->type;

    d->info = INFO_REQ | t;
    d->uflags = 0;
    d->single = true;
    if (s->group_erred && t != 0 && strchr("PBDECHS", t) != NULL) {
        /* what follows a Flush in a group the proxy answered: the server
         * would discard it up to the Sync, then say ReadyForQuery */
        d->info |= INFO_REST;
        d->uflags = PROTO_REFUSE;
        d->single = t == 'S';
        return;
    }
    switch (t) {
    case 'Q':
    case 'F':
        break;
    case 'd':
    case 'c':
    case 'f':
    case 'p':
    case 'X':
        d->uflags = PROTO_NOFAULT | PROTO_NOREPLY;
        break;
    case 'H':
        /* a Flush before any group (libpq's pipeline mode may send one):
         * the server has nothing unsent, so it answers nothing, and the
         * group after it is a request of its own, named by its Parse */
        d->uflags = PROTO_NOFAULT | PROTO_NOREPLY;
        break;
    case 'S':
        if (s->copy_in) {
            /* ignored by a server in COPY FROM STDIN (libpq sends a Sync
             * after CopyDone in the extended protocol) */
            d->uflags = PROTO_NOFAULT | PROTO_NOREPLY;
        }
        break;
    default: /* Parse, Bind, Describe, Execute, Close: up to Sync */
        d->single = false;
        d->pause = true;
        break;
    }
    if (s->stage != PG_READY)
        d->uflags |= PROTO_NOFAULT;
}

/* A server's first message of a unit: a reply, or a message of its own. */
static void reply_kind(struct pg_dir *d)
{
    struct pg_state *s = d->s;

    d->push = s->stage != PG_READY || async_type(d->type) || d->reqinfo == 0;
    d->single = d->push;
}

/* A message's header is complete. Returns false when it is not the
 * protocol. */
static bool header_done(struct pg_dir *d)
{
    uint32_t len;

    d->body = 0;
    d->keeplen = 0;
    d->nmsg++;
    if (d->untyped) {
        len = be32(d->hdr);
        if (!startup_length(len))
            return false;
        d->type = 0;
        d->left = len - 8;
        d->f.head = true;
        return startup_header(d, len);
    }
    d->type = d->hdr[0];
    len = be32(d->hdr + 1);
    if (len < 4 || len > PG_MESSAGE_MAX)
        return false;
    d->left = len - 4;
    if (d->request) {
        if (d->nmsg == 1)
            request_kind(d);
        if (d->nmsg == 1 && d->left == 0)
            d->f.head = true;
        return true;
    }
    if (d->type == 'Z' && d->left != 1)
        return false;
    if (d->nmsg == 1)
        reply_kind(d);
    d->f.head = true;
    return true;
}

static struct proto_str first_word(struct proto_str st, bool complete);
static bool is_word(struct proto_str w, const char *name);

/* The slot of the prepared ROLLBACK named name (len bytes), or -1. */
static int rollback_slot(const struct pg_state *s, const char *name,
                         size_t len)
{
    if (len >= PG_NAME_MAX)
        return -1;
    for (unsigned i = 0; i < PG_ROLLBACKS_MAX; i++)
        if (s->rollback_used[i] && strlen(s->rollbacks[i]) == len &&
            memcmp(s->rollbacks[i], name, len) == 0)
            return (int)i;
    return -1;
}

/* The client prepared the statement name (len bytes), a ROLLBACK or not,
 * or closed it (not): remembered or forgotten. A name is prepared again
 * only once closed, so its last Parse says what it is; when every slot is
 * taken the oldest goes. */
static void rollback_note(struct pg_state *s, const char *name, size_t len,
                          bool rollback)
{
    int i = rollback_slot(s, name, len);

    if (!rollback || i >= 0 || len >= PG_NAME_MAX) {
        if (!rollback && i >= 0)
            s->rollback_used[i] = false;
        return;
    }
    for (i = 0; i < (int)PG_ROLLBACKS_MAX && s->rollback_used[i]; i++)
        ;
    if (i == (int)PG_ROLLBACKS_MAX) {
        i = (int)s->rollback_next;
        s->rollback_next = (s->rollback_next + 1) % PG_ROLLBACKS_MAX;
    }
    memcpy(s->rollbacks[i], name, len);
    s->rollbacks[i][len] = '\0';
    s->rollback_used[i] = true;
}

/* A Parse or a Close ended (d->keep holds its first bytes): what the
 * prepared statement it names is now. A simple Query drops the unnamed
 * one, as the server does. */
static void statement_noted(struct pg_state *s, const struct pg_dir *d)
{
    const char *p = (const char *)d->keep, *nul, *end;
    struct proto_str st, w;

    if (d->type == 'Q') {
        rollback_note(s, "", 0, false);
        return;
    }
    if (d->type == 'C') {
        if (d->keeplen > 0 && p[0] == 'S' &&
            (nul = memchr(p + 1, 0, d->keeplen - 1)) != NULL)
            rollback_note(s, p + 1, (size_t)(nul - p - 1), false);
        return;
    }
    nul = memchr(p, 0, d->keeplen);
    if (nul == NULL)
        return; /* a name longer than any kept: never a slot's */
    st.p = nul + 1;
    end = memchr(st.p, 0, d->keeplen - (size_t)(st.p - p));
    st.n = end != NULL ? (size_t)(end - st.p)
                       : d->keeplen - (size_t)(st.p - p);
    w = first_word(st, end != NULL);
    rollback_note(s, p, (size_t)(nul - p),
                  is_word(w, "ROLLBACK") || is_word(w, "ABORT"));
}

/* A message is complete. */
static void message_done(struct pg_dir *d)
{
    struct pg_state *s = d->s;

    d->hdrlen = 0;
    if (d->request) {
        d->f.head = true;
        if (d->untyped && d->startup)
            s->stage = PG_AUTH; /* typed messages from now on */
        if (!d->untyped && (d->type == 'P' || d->type == 'C' || d->type == 'Q'))
            statement_noted(s, d);
        if (d->single || d->type == 'S') {
            d->f.done = true;
            if (d->type == 'S')
                s->group_erred = false;
        } else if (d->type == 'H' && s->group_erred &&
                   !(d->info & INFO_REST)) {
            /* the client may wait for replies now: the error goes out */
            d->f.done = true;
            d->at_flush = true;
        }
        if (d->pause) {
            d->pause = false;
            d->paused = !d->f.done;
        }
        return;
    }
    switch (d->type) {
    case 'Z':
        s->stage = PG_READY;
        s->copy_in = false;
        d->f.done = true; /* a reply's end (or, alone, the handshake's) */
        return;
    case 'G':
        if (!d->push)
            s->copy_in = true;
        break;
    case 'W':
        s->raw = true; /* CopyBoth: streaming replication */
        d->f.done = true;
        return;
    default:
        break;
    }
    if (d->single)
        d->f.done = true;
}

/* The server's one-byte answer to an SSLRequest or a GSSENCRequest. */
static void tls_answer(struct pg_dir *d, unsigned char c)
{
    struct pg_state *s = d->s;

    d->f.head = true;
    d->f.done = true;
    if (c == 'N')
        return;
    if (c == 'S' && (d->reqinfo & INFO_SSL))
        s->tls_now = true;
    else if (c == 'G' && (d->reqinfo & INFO_GSSENC))
        s->raw = true; /* GSSAPI encryption: nothing to frame */
    else
        d->f.error = true;
}

/* The server's ReadyForQuery says status; exit: it answers the end of the
 * block the proxy failed (INFO_EXIT). That block stays failed for the
 * client until the server leaves it ('I' after the ABORT a COMMIT became,
 * 'E') or answers its end (a ROLLBACK TO SAVEPOINT says 'T'); a 'T' that
 * answers an earlier request does not end it. */
static void server_status(struct pg_state *s, char status, bool exit)
{
    s->txn = status;
    if (status != 'T' || exit)
        s->failed_here = s->rolling_back = false;
    if (s->failed_here)
        s->txn = 'E';
}

static size_t pg_feed(void *st, const unsigned char *p, size_t n)
{
    struct pg_dir *d = st;
    size_t i = 0;

    while (i < n && !d->f.done && !d->f.error && !d->paused) {
        if (d->tlsans) {
            tls_answer(d, p[i++]);
            break;
        }
        if (d->hdrlen == 0) {
            d->untyped = d->request && d->s->stage == PG_STARTUP;
            d->hdrneed = d->untyped ? 8 : 5;
        }
        if (d->hdrlen < d->hdrneed) {
            d->hdr[d->hdrlen++] = p[i++];
            if (d->hdrlen == 1 && !d->untyped &&
                !(d->request ? client_type(d->hdr[0]) : server_type(d->hdr[0]))) {
                d->f.error = true;
                break;
            }
            if (d->hdrlen == 4 && d->untyped && !startup_length(be32(d->hdr))) {
                /* the server closes on these four bytes: so must the
                 * framer, not wait for four more */
                d->f.error = true;
                break;
            }
            if (d->hdrlen < d->hdrneed)
                continue;
            if (!header_done(d)) {
                d->f.error = true;
                break;
            }
        } else {
            size_t take = n - i;
            if (take > d->left)
                take = d->left;
            if (d->untyped && d->startup)
                startup_params(d, p + i, take);
            if (d->request && (d->type == 'P' || d->type == 'C') &&
                d->keeplen < PG_PARSE_KEEP) {
                size_t k = take < PG_PARSE_KEEP - d->keeplen
                               ? take
                               : PG_PARSE_KEEP - d->keeplen;
                memcpy(d->keep + d->keeplen, p + i, k);
                d->keeplen += (unsigned)k;
            }
            if (!d->request && d->type == 'Z' && d->body == 0 && take > 0)
                server_status(d->s, (char)p[i],
                              (d->reqinfo & INFO_EXIT) != 0);
            d->left -= (uint32_t)take;
            d->body = d->body + take > PG_HEAD_KEEP ? PG_HEAD_KEEP + 1
                                                    : d->body + (uint32_t)take;
            i += take;
            if (d->request && d->nmsg == 1 && d->body >= PG_HEAD_KEEP)
                d->f.head = true; /* enough of the statement */
        }
        if (d->left == 0)
            message_done(d);
    }
    return i;
}

static void pg_parts(const unsigned char *p, size_t n,
                     const struct proto_unit *u, struct proto_parts *out);

static bool is_word(struct proto_str w, const char *name)
{
    return w.n == strlen(name) && strncasecmp(w.p, name, w.n) == 0;
}

/* Whether the Bind at the front of p (m bytes) binds a statement the
 * client prepared as a ROLLBACK or an ABORT. */
static bool binds_a_rollback(const struct pg_state *s, const unsigned char *p,
                             size_t m)
{
    const unsigned char *stmt, *nul;

    if (m <= 5 || (nul = memchr(p + 5, 0, m - 5)) == NULL)
        return false; /* the portal's name is cut */
    stmt = nul + 1;
    nul = memchr(stmt, 0, m - (size_t)(stmt - p));
    return nul != NULL &&
           rollback_slot(s, (const char *)stmt, (size_t)(nul - stmt)) >= 0;
}

/* A request (the n bytes at the front of in) while the proxy holds failed
 * a transaction block the server still has open. A server would refuse
 * it (25P02) but for the ends of the block: ROLLBACK and ABORT (TO
 * SAVEPOINT too), as a Query, a Parse or the Bind of one prepared before,
 * go to the server, which leaves the block; a COMMIT, which would commit
 * what ran before the injected error, becomes "ABORT " (as long, where it
 * lies): the server rolls back and answers ROLLBACK, as it answers a
 * COMMIT in a failed block (a prepared COMMIT cannot change: refused). A
 * lone Sync gets the proxy's ReadyForQuery, 'E', where the server would
 * say 'T'. Anything else is refused by the proxy. Once the block's end is
 * sent, what follows it reaches the server, which runs it after the end
 * (rolling_back). Returns the flags to add to the request's. */
static unsigned failed_block(struct pg_state *s, struct pg_dir *d,
                             struct evbuffer *in, size_t n)
{
    unsigned char t = (unsigned char)(d->info & 0xffu);
    struct proto_parts parts;
    unsigned char *p;
    size_t m;

    if (d->uflags & PROTO_NOREPLY)
        return 0; /* COPY data, Terminate, a Flush */
    if (t == 'S') {
        d->info |= INFO_REST;
        return PROTO_REFUSE;
    }
    if (t == 'Q' || t == 'P' || t == 'B') {
        m = n < 5 + PG_HEAD_KEEP ? n : 5 + PG_HEAD_KEEP;
        p = evbuffer_pullup(in, (ev_ssize_t)m);
        if (p == NULL)
            return 0;
        if (t == 'B') {
            if (binds_a_rollback(s, p, m))
                goto ends;
            goto refused;
        }
        memset(&parts, 0, sizeof(parts));
        pg_parts(p, m, NULL, &parts);
        if (parts.statement.n > 0 && is_word(parts.command, "COMMIT")) {
            memcpy(p + (parts.command.p - (const char *)p), "ABORT ", 6);
            goto ends;
        }
        if (parts.statement.n > 0 && (is_word(parts.command, "ROLLBACK") ||
                                      is_word(parts.command, "ABORT")))
            goto ends;
    }
refused:
    d->info |= INFO_ABORTED;
    return PROTO_REFUSE;
ends:
    s->rolling_back = true;
    d->info |= INFO_EXIT;
    return 0;
}

/* Edits happen while the proxy holds a block failed (failed_block). */
static bool pg_edits(void *st)
{
    return ((struct pg_state *)st)->failed_here;
}

static ssize_t pg_frame(void *st, enum proto_dir dir, struct evbuffer *in,
                        struct proto_unit *u)
{
    struct pg_state *s = st;
    struct pg_dir *d = dir == PROTO_UP ? &s->up : &s->down;
    bool first;
    ssize_t n;

    if (s->txn == 0)
        s->txn = 'I';
    if (!d->f.started && !d->f.head) {
        if (d->f.scanned == 0) {
            d->s = s;
            d->request = dir == PROTO_UP;
            d->nmsg = 0;
            d->hdrlen = 0;
            d->single = d->push = false;
            d->pause = d->at_flush = false;
            d->info = 0;
            d->uflags = 0;
            d->startup = false;
        }
        if (dir == PROTO_DOWN && d->nmsg == 0 && d->hdrlen == 0) {
            d->reqinfo = u->info;
            d->tlsans = (u->info & (INFO_SSL | INFO_GSSENC)) != 0;
        }
    }
    first = !d->f.started;
    d->paused = false;
    n = proto_drive(&d->f, in, u, PG_HEAD_KEEP + 8, pg_feed);
    if (n <= 0)
        return n;
    if (dir == PROTO_UP && first && s->failed_here && !s->rolling_back &&
        u->skip == 0 && s->stage == PG_READY)
        d->uflags |= failed_block(s, d, in, (size_t)n);
    if (dir == PROTO_DOWN) {
        if (d->push)
            u->flags |= PROTO_PUSH;
        return n;
    }
    u->info = d->info;
    u->flags |= d->uflags;
    return n;
}

static enum proto_mode pg_mode(void *st)
{
    struct pg_state *s = st;

    if (s->tls_now) {
        /* said once: the startup packet comes again inside TLS */
        s->tls_now = false;
        return PROTO_STARTTLS;
    }
    return s->raw ? PROTO_RAW : PROTO_FRAMED;
}

/* Appends a field of an ErrorResponse: its code and text, NUL-ended. */
static void field(struct evbuffer *out, char code, const char *text,
                  size_t len)
{
    evbuffer_add(out, &code, 1);
    evbuffer_add(out, text, len);
    evbuffer_add(out, "", 1);
}

static void put32(struct evbuffer *out, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };

    evbuffer_add(out, b, 4);
}

/* An SSLRequest or GSSENCRequest the proxy cannot relay: 'N', as a server
 * without TLS says. Else an ErrorResponse and a ReadyForQuery: the drawn
 * error, or 25P02 for a request refused in a block the proxy failed. */
static void pg_error_reply(void *st, const struct proto_error *e,
                           const struct proto_unit *req, struct rng *r,
                           struct evbuffer *out, bool *close)
{
    struct pg_state *s = st;
    const char *state = e->sqlstate != NULL && strlen(e->sqlstate) == 5 &&
                                strcmp(e->sqlstate, PG_SQLSTATE_OPT_DEFAULT) != 0
                            ? e->sqlstate
                            : PG_SQLSTATE;
    const char *msg = e->message != NULL && e->message[0] != '\0'
                          ? e->message
                          : PG_MESSAGE;
    size_t mlen = strlen(msg);
    char status;

    (void)r;
    *close = false;
    if (req->info & (INFO_SSL | INFO_GSSENC)) {
        evbuffer_add(out, "N", 1);
        return;
    }
    if (req->info & INFO_EXIT)
        s->rolling_back = false; /* the block's end never reaches the
                                    server: it stays failed */
    status = s->txn == 'T' || s->txn == 'E' ? 'E' : 'I';
    if (req->info & INFO_REST) {
        /* the ReadyForQuery that ends a group the proxy answered */
        s->txn = status;
        evbuffer_add(out, "Z", 1);
        put32(out, 5);
        evbuffer_add(out, &status, 1);
        return;
    }
    if (req->info & INFO_ABORTED) {
        state = PG_ABORTED_STATE;
        msg = PG_ABORTED_MESSAGE;
        mlen = strlen(msg);
    }
    if (mlen > PG_MESSAGE_MAX_LEN)
        mlen = PG_MESSAGE_MAX_LEN;
    /* in a transaction block an error fails it, as the server's would */
    if (s->txn == 'T')
        s->failed_here = true;
    s->txn = status;
    evbuffer_add(out, "E", 1);
    put32(out, (uint32_t)(4 + 7 + 7 + 7 + 2 + mlen + 1));
    field(out, 'S', "ERROR", 5);
    field(out, 'V', "ERROR", 5);
    field(out, 'C', state, 5);
    field(out, 'M', msg, mlen);
    evbuffer_add(out, "", 1);
    evbuffer_add(out, "Z", 1);
    put32(out, 5);
    evbuffer_add(out, &status, 1);
    if ((req->info & 0xffu) != 0 && strchr("PBDECH", (int)(req->info & 0xffu)))
        s->group_erred = true; /* its rest is refused up to the Sync */
}

/* A group the proxy answered ended at a Flush: the client waits for what
 * the server would send by now, the ErrorResponse alone (ReadyForQuery
 * comes after its Sync, INFO_REST). The answer's ReadyForQuery (6 bytes)
 * becomes part of the ErrorResponse, a field of a type no client reads
 * ('x', "fill"), so its length does not change. */
static void pg_error_amend(void *st, const struct proto_unit *u,
                           struct evbuffer *answer)
{
    struct pg_state *s = st;
    size_t len = evbuffer_get_length(answer);
    unsigned char *p;
    uint32_t elen;

    (void)u;
    if (!s->up.at_flush || len < 12)
        return;
    p = evbuffer_pullup(answer, -1);
    if (p == NULL || p[0] != 'E' || p[len - 6] != 'Z' || p[len - 7] != 0)
        return;
    elen = be32(p + 1) + 6;
    p[1] = (unsigned char)(elen >> 24);
    p[2] = (unsigned char)(elen >> 16);
    p[3] = (unsigned char)(elen >> 8);
    p[4] = (unsigned char)elen;
    memcpy(p + len - 7, "xfill\0", 7);
}

#define PG_KINDS(X)                                                          \
    X('Q', "QUERY") X('F', "FUNCTIONCALL") X('P', "PARSE") X('B', "BIND")    \
    X('D', "DESCRIBE") X('E', "EXECUTE") X('C', "CLOSE") X('H', "FLUSH")     \
    X('S', "SYNC") X('d', "COPYDATA") X('c', "COPYDONE") X('f', "COPYFAIL")  \
    X('p', "PASSWORD") X('X', "TERMINATE")

#define PG_KIND_NAME(t, name) [t] = name,
static const char *const kind_names[128] = { PG_KINDS(PG_KIND_NAME) };
#undef PG_KIND_NAME

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* The statement's first word, when it is all there (a non-word byte
 * follows it, or the statement ends, complete, after it). */
static struct proto_str first_word(struct proto_str st, bool complete)
{
    struct proto_str w = { NULL, 0 };
    size_t i = 0, j;

    while (i < st.n && isspace((unsigned char)st.p[i]))
        i++;
    for (j = i; j < st.n && word_char(st.p[j]); j++)
        ;
    if (j > i && (j < st.n || complete)) {
        w.p = st.p + i;
        w.n = j - i;
    }
    return w;
}

/* The parts of a request: the packets of the startup stage (their first
 * byte is a length's, 0) are named STARTUP, SSLREQUEST, GSSENCREQUEST or
 * CANCEL. A typed message's statement is a Query's text or a Parse's
 * query, up to its NUL or to n; the command is the statement's first
 * word (SELECT, UPDATE, BEGIN...) once it is whole, else the first
 * message's kind (QUERY, BIND, COPYDATA, ...) when the statement has no
 * word. */
static void pg_parts(const unsigned char *p, size_t n,
                     const struct proto_unit *u, struct proto_parts *out)
{
    const char *name;
    size_t len, end, at = 5;

    (void)u;
    if (n == 0)
        return;
    if (p[0] == 0) {
        uint32_t code;
        if (n < 8)
            return;
        code = be32(p + 4);
        name = code == PG_CODE_SSL      ? "SSLREQUEST"
               : code == PG_CODE_GSSENC ? "GSSENCREQUEST"
               : code == PG_CODE_CANCEL ? "CANCEL"
                                        : "STARTUP";
        out->command.p = name;
        out->command.n = strlen(name);
        return;
    }
    if (p[0] >= 128 || kind_names[p[0]] == NULL || n < 5)
        return;
    name = kind_names[p[0]];
    len = be32(p + 1);
    if (len < 4)
        return;
    end = len - 4 < n - 5 ? 5 + (len - 4) : n; /* the message's end, or n */
    if (p[0] == 'P') {
        const unsigned char *nul = memchr(p + at, 0, end - at);
        if (nul == NULL)
            return; /* the statement's name is cut */
        at = (size_t)(nul - p) + 1;
    }
    if (p[0] == 'Q' || p[0] == 'P') {
        const unsigned char *nul = memchr(p + at, 0, end - at);
        struct proto_str w;
        out->statement.p = (const char *)p + at;
        out->statement.n = nul != NULL ? (size_t)(nul - p) - at : end - at;
        w = first_word(out->statement, nul != NULL);
        if (w.n > 0) {
            out->command = w;
            return;
        }
        for (size_t i = 0; i < out->statement.n; i++) {
            if (isspace((unsigned char)out->statement.p[i]))
                continue;
            if (word_char(out->statement.p[i]))
                return; /* a first word not whole yet */
            goto kind; /* "(SELECT 1)", a comment: no first word */
        }
        if (nul != NULL)
            goto kind; /* an empty statement */
        return; /* a first word not whole yet */
    }
kind:
    out->command.p = name;
    out->command.n = strlen(name);
}

static const struct opt_decl postgres_opts[] = { { 0 } };

const struct proto_ops proto_postgres = {
    .name = "postgres",
    .help = "PostgreSQL; errors are ErrorResponse + ReadyForQuery (default "
            "SQLSTATE 53300 \"sorry, too many clients already\").",
    .opts = postgres_opts,
    .state_size = sizeof(struct pg_state),
    .frame = pg_frame,
    .edits = pg_edits,
    .mode = pg_mode,
    .error_reply = pg_error_reply,
    .error_amend = pg_error_amend,
    .parts = pg_parts,
};
