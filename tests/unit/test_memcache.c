/* The memcache framer: text and meta commands split anywhere. */
#include "framer.h"

#define M (&proto_memcache)

static void frames_of(enum proto_dir dir, const char *data, const struct infos *req,
                      struct frames *f)
{
    frame_every_split(M, NULL, dir, data, strlen(data), req, f);
    cr_assert_eq(f->error, 0, "malformed: %s", data);
}

Test(memcache, frames_storage_commands_with_their_data_blocks)
{
    const char req[] = "set k 0 0 5\r\nhello\r\n"         /* 20 */
                       "cas k 1 2 3 99 noreply\r\nabc\r\n" /* 29 */
                       "append k 0 0 2\r\n\r\n\r\n"        /* 20 */
                       "get a b c\r\n"                     /* 11 */
                       "incr n 5\r\n"                      /* 10 */
                       "ms k 2 T0\r\nhi\r\n";              /* 15 */
    struct frames f;

    frames_of(PROTO_UP, req, NULL, &f);
    cr_assert_eq(f.n, 6);
    size_t lens[] = { 20, 29, 20, 11, 10, 15 };
    for (int i = 0; i < 6; i++)
        cr_assert_eq(f.len[i], lens[i], "unit %d: %zu", i, f.len[i]);
    cr_assert(f.flags[1] & PROTO_NOREPLY);
    cr_assert(!(f.flags[0] & PROTO_NOREPLY));
}

Test(memcache, frames_replies_by_the_kind_of_request)
{
    const char rep[] = "STORED\r\n"                                        /* single: 8 */
                       "VALUE a 0 3\r\nxyz\r\nVALUE c 5 2 77\r\nhi\r\nEND\r\n" /* 40 */
                       "STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n"            /* stats: 32 */
                       "VA 2 t\r\nhi\r\n"                                  /* meta: 12 */
                       "EN\r\n"                                            /* meta: 4 */
                       "SERVER_ERROR out of memory\r\n";                   /* retrieval: 28 */
    struct infos req = { .n = 6, .info = { 0, 1, 2, 3, 3, 1 } };
    struct frames f;

    frames_of(PROTO_DOWN, rep, &req, &f);
    cr_assert_eq(f.n, 6);
    size_t lens[] = { 8, 43, 32, 12, 4, 28 };
    for (int i = 0; i < 6; i++)
        cr_assert_eq(f.len[i], lens[i], "unit %d: %zu", i, f.len[i]);
}

Test(memcache, quiet_meta_requests_group_with_the_mn_that_ends_them)
{
    const char req[] = "mg a v q\r\nms b 1 q\r\nx\r\nmn\r\nmg c v\r\n";
    const char rep[] = "VA 1\r\nx\r\nMN\r\nEN\r\n";
    struct infos infos = { .n = 2, .info = { 4, 3 } };
    struct frames f;

    frames_of(PROTO_UP, req, NULL, &f);
    cr_assert_eq(f.n, 2);
    cr_assert_eq(f.len[0], 27);
    cr_assert(f.flags[0] & PROTO_NOFAULT);
    frames_of(PROTO_DOWN, rep, &infos, &f);
    cr_assert_eq(f.n, 2);
    cr_assert_eq(f.len[0], 13);
    cr_assert_eq(f.len[1], 4);
}

Test(memcache, the_binary_protocol_is_passed_through)
{
    void *st = framer_new(M);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };

    evbuffer_add(in, "\x80\x00\x00\x01", 4);
    cr_assert(M->frame(st, PROTO_UP, in, &u) < 0);
    cr_assert_eq(M->mode(st), PROTO_RAW);
    evbuffer_free(in);
    framer_free(M, st);
}

Test(memcache, malformed_lines_are_refused)
{
    static const char *const bad[] = { "set k 0 0 x\r\n", "ms k\r\n", "mg a q\r\nmg b\r\n" };

    for (size_t i = 0; i < 3; i++) {
        struct frames f;
        void *st = framer_new(M);
        frame_all(M, st, PROTO_UP, bad[i], strlen(bad[i]), 0, 64, NULL, &f);
        cr_assert(f.error, "%zu accepted", i);
        framer_free(M, st);
    }
}

Test(memcache, the_error_is_a_server_error_line)
{
    void *st = framer_new(M);
    struct evbuffer *out = evbuffer_new();
    struct proto_error e = { .message = "out of memory storing object" };
    struct proto_unit u = { 0 };
    bool close = true;
    char buf[128] = { 0 };

    M->error_reply(st, &e, &u, NULL, out, &close);
    evbuffer_remove(out, buf, sizeof(buf) - 1);
    cr_assert_str_eq(buf, "SERVER_ERROR out of memory storing object\r\n");
    cr_assert(!close);
    evbuffer_free(out);
    framer_free(M, st);
}
