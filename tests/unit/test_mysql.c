/* The mysql framer: handshake, commands and result sets, split anywhere. */
#include "framer.h"

#include <stdio.h>

#define MY (&proto_mysql)

struct buf {
    unsigned char b[1 << 16];
    size_t n;
};

static void pkt(struct buf *o, unsigned seq, const void *payload, size_t len)
{
    o->b[o->n++] = (unsigned char)(len & 0xff);
    o->b[o->n++] = (unsigned char)((len >> 8) & 0xff);
    o->b[o->n++] = (unsigned char)(len >> 16);
    o->b[o->n++] = (unsigned char)seq;
    memcpy(o->b + o->n, payload, len);
    o->n += len;
}

#define PKT(o, seq, lit) pkt((o), (seq), (lit), sizeof(lit) - 1)

static void feed(void *st, enum proto_dir dir, const struct buf *b)
{
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    ssize_t n;

    evbuffer_add(in, b->b, b->n);
    while (evbuffer_get_length(in) > 0 && (n = MY->frame(st, dir, in, &u)) > 0) {
        evbuffer_drain(in, (size_t)n);
        if (u.flags & PROTO_END)
            memset(&u, 0, sizeof(u));
    }
    cr_assert_eq(evbuffer_get_length(in), 0, "handshake not framed");
    evbuffer_free(in);
}

/* greeting with CLIENT_DEPRECATE_EOF, response with or without it, OK */
static void handshake(void *st, bool deprecate_eof)
{
    struct buf g = { .n = 0 }, r = { .n = 0 }, ok = { .n = 0 };
    unsigned char greet[] = "\x0a" "10.11.6-MariaDB\0"
                            "\x01\x00\x00\x00" "abcdefgh" "\x00"
                            "\xff\xf7" "\x08" "\x02\x00" "\xff\x81" "\x15";
    unsigned char resp[64] = { 0 };
    uint32_t caps = 0x000fa685u | (deprecate_eof ? 1u << 24 : 0);

    pkt(&g, 0, greet, sizeof(greet) - 1);
    feed(st, PROTO_DOWN, &g);
    memcpy(resp, &caps, 4);
    pkt(&r, 1, resp, sizeof(resp));
    feed(st, PROTO_UP, &r);
    PKT(&ok, 2, "\x00\x00\x00\x02\x00\x00\x00");
    feed(st, PROTO_DOWN, &ok);
}

static void with_eof(void *st)
{
    handshake(st, false);
}

static void without_eof(void *st)
{
    handshake(st, true);
}

Test(mysql, frames_commands_one_packet_each)
{
    struct buf b = { .n = 0 };
    struct frames f;

    PKT(&b, 0, "\x03SELECT 1");
    PKT(&b, 0, "\x0e");
    PKT(&b, 0, "\x01");
    frame_every_split(MY, with_eof, PROTO_UP, b.b, b.n, NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 3);
    cr_assert_eq(f.len[0], 13);
    cr_assert_eq(f.len[1], 5);
    cr_assert(f.flags[2] & PROTO_NOREPLY); /* COM_QUIT */
}

static void result_set(struct buf *b, bool deprecate_eof, bool more)
{
    unsigned seq = 1;

    PKT(b, seq++, "\x02");                                    /* 2 columns */
    PKT(b, seq++, "\x03" "def" "\x00\x00\x00\x01" "a" "\x00\x0c\x3f\x00");
    PKT(b, seq++, "\x03" "def" "\x00\x00\x00\x01" "b" "\x00\x0c\x3f\x00");
    if (!deprecate_eof)
        PKT(b, seq++, "\xfe\x00\x00\x02\x00");
    PKT(b, seq++, "\x01" "1" "\x00");                         /* rows; one starts with 0x00 */
    PKT(b, seq++, "\x00\x01" "x");
    if (deprecate_eof) {
        if (more)
            PKT(b, seq++, "\xfe\x00\x00\x0a\x00\x00\x00");
        else
            PKT(b, seq++, "\xfe\x00\x00\x02\x00\x00\x00");
    } else {
        if (more)
            PKT(b, seq++, "\xfe\x00\x00\x0a\x00");
        else
            PKT(b, seq++, "\xfe\x00\x00\x02\x00");
    }
}

