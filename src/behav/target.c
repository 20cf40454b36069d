/*
 * target: matchers, triggers, windows and time to live (see target.h).
 */
#include "behav/target.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proto/proto.h"

#define NEVER 1e12 /* bounds of a count */

const struct opt_decl target_opts[] = {
    [TARGET_MATCH] = { "match", OPT_STR, "",
                       "Only requests that match, e.g. command=SET,key=user:*",
                       0, 0 },
    [TARGET_AFTER] = { "after", OPT_INT, "0",
                       "Matching requests passed before it acts", 0, NEVER },
    [TARGET_COUNT] = { "count", OPT_INT, "0",
                       "Acts at most this many times, then is inert "
                       "(0: no limit)", 0, NEVER },
    [TARGET_EVERY] = { "every", OPT_INT, "0",
                       "Acts on each Nth matching request only (0: each)",
                       0, NEVER },
    [TARGET_WINDOW] = { "window", OPT_STR, "",
                        "Active from FROM to TO seconds after it was set, "
                        "\"FROM-TO\" or \"FROM-\"", 0, 0 },
    [TARGET_TTL] = { "ttl", OPT_FLOAT, "0",
                     "Seconds after which it removes itself (0: never)",
                     0, 31536000 },
    { 0 },
};

#define KEY_NAME(e, s) s,
static const char *const key_names[] = { TARGET_KEYS(KEY_NAME) };
#undef KEY_NAME

#define BIT(k) (1u << (k))

/* The keys a protocol's parts() fills; the client is always known. */
static unsigned proto_keys(const struct proto_ops *proto)
{
    static const struct {
        const char *proto;
        unsigned keys;
    } known[] = {
        { "http", BIT(TARGET_KEY_METHOD) | BIT(TARGET_KEY_PATH) |
                      BIT(TARGET_KEY_HEADER) },
        { "http2", BIT(TARGET_KEY_METHOD) | BIT(TARGET_KEY_PATH) |
                       BIT(TARGET_KEY_HEADER) },
        { "grpc", BIT(TARGET_KEY_METHOD) | BIT(TARGET_KEY_PATH) |
                      BIT(TARGET_KEY_HEADER) },
        { "redis", BIT(TARGET_KEY_COMMAND) | BIT(TARGET_KEY_KEY) },
        { "memcache", BIT(TARGET_KEY_COMMAND) | BIT(TARGET_KEY_KEY) },
        { "mysql", BIT(TARGET_KEY_COMMAND) | BIT(TARGET_KEY_STATEMENT) |
                       BIT(TARGET_KEY_TABLE) },
        { "postgres", BIT(TARGET_KEY_COMMAND) | BIT(TARGET_KEY_STATEMENT) |
                          BIT(TARGET_KEY_TABLE) },
        { "smtp", BIT(TARGET_KEY_VERB) | BIT(TARGET_KEY_COMMAND) },
    };

    if (proto == NULL)
        return ~0u;
    if (proto->parts != NULL)
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(proto->name, known[i].proto) == 0)
                return known[i].keys | BIT(TARGET_KEY_CLIENT);
    return BIT(TARGET_KEY_CLIENT);
}

double target_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Parses an address or a CIDR ("10.0.0.0/8", "::1", "[::1]/128"). */
static int parse_net(struct target_cond *c, char *text)
{
    char *slash = strchr(text, '/'), *end;
    size_t n;
    int max;

    if (slash != NULL)
        *slash = '\0';
    n = strlen(text);
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
        text[n - 1] = '\0';
        text++;
    }
    if (inet_pton(AF_INET, text, c->net) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, text, c->net) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    c->bits = max;
    if (slash != NULL) {
        long b;
        errno = 0;
        b = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || errno != 0 || b < 0 ||
            b > max)
            return -1;
        c->bits = (int)b;
        *slash = '/';
    }
    return 0;
}

static int bad(char *err, size_t errlen, const char *fmt, const char *a,
               const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return -EINVAL;
}

/* Parses text into m, allowing the keys in allowed; what names what
 * refuses the others ("protocol http"). */
static int parse(const char *text, unsigned allowed, const char *what,
                 struct target_match *m, char *err, size_t errlen)
{
    char *save = NULL, *item;

