/*
 * h2: the relay of an HTTP/2 connection (--protocol http2), stream by
 * stream, with nghttp2 on both sides. See the top of h2.c.
 */
#ifndef VAURIEN_H2_H
#define VAURIEN_H2_H

struct session;

/* Feeds what both sides of s have sent (its bufferevents' inputs) to the
 * connection's two nghttp2 sessions, made on the first call and kept in
 * s->pstate, and writes what they have to send to the bufferevents'
 * outputs. Closes s on a protocol error. */
void h2_pump(struct session *s);

#endif
