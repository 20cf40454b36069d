/* The postgres framer: startup, requests, replies to ReadyForQuery, COPY,
 * TLS requests and the error reply, split anywhere. */
#include "framer.h"

#include <stdio.h>

#define PG (&proto_postgres)

#define REQ(t) (0x100u | (unsigned char)(t)) /* a request's info */
#define REQ_SSL 0x300u

struct buf {
    unsigned char b[1 << 14];
    size_t n;
};

static void put32(struct buf *o, uint32_t v)
{
    o->b[o->n++] = (unsigned char)(v >> 24);
    o->b[o->n++] = (unsigned char)(v >> 16);
    o->b[o->n++] = (unsigned char)(v >> 8);
    o->b[o->n++] = (unsigned char)v;
}

/* A typed message: type, length, body. */
static void msg(struct buf *o, char type, const void *body, size_t len)
{
    o->b[o->n++] = (unsigned char)type;
    put32(o, (uint32_t)(len + 4));
    memcpy(o->b + o->n, body, len);
    o->n += len;
}

#define MSG(o, t, lit) msg((o), (t), (lit), sizeof(lit) - 1)

/* An untyped packet of the startup stage: length, code, body. */
static void packet(struct buf *o, uint32_t code, const void *body, size_t len)
{
    put32(o, (uint32_t)(len + 8));
    put32(o, code);
    memcpy(o->b + o->n, body, len);
    o->n += len;
}

#define STARTUP(o, lit) packet((o), 196608, (lit), sizeof(lit) - 1)

/* Frames b whole; every unit's info starts as info (a reply's: that of
 * the request it answers). */
static void feed_as(void *st, enum proto_dir dir, const struct buf *b,
                    uint32_t info)
{
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { .info = info };
    ssize_t n;

    evbuffer_add(in, b->b, b->n);
    while (evbuffer_get_length(in) > 0 && (n = PG->frame(st, dir, in, &u)) > 0) {
        evbuffer_drain(in, (size_t)n);
        if (u.flags & PROTO_END) {
            memset(&u, 0, sizeof(u));
            u.info = info;
        }
    }
    cr_assert_eq(evbuffer_get_length(in), 0, "not framed");
    evbuffer_free(in);
}

static void feed(void *st, enum proto_dir dir, const struct buf *b)
{
    feed_as(st, dir, b, 0);
}

/* The server's end of the handshake, ReadyForQuery with status txn. */
static void ready_with(void *st, char txn)
{
    struct buf up = { .n = 0 }, down = { .n = 0 };
    unsigned char z[1] = { (unsigned char)txn };

    STARTUP(&up, "user\0app\0database\0app\0\0");
    feed(st, PROTO_UP, &up);
    MSG(&down, 'R', "\0\0\0\0");
    MSG(&down, 'S', "server_version\0" "15.8\0");
    MSG(&down, 'K', "\0\0\0\x01\0\0\0\x02");
    msg(&down, 'Z', z, 1);
    feed(st, PROTO_DOWN, &down);
}

static void ready(void *st)
{
    ready_with(st, 'I');
}

Test(postgres, the_startup_and_the_password_pass_and_answer_nothing)
{
    struct buf b = { .n = 0 };
    struct frames f;

    STARTUP(&b, "user\0app\0\0");
    MSG(&b, 'p', "n,,n=app,r=abc");                 /* SASLInitialResponse */
    MSG(&b, 'p', "c=biws,r=abcdef,p=xyz");          /* SASLResponse */
    frame_every_split(PG, NULL, PROTO_UP, b.b, b.n, NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 3);
    cr_assert_eq(f.len[0], 18);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(f.flags[i] & (PROTO_NOFAULT | PROTO_NOREPLY),
                     PROTO_NOFAULT | PROTO_NOREPLY, "unit %d", i);
}

