/*
 * journal: every fault the proxy injected, as events a test can read back.
 *
 *   session / pipe / accept ─▶ journal_begin() ─ fill ─▶ journal_commit()
 *        ─▶ ring (fixed-size events, preallocated, oldest overwritten)
 *        ─▶ --journal FILE (JSON lines)    ─▶ the listener (the API's SSE)
 *
 * One ring per process. Writing an event allocates nothing (the ring is
 * made at start) and makes no syscall unless --journal FILE is set.
 * Readers (GET /events, the SSE stream) read by sequence number: events
 * are numbered from 1 in the order written; an event overwritten before
 * it was read is counted as dropped.
 */
#ifndef VAURIEN_JOURNAL_H
#define VAURIEN_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOURNAL_DEFAULT_SIZE 10000

/* What an event records. */
#define JOURNAL_KINDS(X) \
    X(FAULT, "fault")               /* a request's decision, not dummy */ \
    X(TOXIC, "toxic")               /* a byte toxic acted on bytes */      \
    X(OPEN, "open")                 /* a client was accepted */            \
    X(CLOSE, "close")               /* its connection ended */             \
    X(CONNECT_FAILED, "connect_failed") /* no backend address answered */
#define JOURNAL_ENUM(name, text) JOURNAL_##name,
enum journal_kind { JOURNAL_KINDS(JOURNAL_ENUM) JOURNAL_KIND_N };
#undef JOURNAL_ENUM

enum journal_dir { JOURNAL_NONE, JOURNAL_UP, JOURNAL_DOWN };

struct journal_event {
    uint64_t seq;          /* 1, 2, ... in the order written */
    int64_t mono_ns;       /* CLOCK_MONOTONIC */
    int64_t wall_ns;       /* CLOCK_REALTIME */
    uint64_t conn;         /* the connection: its ordinal on its proxy
                              (what --seed derives its draws from) */
    uint64_t index;        /* the request's index on it, from 1; 0: none */
    uint64_t bytes;        /* bytes the fault cut or answered with */
    double held_ms;        /* time the fault held bytes */
    int32_t code;          /* the error code sent (HTTP status, SMTP
                              code, MySQL error number); 0: none */
    uint8_t kind;          /* enum journal_kind */
    uint8_t dir;           /* enum journal_dir */
    char proxy[56];        /* (names are cut to fit) */
    char client[56];       /* "ip:port" */
    char behavior[64];     /* the behavior, or the toxic's type (whole:
                              custom names have at most 63 bytes) */
    char toxic[40];        /* the toxic's name; "" for the mix */
    char request[96];      /* the protocol's view of the request */
    char options[144];     /* the behavior's options, a JSON object
                              (BEHAV_OPTS_JSON) */
    char outcome[72];      /* what happened, in words */
};

/* Makes the ring for size events (0: no journal). Returns 0 or -ENOMEM. */
int journal_init(size_t size);
void journal_deinit(void);
bool journal_on(void);
size_t journal_size(void);

/* Writes every event to path as a JSON line from now on ("" stops).
 * Returns 0 or -errno. */
int journal_set_file(const char *path);
/* Opens the file again (SIGHUP, after logrotate). Returns 0 or -errno. */
int journal_reopen(void);

/* The next slot, zeroed, with its number and times set; NULL when the
 * journal is off. Fill it, then commit it before the loop pass ends. */
struct journal_event *journal_begin(enum journal_kind kind);
void journal_commit(struct journal_event *e);

/* Events still in the ring with a number above since, oldest first: calls
 * fn for each until it returns false. */
void journal_each(uint64_t since, bool (*fn)(const struct journal_event *e,
                                             void *arg),
                  void *arg);
uint64_t journal_last(void);    /* the number of the newest event (0) */
uint64_t journal_dropped(void); /* events overwritten before anyone could
                                   read them back from the ring */
uint64_t journal_written(void); /* events written since start */
void journal_clear(void);       /* DELETE /events */

/* Called at each commit (the API's event stream). One listener. */
void journal_set_listener(void (*fn)(const struct journal_event *e, void *arg),
                          void *arg);

const char *journal_kind_name(enum journal_kind k);

/* The event as one JSON object (no newline) in out; returns its length,
 * or 0 when cap is too small (4096 always is). */
size_t journal_json(const struct journal_event *e, char *out, size_t cap);

/* Copies s (n bytes, or to its NUL when n is (size_t)-1) into a field of
 * size cap, cut to fit, NUL-terminated. */
void journal_copy(char *field, size_t cap, const char *s, size_t n);

#endif
