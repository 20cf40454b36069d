/*
 * report: journal events from the data path (see report.h).
 */
#include "net/report.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "behav/behav.h"
#include "behav/toxic.h"
#include "core/jsonesc.h"
#include "ctl/statsd.h"
#include "net/proxy.h"
#include "net/session.h"
#include "proto/proto.h"

#define VIEW_BYTES 256 /* request bytes read for its view */
#define STATEMENT_MAX 80

/* The fields every event of a session has. */
static struct journal_event *begin(struct session *s, enum journal_kind kind)
{
    struct journal_event *e = journal_begin(kind);

    if (e == NULL)
        return NULL;
    journal_copy(e->proxy, sizeof(e->proxy), s->proxy->name, (size_t)-1);
    journal_copy(e->client, sizeof(e->client), s->peer, (size_t)-1);
    e->conn = s->id;
    return e;
}

/* Appends s[0..n) and a separator to the view at *at. */
static void view_add(char *view, size_t cap, size_t *at, const char *s, size_t n)
{
    if (n == 0 || *at + 2 >= cap)
        return;
    if (*at > 0)
        view[(*at)++] = ' ';
    if (n > cap - 1 - *at)
        n = cap - 1 - *at;
    memcpy(view + *at, s, n);
    *at += n;
    view[*at] = '\0';
}

/* The protocol's view of a request: redis and memcache command and key,
 * HTTP method and path, MySQL statement (its first 80 bytes) or command,
 * SMTP verb. */
static void request_view(const struct session *s, const struct proto_unit *u,
                         struct evbuffer *in, size_t off, size_t len,
                         char *view, size_t cap)
{
    unsigned char buf[VIEW_BYTES];
    struct proto_parts parts;
    size_t n = len < sizeof(buf) ? len : sizeof(buf), at = 0;
    struct evbuffer_ptr pos;

    view[0] = '\0';
    if (s->proto->parts == NULL || u == NULL || in == NULL)
        return;
    if (evbuffer_ptr_set(in, &pos, off, EVBUFFER_PTR_SET) < 0)
        return;
    n = (size_t)evbuffer_copyout_from(in, &pos, buf, n);
    memset(&parts, 0, sizeof(parts));
    s->proto->parts(buf, n, u, &parts);
    if (parts.method.n > 0) {
        view_add(view, cap, &at, parts.method.p, parts.method.n);
        view_add(view, cap, &at, parts.path.p, parts.path.n);
    } else if (parts.statement.n > 0) {
        view_add(view, cap, &at, parts.statement.p,
                 parts.statement.n < STATEMENT_MAX ? parts.statement.n
                                                   : STATEMENT_MAX);
    } else {
        view_add(view, cap, &at, parts.command.p, parts.command.n);
        view_add(view, cap, &at, parts.key.p, parts.key.n);
    }
}

/* Options (decls, vals) as a JSON object, "" when they do not fit. */
static void options_json(const struct opt_decl *decls,
                         const union opt_val *vals, char *out, size_t cap)
{
    char buf[1024];
    size_t at = 0;
    int n;

    out[0] = '\0';
    buf[at++] = '{';
    for (int i = 0; decls != NULL && decls[i].name != NULL; i++) {
        const struct opt_decl *d = &decls[i];
        const union opt_val *v = &vals[i];
        if (at + 80 > sizeof(buf))
            return;
        if (at > 1)
            buf[at++] = ',';
        jsonesc(buf, sizeof(buf), &at, d->name, strlen(d->name));
        buf[at++] = ':';
        switch (d->type) {
        case OPT_BOOL:
            n = snprintf(buf + at, sizeof(buf) - at, "%s", v->b ? "true" : "false");
            break;
        case OPT_INT:
            n = snprintf(buf + at, sizeof(buf) - at, "%lld", v->i);
            break;
        case OPT_FLOAT:
            n = snprintf(buf + at, sizeof(buf) - at, "%g", v->f);
            break;
        default: {
            const char *str = v->s != NULL ? v->s : "";
            size_t len = strlen(str);
            jsonesc(buf, sizeof(buf) - 1, &at, str, len < 48 ? len : 48);
            n = 0;
            break;
        }
        }
        if (n < 0 || (size_t)n >= sizeof(buf) - at)
            return;
        at += (size_t)n;
    }
    if (at + 2 > cap || at + 2 > sizeof(buf))
        return;
    buf[at++] = '}';
    memcpy(out, buf, at);
    out[at] = '\0';
}