Test(postgres, the_server_s_handshake_is_unsolicited_up_to_its_first_ready)
{
    void *st = framer_new(PG);
    struct buf up = { .n = 0 }, b = { .n = 0 };
    struct frames f;

    STARTUP(&up, "user\0app\0\0");
    feed(st, PROTO_UP, &up);
    MSG(&b, 'R', "\0\0\0\x0a" "SCRAM-SHA-256\0\0");
    MSG(&b, 'R', "\0\0\0\x0b" "r=abc");
    MSG(&b, 'R', "\0\0\0\0");
    MSG(&b, 'S', "TimeZone\0UTC\0");
    MSG(&b, 'Z', "I");
    frame_all(PG, st, PROTO_DOWN, b.b, b.n, 0, b.n, NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 5);
    for (int i = 0; i < 5; i++)
        cr_assert(f.flags[i] & PROTO_PUSH, "unit %d", i);
    framer_free(PG, st);
}

Test(postgres, a_simple_query_and_an_extended_group_up_to_sync_are_one_request_each)
{
    struct buf b = { .n = 0 };
    struct frames f;
    size_t q;

    MSG(&b, 'Q', "SELECT 1\0");
    q = b.n;
    MSG(&b, 'P', "\0SELECT $1\0\0\0");
    MSG(&b, 'B', "\0\0\0\0\0\x01\0\0\0\x01" "7" "\0\0");
    MSG(&b, 'D', "P\0");
    MSG(&b, 'E', "\0\0\0\0\0");
    MSG(&b, 'S', "");
    MSG(&b, 'X', "");
    frame_every_split(PG, ready, PROTO_UP, b.b, b.n, NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 3);
    cr_assert_eq(f.len[0], q);
    cr_assert_eq(f.len[1], b.n - q - 5);
    cr_assert_eq(f.flags[0] & (PROTO_NOFAULT | PROTO_NOREPLY), 0);
    cr_assert_eq(f.flags[1] & (PROTO_NOFAULT | PROTO_NOREPLY), 0);
    cr_assert(f.flags[2] & PROTO_NOREPLY); /* Terminate */
}

Test(postgres, a_request_is_named_by_its_first_message)
{
    void *st = framer_new(PG);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    struct buf b = { .n = 0 };

    ready(st);
    MSG(&b, 'P', "s1\0SELECT 1\0\0\0");
    MSG(&b, 'S', "");
    evbuffer_add(in, b.b, b.n);
    /* the head step is the first message alone: the verdict is drawn
     * before the rest of the group is read */
    cr_assert_eq(PG->frame(st, PROTO_UP, in, &u), (ssize_t)b.n - 5);
    cr_assert_eq(u.info, REQ('P'));
    cr_assert(u.flags & PROTO_HEAD);
    cr_assert_eq(u.flags & PROTO_END, 0);
    evbuffer_drain(in, b.n - 5);
    cr_assert_eq(PG->frame(st, PROTO_UP, in, &u), 5);
    cr_assert(u.flags & PROTO_END);
    evbuffer_free(in);
    framer_free(PG, st);
}

Test(postgres, replies_run_to_ready_for_query_and_notices_between_are_pushed)
{
    struct buf b = { .n = 0 };
    struct infos req = { .n = 3, .info = { REQ('Q'), REQ('Q'), REQ('P') } };
    struct frames f;
    size_t first, notice;

    MSG(&b, 'T', "\0\x01" "a\0" "\0\0\0\0" "\0\0" "\0\0\0\x17" "\0\x04" "\xff\xff\xff\xff" "\0\0");
    MSG(&b, 'D', "\0\x01" "\0\0\0\x01" "1");
    MSG(&b, 'D', "\0\x01" "\xff\xff\xff\xff");
    MSG(&b, 'C', "SELECT 2\0");
    MSG(&b, 'Z', "I");
    first = b.n;
    MSG(&b, 'A', "\0\0\0\x07" "ch\0" "hi\0"); /* a notification, between */
    notice = b.n - first;
    MSG(&b, 'N', "SNOTICE\0Mskipping\0\0"); /* a reply may start so */
    MSG(&b, 'E', "SERROR\0C42P01\0Mno table\0\0");
    MSG(&b, 'Z', "T");
    MSG(&b, '1', "");
    MSG(&b, 'Z', "E");
    frame_every_split(PG, ready, PROTO_DOWN, b.b, b.n, &req, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 5);
    cr_assert_eq(f.len[0], first);
    cr_assert_eq(f.len[1], notice);
    cr_assert(f.flags[1] & PROTO_PUSH);
    cr_assert(f.flags[2] & PROTO_PUSH);
    cr_assert_eq(f.flags[3] & PROTO_PUSH, 0);
    cr_assert_eq(f.len[4], 5 + 6);
}

