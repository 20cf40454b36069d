/*
 * mysql: the MySQL / MariaDB client/server protocol.
 *
 *   handshake: greeting, response, auth exchange up to the server's OK —
 *              passed untouched, no faults
 *   commands:  each client packet (a logical packet: ≥ 16 MiB ones are
 *              split in several) is a request; its reply is read by the
 *              command's rules: OK / ERR, result sets (column count, column
 *              definitions, EOF unless CLIENT_DEPRECATE_EOF, rows, EOF/OK),
 *              several of them while SERVER_MORE_RESULTS_EXISTS, prepared
 *              statements
 *
 * An error reply is an ERR packet with the sequence id that follows the
 * request's last packet (1 for most; 2 after a request of 16 MiB split in
 * two, set by error_amend once the request has ended), the configured
 * error number and SQLSTATE (default 1040, 08004, "Too many
 * connections"), so the client library reports that error. A client's
 * SSL request is STARTTLS: the session upgrades both sides and frames on
 * inside TLS (--starttls), or passes the connection through. Compression,
 * LOCAL INFILE and binlog streams are passed through.
 */
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

#define MY_MAX_PACKET 0xffffffu
#define MY_KEEP 128 /* payload bytes kept to read a packet's fields */

#define CLIENT_COMPRESS 0x20u
#define CLIENT_PROTOCOL_41 0x200u
#define CLIENT_SSL 0x800u
#define CLIENT_DEPRECATE_EOF (1u << 24)

#define STATUS_CURSOR_EXISTS 0x0040u
#define STATUS_MORE_RESULTS 0x0008u

enum my_stage { ST_GREETING, ST_RESPONSE, ST_AUTH, ST_COMMAND };

#define CLIENT_QUERY_ATTRIBUTES (1u << 27) /* MySQL 8.0.23 */

/* u->info of a request: the command byte, and whether a COM_QUERY carries
 * query attributes before its text. */
#define INFO_QUERY_ATTRS 0x100u

/* The commands, by their first byte: the enum and the names parts() gives
 * (MySQL's, MariaDB's STMT_BULK_EXECUTE). */
#define MY_COMMANDS(X)                                                       \
    X(SLEEP, 0x00) X(QUIT, 0x01) X(INIT_DB, 0x02) X(QUERY, 0x03)             \
    X(FIELD_LIST, 0x04) X(CREATE_DB, 0x05) X(DROP_DB, 0x06)                  \
    X(REFRESH, 0x07) X(SHUTDOWN, 0x08) X(STATISTICS, 0x09)                   \
    X(PROCESS_INFO, 0x0a) X(CONNECT, 0x0b) X(PROCESS_KILL, 0x0c)             \
    X(DEBUG, 0x0d) X(PING, 0x0e) X(TIME, 0x0f) X(DELAYED_INSERT, 0x10)       \
    X(CHANGE_USER, 0x11) X(BINLOG_DUMP, 0x12) X(TABLE_DUMP, 0x13)            \
    X(CONNECT_OUT, 0x14) X(REGISTER_SLAVE, 0x15) X(STMT_PREPARE, 0x16)       \
    X(STMT_EXECUTE, 0x17) X(STMT_SEND_LONG_DATA, 0x18) X(STMT_CLOSE, 0x19)   \
    X(STMT_RESET, 0x1a) X(SET_OPTION, 0x1b) X(STMT_FETCH, 0x1c)              \
    X(DAEMON, 0x1d) X(BINLOG_DUMP_GTID, 0x1e) X(RESET_CONNECTION, 0x1f)      \
    X(CLONE, 0x20) X(STMT_BULK_EXECUTE, 0xfa)

#define MY_COMMAND_ENUM(name, code) COM_##name = code,
enum { MY_COMMANDS(MY_COMMAND_ENUM) };
#undef MY_COMMAND_ENUM

/* where a reply is */
enum my_phase {
    P_SIMPLE,     /* one packet */
    P_FIRST,      /* OK, ERR, or a column count */
    P_COLDEFS,    /* column definitions */
    P_COLEOF,     /* the EOF after them */
    P_ROWS,       /* rows up to EOF / OK */
    P_FIELDS,     /* COM_FIELD_LIST: definitions up to EOF */
    P_PREPARE,    /* the COM_STMT_PREPARE OK */
    P_PARAMS,     /* parameter definitions */
    P_PARAMEOF,
    P_PCOLS,      /* column definitions of a prepared statement */
    P_PCOLEOF,
};

