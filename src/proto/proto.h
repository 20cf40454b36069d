/*
 * proto: the protocol interface.
 *
 *   client bytes ──▶ proto_ops.frame(PROTO_UP)   ──▶ request units
 *   backend bytes ─▶ proto_ops.frame(PROTO_DOWN) ──▶ reply units
 *   verdict "error" ─▶ proto_ops.error_reply()   ──▶ the bytes a failing
 *                                                    server of this protocol
 *                                                    would send
 *
 * A protocol module frames bytes and builds replies; it never touches a
 * socket, so it is unit tested and fuzzed on plain buffers. Framers are
 * resumable: they keep their position in their own state, so bytes may
 * arrive split anywhere (one at a time included).
 *
 * frame() looks at the start of `in` (bytes not yet handed out) and returns
 *   n > 0  the first n bytes belong to the current unit; u->flags says
 *          whether the unit ends after them (PROTO_END). The first step of
 *          a unit always carries PROTO_HEAD: by then the framer knows what
 *          the unit is (command, method, ...) and has filled u->info;
 *   0      more bytes are needed before anything can be handed out;
 *   < 0    the bytes are not this protocol: the session stops framing and
 *          passes the rest of the connection through.
 * A framer may rewrite the head of a request in `in` before handing it out
 * (http's overwrite_host_header). u->info and u->info2 may change at later
 * steps (mysql: the sequence id of the request's last packet); what the
 * last step says is what the whole request told.
 *
 * Two optional hooks, for what a framer cannot see from its bytes alone:
 *   stalled()      a server may act on bytes before the framer can tell
 *                  what the request is (redis answers "*11\r\n" alone with
 *                  an error when a password is required). When the client
 *                  stops sending, the framer may hand out what it holds as
 *                  the head of a request it cannot name, PROTO_NOFAULT:
 *                  the bytes reach the server as they would without the
 *                  proxy, and the request passes whatever the draw says.
 *   error_amend()  the error reply of a request is built at its head; a
 *                  protocol whose error depends on the whole request
 *                  (mysql's sequence id, after a 16 MiB request's last
 *                  packet) corrects it at the request's end.
 */
#ifndef VAURIEN_PROTO_H
#define VAURIEN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/buffer.h>

#include "core/opt.h"
#include "core/rng.h"

enum proto_dir { PROTO_UP, PROTO_DOWN };

/* How a session handles the connection from now on. */
enum proto_mode {
    PROTO_FRAMED, /* requests and replies, faults per request */
    PROTO_TUNNEL, /* plain tcp: faults per chunk (after an HTTP 101, TLS) */
    PROTO_RAW,    /* passed through untouched, no faults (pub/sub, STARTTLS,
                     malformed traffic) */
    PROTO_STARTTLS, /* returned once by mode(): both sides start TLS now
                       (smtp's 220 to STARTTLS, MySQL's SSL request, whose
                       ClientHello may already be read); the session
                       upgrades both
                       and frames on when it terminates and originates TLS,
                       else it passes the connection through (PROTO_RAW) */
};

/* Flags of a unit step (struct proto_unit.flags). */
#define PROTO_HEAD    0x001u /* first step: the unit's info is known */
#define PROTO_END     0x002u /* the unit ends after this step */
#define PROTO_INTERIM 0x004u /* reply: interim (HTTP 1xx); the request waits
                                for its final reply */
#define PROTO_PUSH    0x008u /* reply: unsolicited; answers no request */
#define PROTO_FORWARD 0x010u /* request: must reach the backend even when it
                                gets an error; the reply is replaced instead */
#define PROTO_NOREPLY 0x020u /* request: the backend sends no reply */
#define PROTO_NOFAULT 0x040u /* request: passes whatever the draw says */
#define PROTO_EARLY   0x080u /* request: a reply is awaited before the rest of
                                the request comes (HTTP Expect: 100-continue);
                                an error is answered at once */
#define PROTO_TLSASK  0x100u /* request: asks the server to start TLS
                                (postgres' SSLRequest); passes when the proxy
                                can upgrade both sides (--starttls), else the
                                protocol's error_reply refuses it (the server
                                never sees it) whatever the draw */
#define PROTO_REFUSE  0x200u /* request: the protocol's error_reply answers
                                it whatever the draw, and the server never
                                sees it (postgres: a statement in a
                                transaction block the proxy failed) */

struct proto_unit {
    unsigned flags;
    uint32_t info;  /* what the framer learned: http method and version,
                       mysql command and sequence id, ... */
    uint32_t info2;
    uint32_t head_len; /* a reply's head step: the bytes of its head, the
                       body's first bytes after them (http, slow_body); 0:
                       the step is all head, or the framer does not say
                       (32 bits: two units live in every session) */
    size_t skip;    /* set by the caller: bytes at the front of in that
                       belong to units before this one (passed, not moved
                       yet); the unit starts after them */
};