Test(postgres, copy_in_data_passes_and_the_reply_ends_after_it)
{
    void *st = framer_new(PG);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { .info = REQ('Q') };
    struct buf g = { .n = 0 }, data = { .n = 0 }, end = { .n = 0 };
    struct frames f;
    ssize_t n;

    ready(st);
    MSG(&g, 'G', "\0\0\x01\0\0");
    evbuffer_add(in, g.b, g.n);
    n = PG->frame(st, PROTO_DOWN, in, &u);
    cr_assert_eq(n, (ssize_t)g.n);
    cr_assert_eq(u.flags & PROTO_END, 0, "the reply goes on after the data");
    evbuffer_drain(in, (size_t)n);
    MSG(&data, 'd', "1\tone\n");
    MSG(&data, 'd', "2\ttwo\n");
    MSG(&data, 'c', "");
    MSG(&data, 'S', ""); /* libpq's, after CopyDone in the extended protocol */
    frame_all(PG, st, PROTO_UP, data.b, data.n, 0, data.n, NULL, &f);
    cr_assert_eq(f.n, 4);
    for (int i = 0; i < 4; i++)
        cr_assert(f.flags[i] & PROTO_NOREPLY, "unit %d", i);
    MSG(&end, 'C', "COPY 2\0");
    MSG(&end, 'Z', "I");
    evbuffer_add(in, end.b, end.n);
    n = PG->frame(st, PROTO_DOWN, in, &u);
    cr_assert_eq(n, (ssize_t)end.n);
    cr_assert(u.flags & PROTO_END);
    evbuffer_free(in);
    framer_free(PG, st);
}

Test(postgres, copy_out_is_one_reply)
{
    struct buf b = { .n = 0 };
    struct infos req = { .n = 1, .info = { REQ('Q') } };
    struct frames f;

    MSG(&b, 'H', "\0\0\x01\0\0");
    MSG(&b, 'd', "1\tone\n");
    MSG(&b, 'd', "2\ttwo\n");
    MSG(&b, 'c', "");
    MSG(&b, 'C', "COPY 2\0");
    MSG(&b, 'Z', "I");
    frame_every_split(PG, ready, PROTO_DOWN, b.b, b.n, &req, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.len[0], b.n);
}

Test(postgres, an_ssl_request_asks_for_tls_and_the_server_s_yes_is_starttls_once)
{
    struct buf b = { .n = 0 }, yes = { .n = 1, .b = { 'S' } };
    struct infos req = { .n = 1, .info = { REQ_SSL } };
    struct frames f;
    void *st;

    packet(&b, 80877103, "", 0);
    STARTUP(&b, "user\0app\0\0");
    frame_every_split(PG, NULL, PROTO_UP, b.b, b.n, NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 2);
    cr_assert_eq(f.len[0], 8);
    cr_assert(f.flags[0] & PROTO_TLSASK);
    cr_assert_eq(f.flags[0] & PROTO_NOREPLY, 0, "the server answers it");
    st = framer_new(PG);
    frame_all(PG, st, PROTO_DOWN, yes.b, yes.n, 0, 1, &req, &f);
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.len[0], 1);
    cr_assert_eq(PG->mode(st), PROTO_STARTTLS);
    cr_assert_eq(PG->mode(st), PROTO_FRAMED, "said once");
    framer_free(PG, st);
}