    memset(m, 0, sizeof(*m));
    if (strlen(text) >= sizeof(m->text))
        return bad(err, errlen, "match: longer than %s bytes", "1023", "");
    strcpy(m->text, text);
    for (item = strtok_r(m->text, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '='), *name = NULL;
        struct target_cond *c;
        int k;

        while (*item == ' ')
            item++;
        if (*item == '\0')
            continue;
        if (eq == NULL || eq == item)
            return bad(err, errlen, "match: expected key=value, got '%s'%s",
                       item, "");
        *eq = '\0';
        if (strncmp(item, "header.", 7) == 0 && item[7] != '\0') {
            name = item + 7;
            item[6] = '\0';
        }
        for (k = 0; k < TARGET_KEY_N; k++)
            if (strcmp(item, key_names[k]) == 0)
                break;
        if (k == TARGET_KEY_N)
            return bad(err, errlen, "match: unknown key '%s' (keys: command, "
                       "key, client, method, path, header, statement, table, "
                       "verb)%s", item, "");
        if (!(allowed & BIT(k)))
            return bad(err, errlen, "match: '%s' does not apply to %s", item,
                       what);
        if (m->n == TARGET_CONDS_MAX)
            return bad(err, errlen, "match: more than %s conditions%s", "16",
                       "");
        if (eq[1] == '\0')
            return bad(err, errlen, "match: '%s' needs a value (a glob; * "
                       "for any)%s", item, "");
        c = &m->c[m->n++];
        c->key = (enum target_key)k;
        c->pat = eq + 1;
        if (k == TARGET_KEY_HEADER) {
            if (name == NULL) { /* header=NAME:VALUE */
                char *colon = strchr(eq + 1, ':');
                if (colon == NULL || colon == eq + 1)
                    return bad(err, errlen, "match: header needs NAME:VALUE "
                               "or header.NAME=VALUE, got '%s'%s", eq + 1, "");
                *colon = '\0';
                name = eq + 1;
                c->pat = colon + 1;
            }
            c->name = name;
        } else if (name != NULL) {
            return bad(err, errlen, "match: only header takes a name, not "
                       "'%s.%s'", item, name);
        }
        if (k == TARGET_KEY_CLIENT) {
            char net[128];
            snprintf(net, sizeof(net), "%s", c->pat);
            if (parse_net(c, net) < 0)
                return bad(err, errlen, "match: client '%s' is no address "
                           "or CIDR%s", c->pat, "");
        }
    }
    return 0;
}

int target_match_parse(const char *text, const struct proto_ops *proto,
                       struct target_match *m, char *err, size_t errlen)
{
    char what[64];

    snprintf(what, sizeof(what), "protocol %s", proto ? proto->name : "");
    return parse(text, proto_keys(proto), what, m, err, errlen);
}

/* Parses "FROM-TO" or "FROM-" (seconds). Returns 0 or -1. */
static int parse_window(const char *text, double *from, double *to)
{
    char *end;

    errno = 0;
    *from = strtod(text, &end);
    if (end == text || *end != '-' || errno != 0 || !(*from >= 0))
        return -1;
    text = end + 1;
    if (*text == '\0') {
        *to = INFINITY;
        return 0;
    }
    *to = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !(*to > *from) ||
        !isfinite(*to))
        return -1;
    return 0;
}

int target_check(const union opt_val *vals, const struct proto_ops *proto,
                 bool per_conn, char *err, size_t errlen)
{
    const char *w = vals[TARGET_WINDOW].s, *m = vals[TARGET_MATCH].s;
    double from, to;

    if (w != NULL && w[0] != '\0' && parse_window(w, &from, &to) < 0) {
        snprintf(err, errlen, "window: expected FROM-TO in seconds (e.g. "
                 "5-30), got '%s'", w);
        return -EINVAL;
    }
    if (m != NULL && m[0] != '\0') {
        struct target_match *tm = malloc(sizeof(*tm));
        int rc;
        if (tm == NULL) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        if (per_conn)
            rc = parse(m, BIT(TARGET_KEY_CLIENT), "a toxic on bytes (only "
                       "client does)", tm, err, errlen);
        else
            rc = target_match_parse(m, proto, tm, err, errlen);
        free(tm);
        return rc;
    }
    return 0;
}

bool target_is_set(const union opt_val *vals)
{
    return (vals[TARGET_MATCH].s != NULL && vals[TARGET_MATCH].s[0] != '\0') ||
           vals[TARGET_AFTER].i != 0 || vals[TARGET_COUNT].i != 0 ||
           vals[TARGET_EVERY].i != 0 ||
           (vals[TARGET_WINDOW].s != NULL && vals[TARGET_WINDOW].s[0] != '\0') ||
           vals[TARGET_TTL].f != 0;
}

