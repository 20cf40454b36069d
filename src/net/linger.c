/*
 * linger: lingering closes (see linger.h).
 */
#include "net/linger.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event_struct.h>

struct lingering {
    LIST_ENTRY(lingering) link;
    struct event ev;
    evutil_socket_t fd;
    struct timespec deadline; /* CLOCK_MONOTONIC_COARSE */
};

static LIST_HEAD(, lingering) all = LIST_HEAD_INITIALIZER(all);
static int count;

static void finish(struct lingering *l)
{
    event_del(&l->ev);
    evutil_closesocket(l->fd);
    LIST_REMOVE(l, link);
    count--;
    free(l);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    struct lingering *l = arg;
    struct timespec now;
    char buf[16384];

    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    if ((what & EV_TIMEOUT) || now.tv_sec > l->deadline.tv_sec ||
        (now.tv_sec == l->deadline.tv_sec &&
         now.tv_nsec >= l->deadline.tv_nsec)) {
        finish(l);
        return;
    }
    /* bounded work per wake-up: a few reads, then back to the loop */
    for (int i = 0; i < 4; i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        finish(l); /* EOF or error: the client is done */
        return;
    }
}

void linger_close(struct event_base *base, evutil_socket_t fd)
{
    struct lingering *l;
    struct timeval tv = { LINGER_MS / 1000, (LINGER_MS % 1000) * 1000 };

    if (count >= LINGER_MAX || shutdown(fd, SHUT_WR) < 0 ||
        (l = calloc(1, sizeof(*l))) == NULL) {
        evutil_closesocket(fd);
        return;
    }
    l->fd = fd;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &l->deadline);
    l->deadline.tv_sec += LINGER_MS / 1000;
    l->deadline.tv_nsec += (LINGER_MS % 1000) * 1000000L;
    if (l->deadline.tv_nsec >= 1000000000L) {
        l->deadline.tv_sec++;
        l->deadline.tv_nsec -= 1000000000L;
    }
    event_assign(&l->ev, base, fd, EV_READ | EV_PERSIST, on_event, l);
    if (event_add(&l->ev, &tv) < 0) {
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
