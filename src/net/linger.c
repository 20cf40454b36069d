/*
 * linger: lingering closes (see linger.h).
 */
#include "net/linger.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event_struct.h>

/* A reset polls the kernel's send queue, from every 5 ms, backing off to
 * every 100 ms while it stays put; its deadline moves on while the queue
 * still drains (the client reads), up to LINGER_RESET_MAX_MS. */
#define RESET_POLL_MS 5
#define RESET_POLL_MAX_MS 100
#define LINGER_RESET_MAX_MS 30000

struct lingering {
    LIST_ENTRY(lingering) link;
    struct event ev;
    struct event_base *base;
    evutil_socket_t fd;
    bool reset;               /* end with RST once everything is sent */
    bool peer_done;           /* the peer's EOF was read */
    int poll_ms;              /* reset: the current poll interval */
    int last_unsent;          /* reset: the send queue at the last poll */
    struct timespec deadline; /* CLOCK_MONOTONIC_COARSE */
    struct timespec until;    /* reset: the deadline's furthest reach */
};

static LIST_HEAD(, lingering) all = LIST_HEAD_INITIALIZER(all);
static int count;

static void finish(struct lingering *l)
{
    event_del(&l->ev);
    if (l->reset) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(l->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    evutil_closesocket(l->fd);
    LIST_REMOVE(l, link);
    count--;
    free(l);
}

/* now + ms, but not beyond cap (a zero cap: no cap) */
static struct timespec later(struct timespec cap, int ms)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    if ((cap.tv_sec != 0 || cap.tv_nsec != 0) &&
        (t.tv_sec > cap.tv_sec ||
         (t.tv_sec == cap.tv_sec && t.tv_nsec > cap.tv_nsec)))
        return cap;
    return t;
}

static bool past(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Bytes the kernel still has to send (or see acknowledged). */
static int unsent(evutil_socket_t fd)
{
    int n = 0;

    return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : 0;
}

static void on_event(evutil_socket_t fd, short what, void *arg);

static int watch(struct lingering *l)
{
    struct timeval tv = { LINGER_MS / 1000, (LINGER_MS % 1000) * 1000 };

    if (l->reset)
        tv = (struct timeval){ l->poll_ms / 1000, (l->poll_ms % 1000) * 1000 };
    event_assign(&l->ev, l->base, l->peer_done ? -1 : l->fd,
                 (l->peer_done ? 0 : EV_READ) | EV_PERSIST, on_event, l);
    return event_add(&l->ev, &tv);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    struct lingering *l = arg;
    char buf[16384];

    (void)fd;
    if (past(&l->deadline) || (!l->reset && (what & EV_TIMEOUT))) {
        finish(l);
        return;
    }
    /* bounded work per wake-up: a few reads, then back to the loop */
    for (int i = 0; (what & EV_READ) && i < 4; i++) {
        ssize_t n = recv(l->fd, buf, sizeof(buf), 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        /* EOF or error: the peer is done sending */
        if (!l->reset) {
            finish(l);
            return;
        }
        l->peer_done = true;
        event_del(&l->ev);
        if (watch(l) < 0) {
            finish(l);
            return;
        }
        break;
    }
    if (!l->reset)
        return;
    int left = unsent(l->fd);
    if (left == 0) {
        finish(l);
        return;
    }
    if (left < l->last_unsent) {
        /* the client is reading: wait on, and poll as often again */
        l->deadline = later(l->until, LINGER_MS);
        l->poll_ms = RESET_POLL_MS;
    } else if (l->poll_ms < RESET_POLL_MAX_MS) {
        l->poll_ms *= 2;
        if (l->poll_ms > RESET_POLL_MAX_MS)
            l->poll_ms = RESET_POLL_MAX_MS;
    } else {
        l->last_unsent = left;
        return;
    }
    l->last_unsent = left;
    event_del(&l->ev);
    if (watch(l) < 0)
        finish(l);
}

void linger_close(struct event_base *base, evutil_socket_t fd, bool reset)
{
    struct lingering *l;

    if (count >= LINGER_MAX && reset) {
        /* no room to wait: a plain close still sends what is queued (a
         * reset now would drop it), then FIN instead of the reset */
        evutil_closesocket(fd);
        return;
    }
    if (count >= LINGER_MAX || (!reset && shutdown(fd, SHUT_WR) < 0) ||
        (reset && unsent(fd) == 0) || (l = calloc(1, sizeof(*l))) == NULL) {
        if (reset) {
            struct linger lg = { .l_onoff = 1, .l_linger = 0 };
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        evutil_closesocket(fd);
        return;
    }
    l->fd = fd;
    l->base = base;
    l->reset = reset;
    l->poll_ms = RESET_POLL_MS;
    l->last_unsent = reset ? unsent(fd) : 0;
    l->until = later((struct timespec){ 0, 0 }, LINGER_RESET_MAX_MS);
    l->deadline = later((struct timespec){ 0, 0 }, LINGER_MS);
    if (watch(l) < 0) {
        evutil_closesocket(fd);
        free(l);
        return;
    }
    LIST_INSERT_HEAD(&all, l, link);
    count++;
}

int linger_count(void)
{
    return count;
}

void linger_deinit(void)
{
    while (!LIST_EMPTY(&all))
        finish(LIST_FIRST(&all));
}