/* Whether s[0..n) matches the glob pat (`*` any run, `?` one byte); the
 * usual backtracking to the last star, linear for patterns with one. */
static bool glob(const char *pat, const char *s, size_t n, bool icase)
{
    const char *star = NULL;
    size_t i = 0, mark = 0;

    while (i < n) {
        if (*pat == '*') {
            star = pat++;
            mark = i;
        } else if (*pat != '\0' &&
                   (*pat == '?' ||
                    (icase ? tolower((unsigned char)*pat) ==
                                 tolower((unsigned char)s[i])
                           : *pat == s[i]))) {
            pat++;
            i++;
        } else if (star != NULL) {
            pat = star + 1;
            i = ++mark;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static bool glob_str(const char *pat, const struct proto_str *s, bool icase)
{
    return s->n > 0 && glob(pat, s->p, s->n, icase);
}

static bool is_word(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_' || ch == '$';
}

/* Past the spaces and modifiers after a keyword (IF NOT EXISTS,
 * IGNORE, LOW_PRIORITY, ...) from p[j]: where the table's name starts. */
static size_t skip_modifiers(const char *p, size_t n, size_t j)
{
    static const char *const mods[] = { "if", "not", "exists", "ignore",
                                        "low_priority", "high_priority",
                                        "delayed", "only" };

    for (;;) {
        size_t w;
        bool skipped = false;
        while (j < n && isspace((unsigned char)p[j]))
            j++;
        for (w = j; w < n && is_word(p[w]); w++)
            ;
        for (size_t k = 0; k < sizeof(mods) / sizeof(mods[0]); k++)
            if (w - j == strlen(mods[k]) &&
                strncasecmp(p + j, mods[k], w - j) == 0)
                skipped = true;
        if (!skipped)
            return j;
        j = w;
    }
}

/* Whether a table the statement names (after FROM, INTO, UPDATE, JOIN or
 * TABLE) matches pat, as "db.table" or as "table". */
static bool table_matches(const char *pat, const struct proto_str *st)
{
    static const char *const kw[] = { "from", "into", "update", "join",
                                      "table" };
    const char *p = st->p;
    size_t n = st->n;

    for (size_t i = 0; i < n; i++) {
        if (i > 0 && is_word(p[i - 1]))
            continue;
        for (size_t k = 0; k < sizeof(kw) / sizeof(kw[0]); k++) {
            size_t kl = strlen(kw[k]), j, start, dot = 0;
            char name[128];
            size_t len = 0;
            if (i + kl >= n || strncasecmp(p + i, kw[k], kl) != 0 ||
                is_word(p[i + kl]))
                continue;
            j = skip_modifiers(p, n, i + kl);
            start = j;
            while (j < n && len < sizeof(name) - 1 &&
                   (is_word(p[j]) || p[j] == '.' || p[j] == '`' ||
                    p[j] == '"')) {
                if (p[j] != '`' && p[j] != '"') {
                    if (p[j] == '.')
                        dot = len + 1;
                    name[len++] = p[j];
                }
                j++;
            }
            if (j == start || len == 0)
                continue;
            if (glob(pat, name, len, true) ||
                (dot > 0 && glob(pat, name + dot, len - dot, true)))
                return true;
        }
    }
    return false;
}

/* The statement's first word (SELECT, UPDATE, ...) or all of it. */
static bool statement_matches(const char *pat, const struct proto_str *st)
{
    size_t i = 0, j;

    while (i < st->n && isspace((unsigned char)st->p[i]))
        i++;
    for (j = i; j < st->n && is_word(st->p[j]); j++)
        ;
    return (j > i && glob(pat, st->p + i, j - i, true)) ||
           glob(pat, st->p + i, st->n - i, true);
}

/* Whether the client "ip:port" or "[ip6]:port" is in c's network. */
static bool client_matches(const struct target_cond *c, const char *client)
{
    char host[64];
    unsigned char a[16];
    const char *end;
    size_t n;
    int family = AF_INET;
    const unsigned char *net = c->net, *addr = a;
    int bits = c->bits;

    if (client == NULL)
        return false;
    if (client[0] == '[') {
        end = strchr(client, ']');
        client++;
        family = AF_INET6;
    } else {
        end = strrchr(client, ':');
    }
    n = end != NULL ? (size_t)(end - client) : strlen(client);
    if (n >= sizeof(host))
        return false;
    memcpy(host, client, n);
    host[n] = '\0';
    if (inet_pton(family, host, a) != 1)
        return false;
    if (family == AF_INET6 && c->family == AF_INET) {
        static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
        if (memcmp(a, mapped, 12) != 0)
            return false;
        addr = a + 12; /* ::ffff:10.0.0.1 is 10.0.0.1 */
    } else if (family != c->family) {
        return false;
    }
    for (int i = 0; bits > 0; i++, bits -= 8) {
        unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
        if ((addr[i] & mask) != (net[i] & mask))
            return false;
    }
    return true;
}

static bool cond_holds(const struct target_cond *c, const struct target_req *r)
{
    const struct proto_parts *p = r->parts;

    if (c->key == TARGET_KEY_CLIENT)
        return client_matches(c, r->client);
    if (p == NULL)
        return false;
    switch (c->key) {
    case TARGET_KEY_COMMAND:
    case TARGET_KEY_VERB:
        return glob_str(c->pat, &p->command, true);
    case TARGET_KEY_KEY:
        return glob_str(c->pat, &p->key, false);
    case TARGET_KEY_METHOD:
        return glob_str(c->pat, &p->method, false);
    case TARGET_KEY_PATH:
        return glob_str(c->pat, &p->path, false);
    case TARGET_KEY_HEADER:
        for (unsigned i = 0; i < p->nheaders; i++) {
            const struct proto_str *h = p->headers[i];
            if (h[0].n == strlen(c->name) &&
                strncasecmp(h[0].p, c->name, h[0].n) == 0 &&
                glob(c->pat, h[1].p, h[1].n, false))
                return true;
        }
        return false;
    case TARGET_KEY_STATEMENT:
        return p->statement.n > 0 && statement_matches(c->pat, &p->statement);
    case TARGET_KEY_TABLE:
        return p->statement.n > 0 && table_matches(c->pat, &p->statement);
    default:
        return false;
    }
}

static bool matches(const char *text, struct target_state *st,
                    const struct target_req *r)
{
    char err[200];

    if (st->match == NULL) {
        st->match = malloc(sizeof(*st->match));
        if (st->match == NULL)
            return false;
        if (target_match_parse(text, NULL, st->match, err, sizeof(err)) < 0)
            st->match->n = -1; /* checked when set: never here */
    }
    if (st->match->n < 0)
        return false;
    for (int i = 0; i < st->match->n; i++)
        if (!cond_holds(&st->match->c[i], r))
            return false;
    return true;
}

bool target_pass(const union opt_val *vals, struct target_state *st,
                 const struct target_req *r, double now)
{
    const char *w = vals[TARGET_WINDOW].s, *m = vals[TARGET_MATCH].s;
    uint64_t after = (uint64_t)vals[TARGET_AFTER].i;
    uint64_t every = (uint64_t)vals[TARGET_EVERY].i;
    uint64_t count = (uint64_t)vals[TARGET_COUNT].i;

    if (w != NULL && w[0] != '\0') {
        double from, to, age = now - st->set_at;
        if (parse_window(w, &from, &to) < 0 || age < from || age >= to)
            return false;
    }
    if (m != NULL && m[0] != '\0' && !matches(m, st, r))
        return false;
    st->seen++;
    if (st->seen <= after)
        return false;
    if (every > 0 && (st->seen - after) % every != 0)
        return false;
    if (count > 0 && st->acted >= count)
        return false;
    st->acted++;
    return true;
}

double target_expiry(const union opt_val *vals, double set_at)
{
    return vals[TARGET_TTL].f > 0 ? set_at + vals[TARGET_TTL].f : 0;
}

void target_state_reset(struct target_state *st, double now)
{
    target_state_deinit(st);
    st->set_at = now;
    st->seen = 0;
    st->acted = 0;
}

void target_state_deinit(struct target_state *st)
{
    free(st->match);
    st->match = NULL;
}

void target_match_each(const char *text,
                       void (*add)(void *ctx, const char *key,
                                   const char *value),
                       void *ctx)
{
    char buf[TARGET_MATCH_MAX], *save = NULL, *item;

    snprintf(buf, sizeof(buf), "%s", text);
    for (item = strtok_r(buf, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        while (*item == ' ')
            item++;
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (strcmp(item, "header") == 0 && strchr(eq + 1, ':') != NULL) {
            char key[300], *colon = strchr(eq + 1, ':');
            *colon = '\0';
            snprintf(key, sizeof(key), "header.%s", eq + 1);
            add(ctx, key, colon + 1);
        } else {
            add(ctx, item, eq + 1);
        }
    }
}