Test(mysql, frames_result_sets_with_eof)
{
    struct buf b = { .n = 0 };
    struct infos req = { .n = 3, .info = { 0x03, 0x03, 0x0e } };
    struct frames f;
    size_t first;

    result_set(&b, false, false);
    first = b.n;
    result_set(&b, false, true); /* a multi-statement: two results */
    PKT(&b, 8, "\x00\x01\x00\x02\x00\x00\x00");
    PKT(&b, 1, "\x00\x00\x00\x02\x00\x00\x00"); /* the ping's OK */
    frame_every_split(MY, with_eof, PROTO_DOWN, b.b, b.n, &req, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 3);
    cr_assert_eq(f.len[0], first);
    cr_assert_eq(f.len[2], 11);
}

Test(mysql, frames_result_sets_without_eof)
{
    struct buf b = { .n = 0 };
    struct infos req = { .n = 2, .info = { 0x03, 0x03 } };
    struct frames f;
    size_t first;

    result_set(&b, true, false);
    first = b.n;
    PKT(&b, 1, "\xff\x28\x04#08004Too many");
    frame_every_split(MY, without_eof, PROTO_DOWN, b.b, b.n, &req, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 2);
    cr_assert_eq(f.len[0], first);
}

Test(mysql, frames_a_prepare_reply)
{
    struct buf b = { .n = 0 };
    struct infos req = { .n = 1, .info = { 0x16 } };
    struct frames f;

    PKT(&b, 1, "\x00\x01\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00"); /* 1 column, 2 params */
    PKT(&b, 2, "\x03" "def" "\x00\x00\x00\x01" "?" "\x00");
    PKT(&b, 3, "\x03" "def" "\x00\x00\x00\x01" "?" "\x00");
    PKT(&b, 4, "\xfe\x00\x00\x02\x00");
    PKT(&b, 5, "\x03" "def" "\x00\x00\x00\x01" "c" "\x00");
    PKT(&b, 6, "\xfe\x00\x00\x02\x00");
    frame_every_split(MY, with_eof, PROTO_DOWN, b.b, b.n, &req, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.len[0], b.n);
}

Test(mysql, a_packet_of_16_mib_or_more_is_one_request)
{
    struct evbuffer *in = evbuffer_new();
    void *st = framer_new(MY);
    struct proto_unit u = { 0 };
    unsigned char hdr[4] = { 0xff, 0xff, 0xff, 0 };
    unsigned char tail[4] = { 5, 0, 0, 1 };
    static unsigned char big[0xffffff];
    size_t total = 0;
    ssize_t n;

    with_eof(st);
    big[0] = 0x03;
    evbuffer_add(in, hdr, 4);
    evbuffer_add(in, big, sizeof(big));
    evbuffer_add(in, tail, 4);
    evbuffer_add(in, "12345", 5);
    while ((n = MY->frame(st, PROTO_UP, in, &u)) > 0) {
        evbuffer_drain(in, (size_t)n);
        total += (size_t)n;
        if (u.flags & PROTO_END)
            break;
    }
    cr_assert(u.flags & PROTO_END);
    cr_assert_eq(total, 4 + sizeof(big) + 4 + 5);
    cr_assert_eq(u.info, 0x03);
    cr_assert_eq(u.info2, 1, "the last packet's sequence id");
    evbuffer_free(in);
    framer_free(MY, st);
}

Test(mysql, an_ssl_request_is_starttls_once_then_the_login_goes_on)
{
    void *st = framer_new(MY);
    struct buf g = { .n = 0 }, r = { .n = 0 };
    unsigned char greet[] = "\x0a" "8.0\0" "\x01\x00\x00\x00" "abcdefgh" "\x00"
                            "\xff\xff" "\x08" "\x02\x00" "\xff\x81" "\x15";
    unsigned char ssl[32] = { 0x05, 0x8a, 0x00, 0x00 }; /* CLIENT_SSL set */

    pkt(&g, 0, greet, sizeof(greet) - 1);
    feed(st, PROTO_DOWN, &g);
    pkt(&r, 1, ssl, sizeof(ssl));
    feed(st, PROTO_UP, &r);
    cr_assert_eq(MY->mode(st), PROTO_STARTTLS);
    cr_assert_eq(MY->mode(st), PROTO_FRAMED, "said once");
    framer_free(MY, st);
}

