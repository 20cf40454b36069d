/*
 * behav: the behavior interface.
 *
 *   request unit ──▶ mix draw ──▶ behav_ops.decide() ──▶ struct behav_verdict
 *                                                         │
 *             session executes it on the request and on ◀─┘ the reply
 *
 * A behavior never touches a socket or a buffer: it only decides what
 * happens to one request and to its reply, as a verdict that the session
 * carries out. That keeps each behavior a few lines, unit testable, and the
 * same for every protocol; the protocol module supplies the bytes of an
 * error reply.
 */
#ifndef VAURIEN_BEHAV_H
#define VAURIEN_BEHAV_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "behav/target.h"
#include "core/dist.h"
#include "core/opt.h"
#include "core/rng.h"

#define BEHAV_MAX 48 /* behaviors registered, built-in and scripted */
#define BEHAV_OPTS_JSON 144 /* room for a behavior's options as JSON */

struct proto_ops;
struct proto_unit;

/* What happens to a request, or to its reply. */
#define BEHAV_ACTS(X) \
    X(BEHAV_PASS, "pass")       /* forward as it is */ \
    X(BEHAV_HOLD, "hold")       /* forward after *_delay seconds */ \
    X(BEHAV_ERROR, "error")     /* request: not forwarded, the proxy answers \
                                   with the protocol's error reply */ \
    X(BEHAV_CORRUPT, "corrupt") /* reply: forwarded with garbage injected */ \
    X(BEHAV_DROP, "drop")       /* reply: discarded */ \
    X(BEHAV_CLOSE, "close")     /* request: client closed, nothing sent */ \
    X(BEHAV_HANG, "hang")       /* request: discarded, never answered, the \
                                   client is kept open */ \
    X(BEHAV_ABORT, "abort")     /* request: forwarded, then the backend is \
                                   cut and the client closed */ \
    X(BEHAV_RESET, "reset")     /* request: client reset (RST), nothing \
                                   sent */ \
    X(BEHAV_PACE, "pace")       /* reply: its head at once, the rest at \
                                   rep_rate bytes/s */

#define BEHAV_ENUM(e, s) e,
enum behav_act { BEHAV_ACTS(BEHAV_ENUM) };
#undef BEHAV_ENUM

const char *behav_act_name(enum behav_act a);

struct behav_ops;

/* The decision for one request and its reply. */
struct behav_verdict {
    const struct behav_ops *by; /* behavior that decided (logs, stats) */
    enum behav_act req;         /* what happens to the request */
    enum behav_act rep;         /* what happens to its reply */
    double req_delay;           /* seconds, for BEHAV_HOLD */
    double rep_delay;           /* seconds, for BEHAV_HOLD */
    const union opt_val *err;   /* for BEHAV_ERROR: error's options, valid
                                   while the request's head is handled;
                                   for BEHAV_ABORT: abort's (may be NULL) */
    /* Custom behaviors (src/script) and the http faults (behav/http.c). */
    const char *answer;         /* BEHAV_ERROR: these bytes instead of the
                                   protocol's error (valid as err is) */
    uint32_t answer_len;        /* (at most the Lua state's 64 MiB) */
    int hook;                   /* the reply hook to call at the reply's
                                   first step (behav_lua_reply()); 0: none.
                                   Owned by whoever holds the verdict: the
                                   request's entry, or the tunnel */
    uint32_t rep_rate;          /* bytes per second, for BEHAV_PACE (at
                                   most slow_body's 1e9; the verdict is
                                   kept in every session: 64 bytes) */
    bool garbage;               /* BEHAV_ERROR: random bytes from the
                                   connection's generator instead of the
                                   protocol's error (random_then_close) */
    bool answer_close;          /* close the client after the answer */
    bool forward;               /* BEHAV_ERROR: the request is forwarded
                                   and the answer replaces its reply */
};

/* What a behavior may know of the request it decides. The built-ins need
 * none of it; custom behaviors hand it to their script. Valid for the
 * call only. */
