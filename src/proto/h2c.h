/*
 * h2c: reads an HTTP/1.1 request that asks to become HTTP/2 (`Upgrade:
 * h2c`, RFC 7540 3.2), the one thing net/h2.c reads of a client itself
 * (nghttp2 reads the rest). No socket: unit tested and fuzzed on bytes.
 *
 *   client bytes ──▶ h2c_upgrade_read() ──▶ method, path, host, headers,
 *                                           HTTP2-Settings decoded
 */
#ifndef VAURIEN_H2C_H
#define VAURIEN_H2C_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proto/proto.h"

#define H2C_HEAD_MAX (16u << 10) /* bytes of an upgrade request's head */
#define H2C_SETTINGS_MAX 384     /* bytes of its decoded HTTP2-Settings */

/* An upgrade request: its pieces point into the bytes read. */
struct h2c_upgrade {
    struct proto_parts parts; /* method, path, headers (http's parts()) */
    struct proto_str host;    /* the Host header (n == 0: none) */
    unsigned char settings[H2C_SETTINGS_MAX]; /* HTTP2-Settings, decoded */
    size_t settings_len;
    bool head;                /* a HEAD request: its reply has no body */
};

/* Reads the request head at the start of p[0, n). Returns its length
 * (through its blank line) when it is a bodiless request asking Upgrade:
 * h2c with a valid HTTP2-Settings; 0 when more bytes are needed; -EPROTO
 * when it is not such a request (u->parts.method is set when it is an
 * HTTP/1 request all the same), -EBADMSG when it asks h2c without a valid
 * HTTP2-Settings, -EMSGSIZE when no head ends within
 * H2C_HEAD_MAX, -ENOTSUP when it has a body (Content-Length other than 0,
 * or Transfer-Encoding), which is not upgraded. */
ssize_t h2c_upgrade_read(const unsigned char *p, size_t n,
                         struct h2c_upgrade *u);

/* Whether header name is one of HTTP/1.1's connection headers, which
 * HTTP/2 forbids (connection, upgrade, http2-settings, keep-alive,
 * proxy-connection, transfer-encoding, te) or carries as a pseudo-header
 * (host). */
bool h2c_connection_header(const struct proto_str *name);

#endif