/* b's options as JSON, made once per instance (a configuration's are
 * fixed; a toxic's update marks its instance changed). */
static const char *inst_options(const struct opt_decl *decls,
                                const struct behav_inst *b)
{
    struct behav_inst *cache = (struct behav_inst *)b; /* only its cache */

    if (!b->opts_json_made) {
        options_json(decls, b->vals, cache->opts_json, sizeof(cache->opts_json));
        cache->opts_json_made = true;
    }
    return b->opts_json;
}

void report_answer(const char *proto, struct evbuffer *answer, char *out,
                   size_t cap, int32_t *code)
{
    unsigned char b[96];
    ev_ssize_t got = evbuffer_copyout(answer, b, sizeof(b));
    size_t n = got > 0 ? (size_t)got : 0, o = 0, i = 0;

    *code = 0;
    out[0] = '\0';
    if (strcmp(proto, "mysql") == 0 && n >= 7 && b[4] == 0xff) {
        /* an ERR packet: its error number, then #SQLSTATE and message */
        *code = (int32_t)(b[5] | b[6] << 8);
        o = (size_t)snprintf(out, cap, "ERR %d ", *code);
        i = 7;
    } else if (n >= 12 && memcmp(b, "HTTP/1.", 7) == 0) {
        *code = (int32_t)((b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0'));
    } else if (n >= 3 && isdigit(b[0]) && isdigit(b[1]) && isdigit(b[2])) {
        *code = (int32_t)((b[0] - '0') * 100 + (b[1] - '0') * 10 + (b[2] - '0'));
    }
    if (*code < 0 || *code > 65535)
        *code = 0;
    for (; i < n && o + 1 < cap && b[i] != '\r' && b[i] != '\n'; i++)
        out[o++] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '.';
    out[o < cap ? o : cap - 1] = '\0';
}

/* What a verdict does, in words, with its numbers. */
static void verdict_outcome(struct session *s, const struct behav_verdict *v,
                            struct evbuffer *answer, struct journal_event *e)
{
    if (v->req == BEHAV_ERROR && answer != NULL &&
        evbuffer_get_length(answer) == 0) {
        snprintf(e->outcome, sizeof(e->outcome), "closed without a reply");
    } else if (v->req == BEHAV_ERROR && answer != NULL && v->garbage) {
        e->bytes = evbuffer_get_length(answer);
        snprintf(e->outcome, sizeof(e->outcome), "answered %llu random bytes%s",
                 (unsigned long long)e->bytes,
                 v->answer_close ? ", then closed" : "");
    } else if (v->req == BEHAV_ERROR && answer != NULL) {
        char line[60];
        report_answer(s->proto->name, answer, line, sizeof(line), &e->code);
        e->bytes = evbuffer_get_length(answer);
        if (v->answer_close)
            snprintf(e->outcome, sizeof(e->outcome),
                     "answered: %.45s, then closed", line);
        else
            snprintf(e->outcome, sizeof(e->outcome), "answered: %s", line);
    } else if (v->rep == BEHAV_PACE) {
        snprintf(e->outcome, sizeof(e->outcome),
                 "reply body paced at %llu bytes/s",
                 (unsigned long long)v->rep_rate);
    } else if (v->req == BEHAV_ERROR) {
        snprintf(e->outcome, sizeof(e->outcome), "dropped (no reply due)");
    } else if (v->req == BEHAV_HOLD || v->rep == BEHAV_HOLD) {
        e->held_ms = (v->req == BEHAV_HOLD ? v->req_delay : v->rep_delay) * 1000.0;
        snprintf(e->outcome, sizeof(e->outcome), "%s held %.0f ms",
                 v->req == BEHAV_HOLD ? "request" : "reply", e->held_ms);
    } else {
        snprintf(e->outcome, sizeof(e->outcome), "request %s, reply %s",
                 behav_act_name(v->req), behav_act_name(v->rep));
    }
}

void report_fault(struct session *s, const struct behav_inst *b,
                  const struct toxic *t, const struct behav_verdict *v,
                  const struct proto_unit *u, struct evbuffer *in,
                  size_t off, size_t len, struct evbuffer *answer)
{
    struct proxy_stats *st = &s->proxy->stats;
    struct journal_event *e;

    for (int i = 0; i < behav_count(); i++)
        if (behav_at(i) == v->by) {
            st->faults[i]++;
            break;
        }
    if (t != NULL)
        ((struct toxic *)t)->acted++; /* a counter: the toxic is the API's */
    e = begin(s, JOURNAL_FAULT);
    if (e == NULL)
        return;
    e->index = s->requests;
    e->dir = JOURNAL_UP;
    journal_copy(e->behavior, sizeof(e->behavior), v->by->name, (size_t)-1);
    if (t != NULL)
        journal_copy(e->toxic, sizeof(e->toxic), t->name, (size_t)-1);
    if (b != NULL)
        journal_copy(e->options, sizeof(e->options),
                     inst_options(b->ops->opts, b), (size_t)-1);
    request_view(s, u, in, off, len, e->request, sizeof(e->request));
    verdict_outcome(s, v, answer, e);
    journal_commit(e);
}

void report_toxic(struct session *s, const struct toxic *t,
                  enum journal_dir dir, double held_ms, uint64_t bytes,
                  const char *outcome)
{
    struct journal_event *e;

    ((struct toxic *)t)->acted++; /* a counter: the toxic is the API's */
    e = begin(s, JOURNAL_TOXIC);
    if (e == NULL)
        return;
    e->dir = (uint8_t)dir;
    e->index = s->requests;
    e->held_ms = held_ms;
    e->bytes = bytes;
    journal_copy(e->behavior, sizeof(e->behavior), t->type->name, (size_t)-1);
    journal_copy(e->toxic, sizeof(e->toxic), t->name, (size_t)-1);
    journal_copy(e->options, sizeof(e->options),
                 inst_options(t->type->attrs, &t->inst), (size_t)-1);
    journal_copy(e->outcome, sizeof(e->outcome), outcome, (size_t)-1);
    journal_commit(e);
}

void report_rtt(struct session *s, double secs)
{
    static const double bounds[] = PROXY_RTT_BOUNDS;
    struct proxy_stats *st = &s->proxy->stats;
    int i = 0;

    while (i < PROXY_RTT_N && secs > bounds[i])
        i++;
    st->rtt[i]++;
    st->rtt_count++;
    st->rtt_sum += secs;
    statsd_timer(s->proxy, "request", secs);
}

void report_connected(struct session *s, double secs)
{
    s->proxy->stats.connects++;
    s->proxy->stats.connect_sum += secs;
    statsd_timer(s->proxy, "connect", secs);
}

void report_conn(struct session *s, enum journal_kind kind, const char *why)
{
    struct journal_event *e = begin(s, kind);

    if (e == NULL)
        return;
    e->index = s->requests;
    journal_copy(e->outcome, sizeof(e->outcome), why, (size_t)-1);
    journal_commit(e);
}

void report_tls_fault(struct proxy *p, uint64_t ordinal, const char *client,
                      const struct behav_inst *b)
{
    struct journal_event *e = journal_begin(JOURNAL_FAULT);

    if (e == NULL)
        return;
    journal_copy(e->proxy, sizeof(e->proxy), p->name, (size_t)-1);
    journal_copy(e->client, sizeof(e->client), client, (size_t)-1);
    e->conn = ordinal;
    e->dir = JOURNAL_DOWN;
    journal_copy(e->behavior, sizeof(e->behavior), b->ops->name, (size_t)-1);
    journal_copy(e->options, sizeof(e->options), inst_options(b->ops->opts, b),
                 (size_t)-1);
    snprintf(e->outcome, sizeof(e->outcome), "the connection's TLS handshake");
    journal_commit(e);
}
