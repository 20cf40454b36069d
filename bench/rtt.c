/*
 * rtt: round-trip times through a proxy, measured without a client of our
 * own getting in the way. N connections each send MSG, wait for REPLY_LEN
 * bytes, and repeat K times, all on one epoll loop; every reply is stamped
 * as soon as epoll reports it. Prints min, p50, p99, p999 and max in ms.
 *
 *   rtt [options] PORT CONNS PER_CONN [MSG] [REPLY_LEN]   (default: inline PING)
 *   rtt -E PORT                                 an epoll echo server (the backend)
 *
 * Without -s every connection sends its next request as soon as its reply
 * is in: the first timed round goes out as one burst, and the bursts stay
 * together. With -s GAP_MS each connection waits a random 0..GAP_MS ms
 * (uniform, seeded) before each request, the first one included, so the
 * requests of the 50 connections arrive spread out, not all at once.
 *
 *   -s GAP_MS  staggered: a random wait before each request
 *   -S SEED    seed of the waits (1)
 *   -i N       first open N idle connections (to -I PORT, default PORT),
 *              each one round trip of MSG, then left open until the end
 *   -I PORT    where the idle connections go
 *   -n MS      nominal delay: also print `early` (round trips under MS)
 *   -o FILE    write every round trip (ms, one a line) to FILE
 *
 * Every connection makes one untimed round trip before the timed ones (all
 * at once), so that connecting the proxy to its backend is not measured.
 * The open-files limit is raised to the hard limit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
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

static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* xorshift64*: the waits of a staggered run, replayable by seed */
static uint64_t rng_state = 1;

static double rng_unit(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int echo_server(int port)
{
    int ls, ep, one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET };
    struct epoll_event ev = { .events = EPOLLIN };

    raise_nofile();
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 8192) < 0) {
        perror("echo: bind/listen");
        return 1;
    }
    ep = epoll_create1(0);
    ev.data.fd = ls;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, -1);

        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            char buf[65536];
            ssize_t r;

            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            r = read(fd, buf, sizeof(buf));
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                close(fd);
                continue;
            }
            for (ssize_t off = 0; r > 0 && off < r;) {
                ssize_t w = write(fd, buf + off, (size_t)(r - off));
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                    break;
                if (w > 0)
                    off += w;
            }
        }
    }
}

static int dial(int port)
{
    int fd, one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET };

    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* One round trip on each of n descriptors, all at once; returns 0 when
 * every reply came within 60 s. */
static int round_all(const int *fds, int n, const char *msg, size_t msglen,
                     size_t replylen)
{
    int ep = epoll_create1(0), left = n;
    size_t *got = calloc((size_t)n, sizeof(*got));

    for (int i = 0; i < n; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
        if (write(fds[i], msg, msglen) != (ssize_t)msglen)
            return -1;
    }
    while (left > 0) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 60000);
        if (k <= 0)
            return -1;
        for (int j = 0; j < k; j++) {
            int i = (int)evs[j].data.u32;
            char buf[4096];
            ssize_t r = read(fds[i], buf, sizeof(buf));
            if (r <= 0)
                return -1;
            got[i] += (size_t)r;
            if (got[i] >= replylen && got[i] - (size_t)r < replylen)
                left--;
        }
    }
    close(ep);
    free(got);
    return 0;
}