struct behav_ctx {
    const char *proxy;             /* the proxy's name */
    const struct proto_ops *proto; /* the session's protocol */
    void *pstate;                  /* its framer state */
    const struct proto_unit *unit; /* the request's head step */
    struct evbuffer *in;           /* the request's bytes so far: */
    size_t off, len;               /* in[off, off + len) */
    struct rng *rng;               /* the connection's draws */
    uint64_t conn;                 /* connection id (ordinal on the proxy) */
    uint64_t index;                /* request's index on it, from 1 */
    const char *client;            /* "ip:port" */
    int *state;                    /* the connection's script state (a Lua
                                      reference, 0 until made) */
    bool reply;                    /* the bytes are a reply's first step */
};

/* A behavior as configured in one proxy: its options and counters. */
struct behav_inst {
    const struct behav_ops *ops;
    union opt_val vals[OPT_MAX]; /* in the order of ops->opts */
    uint64_t calls;              /* requests this behavior was drawn for */
    int script;                  /* custom behaviors: their options as a
                                    Lua table, made on first use; 0 */
    bool opts_json_made;         /* opts_json is up to date */
    char opts_json[BEHAV_OPTS_JSON]; /* the options as a JSON object, for
                                    the journal (net/report.c), made on
                                    first use; "" when they do not fit */
    union opt_val target[TARGET_NOPTS]; /* which requests, when (target.h),
                                    in the order of target_opts */
    struct target_state ts;      /* its counters since it was set */
    struct dist_state dist;      /* delay: the previous draw, for its
                                    correlation (behav/delay.c) */
};

/* What a TLS fault does to a connection (behav/tls.c, net/tls.c). */
enum behav_tls {
    BEHAV_TLS_NONE,
    BEHAV_TLS_DELAY,           /* the handshake starts late */
    BEHAV_TLS_ALERT,           /* the handshake fails with an alert */
    BEHAV_TLS_BAD_CERT,        /* a bad certificate is presented */
    BEHAV_TLS_NO_CLOSE_NOTIFY, /* the end comes without close_notify */
};

#define BEHAV_OPTS_NONE_SHOWN (-1) /* behav_ops.base_opts: no option is
                                     shown unless set */

struct behav_ops {
    const char *name;
    const char *help;
    const struct opt_decl *opts; /* terminated by a NULL name */
    /* Fills v for one request; v starts as "pass both ways". ctx may be
     * NULL (unit tests). */
    void (*decide)(struct behav_inst *b, const struct behav_ctx *ctx,
                   struct behav_verdict *v);
    int base_opts;               /* options always shown (GET /behavior);
                                    those after them, added later, only
                                    when set. 0: all are shown;
                                    BEHAV_OPTS_NONE_SHOWN: none */
    void *script;                /* custom behaviors: their script */
    enum behav_tls tls;          /* a TLS fault: drawn per connection, at
                                    its handshake */
    const char *proto;           /* the one protocol it acts in ("http");
                                    NULL: any. Refused elsewhere */
};

/* The registry: the built-ins, then custom behaviors in the order they
 * were registered (an index never changes). */
int behav_count(void);
const struct behav_ops *behav_at(int i);
/* The index of the i-th behavior in name order, for listings. */
int behav_sorted(int i);
/* Returns the index of the named behavior, or -1. */
int behav_find(const char *name);
/* Adds a behavior (ops lives as long as the process). Returns its index,
 * or -ENOSPC when BEHAV_MAX are registered. */
int behav_register(const struct behav_ops *ops);
/* The index of dummy, which a request nothing acts on gets. */
int behav_dummy_index(void);
/* Whether behavior ops may be used on a proxy of protocol proto (a
 * name). Returns 0, or -EINVAL with a one-line message in err. */
int behav_check_proto(const struct behav_ops *ops, const char *proto,
                      char *err, size_t errlen);
/* "abort, blackout, ..." for error messages. Returns a static string. */
const char *behav_names(void);

/* Whether option i of b belongs in its JSON view (see base_opts): the
 * original's view stays as it was until a later option is set. */
bool behav_opt_shown(const struct behav_inst *b, int i);

/* Sets an instance to its defaults / frees its strings. */
void behav_inst_init(struct behav_inst *b, const struct behav_ops *ops);
void behav_inst_deinit(struct behav_inst *b);

/* b's options changed where they are (a toxic's attributes): what was
 * made of them (a custom behavior's options table) is made again, and its
 * target counts from now. */
void behav_inst_changed(struct behav_inst *b);

