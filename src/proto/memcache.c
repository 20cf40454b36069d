/*
 * memcache: the memcached text protocol, classic and meta commands.
 *
 *   client ─▶ "set k 0 0 5\r\nhello\r\n", "get a b c\r\n", "mg k v\r\n" ─▶ a request
 *   server ─▶ "STORED\r\n", "VALUE ...\r\n<data>\r\nEND\r\n", "VA 5\r\n..." ─▶ a reply
 *
 * A request with `noreply` gets no reply; an error drops it silently (a
 * lost write). Quiet meta requests (flag q) are grouped with the request
 * that ends them, which must be `mn`: their replies are read until "MN".
 * The binary protocol is passed through. An error reply is
 * "SERVER_ERROR <message>\r\n".
 *
 * The replies to commands other than storage, retrieval and meta:
 *   stats [settings|items|slabs|sizes|conns|cachedump|detail dump]
 *                                 STAT (ITEM, PREFIX) lines, then END
 *   stats reset                   RESET
 *   stats detail on|off           OK
 *   lru_crawler metadump|mgdump   a line per item, then END (EN for mgdump),
 *                                 or a one-line refusal (BUSY, BADCLASS, ...)
 *   anything else (flush_all, version, verbosity, touch, delete, incr,
 *   slabs, lru, lru_crawler crawl, cache_memlimit, shutdown, ...)
 *                                 one line
 *   quit                          none: the server closes
 * and an ERROR, CLIENT_ERROR or SERVER_ERROR line ends any reply.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/proto.h"

#define MC_LINE_MAX 65536  /* a request or reply line */
#define MC_KEEP 1024       /* bytes of a line kept to read its tokens */
#define MC_DATA_MAX (1LL << 31)

enum mc_kind {
    MC_SINGLE,    /* one line */
    MC_RETRIEVAL, /* VALUE blocks, then END */
    MC_STATS,     /* lines, then END; or RESET, OK */
    MC_META,      /* one line; "VA n" has a data block */
    MC_MN_GROUP,  /* meta replies until "MN" */
    MC_DUMP,      /* lines, then END or EN; or a one-line refusal */
};

struct mc_dir {
    struct proto_framer f;  /* first: the driver's state */
    bool request;
    bool in_data;           /* skipping a data block */
    long long data_left;    /* bytes of it left, CRLF included */
    size_t linelen;         /* bytes of the current line so far */
    char line[MC_KEEP + 1]; /* its first bytes */
    /* request: what the line said */
    enum mc_kind kind;
    bool noreply;
    bool quiet;             /* a quiet meta request: the unit goes on */
    bool grouped;           /* quiet requests came before in this unit */
    bool nofault;
    bool binary;            /* the binary protocol: not framed */
    /* reply: what the request asked for */
    enum mc_kind reply_kind;
};

struct mc_state {
    struct mc_dir up, down;
    bool raw;
};

/* Splits line into at most max tokens; returns how many. */
static int tokens(char *line, char **tok, int max)
{
    int n = 0;
    char *save = NULL;

    for (char *t = strtok_r(line, " \t\r\n", &save); t != NULL && n < max;
         t = strtok_r(NULL, " \t\r\n", &save))
        tok[n++] = t;
    return n;
}

static bool parse_len(const char *t, long long *out)
{
    char *end;
    long long v;

    if (t == NULL || *t < '0' || *t > '9')
        return false;
    v = strtoll(t, &end, 10);
    if (*end != '\0' || v < 0 || v > MC_DATA_MAX)
        return false;
    *out = v;
    return true;
}

static bool is(const char *t, const char *name)
{
    return strcmp(t, name) == 0;
}

/* A request line is complete: learn what it is. Returns false if it is
 * not memcache. */
