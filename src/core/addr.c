/*
 * addr: parsing and printing of HOST:PORT (see addr.h).
 */
#include "core/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *text, const char *why)
{
    snprintf(err, errlen, "Expected HOST:PORT, got '%s' (%s)", text, why);
    return -EINVAL;
}

int addr_parse(const char *text, struct addr *a, char *err, size_t errlen)
{
    const char *colon, *host = text;
    size_t hostlen;
    char *end;
    long port;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return fail(err, errlen, text, "missing ']'");
        if (close[1] != ':')
            return fail(err, errlen, text, "missing port");
        host = text + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
        struct in6_addr tmp;
        char buf[INET6_ADDRSTRLEN + 1];
        if (hostlen == 0 || hostlen >= sizeof(buf))
            return fail(err, errlen, text, "bad IPv6 address");
        memcpy(buf, host, hostlen);
        buf[hostlen] = '\0';
        if (inet_pton(AF_INET6, buf, &tmp) != 1)
            return fail(err, errlen, text, "bad IPv6 address");
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return fail(err, errlen, text, "missing port");
        if (memchr(text, ':', (size_t)(colon - text)) != NULL)
            return fail(err, errlen, text, "put IPv6 addresses in brackets");
        hostlen = (size_t)(colon - text);
    }
    if (hostlen >= ADDR_HOST_MAX)
        return fail(err, errlen, text, "host name too long");
    for (size_t i = 0; i < hostlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c == '/' || c == '[' || c == ']' || c >= 0x7f)
            return fail(err, errlen, text, "bad character in host");
    }
    if (colon[1] == '\0')
        return fail(err, errlen, text, "missing port");
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || errno != 0 || port < 0 || port > 65535 ||
        colon[1] == '-' || colon[1] == '+' || colon[1] == ' ')
        return fail(err, errlen, text, "port must be 0-65535");
    memcpy(a->host, host, hostlen);
    a->host[hostlen] = '\0';
    a->port = (unsigned short)port;
    return 0;
}

char *addr_format(const struct addr *a, char *buf, size_t len)
{
    if (strchr(a->host, ':') != NULL)
        snprintf(buf, len, "[%s]:%u", a->host, a->port);
    else
        snprintf(buf, len, "%s:%u", a->host, a->port);
    return buf;
}

char *addr_format_sockaddr(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}
