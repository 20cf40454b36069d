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

#define RESET_POLL_MS 5 /* how often a reset waits to see the queue empty */

struct lingering {
    LIST_ENTRY(lingering) link;
    struct event ev;
    struct event_base *base;
    evutil_socket_t fd;
    bool reset;               /* end with RST once everything is sent */
    bool peer_done;           /* the peer's EOF was read */
    struct timespec deadline; /* CLOCK_MONOTONIC_COARSE */
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
        tv = (struct timeval){ 0, RESET_POLL_MS * 1000 };
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
    if (l->reset && unsent(l->fd) == 0)
        finish(l);
}

void linger_close(struct event_base *base, evutil_socket_t fd, bool reset)
{
    struct lingering *l;

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
    clock_gettime(CLOCK_MONOTONIC_COARSE, &l->deadline);
    l->deadline.tv_sec += LINGER_MS / 1000;
    l->deadline.tv_nsec += (LINGER_MS % 1000) * 1000000L;
    if (l->deadline.tv_nsec >= 1000000000L) {
        l->deadline.tv_sec++;
        l->deadline.tv_nsec -= 1000000000L;
    }
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