Test(postgres, a_refused_ssl_request_is_answered_n)
{
    void *st = framer_new(PG);
    struct evbuffer *out = evbuffer_new();
    struct proto_error e = { .sqlstate = "08004", .message = "" };
    struct proto_unit req = { .info = REQ_SSL };
    bool close = true;

    PG->error_reply(st, &e, &req, NULL, out, &close);
    cr_assert_eq(evbuffer_get_length(out), 1);
    cr_assert_eq(*evbuffer_pullup(out, 1), 'N');
    cr_assert(!close);
    evbuffer_free(out);
    framer_free(PG, st);
}

Test(postgres, a_cancel_request_passes_and_answers_nothing)
{
    struct buf b = { .n = 0 };
    struct frames f;

    packet(&b, 80877102, "\0\0\0\x01\0\0\0\x02", 8);
    frame_every_split(PG, NULL, PROTO_UP, b.b, b.n, NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 1);
    cr_assert(f.flags[0] & PROTO_NOREPLY);
}

Test(postgres, a_replication_connection_is_passed_through)
{
    void *st = framer_new(PG);
    struct buf b = { .n = 0 };

    STARTUP(&b, "user\0rep\0replication\0database\0\0");
    feed(st, PROTO_UP, &b);
    cr_assert_eq(PG->mode(st), PROTO_RAW);
    framer_free(PG, st);
    st = framer_new(PG);
    b.n = 0;
    STARTUP(&b, "replication\0false\0user\0app\0\0");
    feed(st, PROTO_UP, &b);
    cr_assert_eq(PG->mode(st), PROTO_FRAMED);
    framer_free(PG, st);
}

Test(postgres, bytes_that_are_not_the_protocol_are_an_error)
{
    struct buf b = { .n = 0 };
    struct frames f;

    MSG(&b, 'Q', "SELECT 1\0");
    memcpy(b.b + b.n, "GET / HTTP/1.1\r\n", 16);
    b.n += 16;
    frame_every_split(PG, ready, PROTO_UP, b.b, b.n, NULL, &f);
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.error, 1);
}

/* The error reply's bytes for a request after a ReadyForQuery of txn. */
static size_t error_after(char txn, const struct proto_error *e,
                          unsigned char *buf, size_t cap)
{
    void *st = framer_new(PG);
    struct evbuffer *out = evbuffer_new();
    struct proto_unit req = { .info = REQ('Q') };
    bool close = true;
    size_t n;

    ready_with(st, txn);
    PG->error_reply(st, e, &req, NULL, out, &close);
    cr_assert(!close);
    n = evbuffer_remove(out, buf, cap);
    evbuffer_free(out);
    framer_free(PG, st);
    return n;
}

Test(postgres, the_error_is_an_error_response_and_ready_for_query)
{
    struct proto_error e = { .sqlstate = "08004", .message = "" };
    unsigned char buf[256];
    const unsigned char want[] =
        "E\0\0\0\x3b" "SERROR\0" "VERROR\0" "C53300\0"
        "Msorry, too many clients already\0" "\0"
        "Z\0\0\0\x05" "I";
    size_t n = error_after('I', &e, buf, sizeof(buf));

    cr_assert_eq(n, sizeof(want) - 1);
    cr_assert_eq(memcmp(buf, want, n), 0);
}

Test(postgres, the_error_takes_sqlstate_and_message_and_fails_a_transaction_block)
{
    struct proto_error e = { .sqlstate = "40001", .message = "could not serialize" };
    unsigned char buf[256];
    const unsigned char want[] =
        "E\0\0\0\x2f" "SERROR\0" "VERROR\0" "C40001\0"
        "Mcould not serialize\0" "\0"
        "Z\0\0\0\x05" "E";
    size_t n = error_after('T', &e, buf, sizeof(buf));

    cr_assert_eq(n, sizeof(want) - 1);
    cr_assert_eq(memcmp(buf, want, n), 0);
    n = error_after('E', &e, buf, sizeof(buf));
    cr_assert_eq(buf[n - 1], 'E', "a failed block stays failed");
}

