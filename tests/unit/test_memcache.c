/* The memcache framer: text and meta commands split anywhere. */
#include "framer.h"

#include <stdio.h>

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

/* The kind of each request in reqs, as the session hands it to its reply. */
static void infos_of(const char *reqs, struct infos *out)
{
    void *st = framer_new(M);
    struct evbuffer *in = evbuffer_new();
    struct proto_unit u = { 0 };
    ssize_t n;

    memset(out, 0, sizeof(*out));
    evbuffer_add(in, reqs, strlen(reqs));
    while ((n = M->frame(st, PROTO_UP, in, &u)) > 0) {
        evbuffer_drain(in, (size_t)n);
        if (u.flags & PROTO_END) {
            if (!(u.flags & PROTO_NOREPLY))
                out->info[out->n++] = u.info;
            memset(&u, 0, sizeof(u));
        }
    }
    cr_assert_eq(evbuffer_get_length(in), 0, "not framed: %s", reqs);
    evbuffer_free(in);
    framer_free(M, st);
}

/* A command and the reply memcached 1.6 sends to it (items and figures
 * shortened), every one followed by "mn": the reply must end where the
 * server's does, so that the MN after it is a reply of its own. */
static const struct {
    const char *request;
    const char *reply;
} replies_by_command[] = {
    { "stats reset", "RESET\r\n" },
    { "stats detail on", "OK\r\n" },
    { "stats detail off", "OK\r\n" },
    { "stats detail of", "OK\r\n" }, /* newer servers: abbreviations */
    { "stats res", "RESET\r\n" },
    { "stats res", "ERROR\r\n" },    /* 1.6.18: unknown */
    { "stats detail dump", "PREFIX user get 2 hit 1 set 1 del 0\r\nEND\r\n" },
    { "stats detail dump", "END\r\n" },
    { "stats detail", "CLIENT_ERROR usage: stats detail on|off|dump\r\n" },
    { "stats", "STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n" },
    { "stats settings", "STAT maxbytes 67108864\r\nSTAT maxconns 1024\r\nEND\r\n" },
    { "stats slabs", "STAT 1:chunk_size 96\r\nSTAT active_slabs 1\r\nEND\r\n" },
    { "stats items", "STAT items:1:number 1\r\nSTAT items:1:age 3\r\nEND\r\n" },
    { "stats sizes", "STAT sizes_status disabled\r\nEND\r\n" },
    { "stats conns",
      "STAT 23:addr tcp:127.0.0.1:11211\r\nSTAT 23:state conn_listening\r\nEND\r\n" },
    { "stats cachedump 1 1", "ITEM k [1 b; 0 s]\r\nEND\r\n" },
    { "stats nonsense", "ERROR\r\n" },
    { "flush_all", "OK\r\n" },
    { "flush_all 10", "OK\r\n" },
    { "version", "VERSION 1.6.18\r\n" },
    { "verbosity 1", "OK\r\n" },
    { "cache_memlimit 64", "OK\r\n" },
    { "touch k 10", "TOUCHED\r\n" },
    { "delete k", "DELETED\r\n" },
    { "incr n 1", "11\r\n" },
    { "decr n 1", "NOT_FOUND\r\n" },
    { "slabs automove 1", "OK\r\n" },
    { "slabs reassign 1 2", "NOSPARE source class has no spare pages\r\n" },
    { "lru mode flat", "OK\r\n" },
    { "lru_crawler crawl all", "OK\r\n" },
    { "lru_crawler metadump all",
      "key=j exp=-1 la=1796149797 cas=2 fetch=no cls=1 size=61\n"
      "key=k exp=-1 la=1796149798 cas=1 fetch=yes cls=1 size=61\nEND\r\n" },
    { "lru_crawler metadump all", "END\r\n" },
    { "lru_crawler metadump all", "BUSY currently processing crawler request\r\n" },
    { "lru_crawler metadump 99", "BADCLASS invalid class id\r\n" },
    { "lru_crawler mgdump all", "mg j\r\nmg k\r\nEN\r\n" },
    { "me k", "ME k exp=-1 la=1 cas=1 fetch=yes cls=1 size=61\r\n" },
    { "shutdown", "ERROR: shutdown not enabled\r\n" },
    { "misbehave", "ERROR\r\n" },
    { "nonsense", "ERROR\r\n" },
};

