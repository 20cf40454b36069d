/*
 * demo: a small HTTP/1.1 "hello" server built into the binary, so that
 * `make run` shows Vaurien at work on a fresh machine with nothing else
 * installed (`vaurien demo`, `vaurien demo-backend`).
 */
#ifndef VAURIEN_DEMO_H
#define VAURIEN_DEMO_H

#include <stddef.h>

#include <event2/event.h>

#include "core/addr.h"

struct demo_backend;

/* Starts serving on a. Returns NULL with a message in err on failure. */
struct demo_backend *demo_backend_start(struct event_base *base,
                                        const struct addr *a, char *err,
                                        size_t errlen);
void demo_backend_stop(struct demo_backend *d);

#endif