struct mysql_state;

struct my_dir {
    struct proto_framer f;   /* first: the driver's state */
    struct mysql_state *s;
    bool request;
    unsigned char hdr[4];
    int hdrlen;
    uint32_t plen, pleft;    /* current physical packet */
    uint8_t seq;             /* its sequence id */
    uint8_t first_seq;       /* that of the logical packet's first one */
    bool cont;               /* the logical packet goes on */
    unsigned char first[MY_KEEP];
    size_t firstlen;
    uint64_t loglen;         /* bytes of the logical packet */
    enum my_stage stage;     /* the stage this unit belongs to */
    /* reply */
    uint8_t cmd;             /* the command it answers */
    enum my_phase phase;
    uint64_t left;           /* definitions left */
    uint64_t ncols;          /* prepared: columns after the parameters */
};

struct mysql_state {
    struct my_dir up, down;
    enum my_stage stage;
    uint32_t server_caps, client_caps;
    bool deprecate_eof;
    bool tls_now;            /* an SSL request ended: TLS starts */
    bool raw;                /* not framed any more */
    const char *why;         /* why it left the protocol, for the log */
};

/* Reads a length-encoded integer at p (n bytes there). Returns its size,
 * 0 if it does not fit. */
static size_t lenenc(const unsigned char *p, size_t n, uint64_t *v)
{
    size_t size;

    if (n == 0)
        return 0;
    if (p[0] < 0xfb) {
        *v = p[0];
        return 1;
    }
    size = p[0] == 0xfc ? 3 : p[0] == 0xfd ? 4 : p[0] == 0xfe ? 9 : 0;
    if (size == 0 || n < size)
        return 0;
    *v = 0;
    for (size_t i = size - 1; i >= 1; i--)
        *v = (*v << 8) | p[i];
    return size;
}

/* Status flags of an OK packet (header 0x00 or 0xfe). */
static uint16_t ok_status(const struct my_dir *d)
{
    uint64_t v;
    size_t at = 1, k;

    for (int i = 0; i < 2; i++) {
        k = lenenc(d->first + at, d->firstlen - at, &v);
        if (k == 0)
            return 0;
        at += k;
    }
    if (at + 2 > d->firstlen)
        return 0;
    return (uint16_t)(d->first[at] | d->first[at + 1] << 8);
}

/* Status flags of an EOF packet. */
static uint16_t eof_status(const struct my_dir *d)
{
    return d->firstlen >= 5 ? (uint16_t)(d->first[3] | d->first[4] << 8) : 0;
}

static bool is_eof(const struct my_dir *d)
{
    return d->firstlen > 0 && d->first[0] == 0xfe && d->loglen < 9;
}

/* A terminator of rows: EOF, or OK with 0xfe when EOF is deprecated. */
static bool is_terminator(const struct my_dir *d)
{
    return d->firstlen > 0 && d->first[0] == 0xfe && d->loglen < MY_MAX_PACKET;
}

static uint16_t terminator_status(const struct my_dir *d)
{
    return d->s->deprecate_eof ? ok_status(d) : eof_status(d);
}

static void after_definitions(struct my_dir *d, enum my_phase eof,
                              enum my_phase next)
{
    d->phase = d->s->deprecate_eof ? next : eof;
}