Test(memcache, every_reply_ends_where_the_servers_does)
{
    for (size_t i = 0; i < sizeof(replies_by_command) / sizeof(*replies_by_command); i++) {
        char reqs[128], reps[512];
        struct infos infos;
        struct frames f;

        snprintf(reqs, sizeof(reqs), "%s\r\nmn\r\n", replies_by_command[i].request);
        snprintf(reps, sizeof(reps), "%sMN\r\n", replies_by_command[i].reply);
        infos_of(reqs, &infos);
        cr_assert_eq(infos.n, 2, "%s: %d requests", reqs, infos.n);
        frames_of(PROTO_DOWN, reps, &infos, &f);
        cr_assert_eq(f.n, 2, "%s: %d replies", replies_by_command[i].request, f.n);
        cr_assert_eq(f.len[0], strlen(replies_by_command[i].reply), "%s: %zu bytes",
                     replies_by_command[i].request, f.len[0]);
        cr_assert_eq(f.len[1], 4);
        cr_assert_eq(f.partial + f.left, 0);
    }
}

Test(memcache, quit_and_noreply_commands_expect_no_reply)
{
    static const char *const none[] = { "quit", "flush_all 0 noreply", "verbosity 1 noreply",
                                        "touch k 10 noreply", "delete k noreply",
                                        "incr n 1 noreply" };

    for (size_t i = 0; i < sizeof(none) / sizeof(*none); i++) {
        char req[64];
        struct frames f;
        snprintf(req, sizeof(req), "%s\r\n", none[i]);
        frames_of(PROTO_UP, req, NULL, &f);
        cr_assert_eq(f.n, 1);
        cr_assert(f.flags[0] & PROTO_NOREPLY, "%s", none[i]);
    }
}

/* parts(): the words of the request's first line; the key is the first
 * one after the command (after the expiry time for gat and gats), none for
 * commands without keys. Every prefix of a request names a part of what
 * the whole names. */
Test(memcache, names_the_command_its_words_and_its_key)
{
    static const struct {
        const char *in;
        struct parts_want want;
    } cases[] = {
        { "set k 0 0 5\r\nhello\r\n",
          { .command = "set", .key = "k", .nargs = 4, .args = { "k", "0", "0", "5" } } },
        { "get a b c\r\n",
          { .command = "get", .key = "a", .nargs = 3, .args = { "a", "b", "c" } } },
        { "gat 100 a b\r\n",
          { .command = "gat", .key = "a", .nargs = 3, .args = { "100", "a", "b" } } },
        { "gats 1 x\r\n", { .command = "gats", .key = "x", .nargs = 2, .args = { "1", "x" } } },
        { "gat 100\r\n", { .command = "gat", .nargs = 1, .args = { "100" } } },
        { "delete  k\t noreply\r\n",
          { .command = "delete", .key = "k", .nargs = 2, .args = { "k", "noreply" } } },
        { "incr n 5\n", { .command = "incr", .key = "n", .nargs = 2, .args = { "n", "5" } } },
        { "touch k 10\r\n", { .command = "touch", .key = "k", .nargs = 2, .args = { "k", "10" } } },
        { "mg k v q\r\nms b 1 q\r\nx\r\nmn\r\n",
          { .command = "mg", .key = "k", .nargs = 3, .args = { "k", "v", "q" } } },
        { "ms k 2 T0\r\nhi\r\n",
          { .command = "ms", .key = "k", .nargs = 3, .args = { "k", "2", "T0" } } },
        { "md k\r\n", { .command = "md", .key = "k", .nargs = 1, .args = { "k" } } },
        { "ma k\r\n", { .command = "ma", .key = "k", .nargs = 1, .args = { "k" } } },
        { "mn\r\n", { .command = "mn" } },
        { "stats items\r\n", { .command = "stats", .nargs = 1, .args = { "items" } } },
        { "version\r\n", { .command = "version" } },
        { "flush_all 10\r\n", { .command = "flush_all", .nargs = 1, .args = { "10" } } },
        { "verbosity 1\r\n", { .command = "verbosity", .nargs = 1, .args = { "1" } } },
        { "quit\r\n", { .command = "quit" } },
        { "get\r\n", { .command = "get" } },
        { "\r\n", { 0 } },
        { "get k", { .command = "get" } },
    };
    struct proto_parts pp;
    struct proto_unit u = { 0 };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        parts_every_prefix(M, &u, cases[i].in, strlen(cases[i].in), false, &pp);
        parts_expect(&pp, &cases[i].want, cases[i].in);
    }
}

Test(memcache, keeps_sixteen_words_after_the_command)
{
    char in[256] = "get";
    struct proto_parts pp;
    struct proto_unit u = { 0 };

    for (int i = 0; i < 20; i++)
        sprintf(in + strlen(in), " k%d", i);
    strcat(in, "\r\n");
    parts_every_prefix(M, &u, in, strlen(in), false, &pp);
    cr_assert_eq(pp.nargs, PROTO_ARGS_MAX);
    cr_assert(piece_is(pp.key, "k0"));
    cr_assert(piece_is(pp.args[15], "k15"));
}