Test(mysql, the_error_is_an_err_packet_after_the_request)
{
    void *st = framer_new(MY);
    struct evbuffer *out = evbuffer_new();
    struct proto_error e = { .sqlstate = "08004", .message = "" };
    struct proto_unit req = { .info = 0x03, .info2 = 0 };
    bool close = true;
    unsigned char buf[64];
    const unsigned char want[] = "\x1d\x00\x00\x01\xff\x10\x04#08004Too many connections";

    MY->error_reply(st, &e, &req, NULL, out, &close);
    cr_assert_eq(evbuffer_get_length(out), sizeof(want) - 1);
    evbuffer_remove(out, buf, sizeof(buf));
    cr_assert_eq(memcmp(buf, want, sizeof(want) - 1), 0);
    cr_assert(!close);
    evbuffer_free(out);
    framer_free(MY, st);
}

/* Frames one command sent as stream[0..len) cut at `cut`, builds its error
 * reply at the head step and amends it at the end step, as a session does
 * for a request that draws `error`. Returns the reply's sequence id. */
static unsigned err_seq_after(const unsigned char *stream, size_t len, size_t cut)
{
    void *st = framer_new(MY);
    struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
    struct proto_error e = { .code = 1213, .sqlstate = "40001", .message = "Deadlock" };
    struct proto_unit u = { 0 };
    size_t total = 0, fed = 0;
    bool close, started = false, ended = false;
    unsigned seq;

    with_eof(st);
    while (!ended && fed < len) {
        size_t take = fed < cut ? cut - fed : len - fed;
        ssize_t n;
        evbuffer_add(in, stream + fed, take);
        fed += take;
        while ((n = MY->frame(st, PROTO_UP, in, &u)) > 0) {
            if (!started) /* the head step: the verdict is drawn */
                MY->error_reply(st, &e, &u, NULL, out, &close);
            started = true;
            evbuffer_drain(in, (size_t)n);
            total += (size_t)n;
            if (u.flags & PROTO_END) {
                MY->error_amend(st, &u, out);
                ended = true;
                break;
            }
        }
        cr_assert(n >= 0, "cut %zu: malformed", cut);
    }
    cr_assert(ended, "cut %zu: the request never ended", cut);
    cr_assert_eq(total, len, "cut %zu", cut);
    cr_assert_eq(evbuffer_get_length(out), 4 + 9 + 8, "cut %zu: the answer's length", cut);
    seq = evbuffer_pullup(out, 4)[3];
    evbuffer_free(in);
    evbuffer_free(out);
    framer_free(MY, st);
    return seq;
}

/* A client sends a command of 16 MiB or more as packets 0, 1, ...; the
 * server's answer follows the last one. Cut where a packet header is
 * split, and everywhere near the start. */
