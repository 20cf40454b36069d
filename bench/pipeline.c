/*
 * pipeline: pipelined request rate through a proxy, for any protocol whose
 * reply to the chosen request has a fixed length. CONNS connections each
 * keep DEPTH requests in flight (DEPTH at once, then DEPTH more as soon as
 * the last reply of a batch is in, like redis-benchmark -P), for SECONDS,
 * on one epoll loop. Prints the replies per second.
 *
 *   pipeline PORT CONNS DEPTH SECONDS REQUEST REPLY_LEN
 *
 * REQUEST takes C escapes (\r, \n). Used for memcache (no memtier in
 * Debian), redis and HTTP alike, so the three compare on one client.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t due;      /* reply bytes still to come for this batch */
    size_t sent;     /* bytes of the batch written */
};

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t unescape(const char *in, char *out)
{
    size_t n = 0;

    for (; *in; in++) {
        if (*in == '\\' && in[1] == 'r') {
            out[n++] = '\r';
            in++;
        } else if (*in == '\\' && in[1] == 'n') {
            out[n++] = '\n';
            in++;
        } else {
            out[n++] = *in;
        }
    }
    return n;
}

/* Writes what is left of the batch; returns -1 on error. */
static int send_batch(struct conn *c, const char *batch, size_t len)
{
    while (c->sent < len) {
        ssize_t w = send(c->fd, batch + c->sent, len - c->sent, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        c->sent += (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: pipeline PORT CONNS DEPTH SECONDS REQUEST REPLY_LEN\n");
        return 2;
    }
    int port = atoi(argv[1]), nconn = atoi(argv[2]), depth = atoi(argv[3]);
    double secs = atof(argv[4]);
    size_t reply_len = (size_t)atol(argv[6]);
    char req[4096];
    size_t req_len = unescape(argv[5], req);
    size_t batch_len = req_len * (size_t)depth;
    char *batch = malloc(batch_len);
    struct conn *conns = calloc((size_t)nconn, sizeof(*conns));
    int ep = epoll_create1(0);
    unsigned long long replies = 0;
    static char buf[1 << 16];
    double t0, end;

    if (batch == NULL || conns == NULL || ep < 0 || req_len == 0 || reply_len == 0)
        return 1;
    for (int i = 0; i < depth; i++)
        memcpy(batch + (size_t)i * req_len, req, req_len);
    for (int i = 0; i < nconn; i++) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        int one = 1;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        conns[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(conns[i].fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            perror("connect");
            return 1;
        }
        setsockopt(conns[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* blocking writes of a batch: it is small; reads by epoll */
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    t0 = now();
    end = t0 + secs;
    for (int i = 0; i < nconn; i++) {
        conns[i].due = reply_len * (size_t)depth;
        if (send_batch(&conns[i], batch, batch_len) < 0)
            return 1;
    }
    while (now() < end) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);

        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[evs[k].data.u32];
            ssize_t r = recv(c->fd, buf, sizeof(buf), 0);

            if (r <= 0) {
                fprintf(stderr, "connection closed after %llu replies\n", replies);
                return 1;
            }
            if ((size_t)r > c->due) {
                fprintf(stderr, "more bytes than replies: wrong REPLY_LEN?\n");
                return 1;
            }
            c->due -= (size_t)r;
            if (c->due > 0)
                continue;
            replies += (unsigned long long)depth;
            c->due = reply_len * (size_t)depth;
            c->sent = 0;
            if (send_batch(c, batch, batch_len) < 0)
                return 1;
        }
    }
    printf("%.0f\n", (double)replies / (now() - t0));
    return 0;
}