/* What an error reply should say: the error behavior's options, read by
 * each protocol as it needs ("" and 0 mean: the protocol's default). */
struct proto_error {
    const char *status;   /* http: statuses to draw from, "500,503" */
    const char *message;  /* text of the error */
    long long code;       /* mysql error number, smtp reply code */
    const char *sqlstate; /* mysql, postgres */
    const char *enhanced; /* smtp enhanced status code, "4.3.0" */
};

/* A piece of a request's bytes (not NUL-terminated). */
struct proto_str {
    const char *p;
    size_t n;
};

#define PROTO_ARGS_MAX 16    /* arguments kept by proto_ops.parts() */
#define PROTO_HEADERS_MAX 32 /* http headers kept */

/* What a request says, as its protocol names it: what custom behaviors see
 * (and matchers and the journal will). Every piece points into the bytes
 * given to parts(), or at a static string; an absent piece has n == 0. */
struct proto_parts {
    struct proto_str command;   /* redis command as sent, memcache command,
                                   mysql command name (COM_QUERY -> "QUERY"),
                                   smtp verb as sent */
    struct proto_str args[PROTO_ARGS_MAX]; /* redis arguments after the
                                   command, memcache words after the command,
                                   smtp: the rest of the line (one arg) */
    unsigned nargs;             /* kept; more may have been sent */
    struct proto_str key;       /* redis first argument, memcache first key */
    struct proto_str method;    /* http */
    struct proto_str path;      /* http request target */
    struct proto_str headers[PROTO_HEADERS_MAX][2]; /* http: name, value */
    unsigned nheaders;
    struct proto_str statement; /* mysql: COM_QUERY / COM_STMT_PREPARE text */
};

struct proto_ops {
    const char *name;
    const char *help;
    const struct opt_decl *opts; /* terminated by a NULL name */
    size_t state_size;           /* per-session framer state */
    bool server_first;           /* the server speaks first (greeting) */
    bool mux;                    /* the connection multiplexes requests
                                    (http2): net/h2.c relays it whole and
                                    draws per stream; frame is NULL */
    bool tls_inside;             /* TLS is negotiated inside the protocol
                                    (mysql): a TLS handshake at the
                                    client's first bytes is not looked for */
    /* Sets up a zeroed state for protocol ops (this table); backend is
     * the configured "host:port". May be NULL. */
    void (*init)(void *st, const struct proto_ops *ops,
                 const union opt_val *opts, const char *backend);
    /* Frees what the state holds. May be NULL. */
    void (*deinit)(void *st);
    /* Whether the framer edits a request's bytes where they lie (http's
     * Host rewrite): then each unit is framed at the front of the buffer,
     * u->skip 0, and nothing before it is copied again. NULL: never. */
    bool (*edits)(void *st);
    /* Frames one direction (see above). NULL: the protocol is tcp. For a
     * reply, u->info and u->info2 hold the request's when a unit starts. */
    ssize_t (*frame)(void *st, enum proto_dir dir, struct evbuffer *in,
                     struct proto_unit *u);
    /* The mode after a unit has ended. NULL: always PROTO_FRAMED. */
    enum proto_mode (*mode)(void *st);
    /* Appends the reply a failing server sends to request req; sets *close
     * when the connection must be closed after it. Called at the request's
     * head step. */
    void (*error_reply)(void *st, const struct proto_error *e,
                        const struct proto_unit *req, struct rng *r,
                        struct evbuffer *out, bool *close);
    /* Requests only. Called in place of waiting when frame(PROTO_UP) has
     * returned 0 with everything the client has sent so far read. Returns
     * what frame() returns: 0 to go on waiting, or the head step of what
     * the framer holds (PROTO_HEAD | PROTO_NOFAULT) when a server could
     * act on those bytes already; the rest of that request then comes
     * from frame() as usual. Calling it again changes nothing. NULL: the
     * framer always waits. */
    ssize_t (*stalled)(void *st, struct evbuffer *in, struct proto_unit *u);
    /* Called when a request whose error reply was built at its head ends
     * (u: its PROTO_END step) and the reply is not sent yet: corrects
     * answer with what only the whole request tells, in place, never
     * changing its length. NULL: the reply depends on the head alone. */
    void (*error_amend)(void *st, const struct proto_unit *u,
                        struct evbuffer *answer);
    /* Fills out (zeroed by the caller) from the first n bytes of a request,
     * p, which start at the request's first byte: as much of the request
     * as had arrived at its head step (maybe all of it, maybe not). Never
     * reads past n, never fails: what it cannot read stays absent; a piece
     * n cuts short is absent too (or, for a statement, shorter), so a
     * longer prefix only adds to the answer. u is the request's head step,
     * its info as the framer set it. NULL: the protocol names no parts
     * (tcp). */
    void (*parts)(const unsigned char *p, size_t n,
                  const struct proto_unit *u, struct proto_parts *out);
    void *script; /* custom protocols: their script */
};