Test(mysql, the_error_on_a_request_of_16_mib_or_more_follows_its_last_packet)
{
    static const struct {
        size_t payload[3]; /* the packets' lengths; 0 ends the list */
        int npackets;
    } cases[] = {
        { { 5 }, 1 },
        { { 0xffffff, 5 }, 2 },
        { { 0xffffff, 0xffffff, 0 }, 3 },
        { { 0xffffff, 0xffffff, 7 }, 3 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        size_t len = 0, at = 0, cuts[64], ncuts = 0;
        unsigned char *stream;

        for (int k = 0; k < cases[i].npackets; k++)
            len += 4 + cases[i].payload[k];
        stream = calloc(1, len);
        cr_assert(stream != NULL);
        for (int k = 0; k < cases[i].npackets; k++) {
            size_t pl = cases[i].payload[k];
            stream[at] = (unsigned char)(pl & 0xff);
            stream[at + 1] = (unsigned char)((pl >> 8) & 0xff);
            stream[at + 2] = (unsigned char)(pl >> 16);
            stream[at + 3] = (unsigned char)k;
            if (k == 0)
                stream[at + 4] = 0x03; /* COM_QUERY */
            for (size_t c = at > 2 ? at - 2 : 1; c <= at + 6 && c < len; c++)
                cuts[ncuts++] = c;
            at += 4 + pl;
        }
        cuts[ncuts++] = len; /* whole */
        for (size_t c = 0; c < ncuts; c++) {
            unsigned seq = err_seq_after(stream, len, cuts[c]);
            cr_assert_eq(seq, (unsigned)cases[i].npackets, "case %zu cut %zu: seq %u", i,
                         cuts[c], seq);
        }
        free(stream);
    }
}

/* parts(): the command's name, the statement of QUERY and STMT_PREPARE (up
 * to the first packet's end), the schema of INIT_DB; nothing for a packet
 * that is no command. Every prefix of a request names a part of what the
 * whole names (a statement may be cut short). */
Test(mysql, names_the_command_and_its_statement_or_schema)
{
#define CMD(seq, lit) (seq), (const unsigned char *)(lit), sizeof(lit) - 1
    static const struct {
        unsigned seq;
        const unsigned char *payload;
        size_t len;
        struct parts_want want;
    } cases[] = {
        { CMD(0, "\x03SELECT 1"), { .command = "QUERY", .statement = "SELECT 1" } },
        { CMD(0, "\x16SELECT ?"), { .command = "STMT_PREPARE", .statement = "SELECT ?" } },
        { CMD(0, "\x02test"), { .command = "INIT_DB", .nargs = 1, .args = { "test" } } },
        { CMD(0, "\x03"), { .command = "QUERY" } },
        { CMD(0, "\x0e"), { .command = "PING" } },
        { CMD(0, "\x01"), { .command = "QUIT" } },
        { CMD(0, "\x04t\x00"), { .command = "FIELD_LIST" } },
        { CMD(0, "\x09"), { .command = "STATISTICS" } },
        { CMD(0, "\x0c\x07\x00\x00\x00"), { .command = "PROCESS_KILL" } },
        { CMD(0, "\x0d"), { .command = "DEBUG" } },
        { CMD(0, "\x11root\x00"), { .command = "CHANGE_USER" } },
        { CMD(0, "\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00"), { .command = "STMT_EXECUTE" } },
        { CMD(0, "\x19\x01\x00\x00\x00"), { .command = "STMT_CLOSE" } },
        { CMD(0, "\x1a\x01\x00\x00\x00"), { .command = "STMT_RESET" } },
        { CMD(0, "\x1b\x01\x00"), { .command = "SET_OPTION" } },
        { CMD(0, "\x1f"), { .command = "RESET_CONNECTION" } },
        { CMD(0, "\x40"), { 0 } },                            /* unknown */
        { CMD(0, ""), { 0 } },
        { CMD(1, "\x85\xa6\x0f\x00\x00\x00\x00\x01\x21"), { 0 } }, /* the login */
        { CMD(3, "\x03secret"), { 0 } },                      /* an auth exchange */
    };
#undef CMD
    struct proto_parts pp;
    struct proto_unit u = { 0 };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct buf b = { .n = 0 };
        char what[32];
        pkt(&b, cases[i].seq, cases[i].payload, cases[i].len);
        snprintf(what, sizeof(what), "case %zu", i);
        parts_every_prefix(MY, &u, b.b, b.n, true, &pp);
        parts_expect(&pp, &cases[i].want, what);
    }
}

Test(mysql, the_statement_ends_with_the_first_packet)
{
    struct buf b = { .n = 0 };
    struct proto_parts pp;
    struct proto_unit u = { 0 };

    PKT(&b, 0, "\x03SELECT 1");
    PKT(&b, 0, "\x0e");
    parts_every_prefix(MY, &u, b.b, b.n, true, &pp);
    cr_assert(piece_is(pp.statement, "SELECT 1"));
}