/* One logical packet of a reply in the command stage. */
static void reply_packet(struct my_dir *d)
{
    uint8_t b = d->firstlen > 0 ? d->first[0] : 0;
    uint64_t n;

    switch (d->phase) {
    case P_SIMPLE:
        d->f.done = true;
        return;
    case P_FIRST:
        if (b == 0x00) {
            if (!(ok_status(d) & STATUS_MORE_RESULTS))
                d->f.done = true;
            return;
        }
        if (b == 0xff) {
            d->f.done = true;
            return;
        }
        if (b == 0xfb) {
            d->s->raw = true;
            d->s->why = "LOCAL INFILE";
            d->f.done = true;
            return;
        }
        if (lenenc(d->first, d->firstlen, &n) == 0 || n == 0) {
            d->f.error = true;
            return;
        }
        d->left = n;
        d->phase = P_COLDEFS;
        return;
    case P_COLDEFS:
        if (--d->left == 0)
            after_definitions(d, P_COLEOF, P_ROWS);
        return;
    case P_COLEOF:
        if (!is_eof(d)) {
            d->f.error = true;
            return;
        }
        if (eof_status(d) & STATUS_CURSOR_EXISTS)
            d->f.done = true; /* rows come with COM_STMT_FETCH */
        else
            d->phase = P_ROWS;
        return;
    case P_ROWS:
        if (b == 0xff) {
            d->f.done = true;
            return;
        }
        if (is_terminator(d)) {
            if (terminator_status(d) & STATUS_MORE_RESULTS)
                d->phase = P_FIRST;
            else
                d->f.done = true;
        }
        return;
    case P_FIELDS:
        if (b == 0xff || is_eof(d))
            d->f.done = true;
        return;
    case P_PREPARE:
        if (b != 0x00 || d->firstlen < 9) {
            d->f.done = true; /* ERR */
            return;
        }
        d->ncols = (uint64_t)(d->first[5] | d->first[6] << 8);
        d->left = (uint64_t)(d->first[7] | d->first[8] << 8);
        if (d->left > 0)
            d->phase = P_PARAMS;
        else if (d->ncols > 0) {
            d->left = d->ncols;
            d->phase = P_PCOLS;
        } else
            d->f.done = true;
        return;
    case P_PARAMS:
        if (--d->left == 0)
            after_definitions(d, P_PARAMEOF, P_PCOLS);
        if (d->left == 0 && d->phase == P_PCOLS) {
            d->left = d->ncols;
            if (d->left == 0)
                d->f.done = true;
        }
        return;
    case P_PARAMEOF:
        if (!is_eof(d)) {
            d->f.error = true;
            return;
        }
        d->left = d->ncols;
        d->phase = P_PCOLS;
        if (d->left == 0)
            d->f.done = true;
        return;
    case P_PCOLS:
        if (--d->left == 0) {
            if (d->s->deprecate_eof)
                d->f.done = true;
            else
                d->phase = P_PCOLEOF;
        }
        return;
    case P_PCOLEOF:
        if (!is_eof(d))
            d->f.error = true;
        else
            d->f.done = true;
        return;
    }
}

static void greeting(struct mysql_state *s, const struct my_dir *d)
{
    const unsigned char *p = d->first, *nul;
    size_t n = d->firstlen, at;

    if (n < 2)
        return;
    nul = memchr(p + 1, 0, n - 1);
    if (nul == NULL)
        return;
    at = (size_t)(nul - p) + 1 + 4 + 8 + 1; /* conn id, auth data, filler */
    if (at + 2 <= n)
        s->server_caps = (uint32_t)(p[at] | p[at + 1] << 8);
    if (at + 7 <= n)
        s->server_caps |= (uint32_t)(p[at + 5] | p[at + 6] << 8) << 16;
}

/* A logical packet is complete. */
static void logical_done(struct my_dir *d)
{
    struct mysql_state *s = d->s;
    uint8_t b = d->firstlen > 0 ? d->first[0] : 0;

    d->f.head = true;
    if (d->request) {
        switch (s->stage) {
        case ST_GREETING:
            d->f.error = true; /* the server speaks first */
            return;
        case ST_RESPONSE:
            if (d->firstlen >= 4)
                s->client_caps = (uint32_t)(d->first[0] | d->first[1] << 8 |
                                            d->first[2] << 16 |
                                            (uint32_t)d->first[3] << 24);
            s->deprecate_eof =
                (s->client_caps & s->server_caps & CLIENT_DEPRECATE_EOF) != 0;
            if ((s->client_caps & CLIENT_SSL) && d->loglen == 32)
                s->tls_now = true; /* an SSL request, not the response */
            s->stage = ST_AUTH;
            break;
        case ST_AUTH:
            break;
        case ST_COMMAND:
            if (d->first_seq != 0) {
                d->f.error = true;
                return;
            }
            if (b == COM_CHANGE_USER)
                s->stage = ST_AUTH;
            if (b == COM_BINLOG_DUMP || b == COM_BINLOG_DUMP_GTID) {
                s->raw = true;
                s->why = "a binlog stream";
            }
            break;
        }
        d->f.done = true;
        return;
    }
    switch (s->stage) {
    case ST_GREETING:
        if (b != 0xff)
            greeting(s, d);
        s->stage = ST_RESPONSE;
        d->f.done = true;
        return;
    case ST_RESPONSE:
    case ST_AUTH:
        if (b == 0x00) {
            s->stage = ST_COMMAND;
            if (s->client_caps & s->server_caps & CLIENT_COMPRESS) {
                s->raw = true;
                s->why = "compression";
            }
        }
        d->f.done = true;
        return;
    case ST_COMMAND:
        reply_packet(d);
        return;
    }
}

