/*
 * proto: the registry of protocols and helpers framers share.
 */
#include "proto/proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct proto_ops *registry[PROTO_MAX] = {
    &proto_grpc, &proto_http, &proto_http2, &proto_memcache, &proto_mysql, &proto_postgres,
    &proto_redis, &proto_smtp, &proto_tcp,
};
static int nreg = 9; /* the built-ins (by name), then custom ones */
static char names[PROTO_MAX * 40]; /* proto_names(), "" when stale */

#define NREG nreg

#define GARBAGE_REPLY 1000 /* bytes of an error reply for tcp */
#define GARBAGE_INJECT 100 /* bytes injected into a reply */

int proto_count(void)
{
    return NREG;
}

const struct proto_ops *proto_at(int i)
{
    return i >= 0 && i < NREG ? registry[i] : NULL;
}

int proto_register(const struct proto_ops *ops)
{
    if (nreg >= PROTO_MAX)
        return -ENOSPC;
    registry[nreg] = ops;
    names[0] = '\0';
    return nreg++;
}

int proto_find(const char *name)
{
    for (int i = 0; i < NREG; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return i;
    return -1;
}

const char *proto_names(void)
{
    if (names[0] == '\0') {
        size_t off = 0;
        for (int i = 0; i < NREG && off < sizeof(names); i++)
            off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s",
                                    i ? ", " : "", registry[i]->name);
    }
    return names;
}

int proto_check_name(const char *name, char *err, size_t errlen)
{
    if (proto_find(name) >= 0)
        return 0;
    snprintf(err, errlen, "'%s' is an unknown protocol. Pick one of: %s", name,
             proto_names());
    return -EINVAL;
}

void proto_garbage_reply(struct rng *r, struct evbuffer *out)
{
    unsigned char junk[GARBAGE_REPLY];

    rng_fill(r, junk, sizeof(junk));
    evbuffer_add(out, junk, sizeof(junk));
}

void proto_corrupt(struct rng *r, struct evbuffer *unit)
{
    unsigned char junk[GARBAGE_INJECT];
    size_t len = evbuffer_get_length(unit);
    size_t at = (size_t)rng_below(r, len + 1);
    struct evbuffer *head = evbuffer_new();

    rng_fill(r, junk, sizeof(junk));
    if (head == NULL) {
        evbuffer_add(unit, junk, sizeof(junk));
        return;
    }
    /* head + junk + rest, moving chains rather than copying bytes */
    evbuffer_remove_buffer(unit, head, at);
    evbuffer_prepend(unit, junk, sizeof(junk));
    evbuffer_prepend_buffer(unit, head);
    evbuffer_free(head);
}

size_t proto_scan(struct evbuffer *in, size_t from,
                  size_t (*fn)(void *st, const unsigned char *p, size_t n),
                  void *st)
{
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v[8];
    size_t total = 0;

    if (evbuffer_ptr_set(in, &pos, from, EVBUFFER_PTR_SET) < 0)
        return 0;
    for (;;) {
        int n = evbuffer_peek(in, -1, &pos, v, 8);
        size_t seen = 0;
        if (n <= 0)
            return total;
        if (n > 8)
            n = 8;
        for (int i = 0; i < n; i++) {
            size_t used = fn(st, v[i].iov_base, v[i].iov_len);
            total += used;
            seen += used;
            if (used < v[i].iov_len)
                return total;
        }
        if (evbuffer_ptr_set(in, &pos, seen, EVBUFFER_PTR_ADD) < 0)
            return total;
    }
}

ssize_t proto_drive(struct proto_framer *f, struct evbuffer *in,
                    struct proto_unit *u, size_t head_max,
                    size_t (*fn)(void *st, const unsigned char *p, size_t n))
{
    size_t n;

    if (!f->done && !f->error)
        f->scanned += proto_scan(in, u->skip + f->scanned, fn, f);
    if (f->error)
        return -1;
    if (!f->head) {
        if (f->scanned > head_max)
            return -1;
        return 0;
    }
    n = f->scanned;
    if (n == 0 && !f->done)
        return 0;
    if (!f->started) {
        u->flags |= PROTO_HEAD;
        f->started = true;
    }
    if (f->done) {
        u->flags |= PROTO_END;
        f->started = f->head = f->done = false;
    }
    f->scanned = 0;
    return (ssize_t)n;
}

void proto_error_line(struct evbuffer *out, const char *prefix,
                      const char *message, const char *fallback)
{
    const char *text = message != NULL && message[0] != '\0' ? message : fallback;

    evbuffer_add(out, prefix, strlen(prefix));
    for (const char *p = text; *p != '\0'; p++) {
        char c = (*p == '\r' || *p == '\n') ? ' ' : *p;
        evbuffer_add(out, &c, 1);
    }
    evbuffer_add(out, "\r\n", 2);
}

size_t proto_line_take(const unsigned char *p, size_t n, char *buf,
                       size_t keep, size_t *linelen, bool *complete)
{
    const unsigned char *lf = memchr(p, '\n', n);
    size_t take = lf != NULL ? (size_t)(lf - p) + 1 : n;

    if (*linelen < keep) {
        size_t k = take < keep - *linelen ? take : keep - *linelen;
        memcpy(buf + *linelen, p, k);
        buf[*linelen + k] = '\0';
    }
    *linelen += take;
    *complete = lf != NULL;
    return take;
}

int proto_tls_start(struct evbuffer *in)
{
    unsigned char b[6];
    ev_ssize_t got = evbuffer_copyout(in, b, sizeof(b));
    size_t n = got > 0 ? (size_t)got : 0;

    if ((n > 0 && b[0] != 0x16) || (n > 1 && b[1] != 0x03) ||
        (n > 2 && b[2] > 0x04) || (n > 5 && b[5] != 0x01))
        return 0;
    return n < sizeof(b) ? -1 : 1;
}

static bool is_blank_of(const char *blanks, unsigned char c)
{
    for (; *blanks != '\0'; blanks++)
        if ((unsigned char)*blanks == c)
            return true;
    return false;
}

unsigned proto_words(const unsigned char *p, size_t n, const char *blanks,
                     struct proto_str *w, unsigned max)
{
    unsigned k = 0;
    size_t i = 0;

    while (i < n && k < max && p[i] != '\n') {
        size_t start = i;
        if (is_blank_of(blanks, p[i])) {
            i++;
            continue;
        }
        while (i < n && p[i] != '\n' && !is_blank_of(blanks, p[i]))
            i++;
        if (i == n)
            break; /* cut short */
        w[k].p = (const char *)p + start;
        w[k].n = i - start;
        k++;
    }
    return k;
}
