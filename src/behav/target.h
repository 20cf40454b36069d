/*
 * target: which requests a behavior or toxic acts on, and when.
 *
 *   request ──▶ window? ──▶ match? ──▶ counted ──▶ after? every? count? ──▶ acts
 *                 │            │                        │
 *                 └────────────┴──── no: dummy ◀────────┘
 *
 * Every behavior and toxic takes the same target options (target_opts):
 * a matcher on what the framer parsed of the request (`match`), triggers
 * counted over the requests that match (`after`, `every`, `count`), a
 * time window and a time to live. They live beside the behavior's own
 * options in struct behav_inst and are set through the same paths (the
 * command line, the INI file, the API), so a behavior never sees them:
 * a request they turn away is drawn `dummy` for that behavior.
 *
 * Byte toxics (latency, bandwidth, ...) act on connections, not requests:
 * their triggers count the connections the toxic is drawn for, and a
 * matcher may only name the client.
 */
#ifndef VAURIEN_TARGET_H
#define VAURIEN_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/opt.h"

struct proto_ops;
struct proto_parts;

enum {
    TARGET_MATCH,  /* "command=SET,key=user:*" */
    TARGET_AFTER,  /* skip the first N matching requests */
    TARGET_COUNT,  /* act at most N times, then stay inert */
    TARGET_EVERY,  /* act on each Nth matching request */
    TARGET_WINDOW, /* "5-30": active from 5 s to 30 s after it was set */
    TARGET_TTL,    /* seconds after which it removes itself */
    TARGET_NOPTS
};

extern const struct opt_decl target_opts[];

/* The keys a matcher may name. */
#define TARGET_KEYS(X) \
    X(TARGET_KEY_COMMAND, "command") \
    X(TARGET_KEY_KEY, "key") \
    X(TARGET_KEY_CLIENT, "client") \
    X(TARGET_KEY_METHOD, "method") \
    X(TARGET_KEY_PATH, "path") \
    X(TARGET_KEY_HEADER, "header") \
    X(TARGET_KEY_STATEMENT, "statement") \
    X(TARGET_KEY_TABLE, "table") \
    X(TARGET_KEY_VERB, "verb")

#define TARGET_KEY_ENUM(e, s) e,
enum target_key { TARGET_KEYS(TARGET_KEY_ENUM) TARGET_KEY_N };
#undef TARGET_KEY_ENUM

#define TARGET_CONDS_MAX 16   /* conditions in one matcher */
#define TARGET_MATCH_MAX 1024 /* bytes of a matcher's text */

/* A parsed matcher: every condition must hold. */
struct target_match {
    int n;
    struct target_cond {
        enum target_key key;
        const char *name; /* header: its name */
        const char *pat;  /* a glob (`*`, `?`), or for client an address
                             or CIDR */
        unsigned char net[16]; /* client: the network, */
        int family, bits;      /* its family and prefix length */
    } c[TARGET_CONDS_MAX];
    char text[TARGET_MATCH_MAX]; /* the strings the conditions point at */
};

/* What a target keeps between requests (per behavior instance, that is
 * per proxy; a new setting starts it again). */
struct target_state {
    double set_at;             /* when it was set (target_now()) */
    uint64_t seen;             /* matching requests in its window */
    uint64_t acted;            /* of those, the ones it acted on */
    struct target_match *match; /* parsed on first use, owned; NULL */
};

/* Seconds on the monotonic clock. */
double target_now(void);

/* Parses a matcher's text ("key=glob,..."; header.NAME=glob or
 * header=NAME:glob) into m. proto, when not NULL, is the protocol the
 * matcher will see: a key it does not parse is refused. Returns 0, or
 * -EINVAL with a one-line message in err. */
int target_match_parse(const char *text, const struct proto_ops *proto,
                       struct target_match *m, char *err, size_t errlen);

/* Checks the target options vals for proto (NULL: any): a matcher that
 * does not parse or names a key proto lacks (per_conn: a toxic on bytes,
 * which knows only the client), a window that is not "FROM-TO". Returns
 * 0, or -EINVAL with a message in err. */
int target_check(const union opt_val *vals, const struct proto_ops *proto,
                 bool per_conn, char *err, size_t errlen);

/* Whether vals set anything: a target that is all defaults costs one
 * test per request. */
bool target_is_set(const union opt_val *vals);

/* The request as a matcher sees it: its parts (NULL when the protocol
 * names none) and the client ("ip:port" or "[ip6]:port"). */
struct target_req {
    const struct proto_parts *parts;
    const char *client;
};

/* Decides whether the target lets its behavior act on one request at
 * now, and counts it: outside the window or not matching, false without
 * counting; matching, it is counted, then after, every and count decide.
 * An unparsable matcher (a bug: options are checked when set) matches
 * nothing. */
bool target_pass(const union opt_val *vals, struct target_state *st,
                 const struct target_req *r, double now);

/* When a target set at set_at expires (ttl), or 0 when it does not. */
double target_expiry(const union opt_val *vals, double set_at);

/* Resets st for a new setting at now; frees what it had parsed. */
void target_state_reset(struct target_state *st, double now);
void target_state_deinit(struct target_state *st);

/* Writes the matcher's text (a comma list) as a JSON-able list of
 * key/value pairs through add(ctx, key, value); header pairs come as
 * ("header.NAME", value). */
void target_match_each(const char *text,
                       void (*add)(void *ctx, const char *key,
                                   const char *value),
                       void *ctx);

#endif
