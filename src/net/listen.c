/*
 * listen: binding listening sockets (see listen.h).
 */
#include "net/listen.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int bind_one(int family, const struct sockaddr *sa, socklen_t len,
                    bool v6only)
{
    int one = 1, v6 = v6only;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6));
    if (bind(fd, sa, len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* "listen tcp WHERE: bind: why", as Go's net.Listen says it. */
static int bind_error(int e, const char *where, char *err, size_t errlen)
{
    char why[128];

    snprintf(why, sizeof(why), "%s", strerror(e));
    why[0] = (char)tolower((unsigned char)why[0]);
    snprintf(err, errlen, "listen tcp %s: bind: %s", where, why);
    return -e;
}

bool net_is_wildcard(const struct addr *a)
{
    return a->host[0] == '\0' || strcmp(a->host, "0.0.0.0") == 0 ||
           strcmp(a->host, "::") == 0;
}

int net_bind_all(const struct addr *a, int *fds, int max, char *err,
                 size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    char port[8], where[300];
    int rc, n = 0;

    addr_format(a, where, sizeof(where));
    if (net_is_wildcard(a)) {
        /* As Go's net.Listen: one dual-stack socket, [::]:P, that takes
         * IPv4 too (and fails when 127.0.0.1:P is taken); IPv4 alone
         * where the kernel has no IPv6. */
        struct sockaddr_in6 s6 = { .sin6_family = AF_INET6,
                                   .sin6_addr = IN6ADDR_ANY_INIT,
                                   .sin6_port = htons(a->port) };
        struct sockaddr_in s4 = { .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_ANY),
                                  .sin_port = htons(a->port) };
        int fd = max > 0 ? bind_one(AF_INET6, (struct sockaddr *)&s6,
                                    sizeof(s6), false)
                         : -EINVAL;
        if (fd == -EAFNOSUPPORT)
            fd = bind_one(AF_INET, (struct sockaddr *)&s4, sizeof(s4), false);
        if (fd < 0)
            return bind_error(-fd, where, err, errlen);
        fds[0] = fd;
        return 1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", a->port);
    rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen tcp %s: lookup %s: %s", where, a->host,
                 gai_strerror(rc));
        return -EINVAL;
    }
    /* every address the name has ("localhost": 127.0.0.1 and ::1), or
     * none: a port taken on one of them is a failure that names it; an
     * address the machine lacks is skipped */
    for (ai = res; ai != NULL && n < max; ai = ai->ai_next) {
        int fd = bind_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, true);
        if ((fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT) &&
            (ai->ai_next != NULL || n > 0)) {
            /* an address this machine does not have (::1 where IPv6 is
             * off, as in many containers): not the name's failure, unless
             * it is the last hope */
            continue;
        }
        if (fd < 0) {
            char failed[300];
            addr_format_sockaddr(ai->ai_addr, failed, sizeof(failed));
            freeaddrinfo(res);
            while (n > 0)
                close(fds[--n]);
            return bind_error(-fd, failed, err, errlen);
        }
        fds[n++] = fd;
        if (a->port == 0)
            break; /* one port the kernel picks, on the first address */
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(err, errlen, "listen tcp %s: no address", where);
        return -EINVAL;
    }
    return n;
}