static size_t my_feed(void *st, const unsigned char *p, size_t n)
{
    struct my_dir *d = st;
    size_t i = 0;

    while (i < n && !d->f.done && !d->f.error) {
        if (d->hdrlen < 4) {
            d->hdr[d->hdrlen++] = p[i++];
            if (d->hdrlen < 4)
                continue;
            d->plen = (uint32_t)(d->hdr[0] | d->hdr[1] << 8 | d->hdr[2] << 16);
            d->seq = d->hdr[3];
            d->pleft = d->plen;
            if (!d->cont) {
                d->firstlen = 0;
                d->loglen = 0;
                d->first_seq = d->seq;
            }
            if (!d->request)
                d->f.head = true;
        } else {
            size_t take = n - i;
            if (take > d->pleft)
                take = d->pleft;
            if (d->firstlen < MY_KEEP) {
                size_t keep = take < MY_KEEP - d->firstlen ? take
                                                           : MY_KEEP - d->firstlen;
                memcpy(d->first + d->firstlen, p + i, keep);
                d->firstlen += keep;
            }
            d->pleft -= (uint32_t)take;
            d->loglen += take;
            i += take;
            if (d->request && d->firstlen > 0)
                d->f.head = true; /* the command is known */
        }
        if (d->pleft == 0) {
            d->hdrlen = 0;
            if (d->plen == MY_MAX_PACKET) {
                d->cont = true;
                continue;
            }
            d->cont = false;
            logical_done(d);
        }
    }
    return i;
}

static ssize_t mysql_frame(void *st, enum proto_dir dir, struct evbuffer *in,
                           struct proto_unit *u)
{
    struct mysql_state *s = st;
    struct my_dir *d = dir == PROTO_UP ? &s->up : &s->down;
    ssize_t n;

    if (!d->f.started && d->f.scanned == 0 && !d->f.head) {
        d->s = s;
        d->request = dir == PROTO_UP;
        d->stage = s->stage;
        if (dir == PROTO_DOWN) {
            d->cmd = (uint8_t)u->info;
            switch (d->cmd) {
            case COM_QUERY:
            case COM_STMT_EXECUTE:
                d->phase = P_FIRST;
                break;
            case COM_STMT_FETCH:
                d->phase = P_ROWS;
                break;
            case COM_FIELD_LIST:
                d->phase = P_FIELDS;
                break;
            case COM_STMT_PREPARE:
                d->phase = P_PREPARE;
                break;
            default:
                d->phase = P_SIMPLE;
                break;
            }
        }
    }
    n = proto_drive(&d->f, in, u, MY_KEEP + 8, my_feed);
    if (n <= 0)
        return n;
    if (d->stage != ST_COMMAND) {
        /* the handshake: passed untouched */
        u->flags |= dir == PROTO_UP ? PROTO_NOFAULT | PROTO_NOREPLY : PROTO_PUSH;
        return n;
    }
    if (dir == PROTO_DOWN)
        return n;
    u->info = d->firstlen > 0 ? d->first[0] : 0;
    u->info2 = d->seq;
    if (u->info == COM_QUERY &&
        (s->client_caps & s->server_caps & CLIENT_QUERY_ATTRIBUTES))
        u->info |= INFO_QUERY_ATTRS;
    switch (u->info & 0xffu) {
    case COM_QUIT:
    case COM_STMT_SEND_LONG_DATA:
    case COM_STMT_CLOSE:
    case COM_CHANGE_USER:
        u->flags |= PROTO_NOREPLY | PROTO_NOFAULT;
        break;
    case COM_BINLOG_DUMP:
    case COM_BINLOG_DUMP_GTID:
        u->flags |= PROTO_NOFAULT;
        break;
    default:
        break;
    }
    return n;
}

