/* The smtp framer: commands, replies and the message, split anywhere. */
#include "framer.h"

#define S (&proto_smtp)

static void expect_body(void *st)
{
    /* a DATA command answered 354 */
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { .info = 2 /* DATA */ };

    evbuffer_add(in, "354 go ahead\r\n", 14);
    cr_assert_eq(S->frame(st, PROTO_DOWN, in, &u), 14);
    evbuffer_free(in);
}

Test(smtp, frames_pipelined_commands)
{
    const char req[] = "EHLO me\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n";
    struct frames f;

    frame_every_split(S, NULL, PROTO_UP, req, strlen(req), NULL, &f);
    cr_assert_eq(f.n, 4);
    cr_assert_eq(f.len[0], 9);
    cr_assert_eq(f.len[3], 6);
}

Test(smtp, frames_multi_line_replies)
{
    const char rep[] = "220 mail ready\r\n250-mail\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                       "550 5.1.1 no such user\r\n";
    struct frames f;

    frame_every_split(S, NULL, PROTO_DOWN, rep, strlen(rep), NULL, &f);
    cr_assert_eq(f.n, 3);
    cr_assert_eq(f.len[0], 16);
    cr_assert_eq(f.len[1], 40);
    cr_assert_eq(f.len[2], 24);
}

Test(smtp, the_message_after_354_ends_at_the_lone_dot)
{
    const char body[] = "..\r\n..stuffed\r\nline .\r\n.not the end\r\n\r\n.\r\nQUIT\r\n";
    struct frames f;

    frame_every_split(S, expect_body, PROTO_UP, body, strlen(body), NULL, &f);
    cr_assert_eq(f.error, 0);
    cr_assert_eq(f.n, 2, "the message, then a command again");
    cr_assert_eq(f.len[0], strlen(body) - 6);
    cr_assert(f.flags[0] & PROTO_FORWARD);
    cr_assert_eq(f.len[1], 6);
    cr_assert(!(f.flags[1] & PROTO_FORWARD));
}

Test(smtp, bdat_carries_its_chunk)
{
    const char req[] = "BDAT 5\r\nab\r\ncBDAT 0 LAST\r\n";
    struct frames f;

    frame_every_split(S, NULL, PROTO_UP, req, strlen(req), NULL, &f);
    cr_assert_eq(f.n, 2);
    cr_assert_eq(f.len[0], 13);
    cr_assert_eq(f.len[1], 13);
}

Test(smtp, starttls_accepted_starts_tls_once)
{
    void *st = framer_new(S);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { .info = 5 /* STARTTLS */ };

    evbuffer_add(in, "220 2.0.0 ready\r\n", 17);
    cr_assert_eq(S->frame(st, PROTO_DOWN, in, &u), 17);
    cr_assert_eq(S->mode(st), PROTO_STARTTLS);
    cr_assert_eq(S->mode(st), PROTO_FRAMED); /* said once */
    evbuffer_free(in);
    framer_free(S, st);
}

Test(smtp, a_reply_that_is_not_smtp_is_refused)
{
    struct frames f;
    void *st = framer_new(S);

    frame_all(S, st, PROTO_DOWN, "HTTP/1.1 200 OK\r\n", 17, 0, 64, NULL, &f);
    cr_assert(f.error);
    framer_free(S, st);
}

Test(smtp, the_error_has_a_code_and_an_enhanced_code)
{
    void *st = framer_new(S);
    struct evbuffer *out = evbuffer_new();
    struct proto_error e = { .message = "" };
    struct proto_unit u = { 0 };
    bool close = true;
    char buf[256] = { 0 };

    S->error_reply(st, &e, &u, NULL, out, &close);
    evbuffer_remove(out, buf, sizeof(buf) - 1);
    cr_assert(strncmp(buf, "451 4.3.0 ", 10) == 0, "%s", buf);
    cr_assert(!close);
    e.code = 554;
    e.message = "go away";
    memset(buf, 0, sizeof(buf));
    S->error_reply(st, &e, &u, NULL, out, &close);
    evbuffer_remove(out, buf, sizeof(buf) - 1);
    cr_assert_str_eq(buf, "554 5.3.0 go away\r\n");
    e.code = 421;
    S->error_reply(st, &e, &u, NULL, out, &close);
    cr_assert(close);
    evbuffer_free(out);
    framer_free(S, st);
}

/* parts(): the verb as sent, and the rest of the line as one argument once
 * the line has ended. Every prefix of a command names a part of what the
 * whole names. */
Test(smtp, names_the_verb_and_the_rest_of_the_line)
{
    static const struct {
        const char *in;
        struct parts_want want;
    } cases[] = {
        { "MAIL FROM:<a@x> SIZE=10\r\n",
          { .command = "MAIL", .nargs = 1, .args = { "FROM:<a@x> SIZE=10" } } },
        { "ehlo  \tme.example\r\n", { .command = "ehlo", .nargs = 1, .args = { "me.example" } } },
        { "RCPT TO:<b@y>  \r\n", { .command = "RCPT", .nargs = 1, .args = { "TO:<b@y>  " } } },
        { "DATA\r\n", { .command = "DATA" } },
        { "QUIT\n", { .command = "QUIT" } },
        { "NOOP   \r\n", { .command = "NOOP" } },
        { "BDAT 5\r\nab\r\nc", { .command = "BDAT", .nargs = 1, .args = { "5" } } },
        { "HELO x\r\nQUIT\r\n", { .command = "HELO", .nargs = 1, .args = { "x" } } },
        { "MAIL FROM:<a", { .command = "MAIL" } },
        { "\r\n", { 0 } },
        { "QUIT", { 0 } },
    };
    struct proto_parts pp;
    struct proto_unit u = { 0 };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        parts_every_prefix(S, &u, cases[i].in, strlen(cases[i].in), false, &pp);
        parts_expect(&pp, &cases[i].want, cases[i].in);
    }
}

/* The message after DATA's 354 has no verb, whatever its first line says:
 * it names nothing. */
Test(smtp, the_message_after_data_names_nothing)
{
    void *st = framer_new(S);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    struct proto_parts pp;
    const char body[] = "QUIT looks like a command\r\n.\r\n";

    expect_body(st);
    evbuffer_add(in, body, sizeof(body) - 1);
    cr_assert(S->frame(st, PROTO_UP, in, &u) > 0);
    cr_assert(u.flags & PROTO_HEAD);
    parts_every_prefix(S, &u, body, sizeof(body) - 1, false, &pp);
    parts_expect(&pp, &(struct parts_want){ 0 }, "the message");
    evbuffer_free(in);
    framer_free(S, st);
}
