/*
 * listen: binding listening sockets (see listen.h).
 */
#include "net/listen.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int bind_one(const struct addrinfo *ai)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int net_bind_all(const struct addr *a, int *fds, int max, char *err,
                 size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    char port[8], where[300], why[128];
    int rc, n = 0, first_err = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", a->port);
    addr_format(a, where, sizeof(where));
    rc = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen tcp %s: lookup %s: %s", where, a->host,
                 gai_strerror(rc));
        return -EINVAL;
    }
    for (ai = res; ai != NULL && n < max; ai = ai->ai_next) {
        int fd = bind_one(ai);
        if (fd < 0) {
            if (first_err == 0)
                first_err = fd;
            continue;
        }
        fds[n++] = fd;
        if (a->port == 0)
            break;
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(why, sizeof(why), "%s", strerror(-first_err));
        why[0] = (char)tolower((unsigned char)why[0]);
        snprintf(err, errlen, "listen tcp %s: bind: %s", where, why);
        return first_err != 0 ? first_err : -EINVAL;
    }
    return n;
}
