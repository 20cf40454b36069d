/*
 * report: what the data path tells the outside about faults and
 * connections: the journal (core/journal.h), the counters behind
 * /metrics and statsd (ctl/stats.h).
 *
 *   session ─ draw ─▶ report_fault()  ─┬─▶ journal event
 *   pipe ─ toxic ───▶ report_toxic()  ─┤
 *   accept/close ───▶ report_conn()   ─┴─▶ counters (per proxy)
 *
 * Nothing here allocates; the journal is skipped when it is off.
 */
#ifndef VAURIEN_REPORT_H
#define VAURIEN_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "core/journal.h"

struct session;
struct proxy;
struct behav_inst;
struct behav_verdict;
struct proto_unit;
struct toxic;

/* A request's decision that is not dummy: b decided (from toxic t, or
 * the mix when t is NULL); the request's bytes so far are
 * in[off, off + len); answer is the proxy's reply when it answers. */
void report_fault(struct session *s, const struct behav_inst *b,
                  const struct toxic *t, const struct behav_verdict *v,
                  const struct proto_unit *u, struct evbuffer *in,
                  size_t off, size_t len, struct evbuffer *answer);

/* A byte toxic acted on a connection's direction. */
void report_toxic(struct session *s, const struct toxic *t,
                  enum journal_dir dir, double held_ms, uint64_t bytes,
                  const char *outcome);

/* A request's round trip through the proxy ended: secs since it started. */
void report_rtt(struct session *s, double secs);
/* The backend connection was made in secs. */
void report_connected(struct session *s, double secs);

/* A connection opened, closed (why) or could not reach the backend. */
void report_conn(struct session *s, enum journal_kind kind, const char *why);

/* A TLS fault drawn for the next connection of p (its ordinal). */
void report_tls_fault(struct proxy *p, uint64_t ordinal, const char *client,
                      const struct behav_inst *b);

/* The answer's first line, as the client will read it, and the code it
 * carries (HTTP status, SMTP code, MySQL error number; 0 for none). */
void report_answer(const char *proto, struct evbuffer *answer, char *out,
                   size_t cap, int32_t *code);

#endif
