/*
 * statsd: the client (see statsd.h).
 */
#include "ctl/statsd.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/settings.h"
#include "core/log.h"
#include "core/rng.h"
#include "net/proxy.h"

#define STATSD_FLUSH_MS 1000

static int sock = -1;
static struct event *flush_ev;
static char prefix[128];
static double rate = 1.0;
static struct rng sampler;       /* which timings are sent */
static char pending[STATSD_PENDING]; /* timer lines */
static size_t npending;
static uint64_t skipped;          /* timer lines that found no room */

/* A proxy's name as one statsd name segment: [A-Za-z0-9_-], others '_'. */
static void segment(const char *name, char *out, size_t cap)
{
    size_t i = 0;

    for (; name[i] != '\0' && i + 1 < cap; i++) {
        char c = name[i];
        out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '_' || c == '-'
                     ? c
                     : '_';
    }
    out[i] = '\0';
}

/* Sends buf[0..n) in packets, each ending at a line's end. */
static void send_lines(const char *buf, size_t n)
{
    size_t at = 0;

    while (at < n) {
        size_t len = n - at;
        if (len > STATSD_PACKET) {
            len = STATSD_PACKET;
            while (len > 0 && buf[at + len - 1] != '\n')
                len--;
            if (len == 0)
                len = STATSD_PACKET; /* a line longer than a packet */
        }
        /* the trailing newline is not part of the last metric */
        if (send(sock, buf + at, buf[at + len - 1] == '\n' ? len - 1 : len,
                 MSG_DONTWAIT) < 0 && errno != ECONNREFUSED)
            log_debug("statsd: %s", strerror(errno));
        at += len;
    }
}

/* Appends a line to the packet being made, sending it first when full. */
static void add_line(char *pkt, size_t *n, const char *line, size_t len)
{
    if (*n + len > STATSD_PACKET && *n > 0) {
        send_lines(pkt, *n);
        *n = 0;
    }
    if (len <= STATSD_PACKET) {
        memcpy(pkt + *n, line, len);
        *n += len;
    }
}

static void counter(char *pkt, size_t *n, const char *proxy, const char *name,
                    uint64_t now, uint64_t *sent)
{
    char line[400];
    int len;

    if (now == *sent)
        return;
    len = snprintf(line, sizeof(line), "%s.%s.%s:%" PRIu64 "|c\n", prefix,
                   proxy, name, now - *sent);
    *sent = now;
    if (len > 0 && (size_t)len < sizeof(line))
        add_line(pkt, n, line, (size_t)len);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    char pkt[STATSD_PACKET];
    size_t n = 0;

    (void)fd;
    (void)what;
    (void)arg;
    for (struct proxy *p = proxy_first(); p != NULL; p = proxy_next(p)) {
        struct proxy_stats *st = &p->stats;
        char name[128], fault[96];
        segment(p->name, name, sizeof(name));
        counter(pkt, &n, name, "connections", p->accepted, &st->sent.connections);
        counter(pkt, &n, name, "requests", st->requests, &st->sent.requests);
        counter(pkt, &n, name, "bytes.up", p->bytes[0][0], &st->sent.up);
        counter(pkt, &n, name, "bytes.down", p->bytes[1][0], &st->sent.down);
        for (int i = 0; i < behav_count(); i++) {
            snprintf(fault, sizeof(fault), "faults.%s", behav_at(i)->name);
            counter(pkt, &n, name, fault, st->faults[i], &st->sent.faults[i]);
        }
    }
    if (n > 0)
        send_lines(pkt, n);
    if (npending > 0)
        send_lines(pending, npending);
    npending = 0;
    if (skipped > 0) {
        log_warn("statsd: %" PRIu64 " timings not sent (more than %u bytes a "
                 "second; lower --statsd-sample-rate)", skipped, STATSD_PENDING);
        skipped = 0;
    }
}

void statsd_timer(const struct proxy *p, const char *name, double secs)
{
    char seg[128], line[400];
    int len;

    if (sock < 0 || (rate < 1.0 && rng_double(&sampler) >= rate))
        return;
    segment(p->name, seg, sizeof(seg));
    if (rate < 1.0)
        len = snprintf(line, sizeof(line), "%s.%s.%s:%.3f|ms|@%g\n", prefix,
                       seg, name, secs * 1000.0, rate);
    else
        len = snprintf(line, sizeof(line), "%s.%s.%s:%.3f|ms\n", prefix, seg,
                       name, secs * 1000.0);
    if (len <= 0 || (size_t)len >= sizeof(line) ||
        npending + (size_t)len > sizeof(pending)) {
        skipped++;
        return;
    }
    memcpy(pending + npending, line, (size_t)len);
    npending += (size_t)len;
}

/* --statsd-host and --statsd-port as an address (freeaddrinfo it), or
 * NULL with err. */
static struct addrinfo *resolve(const struct settings *st, char *err,
                                size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    char port[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    snprintf(port, sizeof(port), "%d", st->statsd_port);
    rc = getaddrinfo(st->statsd_host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "--statsd-host %s: %s", st->statsd_host,
                 gai_strerror(rc));
        return NULL;
    }
    return ai;
}

int statsd_check(const struct settings *st, char *err, size_t errlen)
{
    struct addrinfo *ai;

    if (!st->statsd)
        return 0;
    ai = resolve(st, err, errlen);
    if (ai == NULL)
        return -EINVAL;
    freeaddrinfo(ai);
    return 0;
}

int statsd_start(struct event_base *base, const struct settings *st,
                 char *err, size_t errlen)
{
    struct addrinfo *ai;
    struct timeval tv = { STATSD_FLUSH_MS / 1000, (STATSD_FLUSH_MS % 1000) * 1000 };

    if (!st->statsd)
        return 0;
    ai = resolve(st, err, errlen);
    if (ai == NULL)
        return -EINVAL;
    sock = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, ai->ai_addr, ai->ai_addrlen) < 0) {
        snprintf(err, errlen, "--statsd-host %s: %s", st->statsd_host,
                 strerror(errno));
        freeaddrinfo(ai);
        statsd_stop();
        return -EINVAL;
    }
    freeaddrinfo(ai);
    snprintf(prefix, sizeof(prefix), "%s", st->statsd_prefix);
    rate = st->statsd_sample_rate;
    rng_seed(&sampler, rng_run_seed ^ 0x5747a75dULL);
    flush_ev = event_new(base, -1, EV_PERSIST, flush_cb, NULL);
    if (flush_ev == NULL || event_add(flush_ev, &tv) < 0) {
        snprintf(err, errlen, "statsd: out of memory");
        statsd_stop();
        return -ENOMEM;
    }
    log_info("statsd: to %s:%d, prefix %s", st->statsd_host, st->statsd_port,
             prefix);
    return 0;
}

void statsd_stop(void)
{
    if (flush_ev != NULL) {
        flush_cb(-1, 0, NULL); /* what the last second counted */
        event_free(flush_ev);
        flush_ev = NULL;
    }
    if (sock >= 0)
        close(sock);
    sock = -1;
    npending = 0;
}