int main(int argc, char **argv)
{
    int port, conns, per, ep, left, opt, nidle = 0, idle_port = 0;
    const char *msg = "PING\r\n", *outfile = NULL;
    size_t replylen = 7, msglen, nlat = 0, early = 0;
    double *lat, *start, *next, gap = 0, nominal = -1;
    int *got, *done, *fds, *idle = NULL;
    char *busy;

    while ((opt = getopt(argc, argv, "E:s:S:i:I:n:o:")) != -1) {
        switch (opt) {
        case 'E':
            return echo_server(atoi(optarg));
        case 's':
            gap = atof(optarg) / 1000.0;
            break;
        case 'S':
            rng_state = strtoull(optarg, NULL, 10) | 1;
            break;
        case 'i':
            nidle = atoi(optarg);
            break;
        case 'I':
            idle_port = atoi(optarg);
            break;
        case 'n':
            nominal = atof(optarg);
            break;
        case 'o':
            outfile = optarg;
            break;
        default:
            return 2;
        }
    }
    if (argc - optind < 3) {
        fprintf(stderr, "usage: rtt [-s GAP_MS] [-S SEED] [-i N] [-I PORT] [-n MS] "
                        "[-o FILE] PORT CONNS PER_CONN [MSG] [REPLY_LEN]\n"
                        "       rtt -E PORT\n");
        return 2;
    }
    port = atoi(argv[optind]);
    conns = atoi(argv[optind + 1]);
    per = atoi(argv[optind + 2]);
    if (argc - optind > 3)
        msg = argv[optind + 3];
    if (argc - optind > 4)
        replylen = (size_t)atoi(argv[optind + 4]);
    if (idle_port == 0)
        idle_port = port;
    raise_nofile();
    msglen = strlen(msg);
    lat = calloc((size_t)conns * (size_t)per, sizeof(*lat));
    start = calloc((size_t)conns, sizeof(*start));
    next = calloc((size_t)conns, sizeof(*next));
    busy = calloc((size_t)conns, 1);
    got = calloc((size_t)conns, sizeof(*got));
    done = calloc((size_t)conns, sizeof(*done));
    fds = calloc((size_t)conns, sizeof(*fds));

    if (nidle > 0) {
        idle = calloc((size_t)nidle, sizeof(*idle));
        for (int i = 0; i < nidle; i++)
            idle[i] = dial(idle_port);
        if (round_all(idle, nidle, msg, msglen, replylen) < 0) {
            fprintf(stderr, "idle connections: no reply\n");
            return 1;
        }
    }
    for (int i = 0; i < conns; i++)
        fds[i] = dial(port);
    if (round_all(fds, conns, msg, msglen, replylen) < 0) {
        fprintf(stderr, "warm-up: no reply\n");
        return 1;
    }
    ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    {
        double t0 = now();
        for (int i = 0; i < conns; i++) {
            if (gap > 0) {
                next[i] = t0 + gap * rng_unit();
                continue;
            }
            busy[i] = 1;
            start[i] = now();
            if (write(fds[i], msg, msglen) != (ssize_t)msglen)
                return 1;
        }
    }
    left = conns;
    while (left > 0) {
        struct epoll_event evs[256];
        int n, timeout = 30000;
        double t;

        if (gap > 0) {
            /* the next staggered send; a reply still wakes us at once */
            double first = -1;
            t = now();
            for (int i = 0; i < conns; i++)
                if (!busy[i] && done[i] < per && (first < 0 || next[i] < first))
                    first = next[i];
            if (first >= 0)
                timeout = first <= t ? 0 : (int)((first - t) * 1000) + 1;
        }
        n = epoll_wait(ep, evs, 256, timeout);
        t = now();
        if (n < 0 || (n == 0 && timeout == 30000)) {
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
            busy[i] = 0;
            lat[nlat++] = (t - start[i]) * 1000;
            if (++done[i] == per) {
                close(fds[i]);
                left--;
                continue;
            }
            if (gap > 0) {
                next[i] = t + gap * rng_unit();
                continue;
            }
            busy[i] = 1;
            start[i] = now();
            if (write(fds[i], msg, msglen) != (ssize_t)msglen)
                return 1;
        }
        if (gap > 0) {
            t = now();
            for (int i = 0; i < conns; i++) {
                if (busy[i] || done[i] >= per || next[i] > t)
                    continue;
                busy[i] = 1;
                start[i] = now();
                if (write(fds[i], msg, msglen) != (ssize_t)msglen)
                    return 1;
            }
        }
    }
    if (outfile != NULL) {
        FILE *f = fopen(outfile, "w");
        if (f != NULL) {
            for (size_t i = 0; i < nlat; i++)
                fprintf(f, "%.4f\n", lat[i]);
            fclose(f);
        }
    }
    for (size_t i = 0; i < nlat; i++)
        if (nominal >= 0 && lat[i] < nominal)
            early++;
    qsort(lat, nlat, sizeof(*lat), cmp);
    printf("min %.3f p50 %.3f p99 %.3f p999 %.3f max %.3f n %zu", lat[0],
           lat[nlat / 2], lat[(size_t)(nlat * 0.99)], lat[(size_t)(nlat * 0.999)],
           lat[nlat - 1], nlat);
    if (nominal >= 0)
        printf(" early %zu", early);
    printf("\n");
    for (int i = 0; i < nidle; i++)
        close(idle[i]);
    return 0;
}