Test(postgres, parts_name_the_statement_and_its_first_word)
{
    struct buf b = { .n = 0 };
    struct proto_unit u = { .info = REQ('Q') };
    struct proto_parts p;

    MSG(&b, 'Q', "UPDATE orders SET n = 1\0");
    parts_every_prefix(PG, &u, b.b, b.n, true, &p);
    cr_assert(piece_is(p.command, "UPDATE"));
    cr_assert(piece_is(p.statement, "UPDATE orders SET n = 1"));

    b.n = 0;
    MSG(&b, 'P', "s1\0  select * from t\0\0\0");
    MSG(&b, 'S', "");
    parts_every_prefix(PG, &u, b.b, b.n, true, &p);
    cr_assert(piece_is(p.command, "select"));
    cr_assert(piece_is(p.statement, "  select * from t"));

    b.n = 0;
    MSG(&b, 'B', "\0\0\0\0\0\0\0\0");
    parts_every_prefix(PG, &u, b.b, b.n, true, &p);
    cr_assert(piece_is(p.command, "BIND"));
    cr_assert_eq(p.statement.n, 0);

    b.n = 0;
    MSG(&b, 'Q', "(SELECT 1)\0");
    parts_every_prefix(PG, &u, b.b, b.n, true, &p);
    cr_assert(piece_is(p.command, "QUERY"));

    b.n = 0;
    STARTUP(&b, "user\0app\0\0");
    parts_every_prefix(PG, &u, b.b, b.n, true, &p);
    cr_assert(piece_is(p.command, "STARTUP"));
}

Test(postgres, a_commit_after_an_injected_error_in_a_block_becomes_abort)
{
    void *st = framer_new(PG);
    struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
    struct proto_error e = { .sqlstate = "40001", .message = "" };
    struct proto_unit req = { .info = REQ('Q') }, u = { 0 };
    struct buf b = { .n = 0 }, z = { .n = 0 };
    bool close;
    unsigned char got[32];

    ready_with(st, 'T');
    cr_assert(!PG->edits(st));
    PG->error_reply(st, &e, &req, NULL, out, &close);
    cr_assert(PG->edits(st), "the proxy failed the block");
    MSG(&b, 'Q', "commit\0");
    evbuffer_add(in, b.b, b.n);
    cr_assert_eq(PG->frame(st, PROTO_UP, in, &u), (ssize_t)b.n);
    evbuffer_remove(in, got, b.n);
    cr_assert_eq(memcmp(got + 5, "ABORT \0", 7), 0);
    MSG(&z, 'C', "ROLLBACK\0");
    MSG(&z, 'Z', "I");
    feed(st, PROTO_DOWN, &z);
    cr_assert(!PG->edits(st), "the server's block ended");
    evbuffer_free(in);
    evbuffer_free(out);
    framer_free(PG, st);
}

/* Frames one request q (a Query's text) at the front of a fresh buffer;
 * returns its head step's flags, and its info in *info. */
static unsigned frame_query(void *st, const char *q, uint32_t *info)
{
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    struct buf b = { .n = 0 };

    msg(&b, 'Q', q, strlen(q) + 1);
    evbuffer_add(in, b.b, b.n);
    cr_assert_eq(PG->frame(st, PROTO_UP, in, &u), (ssize_t)b.n);
    *info = u.info;
    evbuffer_free(in);
    return u.flags;
}