#define PROTO_MAX 16 /* protocols registered, built-in and scripted */

/* The registry: the built-ins, then custom protocols in the order they
 * were registered (an index never changes). */
int proto_count(void);
const struct proto_ops *proto_at(int i);
/* Adds a protocol (ops lives as long as the process). Returns its index,
 * or -ENOSPC when PROTO_MAX are registered. */
int proto_register(const struct proto_ops *ops);
/* Returns the index of the named protocol, or -1. */
int proto_find(const char *name);
/* Checks a --protocol value. Returns 0, or -EINVAL with a message. */
int proto_check_name(const char *name, char *err, size_t errlen);
/* "http, memcache, ..." Returns a static string. */
const char *proto_names(void);

/* Garbage for tcp and for tunnels: 1000 random bytes as an error reply,
 * 100 random bytes inserted into a reply (the original Vaurien's). */
void proto_garbage_reply(struct rng *r, struct evbuffer *out);
void proto_corrupt(struct rng *r, struct evbuffer *unit);

/* Whether in starts with a TLS ClientHello (a handshake record, 0x16
 * 0x03 0x00-0x04, two length bytes, handshake type 0x01): a TLS client
 * speaking to a server of this protocol's port. Returns 1 yes, 0 no, -1
 * too few bytes to tell yet. */
int proto_tls_start(struct evbuffer *in);

/* Helpers for framers. */

/* Calls fn on the bytes of in from offset `from` on, one contiguous piece
 * at a time, until fn returns less than the piece's length (it stopped)
 * or the bytes run out. Returns the number of bytes fn consumed. */
size_t proto_scan(struct evbuffer *in, size_t from,
                  size_t (*fn)(void *st, const unsigned char *p, size_t n),
                  void *st);

/* The driver of a byte framer: the first member of a direction's state.
 * The framer's byte function sets head when the unit's head is known, done
 * when it has consumed the unit's last byte (and then consumes nothing
 * more), error when the bytes are not the protocol. */
struct proto_framer {
    size_t scanned; /* bytes examined but not handed out yet */
    bool head;      /* the current unit's head is known */
    bool done;      /* the current unit is complete */
    bool error;     /* malformed */
    bool started;   /* the head step of this unit was handed out */
};

/* Runs fn over the bytes of in not examined yet and turns what it found
 * into frame()'s answer (see above). head_max bounds the bytes examined
 * before the head is known. */
ssize_t proto_drive(struct proto_framer *f, struct evbuffer *in,
                    struct proto_unit *u, size_t head_max,
                    size_t (*fn)(void *st, const unsigned char *p, size_t n));

/* Appends prefix, then message (or fallback when message is empty) with CR
 * and LF made spaces, then CRLF: a one-line error reply. */
void proto_error_line(struct evbuffer *out, const char *prefix,
                      const char *message, const char *fallback);

/* Reads a line: takes the bytes of p up to and including the next LF (all
 * of them if there is none), adds their count to *linelen, and keeps the
 * line's first keep bytes in buf (NUL-terminated). Returns the bytes taken;
 * *complete says whether the LF was among them. */
size_t proto_line_take(const unsigned char *p, size_t n, char *buf,
                       size_t keep, size_t *linelen, bool *complete);

/* Splits the line at the start of p (up to its LF) into words: runs of
 * bytes that are neither LF nor one of blanks (NUL-terminated; a NUL byte
 * is never a blank). A word is kept only when a blank or the LF follows it
 * within n: one that n cuts short may go on. Stores at most max words in
 * w; returns how many. */
unsigned proto_words(const unsigned char *p, size_t n, const char *blanks,
                     struct proto_str *w, unsigned max);

/* Custom protocols (proto/lua.c). */
struct lua_State;
struct behav_ctx;

/* Loads (or replaces, for new connections) the protocol name from Lua
 * source; path names the file. Returns 0, or a negative errno with a
 * one-line message in err; on failure nothing changes. */
int proto_lua_load(const char *name, const char *source, size_t len,
                   const char *path, char *err, size_t errlen);
int proto_lua_load_file(const char *name, const char *path, char *err,
                        size_t errlen);
/* Pushes field k of what parse() said of ctx's request (nil if nothing). */
void proto_lua_parsed(struct lua_State *L, const struct behav_ctx *ctx,
                      const char *k);
/* Reads every field parse() gave into the req table at index req. */
void proto_lua_keep(struct lua_State *L, const struct behav_ctx *ctx,
                    int req);

extern const struct proto_ops proto_tcp;
extern const struct proto_ops proto_redis;
extern const struct proto_ops proto_http;
extern const struct proto_ops proto_memcache;
extern const struct proto_ops proto_smtp;
extern const struct proto_ops proto_mysql;
extern const struct proto_ops proto_postgres;
extern const struct proto_ops proto_http2; /* net/h2.c: a relay, not a framer */
extern const struct proto_ops proto_grpc;  /* net/h2.c, http2 with gRPC's errors */

#endif