static enum proto_mode mysql_mode(void *st)
{
    struct mysql_state *s = st;

    if (s->tls_now) {
        /* said once: the response comes again inside TLS */
        s->tls_now = false;
        return PROTO_STARTTLS;
    }
    return s->raw ? PROTO_RAW : PROTO_FRAMED;
}

static void mysql_error_reply(void *st, const struct proto_error *e,
                              const struct proto_unit *req, struct rng *r,
                              struct evbuffer *out, bool *close)
{
    long long code = e->code > 0 ? e->code : 1040;
    const char *state = e->sqlstate != NULL && strlen(e->sqlstate) == 5
                            ? e->sqlstate
                            : "HY000";
    const char *msg = e->message != NULL && e->message[0] != '\0'
                          ? e->message
                          : "Too many connections";
    size_t mlen = strlen(msg);
    unsigned char head[13];
    size_t plen;

    (void)st;
    (void)r;
    *close = false;
    if (mlen > 512)
        mlen = 512;
    plen = 1 + 2 + 1 + 5 + mlen;
    head[0] = (unsigned char)(plen & 0xff);
    head[1] = (unsigned char)(plen >> 8);
    head[2] = 0;
    head[3] = (unsigned char)((req->info2 + 1) & 0xff);
    head[4] = 0xff;
    head[5] = (unsigned char)(code & 0xff);
    head[6] = (unsigned char)((code >> 8) & 0xff);
    head[7] = '#';
    memcpy(head + 8, state, 5);
    evbuffer_add(out, head, sizeof(head));
    evbuffer_add(out, msg, mlen);
}

/* The request has ended: its ERR packet follows its last packet, whose
 * sequence id the last step carries (a request of 16 MiB or more is
 * several packets, and the head knew only the first). */
static void mysql_error_amend(void *st, const struct proto_unit *u,
                              struct evbuffer *answer)
{
    unsigned char *head;

    (void)st;
    if (evbuffer_get_length(answer) < 4)
        return;
    head = evbuffer_pullup(answer, 4);
    if (head != NULL)
        head[3] = (unsigned char)((u->info2 + 1) & 0xff);
}

#define MY_COMMAND_NAME(name, code) [code] = #name,
static const char *const command_names[256] = { MY_COMMANDS(MY_COMMAND_NAME) };
#undef MY_COMMAND_NAME

/* The size of a value of binary protocol type t at v (n bytes there), in
 * *size. Returns false when it is not all there or t is not a type a
 * client sends. */
static bool value_size(unsigned t, const unsigned char *v, size_t n,
                       size_t *size)
{
    uint64_t len;
    size_t k;

    switch (t) {
    case 6: /* NULL */
        *size = 0;
        break;
    case 1: /* TINY */
        *size = 1;
        break;
    case 2: case 13: /* SHORT, YEAR */
        *size = 2;
        break;
    case 3: case 4: case 9: /* LONG, FLOAT, INT24 */
        *size = 4;
        break;
    case 5: case 8: /* DOUBLE, LONGLONG */
        *size = 8;
        break;
    case 7: case 10: case 11: case 12: /* TIMESTAMP, DATE, TIME, DATETIME */
        if (n == 0)
            return false;
        *size = 1 + (size_t)v[0];
        break;
    case 0: case 15: case 16: /* DECIMAL, VARCHAR, BIT */
    case 245: case 246: case 247: case 248: case 249: case 250: case 251:
    case 252: case 253: case 254: case 255: /* JSON ... GEOMETRY */
        k = lenenc(v, n, &len);
        if (k == 0 || len > n - k)
            return false;
        *size = k + (size_t)len;
        break;
    default:
        return false;
    }
    return *size <= n;
}