static bool request_line(struct mc_dir *d)
{
    char buf[MC_KEEP + 1], *tok[24];
    int n;
    long long len;

    memcpy(buf, d->line, sizeof(buf));
    n = tokens(buf, tok, 24);
    d->noreply = d->quiet = false;
    d->kind = MC_SINGLE;
    if (n == 0)
        return true; /* an empty line: the server answers ERROR */
    if (d->linelen > MC_KEEP && !(is(tok[0], "get") || is(tok[0], "gets") ||
                                 is(tok[0], "gat") || is(tok[0], "gats")))
        return false;
    if (n > 1 && is(tok[n - 1], "noreply"))
        d->noreply = true;
    if (is(tok[0], "set") || is(tok[0], "add") || is(tok[0], "replace") ||
        is(tok[0], "append") || is(tok[0], "prepend") || is(tok[0], "cas")) {
        if (n < 5 || !parse_len(tok[4], &len))
            return false;
        d->in_data = true;
        d->data_left = len + 2;
    } else if (is(tok[0], "get") || is(tok[0], "gets") || is(tok[0], "gat") ||
               is(tok[0], "gats")) {
        d->kind = MC_RETRIEVAL;
    } else if (is(tok[0], "stats")) {
        d->kind = MC_STATS;
    } else if (is(tok[0], "lru_crawler") && n >= 2 &&
               (is(tok[1], "metadump") || is(tok[1], "mgdump"))) {
        d->kind = MC_DUMP;
    } else if (tok[0][0] == 'm' && tok[0][1] != '\0' && tok[0][2] == '\0') {
        /* meta: mg ms md ma mn me */
        d->kind = MC_META;
        for (int i = 2; i < n; i++)
            if (tok[i][0] == 'q' && tok[i][1] == '\0')
                d->quiet = true;
        if (is(tok[0], "ms")) {
            if (n < 3 || !parse_len(tok[2], &len))
                return false;
            d->in_data = true;
            d->data_left = len + 2;
        }
    } else if (is(tok[0], "quit")) {
        d->noreply = true;
    } else if (is(tok[0], "watch")) {
        d->kind = MC_STATS; /* streams: passed through after it */
    }
    return true;
}

static bool starts(const char *line, const char *word)
{
    size_t n = strlen(word);

    return strncmp(line, word, n) == 0 &&
           (line[n] == ' ' || line[n] == '\r' || line[n] == '\n' ||
            line[n] == '\0');
}

/* A reply line is complete: decide whether the reply goes on. */
static void reply_line(struct mc_dir *d)
{
    char buf[MC_KEEP + 1], *tok[8];
    int n;
    long long len;

    if (starts(d->line, "ERROR") || starts(d->line, "CLIENT_ERROR") ||
        starts(d->line, "SERVER_ERROR")) {
        d->f.done = true;
        return;
    }
    memcpy(buf, d->line, sizeof(buf));
    n = tokens(buf, tok, 8);
    switch (d->reply_kind) {
    case MC_SINGLE:
        d->f.done = true;
        return;
    case MC_RETRIEVAL:
        if (n >= 4 && is(tok[0], "VALUE")) {
            if (!parse_len(tok[3], &len)) {
                d->f.error = true;
                return;
            }
            d->in_data = true;
            d->data_left = len + 2;
        } else if (n == 1 && is(tok[0], "END")) {
            d->f.done = true;
        } else {
            d->f.error = true;
        }
        return;
    case MC_STATS:
        /* `stats reset` answers RESET, `stats detail on|off` OK: lines no
         * list has (read here rather than from the request, as newer
         * servers take abbreviated arguments: "stats detail of") */
        if (n == 1 && (is(tok[0], "END") || is(tok[0], "RESET") ||
                       is(tok[0], "OK")))
            d->f.done = true;
        return;
    case MC_DUMP:
        /* item lines are "key=..." (metadump) or "mg <key>" (mgdump) */
        if ((n == 1 && (is(tok[0], "END") || is(tok[0], "EN"))) ||
            (n >= 1 && (is(tok[0], "BUSY") || is(tok[0], "BADCLASS") ||
                        is(tok[0], "NOTSTARTED"))))
            d->f.done = true;
        return;
    case MC_META:
    case MC_MN_GROUP:
        if (n >= 2 && is(tok[0], "VA")) {
            if (!parse_len(tok[1], &len)) {
                d->f.error = true;
                return;
            }
            d->in_data = true;
            d->data_left = len + 2;
            return;
        }
        if (d->reply_kind == MC_META || (n >= 1 && is(tok[0], "MN")))
            d->f.done = true;
        return;
    }
}

/* The data block of a request or reply has been skipped. */
static void data_done(struct mc_dir *d)
{
    d->in_data = false;
    if (d->request) {
        if (!d->quiet)
            d->f.done = true;
        return;
    }
    if (d->reply_kind == MC_META)
        d->f.done = true;
}

static size_t mc_feed(void *st, const unsigned char *p, size_t n)
{
    struct mc_dir *d = st;
    size_t i = 0;

    while (i < n && !d->f.done && !d->f.error) {
        if (d->in_data) {
            size_t take = n - i;
            if ((long long)take > d->data_left)
                take = (size_t)d->data_left;
            d->data_left -= (long long)take;
            i += take;
            if (d->data_left == 0)
                data_done(d);
            continue;
        }
        if (d->linelen == 0 && d->request && p[i] == 0x80) {
            d->binary = true;
            d->f.error = true;
            break;
        }
        bool complete;
        i += proto_line_take(p + i, n - i, d->line, MC_KEEP, &d->linelen,
                             &complete);
        if (d->linelen > MC_LINE_MAX) {
            d->f.error = true;
            break;
        }
        if (!complete)
            break;
        if (d->request) {
            bool quiet_before = d->grouped;
            if (!request_line(d)) {
                d->f.error = true;
                break;
            }
            if (d->quiet)
                d->grouped = true;
            else if (quiet_before && d->kind == MC_META &&
                     strncmp(d->line, "mn", 2) == 0)
                d->kind = MC_MN_GROUP;
            else if (quiet_before) {
                d->f.error = true; /* a quiet group must end with mn */
                break;
            }
            d->linelen = 0;
            if (!d->quiet)
                d->f.head = true; /* a quiet group's head is its end */
            if (!d->in_data && !d->quiet)
                d->f.done = true;
        } else {
            d->f.head = true;
            reply_line(d);
            d->linelen = 0;
        }
    }
    return i;
}