Test(postgres, in_a_block_the_proxy_failed_statements_are_refused_but_rollbacks)
{
    void *st = framer_new(PG);
    struct evbuffer *out = evbuffer_new();
    struct proto_error e = { .sqlstate = "40001", .message = "" };
    struct proto_unit req = { .info = REQ('Q') };
    struct buf z = { .n = 0 };
    bool close;
    uint32_t info;
    unsigned char got[256];
    size_t n;

    ready_with(st, 'T');
    PG->error_reply(st, &e, &req, NULL, out, &close);
    evbuffer_drain(out, evbuffer_get_length(out));
    cr_assert(frame_query(st, "SELECT 1", &info) & PROTO_REFUSE);
    req.info = info;
    PG->error_reply(st, &e, &req, NULL, out, &close);
    n = evbuffer_remove(out, got, sizeof(got));
    cr_assert_eq(memcmp(got + 5, "SERROR\0VERROR\0C25P02\0Mcurrent transaction is aborted",
                        52), 0);
    cr_assert_eq(got[n - 1], 'E');
    cr_assert_eq(frame_query(st, "rollback to savepoint a", &info) & PROTO_REFUSE, 0);
    MSG(&z, 'C', "ROLLBACK\0");
    MSG(&z, 'Z', "T");
    feed_as(st, PROTO_DOWN, &z, info);
    cr_assert(!PG->edits(st), "back in a working block");
    cr_assert_eq(frame_query(st, "SELECT 1", &info) & PROTO_REFUSE, 0);
    evbuffer_free(out);
    framer_free(PG, st);
}

/* Frames the client's bytes of b as a session does, calling error_reply
 * at each head (every request draws an error) and error_amend at each
 * end; appends the answers to out. Returns the units framed. */
static int frame_all_erred(void *st, const struct buf *b, struct evbuffer *out)
{
    struct evbuffer *in = evbuffer_new(), *answer = NULL;
    struct proto_error e = { .sqlstate = "40001", .message = "x" };
    struct proto_unit u = { 0 };
    bool close, started = false;
    int units = 0;
    ssize_t n;

    evbuffer_add(in, b->b, b->n);
    while ((n = PG->frame(st, PROTO_UP, in, &u)) > 0) {
        if (!started) {
            answer = evbuffer_new();
            PG->error_reply(st, &e, &u, NULL, answer, &close);
            started = true;
        }
        evbuffer_drain(in, (size_t)n);
        if (u.flags & PROTO_END) {
            PG->error_amend(st, &u, answer);
            evbuffer_add_buffer(out, answer);
            evbuffer_free(answer);
            memset(&u, 0, sizeof(u));
            started = false;
            units++;
        }
    }
    cr_assert_eq(evbuffer_get_length(in), 0);
    evbuffer_free(in);
    return units;
}

Test(postgres, a_group_answered_by_the_proxy_says_its_error_at_a_flush_and_ready_at_its_sync)
{
    void *st = framer_new(PG);
    struct evbuffer *out = evbuffer_new();
    struct buf first = { .n = 0 }, rest = { .n = 0 };
    const unsigned char want_err[] =
        "E\0\0\0\x23" "SERROR\0" "VERROR\0" "C40001\0" "Mx\0" "xfill\0" "\0";
    unsigned char got[128];
    size_t n;

    ready(st);
    MSG(&first, 'P', "\0UPDATE t SET n = 1\0\0\0");
    MSG(&first, 'H', "");
    cr_assert_eq(frame_all_erred(st, &first, out), 1, "the unit ends at the Flush");
    n = evbuffer_remove(out, got, sizeof(got));
    cr_assert_eq(n, sizeof(want_err) - 1, "%zu bytes", n);
    cr_assert_eq(memcmp(got, want_err, n), 0, "the ErrorResponse alone");
    MSG(&rest, 'B', "\0\0\0\0\0\0\0\0");
    MSG(&rest, 'E', "\0\0\0\0\0");
    MSG(&rest, 'S', "");
    cr_assert_eq(frame_all_erred(st, &rest, out), 1);
    n = evbuffer_remove(out, got, sizeof(got));
    cr_assert_eq(n, 6);
    cr_assert_eq(memcmp(got, "Z\0\0\0\x05I", 6), 0, "then ReadyForQuery at the Sync");
    evbuffer_free(out);
    framer_free(PG, st);
}

