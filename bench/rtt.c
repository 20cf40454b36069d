/*
 * rtt: round-trip times through a proxy, measured without a client of our
 * own getting in the way. N connections each send MSG, wait for REPLY_LEN
 * bytes, and repeat K times, all on one epoll loop; every reply is stamped
 * as soon as epoll reports it. Prints min, p50, p99, p999 and max in ms.
 *
 *   rtt PORT CONNS PER_CONN [MSG] [REPLY_LEN]     (default: inline PING)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int port, conns, per, ep, left;
    const char *msg = "PING\r\n";
    size_t replylen = 7, msglen, nlat = 0;
    double *lat, *start;
    int *got, *done, *fds;
    struct sockaddr_in sa = { .sin_family = AF_INET };

    if (argc < 4) {
        fprintf(stderr, "usage: rtt PORT CONNS PER_CONN [MSG] [REPLY_LEN]\n");
        return 2;
    }
    port = atoi(argv[1]);
    conns = atoi(argv[2]);
    per = atoi(argv[3]);
    if (argc > 4)
        msg = argv[4];
    if (argc > 5)
        replylen = (size_t)atoi(argv[5]);
    msglen = strlen(msg);
    lat = calloc((size_t)conns * (size_t)per, sizeof(*lat));
    start = calloc((size_t)conns, sizeof(*start));
    got = calloc((size_t)conns, sizeof(*got));
    done = calloc((size_t)conns, sizeof(*done));
    fds = calloc((size_t)conns, sizeof(*fds));
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        int one = 1;
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            perror("connect");
            return 1;
        }
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    for (int i = 0; i < conns; i++) {
        start[i] = now();
        if (write(fds[i], msg, msglen) != (ssize_t)msglen)
            return 1;
    }
    left = conns;
    while (left > 0) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 30000);
        double t = now();
        if (n <= 0) {
            fprintf(stderr, "timed out\n");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            char buf[4096];
            ssize_t r = read(fds[i], buf, sizeof(buf));
            if (r <= 0) {
                fprintf(stderr, "connection %d closed\n", i);
                return 1;
            }
            got[i] += (int)r;
            if ((size_t)got[i] < replylen)
                continue;
            got[i] = 0;
            lat[nlat++] = (t - start[i]) * 1000;
            if (++done[i] == per) {
                close(fds[i]);
                left--;
                continue;
            }
            start[i] = now();
            if (write(fds[i], msg, msglen) != (ssize_t)msglen)
                return 1;
        }
    }
    qsort(lat, nlat, sizeof(*lat), cmp);
    printf("min %.3f p50 %.3f p99 %.3f p999 %.3f max %.3f n %zu\n", lat[0],
           lat[nlat / 2], lat[(size_t)(nlat * 0.99)], lat[(size_t)(nlat * 0.999)],
           lat[nlat - 1], nlat);
    return 0;
}
