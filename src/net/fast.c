/*
 * fast: splice(2) between the two sockets of a session (see fast.h).
 */
#include "net/fast.h"

#include "behav/replay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/log.h"
#include "net/proxy.h"
#include "net/session.h"

#define FAST_PIPE_SIZE (256 * 1024) /* as a pipe's capacity, if allowed */
#define FAST_POOL_MAX 16            /* idle pipes kept for reuse */

static int pool[FAST_POOL_MAX][2];
static int npool;

static int pipe_get(int fds[2])
{
    if (npool > 0) {
        npool--;
        fds[0] = pool[npool][0];
        fds[1] = pool[npool][1];
        return 0;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    fcntl(fds[1], F_SETPIPE_SZ, FAST_PIPE_SIZE);
    return 0;
}

/* Gives an empty pipe back; a pipe with data in it is closed instead. */
static void pipe_put(int fds[2], bool empty)
{
    if (fds[0] < 0)
        return;
    if (empty && npool < FAST_POOL_MAX) {
        pool[npool][0] = fds[0];
        pool[npool][1] = fds[1];
        npool++;
    } else {
        close(fds[0]);
        close(fds[1]);
    }
    fds[0] = fds[1] = -1;
}

void fast_pool_deinit(void)
{
    while (npool > 0) {
        npool--;
        close(pool[npool][0]);
        close(pool[npool][1]);
    }
}

bool fast_eligible(const struct session *s)
{
    const struct proxy *p = s->proxy;

    if (s->state != SESSION_OPEN || p->ntoxics > 0)
        return false;
    if (p->tls.server != NULL || p->tls.client != NULL)
        return false; /* the relays copy anyway, or STARTTLS may come */
    if (s->mode == PROTO_RAW)
        return true;
    /* a replay decides each chunk: they must be seen */
    return s->mode == PROTO_TUNNEL && p->conf->all_dummy &&
           replay_current() == NULL;
}

static struct fast_dir *other(struct session *s, struct fast_dir *d)
{
    return d == &s->fup ? &s->fdown : &s->fup;
}

static evutil_socket_t dst_fd(struct session *s, struct fast_dir *d)
{
    return bufferevent_getfd(d == &s->fup ? s->backend : s->client);
}

/* A socket failed. A backend that resets gets its last bytes to the
 * client first (session_backend_failed); anything else closes. */
static void fail(struct session *s, int e, bool backend, bool writing)
{
    char why[128];

    if (backend && (e == ECONNRESET || e == EPIPE)) {
        session_backend_failed(s, writing);
        return;
    }
    snprintf(why, sizeof(why), "%s: %s", backend ? "backend" : "client",
             strerror(e));
    session_close(s, e == ECONNRESET, why);
}

/* Writes what is in the pipe; re-arms events as the state requires. */
static void flush(struct session *s, struct fast_dir *d)
{
    while (d->in_pipe > 0) {
        ssize_t w = splice(d->pipe[0], NULL, dst_fd(s, d), NULL, d->in_pipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w > 0) {
            d->in_pipe -= (size_t)w;
            pipe_count_sent(d == &s->fup ? &s->up : &s->down, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            /* the destination is full: wait for it, stop reading */
            d->rd_paused = true;
            session_update_reading(s);
            if (!d->wr_armed) {
                if (event_add(&d->wr, NULL) < 0) {
                    session_close(s, true, "cannot watch a socket");
                    return;
                }
                d->wr_armed = true;
            }
            return;
        }
        fail(s, w < 0 ? errno : EPIPE, d == &s->fup, true);
        return;
    }
    if (d->wr_armed) {
        event_del(&d->wr);
        d->wr_armed = false;
    }
    pipe_put(d->pipe, true);
    if (d->eof) {
        if (!d->shut) {
            shutdown(dst_fd(s, d), SHUT_WR);
            d->shut = true;
        }
        if (other(s, d)->shut)
            session_close(s, false, "both sides finished");
        return;
    }
    if (d->rd_paused) {
        d->rd_paused = false;
        session_update_reading(s);
    }
}

void fast_on_readable(struct session *s, bool up)
{
    struct fast_dir *d = up ? &s->fup : &s->fdown;
    evutil_socket_t fd = bufferevent_getfd(up ? s->client : s->backend);
    ssize_t n;

    if (d->pipe[0] < 0) {
        int e = pipe_get(d->pipe);
        if (e < 0) {
            /* out of descriptors: the normal path does without pipes */
            log_warn("session %llu: no pipe for the fast path: %s",
                     (unsigned long long)s->id, strerror(-e));
            s->no_fast = true;
            fast_leave(s);
            return;
        }
    }
    n = splice(fd, NULL, d->pipe[1], NULL, FAST_PIPE_SIZE,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        fail(s, errno, d == &s->fdown, false);
        return;
    }
    session_touch(s);
    if (n == 0) {
        d->eof = true;
        session_update_reading(s);
    }
    d->in_pipe += (size_t)n;
    pipe_count_received(d == &s->fup ? &s->up : &s->down, (size_t)n);
    flush(s, d);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    struct fast_dir *d = fd == bufferevent_getfd(s->backend) ? &s->fup : &s->fdown;

    (void)what;
    flush(s, d);
}

bool fast_enter(struct session *s)
{
    struct bufferevent *c = s->client, *b = s->backend;
    evutil_socket_t cfd, bfd;

    if (s->fast || s->no_fast || !fast_eligible(s) || s->up.eof || s->down.eof ||
        s->up.discard || s->down.discard ||
        s->up.nheld != 0 || s->down.nheld != 0 || s->synth_blocked ||
        s->q.head != NULL ||
        evbuffer_get_length(bufferevent_get_input(c)) != 0 ||
        evbuffer_get_length(bufferevent_get_input(b)) != 0 ||
        evbuffer_get_length(bufferevent_get_output(c)) != 0 ||
        evbuffer_get_length(bufferevent_get_output(b)) != 0)
        return false;
    cfd = bufferevent_getfd(c);
    bfd = bufferevent_getfd(b);
    if (!s->fast_assigned) {
        struct event_base *base = bufferevent_get_base(c);
        event_assign(&s->fup.wr, base, bfd, EV_WRITE | EV_PERSIST, on_writable, s);
        event_assign(&s->fdown.wr, base, cfd, EV_WRITE | EV_PERSIST, on_writable, s);
        s->fup.pipe[0] = s->fup.pipe[1] = -1;
        s->fdown.pipe[0] = s->fdown.pipe[1] = -1;
        s->fast_assigned = true;
    }
    bufferevent_disable(c, EV_WRITE);
    bufferevent_disable(b, EV_WRITE);
    s->fup.eof = s->fdown.eof = s->fup.shut = s->fdown.shut = false;
    s->fup.rd_paused = s->fdown.rd_paused = false;
    s->fast = true;
    session_update_reading(s); /* the same events now splice */
    log_debug("session %llu: on the fast path", (unsigned long long)s->id);
    return true;
}

/* Moves what is in a pipe to the front of the normal path's output. */
static void unload(struct fast_dir *d, struct bufferevent *dst, struct pipe *p)
{
    struct evbuffer *out = bufferevent_get_output(dst);

    event_del(&d->wr);
    d->wr_armed = false;
    d->rd_paused = false;
    while (d->in_pipe > 0) {
        int n = evbuffer_read(out, d->pipe[0], (int)d->in_pipe);
        if (n <= 0)
            break;
        d->in_pipe -= (size_t)n;
        pipe_count_sent(p, (size_t)n);
    }
    pipe_put(d->pipe, d->in_pipe == 0);
    d->in_pipe = 0;
    p->eof = d->eof;
    p->shut = d->shut;
}

void fast_leave(struct session *s)
{
    if (!s->fast)
        return;
    s->fast = false;
    unload(&s->fup, s->backend, &s->up);
    unload(&s->fdown, s->client, &s->down);
    bufferevent_enable(s->client, EV_WRITE);
    bufferevent_enable(s->backend, EV_WRITE);
    session_update_reading(s);
    log_debug("session %llu: left the fast path", (unsigned long long)s->id);
    pipe_maybe_shut(&s->up);
    if (s->state == SESSION_OPEN)
        pipe_maybe_shut(&s->down);
}

void fast_deinit(struct session *s)
{
    if (!s->fast_assigned)
        return;
    event_del(&s->fup.wr);
    event_del(&s->fdown.wr);
    pipe_put(s->fup.pipe, s->fup.in_pipe == 0);
    pipe_put(s->fdown.pipe, s->fdown.in_pipe == 0);
    s->fast = false;
}