/* Skips the query attributes at the front of q[0..n), a COM_QUERY's
 * payload after its command byte when client and server agreed on
 * CLIENT_QUERY_ATTRIBUTES: a parameter count and a parameter set count,
 * and with parameters a NULL bitmap, a flag (1), the parameters' types and
 * names, then the values of those not NULL. Returns false when they are
 * not all there; else *text says where the query starts. */
static bool query_attrs(const unsigned char *q, size_t n, size_t *text)
{
    uint64_t count, sets, len;
    size_t at, k, bitmap, types, values;

    k = lenenc(q, n, &count);
    if (k == 0)
        return false;
    at = k;
    k = lenenc(q + at, n - at, &sets);
    if (k == 0)
        return false;
    at += k;
    if (count == 0) {
        *text = at;
        return true;
    }
    /* a parameter takes at least 3 bytes (type, name length) */
    if (count > (n - at) / 3 || n - at < (count + 7) / 8 + 1)
        return false;
    bitmap = at;
    at += (size_t)(count + 7) / 8;
    if (q[at++] != 1)
        return false; /* no types: the values cannot be read */
    types = at;
    for (uint64_t i = 0; i < count; i++) { /* types and names */
        if (n - at < 2)
            return false;
        at += 2;
        k = lenenc(q + at, n - at, &len);
        if (k == 0 || len > n - at - k)
            return false;
        at += k + (size_t)len;
    }
    values = at;
    for (uint64_t i = 0; i < count; i++) {
        unsigned t = q[types];
        size_t size;
        types += 2;
        types += lenenc(q + types, n - types, &len) + (size_t)len;
        if (q[bitmap + i / 8] & (1u << (i % 8)))
            continue; /* NULL: no value */
        if (!value_size(t, q + values, n - values, &size))
            return false;
        values += size;
    }
    *text = values;
    return true;
}

/* The command of a command packet, named without COM_: its first packet's
 * header (length, sequence id 0), then the command byte. The statement of
 * COM_QUERY and COM_STMT_PREPARE is the text after it, up to n and to the
 * end of the first packet (a statement of 16 MiB goes on in the next); a
 * COM_QUERY's query attributes (u->info) are skipped, and until they are
 * all there the statement is absent. INIT_DB's schema is args[0] once it
 * is all there. Nothing else is named. A packet of the handshake (the
 * client's login, an SSL request, an auth exchange, also after
 * COM_CHANGE_USER) is no command, and its sequence id is never 0: the
 * framer refuses a command packet that does not start with 0, and a
 * client answers the server in the handshake, so the id tells them apart
 * without the framer's stage. */
static void mysql_parts(const unsigned char *p, size_t n,
                        const struct proto_unit *u, struct proto_parts *out)
{
    size_t plen, end, text = 0;
    const char *name;

    if (n < 5)
        return;
    plen = (size_t)(p[0] | p[1] << 8 | p[2] << 16);
    if (p[3] != 0 || plen == 0)
        return;
    name = command_names[p[4]];
    if (name == NULL)
        return;
    out->command.p = name;
    out->command.n = strlen(name);
    end = plen < n - 4 ? 4 + plen : n; /* the first packet's end, or n */
    switch (p[4]) {
    case COM_QUERY:
    case COM_STMT_PREPARE:
        if (p[4] == COM_QUERY && u != NULL && (u->info & INFO_QUERY_ATTRS) &&
            !query_attrs(p + 5, end - 5, &text))
            return;
        out->statement.p = (const char *)p + 5 + text;
        out->statement.n = end - 5 - text;
        break;
    case COM_INIT_DB:
        if (4 + plen <= n) {
            out->args[0].p = (const char *)p + 5;
            out->args[0].n = plen - 1;
            out->nargs = 1;
        }
        break;
    default:
        break;
    }
}

static const struct opt_decl mysql_opts[] = { { 0 } };

const struct proto_ops proto_mysql = {
    .name = "mysql",
    .help = "MySQL / MariaDB; errors are ERR packets (default 1040 "
            "\"Too many connections\").",
    .opts = mysql_opts,
    .state_size = sizeof(struct mysql_state),
    .frame = mysql_frame,
    .mode = mysql_mode,
    .error_reply = mysql_error_reply,
    .error_amend = mysql_error_amend,
    .parts = mysql_parts,
    .tls_inside = true,
};
