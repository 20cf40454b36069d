/* Every framer takes random and mutated bytes without crashing, and hands
 * out no more than it was given. (The libFuzzer harnesses go further.) */
#include "framer.h"

static const char *const seeds[] = {
    "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    "%1\r\n+a\r\n*2\r\n:1\r\n$3\r\nabc\r\n",
    "set k 0 0 5\r\nhello\r\nget a b\r\nmg k v q\r\nmn\r\n",
    "VALUE a 0 3\r\nxyz\r\nEND\r\n",
    "EHLO x\r\nMAIL FROM:<a@b>\r\nDATA\r\n",
    "250-a\r\n250 b\r\n354 go\r\n",
    "\x05\x00\x00\x00\x03SELE\x01\x00\x00\x00\x0e",
    "\x01\x00\x00\x01\x02\x05\x00\x00\x02\xfe\x00\x00\x02\x00",
};

static void run(const struct proto_ops *ops, enum proto_dir dir, const unsigned char *p,
                size_t n, size_t piece)
{
    void *st = framer_new(ops);
    struct frames f;
    struct infos req = { .n = FRAMES_MAX };

    for (int i = 0; i < FRAMES_MAX; i++)
        req.info[i] = (uint32_t)(i * 7) & 0x1f;
    frame_all(ops, st, dir, p, n, 0, piece, &req, &f);
    size_t out = f.partial;
    for (int i = 0; i < f.n; i++)
        out += f.len[i];
    cr_assert(out <= n + 4096, "handed out %zu of %zu bytes", out, n);
    framer_free(ops, st);
}

Test(fuzzish, framers_survive_random_and_mutated_input)
{
    struct rng r;
    unsigned char buf[512];

    rng_seed(&r, 2026);
    for (int i = 0; i < proto_count(); i++) {
        const struct proto_ops *ops = proto_at(i);
        if (ops->frame == NULL)
            continue;
        for (int round = 0; round < 3000; round++) {
            size_t n;
            if (round % 2 == 0) {
                n = 1 + rng_below(&r, sizeof(buf));
                rng_fill(&r, buf, n);
            } else {
                const char *seed = seeds[rng_below(&r, sizeof(seeds) / sizeof(*seeds))];
                n = strlen(seed);
                memcpy(buf, seed, n);
                for (int k = 0; k < 3; k++)
                    buf[rng_below(&r, n)] = (unsigned char)rng_next(&r);
            }
            run(ops, round % 4 < 2 ? PROTO_UP : PROTO_DOWN, buf, n, 1 + rng_below(&r, 16));
        }
    }
}
