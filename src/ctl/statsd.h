/*
 * statsd: counters and timers per proxy, as the original's --statsd flags
 * asked, with names that do not grow with connections:
 *
 *   PREFIX.PROXY.connections  .requests  .faults.BEHAVIOR  .bytes.up
 *   .bytes.down (counters, sent every second as the change since the last)
 *   PREFIX.PROXY.connect  .request (timers, ms, each sampled at the rate)
 *
 * Over UDP, in packets of at most STATSD_PACKET bytes, from a one-second
 * timer: the data path only appends timer lines to a bounded buffer (no
 * syscall there).
 */
#ifndef VAURIEN_STATSD_H
#define VAURIEN_STATSD_H

#include <stddef.h>

#include <event2/event.h>

#define STATSD_PACKET 1432         /* fits one Ethernet frame */
#define STATSD_PENDING (64u << 10) /* timer lines waiting for the flush */

struct settings;
struct proxy;

/* Resolves --statsd-host and starts the flushes. Returns 0 or a negative
 * errno with a one-line message in err. Does nothing without --statsd. */
int statsd_start(struct event_base *base, const struct settings *st,
                 char *err, size_t errlen);
/* Whether --statsd-host resolves (checked with the flags: exit 2). Returns
 * 0 or -EINVAL with a one-line message in err. */
int statsd_check(const struct settings *st, char *err, size_t errlen);
/* Sends what is pending and stops. */
void statsd_stop(void);

/* A timing of p (name: "connect", "request"), sampled. */
void statsd_timer(const struct proxy *p, const char *name, double secs);

#endif
