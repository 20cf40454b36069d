/*
 * listen: bound, non-blocking listening sockets for an address — every
 * address a host name resolves to (IPv6 ones IPv6-only; all or none), or
 * just the first when the port is 0 so that one port is reported; for a
 * wildcard (":P", "0.0.0.0:P", "[::]:P") one dual-stack socket, as Go's
 * net.Listen makes. Used by the proxies and by the control API.
 */
#ifndef VAURIEN_LISTEN_H
#define VAURIEN_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/addr.h"

/* Binds up to max sockets for a into fds (not yet listening). Returns how
 * many, or a negative errno with a one-line message in err, worded as
 * Toxiproxy words it ("listen tcp 127.0.0.1:80: bind: address already in
 * use"). */
int net_bind_all(const struct addr *a, int *fds, int max, char *err,
                 size_t errlen);

/* Whether a is a wildcard address (bound as one dual-stack socket). */
bool net_is_wildcard(const struct addr *a);

#endif
