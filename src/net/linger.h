/*
 * linger: closing a client without losing what was just written to it.
 *
 *   session_close ─▶ linger_close(fd): shutdown(SHUT_WR) ─▶ read and drop
 *                    what the client still sends ─▶ close at its EOF, or
 *                    after LINGER_MS
 *
 * close() on a socket whose peer is still sending makes the kernel answer
 * with RST, and a client that receives RST before it read our last bytes
 * (an error reply, the end of a response) loses them. A lingering close
 * sends FIN after those bytes and waits for the client to finish, as
 * HAProxy and nginx do. A reset waits the same way for the kernel to have
 * sent everything, then resets: SO_LINGER 0 on a socket with unsent bytes
 * would drop them. Bounded: at most LINGER_MAX sockets linger at once, for
 * at most LINGER_MS; beyond that they are closed at once.
 */
#ifndef VAURIEN_LINGER_H
#define VAURIEN_LINGER_H

#include <stdbool.h>

#include <event2/event.h>
#include <event2/util.h>

#define LINGER_MAX 4096
#define LINGER_MS 2000

/* Takes fd. Without reset: shuts its write side and closes it once the
 * peer is done. With reset: resets it once the kernel has sent what was
 * written to it. Either way what the peer still sends is read and
 * dropped. */
void linger_close(struct event_base *base, evutil_socket_t fd, bool reset);

/* Sockets lingering now. */
int linger_count(void);

/* Closes every lingering socket (at exit, before the loop is freed). */
void linger_deinit(void);

#endif
