/*
 * ctl/replay: reads a recorded journal into a replay (behav/replay.h).
 *
 *   --replay FILE, POST /replay ──▶ ctl_replay_parse() ──▶ replay_set()
 *
 * A journal is what --journal FILE wrote (JSON lines), or what GET /events
 * answered ({"events": [...]}) or a JSON list of events. Only "fault"
 * events of requests (an "index") count; the rest (toxics on bytes,
 * connections, TLS handshakes) are skipped.
 */
#ifndef VAURIEN_CTL_REPLAY_H
#define VAURIEN_CTL_REPLAY_H

#include <stddef.h>

struct replay;

/* A replay from a journal's text. Returns NULL with a one-line message in
 * err (naming the line or event) when an event is malformed or names a
 * behavior that is not loaded. */
struct replay *ctl_replay_parse(const char *text, size_t len, char *err,
                                size_t errlen);

/* Reads path and makes it the process's replay. Returns 0, or a negative
 * errno with a message in err; nothing changes then. */
int ctl_replay_load_file(const char *path, char *err, size_t errlen);

#endif
