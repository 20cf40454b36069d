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
#include "net/pipe.h"

struct proxy;

enum session_state {
    SESSION_RESOLVING,  /* looking up the backend */
    SESSION_CONNECTING, /* connecting to one of its addresses */
    SESSION_OPEN,       /* relaying */
    SESSION_HANG,       /* swallowing the client, never answering */
    SESSION_CLOSED,     /* waiting to be freed */
};

struct session {
    LIST_ENTRY(session) link;
    struct proxy *proxy;
    uint64_t id;
    enum session_state state;
    struct bufferevent *client;
    struct bufferevent *backend;
    struct pipe up;   /* client → backend */
    struct pipe down; /* backend → client */
    struct evdns_getaddrinfo_request *dns_req; /* pending lookup */
    struct evutil_addrinfo *ai;      /* backend addresses */
    struct evutil_addrinfo *ai_next; /* the one being tried */
    struct event idle_ev;            /* idle timeout */
    struct timespec last_active;
    struct behav_verdict reply;      /* what happens to backend data now */
    bool synth_blocked;              /* client paused: error replies queued */
    char peer[64];                   /* client address, for logs */
};

/* Takes an accepted socket and starts connecting to the backend. Returns 0,
 * or a negative errno (the socket is then closed). */
int session_create(struct proxy *p, evutil_socket_t fd,
                   const struct sockaddr *peer);

/* Closes both connections now, with RST when reset is true. Idempotent.
 * why is logged. */
void session_close(struct session *s, bool reset, const char *why);

/* Frees a closed session. Called by the proxy after the loop pass. */
void session_destroy(struct session *s);

/* Called by a pipe when its destination's output has drained below the
 * low-water mark, and when both directions are done. */
void session_on_pipe_drained(struct session *s, struct pipe *p);
void session_on_pipe_done(struct session *s);

#endif
