/*
 * session: one accepted client and its backend connection.
 *
 *        ┌──────────── up pipe: client → framer → verdict → backend ─────┐
 *  client│                                                                │backend
 *        └─── down pipe: backend → verdict of the request → client ◀─────┘
 *
 * A session owns both bufferevents and both pipes. Each request unit gets a
 * verdict from the proxy's mix (behav.h); the session carries it out on the
 * request and remembers it for the reply. It records its first error and is
 * closed in one place, session_close(), and freed after the loop pass.
 */
#ifndef VAURIEN_SESSION_H
#define VAURIEN_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event_struct.h>
#include <event2/util.h>

#include "behav/behav.h"
#include "net/entry.h"
#include "net/pipe.h"
#include "proto/proto.h"

struct proxy;
struct tls_link;
struct toxic;

enum session_state {
    SESSION_WAITING,    /* slow_open: waiting to look the backend up */
    SESSION_RESOLVING,  /* looking up the backend */
    SESSION_CONNECTING, /* connecting to one of its addresses */
    SESSION_OPEN,       /* relaying */
    SESSION_CLOSED,     /* waiting to be freed */
};

/* One direction on the fast path (fast.c). */
struct fast_dir {
    int pipe[2];              /* from the pool while data is in flight */
    size_t in_pipe;           /* bytes in it */
    struct event wr;          /* destination writable (the source's
                                 readable event is the session's crd/brd) */
    bool wr_armed;
    bool rd_paused;           /* the destination is full: stop reading */
    bool eof;                 /* the source ended */
    bool shut;                /* the destination's write side is shut */
};

struct session {
    LIST_ENTRY(session) link;
    struct proxy *proxy;
    uint64_t id;                     /* ordinal on its proxy */
    enum session_state state;
    uint32_t requests;               /* requests drawn for so far */
    struct bufferevent *client;
    struct bufferevent *backend;
    struct pipe up;   /* client → backend */
    struct pipe down; /* backend → client */
    struct evdns_getaddrinfo_request *dns_req; /* pending lookup */
    struct evutil_addrinfo *ai;      /* backend addresses */
    struct evutil_addrinfo *ai_next; /* the one being tried */
    struct event idle_ev;            /* idle timeout; before the lookup
                                        (SESSION_WAITING), slow_open's
                                        wait */
    struct timespec last_active;
    struct behav_verdict reply;      /* tunnel: what happens to backend data */
    bool synth_blocked;              /* client paused: its answers are not
                                        being read */
    bool inflight_full;              /* client paused: the queue of
                                        requests in flight is at its cap */
    bool hanging;                    /* hang: the client is swallowed, never
                                        answered, until it leaves */
    bool up_in_unit;                 /* a request is being read (framed) */
    bool down_in_unit;               /* a reply is being read (framed) */
    struct event *stall_ev;          /* the client stopped mid-request
                                        (made on first use) */
    struct rng rng;                  /* this connection's draws: verdicts,
                                        and one per error's bytes */
    struct event *head_ev;           /* head_timeout: the request head
                                        started is due (made on first use) */
    bool stall_fired;                /* ... for STALL_MS: frame() may give
                                        what it holds (proto.h, stalled) */
    bool client_spoke;               /* the client's first bytes were seen
                                        (TLS is looked for there) */
    bool backend_ended;              /* mux (http2): the backend ended or
                                        reset its side; the relay ends the
                                        client's once its streams are done */
    bool backend_failed;             /* the backend reset: its last bytes
                                        are on their way, then the reset */
    bool pumping;                    /* session_pump() is running (checked:
                                        it never runs twice at once) */
    bool upgrading;                  /* STARTTLS: reads stop until what was
                                        sent is written, then both sides
                                        go through TLS relays */
    struct tls_link *tls_link;       /* ALPN between its TLS relays */
    const struct proto_ops *proto;   /* fixed for the session's life */
    enum proto_mode mode;            /* framed, tunnel or raw */
    int script_state;                /* custom behaviors' state of this
                                        connection (a Lua reference) */
    void *pstate;                    /* the framer's state */
    struct entry_queue q;            /* requests in flight (entry.h) */
    /* the request being read (framed mode) */
    struct proto_unit up_unit;
    struct behav_verdict up_v;
    struct entry *up_entry;          /* NULL for requests without reply */
    struct timespec up_due;          /* a held request: when it is due */
    /* the reply being read (framed mode) */
    struct proto_unit down_unit;
    struct entry *down_entry;        /* NULL for unsolicited replies */
    struct timespec down_due;        /* a held reply: when it is due */
    struct event crd, brd;           /* client, backend readable: the
                                        buffered path reads itself (no
                                        ioctl before each read) */
    bool rd_assigned;
    bool crd_on, brd_on;             /* those events are added */
    bool fast;                       /* on the zero-copy path */
    bool fast_assigned;              /* the fast events are assigned */
    bool no_fast;                    /* no pipe could be had: stay off */
    struct fast_dir fup, fdown;      /* its two directions */
    char peer[56];                   /* client address, for logs ("[v6]:port"
                                        fits) */
};

/* Takes an accepted socket and starts connecting to the backend; takes
 * the reference to link (tls.h, may be NULL). Returns 0, or a negative
 * errno (the socket is then closed). */
int session_create(struct proxy *p, evutil_socket_t fd,
                   const struct sockaddr *peer, struct tls_link *link);

/* Closes both connections now, with RST when reset is true. Idempotent.
 * why is logged. */
void session_close(struct session *s, bool reset, const char *why);

/* The backend reset the connection, seen while writing to it or while
 * reading from it: its last bytes go to the client, then the reset. */
void session_backend_failed(struct session *s, bool writing);

/* Whether toxic t's target (behav/target.h) takes this connection: a
 * toxic on bytes or connections counts connections, once each when it is
 * drawn for one, and its matcher knows only the client. */
bool session_toxic_targets(struct session *s, const struct toxic *t);

/* Takes the proxy's current byte toxics (after a change). */
void session_set_toxics(struct session *s);

/* The proxy's configuration changed: leave or enter the fast path. */
void session_conf_changed(struct session *s);

/* Starts or stops reading each side, as the session's state, the pipes'
 * backpressure and the fast path require. */
void session_update_reading(struct session *s);

/* What decided a drawn verdict: a behavior of the mix, or of toxic t
 * (NULL: the mix). */
struct session_drawn {
    const struct behav_inst *b;
    const struct toxic *t;
};

/* Draws the verdict of one request that is not a framed unit (an http2
 * stream, net/h2.c): in[0, len) is the request as matchers and custom
 * behaviors read it (proto_ops.parts), u its head step; *by says what
 * decided, for session_journal(). The caller owns v->hook. */
void session_draw(struct session *s, struct behav_verdict *v,
                  struct evbuffer *in, size_t len, const struct proto_unit *u,
                  struct session_drawn *by);

/* A drawn verdict that does something goes to the journal (report.h);
 * answer (may be NULL) is what the proxy answered, its first line as the
 * journal shows it ("503 ..." gives the event's code). */
void session_journal(struct session *s, const struct session_drawn *by,
                     const struct behav_verdict *v, const struct proto_unit *u,
                     struct evbuffer *in, size_t len, struct evbuffer *answer);

/* Records activity (resets the idle timeout). */
void session_touch(struct session *s);

/* Frees a closed session. Called by the proxy after the loop pass. */
void session_destroy(struct session *s);

/* Called by a pipe when its destination's output has drained below the
 * low-water mark, and when both directions are done. */
void session_on_pipe_drained(struct session *s, struct pipe *p);
void session_on_pipe_done(struct session *s);

#endif