Test(postgres, a_startup_length_the_server_refuses_is_malformed_at_its_fourth_byte)
{
    static const uint32_t bad[] = { 0, 7, 10001, 0x47455420 /* "GET " */ };

    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        void *st = framer_new(PG);
        struct evbuffer *in = evbuffer_new();
        struct proto_unit u = { 0 };
        struct buf b = { .n = 0 };

        put32(&b, bad[k]);
        evbuffer_add(in, b.b, b.n);
        cr_assert_eq(PG->frame(st, PROTO_UP, in, &u), -1, "length %u",
                     (unsigned)bad[k]);
        evbuffer_free(in);
        framer_free(PG, st);
    }
}

Test(postgres, a_flush_before_any_group_asks_for_nothing_and_the_group_is_named_by_its_parse)
{
    struct buf b = { .n = 0 };
    struct frames f;

    MSG(&b, 'H', "");
    MSG(&b, 'P', "\0UPDATE t SET n = 1\0\0\0");
    MSG(&b, 'B', "\0\0\0\0\0\0\0\0");
    MSG(&b, 'E', "\0\0\0\0\0");
    MSG(&b, 'S', "");
    frame_every_split(PG, ready, PROTO_UP, b.b, b.n, NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 2);
    cr_assert_eq(f.len[0], 5);
    cr_assert_eq(f.flags[0] & (PROTO_NOFAULT | PROTO_NOREPLY),
                 PROTO_NOFAULT | PROTO_NOREPLY);
    cr_assert_eq(f.len[1], b.n - 5);
    cr_assert_eq(f.flags[1] & (PROTO_NOFAULT | PROTO_NOREPLY), 0);
}

/* A request's reply: its ReadyForQuery says 'T' (a BEGIN's). */
static void in_a_block(void *st)
{
    struct buf z = { .n = 0 };

    MSG(&z, 'C', "BEGIN\0");
    MSG(&z, 'Z', "T");
    feed_as(st, PROTO_DOWN, &z, REQ('Q'));
}

/* The proxy's answer to the request whose info is info, as when it draws
 * a 40001: its first cap bytes in got; returns their count. */
static size_t answer(void *st, uint32_t info, unsigned char *got, size_t cap)
{
    struct evbuffer *out = evbuffer_new();
    struct proto_error e = { .sqlstate = "40001", .message = "" };
    struct proto_unit req = { .info = info };
    bool close;
    size_t n;

    PG->error_reply(st, &e, &req, NULL, out, &close);
    n = evbuffer_remove(out, got, cap);
    evbuffer_free(out);
    return n;
}

/* The proxy fails the block: an error drawn after a ReadyForQuery 'T'. */
static void fail_block(void *st)
{
    unsigned char got[128];

    answer(st, REQ('Q'), got, sizeof(got));
    cr_assert(PG->edits(st), "the proxy failed the block");
}

/* Frames the request b at the front of a fresh buffer (its head step);
 * returns its flags, its info in *info. */
static unsigned frame_request(void *st, const struct buf *b, uint32_t *info)
{
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    ssize_t n;

    evbuffer_add(in, b->b, b->n);
    n = PG->frame(st, PROTO_UP, in, &u);
    cr_assert_gt(n, 0);
    *info = u.info;
    evbuffer_drain(in, (size_t)n);
    while (evbuffer_get_length(in) > 0 && !(u.flags & PROTO_END)) {
        n = PG->frame(st, PROTO_UP, in, &u);
        cr_assert_gt(n, 0);
        evbuffer_drain(in, (size_t)n);
    }
    cr_assert(u.flags & PROTO_END);
    evbuffer_free(in);
    return u.flags;
}

static void bind_exec_sync(struct buf *b, const char *stmt)
{
    unsigned char body[80] = { 0 }; /* portal "", stmt, no formats,
                                       parameters or result formats */
    size_t len = strlen(stmt);

    memcpy(body + 1, stmt, len);
    msg(b, 'B', body, 1 + len + 1 + 6);
    MSG(b, 'E', "\0\0\0\0\0");
    MSG(b, 'S', "");
}