/* Finds option name of b's behavior, or of the target options every
 * behavior takes: *decl and the returned value slot, or NULL. */
union opt_val *behav_opt_slot(struct behav_inst *b, const char *name,
                              const struct opt_decl **decl);

/* dst gets src's options and target options, counting from now. */
void behav_inst_copy(struct behav_inst *dst, const struct behav_inst *src);

/* Draws the verdict of behavior b for one request (ctx may be NULL). */
void behav_decide(struct behav_inst *b, const struct behav_ctx *ctx,
                  struct behav_verdict *v);

/* error's options, which transient shares (in the same slots, first), so
 * that behav_error_verdict() and the protocols read them from either. */
enum {
    BEHAV_ERR_INJECT,
    BEHAV_ERR_WARMUP,
    BEHAV_ERR_STATUS,
    BEHAV_ERR_MESSAGE,
    BEHAV_ERR_CODE,
    BEHAV_ERR_SQLSTATE,
    BEHAV_ERR_ENHANCED,
    BEHAV_ERR_NOPTS
};
#define BEHAV_ERROR_OPTS \
    { "inject", OPT_BOOL, "false", \
      "Inject garbage into the real reply instead of replacing it", 0, 0 }, \
    { "warmup", OPT_INT, "0", \
      "Number of requests passed through before errors start", 0, 1e12 }, \
    { "status", OPT_STR, "500,501,502,503", \
      "http: statuses an error is drawn from", 0, 0 }, \
    { "message", OPT_STR, "", \
      "Text of the error (default: the protocol's own)", 0, 0 }, \
    { "code", OPT_INT, "0", \
      "mysql error number (default 1040), smtp reply code (default 451), " \
      "grpc status (default 14)", \
      0, 65535 }, \
    { "sqlstate", OPT_STR, "08004", \
      "SQLSTATE of the error: mysql, postgres (whose default is 53300)", \
      0, 0 }, \
    { "enhanced", OPT_STR, "", \
      "smtp enhanced status code (default 4.3.0, 5.3.0 for 5xx)", 0, 0 }

/* abort's option: http2's RST_STREAM code (net/h2.c). */
enum { BEHAV_ABORT_CODE };

/* Used by transient, which behaves as error for its first requests. */
void behav_error_verdict(const struct behav_inst *b, struct behav_verdict *v);

/* Custom behaviors (behav/lua.c). */

/* Loads (or, for a name loaded before, replaces) the behavior name from
 * Lua source; path names the file ("" from the API). A replacement must
 * declare the same options (names and types). Returns 0, or a negative
 * errno with a one-line message in err; on failure nothing changes. */
int behav_lua_load(const char *name, const char *source, size_t len,
                   const char *path, char *err, size_t errlen);
int behav_lua_load_file(const char *name, const char *path, char *err,
                        size_t errlen);
/* Runs the reply hook kept in a verdict's hook on a reply's first step
 * (ctx->reply) and fills v: rep and rep_delay; answer (replace the reply),
 * req BEHAV_ERROR with err (replace it with the protocol's error), req
 * BEHAV_CLOSE or BEHAV_RESET (end the connection). An error: pass. */
void behav_lua_reply(int hook, const struct behav_ctx *ctx,
                     struct behav_verdict *v);
bool behav_is_custom(const struct behav_ops *ops);
/* The proxy is deleted: custom behaviors forget their state of it. */
void behav_lua_proxy_gone(const char *proxy);

extern const struct behav_ops behav_abort;
extern const struct behav_ops behav_blackout;
extern const struct behav_ops behav_delay;
extern const struct behav_ops behav_dummy;
extern const struct behav_ops behav_error;
extern const struct behav_ops behav_hang;
extern const struct behav_ops behav_transient;
extern const struct behav_ops behav_tls_handshake_delay;
extern const struct behav_ops behav_tls_alert;
extern const struct behav_ops behav_bad_cert;
extern const struct behav_ops behav_no_close_notify;
extern const struct behav_ops behav_empty_response;
extern const struct behav_ops behav_malformed_chunk;
extern const struct behav_ops behav_random_then_close;
extern const struct behav_ops behav_slow_body;
extern const struct behav_ops behav_bad_length;

#endif