/* Frames b, one whole packet, and returns its step (the head and the end)
 * in u. */
static void head_of(void *st, const struct buf *b, struct proto_unit *u)
{
    struct evbuffer *in = evbuffer_new();

    memset(u, 0, sizeof(*u));
    evbuffer_add(in, b->b, b->n);
    cr_assert(MY->frame(st, PROTO_UP, in, u) > 0);
    cr_assert(u->flags & PROTO_HEAD);
    evbuffer_free(in);
}

/* A client and a server that agree on CLIENT_QUERY_ATTRIBUTES (MySQL
 * 8.0.23) put attributes before a COM_QUERY's text: the statement comes
 * after them, and is absent until they are all there. */
Test(mysql, the_statement_comes_after_the_query_attributes)
{
    static const struct {
        const char *payload;
        size_t len;
        const char *statement;
    } cases[] = {
#define Q(lit, stmt) { (lit), sizeof(lit) - 1, (stmt) }
        Q("\x03\x00\x01SELECT 1", "SELECT 1"),
        Q("\x03\x01\x01\x00\x01\xfe\x00\x02id\x03" "abcSELECT 2", "SELECT 2"),
        /* a NULL one (no value), a LONGLONG and a DATE */
        Q("\x03\x03\x01\x01\x01" "\x06\x00\x01n" "\x08\x00\x01l" "\x0a\x00\x01" "d"
          "12345678" "\x04\xe8\x07\x01\x02" "SELECT 3", "SELECT 3"),
        Q("\x03\x01\x01\x00\x01\x30\x00\x01x\x01" "aSELECT 4", NULL), /* unknown type */
        Q("\x03\x01\x01\x00\x00\x01" "aSELECT 5", NULL),              /* no types */
#undef Q
    };
    void *st = framer_new(MY);
    struct buf g = { .n = 0 }, r = { .n = 0 }, ok = { .n = 0 };
    unsigned char greet[] = "\x0a" "8.0.36\0" "\x01\x00\x00\x00" "abcdefgh" "\x00"
                            "\xff\xf7" "\x08" "\x02\x00" "\xff\x89" "\x15";
    unsigned char resp[64] = { 0x85, 0xa6, 0x0f, 0x08 }; /* bit 27 */
    struct proto_unit u;
    struct proto_parts pp;

    pkt(&g, 0, greet, sizeof(greet) - 1);
    feed(st, PROTO_DOWN, &g);
    pkt(&r, 1, resp, sizeof(resp));
    head_of(st, &r, &u); /* the login: no command */
    memset(&pp, 0, sizeof(pp));
    MY->parts(r.b, r.n, &u, &pp);
    parts_expect(&pp, &(struct parts_want){ 0 }, "the login");
    PKT(&ok, 2, "\x00\x00\x00\x02\x00\x00\x00");
    feed(st, PROTO_DOWN, &ok);
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct buf b = { .n = 0 };
        char what[32];
        pkt(&b, 0, cases[i].payload, cases[i].len);
        head_of(st, &b, &u);
        snprintf(what, sizeof(what), "case %zu", i);
        parts_every_prefix(MY, &u, b.b, b.n, true, &pp);
        parts_expect(&pp, &(struct parts_want){ .command = "QUERY",
                                                .statement = cases[i].statement },
                     what);
    }
    framer_free(MY, st);
}

/* Without CLIENT_QUERY_ATTRIBUTES the same bytes are the text. */
Test(mysql, without_query_attributes_the_text_follows_the_command_byte)
{
    void *st = framer_new(MY);
    struct buf b = { .n = 0 };
    struct proto_unit u;
    struct proto_parts pp;

    with_eof(st);
    PKT(&b, 0, "\x03\x00\x01SELECT 1");
    head_of(st, &b, &u);
    parts_every_prefix(MY, &u, b.b, b.n, true, &pp);
    cr_assert_eq(pp.statement.n, 10);
    framer_free(MY, st);
}