static ssize_t mc_frame(void *st, enum proto_dir dir, struct evbuffer *in,
                        struct proto_unit *u)
{
    struct mc_state *s = st;
    struct mc_dir *d = dir == PROTO_UP ? &s->up : &s->down;
    ssize_t n;

    if (!d->f.started && d->f.scanned == 0 && !d->f.head) {
        d->request = dir == PROTO_UP;
        d->in_data = false;
        d->linelen = 0;
        d->grouped = false;
        if (dir == PROTO_DOWN)
            d->reply_kind = (enum mc_kind)u->info;
    }
    n = proto_drive(&d->f, in, u, MC_LINE_MAX, mc_feed);
    if (n < 0 && d->binary)
        s->raw = true;
    if (n <= 0 || dir == PROTO_DOWN)
        return n;
    u->info = d->kind;
    if (d->grouped)
        u->flags |= PROTO_NOFAULT;
    if (d->noreply)
        u->flags |= PROTO_NOREPLY;
    if ((u->flags & PROTO_END) && strncmp(d->line, "watch", 5) == 0)
        s->raw = true;
    return n;
}

static enum proto_mode mc_mode(void *st)
{
    struct mc_state *s = st;

    return s->raw ? PROTO_RAW : PROTO_FRAMED;
}

static void mc_error_reply(void *st, const struct proto_error *e,
                           const struct proto_unit *req, struct rng *r,
                           struct evbuffer *out, bool *close)
{
    (void)st;
    (void)req;
    (void)r;
    *close = false;
    proto_error_line(out, "SERVER_ERROR ", e->message,
                     "injected error (vaurien)");
}

/* Where the first key of a command is among the words after it: 0 for
 * most commands that take keys, 1 for gat and gats (after the expiry
 * time), -1 for commands without one (stats, version, flush_all, quit,
 * verbosity, mn, ...) and for those this list does not know. */
static int key_index(const struct proto_str *cmd)
{
    static const char *const first[] = {
        "get", "gets", "set", "add", "replace", "append", "prepend", "cas",
        "delete", "incr", "decr", "touch", "mg", "ms", "md", "ma", "me",
    };

    if ((cmd->n == 3 && memcmp(cmd->p, "gat", 3) == 0) ||
        (cmd->n == 4 && memcmp(cmd->p, "gats", 4) == 0))
        return 1;
    for (size_t i = 0; i < sizeof(first) / sizeof(*first); i++)
        if (cmd->n == strlen(first[i]) && memcmp(cmd->p, first[i], cmd->n) == 0)
            return 0;
    return -1;
}

/* The words of the request's first line, split as the framer splits them
 * (a storage command's data block is no argument; a quiet meta group is
 * named by its first request). The binary protocol is not framed (the
 * connection passes through at its first byte), so it is never named. */
static void mc_parts(const unsigned char *p, size_t n,
                     const struct proto_unit *u, struct proto_parts *out)
{
    struct proto_str w[1 + PROTO_ARGS_MAX];
    unsigned k;
    int key;

    (void)u;
    if (n == 0)
        return;
    k = proto_words(p, n, " \t\r", w, 1 + PROTO_ARGS_MAX);
    if (k == 0)
        return;
    out->command = w[0];
    for (unsigned i = 1; i < k; i++)
        out->args[i - 1] = w[i];
    out->nargs = k - 1;
    key = key_index(&out->command);
    if (key >= 0 && (unsigned)key < out->nargs)
        out->key = out->args[key];
}

static const struct opt_decl mc_opts[] = { { 0 } };

const struct proto_ops proto_memcache = {
    .name = "memcache",
    .help = "memcached text protocol (classic and meta commands); errors are "
            "SERVER_ERROR replies.",
    .opts = mc_opts,
    .state_size = sizeof(struct mc_state),
    .frame = mc_frame,
    .mode = mc_mode,
    .error_reply = mc_error_reply,
    .parts = mc_parts,
};
