/*
 * events: the journal through the control API (core/journal.h).
 *
 *   GET /events?proxy=&since=&behavior=&kind=&limit=   the ring, as JSON
 *   DELETE /events                                      clears it
 *   GET /events/stream?proxy=&behavior=&kind=&since=    Server-Sent Events
 *
 * A stream sends what the ring holds after `since` (or Last-Event-ID), up
 * to half its cap (a comment says where the replay stopped: the rest is a
 * GET /events away), then every new event as it is written, and a comment
 * every 15 s. A client that does not read has at most EVENTS_STREAM_CAP
 * bytes queued; past that its stream is closed. At most
 * EVENTS_STREAMS_MAX streams are open at once (503 beyond). A GET
 * answers at most EVENTS_LIMIT_MAX events and EVENTS_BODY_MAX bytes (its
 * "next" reads on).
 */
#ifndef VAURIEN_EVENTS_H
#define VAURIEN_EVENTS_H

#include <event2/event.h>
#include <event2/http.h>

#define EVENTS_STREAM_CAP (256u << 10) /* bytes queued for one stream */
#define EVENTS_STREAMS_MAX 32          /* streams open at once */
#define EVENTS_LIMIT_MAX 10000         /* events one GET answers */
#define EVENTS_BODY_MAX (4u << 20)     /* bytes one GET answers */

struct events_stream;

/* Sets up the streams' timer on base and listens to the journal. */
int events_init(struct event_base *base);
/* Ends every stream (their connections are the caller's to free). */
void events_deinit(void);

/* The handlers. A bad query gets a 400 with a JSON error. */
void events_get(struct evhttp_request *req);
void events_delete(struct evhttp_request *req);
/* Starts a stream on req; returns it (to end when its connection closes),
 * or NULL when req was answered otherwise (a bad query). */
struct events_stream *events_stream_start(struct evhttp_request *req);
/* The stream's connection closed: it is forgotten. */
void events_stream_end(struct events_stream *s);

#endif