Test(postgres, a_prepared_rollback_ends_a_block_the_proxy_failed_and_a_prepared_commit_is_refused)
{
    void *st = framer_new(PG);
    struct buf b = { .n = 0 }, z = { .n = 0 };
    uint32_t info;

    ready_with(st, 'T');
    MSG(&b, 'P', "S_1\0COMMIT\0\0\0");
    MSG(&b, 'P', "S_2\0  rollback\0\0\0");
    MSG(&b, 'P', "S_3\0ROLLBACK_NOT\0\0\0");
    MSG(&b, 'S', "");
    feed(st, PROTO_UP, &b);
    fail_block(st);
    b.n = 0;
    bind_exec_sync(&b, "S_1");
    cr_assert(frame_request(st, &b, &info) & PROTO_REFUSE, "a prepared COMMIT");
    b.n = 0;
    bind_exec_sync(&b, "S_3");
    cr_assert(frame_request(st, &b, &info) & PROTO_REFUSE, "not a ROLLBACK");
    b.n = 0;
    bind_exec_sync(&b, "S_2");
    cr_assert_eq(frame_request(st, &b, &info) & PROTO_REFUSE, 0, "a prepared ROLLBACK");
    MSG(&z, '2', "");
    MSG(&z, 'C', "ROLLBACK\0");
    MSG(&z, 'Z', "I");
    feed_as(st, PROTO_DOWN, &z, info);
    cr_assert(!PG->edits(st), "the server left the block");
    /* closed, then prepared again as something else: no ROLLBACK now */
    b.n = 0;
    MSG(&b, 'C', "SS_2\0");
    MSG(&b, 'P', "S_2\0SELECT 1\0\0\0");
    MSG(&b, 'S', "");
    feed(st, PROTO_UP, &b);
    in_a_block(st);
    fail_block(st);
    b.n = 0;
    bind_exec_sync(&b, "S_2");
    cr_assert(frame_request(st, &b, &info) & PROTO_REFUSE);
    framer_free(PG, st);
}

Test(postgres, what_follows_the_end_of_a_failed_block_reaches_the_server_unless_the_end_was_refused)
{
    void *st = framer_new(PG);
    struct buf z = { .n = 0 };
    uint32_t info, end;
    unsigned char got[128];

    ready_with(st, 'T');
    fail_block(st);
    cr_assert_eq(frame_query(st, "ROLLBACK", &end) & PROTO_REFUSE, 0);
    cr_assert_eq(frame_query(st, "SELECT 1", &info) & PROTO_REFUSE, 0,
                 "pipelined behind the ROLLBACK, before its reply");
    MSG(&z, 'C', "ROLLBACK\0");
    MSG(&z, 'Z', "I");
    feed_as(st, PROTO_DOWN, &z, end);
    cr_assert(!PG->edits(st));
    /* the ROLLBACK itself draws an error: the server never sees it, the
     * block stays failed */
    in_a_block(st);
    fail_block(st);
    cr_assert_eq(frame_query(st, "ROLLBACK", &end) & PROTO_REFUSE, 0);
    answer(st, end, got, sizeof(got));
    cr_assert(frame_query(st, "SELECT 1", &info) & PROTO_REFUSE);
    framer_free(PG, st);
}

Test(postgres, a_lone_sync_in_a_block_the_proxy_failed_gets_ready_for_query_failed)
{
    void *st = framer_new(PG);
    struct buf b = { .n = 0 };
    unsigned char got[16];
    uint32_t info;

    ready_with(st, 'T');
    fail_block(st);
    MSG(&b, 'S', "");
    cr_assert(frame_request(st, &b, &info) & PROTO_REFUSE);
    cr_assert_eq(answer(st, info, got, sizeof(got)), 6);
    cr_assert_eq(memcmp(got, "Z\0\0\0\x05" "E", 6), 0);
    framer_free(PG, st);
}
