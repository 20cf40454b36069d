/*
 * addr: "HOST:PORT" as the command line, config and API spell addresses.
 * HOST is a name, an IPv4 address, or an IPv6 address in brackets
 * ("[::1]:8000"). An empty HOST (":8000") means every local address.
 */
#ifndef VAURIEN_ADDR_H
#define VAURIEN_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define ADDR_HOST_MAX 256

struct addr {
    char host[ADDR_HOST_MAX]; /* without brackets; "" = any */
    unsigned short port;
};

/* Parses text into a. Returns 0, or -EINVAL with a message in err. */
int addr_parse(const char *text, struct addr *a, char *err, size_t errlen);

/* Writes "host:port" ("[v6]:port") into buf. Returns buf. */
char *addr_format(const struct addr *a, char *buf, size_t len);

/* Writes a socket address as "ip:port" ("[v6]:port") into buf. */
char *addr_format_sockaddr(const struct sockaddr *sa, char *buf, size_t len);

#endif
